package wan

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/insomniacslk/dhcp/dhcpv4/nclient4"
	"github.com/jsimonetti/rtnetlink"
	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// RouteProtocol tags the routes and rules the box installs (rtnetlink's protocol
// field), so that it finds and replaces its own on restart and leaves others alone.
const RouteProtocol = 201

// The team mesh's direct paths (SetDirect): an ip rule sends the tailnet's socket
// — UDP, its mark, its port — to DirectTable, which holds one route, the default
// via the WAN's gateway. The rule comes after the main table's (32766) and the
// default table's (32767), so a marked packet to the WAN's own network or to the
// VPN endpoint follows the main table as before; only what the main table has no
// route for (everything else: it has no default route) takes DirectTable.
const (
	DirectTable        = 201
	DirectRulePriority = 32800
)

const (
	reconcileEvery = 5 * time.Second
	carrierEvery   = time.Second
	dhcpTimeout    = 3 * time.Second
	dhcpRetryMin   = 2 * time.Second
	dhcpRetryMax   = 30 * time.Second
)

// Deps are what a Port needs from the rest of the box.
type Deps struct {
	Logger *slog.Logger
	// Changed is called (from the port's goroutine) when the port's address or
	// readiness changes: the tunnel rebinds its socket.
	Changed func(State)
}

// Port is the running WAN port.
type Port struct {
	cfg  Config
	log  *slog.Logger
	deps Deps

	mu       sync.Mutex
	state    State
	endpoint netip.Addr // the VPN endpoint to route; invalid: none
	direct   direct     // the team mesh's direct paths; zero: none
	lease    *nclient4.Lease

	wake   chan struct{}
	cancel context.CancelFunc
	done   chan struct{}
}

// Start takes over the WAN port as cfg says and keeps it configured until Close.
func Start(cfg Config, deps Deps) (*Port, error) {
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if deps.Logger == nil {
		deps.Logger = slog.New(slog.DiscardHandler)
	}
	if deps.Changed == nil {
		deps.Changed = func(State) {}
	}
	p := &Port{cfg: cfg, log: deps.Logger, deps: deps, wake: make(chan struct{}, 1), done: make(chan struct{})}
	p.state = State{Interface: cfg.Interface, Addressing: cfg.Addressing}
	if cfg.Addressing != System {
		if _, err := net.InterfaceByName(cfg.Interface); err != nil {
			return nil, fmt.Errorf("wan.interface %q: %w", cfg.Interface, err)
		}
		// No IPv6 on the WAN: its neighbour discovery and router solicitations
		// would be seen by the network the box is on.
		if err := os.WriteFile("/proc/sys/net/ipv6/conf/"+cfg.Interface+"/disable_ipv6", []byte("1"), 0o644); err != nil && !errors.Is(err, os.ErrNotExist) {
			p.log.Warn("could not turn IPv6 off on the WAN port", "err", err)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	p.cancel = cancel
	go p.run(ctx)
	return p, nil
}

// Close stops managing the port. The address and the endpoint's route stay, so
// that a restarting daemon finds them; the firewall keeps them harmless. The
// direct paths' rule and route go: they serve a tailnet node that stops with the
// daemon.
func (p *Port) Close() {
	p.cancel()
	<-p.done
	if p.cfg.Addressing == System {
		return
	}
	c, err := rtnetlink.Dial(nil)
	if err != nil {
		p.log.Warn("removing the direct paths' route", "err", err)
		return
	}
	defer c.Close()
	if _, err := p.configureDirect(c, 0, netip.Addr{}, direct{}); err != nil {
		p.log.Warn("removing the direct paths' route", "err", err)
	}
}

// State returns the port's state.
func (p *Port) State() State {
	p.mu.Lock()
	defer p.mu.Unlock()
	s := p.state
	s.DNS = slices.Clone(s.DNS)
	return s
}

// SetEndpoint names the one destination routed through the port (the VPN
// endpoint); an invalid address routes nothing.
func (p *Port) SetEndpoint(a netip.Addr) {
	a = a.Unmap()
	p.mu.Lock()
	if a != p.endpoint && a.IsValid() && p.cfg.Addressing != System {
		// Not ready again until the route to the new endpoint is in.
		p.state.Ready = false
		p.state.Problem = "routing the VPN endpoint " + a.String()
	}
	p.endpoint = a
	p.mu.Unlock()
	p.poke()
}

// direct is the socket SetDirect names.
type direct struct {
	mark uint32
	port uint16
}

func (d direct) on() bool { return d.mark != 0 && d.port != 0 }

// SetDirect routes the team mesh's direct paths through the port: UDP from the
// socket carrying mark and bound to port goes, when the main table has no route
// for it, by a default route via the WAN's gateway in DirectTable. Only while an
// endpoint is set (no VPN, no direct paths) and the port has an address and a
// gateway; without a gateway only the WAN's own network is reached directly, by
// its connected route. mark 0 removes the rule and the route. With addressing
// "system" the operating system's routes decide and the box changes nothing.
func (p *Port) SetDirect(mark uint32, port uint16) {
	p.mu.Lock()
	p.direct = direct{mark, port}
	p.mu.Unlock()
	p.poke()
}

func (p *Port) poke() {
	select {
	case p.wake <- struct{}{}:
	default:
	}
}

func (p *Port) run(ctx context.Context) {
	defer close(p.done)
	reconcile := time.NewTicker(reconcileEvery)
	defer reconcile.Stop()
	carrierTick := time.NewTicker(carrierEvery)
	defer carrierTick.Stop()
	var nextDHCP time.Time // when the DHCP client acts next
	backoff := dhcpRetryMin
	lastCarrier := false
	for {
		carrier := p.carrier()
		if carrier && !lastCarrier && p.cfg.Addressing == DHCP && !nextDHCP.IsZero() {
			// The cable came back (perhaps into another network): ask again now.
			p.log.Info("WAN link up", "interface", p.cfg.Interface)
			p.mu.Lock()
			if p.lease != nil {
				p.lease.CreationTime = time.Time{} // renew at once
			}
			p.mu.Unlock()
			nextDHCP = time.Now()
			backoff = dhcpRetryMin
		}
		lastCarrier = carrier
		switch p.cfg.Addressing {
		case DHCP:
			if carrier && !time.Now().Before(nextDHCP) {
				next, err := p.dhcpStep(ctx)
				if err != nil {
					if ctx.Err() != nil {
						return
					}
					p.setProblem(fmt.Sprintf("no DHCP lease on %s: %v", p.cfg.Interface, err))
					p.log.Warn("WAN DHCP", "interface", p.cfg.Interface, "err", err, "retry_in", backoff)
					nextDHCP = time.Now().Add(backoff)
					backoff = min(backoff*2, dhcpRetryMax)
				} else {
					nextDHCP = next
					backoff = dhcpRetryMin
				}
			} else if !carrier {
				p.setProblem(fmt.Sprintf("the WAN port %s has no link (is the cable in?)", p.cfg.Interface))
			}
		case Static:
			p.mu.Lock()
			p.state.Address, p.state.Gateway = p.cfg.Address, p.cfg.Gateway
			p.mu.Unlock()
		}
		p.apply(carrier)
		wait := reconcileEvery
		if p.cfg.Addressing == DHCP && carrier {
			wait = max(0, min(wait, time.Until(nextDHCP)))
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-p.wake:
		case <-carrierTick.C:
		case <-reconcile.C:
		case <-t.C:
		}
		t.Stop()
	}
}

func (p *Port) carrier() bool {
	if p.cfg.Interface == "" {
		return false
	}
	b, err := os.ReadFile("/sys/class/net/" + p.cfg.Interface + "/carrier")
	return err == nil && strings.TrimSpace(string(b)) == "1"
}

func (p *Port) setProblem(msg string) {
	p.mu.Lock()
	changed := p.state.Problem != msg
	p.state.Problem = msg
	st := p.state
	p.mu.Unlock()
	if changed {
		p.deps.Changed(st)
	}
}

// dhcpStep gets or renews the lease and says when to act next. The DHCP client's
// packet socket is open only during the exchange.
func (p *Port) dhcpStep(ctx context.Context) (time.Time, error) {
	p.mu.Lock()
	lease := p.lease
	p.mu.Unlock()
	ctx, cancel := context.WithTimeout(ctx, 4*dhcpTimeout)
	defer cancel()
	c, err := nclient4.New(p.cfg.Interface, nclient4.WithTimeout(dhcpTimeout), nclient4.WithRetry(2))
	if err != nil {
		return time.Time{}, fmt.Errorf("opening the DHCP client's socket: %w", err)
	}
	defer c.Close()
	var next *nclient4.Lease
	if lease != nil && time.Since(lease.CreationTime) < leaseTime(lease) {
		next, err = c.Renew(ctx, lease)
		if err != nil {
			var nak *nclient4.ErrNak
			if errors.As(err, &nak) || time.Since(lease.CreationTime) >= rebindTime(lease) {
				p.log.Info("WAN lease not renewed; asking afresh", "err", err)
				lease = nil
			} else {
				// Keep the lease until it runs out; try again in a while.
				return time.Now().Add(dhcpRetryMax), nil
			}
		}
	}
	if next == nil {
		var mods []dhcpv4.Modifier
		if lease != nil {
			mods = append(mods, dhcpv4.WithOption(dhcpv4.OptRequestedIPAddress(lease.ACK.YourIPAddr)))
		}
		next, err = c.Request(ctx, mods...)
		if err != nil {
			p.dropLease()
			return time.Time{}, err
		}
	}
	ack := next.ACK
	ip, ok := netip.AddrFromSlice(ack.YourIPAddr.To4())
	mask := ack.SubnetMask()
	if !ok || !ip.IsValid() || ip.IsUnspecified() || mask == nil {
		p.dropLease()
		return time.Time{}, fmt.Errorf("the DHCP server gave an unusable address (%v mask %v)", ack.YourIPAddr, mask)
	}
	bits, _ := mask.Size()
	st := State{Address: netip.PrefixFrom(ip, bits)}
	if rs := ack.Router(); len(rs) > 0 {
		st.Gateway, _ = netip.AddrFromSlice(rs[0].To4())
	}
	st.Server, _ = netip.AddrFromSlice(ack.ServerIdentifier().To4())
	for _, d := range ack.DNS() {
		if a, ok := netip.AddrFromSlice(d.To4()); ok {
			st.DNS = append(st.DNS, a)
		}
	}
	st.LeaseExpires = next.CreationTime.Add(leaseTime(next))
	p.mu.Lock()
	old := p.state.Address
	p.lease = next
	p.state.Address, p.state.Gateway, p.state.Server, p.state.DNS, p.state.LeaseExpires = st.Address, st.Gateway, st.Server, st.DNS, st.LeaseExpires
	p.mu.Unlock()
	if old != st.Address {
		p.log.Info("WAN lease", "interface", p.cfg.Interface, "address", st.Address, "gateway", st.Gateway, "server", st.Server, "expires", st.LeaseExpires.Format(time.RFC3339))
	}
	return next.CreationTime.Add(renewTime(next)), nil
}

func (p *Port) dropLease() {
	p.mu.Lock()
	p.lease = nil
	p.state.Address, p.state.Gateway, p.state.LeaseExpires = netip.Prefix{}, netip.Addr{}, time.Time{}
	p.mu.Unlock()
}

func leaseTime(l *nclient4.Lease) time.Duration {
	d := l.ACK.IPAddressLeaseTime(time.Hour)
	return max(d, time.Minute)
}

func renewTime(l *nclient4.Lease) time.Duration {
	if l.CreationTime.IsZero() {
		return 0
	}
	d := l.ACK.IPAddressRenewalTime(leaseTime(l) / 2)
	return min(max(d, 30*time.Second), leaseTime(l))
}

func rebindTime(l *nclient4.Lease) time.Duration {
	d := l.ACK.IPAddressRebindingTime(leaseTime(l) * 7 / 8)
	return min(max(d, renewTime(l)), leaseTime(l))
}

// apply makes the kernel hold the port's address and the route to the endpoint,
// and removes addresses and routes of the box's that are no longer wanted.
func (p *Port) apply(carrier bool) {
	p.mu.Lock()
	st := p.state
	endpoint := p.endpoint
	dp := p.direct
	lease := p.lease
	p.mu.Unlock()
	st.Carrier = carrier
	problem := st.Problem
	if p.cfg.Addressing == System {
		st.Address, problem = p.systemAddress()
		st.Ready = st.Address.IsValid()
		st.DirectRoute = ""
		if dp.on() {
			st.DirectRoute = "left to the operating system's routes (wan.addressing is \"system\")"
		}
	} else {
		var valid time.Duration
		if lease != nil {
			valid = time.Until(lease.CreationTime.Add(leaseTime(lease)))
		}
		var err error
		st.DirectRoute, err = p.configure(st.Address, valid, st.Gateway, endpoint, dp)
		switch {
		case err != nil:
			problem = err.Error()
			st.Ready = false
		case !st.Address.IsValid():
			st.Ready = false
			if problem == "" {
				problem = "waiting for an address on " + p.cfg.Interface
			}
		case endpoint.IsValid() && !st.Address.Contains(endpoint) && !st.Gateway.IsValid():
			st.Ready = false
			problem = "the WAN network gave no router to reach the VPN endpoint"
		default:
			st.Ready, problem = carrier, ""
			if !carrier {
				problem = fmt.Sprintf("the WAN port %s has no link (is the cable in?)", p.cfg.Interface)
			}
		}
	}
	st.Problem = problem
	p.mu.Lock()
	if p.endpoint != endpoint && p.endpoint.IsValid() && p.cfg.Addressing != System {
		// The endpoint changed meanwhile: not ready until its route is in.
		st.Ready, st.Problem = false, "routing the VPN endpoint "+p.endpoint.String()
		p.poke()
	}
	prev := p.state
	p.state = st
	p.mu.Unlock()
	if prev.Address != st.Address || prev.Ready != st.Ready || prev.Problem != st.Problem || prev.Gateway != st.Gateway {
		p.deps.Changed(st)
	}
}

// systemAddress reports the first IPv4 address the operating system gave the
// port (or any interface, when none is named).
func (p *Port) systemAddress() (netip.Prefix, string) {
	var ifs []net.Interface
	if p.cfg.Interface != "" {
		ifi, err := net.InterfaceByName(p.cfg.Interface)
		if err != nil {
			return netip.Prefix{}, fmt.Sprintf("the WAN port %s: %v", p.cfg.Interface, err)
		}
		ifs = []net.Interface{*ifi}
	} else {
		all, _ := net.Interfaces()
		ifs = all
	}
	for _, ifi := range ifs {
		if ifi.Flags&net.FlagLoopback != 0 {
			continue
		}
		addrs, _ := ifi.Addrs()
		for _, a := range addrs {
			if ipn, ok := a.(*net.IPNet); ok {
				if ip, ok := netip.AddrFromSlice(ipn.IP.To4()); ok {
					bits, _ := ipn.Mask.Size()
					return netip.PrefixFrom(ip, bits), ""
				}
			}
		}
	}
	return netip.Prefix{}, "no IPv4 address on the WAN (the operating system configures it: wan.addressing is \"system\")"
}

// configure brings the link up, sets addr (valid for lifetime, 0: forever), routes
// endpoint via gw, and removes the box's other addresses and routes on the port;
// then it puts the direct paths' rule and route in step with dp, and describes
// them.
func (p *Port) configure(addr netip.Prefix, lifetime time.Duration, gw, endpoint netip.Addr, dp direct) (string, error) {
	ifi, err := net.InterfaceByName(p.cfg.Interface)
	if err != nil {
		return "", fmt.Errorf("the WAN port %s: %w", p.cfg.Interface, err)
	}
	idx := uint32(ifi.Index)
	c, err := rtnetlink.Dial(nil)
	if err != nil {
		return "", fmt.Errorf("opening rtnetlink: %w", err)
	}
	defer c.Close()
	if ifi.Flags&net.FlagUp == 0 {
		if err := c.Link.Set(&rtnetlink.LinkMessage{Family: unix.AF_UNSPEC, Index: idx, Flags: unix.IFF_UP, Change: unix.IFF_UP}); err != nil {
			return "", fmt.Errorf("bringing the WAN port %s up: %w", p.cfg.Interface, err)
		}
	}
	// Addresses: ours in, every other IPv4 address on the port out.
	addrs, err := c.Address.List()
	if err != nil {
		return "", fmt.Errorf("listing addresses: %w", err)
	}
	have := false
	for _, m := range addrs {
		if m.Index != idx || m.Family != unix.AF_INET || m.Attributes == nil {
			continue
		}
		a, _ := netip.AddrFromSlice(m.Attributes.Address.To4())
		if addr.IsValid() && a == addr.Addr() && int(m.PrefixLength) == addr.Bits() {
			have = true
			continue
		}
		if err := c.Address.Delete(&rtnetlink.AddressMessage{Family: unix.AF_INET, PrefixLength: m.PrefixLength, Index: idx,
			Attributes: &rtnetlink.AddressAttributes{Address: m.Attributes.Address, Local: m.Attributes.Local}}); err != nil {
			p.log.Warn("removing an old WAN address", "address", a, "err", err)
		} else {
			p.log.Info("removed WAN address", "address", a)
		}
	}
	if addr.IsValid() && (!have || lifetime > 0) {
		msg := &rtnetlink.AddressMessage{
			Family: unix.AF_INET, PrefixLength: uint8(addr.Bits()), Index: idx, Scope: unix.RT_SCOPE_UNIVERSE,
			Attributes: &rtnetlink.AddressAttributes{Address: addr.Addr().AsSlice(), Local: addr.Addr().AsSlice(), Broadcast: broadcast(addr)},
		}
		if lifetime > 0 {
			// The kernel drops the address itself when the lease runs out,
			// should the daemon not be there to.
			secs := uint32(max(lifetime/time.Second, 1))
			msg.Attributes.CacheInfo = rtnetlink.CacheInfo{Prefered: secs, Valid: secs}
		}
		if _, err := c.Execute(msg, unix.RTM_NEWADDR, netlink.Request|netlink.Create|netlink.Replace|netlink.Acknowledge); err != nil {
			return "", fmt.Errorf("setting WAN address %v: %w", addr, err)
		}
	}
	// Routes: only the endpoint, via the gateway (none if it is on the link).
	want := endpoint.IsValid() && endpoint.Is4() && addr.IsValid() && gw.IsValid() && !addr.Contains(endpoint)
	routes, err := c.Route.List()
	if err != nil {
		return "", fmt.Errorf("listing routes: %w", err)
	}
	haveRoute := false
	for _, r := range routes {
		if r.Protocol != RouteProtocol || r.Family != unix.AF_INET || routeTable(r) != unix.RT_TABLE_MAIN {
			continue // the direct paths' table is configureDirect's
		}
		dst, _ := netip.AddrFromSlice(r.Attributes.Dst.To4())
		rgw, _ := netip.AddrFromSlice(r.Attributes.Gateway.To4())
		if want && dst == endpoint && r.DstLength == 32 && rgw == gw && r.Attributes.OutIface == idx {
			haveRoute = true
			continue
		}
		if err := c.Route.Delete(&r); err != nil && !errors.Is(err, syscall.ESRCH) {
			p.log.Warn("removing an old route", "dst", dst, "err", err)
		}
	}
	if want && !haveRoute {
		err := c.Route.Replace(&rtnetlink.RouteMessage{
			Family: unix.AF_INET, DstLength: 32, Table: unix.RT_TABLE_MAIN, Protocol: RouteProtocol,
			Scope: unix.RT_SCOPE_UNIVERSE, Type: unix.RTN_UNICAST,
			Attributes: rtnetlink.RouteAttributes{Dst: endpoint.AsSlice(), Gateway: gw.AsSlice(), OutIface: idx, Table: unix.RT_TABLE_MAIN},
		})
		if err != nil {
			return "", fmt.Errorf("routing the VPN endpoint %v via %v: %w", endpoint, gw, err)
		}
		p.log.Info("routed the VPN endpoint", "endpoint", endpoint, "gateway", gw, "interface", p.cfg.Interface)
	}
	// The direct paths: a failure there leaves the VPN's way as it is, and
	// the direct paths closed; it is said in their description.
	if !endpoint.IsValid() || !addr.IsValid() {
		dp = direct{} // no VPN or no address: no direct paths either
	}
	desc, err := p.configureDirect(c, idx, gw, dp)
	if err != nil {
		desc = "not routed: " + err.Error()
	}
	if desc != p.State().DirectRoute {
		if err != nil {
			p.log.Warn("routing the team's direct paths", "err", err)
		} else if desc != "" {
			p.log.Info("routing the team's direct paths", "route", desc)
		} else {
			p.log.Info("removed the team's direct paths' route")
		}
	}
	return desc, nil
}

// routeTable is the table a route is in (the attribute holds tables above 255).
func routeTable(r rtnetlink.RouteMessage) uint32 {
	if r.Attributes.Table != 0 {
		return r.Attributes.Table
	}
	return uint32(r.Table)
}

// configureDirect makes the kernel hold the direct paths' rule and route for dp
// via gw on the port idx — none if dp is off or there is no gateway — removes
// the box's other rules and DirectTable routes, and describes what is in.
func (p *Port) configureDirect(c *rtnetlink.Conn, idx uint32, gw netip.Addr, dp direct) (string, error) {
	want := dp.on() && gw.IsValid() && gw.Is4()
	// The reverse-path filter looks a peer's datagram up with its packet
	// mark (the firewall marks what arrives at the port) only with
	// src_valid_mark on; it is the port's own setting, harmless without
	// direct paths, and off again with them.
	if p.cfg.Interface != "" {
		v := "0"
		if want {
			v = "1"
		}
		path := "/proc/sys/net/ipv4/conf/" + p.cfg.Interface + "/src_valid_mark"
		if b, err := os.ReadFile(path); err == nil && strings.TrimSpace(string(b)) != v {
			if err := os.WriteFile(path, []byte(v), 0o644); err != nil {
				return "", fmt.Errorf("setting %s to %s: %w", path, v, err)
			}
		}
	}
	nc, err := netlink.Dial(unix.NETLINK_ROUTE, nil)
	if err != nil {
		return "", fmt.Errorf("opening rtnetlink: %w", err)
	}
	defer nc.Close()
	rules, err := listRules(nc)
	if err != nil {
		return "", err
	}
	haveRule := false
	for _, r := range rules {
		if r.protocol() != RouteProtocol {
			continue
		}
		if want && r.isDirect(dp) {
			haveRule = true
			continue
		}
		if err := r.delete(nc); err != nil {
			return "", err
		}
	}
	routes, err := c.Route.List()
	if err != nil {
		return "", fmt.Errorf("listing routes: %w", err)
	}
	haveRoute := false
	for _, r := range routes {
		if r.Protocol != RouteProtocol || r.Family != unix.AF_INET || routeTable(r) != DirectTable {
			continue
		}
		rgw, _ := netip.AddrFromSlice(r.Attributes.Gateway.To4())
		if want && r.DstLength == 0 && rgw == gw && r.Attributes.OutIface == idx {
			haveRoute = true
			continue
		}
		if err := c.Route.Delete(&r); err != nil && !errors.Is(err, syscall.ESRCH) {
			return "", fmt.Errorf("removing the old direct paths' route: %w", err)
		}
	}
	switch {
	case !dp.on():
		return "", nil
	case !want:
		return "none: the WAN network gave no router (only its own addresses are reached directly)", nil
	}
	if !haveRoute {
		// The route first: a rule into an empty table would be looked up
		// for nothing.
		err := c.Route.Replace(&rtnetlink.RouteMessage{
			Family: unix.AF_INET, Table: DirectTable, Protocol: RouteProtocol,
			Scope: unix.RT_SCOPE_UNIVERSE, Type: unix.RTN_UNICAST,
			Attributes: rtnetlink.RouteAttributes{Gateway: gw.AsSlice(), OutIface: idx, Table: DirectTable},
		})
		if err != nil {
			return "", fmt.Errorf("adding the default route via %v to table %d: %w", gw, DirectTable, err)
		}
	}
	if !haveRule {
		b, err := directRule(dp).MarshalBinary()
		if err == nil {
			_, err = nc.Execute(netlink.Message{
				Header: netlink.Header{Type: unix.RTM_NEWRULE, Flags: netlink.Request | netlink.Create | netlink.Excl | netlink.Acknowledge},
				Data:   b,
			})
		}
		if err != nil {
			return "", fmt.Errorf("adding the rule for fwmark 0x%x udp sport %d: %w", dp.mark, dp.port, err)
		}
	}
	return fmt.Sprintf("fwmark 0x%x udp sport %d: default via %v dev %s (table %d)", dp.mark, dp.port, gw, p.cfg.Interface, DirectTable), nil
}

// directRule is the ip rule for dp: `priority 32800 fwmark <mark> ipproto udp
// sport <port> lookup 201 proto 201`.
func directRule(dp direct) *rtnetlink.RuleMessage {
	prio, table, mask := uint32(DirectRulePriority), uint32(DirectTable), ^uint32(0)
	proto, ipproto := uint8(RouteProtocol), uint8(unix.IPPROTO_UDP)
	mark := dp.mark
	return &rtnetlink.RuleMessage{
		Family: unix.AF_INET, Table: DirectTable, Action: unix.FR_ACT_TO_TBL,
		Attributes: &rtnetlink.RuleAttributes{
			Priority: &prio, Table: &table, Protocol: &proto,
			FwMark: &mark, FwMask: &mask, IPProto: &ipproto,
			SPortRange: &rtnetlink.RulePortRange{Start: dp.port, End: dp.port},
		},
	}
}

// rule is an IPv4 routing rule as the kernel dumps it. Rules are read here rather
// than with rtnetlink's RuleMessage, which refuses a whole dump when one rule
// carries an attribute it does not know — and kernels from 6.15 add
// FRA_SPORT_MASK to every rule with a port, ours included.
type rule struct {
	raw   []byte // the message: sent back as it is to delete the rule
	attrs map[uint16][]byte
}

// listRules returns the IPv4 routing rules.
func listRules(nc *netlink.Conn) ([]rule, error) {
	req := make([]byte, 12) // struct fib_rule_hdr
	req[0] = unix.AF_INET
	msgs, err := nc.Execute(netlink.Message{Header: netlink.Header{Type: unix.RTM_GETRULE, Flags: netlink.Request | netlink.Dump}, Data: req})
	if err != nil {
		return nil, fmt.Errorf("listing routing rules: %w", err)
	}
	var rules []rule
	for _, m := range msgs {
		r, err := parseRule(m.Data)
		if err != nil {
			return nil, fmt.Errorf("listing routing rules: %w", err)
		}
		if r.raw[0] == unix.AF_INET {
			rules = append(rules, r)
		}
	}
	return rules, nil
}

// parseRule reads a fib_rule_hdr and its attributes, keeping those it does not
// know as they are.
func parseRule(b []byte) (rule, error) {
	if len(b) < 12 {
		return rule{}, fmt.Errorf("a rule message of %d bytes", len(b))
	}
	r := rule{raw: b, attrs: make(map[uint16][]byte)}
	ad, err := netlink.NewAttributeDecoder(b[12:])
	if err != nil {
		return rule{}, err
	}
	for ad.Next() {
		r.attrs[ad.Type()] = ad.Bytes()
	}
	return r, ad.Err()
}

func (r rule) u8(a uint16) (uint8, bool) {
	v, ok := r.attrs[a]
	if !ok || len(v) != 1 {
		return 0, false
	}
	return v[0], true
}

func (r rule) u32(a uint16) (uint32, bool) {
	v, ok := r.attrs[a]
	if !ok || len(v) != 4 {
		return 0, false
	}
	return binary.NativeEndian.Uint32(v), true
}

// protocol is who installed the rule (FRA_PROTOCOL).
func (r rule) protocol() uint8 {
	p, _ := r.u8(unix.FRA_PROTOCOL)
	return p
}

// isDirect reports whether r is exactly directRule(dp).
func (r rule) isDirect(dp direct) bool {
	is32 := func(a uint16, want uint32) bool { v, ok := r.u32(a); return ok && v == want }
	ipproto, _ := r.u8(unix.FRA_IP_PROTO)
	sport := make([]byte, 4)
	binary.NativeEndian.PutUint16(sport, dp.port)
	binary.NativeEndian.PutUint16(sport[2:], dp.port)
	for _, a := range []uint16{unix.FRA_SRC, unix.FRA_DST, unix.FRA_IIFNAME, unix.FRA_OIFNAME, unix.FRA_GOTO, unix.FRA_UID_RANGE, unix.FRA_DPORT_RANGE, unix.FRA_L3MDEV, unix.FRA_TUN_ID} {
		if _, ok := r.attrs[a]; ok {
			return false
		}
	}
	return r.raw[7] == unix.FR_ACT_TO_TBL && r.raw[1] == 0 && r.raw[2] == 0 && r.raw[8]&unix.FIB_RULE_INVERT == 0 &&
		is32(unix.FRA_PRIORITY, DirectRulePriority) && is32(unix.FRA_TABLE, DirectTable) &&
		is32(unix.FRA_FWMARK, dp.mark) && is32(unix.FRA_FWMASK, ^uint32(0)) &&
		ipproto == unix.IPPROTO_UDP && bytes.Equal(r.attrs[unix.FRA_SPORT_RANGE], sport)
}

// delete removes the rule from the kernel.
func (r rule) delete(nc *netlink.Conn) error {
	_, err := nc.Execute(netlink.Message{Header: netlink.Header{Type: unix.RTM_DELRULE, Flags: netlink.Request | netlink.Acknowledge}, Data: r.raw})
	if err != nil && !errors.Is(err, syscall.ENOENT) {
		return fmt.Errorf("removing an old routing rule: %w", err)
	}
	return nil
}

func broadcast(p netip.Prefix) net.IP {
	if p.Bits() >= 31 {
		return nil
	}
	b := p.Masked().Addr().As4()
	for i := p.Bits(); i < 32; i++ {
		b[i/8] |= 0x80 >> (i % 8)
	}
	return net.IP(b[:])
}
