package ui

import (
	"cmp"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/redoubt/redoubt/ui/pki"
	"github.com/redoubt/redoubt/vault"
)

func pemFingerprint(b []byte) string {
	blk, _ := pem.Decode(b)
	if blk == nil {
		return ""
	}
	return pki.Fingerprint(blk.Bytes)
}

// dashView is the dashboard's data.
type dashView struct {
	Status   Status
	Uptime   string
	Devices  []Device
	Stopped  []Stopped
	Total    uint64
	Talkers  []talker
	Names    []talker
	Category []talker
	// Backup is the backups' tile (nil: none on this box).
	Backup *BackupTile
}

// quiet are the categories the dashboard leaves to the full list.
var quiet = map[string]bool{"ipv6-link": true, "arp": true}

// talker is a row of a top-N table.
type talker struct {
	Label string
	Count uint64
}

const feedLen = 50

func (u *UI) dashboard(w http.ResponseWriter, r *http.Request, s *session) {
	st := u.d.Box.Status()
	stopped := u.d.Box.Stopped()
	v := dashView{Status: st, Uptime: time.Since(st.Started).Round(time.Second).String(), Devices: u.d.Box.Devices()}
	// Link chatter (IPv6 neighbour discovery, ARP) is how any computer behaves on
	// a wire, not something trying to reach out: the full list keeps it, the
	// dashboard does not lead with it.
	stopped = slices.DeleteFunc(stopped, func(e Stopped) bool { return quiet[e.Category] })
	byDevice, byName, byCat := map[string]uint64{}, map[string]uint64{}, map[string]uint64{}
	for _, e := range stopped {
		v.Total += e.Count
		byDevice[e.Device] += e.Count
		byCat[e.Category] += e.Count
		if e.Name != "" {
			byName[e.Name] += e.Count
		}
	}
	v.Talkers, v.Names, v.Category = top(byDevice, 5), top(byName, 10), top(byCat, 20)
	v.Stopped = stopped[:min(len(stopped), feedLen)]
	v.Backup = u.backupTile()
	u.render(w, r, http.StatusOK, "dashboard", view{Title: "Dashboard", CSRF: s.csrf, SignedIn: true, Data: v})
}

func top(m map[string]uint64, n int) []talker {
	out := make([]talker, 0, len(m))
	for k, v := range m {
		out = append(out, talker{k, v})
	}
	slices.SortFunc(out, func(a, b talker) int {
		if c := cmp.Compare(b.Count, a.Count); c != 0 {
			return c
		}
		return cmp.Compare(a.Label, b.Label)
	})
	return out[:min(len(out), n)]
}

func (u *UI) devicesPage(w http.ResponseWriter, r *http.Request, s *session) {
	u.render(w, r, http.StatusOK, "devices", view{Title: "Devices", CSRF: s.csrf, SignedIn: true, Data: u.d.Box.Devices()})
}

func (u *UI) stoppedPage(w http.ResponseWriter, r *http.Request, s *session) {
	all := u.d.Box.Stopped()
	q := strings.ToLower(strings.TrimSpace(r.URL.Query().Get("q")))
	if q != "" {
		all = slices.DeleteFunc(all, func(e Stopped) bool {
			return !strings.Contains(strings.ToLower(e.Name+" "+e.Destination+" "+e.Device+" "+e.Category), q)
		})
	}
	u.render(w, r, http.StatusOK, "stopped", view{Title: "Stopped", CSRF: s.csrf, SignedIn: true, Data: struct {
		Q       string
		Stopped []Stopped
	}{q, all[:min(len(all), 1000)]}})
}

// events streams what the box stops, as server-sent events, until the browser
// goes away or its session ends.
func (u *UI) events(w http.ResponseWriter, r *http.Request, s *session) {
	fl, ok := w.(http.Flusher)
	if !ok {
		http.Error(w, "streaming unsupported", http.StatusInternalServerError)
		return
	}
	ch, cancel := u.d.Box.SubscribeStopped(64)
	defer cancel()
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
	fmt.Fprint(w, "retry: 3000\n\n")
	fl.Flush()
	beat := time.NewTicker(15 * time.Second)
	defer beat.Stop()
	tok := cookieValue(r, sessionCookie)
	for {
		select {
		case <-r.Context().Done():
			return
		case <-beat.C:
			if u.sess.get(tok) == nil || u.d.Vault.Locked() {
				fmt.Fprint(w, "event: signedout\ndata: {}\n\n")
				fl.Flush()
				return
			}
			fmt.Fprint(w, ": still here\n\n")
			fl.Flush()
		case e, ok := <-ch:
			if !ok {
				return
			}
			b, _ := json.Marshal(e)
			fmt.Fprintf(w, "event: stopped\ndata: %s\n\n", b)
			fl.Flush()
		}
	}
}

func (u *UI) pcap(w http.ResponseWriter, r *http.Request, s *session) {
	w.Header().Set("Content-Type", "application/vnd.tcpdump.pcap")
	w.Header().Set("Content-Disposition", fmt.Sprintf(`attachment; filename="redoubt-drops-%s.pcap"`, u.d.Now().Format("20060102-1504")))
	if err := u.d.Box.WritePcap(w); err != nil {
		u.d.Logger.Warn("writing pcap", "err", err)
	}
}

// settingsView is the settings page's data.
type settingsView struct {
	Settings     Settings
	Reservations string
	Sessions     int
}

func reservationsText(rs []Reservation) string {
	var b strings.Builder
	for _, r := range rs {
		fmt.Fprintf(&b, "%s %s\n", r.MAC, r.IP)
	}
	return b.String()
}

// parseReservations reads "MAC IP" lines; "#" starts a comment.
func parseReservations(text string) ([]Reservation, error) {
	var out []Reservation
	for i, line := range strings.Split(text, "\n") {
		if c := strings.IndexByte(line, '#'); c >= 0 {
			line = line[:c]
		}
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		if len(f) != 2 {
			return nil, &FieldError{"reservations", fmt.Sprintf("Line %d: write the hardware address, then the IP address.", i+1)}
		}
		out = append(out, Reservation{MAC: f[0], IP: f[1]})
	}
	return out, nil
}

func (u *UI) settingsPage(w http.ResponseWriter, r *http.Request, s *session) {
	st := u.d.Box.Settings()
	u.render(w, r, http.StatusOK, "settings", view{Title: "Settings", CSRF: s.csrf, SignedIn: true,
		Notice: r.URL.Query().Get("saved"),
		Data:   settingsView{Settings: st, Reservations: reservationsText(st.Reservations), Sessions: u.sess.count()}})
}

func (u *UI) saveSettings(w http.ResponseWriter, r *http.Request, s *session) {
	next := Settings{
		BoxName:    strings.ToLower(strings.TrimSpace(r.PostFormValue("box_name"))),
		LANAddress: strings.TrimSpace(r.PostFormValue("lan_address")),
		LeaseTime:  strings.TrimSpace(r.PostFormValue("lease_time")),
	}
	reservations := r.PostFormValue("reservations")
	fail := func(fe *FieldError) {
		u.render(w, r, http.StatusUnprocessableEntity, "settings", view{Title: "Settings", CSRF: s.csrf, SignedIn: true,
			Fields: map[string]string{fe.Field: fe.Message},
			Data:   settingsView{Settings: next, Reservations: reservations, Sessions: u.sess.count()}})
	}
	if msg := ValidateBoxName(next.BoxName); msg != "" {
		fail(&FieldError{"box_name", msg})
		return
	}
	rs, err := parseReservations(reservations)
	if err != nil {
		fail(err.(*FieldError))
		return
	}
	next.Reservations = rs
	before := u.d.Box.Settings()
	if err := u.d.Box.ApplySettings(next); err != nil {
		var fe *FieldError
		if !errors.As(err, &fe) {
			fe = &FieldError{"form", err.Error()}
		}
		fail(fe)
		return
	}
	if next.BoxName != u.d.Setup.BoxName() {
		u.d.Setup.SetBoxName(next.BoxName)
	}
	if err := u.ensureServerCert(); err != nil {
		u.d.Logger.Warn("reissuing the UI certificate", "err", err)
	}
	u.logf(r, "settings changed")
	if to, err := netip.ParsePrefix(next.LANAddress); err == nil && next.LANAddress != before.LANAddress {
		// The box is about to leave the address this page came from.
		u.logf(r, "the box moves to "+to.String())
		mv := movingView{Address: to.Addr().String(), Name: u.canonicalName()}
		u.render(w, r, http.StatusOK, "message", view{Title: "The box is moving", Data: mv,
			Notice: "Saved. In a moment the box moves to " + mv.Address + ". Your laptop's network goes away for a few seconds and comes back with an address on the new LAN."})
		return
	}
	http.Redirect(w, r, "/settings?saved=Saved.", http.StatusSeeOther)
}

// movingView is the page shown when the box moves to another LAN address.
type movingView struct {
	Address string // the box's new address
	Name    string // the box's name, which follows it ("" if it has none)
}

// canonicalName is the box's first name, or "" if it has none.
func (u *UI) canonicalName() string {
	if n := u.d.Names(); len(n) > 0 {
		return n[0]
	}
	return ""
}

func (u *UI) changePassphrase(w http.ResponseWriter, r *http.Request, s *session) {
	old, pass, confirm := r.PostFormValue("current"), r.PostFormValue("passphrase"), r.PostFormValue("confirm")
	fields := map[string]string{}
	if st := Evaluate(pass); st.Reason != "" {
		fields["passphrase"] = st.Reason + " " + st.Hint
	} else if pass != confirm {
		fields["confirm"] = "The two passphrases differ."
	}
	if len(fields) == 0 {
		err := u.d.Vault.ChangePassphrase([]byte(old), []byte(pass), u.d.KDF())
		var soon *vault.TooSoonError
		switch {
		case errors.Is(err, vault.ErrWrongPass):
			fields["current"] = "That is not the current passphrase."
		case errors.As(err, &soon):
			fields["current"] = "Too many wrong passphrases. " + soon.Error() + "."
		case err != nil:
			fields["current"] = "The passphrase could not be changed: " + err.Error()
		}
	}
	if len(fields) > 0 {
		st := u.d.Box.Settings()
		u.render(w, r, http.StatusUnprocessableEntity, "settings", view{Title: "Settings", CSRF: s.csrf, SignedIn: true, Fields: fields,
			Data: settingsView{Settings: st, Reservations: reservationsText(st.Reservations), Sessions: u.sess.count()}})
		return
	}
	// Every other browser must sign in with the new passphrase.
	u.sess.endAll()
	setCookie(w, r, sessionCookie, u.sess.create(), cookieAge)
	u.logf(r, "passphrase changed")
	http.Redirect(w, r, "/settings?saved=Passphrase+changed.", http.StatusSeeOther)
}

func (u *UI) lock(w http.ResponseWriter, r *http.Request, s *session) {
	u.d.Vault.Lock()
	u.sess.endAll()
	u.d.Box.Locked()
	u.logf(r, "box locked")
	setCookie(w, r, sessionCookie, "", -1)
	http.Redirect(w, r, "/unlock", http.StatusSeeOther)
}

func (u *UI) logout(w http.ResponseWriter, r *http.Request, s *session) {
	u.sess.end(cookieValue(r, sessionCookie))
	setCookie(w, r, sessionCookie, "", -1)
	http.Redirect(w, r, "/unlock", http.StatusSeeOther)
}

func (u *UI) reboot(w http.ResponseWriter, r *http.Request, s *session) {
	u.logf(r, "reboot requested")
	u.render(w, r, http.StatusOK, "message", view{Title: "Restarting", Notice: "The box is restarting. It comes back locked: this page will show the unlock page in a moment.", Data: "reboot"})
	go func() {
		time.Sleep(500 * time.Millisecond) // let the page reach the browser
		if err := u.d.Box.Reboot(); err != nil {
			u.d.Logger.Error("reboot", "err", err)
		}
	}()
}

func (u *UI) factoryReset(w http.ResponseWriter, r *http.Request, s *session) {
	if strings.ToLower(strings.TrimSpace(r.PostFormValue("confirm_reset"))) != u.d.Setup.BoxName() {
		st := u.d.Box.Settings()
		u.render(w, r, http.StatusUnprocessableEntity, "settings", view{Title: "Settings", CSRF: s.csrf, SignedIn: true,
			Fields: map[string]string{"confirm_reset": "Type the box's name, " + u.d.Setup.BoxName() + ", to confirm."},
			Data:   settingsView{Settings: st, Reservations: reservationsText(st.Reservations), Sessions: u.sess.count()}})
		return
	}
	u.logf(r, "factory reset")
	if err := u.d.Box.FactoryReset(); err != nil {
		u.fail(w, r, http.StatusInternalServerError, "The reset failed: "+err.Error())
		return
	}
	u.Reset()
	setCookie(w, r, sessionCookie, "", -1)
	u.render(w, r, http.StatusOK, "message", view{Title: "Reset", Notice: "The box has forgotten its owner, keys and data. Unplug and plug the laptop again (or open http://" + u.d.Addr().String() + "/setup) to set it up anew."})
}
