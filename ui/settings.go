package ui

import (
	"encoding/pem"
	"errors"
	"fmt"
	"net/http"
	"net/netip"
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

// settingsView is the settings page's data.
type settingsView struct {
	Settings     Settings
	LeaseTime    string
	Reservations string
	Sessions     int
	// Box is the state of the box's name, address and certificate.
	Box      SectionState
	Sections []sectionView
	// Notice is for the box's own forms (Name and address, passphrase).
	NoticeAt, Notice string
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

// leaseText writes a lease time as the field takes it ("12h", not "12h0m0s").
func leaseText(s string) string {
	if d, err := time.ParseDuration(s); err == nil {
		return shortDuration(d)
	}
	return s
}

// boxState says whether the box's name and address are what its certificate
// covers.
func (u *UI) boxState() SectionState {
	names, addr := u.d.Names(), u.d.Addr()
	st := SectionState{State: "up", Label: "In use",
		Detail: "This computer reaches the box at " + u.canonicalHost() + " and " + addr.String() + "."}
	st.Facts = append(st.Facts, Fact{"Names", strings.Join(names, ", ")}, Fact{"Address", addr.String()})
	u.mu.Lock()
	cert := u.cert
	u.mu.Unlock()
	switch {
	case cert == nil || cert.Leaf == nil:
		st.State, st.Label = "down", "No certificate"
		st.Todo = "Lock the box and unlock it again: it then issues its HTTPS certificate."
	case pki.NeedsRenewal(cert, names, []netip.Addr{addr}, u.d.Now()):
		st.State, st.Label = "down", "Certificate out of date"
		st.Detail = "The box's HTTPS certificate does not cover its current names and address, or expires soon."
		st.Todo = "Lock the box and unlock it again: it then issues a new certificate."
	default:
		st.Facts = append(st.Facts, Fact{"HTTPS certificate", "covers these names, valid until " + when(cert.Leaf.NotAfter, u.d.Now())})
	}
	return st
}

func (u *UI) settingsPage(w http.ResponseWriter, r *http.Request, s *session) {
	u.renderSettings(w, r, s, http.StatusOK, nil, nil)
}

// renderSettings shows the settings page, with errors next to the box's own
// fields; edit changes its data first (a section's errors, the owner's answers).
func (u *UI) renderSettings(w http.ResponseWriter, r *http.Request, s *session, status int, fields map[string]string, edit func(*settingsView)) {
	st := u.d.Box.Settings()
	v := settingsView{Settings: st, LeaseTime: leaseText(st.LeaseTime), Reservations: reservationsText(st.Reservations),
		Sessions: u.sess.count(), Box: u.boxState()}
	for _, sec := range u.d.Sections {
		v.Sections = append(v.Sections, viewSection(sec))
	}
	at, notice := u.sess.takeFlash(s)
	v.NoticeAt, v.Notice = at, notice
	v.setSection(at, func(sv *sectionView) { sv.Notice = notice })
	if edit != nil {
		edit(&v)
	}
	u.render(w, r, status, "settings", view{Title: "Settings", CSRF: s.csrf, SignedIn: true, Data: v, Fields: fields})
}

// ApplySettings validates and applies the owner's settings (the box's name, LAN
// address, lease time, reservations) as the settings page does: the box renames
// itself, moves if the address changed, and reissues its HTTPS certificate. A
// *FieldError names the bad field. The local API uses it too.
func (u *UI) ApplySettings(next Settings) error {
	next.BoxName = strings.ToLower(strings.TrimSpace(next.BoxName))
	if msg := ValidateBoxName(next.BoxName); msg != "" {
		return &FieldError{"box_name", msg}
	}
	if err := u.d.Box.ApplySettings(next); err != nil {
		var fe *FieldError
		if !errors.As(err, &fe) {
			fe = &FieldError{"form", sentence(err.Error())}
		}
		return fe
	}
	if next.BoxName != u.d.Setup.BoxName() {
		if err := u.d.Setup.SetBoxName(next.BoxName); err != nil {
			return fmt.Errorf("keeping the box's name: %w", err)
		}
	}
	if err := u.ensureServerCert(); err != nil {
		u.d.Logger.Warn("reissuing the UI certificate", "err", err)
	}
	return nil
}

func (u *UI) saveSettings(w http.ResponseWriter, r *http.Request, s *session) {
	next := Settings{
		BoxName:    strings.ToLower(strings.TrimSpace(r.PostFormValue("box_name"))),
		LANAddress: strings.TrimSpace(r.PostFormValue("lan_address")),
		LeaseTime:  strings.TrimSpace(r.PostFormValue("lease_time")),
	}
	reservations := r.PostFormValue("reservations")
	fail := func(fe *FieldError) {
		u.renderSettings(w, r, s, http.StatusUnprocessableEntity, map[string]string{fe.Field: fe.Message}, func(v *settingsView) {
			v.Settings, v.LeaseTime, v.Reservations = next, next.LeaseTime, reservations
		})
	}
	rs, err := parseReservations(reservations)
	if err != nil {
		fail(err.(*FieldError))
		return
	}
	next.Reservations = rs
	before := u.d.Box.Settings()
	if err := u.ApplySettings(next); err != nil {
		var fe *FieldError
		if !errors.As(err, &fe) {
			fe = &FieldError{"form", sentence(err.Error())}
		}
		fail(fe)
		return
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
	u.sess.setFlash(s, "box", "Saved.")
	http.Redirect(w, r, "/settings#box", http.StatusSeeOther)
}

// movingView is the page shown when the box moves to another LAN address.
type movingView struct {
	Address string // the box's new address
	Name    string // the box's name, which follows it ("" if it has none)
}

// canonicalName is the box's own name, or "" if it has none.
func (u *UI) canonicalName() string {
	if h := u.canonicalHost(); h != u.d.Addr().String() {
		return h
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
			fields["current"] = "Too many wrong passphrases. " + waitWords(soon.Wait)
		case err != nil:
			fields["current"] = "The passphrase could not be changed: " + err.Error()
		}
	}
	if len(fields) > 0 {
		u.renderSettings(w, r, s, http.StatusUnprocessableEntity, fields, nil)
		return
	}
	// Every other browser must sign in with the new passphrase.
	u.sess.endAll()
	tok := u.sess.create()
	setCookie(w, r, sessionCookie, tok, cookieAge)
	if ns := u.sess.get(tok); ns != nil {
		u.sess.setFlash(ns, "passphrase", "Passphrase changed. Other browsers were signed out.")
	}
	u.logf(r, "passphrase changed")
	http.Redirect(w, r, "/settings#passphrase", http.StatusSeeOther)
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

// reboot restarts the box's software, once the owner confirmed it.
func (u *UI) reboot(w http.ResponseWriter, r *http.Request, s *session) {
	if r.PostFormValue("confirm") != "restart" {
		u.renderSettings(w, r, s, http.StatusUnprocessableEntity, map[string]string{"restart": "Confirm the restart first, below."}, nil)
		return
	}
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
		u.renderSettings(w, r, s, http.StatusUnprocessableEntity, map[string]string{"confirm_reset": "Type the box's name, " + u.d.Setup.BoxName() + ", to confirm."}, nil)
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
