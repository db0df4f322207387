package daemon

import (
	"cmp"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/redoubt/redoubt/audit"
	"github.com/redoubt/redoubt/datapath/lan"
	"github.com/redoubt/redoubt/datapath/leaklog"
	"github.com/redoubt/redoubt/dhcp"
	"github.com/redoubt/redoubt/dns"
	"github.com/redoubt/redoubt/dns/querylog"
	"github.com/redoubt/redoubt/internal/timeseries"
	"github.com/redoubt/redoubt/internal/version"
	"github.com/redoubt/redoubt/ui"
	"github.com/redoubt/redoubt/ui/localapi"
	"github.com/redoubt/redoubt/ui/setup"
	"github.com/redoubt/redoubt/vault"
)

// Ports the owner's pages are served on, on the LAN address only.
const (
	httpPort  = 80
	httpsPort = 443
)

// openOwner opens what the box keeps for its owner: the first-boot state and the
// sealed vault (locked until the passphrase is entered).
func (b *Box) openOwner(cfg Config) error {
	st, err := setup.Open(cfg.State.Dir, cfg.Setup.CodeFile)
	if err != nil {
		return err
	}
	v, err := vault.Open(filepath.Join(cfg.State.Dir, "vault"))
	if err != nil {
		return err
	}
	b.setup, b.vault = st, v
	if !st.Done() {
		b.log.Info("setup is not done: the setup page asks for the setup code (redoubt setup-code)", "code_file", cfg.Setup.CodeFile)
	} else if v.Locked() {
		b.log.Info("the box is locked: it routes and resolves, and waits for the owner's passphrase to unlock")
	}
	return nil
}

// startUI serves the owner's pages on the LAN port: port 80 (setup, then only a
// redirect and the CA certificate) and port 443 (everything, once setup made the
// box's certificate).
func (b *Box) startUI(cfg Config) error {
	var assets fs.FS
	if cfg.dev.UIDir != "" {
		assets = os.DirFS(cfg.dev.UIDir)
		b.log.Warn("serving the owner's pages from disk", "dir", cfg.dev.UIDir)
	}
	u, err := ui.New(ui.Deps{
		Assets:   assets,
		Logger:   b.log.With("room", "ui"),
		Version:  version.Get().Version,
		Setup:    b.setup,
		Vault:    auditVault{b.vault, b},
		Box:      (*ownerBox)(b),
		StateDir: cfg.State.Dir,
		Addr:     func() netip.Addr { return b.lan.Load().Addr() },
		Names:    b.uiNames,
		Steps:    b.uiSteps(),
		Sections: b.uiSections(),
		Team:     (*ownerTeam)(b),
		Apps:     b.apps,
		Backups:  b.uiBackups(),
		Updates:  b.uiUpdates(),
	})
	if err != nil {
		return err
	}
	b.ui = u
	return nil
}

// serveUI serves the owner's pages on http/80 and https/443 of the LAN port l.
func (b *Box) serveUI(l *lan.LAN) error {
	httpLn, err := l.ListenTCP(httpPort)
	if err != nil {
		return err
	}
	httpsLn, err := l.ListenTCP(httpsPort)
	if err != nil {
		httpLn.Close()
		return err
	}
	uiLog := b.log.With("room", "ui")
	// The apps' names on the LAN share ports 80 and 443 with the owner's
	// pages: the apps' host splits them off by name.
	b.web = ui.Server(b.apps.PlainHTTP(b.ui.Handler()), uiLog)
	b.webTLS = ui.Server(b.ui.Handler(), uiLog)
	b.serve("web", b.web, httpLn)
	b.serve("web-tls", b.webTLS, tls.NewListener(b.apps.MountLAN(l, httpsLn), b.ui.TLSConfig()))
	return nil
}

// uiNames are the names the owner's pages answer to: the box's names in the local
// domain.
func (b *Box) uiNames() []string {
	if b.dns.Load() == nil {
		return nil
	}
	var out []string
	for _, r := range b.dns.Load().Names().Records() {
		if r.Source == "box" {
			out = append(out, strings.TrimSuffix(r.Name, "."))
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// ownerBox is the box as the owner's pages see it.
type ownerBox Box

func (o *ownerBox) box() *Box { return (*Box)(o) }

func (o *ownerBox) Status() ui.Status {
	b := o.box()
	cfg := b.config()
	st := ui.Status{
		Version: version.Get().Version,
		Started: b.started,
		BoxName: b.setup.BoxName(),
		LAN:     ui.ServiceState{State: "up", Detail: fmt.Sprintf("%s, box at %s", cfg.LAN.Interface, b.lan.Load().Addr())},
	}
	st.WAN, st.VPN = b.vpnServiceStates()
	st.Mesh.State, st.Mesh.Detail = b.meshState()
	if n := len(b.dhcpLeases()); n > 0 {
		st.LAN.Detail += fmt.Sprintf(", %d device(s)", n)
	}
	return st
}

func (b *Box) dhcpLeases() []dhcp.Lease {
	if b.dhcp.Load() == nil {
		return nil
	}
	return b.dhcp.Load().Leases()
}

// deviceNames maps hardware and IP addresses to the names devices gave.
func (b *Box) deviceNames() (byMAC, byIP map[string]string) {
	byMAC, byIP = map[string]string{}, map[string]string{}
	for _, l := range b.dhcpLeases() {
		if l.Hostname != "" {
			byMAC[l.MAC] = l.Hostname
			byIP[l.Address.String()] = l.Hostname
		}
	}
	return byMAC, byIP
}

func (o *ownerBox) Devices() []ui.Device {
	b := o.box()
	var out []ui.Device
	for _, l := range b.dhcpLeases() {
		if l.State == "declined" {
			continue
		}
		out = append(out, ui.Device{Name: l.Hostname, MAC: l.MAC, IP: l.Address.String(), Vendor: l.VendorClass,
			FirstSeen: l.FirstSeen, Expires: l.Expiry, Owner: l.Owner})
	}
	slices.SortFunc(out, func(a, c ui.Device) int { return cmp.Compare(c.Expires.Unix(), a.Expires.Unix()) })
	return out
}

// stoppedLeak turns a leak log entry into the UI's.
func stoppedLeak(e leaklog.Entry, byMAC map[string]string) ui.Stopped {
	dev := byMAC[e.MAC]
	if dev == "" {
		dev = e.MAC
		if e.Src != "" && e.Kind != "spoofed" {
			dev = e.Src
		}
	}
	s := ui.Stopped{Source: "connection", Category: e.Kind, Device: dev, MAC: e.MAC, IP: e.Src, Proto: e.Proto, App: e.App,
		Dst: e.Dst, Port: e.DstPort, Name: e.Name, Count: e.Count, First: e.First, Last: e.Last}
	if e.Name != "" {
		c, who := querylog.Explain(querylog.Normalize(e.Name))
		s.Class, s.Who = c.String(), who
	}
	return s
}

// stoppedQuery turns a query log entry into the UI's; only names the box
// refused to resolve count as stopped.
func stoppedQuery(e querylog.Entry, byIP map[string]string) (ui.Stopped, bool) {
	if e.Answer != querylog.Stopped.String() {
		return ui.Stopped{}, false
	}
	dev := byIP[e.Client]
	if dev == "" {
		dev = e.Client
	}
	_, who := querylog.Explain(e.Name)
	return ui.Stopped{Source: "dns", Category: "dns", Class: e.Class, Who: who, Device: dev, MAC: e.MAC, IP: e.Client,
		Types: e.Types, Name: e.Name, Count: e.Count, First: e.First, Last: e.Last}, true
}

func (o *ownerBox) Stopped() []ui.Stopped {
	b := o.box()
	byMAC, byIP := b.deviceNames()
	var out []ui.Stopped
	for _, e := range b.leaks.Entries() {
		out = append(out, stoppedLeak(e, byMAC))
	}
	if b.queries != nil {
		for _, e := range b.queries.Entries() {
			if s, ok := stoppedQuery(e, byIP); ok {
				out = append(out, s)
			}
		}
	}
	slices.SortFunc(out, func(a, c ui.Stopped) int { return c.Last.Compare(a.Last) })
	return out
}

// Tally counts what was stopped since the box started, from the logs' counters
// (which, unlike their entries, lose nothing): the leak log's kinds, and the
// names the resolver refused as "dns", per device by hardware address.
func (o *ownerBox) Tally() ui.Tally {
	b := o.box()
	lc := b.leaks.Counters()
	t := ui.Tally{Since: b.started, ByKind: map[string]uint64{}, Evicted: lc.Evicted}
	for k, n := range lc.ByKind {
		t.ByKind[k] += n
	}
	devices := map[string]*ui.DeviceTally{}
	device := func(mac, ip string) *ui.DeviceTally {
		k := strings.ToLower(mac)
		if k == "" {
			k = ip
		}
		d := devices[k]
		if d == nil {
			d = &ui.DeviceTally{MAC: strings.ToLower(mac), IP: ip, ByKind: map[string]uint64{}}
			devices[k] = d
		}
		if d.IP == "" {
			d.IP = ip
		}
		return d
	}
	for _, dc := range lc.Devices {
		d := device(dc.MAC, dc.IP)
		for k, n := range dc.ByKind {
			d.ByKind[k] += n
		}
	}
	if b.queries != nil {
		qc := b.queries.Counters()
		t.Evicted += qc.Evicted
		macOf := map[string]string{}
		for _, l := range b.dhcpLeases() {
			macOf[l.Address.String()] = l.MAC
		}
		for _, dc := range qc.Devices {
			if dc.Stopped == 0 {
				continue
			}
			t.ByKind["dns"] += dc.Stopped
			mac := dc.MAC
			if mac == "" {
				mac = macOf[dc.Client]
			}
			device(mac, dc.Client).ByKind["dns"] += dc.Stopped
		}
	}
	for _, d := range devices {
		t.Devices = append(t.Devices, *d)
	}
	slices.SortFunc(t.Devices, func(a, c ui.DeviceTally) int { return cmp.Compare(a.MAC+a.IP, c.MAC+c.IP) })
	return t
}

// SubscribeStopped merges the leak log's and the query log's live feeds.
func (o *ownerBox) SubscribeStopped(buf int) (<-chan ui.Stopped, func()) {
	b := o.box()
	out := make(chan ui.Stopped, buf)
	done := make(chan struct{})
	leaks, cancelLeaks := b.leaks.Subscribe(buf)
	var queries <-chan querylog.Entry
	cancelQueries := func() {}
	if b.queries != nil {
		queries, cancelQueries = b.queries.Subscribe(buf)
	}
	go func() {
		defer close(out)
		names := time.NewTicker(10 * time.Second)
		defer names.Stop()
		byMAC, byIP := b.deviceNames()
		for {
			var s ui.Stopped
			select {
			case <-done:
				return
			case <-names.C:
				byMAC, byIP = b.deviceNames()
				continue
			case e, ok := <-leaks:
				if !ok {
					return
				}
				s = stoppedLeak(e, byMAC)
			case e, ok := <-queries:
				if !ok {
					return
				}
				var keep bool
				if s, keep = stoppedQuery(e, byIP); !keep {
					continue
				}
			}
			select {
			case out <- s:
			default: // a slow page misses updates; it reloads the rest
			}
		}
	}()
	var stopped bool
	return out, func() {
		if stopped {
			return
		}
		stopped = true
		close(done)
		cancelLeaks()
		cancelQueries()
	}
}

func (o *ownerBox) Chart(window, step time.Duration) timeseries.Snapshot {
	b := o.box()
	snap := b.leaks.Series(window, step)
	if b.queries != nil {
		snap = withNames(snap, b.queries.Series(window, step))
	}
	// "none" is never a drop.
	if i := slices.Index(snap.Categories, "none"); i >= 0 {
		snap.Categories = slices.Delete(snap.Categories, i, i+1)
		for k := range snap.Counts {
			snap.Counts[k] = slices.Delete(snap.Counts[k], i, i+1)
		}
	}
	return snap
}

// withNames adds the names the resolver refused (q, per class) to a as one
// kind, "dns"; both cover the same buckets.
func withNames(a, q timeseries.Snapshot) timeseries.Snapshot {
	if len(a.Counts) != len(q.Counts) {
		return a
	}
	a.Categories = append(a.Categories, "dns")
	for i := range a.Counts {
		var n uint64
		for _, c := range q.Counts[i] {
			n += c
		}
		a.Counts[i] = append(a.Counts[i], n)
	}
	return a
}

func (o *ownerBox) WritePcap(w io.Writer) error { return o.box().leaks.WritePcap(w) }

func (o *ownerBox) Settings() ui.Settings {
	b := o.box()
	cfg := b.config()
	s := ui.Settings{BoxName: b.setup.BoxName(), LANAddress: cfg.LAN.Address.String(), LeaseTime: cfg.DHCP.LeaseTime.String()}
	for _, r := range cfg.DHCP.Reservations {
		s.Reservations = append(s.Reservations, ui.Reservation{MAC: r.MAC, IP: r.Address.String()})
	}
	return s
}

// ApplySettings turns the settings page into a config, validates it like the
// config file, applies it, and keeps it in the state directory so it survives a
// restart.
func (o *ownerBox) ApplySettings(s ui.Settings) error {
	b := o.box()
	cur := b.config()
	next := cur
	addr, err := netip.ParsePrefix(s.LANAddress)
	if err != nil {
		return &ui.FieldError{Field: "lan_address", Message: "Write an address with its prefix length, such as 10.201.86.1/24."}
	}
	lease, err := time.ParseDuration(s.LeaseTime)
	if err != nil {
		return &ui.FieldError{Field: "lease_time", Message: "Write a duration such as 12h, 90m or 1h30m."}
	}
	moving := addr != cur.LAN.Address
	if moving {
		next = onLAN(next, addr)
	}
	next.DHCP.LeaseTime = lease
	next.DHCP.Reservations = nil
	for i, r := range s.Reservations {
		ip, err := netip.ParseAddr(r.IP)
		if err != nil {
			return &ui.FieldError{Field: "reservations", Message: fmt.Sprintf("Reservation %d: %q is not an IP address.", i+1, r.IP)}
		}
		next.DHCP.Reservations = append(next.DHCP.Reservations, dhcp.Reservation{MAC: r.MAC, Address: ip})
	}
	if err := next.Validate(); err != nil {
		return &ui.FieldError{Field: fieldOf(err), Message: err.Error()}
	}
	if moving {
		// The page that asked is served on the address about to go: it gets
		// its answer first, and the move follows.
		if err := b.saveOverrides(next); err != nil {
			return fmt.Errorf("keeping the settings: %w", err)
		}
		b.owner(audit.KindAdmin, "change settings", "", settingsChange(o.Settings(), s))
		if s.BoxName != b.setup.BoxName() {
			b.setBoxName(s.BoxName)
		}
		go func() {
			time.Sleep(moveAfter)
			if err := b.Reconfig(next); err != nil {
				b.log.Error("the box stays at its old address", "address", cur.LAN.Address.String(), "err", err)
				if err := b.saveOverrides(b.config()); err != nil {
					b.log.Error("keeping the settings", "err", err)
				}
			}
		}()
		return nil
	}
	if err := b.Reconfig(next); err != nil {
		return &ui.FieldError{Field: fieldOf(err), Message: err.Error()}
	}
	if err := b.saveOverrides(next); err != nil {
		return fmt.Errorf("keeping the settings: %w", err)
	}
	b.owner(audit.KindAdmin, "change settings", "", settingsChange(o.Settings(), s))
	if s.BoxName != b.setup.BoxName() {
		b.setBoxName(s.BoxName)
	}
	return nil
}

// settingsChange says what the settings page changed.
func settingsChange(old, next ui.Settings) string {
	var d []string
	if old.BoxName != next.BoxName {
		d = append(d, fmt.Sprintf("box name %q → %q", old.BoxName, next.BoxName))
	}
	if old.LANAddress != next.LANAddress {
		d = append(d, fmt.Sprintf("LAN address %s → %s", old.LANAddress, next.LANAddress))
	}
	if old.LeaseTime != next.LeaseTime {
		d = append(d, fmt.Sprintf("lease time %s → %s", old.LeaseTime, next.LeaseTime))
	}
	if !slices.Equal(old.Reservations, next.Reservations) {
		d = append(d, fmt.Sprintf("%d address reservations", len(next.Reservations)))
	}
	if len(d) == 0 {
		return "nothing changed"
	}
	return strings.Join(d, "; ")
}

// fieldOf guesses the settings-page field a config error is about.
func fieldOf(err error) string {
	m := err.Error()
	switch {
	case strings.Contains(m, "reservation"):
		return "reservations"
	case strings.Contains(m, "lease_time"):
		return "lease_time"
	case strings.Contains(m, "lan."), strings.Contains(m, "pool"):
		return "lan_address"
	}
	return "form"
}

// Reboot restarts the box's software: it comes back locked, as after a power cut.
func (o *ownerBox) Reboot() error {
	b := o.box()
	b.log.Info("restarting at the owner's request")
	b.owner(audit.KindAdmin, "restart the box", "", "")
	select {
	case b.restart <- struct{}{}:
	default:
	}
	return nil
}

// FactoryReset erases what the box keeps for its owner and returns it to first
// boot: the vault (keys, secrets), setup state, the owner's settings, the logs of
// what was stopped.
func (o *ownerBox) FactoryReset() error {
	b := o.box()
	b.log.Warn("factory reset: erasing the owner's data")
	b.owner(audit.KindAdmin, "factory reset", "", "the box's data, keys and this log are erased")
	var errs []error
	if b.audit != nil {
		if err := b.audit.Wipe(); err != nil {
			errs = append(errs, err)
		}
	}
	if err := b.vault.Wipe(); err != nil {
		errs = append(errs, fmt.Errorf("erasing the vault: %w", err))
	}
	if err := b.setup.Reset(); err != nil {
		errs = append(errs, err)
	}
	if err := os.Remove(b.overridesPath()); err != nil && !errors.Is(err, os.ErrNotExist) {
		errs = append(errs, err)
	}
	b.leaks.Reset()
	if b.queries != nil {
		b.queries.Reset()
	}
	b.setBoxName("")
	// On a board, init then wipes the data partition and restarts the box.
	if err := b.boardFactoryReset(); err != nil {
		errs = append(errs, fmt.Errorf("asking init to wipe the data partition: %w", err))
	}
	return errors.Join(errs...)
}

// Unlocked: the rooms that run on keys kept in the vault start (the
// lifecycle's rooms: the VPN, the team mesh, the apps).
func (o *ownerBox) Unlocked() {
	b := o.box()
	b.log.Info("vault unlocked")
	b.life.Unlocked() // the audit log among the sealed rooms: it can sign now
	b.owner(audit.KindLock, "unlock", "", "")
}

// Locked: what runs on keys kept in the vault stops, as after a restart.
func (o *ownerBox) Locked() {
	b := o.box()
	b.log.Info("vault locked")
	b.owner(audit.KindLock, "lock", "", "")
	b.life.Locked()
}

func (o *ownerBox) SetupDone() {
	b := o.box()
	b.setBoxName(b.setup.BoxName())
	b.owner(audit.KindAdmin, "finish setup", b.setup.BoxName(), "")
	if b.mesh != nil && b.meshNode() != nil {
		// The node joined during setup without rewriting a policy already in
		// place (see members.Deps.SettingUp): now this box's team is the team.
		go func() {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			if err := b.mesh.Members().ApplyPolicy(ctx); err != nil {
				b.log.Warn("the team's policy after setup", "err", err)
			}
		}()
	}
}

// Renamed: the owner named the box in the setup wizard; it answers to the name
// from then on (the HTTPS certificate setup makes must cover it).
func (o *ownerBox) Renamed() { b := o.box(); b.setBoxName(b.setup.BoxName()) }

// setBoxName gives the box's DNS name the owner's choice ("" for the default).
func (b *Box) setBoxName(name string) {
	b.mu.Lock()
	b.boxName = name
	b.mu.Unlock()
	d := b.dns.Load()
	if d == nil {
		return
	}
	if err := d.Reconfig(b.dnsConfig(b.config())); err != nil {
		b.log.Warn("renaming the box in DNS", "name", name, "err", err)
	}
	if b.ui != nil {
		// The owner's pages' certificate names the box by its new name.
		if err := b.ui.RenewCert(); err != nil {
			b.log.Warn("renewing the UI certificate for the box's new name", "err", err)
		}
	}
	if b.apps != nil {
		b.apps.Refresh()
	}
}

// dnsConfig is cfg's [dns] section with the owner's name for the box laid over
// the config file's.
func (b *Box) dnsConfig(cfg Config) dns.Config {
	b.mu.Lock()
	name := b.boxName
	b.mu.Unlock()
	c := cfg.DNS
	if name == "" {
		return c
	}
	c.Name = name
	// A copy: the config in force shares this slice. The new name cannot also
	// be an alias (the DNS room refuses that), and the old default name keeps
	// working.
	c.Aliases = slices.DeleteFunc(slices.Clone(c.Aliases), func(a string) bool { return strings.EqualFold(a, name) })
	if !strings.EqualFold(name, "redoubt") && !slices.Contains(c.Aliases, "redoubt") {
		c.Aliases = append(c.Aliases, "redoubt")
	}
	return c
}

// consoleOwner is what the local API (the box's console) does for the owner.
type consoleOwner Box

func (c *consoleOwner) box() *Box { return (*Box)(c) }

func (c *consoleOwner) State() localapi.OwnerState {
	b := c.box()
	return localapi.OwnerState{SetupDone: b.setup.Done(), Locked: b.vault.Locked(), BoxName: b.setup.BoxName()}
}

func (c *consoleOwner) SetupCode() string { return c.box().setup.Code() }

func (c *consoleOwner) Unlock(passphrase []byte) error {
	b := c.box()
	if !b.vault.Initialized() {
		return errors.New("the box has no owner yet: finish setup in the browser first")
	}
	was := b.vault.Locked()
	if err := b.vault.Unlock(passphrase); err != nil {
		b.record(audit.Event{Kind: audit.KindLock, Action: "unlock refused", Actor: audit.ActorOwner, Detail: err.Error() + " (console)"})
		return err
	}
	if was {
		(*ownerBox)(b).Unlocked()
	}
	return nil
}

func (c *consoleOwner) Lock() error {
	b := c.box()
	b.vault.Lock()
	if b.ui != nil {
		b.ui.SignOutAll()
	}
	(*ownerBox)(b).Locked()
	return nil
}
