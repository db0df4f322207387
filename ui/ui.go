// Package ui serves the owner's web pages on the box's LAN address: the first-boot
// setup wizard, the unlock page of a locked box, and the dashboard and settings of a
// running one. Pages are rendered on the box from Go templates with every asset
// embedded; the small scripts only keep the dashboard live and the passphrase meter
// honest. Nothing is loaded from anywhere but the box.
//
// The admin side answers only on the LAN port (the daemon mounts it there and
// nowhere else), only to the box's own names and address (a DNS-rebinding
// defence), only over HTTPS once setup is done, and only to a signed-in browser:
// SameSite=Strict, HttpOnly, Secure cookies, a CSRF token on every change, an idle
// timeout. The daemon builds a UI from Deps and serves Handler on ports 80 and 443.
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
	Stopped               uint64
	Owner                 bool
}

// Stopped is one aggregated thing the box stopped: a connection attempt or a DNS
// question.
type Stopped struct {
	Source      string    `json:"source"`   // "connection" or "dns"
	Category    string    `json:"category"` // drop kind or name class
	Device      string    `json:"device"`
	What        string    `json:"what"`
	Destination string    `json:"destination"`
	Name        string    `json:"name"`
	Count       uint64    `json:"count"`
	First       time.Time `json:"first"`
	Last        time.Time `json:"last"`
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
	// Unlocked, Locked and SetupDone tell the rest of the box what changed.
	Unlocked()
	Locked()
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

// Field is one input of a Step.
type Field struct {
	Name, Label, Help string
	Type              string // "text", "textarea", "password", "url", "checkbox"
	Placeholder       string
	Optional          bool
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
	// Updates installs uploaded updates; nil on a box not started from a
	// Redoubt image.
	Updates Updates
	Steps   []Step
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
	"ago":   ago,
	"when":  func(t time.Time) string { return t.Local().Format("2 Jan 15:04") },
	"clock": func(t time.Time) string { return t.Local().Format("15:04:05") },
	"lower": strings.ToLower,
	"add":   func(a, b int) int { return a + b },
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

// parsePages builds each page from the layout and its own template.
func (u *UI) parsePages() (map[string]*template.Template, error) {
	names, err := fs.Glob(u.files, "pages/*.html")
	if err != nil || len(names) == 0 {
		return nil, fmt.Errorf("ui: no page templates (%v)", err)
	}
	pages := make(map[string]*template.Template)
	for _, n := range names {
		t, err := template.New("layout.html").Funcs(funcs).ParseFS(u.files, "layout.html", n)
		if err != nil {
			return nil, fmt.Errorf("ui: parsing %s: %w", n, err)
		}
		pages[strings.TrimSuffix(filepathBase(n), ".html")] = t
	}
	return pages, nil
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

// canonicalHost is the name pages link to: the box's first name, else its address.
func (u *UI) canonicalHost() string {
	if n := u.d.Names(); len(n) > 0 {
		return n[0]
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
}

// SignOutAll ends every session (the box was locked from the local API).
func (u *UI) SignOutAll() { u.sess.endAll() }
