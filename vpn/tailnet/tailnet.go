// Package tailnet is the box's node in the team's mesh: an embedded Tailscale node
// (tsnet, tailscale.com v1.102.5) coordinated by the owner's Headscale.
//
// Its keys and state live in the sealed vault, so the node is up only while the
// box is unlocked. It uploads no logs anywhere, uses the DERP map Headscale serves,
// and reaches Headscale and its DERP relays only through the external VPN: a
// loopback CONNECT proxy (Proxy) carries tailscale's HTTP connections into the VPN
// egress. In strict mode (the default) every tailnet packet is relayed over DERP,
// so it too travels inside the VPN and the WAN sees nothing but the VPN's flow;
// without it, WireGuard may take direct UDP paths over the WAN (faster, and visible
// to the local network as traffic to team members' addresses).
//
// Members reach services the box offers on its tailnet address through Listen; the
// laptop reaches members' devices through DialContext and ListenPacket, which the
// datapath uses; Peers feeds the DNS room's team names; WhoIs tells the apps who
// is calling. vpn/mesh runs the node; the daemon and the apps host use its types.
package tailnet

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"net/url"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"tailscale.com/client/local"
	"tailscale.com/envknob"
	"tailscale.com/ipn"
	"tailscale.com/ipn/ipnstate"
	"tailscale.com/tsnet"

	"github.com/redoubt/redoubt/vault"
)

// Config is the [mesh] section's node settings.
type Config struct {
	// ControlURL is the owner's Headscale server (https://…).
	ControlURL string `toml:"-"`
	// Hostname is the box's name in the tailnet (default: the box's name).
	Hostname string `toml:"hostname"`
	// Strict relays every tailnet packet through the VPN (over DERP): the
	// local network sees only the VPN's flow. Default true.
	Strict *bool `toml:"strict"`
	// Port is the UDP port for direct WireGuard paths when Strict is off
	// (default 41641).
	Port uint16 `toml:"port"`
}

// StrictOn reports the effective Strict setting.
func (c Config) StrictOn() bool { return c.Strict == nil || *c.Strict }

// DefaultPort is Tailscale's usual WireGuard port.
const DefaultPort = 41641

// Validate names the first bad field.
func (c Config) Validate() error {
	if c.ControlURL != "" {
		u, err := url.Parse(c.ControlURL)
		if err != nil || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http") {
			return fmt.Errorf("mesh.login_server %q: want the Headscale server's URL, such as https://headscale.example.org", c.ControlURL)
		}
	}
	if c.Hostname != "" && !validHostname(c.Hostname) {
		return fmt.Errorf("mesh.hostname %q: use lower-case letters, digits and hyphens (at most 63)", c.Hostname)
	}
	return nil
}

func validHostname(h string) bool {
	if h == "" || len(h) > 63 || h[0] == '-' || h[len(h)-1] == '-' {
		return false
	}
	for _, r := range h {
		if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-') {
			return false
		}
	}
	return true
}

// Deps are what the node needs from the rest of the box.
type Deps struct {
	Logger *slog.Logger
	// Store is the vault (unlocked) the node's state is sealed in.
	Store vault.Store
	// AuthKey returns a pre-auth key for the box's own node, asked only when
	// the vault holds no node state yet (the first start, or after leaving).
	AuthKey func(ctx context.Context) (string, error)
}

// Peer is a device of the team as the box sees it.
type Peer struct {
	Key    string // its node key, "nodekey:…"
	Name   string // the device's name in the tailnet (its MagicDNS label)
	User   string // the member it belongs to (the user's login name)
	UserID uint64 // the coordination server's id of that user
	Tagged bool   // a tagged device belongs to no member
	Addrs  []netip.Addr
	Online bool
	OS     string
	Seen   time.Time
}

// Status is the node's state for the dashboard.
type Status struct {
	State  string // "up", "connecting", "down"
	Detail string
	Name   string // the box's name in the tailnet
	FQDN   string // its full MagicDNS name ("kestrel.team.example")
	Addrs  []netip.Addr
	Peers  int
	Strict bool
}

// Node is the box's tailnet node.
type Node struct {
	cfg     Config
	log     *slog.Logger
	authKey func(ctx context.Context) (string, error)
	srv     *tsnet.Server
	dir     string

	mu     sync.Mutex
	status Status
	peers  []Peer
	subs   map[chan struct{}]struct{}
	cancel context.CancelFunc
	done   chan struct{}
}

// knobs sets the process-wide tailscale settings the box runs with: no logs
// uploaded anywhere, no port mapping (UPnP, NAT-PMP, PCP: the box never asks the
// local router for anything), and, in strict mode, DERP only.
func knobs(strict bool) {
	envknob.SetNoLogsNoSupport()
	envknob.Setenv("TS_DISABLE_PORTMAPPER", "true")
	envknob.Setenv("TS_DISABLE_UPNP", "true")
	envknob.Setenv("TS_DEBUG_ALWAYS_USE_DERP", fmt.Sprint(strict))
}

// Start brings the node up: from its sealed state, or as a new node with a key
// from deps.AuthKey. It returns once the node is running; joining the tailnet
// continues in the background and shows in Status.
func Start(ctx context.Context, cfg Config, deps Deps) (*Node, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.ControlURL == "" {
		return nil, errors.New("tailnet: no Headscale server configured")
	}
	if deps.Logger == nil {
		deps.Logger = slog.Default()
	}
	if cfg.Port == 0 {
		cfg.Port = DefaultPort
	}
	knobs(cfg.StrictOn())
	store := vaultStore{deps.Store}
	authKey := ""
	if _, err := store.ReadState("_machinekey"); err != nil {
		if deps.AuthKey == nil {
			return nil, errors.New("tailnet: the box has not joined the tailnet and has no way to get a key")
		}
		if authKey, err = deps.AuthKey(ctx); err != nil {
			return nil, fmt.Errorf("getting a key for the box's node: %w", err)
		}
	}
	// tsnet keeps a log buffer and its log settings in a directory; they hold
	// no keys (those are in the vault) and live only as long as the node.
	dir, err := os.MkdirTemp("", "redoubt-tailnet-")
	if err != nil {
		return nil, err
	}
	tslog := deps.Logger.With("part", "tailscale")
	n := &Node{cfg: cfg, log: deps.Logger, authKey: deps.AuthKey, dir: dir, subs: make(map[chan struct{}]struct{}), done: make(chan struct{}),
		status: Status{State: "connecting", Detail: "joining the tailnet", Strict: cfg.StrictOn()}}
	n.srv = &tsnet.Server{
		Dir:        dir,
		Store:      store,
		Hostname:   cfg.Hostname,
		ControlURL: cfg.ControlURL,
		AuthKey:    authKey,
		Port:       cfg.Port,
		Logf: func(format string, args ...any) {
			tslog.Debug(strings.TrimSpace(fmt.Sprintf(format, args...)))
		},
		UserLogf: func(format string, args ...any) {
			tslog.Info(strings.TrimSpace(fmt.Sprintf(format, args...)))
		},
	}
	if err := n.srv.Start(); err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("starting the box's tailnet node: %w", err)
	}
	wctx, cancel := context.WithCancel(context.Background())
	n.cancel = cancel
	go n.watch(wctx)
	return n, nil
}

// watch follows the node's state and its peers, and tells subscribers when the
// peers change.
func (n *Node) watch(ctx context.Context) {
	defer close(n.done)
	lc, err := n.srv.LocalClient()
	if err != nil {
		n.setStatus(Status{State: "down", Detail: err.Error()}, nil)
		return
	}
	t := time.NewTicker(2 * time.Second)
	defer t.Stop()
	var rejoin rejoiner
	for {
		sctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		st, err := lc.Status(sctx)
		cancel()
		if ctx.Err() != nil {
			return
		}
		if err != nil {
			n.setStatus(Status{State: "down", Detail: "the node does not answer: " + err.Error()}, nil)
		} else {
			s, peers := summarize(st)
			n.setStatus(s, peers)
			if st.BackendState == "NeedsLogin" && rejoin.due(time.Now()) {
				n.rejoin(ctx, lc)
			} else if st.BackendState == "Running" {
				rejoin = rejoiner{}
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// rejoiner paces the node's attempts to join the tailnet again: the first at
// once, then after 10 s, doubling to 10 min.
type rejoiner struct {
	next time.Time
	wait time.Duration
}

func (r *rejoiner) due(now time.Time) bool {
	if now.Before(r.next) {
		return false
	}
	r.wait = min(max(2*r.wait, 10*time.Second), 10*time.Minute)
	r.next = now.Add(r.wait)
	return true
}

// rejoin logs the node in again with a new key, when Headscale no longer knows
// it: its single-use key was spent on a registration whose answer was lost (the
// retry then fails with "authkey already used"), its node was deleted or
// expired, or the vault held its keys but no login.
func (n *Node) rejoin(ctx context.Context, lc *local.Client) {
	if n.authKey == nil {
		return
	}
	kctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	key, err := n.authKey(kctx)
	if err != nil {
		n.log.Warn("the box's node needs to join the tailnet again, and no key could be had", "err", err)
		return
	}
	if err := lc.Start(kctx, ipn.Options{AuthKey: key}); err != nil {
		n.log.Warn("joining the tailnet again", "err", err)
		return
	}
	if err := lc.StartLoginInteractive(kctx); err != nil {
		n.log.Warn("joining the tailnet again", "err", err)
		return
	}
	n.log.Info("the box's node is joining the tailnet again with a new key")
}

// summarize turns tailscale's status into the box's.
func summarize(st *ipnstate.Status) (Status, []Peer) {
	s := Status{Peers: len(st.Peer)}
	switch st.BackendState {
	case "Running":
		s.State, s.Detail = "up", "in the team's tailnet"
	case "NeedsLogin", "NeedsMachineAuth":
		s.State, s.Detail = "down", "Headscale does not know the box's node (deleted, expired, or its key already used): the box asks for a new key and joins again by itself"
	case "Starting", "NoState":
		s.State, s.Detail = "connecting", "reaching Headscale through the VPN"
	default:
		s.State, s.Detail = "down", "tailscale is "+st.BackendState
	}
	if st.Self != nil {
		s.Name = strings.SplitN(st.Self.DNSName, ".", 2)[0]
		s.FQDN = strings.TrimSuffix(st.Self.DNSName, ".")
		s.Addrs = st.Self.TailscaleIPs
	}
	for _, h := range st.Health {
		if s.State != "up" {
			s.Detail += "; " + h
			break
		}
	}
	var peers []Peer
	for _, p := range st.Peer {
		user := ""
		if u, ok := st.User[p.UserID]; ok {
			user = u.LoginName
		}
		peers = append(peers, Peer{
			Key:    p.PublicKey.String(),
			Name:   strings.SplitN(p.DNSName, ".", 2)[0],
			User:   user,
			UserID: uint64(p.UserID),
			Tagged: p.Tags != nil && p.Tags.Len() > 0,
			Addrs:  p.TailscaleIPs,
			Online: p.Online,
			OS:     p.OS,
			Seen:   p.LastSeen,
		})
	}
	slices.SortFunc(peers, func(a, b Peer) int { return strings.Compare(a.Name, b.Name) })
	return s, peers
}

func (n *Node) setStatus(s Status, peers []Peer) {
	n.mu.Lock()
	defer n.mu.Unlock()
	s.Strict = n.cfg.StrictOn()
	changed := !samePeers(n.peers, peers)
	n.status, n.peers = s, peers
	if changed {
		for c := range n.subs {
			select {
			case c <- struct{}{}:
			default:
			}
		}
	}
}

func samePeers(a, b []Peer) bool {
	return slices.EqualFunc(a, b, func(x, y Peer) bool {
		return x.Name == y.Name && x.User == y.User && slices.Equal(x.Addrs, y.Addrs)
	})
}

// Status returns the node's state.
func (n *Node) Status() Status {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.status
}

// Peers returns the team's devices.
func (n *Node) Peers() []Peer {
	n.mu.Lock()
	defer n.mu.Unlock()
	return slices.Clone(n.peers)
}

// Changes returns a channel that receives a value whenever the peers change,
// and a function that ends the subscription.
func (n *Node) Changes() (<-chan struct{}, func()) {
	c := make(chan struct{}, 1)
	n.mu.Lock()
	n.subs[c] = struct{}{}
	n.mu.Unlock()
	return c, func() {
		n.mu.Lock()
		delete(n.subs, c)
		n.mu.Unlock()
	}
}

// Listen opens a service on the box's tailnet addresses.
func (n *Node) Listen(network, addr string) (net.Listener, error) { return n.srv.Listen(network, addr) }

// DialContext opens a connection to a team device through the tailnet.
func (n *Node) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	return n.srv.Dial(ctx, network, addr)
}

// ListenPacket opens a UDP socket on the box's tailnet address (addr
// "100.x.y.z:port"), for relaying the laptop's datagrams to team devices.
func (n *Node) ListenPacket(network, addr string) (net.PacketConn, error) {
	return n.srv.ListenPacket(network, addr)
}

// Close takes the node down (the vault keeps its state for the next start).
func (n *Node) Close() error {
	n.cancel()
	err := n.srv.Close()
	<-n.done
	os.RemoveAll(n.dir)
	return err
}
