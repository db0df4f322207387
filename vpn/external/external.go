// Package external is the box's external VPN: the one way its own traffic leaves.
// It owns the WAN port (vpn/wan), the kernel firewall that lets only the VPN's
// packets out (vpn/wanfw), the WireGuard tunnel (vpn/tunnel) and the egress Dialer
// (vpn/egress) the rest of the box is given. It keeps the tunnel's health — up,
// connecting, down or not configured, and why — brings the tunnel back by itself
// when the VPN server or the WAN returns, and replaces it when the owner gives a
// new configuration.
//
// The configuration is the owner's wg-quick file: from the daemon's config file
// ([vpn] config_file or config), or set through the admin API, the setup wizard or
// the settings page, in which case it is kept in the sealed vault. A configuration
// from the config file wins; the API then refuses changes and says why.
//
// Fail closed: until a tunnel has been made and while it is down, the egress
// Dialer refuses or its dials time out inside the tunnel, and the firewall drops
// everything else the kernel would send. The one exception, asked for with
// SetDirect and held only while a VPN is configured, is the team mesh's direct
// paths: the tailnet's own UDP socket, let out to its peers over the WAN. Only
// the daemon imports this package (and ui/localapi, for the Status it reports).
package external

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/redoubt/redoubt/vault"
	"github.com/redoubt/redoubt/vpn/egress"
	"github.com/redoubt/redoubt/vpn/tunnel"
	"github.com/redoubt/redoubt/vpn/wan"
	"github.com/redoubt/redoubt/vpn/wanfw"
	"github.com/redoubt/redoubt/vpn/wgconfig"
)

// Mark is the socket mark on the tunnel's UDP sockets ("RDBT"): the firewall
// lets packets out only if they carry it.
const Mark = 0x52444254

// Where the owner's configuration is kept in the vault.
const (
	StoreBucket = "vpn"
	StoreKey    = "wg-quick"
)

// Config is the [vpn] section of the daemon's config file.
type Config struct {
	// ConfigFile is a wg-quick file from the VPN provider. It wins over a
	// configuration set through the admin API or the setup pages.
	ConfigFile string `toml:"config_file"`
	// Config is the same text inline (a TOML multi-line string), for a config
	// file that must be self-contained. At most one of ConfigFile and Config.
	Config string `toml:"config"`
	// ExitCheck is an HTTP(S) URL that answers with the address the request
	// came from (such as a VPN provider's "am I connected" page). The box asks it
	// through the tunnel each time the tunnel comes up, to show the public exit
	// address. Empty (the default): never asked, since it is a third party.
	ExitCheck string `toml:"exit_check"`
}

// Validate names the first bad field.
func (c Config) Validate() error {
	if c.ConfigFile != "" && c.Config != "" {
		return errors.New("vpn.config_file and vpn.config are both set: give the VPN's wg-quick config one way")
	}
	if c.ConfigFile != "" && !filepath.IsAbs(c.ConfigFile) {
		return fmt.Errorf("vpn.config_file %q: want an absolute path, such as /etc/redoubt/vpn.conf", c.ConfigFile)
	}
	if c.ConfigFile != "" {
		// A bad file stops start-up (and a reload) like any bad setting.
		text, err := readConfigFile(c.ConfigFile)
		if err != nil {
			return fmt.Errorf("vpn.config_file %s: %w", c.ConfigFile, err)
		}
		if _, err := wgconfig.Parse(text); err != nil {
			return fmt.Errorf("vpn.config_file %s: %w", c.ConfigFile, err)
		}
	}
	if c.Config != "" {
		if _, err := wgconfig.Parse([]byte(c.Config)); err != nil {
			return fmt.Errorf("vpn.config: %w", err)
		}
	}
	if c.ExitCheck != "" {
		if err := validateURL(c.ExitCheck); err != nil {
			return fmt.Errorf("vpn.exit_check %q: %v", c.ExitCheck, err)
		}
	}
	return nil
}

// Deps are what the VPN needs from the rest of the box.
type Deps struct {
	Logger *slog.Logger
	// Store is the sealed vault, where a configuration set through the API or the
	// setup pages is kept. Nil: only the config file can configure the VPN.
	Store vault.Store
	// WAN is the [wan] section.
	WAN wan.Config
	// Firewall installs the kernel firewall; nil: wanfw's, in the daemon's
	// network namespace.
	Firewall Firewall
	// Now returns the time; tests set it.
	Now func() time.Time

	// Tests replace the WAN port, the tunnel's options and the health timing.
	newPort       func(wan.Config, wan.Deps) (port, error)
	tunnelOptions func(*tunnel.Options)
	timing        *timing
}

// Firewall is the kernel firewall (wanfw.Firewall).
type Firewall interface {
	Apply(wanfw.Rules) error
	Remove() error
	Counters() (wanfw.Counters, error)
}

// port is the WAN port (wan.Port).
type port interface {
	State() wan.State
	SetEndpoint(netip.Addr)
	SetDirect(mark uint32, port uint16)
	Close()
}

// timing are the health check's thresholds.
type timing struct {
	tick, connectGrace, rejectAfter, probeIdle, replyTimeout, kickEvery time.Duration
}

// States a VPN can be in.
const (
	StateUp            = "up"
	StateConnecting    = "connecting"
	StateDown          = "down"
	StateNotConfigured = "not configured"
)

// notConfigured is the reason given while there is no configuration.
const notConfigured = "no VPN config: set one with `redoubt vpn set FILE`, in the setup pages, or with [vpn] config_file"

// defaultTiming are the health check's thresholds.
func defaultTiming() timing {
	return timing{
		tick: time.Second,
		// connectGrace: a new tunnel is "connecting", not "down", for this long.
		connectGrace: 10 * time.Second,
		// rejectAfter: WireGuard's REJECT_AFTER_TIME; a session older than this
		// carries nothing.
		rejectAfter: 180 * time.Second,
		// probeIdle: when nothing came back for this long, ask the VPN's DNS server
		// something (it makes WireGuard re-handshake if the server forgot us).
		probeIdle: 5 * time.Second,
		// replyTimeout: with probes going, this long without a reply is "down".
		replyTimeout: 16 * time.Second,
		// kickEvery: while not up, make WireGuard try a handshake this often.
		kickEvery: 5 * time.Second,
	}
}

// VPN is the running external VPN.
type VPN struct {
	cfg    Config
	log    *slog.Logger
	deps   Deps
	now    func() time.Time
	fw     Firewall
	port   port
	egress *egress.Switch
	tm     timing

	// fwMu orders the firewall's applications; it guards the endpoint and
	// the direct paths they were built from.
	fwMu       sync.Mutex
	fwEndpoint netip.AddrPort
	direct     wanfw.DirectPaths

	mu        sync.Mutex
	source    string // where the tunnel's configuration came from
	wgcfg     *wgconfig.Config
	tun       *tunnel.Tunnel
	health    health
	fwState   FirewallStatus
	cfgErr    string // why there is no tunnel although something was configured
	exit      exitState
	lastWANUp bool

	wake   chan struct{}
	cancel context.CancelFunc
	done   chan struct{}
	wg     sync.WaitGroup
}

type health struct {
	state      string
	reason     string
	since      time.Time
	lastRx     uint64
	lastRxAt   time.Time
	lastProbe  time.Time
	lastKick   time.Time
	reconnects int
	wasUp      bool
}

type exitState struct {
	addr    netip.Addr
	checked time.Time
	err     string
}

// Start installs the firewall (nothing leaves yet), takes over the WAN port, and
// brings the tunnel up if there is a configuration.
func Start(cfg Config, deps Deps) (*VPN, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	deps.WAN = deps.WAN.WithDefaults()
	if err := deps.WAN.Validate(); err != nil {
		return nil, err
	}
	if deps.Logger == nil {
		deps.Logger = slog.New(slog.DiscardHandler)
	}
	if deps.Now == nil {
		deps.Now = time.Now
	}
	if deps.Firewall == nil {
		deps.Firewall = wanfw.New(-1)
	}
	if deps.newPort == nil {
		deps.newPort = func(c wan.Config, d wan.Deps) (port, error) { return wan.Start(c, d) }
	}
	tm := defaultTiming()
	if deps.timing != nil {
		tm = *deps.timing
	}
	v := &VPN{
		cfg: cfg, log: deps.Logger, deps: deps, now: deps.Now, fw: deps.Firewall, tm: tm,
		egress: egress.NewSwitch("no VPN is configured"),
		wake:   make(chan struct{}, 1), done: make(chan struct{}),
	}
	v.health = health{state: StateNotConfigured, reason: notConfigured, since: v.now()}
	// The firewall first: from here on only the VPN's flow may leave.
	v.applyFirewall(netip.AddrPort{})
	p, err := deps.newPort(deps.WAN, wan.Deps{Logger: v.log.With("part", "wan"), Changed: v.wanChanged})
	if err != nil {
		return nil, err
	}
	v.port = p
	v.load()
	ctx, cancel := context.WithCancel(context.Background())
	v.cancel = cancel
	go v.run(ctx)
	return v, nil
}

// Dialer is the egress every other room is given.
func (v *VPN) Dialer() egress.Dialer { return v.egress }

// Close stops the tunnel and the health checks. The firewall stays: nothing
// leaves the box while its daemon is stopped. The direct paths close (the
// tailnet node they serve stops with the daemon): the table left behind lets out
// only the VPN's flow, and the WAN port removes their route.
func (v *VPN) Close() {
	v.cancel()
	<-v.done
	v.wg.Wait()
	v.fwMu.Lock()
	if v.direct.On() {
		v.direct = wanfw.DirectPaths{}
		v.applyFirewallLocked()
	}
	v.fwMu.Unlock()
	v.mu.Lock()
	t := v.tun
	v.tun = nil
	v.mu.Unlock()
	v.egress.Set(nil, "the box is stopping")
	if t != nil {
		t.Close()
	}
	v.port.Close()
}

// FromFile reports whether the configuration comes from the daemon's config file
// (so the API may not change it).
func (v *VPN) FromFile() bool {
	c := v.config()
	return c.ConfigFile != "" || c.Config != ""
}

// config is the [vpn] section in force.
func (v *VPN) config() Config {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.cfg
}

// Reconfig applies a reloaded [vpn] section. The configuration is read again (a
// config file may have changed); the tunnel is replaced only if it differs.
func (v *VPN) Reconfig(cfg Config) error {
	if err := cfg.Validate(); err != nil {
		return err
	}
	v.mu.Lock()
	v.cfg = cfg
	v.mu.Unlock()
	v.load()
	return nil
}

// ErrFromFile is returned by Set and Clear when the config file configures the VPN.
var ErrFromFile = errors.New("the VPN is configured in the box's config file ([vpn] config_file or config); change it there")

// Set validates the owner's wg-quick text, keeps it in the vault and brings a new
// tunnel up with it. A *wgconfig.Error says what is wrong with the text.
func (v *VPN) Set(text []byte) (*wgconfig.Config, error) {
	if v.FromFile() {
		return nil, ErrFromFile
	}
	c, err := wgconfig.Parse(text)
	if err != nil {
		return nil, err
	}
	if v.deps.Store == nil {
		return nil, errors.New("the box has no sealed store to keep the VPN config in")
	}
	if ini, ok := v.deps.Store.(interface{ Initialized() bool }); ok && !ini.Initialized() {
		return nil, errors.New("the box is not set up yet: finish setup first (the VPN config is kept in the vault that setup creates), or name it in the config file ([vpn] config_file)")
	}
	if err := v.deps.Store.Put(StoreBucket, StoreKey, text); err != nil {
		return nil, fmt.Errorf("keeping the VPN config in the vault: %w", err)
	}
	v.log.Info("VPN config set", "endpoint", c.Peer.Endpoint, "server_key", c.Peer.PublicKey.String())
	v.use(c, "set by the owner (kept in the vault)")
	return c, nil
}

// Clear removes the configuration set through the API: the box's own traffic
// stops leaving.
func (v *VPN) Clear() error {
	if v.FromFile() {
		return ErrFromFile
	}
	if v.deps.Store != nil {
		if err := v.deps.Store.Delete(StoreBucket, StoreKey); err != nil {
			return fmt.Errorf("removing the VPN config from the vault: %w", err)
		}
	}
	v.log.Info("VPN config removed")
	v.use(nil, "")
	v.mu.Lock()
	v.cfgErr = ""
	v.mu.Unlock()
	return nil
}

// Unlocked is called when the vault opens: a configuration kept there can now be
// read.
func (v *VPN) Unlocked() {
	v.mu.Lock()
	have := v.tun != nil
	v.mu.Unlock()
	if !have {
		v.load()
	}
}

// Locked is called when the owner locks the vault: a tunnel made from the
// configuration kept there closes, as after a restart, until the vault opens
// again. A configuration from the config file stays in use.
func (v *VPN) Locked() {
	v.mu.Lock()
	fromVault := v.source == vaultSource
	v.mu.Unlock()
	if !fromVault {
		return
	}
	v.log.Info("VPN tunnel closed: the box is locked")
	v.use(nil, "")
	v.setConfigError(lockedReason)
}

// Where a configuration came from, for the one kept in the vault, and why the
// VPN waits while the vault is locked.
const (
	vaultSource  = "set by the owner (kept in the vault)"
	lockedReason = "the box is locked: unlock it to start the VPN (its config is kept sealed)"
)

// load reads the configuration from the config file or the vault and uses it,
// unless the tunnel already runs with the same.
func (v *VPN) load() {
	var text []byte
	var source string
	cfg := v.config()
	switch {
	case cfg.ConfigFile != "":
		b, err := readConfigFile(cfg.ConfigFile)
		if err != nil {
			v.setConfigError(fmt.Sprintf("vpn.config_file %s: %v", cfg.ConfigFile, err))
			return
		}
		if fi, err := os.Stat(cfg.ConfigFile); err == nil && fi.Mode().Perm()&0o077 != 0 {
			// Not refused (a board's FAT boot partition has no modes), but said.
			v.log.Warn("the VPN config file holds a private key and other users may read it: chmod 600 it", "file", cfg.ConfigFile, "mode", fi.Mode().Perm())
		}
		text, source = b, "the config file's vpn.config_file "+cfg.ConfigFile
	case cfg.Config != "":
		text, source = []byte(cfg.Config), "the config file's vpn.config"
	case v.deps.Store != nil:
		if ini, ok := v.deps.Store.(interface{ Initialized() bool }); ok && !ini.Initialized() {
			return // no vault yet (setup not done): nothing was ever set
		}
		b, err := v.deps.Store.Get(StoreBucket, StoreKey)
		switch {
		case errors.Is(err, vault.ErrNotFound), errors.Is(err, vault.ErrNotInitialized):
			// Nothing kept: not configured (and no longer "locked", if the
			// vault was before).
			v.mu.Lock()
			waited := v.cfgErr == lockedReason && v.tun == nil
			v.mu.Unlock()
			if waited {
				v.use(nil, "")
			}
			return
		case errors.Is(err, vault.ErrLocked):
			v.setConfigError(lockedReason)
			return
		case err != nil:
			v.setConfigError("reading the VPN config from the vault: " + err.Error())
			return
		}
		text, source = b, vaultSource
	default:
		v.mu.Lock()
		had := v.wgcfg != nil || v.cfgErr != ""
		v.mu.Unlock()
		if had {
			v.use(nil, "")
		}
		return
	}
	c, err := wgconfig.Parse(text)
	if err != nil {
		v.setConfigError(fmt.Sprintf("the VPN config (%s) is not valid: %v", source, err))
		return
	}
	v.mu.Lock()
	same := v.tun != nil && v.wgcfg.Equal(c) && v.source == source
	v.mu.Unlock()
	if same {
		return
	}
	for _, ign := range c.Ignored {
		v.log.Warn("VPN config: setting ignored", "what", ign)
	}
	v.use(c, source)
}

func readConfigFile(path string) ([]byte, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if fi.Size() > wgconfig.MaxSize {
		return nil, fmt.Errorf("the file is %d bytes; a WireGuard config is at most %d", fi.Size(), wgconfig.MaxSize)
	}
	return os.ReadFile(path)
}

func (v *VPN) setConfigError(msg string) {
	v.log.Error("VPN not started", "reason", msg)
	v.mu.Lock()
	v.cfgErr = msg
	v.mu.Unlock()
	v.egress.Set(nil, msg)
	v.poke()
}

// use replaces the tunnel with one for c (nil: no tunnel).
func (v *VPN) use(c *wgconfig.Config, source string) {
	endpoint := netip.AddrPort{}
	if c != nil {
		endpoint = c.Peer.Endpoint
	}
	// Firewall and route first, so the new tunnel's first handshake can leave.
	v.applyFirewall(endpoint)
	v.port.SetEndpoint(endpoint.Addr())
	var t *tunnel.Tunnel
	var err error
	if c != nil {
		opts := tunnel.Options{Config: c, Mark: Mark, Logger: v.log.With("part", "tunnel")}
		if v.deps.tunnelOptions != nil {
			v.deps.tunnelOptions(&opts)
		}
		t, err = tunnel.New(opts)
		if err == nil && v.port.State().Ready {
			err = t.Up()
		}
	}
	v.mu.Lock()
	old := v.tun
	v.tun, v.wgcfg, v.source = t, c, source
	v.cfgErr = ""
	if err != nil {
		v.cfgErr = "making the tunnel: " + err.Error()
		v.tun = nil
	}
	v.health = health{state: StateConnecting, since: v.now(), lastRxAt: v.now()}
	if c == nil {
		v.health.state, v.health.reason = StateNotConfigured, notConfigured
	}
	v.exit = exitState{}
	msg := v.cfgErr
	v.mu.Unlock()
	switch {
	case v.tun != nil:
		v.egress.Set(t, "")
		v.log.Info("VPN tunnel started", "endpoint", c.Peer.Endpoint, "addresses", c.Summarize().Addresses, "source", source)
	case msg != "":
		v.egress.Set(nil, msg)
		v.log.Error("VPN not started", "reason", msg)
	default:
		v.egress.Set(nil, "no VPN is configured")
	}
	if old != nil {
		old.Close()
	}
	v.poke()
}

// SetDirect lets the team mesh's WireGuard take direct UDP paths over the WAN,
// for [mesh] strict = false: UDP from the socket that carries mark and is bound to
// port may leave for any address, and UDP to port may come in; the WAN port
// routes that socket's packets (only those) by its gateway. SetDirect(0, 0) turns
// it off. The allowance holds only while a VPN endpoint is configured — without a
// VPN nothing leaves, direct paths included — and is kept across new configs,
// tunnel replacements and reloads until turned off or the VPN closes.
//
// The firewall is applied at once; an error says the allowance could not be
// installed (the previous rules stay, so the direct paths stay closed).
func (v *VPN) SetDirect(mark uint32, port uint16) error {
	d := wanfw.DirectPaths{Mark: mark, Port: port}
	if err := d.Validate(); err != nil {
		return err
	}
	if d.Mark == Mark {
		return fmt.Errorf("direct paths: mark 0x%x is the VPN's own socket mark", mark)
	}
	v.fwMu.Lock()
	changed := d != v.direct
	v.direct = d
	err := v.applyFirewallLocked()
	v.port.SetDirect(mark, port) // in the same order as the firewall
	v.fwMu.Unlock()
	if changed {
		if d.On() {
			v.log.Info("the team's direct paths are allowed over the WAN", "mark", fmt.Sprintf("0x%x", mark), "port", port)
		} else {
			v.log.Info("the team's direct paths are closed")
		}
	}
	return err
}

// applyFirewall installs the rules for endpoint (and the direct paths, if any).
func (v *VPN) applyFirewall(endpoint netip.AddrPort) error {
	v.fwMu.Lock()
	defer v.fwMu.Unlock()
	v.fwEndpoint = endpoint
	return v.applyFirewallLocked()
}

// applyFirewallLocked installs the rules for v.fwEndpoint and v.direct; fwMu is
// held.
func (v *VPN) applyFirewallLocked() error {
	rules := wanfw.Rules{Endpoint: v.fwEndpoint, Mark: Mark}
	if v.fwEndpoint.IsValid() {
		rules.Direct = v.direct // no VPN: no direct paths either
	}
	st := FirewallStatus{On: v.deps.WAN.FirewallOn(), Rules: rules.String(), Direct: v.direct}
	var err error
	if st.On {
		err = v.fw.Apply(rules)
		st.Installed = err == nil
		st.DirectOpen = st.Installed && rules.Direct.On()
	} else {
		st.Rules = ""
		err = v.fw.Remove()
		if err == nil {
			v.log.Warn("the WAN firewall is off (wan.firewall = false): other programs on this machine can reach the network directly")
		}
	}
	if err != nil {
		st.Error = err.Error()
		v.log.Error("WAN firewall", "err", err)
	}
	v.mu.Lock()
	v.fwState = st
	v.mu.Unlock()
	return err
}

func (v *VPN) wanChanged(st wan.State) {
	v.mu.Lock()
	t := v.tun
	wasUp := v.lastWANUp
	v.lastWANUp = st.Ready
	v.mu.Unlock()
	if st.Ready && !wasUp && t != nil && t.IsUp() {
		// A new address (or the link back): reopen the tunnel's socket and
		// handshake at once.
		if err := t.Rebind(); err != nil {
			v.log.Warn("rebinding the tunnel's socket", "err", err)
		}
		t.Kick()
	}
	v.poke()
}

func (v *VPN) poke() {
	select {
	case v.wake <- struct{}{}:
	default:
	}
}

// run keeps the health up to date and the tunnel trying.
func (v *VPN) run(ctx context.Context) {
	defer close(v.done)
	tk := time.NewTicker(v.tm.tick)
	defer tk.Stop()
	for {
		v.check(ctx)
		select {
		case <-ctx.Done():
			return
		case <-tk.C:
		case <-v.wake:
		}
	}
}

func (v *VPN) check(ctx context.Context) {
	now := v.now()
	wst := v.port.State()
	v.mu.Lock()
	t := v.tun
	h := v.health
	cfgErr := v.cfgErr
	v.mu.Unlock()

	var state, reason string
	var st tunnel.Stats
	switch {
	case t == nil && cfgErr != "":
		state, reason = StateDown, cfgErr
	case t == nil:
		state, reason = StateNotConfigured, notConfigured
	default:
		if !t.IsUp() && wst.Ready {
			// The WAN is ready at last: the first handshake can leave.
			if err := t.Up(); err != nil {
				v.log.Error("bringing the tunnel up", "err", err)
			}
		}
		st = t.Stats()
		if st.RxBytes > h.lastRx {
			h.lastRx, h.lastRxAt = st.RxBytes, now
		}
		probing := len(t.Config().DNS) > 0
		ep := t.Config().Peer.Endpoint
		switch {
		case !wst.Ready && h.state == StateConnecting && now.Sub(h.since) < v.tm.connectGrace:
			state, reason = StateConnecting, "waiting for the WAN: "+wst.Problem
		case !wst.Ready:
			state, reason = StateDown, "the WAN is not ready: "+wst.Problem
		case st.LastHandshake.IsZero() && now.Sub(t.Started()) < v.tm.connectGrace:
			state, reason = StateConnecting, fmt.Sprintf("handshaking with %s", ep)
		case st.LastHandshake.IsZero():
			state, reason = StateDown, fmt.Sprintf("no handshake with %s for %s: the VPN server does not answer (check the endpoint, the keys, and that the network lets UDP out)", ep, roundDur(now.Sub(t.Started())))
		case now.Sub(st.LastHandshake) > v.tm.rejectAfter:
			state, reason = StateDown, fmt.Sprintf("the last handshake with %s was %s ago: the VPN server stopped answering", ep, roundDur(now.Sub(st.LastHandshake)))
		case probing && now.Sub(h.lastRxAt) > v.tm.replyTimeout:
			state, reason = StateDown, fmt.Sprintf("nothing came back through the tunnel for %s: the VPN server or the network stopped answering", roundDur(now.Sub(h.lastRxAt)))
		default:
			state, reason = StateUp, ""
		}
		// Keep the tunnel honest: probe when idle, kick while not up.
		if now.Sub(h.lastRxAt) >= v.tm.probeIdle && now.Sub(h.lastProbe) >= v.tm.probeIdle && wst.Ready {
			h.lastProbe = now
			v.wg.Add(1)
			go func() {
				defer v.wg.Done()
				pctx, cancel := context.WithTimeout(ctx, 3*time.Second)
				defer cancel()
				t.Probe(pctx)
			}()
		}
		if state != StateUp && now.Sub(h.lastKick) >= v.tm.kickEvery && wst.Ready {
			h.lastKick = now
			t.Kick()
		}
	}
	if state != h.state {
		switch {
		case state == StateUp && h.wasUp:
			h.reconnects++
			v.log.Info("VPN up again", "endpoint", st.Endpoint, "down_for", roundDur(now.Sub(h.since)))
		case state == StateUp:
			v.log.Info("VPN up", "endpoint", st.Endpoint)
		case state == StateDown:
			v.log.Warn("VPN down", "reason", reason)
		}
		if state == StateUp {
			h.wasUp = true
			if v.config().ExitCheck != "" {
				v.wg.Add(1)
				go func() {
					defer v.wg.Done()
					v.checkExit(ctx)
				}()
			}
		}
		h.state, h.since = state, now
	}
	h.reason = reason
	v.mu.Lock()
	if v.tun == t { // not replaced meanwhile
		v.health = h
	}
	v.mu.Unlock()
}

func roundDur(d time.Duration) time.Duration {
	if d > time.Minute {
		return d.Round(time.Second)
	}
	return d.Round(100 * time.Millisecond)
}
