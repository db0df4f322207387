// Package host runs the box's apps (the contract is package apps). It owns
// everything between an app and the networks:
//
//   - the listeners: on the LAN port (datapath/lan), every app's origin is its
//     own name on tcp/443 (files.kestrel.home.arpa, named in the box's DNS),
//     split from the owner's pages by the TLS server name; on the tailnet node
//     (vpn/tailnet) it is a port of its own on the box's tailnet address
//     (https://kestrel.team.example:8443), since members' MagicDNS names only
//     the node; on the box itself, a Unix socket. A LAN move or a node restart
//     re-mounts them; apps never see it.
//   - HTTPS for each origin, from the box's CA (ui/pki).
//   - who is calling (apps.CallerFrom): on the tailnet the member behind the
//     sending device (tsnet's WhoIs, matched with vpn/members' records); on the
//     LAN the owner, by a session the owner's pages hand over (a one-time
//     signed link, no password), or by an app password the owner made for a
//     native client (WebDAV); on the box, the owner.
//   - the app's storage (apps/store), its key in the vault, wiped on lock and
//     restart when the app's persistence is off.
//   - starting and stopping: on unlock (autostart), the owner's enable and
//     disable, option changes, lock; a removed member's connections closed at
//     once.
//   - external apps: programs with their own files, run in a bubblewrap
//     sandbox with no network, speaking HTTP to the host over a Unix socket.
//
// The host is a sealed room (vault.Sealed). Only the daemon imports it; the
// owner's pages and the local API see it through their own interfaces.
package host

import (
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/redoubt/redoubt/apps"
	"github.com/redoubt/redoubt/apps/store"
	"github.com/redoubt/redoubt/audit"
	"github.com/redoubt/redoubt/vault"
	"github.com/redoubt/redoubt/vpn/egress"
)

// Config is the [apps] section of the config file.
type Config struct {
	// ExternalDir holds external apps, each in a directory named by its ID
	// with its manifest.toml and its program ("" for none).
	ExternalDir string `toml:"external_dir"`
	// Bwrap is the bubblewrap program that isolates external apps (default:
	// bwrap on PATH).
	Bwrap string `toml:"bwrap"`
}

// Validate names the bad field.
func (c Config) Validate() error {
	if c.ExternalDir != "" && !filepath.IsAbs(c.ExternalDir) {
		return fmt.Errorf("apps.external_dir %q: an absolute path", c.ExternalDir)
	}
	return nil
}

// Zone is where apps get their LAN names: the box's DNS zone
// (dns/plugin/localnames.Zone).
type Zone interface {
	Set(source, name string, addrs []netip.Addr) error
	Clear(source string)
}

// Directory is the team's members as the host needs them.
type Directory interface {
	// Members returns the members: their stable ID, name, and the
	// coordination server's user ID their devices carry.
	Members() ([]DirectoryEntry, error)
}

// DirectoryEntry is one member.
type DirectoryEntry struct {
	ID     string
	Name   string
	UserID uint64
}

// Deps are what the host needs from the rest of the box.
type Deps struct {
	Logger *slog.Logger
	// Audit receives the owner's changes to the apps (enabled, disabled,
	// options), for the box's audit log. Optional.
	Audit audit.Recorder
	// Vault keeps the apps' keys, options and passwords (bucket "apps"), and
	// the CA that issues their certificates.
	Vault vault.Store
	// Builtin are the apps compiled in (apps/builtin).
	Builtin []apps.App
	// StateDir holds the apps' data, one directory each, and their LAN
	// certificates.
	StateDir string
	// RunDir holds the sockets: <id>.sock for apps exposed on the box, and
	// the external apps' sockets.
	RunDir string
	// BoxNames are the box's names in the LAN's domain, the first the one to
	// show ("kestrel", "redoubt"); an app's LAN names are <id>.<name>.
	BoxNames func() []string
	// Domain is the LAN's DNS domain ("home.arpa").
	Domain func() string
	// AdminURL is the owner's pages ("https://kestrel.home.arpa"): a LAN
	// browser without a session is sent there to open the app.
	AdminURL func() string
	// Names returns the LAN's DNS zone now (it is replaced when the LAN
	// moves); nil for none.
	Names func() Zone
	// Directory lists the team's members.
	Directory Directory
	// Egress is the box's way out, for apps that declare egress.
	Egress egress.Dialer
	// Now is the clock (default time.Now).
	Now func() time.Time
}

// Where the host keeps its state in the vault.
const (
	vaultBucket = "apps"
	dnsSource   = "apps"
)

func keyName(id string) string       { return "app/" + id + "/key" }
func optionsName(id string) string   { return "app/" + id + "/options" }
func passwordsName(id string) string { return "app/" + id + "/passwords" }

// Host runs the apps.
type Host struct {
	cfg  Config
	d    Deps
	log  *slog.Logger
	apps map[string]*instance
	ids  []string // sorted

	net  *networks
	auth *auth

	mu       sync.Mutex
	unlocked bool
	members  memberCache
}

// New loads the built-in apps and the external ones, checks that their IDs
// and ports do not clash, and returns a locked host.
func New(cfg Config, d Deps) (*Host, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if d.Logger == nil {
		d.Logger = slog.New(slog.DiscardHandler)
	}
	if d.Now == nil {
		d.Now = time.Now
	}
	if d.Vault == nil || d.StateDir == "" || d.BoxNames == nil || d.Domain == nil {
		return nil, errors.New("apps host: Deps.Vault, StateDir, BoxNames and Domain are required")
	}
	if d.Egress == nil {
		d.Egress = egress.Closed{Reason: "the box has no VPN"}
	}
	if d.AdminURL == nil {
		d.AdminURL = func() string { return "" }
	}
	h := &Host{cfg: cfg, d: d, log: d.Logger, apps: map[string]*instance{}}
	h.auth = newAuth(h)
	for _, a := range d.Builtin {
		m := a.Manifest()
		if err := m.Validate(); err != nil {
			return nil, fmt.Errorf("built-in app %q: %w", m.ID, err)
		}
		if err := h.add(&instance{h: h, m: m, builtin: a}); err != nil {
			return nil, err
		}
	}
	if cfg.ExternalDir != "" {
		ext, err := loadExternal(cfg.ExternalDir)
		if err != nil {
			return nil, err
		}
		for _, e := range ext {
			if err := h.add(&instance{h: h, m: e.m, external: e}); err != nil {
				return nil, err
			}
		}
	}
	h.net = newNetworks(h)
	return h, nil
}

// add registers an app, refusing a clash of IDs or ports.
func (h *Host) add(in *instance) error {
	id := in.m.ID
	if _, ok := h.apps[id]; ok {
		return fmt.Errorf("two apps have the id %q", id)
	}
	for _, other := range h.apps {
		for _, l := range in.m.Listeners {
			for _, o := range other.m.Listeners {
				if l.Proto == o.Proto && l.Port == o.Port {
					return fmt.Errorf("apps %q and %q both listen on %s/%d", other.m.ID, id, l.Proto, l.Port)
				}
			}
		}
	}
	in.log = h.log.With("app", id)
	in.state = stateStopped
	h.apps[id] = in
	h.ids = append(h.ids, id)
	slices.Sort(h.ids)
	return nil
}

func (h *Host) app(id string) (*instance, error) {
	in, ok := h.apps[id]
	if !ok {
		return nil, fmt.Errorf("%w %q: the box has %s", apps.ErrNoApp, id, strings.Join(h.ids, ", "))
	}
	return in, nil
}

// Unlocked starts the apps whose autostart option is on, in the background
// (vault.Sealed).
func (h *Host) Unlocked() {
	h.mu.Lock()
	h.unlocked = true
	h.mu.Unlock()
	h.net.renewCerts()
	for _, id := range h.ids {
		in := h.apps[id]
		opts, err := in.options()
		if err != nil {
			in.log.Warn("reading the app's options", "err", err)
			continue
		}
		if !opts.Bool(apps.OptAutostart) {
			continue
		}
		go func() {
			if err := in.start(); err != nil {
				in.log.Warn("the app did not start", "err", err)
			}
		}()
	}
}

// Locked stops every app, ends every session, and closes every connection
// to an app (vault.Sealed). Apps whose persistence is off lose their data.
func (h *Host) Locked() {
	h.mu.Lock()
	h.unlocked = false
	h.mu.Unlock()
	var wg sync.WaitGroup
	for _, in := range h.apps {
		wg.Add(1)
		go func() {
			defer wg.Done()
			in.stop(apps.ErrLocked, "the box is locked")
		}()
	}
	wg.Wait()
	h.auth.forgetAll()
	h.net.closeConns(func(*connInfo) bool { return true })
	h.mu.Lock()
	h.members = memberCache{}
	h.mu.Unlock()
}

// Close stops everything (the box is stopping).
func (h *Host) Close() {
	h.Locked()
	h.net.close()
}

func (h *Host) isUnlocked() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.unlocked
}

// errLocked is what commands say while the box is locked.
var errLocked = fmt.Errorf("%w: unlock it first", apps.ErrLocked)

// Enable starts an app now (autostart decides whether it starts again after
// the next unlock).
func (h *Host) Enable(id string) error {
	in, err := h.app(id)
	if err != nil {
		return err
	}
	if !h.isUnlocked() {
		return errLocked
	}
	if err := in.start(); err != nil {
		return err
	}
	h.record("enable app", id, "")
	return nil
}

// record adds the owner's change to the audit log.
func (h *Host) record(action, id, detail string) {
	if h.d.Audit != nil {
		h.d.Audit.Record(audit.Event{Kind: audit.KindApp, Action: action, Actor: audit.ActorOwner, Subject: id, Detail: detail})
	}
}

// Disable stops an app now.
func (h *Host) Disable(id string) error {
	in, err := h.app(id)
	if err != nil {
		return err
	}
	in.stop(apps.ErrStopped, "stopped by the owner")
	h.record("disable app", id, "")
	return nil
}

// Option returns one of an app's option values.
func (h *Host) Option(id, name string) (string, error) {
	in, err := h.app(id)
	if err != nil {
		return "", err
	}
	if _, ok := in.m.Option(name); !ok {
		_, err := apps.NewOptions(in.m, nil).With(name, "")
		return "", err
	}
	if !h.isUnlocked() {
		return "", errLocked
	}
	opts, err := in.options()
	if err != nil {
		return "", err
	}
	v, _ := opts.Get(name)
	return v, nil
}

// SetOption checks and keeps an option's value, and applies it: live options
// at once, others by restarting the app if it runs. Turning persistence off
// erases the app's kept data when it next starts.
func (h *Host) SetOption(id, name, value string) (string, error) {
	in, err := h.app(id)
	if err != nil {
		return "", err
	}
	if !h.isUnlocked() {
		return "", errLocked
	}
	in.optMu.Lock()
	defer in.optMu.Unlock()
	cur, err := in.options()
	if err != nil {
		return "", err
	}
	next, err := cur.With(name, value)
	if err != nil {
		return "", err
	}
	v, _ := next.Get(name)
	if slices.Equal(cur.Changed(next), nil) {
		return v, nil
	}
	set := next.Values()
	raw, _ := json.Marshal(set)
	if err := h.d.Vault.Put(vaultBucket, optionsName(id), raw); err != nil {
		return "", fmt.Errorf("keeping %s's options: %w", id, err)
	}
	in.log.Info("option changed", "option", name, "value", v)
	shown := v
	if l := strings.ToLower(name); strings.Contains(l, "password") || strings.Contains(l, "secret") || strings.Contains(l, "key") {
		shown = "(not shown)"
	}
	h.record("change app option", id, name+" = "+shown)
	in.optionsChanged(cur, next)
	return v, nil
}

// newKey makes a store key.
func newKey() []byte {
	k := make([]byte, store.KeySize)
	rand.Read(k)
	return k
}

// dataDir is where an app keeps its data when its persistence is on.
func (h *Host) dataDir(id string) string { return filepath.Join(h.d.StateDir, id) }

// ephemeralDir is where an app keeps its data while its persistence is off:
// erased when it starts and stops, and sealed with a key that exists only in
// memory.
func (h *Host) ephemeralDir(id string) string { return filepath.Join(h.d.StateDir, id+".ephemeral") }

// removeAll erases a directory of app data.
func removeAll(dir string) error {
	if err := os.RemoveAll(dir); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("erasing %s: %w", dir, err)
	}
	return nil
}
