package dhcp

import (
	"context"
	"log/slog"
	"net"
	"net/netip"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/insomniacslk/dhcp/iana"
	"github.com/insomniacslk/dhcp/rfc1035label"

	"github.com/redoubt/redoubt/dhcp/leases"
	"github.com/redoubt/redoubt/internal/ratelimit"
)

// Option codes used here (RFC 2132 and later).
const (
	optSubnetMask    = 1
	optRouter        = 3
	optDNS           = 6
	optHostName      = 12
	optDomainName    = 15
	optMTU           = 26
	optBroadcast     = 28
	optRequestedIP   = 50
	optLeaseTime     = 51
	optMessageType   = 53
	optServerID      = 54
	optMessage       = 56
	optRenewalT1     = 58
	optRebindingT2   = 59
	optVendorClass   = 60
	optClientID      = 61
	optRelayInfo     = 82
	optCaptivePortal = 114 // RFC 8910
	optDomainSearch  = 119
)

// ServerPort is the DHCP server's UDP port; clients listen on 68.
const ServerPort = 67

const (
	clientPort = 68
	serverPort = ServerPort
	// maxClientID bounds option 61; real ones are 7 to about 20 bytes.
	maxClientID = 128
	// perMACRate and perMACBurst bound how many packets one MAC gets answered;
	// a client in trouble retries a few times a second at most.
	perMACRate  = 10
	perMACBurst = 20
	// maxTracked bounds the per-MAC limiters between sweeps; beyond it new MACs
	// go unlimited (a flood from random MACs is bounded by the queue instead).
	maxTracked = 4096
)

var bcast4 = netip.AddrFrom4([4]byte{255, 255, 255, 255})

// replyOptions are the options every OFFER and ACK carries, encoded once per
// config: static (mask, router, DNS, domain, MTU, broadcast, search) and the lease
// times.
type replyOptions struct {
	static      []byte
	leaseTimes  []byte
	leaseLength time.Duration
}

// appendOption appends an option in wire form, split into several instances when
// longer than 255 bytes (RFC 3396).
func appendOption(b []byte, code uint8, v []byte) []byte {
	if len(v) == 0 {
		return append(b, code, 0)
	}
	for len(v) > 0 {
		n := min(len(v), 255)
		b = append(b, code, byte(n))
		b = append(b, v[:n]...)
		v = v[n:]
	}
	return b
}

func compileOptions(cfg Config, lan netip.Prefix) *replyOptions {
	box := lan.Addr().AsSlice()
	_, bc := bounds(lan)
	bcb := addr(bc).AsSlice()
	var static []byte
	static = appendOption(static, optSubnetMask, net.CIDRMask(lan.Bits(), 32))
	static = appendOption(static, optRouter, box)
	static = appendOption(static, optDNS, box)
	static = appendOption(static, optDomainName, []byte(cfg.Domain))
	static = appendOption(static, optMTU, []byte{byte(cfg.MTU >> 8), byte(cfg.MTU)})
	static = appendOption(static, optBroadcast, bcb)
	if len(cfg.Search) > 0 {
		search := make([]string, len(cfg.Search))
		for i, d := range cfg.Search {
			search[i] = trimDot(d)
		}
		static = appendOption(static, optDomainSearch, (&rfc1035label.Labels{Labels: search}).ToBytes())
	}
	secs := func(d time.Duration) []byte {
		v := uint32(d / time.Second)
		return []byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)}
	}
	var lt []byte
	lt = appendOption(lt, optLeaseTime, secs(cfg.LeaseTime))
	lt = appendOption(lt, optRenewalT1, secs(cfg.LeaseTime/2))
	lt = appendOption(lt, optRebindingT2, secs(cfg.LeaseTime*7/8))
	return &replyOptions{static: static, leaseTimes: lt, leaseLength: cfg.LeaseTime}
}

func trimDot(s string) string {
	if len(s) > 0 && s[len(s)-1] == '.' {
		return s[:len(s)-1]
	}
	return s
}

// reply is an answer waiting to be sent.
type reply struct {
	msg *dhcpv4.DHCPv4 // header fields and options 53, 54, 56, 61, 82
	// extra are more options, already in wire form (batchCtx.withLease or
	// batchCtx.noLease).
	extra []byte
	dst   netip.AddrPort
	// pin, when valid, is pinned to mac before sending (unicast to a device
	// that cannot answer ARP yet).
	pin   netip.Addr
	mac   net.HardwareAddr
	kind  dhcpv4.MessageType
	grant bool // an ACK granting a lease: sent only once the lease file holds it
}

// batchCtx is what one batch's packets share.
type batchCtx struct {
	opts    *replyOptions
	captive string
	// The options of an OFFER or ACK (withLease) and of an INFORM's ACK
	// (noLease) in wire form, captive portal included.
	withLease, noLease []byte
}

func (bc *batchCtx) prepare() {
	bc.noLease = bc.opts.static
	if bc.captive != "" {
		bc.noLease = appendOption(append([]byte(nil), bc.opts.static...), optCaptivePortal, []byte(bc.captive))
	}
	bc.withLease = append(append([]byte(nil), bc.opts.leaseTimes...), bc.noLease...)
}

// handle decides one packet: the table changes it makes and the reply, if any.
// s.mu is held.
func (s *Server) handle(b []byte, from netip.AddrPort, now time.Time, bc *batchCtx) (reply, bool) {
	if len(b) > maxPacket {
		return s.drop(dropOversized, nil, from, "")
	}
	m, err := dhcpv4.FromBytes(b)
	if err != nil {
		return s.drop(dropUndecodable, nil, from, err.Error())
	}
	if m.OpCode != dhcpv4.OpcodeBootRequest {
		return s.drop(dropWrongOp, m, from, m.OpCode.String())
	}
	if m.HWType != iana.HWTypeEthernet || len(m.ClientHWAddr) != 6 {
		return s.drop(dropHardware, m, from, "not Ethernet")
	}
	mac := [6]byte(m.ClientHWAddr)
	if mac[0]&1 != 0 || mac == [6]byte{} {
		return s.drop(dropHardware, m, from, "not a unicast MAC")
	}
	mt := m.MessageType()
	if mt == dhcpv4.MessageTypeNone {
		return s.drop(dropNoType, m, from, "")
	}
	switch mt {
	case dhcpv4.MessageTypeDiscover, dhcpv4.MessageTypeRequest, dhcpv4.MessageTypeDecline,
		dhcpv4.MessageTypeRelease, dhcpv4.MessageTypeInform:
		s.stats.byType[mt].Add(1)
	default:
		return s.drop(dropUnexpected, m, from, mt.String())
	}
	giaddr := ip4(m.GatewayIPAddr)
	if giaddr.IsValid() && !s.deviceAddr(giaddr) {
		return s.drop(dropForeignRelay, m, from, giaddr.String())
	}
	if !s.allow(mac, now) {
		return s.drop(dropRateLimited, m, from, "")
	}
	id := m.Options[optClientID]
	if len(id) > maxClientID {
		return s.drop(dropBadRequest, m, from, "client identifier too long")
	}
	c := leases.Client{
		MAC:         mac,
		ClientID:    id,
		Hostname:    HostLabel(m.HostName()),
		VendorClass: printable(string(m.Options[optVendorClass]), 64),
	}
	switch mt {
	case dhcpv4.MessageTypeDiscover:
		return s.discover(m, &c, now, bc)
	case dhcpv4.MessageTypeRequest:
		return s.request(m, &c, from, now, bc)
	case dhcpv4.MessageTypeDecline:
		s.decline(m, &c, from, now)
	case dhcpv4.MessageTypeRelease:
		s.release(m, &c, from, now)
	case dhcpv4.MessageTypeInform:
		return s.inform(m, from, bc)
	}
	return reply{}, false
}

func (s *Server) discover(m *dhcpv4.DHCPv4, c *leases.Client, now time.Time, bc *batchCtx) (reply, bool) {
	a, err := s.table.Offer(*c, ip4(m.Options[optRequestedIP]), now)
	if err != nil {
		s.stats.exhausted.Add(1)
		if ok, n := s.warnRate.Allow(now); ok {
			cfg := s.cfg.Load()
			s.log.Warn("DHCP pool exhausted: no address to offer; devices with leases keep renewing",
				"mac", macString(c.MAC), "pool", cfgPool(cfg), "suppressed", n)
		}
		return reply{}, false
	}
	r := s.newReply(m, dhcpv4.MessageTypeOffer)
	r.YourIPAddr = a.AsSlice()
	return s.route(m, r, a, bc.withLease), true
}

func (s *Server) request(m *dhcpv4.DHCPv4, c *leases.Client, from netip.AddrPort, now time.Time, bc *batchCtx) (reply, bool) {
	sid, requested, ci := m.Options[optServerID], ip4(m.Options[optRequestedIP]), ip4(m.ClientIPAddr)
	var a netip.Addr
	switch {
	case sid != nil: // SELECTING: the client chose a server
		if len(sid) != 4 || [4]byte(sid) != s.box {
			s.table.CancelOffer(*c)
			return s.drop(dropOtherServer, m, from, "")
		}
		a = requested
		if !a.IsValid() {
			a = ci
		}
	case requested.IsValid() && !ci.IsValid(): // INIT-REBOOT
		a = requested
	case ci.IsValid(): // RENEWING (unicast) or REBINDING (broadcast)
		a = ci
	}
	if !a.IsValid() {
		return s.drop(dropBadRequest, m, from, "REQUEST names no address")
	}
	prev, had := s.table.LeaseOf(*c)
	l, err := s.table.Request(*c, a, now)
	if err != nil {
		if ok, n := s.logRate.Allow(now); ok {
			s.log.Info("DHCP NAK", "mac", macString(c.MAC), "address", a.String(), "reason", err.Error(), "suppressed", n)
		}
		r := s.newReply(m, dhcpv4.MessageTypeNak)
		r.Options[optMessage] = []byte(err.Error())
		return s.route(m, r, netip.Addr{}, nil), true
	}
	if !had || prev.Addr != a || !prev.Active(now) {
		if ok, n := s.logRate.Allow(now); ok {
			s.log.Info("lease granted", "mac", macString(c.MAC), "address", a.String(), "hostname", l.Hostname,
				"until", l.Expiry.Format(time.RFC3339), "suppressed", n)
		}
	}
	r := s.newReply(m, dhcpv4.MessageTypeAck)
	r.YourIPAddr = a.AsSlice()
	if ci.IsValid() {
		r.ClientIPAddr = ci.AsSlice()
	}
	out := s.route(m, r, a, bc.withLease)
	out.grant = true
	return out, true
}

func (s *Server) decline(m *dhcpv4.DHCPv4, c *leases.Client, from netip.AddrPort, now time.Time) {
	if sid := m.Options[optServerID]; sid != nil && (len(sid) != 4 || [4]byte(sid) != s.box) {
		s.drop(dropOtherServer, m, from, "")
		return
	}
	a := ip4(m.Options[optRequestedIP])
	if _, ok := s.table.Decline(*c, a, now); !ok {
		s.drop(dropNotYours, m, from, "DECLINE of an address not offered to it")
		return
	}
	if ok, n := s.warnRate.Allow(now); ok {
		s.log.Warn("a device found its offered address in use; holding it back",
			"mac", macString(c.MAC), "address", a.String(), "for", s.table.Config().DeclineHold.String(), "suppressed", n)
	}
}

func (s *Server) release(m *dhcpv4.DHCPv4, c *leases.Client, from netip.AddrPort, now time.Time) {
	if sid := m.Options[optServerID]; sid != nil && (len(sid) != 4 || [4]byte(sid) != s.box) {
		s.drop(dropOtherServer, m, from, "")
		return
	}
	a := ip4(m.ClientIPAddr)
	if _, ok := s.table.Release(*c, a, now); !ok {
		s.drop(dropNotYours, m, from, "RELEASE of an address it does not hold")
		return
	}
	if ok, n := s.logRate.Allow(now); ok {
		s.log.Info("lease released", "mac", macString(c.MAC), "address", a.String(), "suppressed", n)
	}
}

func (s *Server) inform(m *dhcpv4.DHCPv4, from netip.AddrPort, bc *batchCtx) (reply, bool) {
	ci := ip4(m.ClientIPAddr)
	if !ci.IsValid() || !s.deviceAddr(ci) {
		return s.drop(dropBadRequest, m, from, "INFORM from an address not on the LAN")
	}
	r := s.newReply(m, dhcpv4.MessageTypeAck)
	r.ClientIPAddr = ci.AsSlice()
	return s.route(m, r, netip.Addr{}, bc.noLease), true
}

// newReply starts an answer to m: the header and the options that depend on the
// request. The rest (reply.extra) is added when it is encoded.
func (s *Server) newReply(m *dhcpv4.DHCPv4, mt dhcpv4.MessageType) *dhcpv4.DHCPv4 {
	r := &dhcpv4.DHCPv4{
		OpCode:        dhcpv4.OpcodeBootReply,
		HWType:        m.HWType,
		TransactionID: m.TransactionID,
		Flags:         m.Flags,
		ClientIPAddr:  net.IPv4zero,
		YourIPAddr:    net.IPv4zero,
		ServerIPAddr:  net.IPv4zero,
		GatewayIPAddr: m.GatewayIPAddr,
		ClientHWAddr:  m.ClientHWAddr,
		Options:       make(dhcpv4.Options, 5),
	}
	r.Options[optMessageType] = []byte{byte(mt)}
	r.Options[optServerID] = s.box[:]
	if id := m.Options[optClientID]; id != nil {
		r.Options[optClientID] = id // RFC 6842
	}
	if ri := m.Options[optRelayInfo]; ri != nil && ip4(m.GatewayIPAddr).IsValid() {
		r.Options[optRelayInfo] = ri // RFC 3046
	}
	return r
}

// magicCookie starts the options (RFC 2131 §3).
var magicCookie = [4]byte{99, 130, 83, 99}

// encode writes a reply in wire form: the BOOTP header, options 53 and 54, the
// extra options, 61 and 56, and the relay agent's 82 last (RFC 3046), padded to
// the 300 bytes some relays insist on.
func encode(m *dhcpv4.DHCPv4, extra []byte) []byte {
	b := make([]byte, 240, 300+len(extra)+len(m.Options[optClientID])+len(m.Options[optMessage])+len(m.Options[optRelayInfo]))
	b[0], b[1], b[2] = byte(dhcpv4.OpcodeBootReply), byte(m.HWType), byte(len(m.ClientHWAddr))
	copy(b[4:8], m.TransactionID[:])
	b[10], b[11] = byte(m.Flags>>8), byte(m.Flags)
	for i, ip := range []net.IP{m.ClientIPAddr, m.YourIPAddr, m.ServerIPAddr, m.GatewayIPAddr} {
		if v4 := ip.To4(); v4 != nil {
			copy(b[12+4*i:], v4)
		}
	}
	copy(b[28:44], m.ClientHWAddr)
	copy(b[236:240], magicCookie[:])
	for _, code := range []uint8{optMessageType, optServerID} {
		if v, ok := m.Options[code]; ok {
			b = appendOption(b, code, v)
		}
	}
	b = append(b, extra...)
	for _, code := range []uint8{optClientID, optMessage, optRelayInfo} {
		if v, ok := m.Options[code]; ok {
			b = appendOption(b, code, v)
		}
	}
	b = append(b, 255)
	for len(b) < 300 {
		b = append(b, 0)
	}
	return b
}

// route addresses a reply as RFC 2131 §4.1 says: to the relay; a NAK to
// everyone; to a client that has an address, there; to one that asked for
// broadcast, to everyone; else to the address offered, at the client's MAC.
func (s *Server) route(m *dhcpv4.DHCPv4, r *dhcpv4.DHCPv4, yiaddr netip.Addr, extra []byte) reply {
	out := reply{msg: r, extra: extra, mac: m.ClientHWAddr, kind: r.MessageType()}
	ci := ip4(m.ClientIPAddr)
	switch gi := ip4(m.GatewayIPAddr); {
	case gi.IsValid():
		out.dst = netip.AddrPortFrom(gi, serverPort)
		if out.kind == dhcpv4.MessageTypeNak {
			r.SetBroadcast()
		}
	case out.kind == dhcpv4.MessageTypeNak:
		out.dst = netip.AddrPortFrom(bcast4, clientPort)
	case ci.IsValid() && s.deviceAddr(ci):
		out.dst = netip.AddrPortFrom(ci, clientPort)
	case m.IsBroadcast() || !yiaddr.IsValid():
		out.dst = netip.AddrPortFrom(bcast4, clientPort)
	default:
		out.dst = netip.AddrPortFrom(yiaddr, clientPort)
		out.pin = yiaddr
	}
	return out
}

// send transmits a reply, pinning the client's MAC first when it is unicast to
// an address the client does not answer ARP for yet.
func (s *Server) send(r *reply) {
	dst := r.dst
	if r.pin.IsValid() {
		if err := s.deps.Neighbors.SetNeighbor(r.pin, r.mac); err != nil {
			dst = netip.AddrPortFrom(bcast4, clientPort)
		}
	}
	if _, err := s.conn.WriteTo(encode(r.msg, r.extra), net.UDPAddrFromAddrPort(dst)); err != nil {
		s.stats.sendErrors.Add(1)
		if ok, n := s.logRate.Allow(s.now()); ok {
			s.log.Warn("sending DHCP reply", "to", dst.String(), "type", r.kind.String(), "err", err, "suppressed", n)
		}
		return
	}
	switch r.kind {
	case dhcpv4.MessageTypeOffer:
		s.stats.offers.Add(1)
	case dhcpv4.MessageTypeAck:
		s.stats.acks.Add(1)
	case dhcpv4.MessageTypeNak:
		s.stats.naks.Add(1)
	}
}

// drop counts an unanswered packet and logs it at debug level, rate-limited.
func (s *Server) drop(why dropReason, m *dhcpv4.DHCPv4, from netip.AddrPort, detail string) (reply, bool) {
	s.stats.dropped[why].Add(1)
	if !s.log.Enabled(context.Background(), slog.LevelDebug) {
		return reply{}, false
	}
	if ok, n := s.logRate.Allow(s.now()); ok {
		attrs := []any{"reason", why.String(), "from", from.String(), "suppressed", n}
		if m != nil {
			attrs = append(attrs, "mac", m.ClientHWAddr.String(), "type", m.MessageType().String())
		}
		if detail != "" {
			attrs = append(attrs, "detail", detail)
		}
		s.log.Debug("DHCP packet dropped", attrs...)
	}
	return reply{}, false
}

// allow applies the per-MAC rate limit.
func (s *Server) allow(mac [6]byte, now time.Time) bool {
	l := s.perMAC[mac]
	if l == nil {
		if len(s.perMAC) >= maxTracked {
			return true
		}
		l = &ratelimit.Limiter{Rate: perMACRate, Burst: perMACBurst}
		s.perMAC[mac] = l
	}
	ok, _ := l.Allow(now)
	return ok
}

// deviceAddr reports whether a is an address a LAN device may hold.
func (s *Server) deviceAddr(a netip.Addr) bool {
	lan := s.deps.LAN
	network, bc := bounds(lan)
	v := be(a)
	return a.Is4() && lan.Contains(a) && v != network && v != bc && a != lan.Addr()
}

// ip4 returns the IPv4 address in b (4 bytes, not 0.0.0.0), or the zero Addr.
func ip4(b []byte) netip.Addr {
	if len(b) == 16 {
		b = net.IP(b).To4()
	}
	if len(b) != 4 {
		return netip.Addr{}
	}
	a := netip.AddrFrom4([4]byte(b))
	if a.IsUnspecified() {
		return netip.Addr{}
	}
	return a
}

func macString(m [6]byte) string { return net.HardwareAddr(m[:]).String() }

func cfgPool(c *Config) string { return c.PoolStart.String() + "-" + c.PoolEnd.String() }
