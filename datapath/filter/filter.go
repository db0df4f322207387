// Package filter is the LAN port's default-deny ruleset: it decides, frame by frame,
// what the owner's laptop may hand to the box's netstack, and why everything else is
// dropped.
//
// A Ruleset is an immutable value built from a Config; its holder (datapath/lan) swaps
// whole rulesets atomically on reconfiguration. Check runs on every received frame
// and neither allocates nor locks. Only the datapath room imports this package.
package filter

import (
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"
	"slices"

	"gvisor.dev/gvisor/pkg/tcpip/checksum"
)

// Action is what the datapath does with a frame.
type Action uint8

const (
	// Drop discards the frame; the Verdict's Kind says why.
	Drop Action = iota
	// Accept hands the frame to the netstack: it is for one of the box's services.
	Accept
	// Reveal hands TCP toward an address beyond the box to the reveal responder,
	// which completes the handshake, reads the first bytes (TLS SNI, HTTP Host),
	// records them and resets the connection. Nothing leaves the box.
	Reveal
	// Relay hands TCP or UDP for a team device's tailnet address to the team
	// relay, which carries it through the box's tailnet node: the one way the
	// laptop's packets reach beyond the box.
	Relay
)

// Kind says why a frame was dropped. Its String form is stable: the leak log, the
// admin API and the UI use it.
type Kind uint8

// Kinds of drop. The zero Kind means "not dropped".
const (
	None Kind = iota
	// Egress: an IPv4 or IPv6 packet for an address beyond the box (the internet,
	// another LAN address). The main thing the leak log is for.
	Egress
	// ClosedPort: for the box's address, but no service listens there.
	ClosedPort
	// Discovery: multicast or broadcast service discovery (mDNS, SSDP, LLMNR,
	// NetBIOS, WS-Discovery, LAN sync protocols).
	Discovery
	// Broadcast: any other broadcast or multicast packet, IGMP included.
	Broadcast
	// IPv6Link: IPv6 link-local chatter (neighbour and router solicitations, MLD).
	// The box runs no IPv6 and never advertises IPv6 routes.
	IPv6Link
	// ARP: ARP for an address other than the box's, including gratuitous ARP.
	ARP
	// Spoofed: a source address the laptop cannot own: outside the LAN prefix,
	// the box's own, a broadcast, multicast or loopback address, or an ARP sender
	// hardware address that disagrees with the frame's.
	Spoofed
	// Fragment: an IP fragment. The box's services never need fragments.
	Fragment
	// NonIP: an EtherType other than IPv4, ARP and IPv6 (LLDP, EAPOL, 802.3 LLC…).
	NonIP
	// VLAN: an 802.1Q or 802.1ad tagged frame.
	VLAN
	// OtherHost: a unicast frame addressed to another device's hardware address.
	OtherHost
	// Malformed: truncated, oversized or inconsistent headers, bad IPv4 header
	// checksum, reserved addresses.
	Malformed

	numKinds
)

// NumKinds is the number of Kind values, None included; kinds are 0..NumKinds-1.
const NumKinds = int(numKinds)

var kindNames = [numKinds]string{
	None:       "none",
	Egress:     "egress",
	ClosedPort: "closed-port",
	Discovery:  "discovery",
	Broadcast:  "broadcast",
	IPv6Link:   "ipv6-link",
	ARP:        "arp",
	Spoofed:    "spoofed",
	Fragment:   "fragment",
	NonIP:      "non-ip",
	VLAN:       "vlan",
	OtherHost:  "other-host",
	Malformed:  "malformed",
}

func (k Kind) String() string {
	if int(k) < len(kindNames) {
		return kindNames[k]
	}
	return fmt.Sprintf("kind(%d)", uint8(k))
}

// ParseKind returns the Kind whose String is s.
func ParseKind(s string) (Kind, error) {
	for k, name := range kindNames {
		if name == s {
			return Kind(k), nil
		}
	}
	return None, fmt.Errorf("unknown drop kind %q (want one of %v)", s, kindNames[1:])
}

// Verdict is the result of checking one frame.
type Verdict struct {
	Action Action
	Kind   Kind // why, when Action is Drop or Reveal
}

// Proto is a transport protocol a service listens on.
type Proto uint8

const (
	TCP Proto = 6
	UDP Proto = 17
)

func (p Proto) String() string {
	switch p {
	case TCP:
		return "tcp"
	case UDP:
		return "udp"
	}
	return fmt.Sprintf("proto(%d)", uint8(p))
}

// Service is a port on the box's LAN address that accepts traffic.
type Service struct {
	Proto Proto
	Port  uint16
	// Broadcast also accepts the service's UDP datagrams sent to the limited or
	// subnet broadcast address, and from the unspecified source 0.0.0.0 (a DHCP
	// client before it has an address).
	Broadcast bool
}

// Config is what a Ruleset is built from.
type Config struct {
	// Prefix is the box's LAN address with the LAN prefix length (10.201.86.1/24).
	Prefix netip.Prefix
	// MAC is the hardware address of the box's LAN port.
	MAC net.HardwareAddr
	// Services are the ports the box serves on its LAN address.
	Services []Service
	// Reveal hands TCP toward addresses beyond the box to the reveal responder
	// instead of dropping it outright.
	Reveal bool
	// Team are the tailnet addresses of the team's devices: TCP and UDP to them
	// is relayed through the box's tailnet node.
	Team []netip.Addr
}

// Validate reports the first problem with c, naming the field.
func (c Config) Validate() error {
	if !c.Prefix.IsValid() || !c.Prefix.Addr().Is4() {
		return fmt.Errorf("filter: Prefix %v: want an IPv4 address with prefix length, like 10.201.86.1/24", c.Prefix)
	}
	if c.Prefix.Bits() < 8 || c.Prefix.Bits() > 30 {
		return fmt.Errorf("filter: Prefix %v: prefix length must be between /8 and /30", c.Prefix)
	}
	a := c.Prefix.Addr()
	if a == c.Prefix.Masked().Addr() || a == broadcastOf(c.Prefix) {
		return fmt.Errorf("filter: Prefix %v: the box's address cannot be the network or broadcast address", c.Prefix)
	}
	if len(c.MAC) != 6 || c.MAC[0]&1 != 0 {
		return fmt.Errorf("filter: MAC %v: want a 6-byte unicast hardware address", c.MAC)
	}
	for _, s := range c.Services {
		if s.Proto != TCP && s.Proto != UDP {
			return fmt.Errorf("filter: service %v/%d: protocol must be tcp or udp", s.Proto, s.Port)
		}
		if s.Port == 0 {
			return fmt.Errorf("filter: service %v/0: port 0 is not a service", s.Proto)
		}
		if s.Broadcast && s.Proto != UDP {
			return fmt.Errorf("filter: service %v/%d: only UDP services can take broadcasts", s.Proto, s.Port)
		}
	}
	for _, a := range c.Team {
		if !a.Is4() || c.Prefix.Contains(a) || a.IsLoopback() || a.IsMulticast() || a.IsUnspecified() {
			return fmt.Errorf("filter: team address %v: want a team device's IPv4 tailnet address, outside the LAN", a)
		}
	}
	return nil
}

// portSet is a bitmap of the 65536 ports.
type portSet [1024]uint64

func (p *portSet) add(port uint16)      { p[port>>6] |= 1 << (port & 63) }
func (p *portSet) has(port uint16) bool { return p[port>>6]&(1<<(port&63)) != 0 }

func addr4(b []byte) uint32             { return binary.BigEndian.Uint32(b) }
func u32(a netip.Addr) uint32           { b := a.As4(); return binary.BigEndian.Uint32(b[:]) }
func mask(bits int) uint32              { return ^uint32(0) << (32 - bits) }
func isMulticast4(a uint32) bool        { return a>>28 == 0xe }
func isUnicastMAC(m []byte) bool        { return m[0]&1 == 0 }
func macEqual(a []byte, b [6]byte) bool { return [6]byte(a) == b }

func broadcastOf(p netip.Prefix) netip.Addr {
	var b [4]byte
	binary.BigEndian.PutUint32(b[:], u32(p.Masked().Addr())|^mask(p.Bits()))
	return netip.AddrFrom4(b)
}

// inLAN reports whether a is inside the LAN prefix.
func (r *Ruleset) inLAN(a uint32) bool { return a&r.mask == r.network }

// laptopAddr reports whether a is an address a device on the LAN may own.
func (r *Ruleset) laptopAddr(a uint32) bool {
	return r.inLAN(a) && a != r.box && a != r.network && a != r.bcast
}

// broadcastDst reports whether a is the limited or the LAN's subnet broadcast.
func (r *Ruleset) broadcastDst(a uint32) bool { return a == 0xffffffff || a == r.bcast }

// Ruleset is an immutable, compiled Config.
type Ruleset struct {
	cfg     Config
	mac     [6]byte
	box     uint32
	mask    uint32
	network uint32
	bcast   uint32
	tcp     portSet
	udp     portSet
	udpBc   portSet
	reveal  bool
	team    map[uint32]struct{}
}

// New compiles cfg into a Ruleset.
func New(cfg Config) (*Ruleset, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg.MAC = slices.Clone(cfg.MAC)
	cfg.Services = slices.Clone(cfg.Services)
	cfg.Team = slices.Clone(cfg.Team)
	r := &Ruleset{
		cfg:    cfg,
		mac:    [6]byte(cfg.MAC),
		box:    u32(cfg.Prefix.Addr()),
		mask:   mask(cfg.Prefix.Bits()),
		reveal: cfg.Reveal,
	}
	r.network = r.box & r.mask
	r.bcast = r.network | ^r.mask
	if len(cfg.Team) > 0 {
		r.team = make(map[uint32]struct{}, len(cfg.Team))
		for _, a := range cfg.Team {
			r.team[u32(a)] = struct{}{}
		}
	}
	for _, s := range cfg.Services {
		switch s.Proto {
		case TCP:
			r.tcp.add(s.Port)
		case UDP:
			r.udp.add(s.Port)
			if s.Broadcast {
				r.udpBc.add(s.Port)
			}
		}
	}
	return r, nil
}

// Config returns a copy of the Config r was built from.
func (r *Ruleset) Config() Config {
	c := r.cfg
	c.MAC = slices.Clone(c.MAC)
	c.Services = slices.Clone(c.Services)
	c.Team = slices.Clone(c.Team)
	return c
}

// With returns a new Ruleset like r with cfg's changes applied by fn.
func (r *Ruleset) With(fn func(*Config)) (*Ruleset, error) {
	c := r.Config()
	fn(&c)
	return New(c)
}

// Ethernet and IP constants used on the hot path.
const (
	ethHdrLen  = 14
	etherIPv4  = 0x0800
	etherARP   = 0x0806
	etherIPv6  = 0x86dd
	ether8021Q = 0x8100
	ether8021D = 0x88a8
	etherQinQ  = 0x9100
	ipv4MinLen = 20
	ipv6HdrLen = 40
	arpLen     = 28

	protoICMP   = 1
	protoIGMP   = 2
	protoTCP    = 6
	protoUDP    = 17
	protoICMPv6 = 58
)

var accept = Verdict{Action: Accept}

func drop(k Kind) Verdict { return Verdict{Action: Drop, Kind: k} }

// HeadLen is how much of a frame Check needs to see: every header it reads lies
// within it (Ethernet, IPv4 with options, TCP with options).
const HeadLen = 256

// Check decides what happens to a frame received on the LAN port. head is the
// frame's beginning — all of it, or at least its first HeadLen bytes — and wireLen
// the frame's full length. gso reports that the kernel handed the frame over as
// one segmentation-offload super-packet (larger than the MTU, made of TCP
// segments); vlan reports that the kernel stripped an 802.1Q tag from it. head is
// only read.
func (r *Ruleset) Check(head []byte, wireLen int, gso, vlan bool) Verdict {
	if len(head) > wireLen {
		head = head[:wireLen]
	}
	if len(head) < ethHdrLen {
		return drop(Malformed)
	}
	if vlan {
		return drop(VLAN)
	}
	dst := head[0:6]
	src := head[6:12]
	if !isUnicastMAC(src) {
		return drop(Spoofed)
	}
	forUs := macEqual(dst, r.mac)
	if !forUs && isUnicastMAC(dst) {
		return drop(OtherHost)
	}
	payload := head[ethHdrLen:]
	switch et := binary.BigEndian.Uint16(head[12:14]); et {
	case etherIPv4:
		return r.checkIPv4(payload, wireLen-ethHdrLen, forUs, gso)
	case etherARP:
		return r.checkARP(payload, src)
	case etherIPv6:
		return checkIPv6(payload)
	case ether8021Q, ether8021D, etherQinQ:
		return drop(VLAN)
	default:
		return drop(NonIP)
	}
}

func (r *Ruleset) checkARP(p []byte, ethSrc []byte) Verdict {
	if len(p) < arpLen {
		return drop(Malformed)
	}
	// htype Ethernet, ptype IPv4, hlen 6, plen 4.
	if binary.BigEndian.Uint16(p[0:2]) != 1 || binary.BigEndian.Uint16(p[2:4]) != etherIPv4 || p[4] != 6 || p[5] != 4 {
		return drop(Malformed)
	}
	op := binary.BigEndian.Uint16(p[6:8])
	if op != 1 && op != 2 {
		return drop(Malformed)
	}
	sha, spa, tpa := p[8:14], addr4(p[14:18]), addr4(p[24:28])
	if [6]byte(sha) != [6]byte(ethSrc) {
		return drop(Spoofed)
	}
	if spa == 0 && op == 1 {
		// An ARP probe (RFC 5227): a client checking that an address is free
		// before using it. It gets no answer.
		return drop(ARP)
	}
	if !r.laptopAddr(spa) {
		return drop(Spoofed)
	}
	if tpa != r.box || spa == tpa {
		return drop(ARP)
	}
	return accept
}

// checkIPv4 checks an IPv4 packet of which p holds the beginning and wire bytes
// arrived.
func (r *Ruleset) checkIPv4(p []byte, wire int, forUs, gso bool) Verdict {
	if len(p) < ipv4MinLen || p[0]>>4 != 4 {
		return drop(Malformed)
	}
	ihl := int(p[0]&0x0f) * 4
	total := int(binary.BigEndian.Uint16(p[2:4]))
	if ihl < ipv4MinLen || total < ihl || total > wire || ihl > len(p) {
		return drop(Malformed)
	}
	if !ipv4HeaderChecksumOK(p[:ihl]) {
		return drop(Malformed)
	}
	src, dst := addr4(p[12:16]), addr4(p[16:20])
	proto := p[9]
	fragField := binary.BigEndian.Uint16(p[6:8])
	// l4 is the transport header as far as p holds it; l4Len its true length.
	l4 := p[ihl:min(total, len(p))]
	l4Len := total - ihl

	// The unspecified source is only for broadcast services (a DHCP client
	// before it has an address).
	if src == 0 {
		if proto == protoUDP && fragField&0x3fff == 0 && len(l4) >= 8 {
			port := binary.BigEndian.Uint16(l4[2:4])
			if r.udpBc.has(port) && (r.broadcastDst(dst) || dst == r.box) {
				return accept
			}
		}
		return drop(Spoofed)
	}
	if !r.laptopAddr(src) {
		return drop(Spoofed)
	}
	if fragField&0x3fff != 0 { // more-fragments flag or a fragment offset
		return drop(Fragment)
	}
	if gso && proto != protoTCP {
		return drop(Malformed)
	}

	switch {
	case dst == r.box:
		if !forUs {
			return drop(Malformed) // the box's address behind a group hardware address
		}
		return r.checkToBox(proto, l4, l4Len)
	case r.broadcastDst(dst):
		return r.checkBroadcast4(proto, l4)
	case isMulticast4(dst):
		return checkMulticast4(dst, proto, l4)
	case dst>>24 == 0 || dst>>24 == 127 || dst>>28 == 0xf:
		// "This network", loopback, reserved: nobody on a LAN sends these.
		return drop(Malformed)
	}
	// Anything else is for an address beyond the box.
	if !forUs {
		return drop(OtherHost)
	}
	if _, ok := r.team[dst]; ok && (proto == protoTCP && len(l4) >= 20 || proto == protoUDP && len(l4) >= 8) {
		return Verdict{Action: Relay}
	}
	if r.reveal && proto == protoTCP && len(l4) >= 20 {
		return Verdict{Action: Reveal, Kind: Egress}
	}
	return drop(Egress)
}

func (r *Ruleset) checkToBox(proto byte, l4 []byte, l4Len int) Verdict {
	switch proto {
	case protoTCP:
		if len(l4) < 20 || int(l4[12]>>4)*4 < 20 || int(l4[12]>>4)*4 > len(l4) {
			return drop(Malformed)
		}
		if r.tcp.has(binary.BigEndian.Uint16(l4[2:4])) {
			return accept
		}
		return drop(ClosedPort)
	case protoUDP:
		if len(l4) < 8 || int(binary.BigEndian.Uint16(l4[4:6])) < 8 || int(binary.BigEndian.Uint16(l4[4:6])) > l4Len {
			return drop(Malformed)
		}
		if r.udp.has(binary.BigEndian.Uint16(l4[2:4])) {
			return accept
		}
		return drop(ClosedPort)
	case protoICMP:
		if len(l4) < 8 {
			return drop(Malformed)
		}
		switch l4[0] {
		case 8: // echo request: the box answers ping
			return accept
		case 3: // destination unreachable (port unreachable, fragmentation needed)
			return accept
		}
		return drop(ClosedPort)
	}
	return drop(ClosedPort)
}

// Well-known discovery ports, used with broadcast and multicast destinations.
func discoveryPort(port uint16) bool {
	switch port {
	case 137, 138, // NetBIOS name and datagram service
		1900,  // SSDP / UPnP
		3702,  // WS-Discovery
		5353,  // mDNS
		5355,  // LLMNR
		6771,  // BitTorrent local peer discovery
		17500, // Dropbox LAN sync
		57621, // Spotify Connect
		21027: // Syncthing local discovery
		return true
	}
	return false
}

func (r *Ruleset) checkBroadcast4(proto byte, l4 []byte) Verdict {
	if proto != protoUDP || len(l4) < 8 {
		return drop(Broadcast)
	}
	port := binary.BigEndian.Uint16(l4[2:4])
	if r.udpBc.has(port) {
		return accept
	}
	if discoveryPort(port) {
		return drop(Discovery)
	}
	return drop(Broadcast)
}

func checkMulticast4(dst uint32, proto byte, l4 []byte) Verdict {
	if proto == protoUDP && len(l4) >= 8 && discoveryPort(binary.BigEndian.Uint16(l4[2:4])) {
		return drop(Discovery)
	}
	return drop(Broadcast)
}

// checkIPv6 classifies IPv6: the box runs none, so every packet is dropped; the kind
// tells link-local chatter from discovery and from traffic meant to leave the link.
func checkIPv6(p []byte) Verdict {
	if len(p) < ipv6HdrLen || p[0]>>4 != 6 {
		return drop(Malformed)
	}
	src, dst := p[8:24], p[24:40]
	if src[0] == 0xff { // multicast source
		return drop(Spoofed)
	}
	next := p[6]
	rest := p[ipv6HdrLen:]
	// Walk a bounded number of extension headers to find the transport header.
	for range 8 {
		switch next {
		case 0, 43, 60: // hop-by-hop, routing, destination options
			if len(rest) < 8 {
				return drop(Malformed)
			}
			n := (int(rest[1]) + 1) * 8
			if n > len(rest) {
				return drop(Malformed)
			}
			next, rest = rest[0], rest[n:]
			continue
		case 44:
			return drop(Fragment)
		}
		break
	}
	multicast := dst[0] == 0xff
	if multicast {
		if next == protoUDP && len(rest) >= 8 && discoveryPort(binary.BigEndian.Uint16(rest[2:4])) {
			return drop(Discovery)
		}
		scope := dst[1] & 0x0f
		if scope <= 2 { // interface- and link-local multicast: ND, MLD, RS
			return drop(IPv6Link)
		}
		return drop(Broadcast)
	}
	if isLinkLocal6(dst) {
		return drop(IPv6Link)
	}
	return drop(Egress)
}

func isLinkLocal6(a []byte) bool { return a[0] == 0xfe && a[1]&0xc0 == 0x80 }

// ipv4HeaderChecksumOK verifies the one's-complement checksum of an IPv4 header.
func ipv4HeaderChecksumOK(h []byte) bool {
	var sum uint32
	for i := 0; i+1 < len(h); i += 2 {
		sum += uint32(h[i])<<8 | uint32(h[i+1])
	}
	for sum > 0xffff {
		sum = sum>>16 + sum&0xffff
	}
	return sum == 0xffff
}

// CheckOutbound is the datapath's tripwire on what the box itself transmits: ARP
// from the box's own addresses, IPv4 from the box's address to the LAN, the team
// relay's TCP and UDP from team devices' addresses, and (when reveal is on) the
// reveal responder's TCP replies to the laptop. Anything else —
// IPv6, a router advertisement, a packet forwarded toward another network — means a
// bug, and is not sent.
func (r *Ruleset) CheckOutbound(frame []byte) bool {
	if len(frame) < ethHdrLen || !macEqual(frame[6:12], r.mac) {
		return false
	}
	p := frame[ethHdrLen:]
	switch binary.BigEndian.Uint16(frame[12:14]) {
	case etherARP:
		return len(p) >= arpLen && [6]byte(p[8:14]) == r.mac && addr4(p[14:18]) == r.box
	case etherIPv4:
		if len(p) < ipv4MinLen || p[0]>>4 != 4 {
			return false
		}
		src, dst := addr4(p[12:16]), addr4(p[16:20])
		if !r.inLAN(dst) && dst != 0xffffffff {
			return false
		}
		if src == r.box {
			return true
		}
		if _, ok := r.team[src]; ok && (p[9] == protoTCP || p[9] == protoUDP) {
			return true // the team relay, answering for a team device
		}
		return r.reveal && p[9] == protoTCP && !r.inLAN(src) && !isMulticast4(src)
	}
	return false
}

// TransportChecksumOK verifies the TCP, UDP or ICMP checksum of an IPv4 frame the
// kernel did not vouch for (raw frames, hardware without checksum offload). The
// netstack trusts the link for checksums, so frames are verified here before it
// sees them. Frames Check would not accept need not be verified.
func TransportChecksumOK(frame []byte) bool {
	if len(frame) < ethHdrLen+ipv4MinLen || binary.BigEndian.Uint16(frame[12:14]) != etherIPv4 {
		return true // ARP has no checksum; anything else is not accepted
	}
	p := frame[ethHdrLen:]
	ihl := int(p[0]&0x0f) * 4
	total := int(binary.BigEndian.Uint16(p[2:4]))
	if ihl < ipv4MinLen || total < ihl || total > len(p) {
		return false
	}
	l4 := p[ihl:total]
	switch p[9] {
	case protoICMP:
		return checksum.Checksum(l4, 0) == 0xffff
	case protoTCP, protoUDP:
		if p[9] == protoUDP && len(l4) >= 8 && l4[6] == 0 && l4[7] == 0 {
			return true // UDP over IPv4 may carry no checksum
		}
		var pseudo [12]byte
		copy(pseudo[0:8], p[12:20])
		pseudo[9] = p[9]
		binary.BigEndian.PutUint16(pseudo[10:], uint16(len(l4)))
		return checksum.Checksum(l4, checksum.Checksum(pseudo[:], 0)) == 0xffff
	}
	return true
}
