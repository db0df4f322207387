// Package ui serves the owner's web pages on the box's LAN address: the first-boot
// setup wizard, the unlock page of a locked box, and the dashboard, the Stopped,
// Devices, Team and Apps pages, the settings, the certificate page and the leak
// self-test of a running one. Pages are rendered on the box from Go templates with
// every asset embedded; the small script keeps the pages live and runs the
// self-test's probes. Nothing is loaded from anywhere but the box.
//
// The admin side answers only on the LAN port (the daemon mounts it there and
// nowhere else), only to the box's own names and address (a DNS-rebinding
// defence), only over HTTPS once setup is done, and only to a signed-in browser:
// SameSite=Strict, HttpOnly, Secure cookies, a CSRF token on every change, an idle
// timeout. After setup a plain-HTTP visit finds the certificate page (what the
// box's certificate is, per-system steps, its fingerprint), which goes on to
// HTTPS by itself once the browser trusts the box. The daemon builds a UI from
// Deps and serves Handler on ports 80 and 443.
//
// # Words
//
// What the box stopped is said in plain words (words.go): each kind of the leak
// log and "dns" for refused names has a label, an explanation and a help entry
// (/help#<kind>); every time is written one way, with the zone; counts come from
// the Box's Tally, so every page shows the same numbers. The live feed sends rows
// the server rendered with the pages' own template.
//
// # Adding a setup step or a settings section
//
// Another room (the VPN, the team mesh, apps) adds to the wizard and the
// settings page without either changing:
//
//   - a Step (ID, Title, Intro, Fields, Submit, Optional) in Deps.Steps becomes a
//     wizard step after the box's name, posted to /setup/step/<ID>;
//   - a Section (ID, Title, Intro, State, Fields, Actions, Submit) in
//     Deps.Sections becomes a part of the settings page at /settings#<ID>,
//     posted to /settings/<ID>, with its state (and what to do when it is not
//     well) at the top, its fields (a textarea may take an uploaded file:
//     Field.Upload), its buttons (an Action with Confirm sits apart and needs a
//     tick), its notice or error shown in place, and the owner's answers kept
//     (never a password's) when it refuses them.
//
// Whatever a Step asks must be reachable later in a Section: the daemon gives
// both for the VPN and the team mesh (daemon/sections.go). The apps' step
// (daemon/apps.go; a checkbox is ticked when its Value is "on") is the
// exception: the Apps page, which has its own entry in the menu, changes the
// same choices. Section IDs must not
// be "passphrase" or "strength" (the settings page's own forms).
//
// # The leak self-test
//
// /selftest runs from the laptop's browser over plain HTTP (a secure page may
// not make plain-HTTP requests), open to any device on the LAN port for its own
// traffic: the page asks for a run (ui/selftest makes the plan), sends each
// probe, reports what it saw, and shows the box's verdicts with the leak log's
// and query log's entries for that device since the run began. `redoubt
// selftest` runs the same from the laptop's own sockets.
package ui

import (
	"crypto/tls"
	"embed"
	"errors"
	"fmt"
	"html/template"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/redoubt/redoubt/internal/timeseries"
	"github.com/redoubt/redoubt/ui/pki"
	"github.com/redoubt/redoubt/ui/setup"
	"github.com/redoubt/redoubt/vault"
)

//go:embed assets
var embedded embed.FS

// Assets are the UI's embedded files; the daemon may pass os.DirFS to serve them
// from disk while developing.
func Assets() fs.FS {
	sub, _ := fs.Sub(embedded, "assets")
	return sub
}

// Status is the box at a glance.
type Status struct {
	Version string
	Started time.Time
	BoxName string
	LAN     ServiceState
	WAN     ServiceState
	VPN     ServiceState
	Mesh    ServiceState
}

// ServiceState is one part of the box: "up", "down", "not configured" or "off",
// and why, in plain words.
type ServiceState struct {
	State  string
	Detail string
}

// Device is a device on the LAN.
type Device struct {
	Name, MAC, IP, Vendor string
	FirstSeen, Expires    time.Time
	Owner                 bool
}

// Stopped is one aggregated thing the box stopped: connection attempts or DNS
// questions from one device to one place.
type Stopped struct {
	Source string `json:"source"` // "connection" or "dns"
	// Category is the kind: the leak log's ("egress", "discovery", …), or "dns"
	// for names the box refused to look up.
	Category string `json:"category"`
	// Class is the name's class from the query log's table ("os-telemetry",
	// "browser", "app-update", "captive-probe", "local", "unknown"), and Who
	// who sends it when the table says; for connections that revealed a name
	// too.
	Class string `json:"class,omitempty"`
	Who   string `json:"who,omitempty"`
	// Device is the device's name (from its lease), else its address; MAC and
	// IP are its addresses.
	Device string `json:"device"`
	MAC    string `json:"mac,omitempty"`
	IP     string `json:"ip,omitempty"`
	// Proto, App, Dst and Port say where a connection went ("tcp", "tls",
	// "203.0.113.10", 443); Types, what a lookup asked (A, AAAA).
	Proto string   `json:"proto,omitempty"`
	App   string   `json:"app,omitempty"`
	Dst   string   `json:"dst,omitempty"`
	Port  uint16   `json:"port,omitempty"`
	Types []string `json:"types,omitempty"`
	// Name is the name revealed or looked up.
	Name  string    `json:"name,omitempty"`
	Count uint64    `json:"count"`
	First time.Time `json:"first"`
	Last  time.Time `json:"last"`
}

// Tally is what the box stopped since it started, counted (never dropped, unlike
// the list of entries, which is bounded). Every page's numbers come from it.
type Tally struct {
	Since time.Time
	// ByKind counts every kind (Stopped.Category), link chatter too.
	ByKind map[string]uint64
	// Devices are the counts per device.
	Devices []DeviceTally
	// Evicted counts entries that left the list for newer ones.
	Evicted uint64
}

// DeviceTally is one device's counts.
type DeviceTally struct {
	MAC, IP string
	ByKind  map[string]uint64
}

// Settings are what the owner changes on the settings page.
type Settings struct {
	BoxName      string
	LANAddress   string
	LeaseTime    string
	Reservations []Reservation
}

// Reservation keeps an address for a device.
type Reservation struct {
	MAC, IP string
}

// FieldError is a problem with one setting, shown next to it.
type FieldError struct {
	Field   string
	Message string
}

func (e *FieldError) Error() string { return e.Field + ": " + e.Message }

// Box is the rest of the box as the UI sees it; the daemon implements it.
type Box interface {
	Status() Status
	Devices() []Device
	Stopped() []Stopped
	Tally() Tally
	SubscribeStopped(buf int) (<-chan Stopped, func())
	Chart(window, step time.Duration) timeseries.Snapshot
	WritePcap(w io.Writer) error
	Settings() Settings
	// ApplySettings validates and applies settings without a restart; a
	// *FieldError names the bad field.
	ApplySettings(Settings) error
	Reboot() error
	// FactoryReset erases the owner's data and keys and returns the box to
	// first boot.
	FactoryReset() error
	// Unlocked, Locked, Renamed (the box's name in setup changed) and
	// SetupDone tell the rest of the box what changed.
	Unlocked()
	Locked()
	Renamed()
	SetupDone()
}

// Vault is what the UI does with the sealed store.
type Vault interface {
	vault.Store
	Initialized() bool
	Locked() bool
	Init(passphrase []byte, p vault.Params) error
	Unlock(passphrase []byte) error
	Lock()
	ChangePassphrase(old, next []byte, p vault.Params) error
}

// Step is a step that another room adds to the setup wizard (the VPN, the team
// mesh, apps) without the wizard's core changing.
type Step interface {
	ID() string
	Title() string
	// Intro says in plain words what the step is for.
	Intro() string
	Fields() []Field
	// Submit applies the owner's answers; a *FieldError names the bad field.
	Submit(values map[string]string) error
	// Optional steps can be skipped and done later in settings.
	Optional() bool
}

// Field is one input of a Step or a Section.
type Field struct {
	Name, Label, Help string
	Type              string // "text", "textarea", "password", "url", "checkbox"
	Placeholder       string
	Optional          bool
	// Value is the current value, shown in the field (never a secret's); a
	// checkbox is ticked when it is "on".
	Value string
	// Upload offers a file beside a textarea: the file's text, when one is
	// chosen, is used instead of the text typed.
	Upload bool
}

// Deps are what the UI is built from.
type Deps struct {
	Logger  *slog.Logger
	Version string
	Setup   *setup.Setup
	Vault   Vault
	Box     Box
	// Team manages the team mesh; nil on a box without one.
	Team Team
	// Backups manages backups and the restore path of the wizard; nil on a
	// box without them.
	Backups Backups
	// Apps manages the apps; nil on a box without them.
	Apps Apps
	// Updates installs uploaded updates; nil on a box not started from a
	// Redoubt image.
	Updates Updates
	// Steps are the setup wizard's steps from other rooms, after the box's
	// name; Sections are the settings page's sections from other rooms. A
	// room's choice made in the wizard must be reachable later: in its
	// section, or on its own page (the apps').
	Steps    []Step
	Sections []Section
	// StateDir holds the UI's server certificate and the public CA certificate.
	StateDir string
	// Addr returns the box's LAN address; Names the names it answers to
	// (its own under the local domain).
	Addr  func() netip.Addr
	Names func() []string
	// KDF returns the Argon2id parameters for a new passphrase (vault.Calibrate
	// on a real box; cheap ones in tests).
	KDF func() vault.Params
	// Assets overrides the embedded files (a directory while developing).
	Assets fs.FS
	Now    func() time.Time
}

// UI is the owner's web interface.
type UI struct {
	d     Deps
	sess  *sessions
	pages map[string]*template.Template
	files fs.FS
	dev   bool // assets from disk: re-read templates on every page

	mu        sync.Mutex
	setupCSRF string
	cert      *tls.Certificate
	bundles   bundles
	runs      runs // the leak self-test's
}

// New builds the UI.
func New(d Deps) (*UI, error) {
	if d.Setup == nil || d.Vault == nil || d.Box == nil || d.Addr == nil {
		return nil, errors.New("ui: Deps.Setup, Vault, Box and Addr are required")
	}
	if d.Logger == nil {
		d.Logger = slog.Default()
	}
	if d.Now == nil {
		d.Now = time.Now
	}
	if d.Names == nil {
		d.Names = func() []string { return nil }
	}
	if d.KDF == nil {
		d.KDF = func() vault.Params { return vault.Calibrate(750 * time.Millisecond) }
	}
	files := d.Assets
	if files == nil {
		files = Assets()
	}
	u := &UI{d: d, sess: newSessions(d.Now), files: files, dev: d.Assets != nil}
	pages, err := u.parsePages()
	if err != nil {
		return nil, err
	}
	u.pages = pages
	if c, err := u.serverFiles().Load(); err == nil {
		u.cert = c
	}
	return u, nil
}

var funcs = template.FuncMap{
	"ago":       ago,
	"when":      func(t time.Time) string { return when(t, time.Now()) },
	"iso":       func(t time.Time) string { return t.Format(time.RFC3339) },
	"lower":     strings.ToLower,
	"add":       func(a, b int) int { return a + b },
	"count":     count,
	"plural":    plural,
	"duration":  duration,
	"breakable": breakable,
	"kind":      kindOf,
	"cls":       func(s string) string { return strings.ReplaceAll(strings.ToLower(s), " ", "-") },
	"field":     fieldOf,
	"bytes":     humanBytes,
	// split cuts plain text into its paragraphs (blank lines between).
	"split": func(s string) []string { return strings.Split(strings.TrimSpace(s), "\n\n") },
}

// fieldView is a form field as the "field" template draws it.
type fieldView struct {
	Field
	Value, Error string
}

// fieldOf gives a field the owner's answer (values) or its current value, and
// its error; a password field never shows a value.
func fieldOf(f Field, values, errs map[string]string) fieldView {
	v := fieldView{Field: f, Value: f.Value, Error: errs[f.Name]}
	if x, ok := values[f.Name]; ok {
		v.Value = x
	}
	if f.Type == "password" {
		v.Value = ""
	}
	return v
}

func ago(t time.Time) string {
	if t.IsZero() {
		return "never"
	}
	d := time.Since(t)
	switch {
	case d < 0:
		d = -d
		switch {
		case d < time.Minute:
			return "in under a minute"
		case d < time.Hour:
			return fmt.Sprintf("in %d min", int(d.Minutes()))
		case d < 48*time.Hour:
			return fmt.Sprintf("in %d h", int(d.Hours()))
		}
		return fmt.Sprintf("in %d days", int(d.Hours()/24))
	case d < time.Minute:
		return "just now"
	case d < time.Hour:
		return fmt.Sprintf("%d min ago", int(d.Minutes()))
	case d < 48*time.Hour:
		return fmt.Sprintf("%d h ago", int(d.Hours()))
	}
	return fmt.Sprintf("%d days ago", int(d.Hours()/24))
}

// parsePages builds each page from the layout, the parts pages share
// (partials.html) and its own template.
func (u *UI) parsePages() (map[string]*template.Template, error) {
	names, err := fs.Glob(u.files, "pages/*.html")
	if err != nil || len(names) == 0 {
		return nil, fmt.Errorf("ui: no page templates (%v)", err)
	}
	pages := make(map[string]*template.Template)
	for _, n := range names {
		t, err := template.New("layout.html").Funcs(funcs).ParseFS(u.files, "layout.html", "partials.html", n)
		if err != nil {
			return nil, fmt.Errorf("ui: parsing %s: %w", n, err)
		}
		pages[strings.TrimSuffix(filepathBase(n), ".html")] = t
	}
	return pages, nil
}

// templates are the pages' templates: parsed once, or on every use while the
// assets come from disk.
func (u *UI) templates() map[string]*template.Template {
	if !u.dev {
		return u.pages
	}
	pages, err := u.parsePages()
	if err != nil {
		u.d.Logger.Error("parsing the pages", "err", err)
		return u.pages
	}
	return pages
}

func filepathBase(p string) string {
	if i := strings.LastIndex(p, "/"); i >= 0 {
		return p[i+1:]
	}
	return p
}

func (u *UI) serverFiles() pki.ServerFiles { return pki.ServerFiles{Dir: u.d.StateDir} }

func (u *UI) caPath() string { return filepath.Join(u.d.StateDir, "ca.pem") }

// caPEM is the box's CA certificate (public, kept outside the vault so a locked
// box can still hand it out), or nil before setup.
func (u *UI) caPEM() []byte {
	b, err := os.ReadFile(u.caPath())
	if err != nil {
		return nil
	}
	return b
}

// TLSConfig is the HTTPS server's configuration: the box's own certificate,
// modern protocols only.
func (u *UI) TLSConfig() *tls.Config {
	return &tls.Config{
		MinVersion: tls.VersionTLS12,
		GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
			u.mu.Lock()
			defer u.mu.Unlock()
			if u.cert == nil {
				return nil, errors.New("the box has no certificate until setup is done")
			}
			return u.cert, nil
		},
	}
}

// hosts lists the Host values the UI answers to: the box's address and names,
// and localhost for a port forwarded on the owner's own machine (no web page can
// make a browser send "localhost" to the box: such a request never leaves the
// machine it starts on).
func (u *UI) hosts() []string {
	return append([]string{u.d.Addr().String(), "localhost", "127.0.0.1"}, u.d.Names()...)
}

// allowedHost reports whether a request's Host is the box.
func (u *UI) allowedHost(host string) bool {
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	host = strings.TrimSuffix(strings.ToLower(host), ".")
	for _, h := range u.hosts() {
		if host == strings.ToLower(h) {
			return true
		}
	}
	return false
}

// canonicalHost is the name pages link to: the box's own name (the one the
// owner gave it, under the local domain), else its first name, else its address.
func (u *UI) canonicalHost() string {
	names := u.d.Names()
	if own := u.d.Setup.BoxName(); own != "" {
		for _, n := range names {
			if strings.HasPrefix(strings.ToLower(n), own+".") {
				return n
			}
		}
	}
	if len(names) > 0 {
		return names[0]
	}
	return u.d.Addr().String()
}

// RenewCert reissues the HTTPS certificate if the box's address or names no
// longer match it. While the box is locked the CA cannot be read: the
// certificate is renewed at the next unlock.
func (u *UI) RenewCert() error {
	if u.d.Vault.Locked() || !u.d.Setup.Done() {
		return nil
	}
	return u.ensureServerCert()
}

// ensureServerCert issues (or renews) the HTTPS certificate from the CA in the
// vault; the vault must be unlocked.
func (u *UI) ensureServerCert() error {
	addrs := []netip.Addr{u.d.Addr()}
	names := u.d.Names()
	u.mu.Lock()
	current := u.cert
	u.mu.Unlock()
	if !pki.NeedsRenewal(current, names, addrs, u.d.Now()) {
		return nil
	}
	ca, err := pki.LoadCA(u.d.Vault)
	if err != nil {
		return err
	}
	certPEM, keyPEM, err := ca.Issue(names, addrs)
	if err != nil {
		return err
	}
	if err := u.serverFiles().Save(certPEM, keyPEM); err != nil {
		return fmt.Errorf("saving the UI certificate: %w", err)
	}
	c, err := u.serverFiles().Load()
	if err != nil {
		return err
	}
	u.mu.Lock()
	u.cert = c
	u.mu.Unlock()
	return nil
}

// Reset forgets everything the UI holds for the owner: sessions, certificates.
// The daemon calls it during a factory reset.
func (u *UI) Reset() {
	u.sess.endAll()
	u.serverFiles().Remove()
	os.Remove(u.caPath())
	u.mu.Lock()
	u.cert = nil
	u.setupCSRF = ""
	u.mu.Unlock()
	u.runs.reset()
}

// SignOutAll ends every session (the box was locked from the local API).
func (u *UI) SignOutAll() { u.sess.endAll() }
