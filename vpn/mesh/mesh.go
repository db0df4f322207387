// Package mesh runs the team mesh on the box: the members' manager (always
// there, "not set up" until the owner gives Headscale's address and API key),
// the owner's mesh settings (sealed in the vault), and, while the box is
// unlocked and the mesh set up, the box's tailnet node with what follows it:
// the laptop's way to the team's devices (the LAN's relay), their names in the
// box's DNS, the WAN's direct paths when strict mode is off.
//
// It is a sealed room: it registers with the daemon's vault.Lifecycle, which
// calls Unlocked and Locked. Rooms that serve members on the node (the apps
// host) are told when it starts and stops through Deps.OnNode. Only the daemon
// imports this package.
package mesh

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/redoubt/redoubt/vault"
	"github.com/redoubt/redoubt/vpn/egress"
	"github.com/redoubt/redoubt/vpn/headscale"
	"github.com/redoubt/redoubt/vpn/members"
	"github.com/redoubt/redoubt/vpn/tailnet"
)

// Where the owner's team mesh settings are kept in the vault.
const (
	settingsBucket = "mesh"
	settingsKey    = "settings"
	// TeamSource is the DNS zone's source for team devices' names
	// (<device>.team.<domain>).
	TeamSource = "tailnet"
	teamLabel  = "team"
	// joinWait bounds starting the node (not joining: that goes on in the
	// background).
	joinWait = 45 * time.Second
)

// Config is the [mesh] section: how the box's tailnet node runs. Where the
// team's Headscale is, and the API key, the owner gives in the setup wizard or
// the settings (kept in the vault).
type Config struct {
	// Strict relays every tailnet packet through the VPN (default true): the
	// local network sees nothing but the VPN's flow. Off, WireGuard may take
	// direct paths over the WAN.
	Strict *bool `toml:"strict"`
	// Port is the UDP port for direct paths when strict is off (default 41641).
	Port uint16 `toml:"port"`
}

// StrictOn reports the effective Strict setting.
func (c Config) StrictOn() bool { return c.Strict == nil || *c.Strict }

// Settings are the owner's: the team's Headscale and its API key.
type Settings struct {
	LoginServer string `json:"login_server"`
	APIKey      string `json:"api_key"`
}

// Validate names the bad field.
func (s Settings) Validate() error {
	u, err := url.Parse(s.LoginServer)
	if err != nil || u.Host == "" || u.Scheme != "https" || u.User != nil || u.RawQuery != "" {
		return fmt.Errorf("login server %q: want the Headscale server's https:// address, such as https://headscale.example.org", s.LoginServer)
	}
	if len(s.APIKey) < 8 || len(s.APIKey) > 512 || strings.ContainsAny(s.APIKey, " \t\r\n") {
		return errors.New("API key: paste the key `headscale apikeys create` printed, on one line")
	}
	return nil
}

// Zone is where the team's devices are named: the LAN's DNS zone
// (dns/plugin/localnames.Zone).
type Zone interface {
	Set(source, name string, addrs []netip.Addr) error
	Clear(source string)
}

// Deps are what the mesh needs from the rest of the box.
type Deps struct {
	Logger *slog.Logger
	// Vault holds the settings, the node's state and the members' records.
	Vault vault.Store
	// Egress is the box's way out (the VPN's): Headscale's API and the
	// node's control and DERP connections go through it.
	Egress egress.Dialer
	// CACert returns the box's CA certificate (PEM), which the enrollment
	// scripts install.
	CACert func() ([]byte, error)
	// BoxName is the box's name, which its node takes in the tailnet.
	BoxName func() string
	// SetTeam opens the laptop's way to the team's devices through the node
	// (datapath/lan.LAN.SetTeam); a nil node closes it.
	SetTeam func(node *tailnet.Node, self netip.Addr, devices []netip.Addr) error
	// Names returns the LAN's DNS zone now (it is replaced when the LAN moves);
	// nil for none.
	Names func() Zone
	// Direct lets the node's socket take direct paths over the WAN
	// (vpn/external.VPN.SetDirect); (0, 0) closes them. Optional.
	Direct func(mark uint32, port uint16) error
	// OnNode is told when the box's node has started (the node) and when it
	// stops (nil). Optional.
	OnNode func(*tailnet.Node)
	// OnRemoved is called after a member is removed. Optional.
	OnRemoved func(members.Member)
}

// Mesh is the team mesh part of the box.
type Mesh struct {
	cfg     Config
	d       Deps
	log     *slog.Logger
	members *members.Manager
	proxy   *tailnet.Proxy

	op sync.Mutex // one start or stop of the node at a time

	mu       sync.Mutex // guards what follows
	unlocked context.Context
	lock     context.CancelFunc
	node     *tailnet.Node
	follow   context.CancelFunc
	reason   string // why the node is not running
	names    map[string][]netip.Addr
}

// New builds the members' manager and the proxy that carries tailscale's
// connections into the VPN. The node starts when the box is unlocked.
func New(cfg Config, d Deps) (*Mesh, error) {
	if d.Logger == nil {
		d.Logger = slog.New(slog.DiscardHandler)
	}
	if d.Vault == nil || d.Egress == nil || d.BoxName == nil || d.SetTeam == nil {
		return nil, errors.New("mesh: Deps.Vault, Egress, BoxName and SetTeam are required")
	}
	m := &Mesh{cfg: cfg, d: d, log: d.Logger, reason: "the box is locked", names: map[string][]netip.Addr{}}
	mem, err := members.New(members.Config{}, members.Deps{
		Store:   d.Vault,
		Logger:  d.Logger,
		CACert:  d.CACert,
		AppsURL: m.appsURL,
		OnRemoved: func(mem members.Member) {
			m.log.Info("member removed; their devices can no longer reach the box", "member", mem.Name, "devices", len(mem.Devices))
			if d.OnRemoved != nil {
				d.OnRemoved(mem)
			}
		},
		DeviceOS: m.deviceOS,
	})
	if err != nil {
		return nil, err
	}
	p, err := tailnet.StartProxy(d.Egress, d.Logger)
	if err != nil {
		return nil, err
	}
	if err := p.Install(); err != nil {
		p.Close()
		return nil, fmt.Errorf("routing tailscale through the VPN: %w", err)
	}
	m.members, m.proxy = mem, p
	mem.Start() // Headscale's status, checked with backoff once the mesh is set up
	return m, nil
}

// Members is the members' manager.
func (m *Mesh) Members() *members.Manager { return m.members }

// Config is the [mesh] section in force.
func (m *Mesh) Config() Config { return m.cfg }

// Node is the box's tailnet node, or nil while it is not running.
func (m *Mesh) Node() *tailnet.Node {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.node
}

// appsURL is the members' page on the tailnet, which the enrollment scripts
// open.
func (m *Mesh) appsURL() string {
	if n := m.Node(); n != nil {
		if st := n.Status(); st.Name != "" {
			return "https://" + st.Name + "/"
		}
	}
	return ""
}

// deviceOS is a peer's system from the tailnet's peer list.
func (m *Mesh) deviceOS(nodeKey string) string {
	n := m.Node()
	if n == nil {
		return ""
	}
	for _, p := range n.Peers() {
		if p.Key == nodeKey {
			return p.OS
		}
	}
	return ""
}

// Unlocked starts the node in the background, if the mesh is set up
// (vault.Sealed).
func (m *Mesh) Unlocked() {
	m.mu.Lock()
	if m.lock != nil {
		m.mu.Unlock()
		return
	}
	ctx, cancel := context.WithCancel(context.Background())
	m.unlocked, m.lock = ctx, cancel
	m.mu.Unlock()
	// Joining can take a while, and whoever unlocked should not wait for it.
	go func() {
		if err := m.up(ctx); err != nil {
			m.log.Warn("the team mesh did not start", "err", err)
		}
	}()
}

// Locked stops the node, as after a restart, and forgets Headscale's API key
// until the next unlock (vault.Sealed).
func (m *Mesh) Locked() {
	m.mu.Lock()
	cancel := m.lock
	m.unlocked, m.lock = nil, nil
	m.mu.Unlock()
	if cancel != nil {
		cancel()
	}
	m.op.Lock()
	m.down("the box is locked")
	m.op.Unlock()
	m.members.SetHeadscale(nil)
}

// Close stops everything of the mesh (the daemon is stopping).
func (m *Mesh) Close() {
	m.Locked()
	m.members.Close()
	m.proxy.Close()
}

// Settings reads the owner's mesh settings from the vault.
func (m *Mesh) Settings() (Settings, bool, error) {
	var s Settings
	raw, err := m.d.Vault.Get(settingsBucket, settingsKey)
	if errors.Is(err, vault.ErrNotFound) {
		return s, false, nil
	}
	if err != nil {
		return s, false, err
	}
	if err := json.Unmarshal(raw, &s); err != nil {
		return s, false, fmt.Errorf("the team mesh settings in the vault are damaged: %w", err)
	}
	return s, true, nil
}

// Configure checks, keeps and applies the owner's mesh settings: the Headscale
// address and API key are tried before they are kept, and the node restarts
// with them.
func (m *Mesh) Configure(ctx context.Context, s Settings) error {
	if err := m.Check(ctx, s); err != nil {
		return err
	}
	raw, _ := json.Marshal(s)
	if err := m.d.Vault.Put(settingsBucket, settingsKey, raw); err != nil {
		return err
	}
	m.log.Info("team mesh set up", "login_server", s.LoginServer)
	m.mu.Lock()
	uctx := m.unlocked
	m.mu.Unlock()
	if uctx == nil {
		return nil
	}
	return m.up(uctx)
}

// Check tries the owner's Headscale address and API key through the box's
// egress (the VPN), without keeping them: Headscale must answer and accept the
// key.
func (m *Mesh) Check(ctx context.Context, s Settings) error {
	if err := s.Validate(); err != nil {
		return err
	}
	hs, err := headscale.New(s.LoginServer, s.APIKey, egress.HTTPClient(m.d.Egress, 20*time.Second))
	if err != nil {
		return err
	}
	if err := hs.Health(ctx); err != nil {
		return fmt.Errorf("the box cannot use this Headscale: %w", err)
	}
	if _, err := hs.ListUsers(ctx); err != nil {
		return fmt.Errorf("Headscale refused the API key: %w", err)
	}
	return nil
}

// up applies the settings in the vault: the members' manager gets its
// Headscale client, and the node starts (or restarts with new settings). It
// gives up when ctx (the unlocked period) ends.
func (m *Mesh) up(ctx context.Context) error {
	m.op.Lock()
	defer m.op.Unlock()
	if ctx.Err() != nil {
		return nil
	}
	s, ok, err := m.Settings()
	if err != nil {
		return err
	}
	if !ok {
		m.members.SetHeadscale(nil)
		m.down("the team mesh is not set up")
		return nil
	}
	hs, err := headscale.New(s.LoginServer, s.APIKey, egress.HTTPClient(m.d.Egress, 20*time.Second))
	if err != nil {
		return err
	}
	name := m.d.BoxName()
	if name == "" {
		name = "redoubt"
	}
	if err := m.members.Reconfig(members.Config{LoginServer: s.LoginServer, BoxName: name}); err != nil {
		return err
	}
	m.members.SetHeadscale(hs)
	m.down("restarting with new settings")

	sctx, cancel := context.WithTimeout(ctx, joinWait)
	defer cancel()
	node, err := tailnet.Start(sctx, tailnet.Config{ControlURL: s.LoginServer, Hostname: name, Strict: m.cfg.Strict, Port: m.cfg.Port},
		tailnet.Deps{
			Logger: m.log,
			Store:  m.d.Vault,
			AuthKey: func(ctx context.Context) (string, error) {
				k, _, err := m.members.BoxKey(ctx)
				return k, err
			},
		})
	if err != nil {
		m.mu.Lock()
		m.reason = err.Error()
		m.mu.Unlock()
		return err
	}
	if ctx.Err() != nil {
		// Locked while the node was starting.
		node.Close()
		return nil
	}
	if m.d.Direct != nil {
		// Direct paths for the node's own socket when strict mode is off;
		// closed in strict mode.
		if err := m.d.Direct(node.DirectPath()); err != nil {
			m.log.Warn("the team's direct paths stay closed", "err", err)
		}
	}
	fctx, stopFollow := context.WithCancel(ctx)
	m.mu.Lock()
	m.node, m.follow, m.reason = node, stopFollow, ""
	m.mu.Unlock()
	go m.followTeam(fctx, node)
	if m.d.OnNode != nil {
		m.d.OnNode(node)
	}
	return nil
}

// down stops the node (its state stays in the vault). Called with op held.
func (m *Mesh) down(reason string) {
	m.mu.Lock()
	node, stop := m.node, m.follow
	m.node, m.follow, m.reason = nil, nil, reason
	m.mu.Unlock()
	if stop != nil {
		stop()
	}
	if node != nil && m.d.OnNode != nil {
		m.d.OnNode(nil)
	}
	if m.d.Direct != nil {
		m.d.Direct(0, 0)
	}
	if node != nil {
		node.Close()
	}
	if err := m.d.SetTeam(nil, netip.Addr{}, nil); err != nil {
		m.log.Warn("closing the way to the team", "err", err)
	}
	m.mu.Lock()
	clear(m.names)
	m.mu.Unlock()
	if z := m.zone(); z != nil {
		z.Clear(TeamSource)
	}
}

func (m *Mesh) zone() Zone {
	if m.d.Names == nil {
		return nil
	}
	return m.d.Names()
}

// followTeam keeps the laptop's way to the team and the team's names in DNS in
// step with the tailnet's peers.
func (m *Mesh) followTeam(ctx context.Context, node *tailnet.Node) {
	changes, cancel := node.Changes()
	defer cancel()
	t := time.NewTicker(5 * time.Second)
	defer t.Stop()
	for {
		m.sync(node, false)
		select {
		case <-ctx.Done():
			return
		case <-changes:
		case <-t.C:
		}
	}
}

// Resync rebuilds the way to the team and its names in DNS: the LAN side was
// built anew (the box moved to another address).
func (m *Mesh) Resync() {
	if n := m.Node(); n != nil {
		m.sync(n, true)
	}
}

// sync sets the laptop's way to the team and the team's names from the node's
// peers; all, or only what changed.
func (m *Mesh) sync(node *tailnet.Node, all bool) {
	st := node.Status()
	var self netip.Addr
	for _, a := range st.Addrs {
		if a.Is4() {
			self = a
		}
	}
	var devices []netip.Addr
	names := map[string][]netip.Addr{}
	for _, p := range node.Peers() {
		devices = append(devices, p.Addrs...)
		if p.Name != "" {
			names[p.Name+"."+teamLabel] = p.Addrs
		}
	}
	if err := m.d.SetTeam(node, self, devices); err != nil {
		m.log.Warn("updating the way to the team", "err", err)
	}
	z := m.zone()
	if z == nil {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	for n := range m.names {
		if _, ok := names[n]; !ok {
			z.Set(TeamSource, n, nil)
			delete(m.names, n)
		}
	}
	for n, addrs := range names {
		if old, ok := m.names[n]; ok && !all && sameAddrs(old, addrs) {
			continue
		}
		if err := z.Set(TeamSource, n, addrs); err != nil {
			m.log.Debug("naming a team device", "name", n, "err", err)
			continue
		}
		m.names[n] = addrs
	}
}

func sameAddrs(a, b []netip.Addr) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// Status is the team mesh for the box's status: Headscale as the box last
// found it, and the node.
type Status struct {
	Members members.Status
	// LoginServer is the team's Headscale ("" while locked or not set up).
	LoginServer string
	// Node is "up", "connecting", "down" or "off" (locked, not set up).
	Node       string
	NodeDetail string
	Name       string
	Addrs      []netip.Addr
	Peers      int
	Strict     bool
	Locked     bool
}

// Status returns the mesh's state.
func (m *Mesh) Status() Status {
	st := Status{Members: m.members.Status(), Strict: m.cfg.StrictOn(), Node: "off"}
	m.mu.Lock()
	node, reason, locked := m.node, m.reason, m.unlocked == nil
	m.mu.Unlock()
	st.Locked = locked
	if !locked {
		if s, ok, _ := m.Settings(); ok {
			st.LoginServer = s.LoginServer
		}
	}
	if node == nil {
		st.NodeDetail = reason
		if locked {
			st.NodeDetail = "the box is locked: unlock it to join the team mesh"
		}
		return st
	}
	ns := node.Status()
	st.Node, st.NodeDetail, st.Name, st.Addrs, st.Peers = ns.State, ns.Detail, ns.Name, ns.Addrs, ns.Peers
	return st
}

// Summary is the team mesh in a word and a sentence, for the dashboard.
func (m *Mesh) Summary() (state, detail string) {
	ms := m.members.Status()
	if !ms.Configured {
		return "not configured", "No team yet: set up the team mesh in the settings."
	}
	m.mu.Lock()
	node, reason := m.node, m.reason
	m.mu.Unlock()
	if node == nil {
		return "down", reason
	}
	st := node.Status()
	d := st.Detail
	if st.State == "up" {
		d = fmt.Sprintf("%s in the tailnet, %d team device(s)", st.Name, st.Peers)
		if st.Strict {
			d += ", all through the VPN"
		}
	}
	if !ms.Reachable {
		d += ". Headscale: " + ms.Detail
	}
	return st.State, d
}
