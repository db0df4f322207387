// Package lan is the box's LAN port: a gVisor netstack attached to the owner's
// interface, holding the box's LAN address, terminating what the laptop sends to the
// box's own services and dropping everything else into the leak log.
//
// Services (DHCP, DNS, the UI, apps) get ordinary net.Listener and net.PacketConn
// values from ListenTCP and ListenUDP and never see gVisor types; opening one opens
// its port in the default-deny ruleset, closing it closes the port. UDP services on
// the box's own address (ListenUDP) bypass the netstack: the gate serves their
// datagrams and they write whole frames to the link. The kernel holds no address
// on the interface and routes nothing from it.
//
// cmd (through the daemon) builds a LAN; services receive only the listeners.
package lan

import (
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/network/arp"
	"gvisor.dev/gvisor/pkg/tcpip/network/ipv4"
	"gvisor.dev/gvisor/pkg/tcpip/stack"
	"gvisor.dev/gvisor/pkg/tcpip/transport/icmp"
	"gvisor.dev/gvisor/pkg/tcpip/transport/tcp"
	"gvisor.dev/gvisor/pkg/tcpip/transport/udp"

	"github.com/redoubt/redoubt/datapath/filter"
	"github.com/redoubt/redoubt/datapath/leaklog"
	"github.com/redoubt/redoubt/datapath/link"
	"github.com/redoubt/redoubt/datapath/reveal"
	"github.com/redoubt/redoubt/internal/ratelimit"
)

// DefaultAddress is the box's LAN address when the config names none. 10.201.86.0/24
// sits in private space that home routers (192.168.0.x, 192.168.1.x, 10.0.0.x),
// Docker (172.17–31.x), Tailscale and carrier-grade NAT (100.64/10) do not use, so a
// laptop that is also on such a network rarely sees a clash.
var DefaultAddress = netip.MustParsePrefix("10.201.86.1/24")

// Config is the LAN port's configuration.
type Config struct {
	// Interface is the owner's LAN port, such as "eth1". It must exist and hold no
	// kernel IPv4 address.
	Interface string `toml:"interface"`
	// Address is the box's address and the LAN prefix (default 10.201.86.1/24).
	Address netip.Prefix `toml:"address"`
	// Reveal completes the TCP handshake of connections the laptop opens toward
	// the internet, reads their first bytes to record the name they reveal (TLS
	// SNI, HTTP Host), and resets them. Nothing is forwarded. Default on.
	Reveal *bool `toml:"reveal"`
}

// RevealOn reports the effective Reveal setting.
func (c Config) RevealOn() bool { return c.Reveal == nil || *c.Reveal }

// WithDefaults fills unset fields.
func (c Config) WithDefaults() Config {
	if !c.Address.IsValid() {
		c.Address = DefaultAddress
	}
	return c
}

// Validate names the first bad field.
func (c Config) Validate() error {
	if c.Interface == "" {
		return errors.New(`lan.interface: missing; name the owner's LAN port, such as "eth1"`)
	}
	if len(c.Interface) > 15 {
		return fmt.Errorf("lan.interface %q: interface names are at most 15 characters", c.Interface)
	}
	a := c.Address
	if !a.IsValid() || !a.Addr().Is4() {
		return fmt.Errorf("lan.address %q: want an IPv4 address with prefix length, such as 10.201.86.1/24", a)
	}
	if a.Bits() < 16 || a.Bits() > 29 {
		return fmt.Errorf("lan.address %v: the prefix length must be between /16 and /29", a)
	}
	if !a.Addr().IsPrivate() {
		return fmt.Errorf("lan.address %v: use a private address (10/8, 172.16/12 or 192.168/16)", a)
	}
	probe := filter.Config{Prefix: a, MAC: net.HardwareAddr{2, 0, 0, 0, 0, 1}}
	if err := probe.Validate(); err != nil {
		return fmt.Errorf("lan.address %v: %s", a, "the box's address cannot be the network or broadcast address of its prefix")
	}
	return nil
}

// Deps are what a LAN needs from the rest of the box.
type Deps struct {
	Logger *slog.Logger
	Leaks  *leaklog.Log
	// Now returns the time; tests set it. Default time.Now.
	Now func() time.Time
}

const (
	nicID = 1
	// revealConcurrency bounds reveal connections held open at once; beyond it new
	// attempts are reset at once and recorded without a name.
	revealConcurrency = 64
	revealWait        = 3 * time.Second
	revealBytes       = 4096
	revealQuiet       = 50 * time.Millisecond
)

// LAN is the running LAN port.
type LAN struct {
	cfg   Config
	log   *slog.Logger
	leaks *leaklog.Log
	now   func() time.Time
	stack *stack.Stack
	ep    *link.Endpoint
	rules atomic.Pointer[filter.Ruleset]

	// dec is used only by the link's reader goroutine (Inbound).
	dec     *reveal.Decoder
	logRate ratelimit.Limiter

	mu       sync.Mutex
	services map[filter.Service]int // reference counts of open listeners

	// The UDP services served without the netstack (udpconn.go): the list is
	// replaced whole under mu and read by the link's reader without a lock.
	udp       atomic.Pointer[[]*udpConn]
	udpClosed bool // under mu: the LAN is closing, no new service opens
	udpStats  udpCounters
	box       [4]byte // the box's address
	mac       [6]byte // the LAN port's hardware address
	ipID      atomic.Uint32

	neigh neighbors

	revealSlots chan struct{}
	relaySlots  chan struct{}
	spawnMu     sync.Mutex // guards closed and wg.Add against Close's wg.Wait
	closed      bool
	team        atomic.Pointer[team]
	wg          sync.WaitGroup
	closing     chan struct{}
	closeOnce   sync.Once
}

func newLAN(cfg Config, deps Deps) (*LAN, error) {
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if deps.Leaks == nil {
		return nil, errors.New("lan: Deps.Leaks is required")
	}
	if deps.Logger == nil {
		deps.Logger = slog.Default()
	}
	if deps.Now == nil {
		deps.Now = time.Now
	}
	l := &LAN{
		cfg:         cfg,
		log:         deps.Logger,
		leaks:       deps.Leaks,
		now:         deps.Now,
		dec:         reveal.NewDecoder(),
		logRate:     ratelimit.Limiter{Rate: 5, Burst: 20},
		services:    make(map[filter.Service]int),
		revealSlots: make(chan struct{}, revealConcurrency),
		relaySlots:  make(chan struct{}, maxRelayed),
		closing:     make(chan struct{}),
		box:         cfg.Address.Addr().As4(),
	}
	l.udp.Store(new([]*udpConn))
	l.ipID.Store(rand.Uint32())
	return l, nil
}

// start builds the netstack on ep and brings the box's address up.
func (l *LAN) start(ep *link.Endpoint) error {
	l.ep = ep
	mac := net.HardwareAddr(ep.LinkAddress())
	l.mac = [6]byte(mac)
	rs, err := filter.New(filter.Config{Prefix: l.cfg.Address, MAC: mac, Reveal: l.cfg.RevealOn()})
	if err != nil {
		return err
	}
	l.rules.Store(rs)

	s := stack.New(stack.Options{
		NetworkProtocols:   []stack.NetworkProtocolFactory{ipv4.NewProtocol, arp.NewProtocol},
		TransportProtocols: []stack.TransportProtocolFactory{tcp.NewProtocol, udp.NewProtocol, icmp.NewProtocol4},
		HandleLocal:        false,
	})
	l.stack = s
	if err := tuneTCP(s); err != nil {
		s.Close()
		return err
	}
	// The reveal responder is in place before the NIC exists: once it does, the
	// link's reader delivers frames.
	fwd := tcp.NewForwarder(s, 64<<10, revealConcurrency+maxRelayed, l.acceptTCP)
	s.SetTransportProtocolHandler(tcp.ProtocolNumber, func(id stack.TransportEndpointID, pkt *stack.PacketBuffer) bool {
		if !isSYN(pkt) {
			// A segment of no connection (one the responder already reset):
			// counted, and answered with a reset by the stack.
			l.recordStray(id)
			return false
		}
		return fwd.HandlePacket(id, pkt)
	})
	l.udpHandler(s)
	if err := s.CreateNICWithOptions(nicID, ep, stack.NICOptions{Name: "lan"}); err != nil {
		s.Close()
		return fmt.Errorf("creating LAN NIC: %s", err)
	}
	addr := tcpip.AddrFrom4(l.cfg.Address.Addr().As4())
	if err := s.AddProtocolAddress(nicID, tcpip.ProtocolAddress{
		Protocol:          ipv4.ProtocolNumber,
		AddressWithPrefix: tcpip.AddressWithPrefix{Address: addr, PrefixLen: l.cfg.Address.Bits()},
	}, stack.AddressProperties{}); err != nil {
		s.Close()
		return fmt.Errorf("adding LAN address %v: %s", l.cfg.Address, err)
	}
	subnet := tcpip.AddressWithPrefix{Address: addr, PrefixLen: l.cfg.Address.Bits()}.Subnet()
	bcast, _ := tcpip.NewSubnet(tcpip.AddrFrom4([4]byte{255, 255, 255, 255}), tcpip.MaskFromBytes([]byte{255, 255, 255, 255}))
	// Routes only to the LAN itself: the box has nowhere to forward to.
	s.SetRouteTable([]tcpip.Route{
		{Destination: subnet, NIC: nicID},
		{Destination: bcast, NIC: nicID},
	})
	l.setPromiscuous(l.cfg.RevealOn())
	return nil
}

// setPromiscuous lets the netstack accept connections to any address and answer
// from it: the reveal responder and the team relay both stand in for addresses
// beyond the box. The filter passes the netstack only what they handle, and the
// outbound gate lets replies go only to the LAN.
func (l *LAN) setPromiscuous(on bool) {
	l.stack.SetPromiscuousMode(nicID, on)
	l.stack.SetSpoofing(nicID, on)
}

// tuneTCP sets the netstack's TCP options explicitly rather than trusting defaults:
// SACK on, buffers sized for a gigabit link a few milliseconds long, reno
// congestion control and RACK loss detection off (both cost throughput in gVisor on
// a loss-free cable).
func tuneTCP(s *stack.Stack) error {
	sack := tcpip.TCPSACKEnabled(true)
	rx := tcpip.TCPReceiveBufferSizeRangeOption{Min: 4 << 10, Default: 1 << 20, Max: 8 << 20}
	tx := tcpip.TCPSendBufferSizeRangeOption{Min: 4 << 10, Default: 1 << 20, Max: 6 << 20}
	moderate := tcpip.TCPModerateReceiveBufferOption(true)
	recovery := tcpip.TCPRecovery(0)
	cc := tcpip.CongestionControlOption("reno")
	delay := tcpip.TCPDelayEnabled(false)
	for _, o := range []struct {
		name string
		opt  tcpip.SettableTransportProtocolOption
	}{
		{"SACK", &sack}, {"receive buffer", &rx}, {"send buffer", &tx},
		{"receive buffer moderation", &moderate}, {"recovery", &recovery},
		{"congestion control", &cc}, {"delay", &delay},
	} {
		if err := s.SetTransportProtocolOption(tcp.ProtocolNumber, o.opt); err != nil {
			return fmt.Errorf("setting TCP %s: %s", o.name, err)
		}
	}
	return nil
}

// Addr is the box's LAN address.
func (l *LAN) Addr() netip.Addr { return l.cfg.Address.Addr() }

// Prefix is the LAN prefix with the box's address.
func (l *LAN) Prefix() netip.Prefix { return l.cfg.Address }

// MAC is the LAN port's hardware address.
func (l *LAN) MAC() net.HardwareAddr { return net.HardwareAddr(l.ep.LinkAddress()) }

// Stats are the LAN port's counters.
type Stats struct {
	Link link.Stats
	// UDP counts the datagrams of the UDP services served without the
	// netstack (ListenUDP: DNS).
	UDP UDPStats
	// StackDropped counts packets the filter let through but the netstack
	// refused (bad transport checksum, no endpoint after a listener closed…).
	StackDropped uint64
}

// Stats returns the LAN port's counters.
func (l *LAN) Stats() Stats {
	st := l.stack.Stats()
	return Stats{
		Link: l.ep.Stats(),
		UDP:  l.udpStats.snapshot(),
		StackDropped: st.IP.MalformedPacketsReceived.Value() + st.IP.InvalidDestinationAddressesReceived.Value() +
			st.TCP.ChecksumErrors.Value() + st.UDP.ChecksumErrors.Value() + st.UDP.UnknownPortErrors.Value() +
			st.UDP.MalformedPacketsReceived.Value() + st.TCP.InvalidSegmentsReceived.Value(),
	}
}

// Reconfig applies cfg. Only Reveal changes at run time; a new interface or
// address needs the LAN to be built anew (the daemon does that).
func (l *LAN) Reconfig(cfg Config) error {
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return err
	}
	if cfg.Interface != l.cfg.Interface || cfg.Address != l.cfg.Address {
		return fmt.Errorf("lan: changing the interface or address (%s %v → %s %v) needs the LAN restarted",
			l.cfg.Interface, l.cfg.Address, cfg.Interface, cfg.Address)
	}
	if on := cfg.RevealOn(); on != l.rules.Load().Config().Reveal {
		// Turning on, the stack is ready before the filter lets TCP through;
		// turning off, the filter stops it before the stack is narrowed.
		if on {
			l.setPromiscuous(true)
		}
		if err := l.swapRules(func(c *filter.Config) { c.Reveal = on }); err != nil {
			return err
		}
		if !on {
			l.setPromiscuous(len(l.rules.Load().Config().Team) > 0)
		}
	}
	return nil
}

// swapRules builds a new ruleset from the current one and swaps it in whole.
func (l *LAN) swapRules(fn func(*filter.Config)) error {
	for {
		old := l.rules.Load()
		rs, err := old.With(fn)
		if err != nil {
			return err
		}
		if l.rules.CompareAndSwap(old, rs) {
			return nil
		}
	}
}

// spawn runs fn in a goroutine Close waits for, unless the LAN is closing (then
// it reports false and fn does not run).
func (l *LAN) spawn(fn func()) bool {
	l.spawnMu.Lock()
	defer l.spawnMu.Unlock()
	if l.closed {
		return false
	}
	l.wg.Add(1)
	go func() {
		defer l.wg.Done()
		fn()
	}()
	return true
}

// Close stops the LAN port: listeners, reveal connections, the netstack and the
// link.
func (l *LAN) Close() error {
	l.closeOnce.Do(func() {
		l.spawnMu.Lock()
		l.closed = true
		l.spawnMu.Unlock()
		close(l.closing)
		l.closeUDP()
		l.stack.Close()
		l.wg.Wait()
		l.ep.Close()
		l.stack.Wait()
	})
	return nil
}
