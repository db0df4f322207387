// Package reveal decodes frames the LAN port dropped into a Summary of what each one
// showed: who sent it to whom, over which protocols, and the name it gave away (a DNS
// question, the server name of a TLS or QUIC ClientHello, an HTTP Host, a NetBIOS,
// SSDP or DHCP name), which the leak log records. It reads untrusted bytes: every
// decoder here accepts any input, does bounded work and never panics. Only the
// datapath room imports it.
package reveal

import (
	"encoding/binary"
	"net/netip"
	"strconv"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
)

// Summary is what one dropped frame shows. A frame cut short, or malformed part way,
// gives what its well-formed beginning shows.
type Summary struct {
	SrcMAC, DstMAC [6]byte
	// EtherType is the frame's EtherType after any VLAN tags; 0 for an 802.3 frame,
	// whose type field is a length.
	EtherType uint16
	// VLAN is the ID of the first 802.1Q or 802.1ad tag, 0 if untagged.
	VLAN uint16
	// Family is 4 or 6 for IP, 0 otherwise. For IP in IP, the innermost header counts.
	Family uint8
	// Src and Dst are the IP addresses, or for ARP the sender's and target's protocol
	// addresses.
	Src, Dst netip.Addr
	// Proto is "tcp", "udp", "icmp", "icmpv6", "igmp", "arp", "ip-<n>" for another IP
	// protocol (the header after any IPv6 extension headers), "" when not IP.
	Proto string
	// SrcPort and DstPort are the TCP or UDP ports.
	SrcPort, DstPort uint16
	// App is the application protocol recognised: "dns", "mdns", "llmnr", "netbios",
	// "ssdp", "dhcp", "tls", "http", "quic", or "".
	App string
	// Name is the name the frame revealed (see the decoders and Stream), lower-case,
	// without trailing dot, at most 253 bytes of printable ASCII: any other byte is
	// replaced by '?'. "" if none.
	Name string
}

// IP protocol numbers with a name of their own in Summary.Proto.
const (
	protoICMP   = 1
	protoIGMP   = 2
	protoTCP    = 6
	protoUDP    = 17
	protoICMPv6 = 58
)

const (
	ethHeaderLen  = 14
	macLen        = 6
	ipv4HeaderLen = 20
	ipv6HeaderLen = 40
	vlanIDMask    = 0x0fff
)

// Decoder decodes frames; it reuses its buffers and is not safe for concurrent use.
// Decoding allocates nothing beyond the strings a Summary's Name needs, except when a
// QUIC Initial comes with a Destination Connection ID other than the last one's (the
// keys are derived anew) and on malformed frames, whose errors gopacket allocates.
type Decoder struct {
	// The layers the parser decodes into, in place, frame after frame.
	eth     layers.Ethernet
	dot1q   layers.Dot1Q
	arp     layers.ARP
	ip4     layers.IPv4
	ip6     layers.IPv6 // decodes a hop-by-hop header itself
	ip6ext  layers.IPv6ExtensionSkipper
	ip6frag layers.IPv6Fragment
	tcp     layers.TCP
	udp     layers.UDP
	icmp4   layers.ICMPv4
	icmp6   layers.ICMPv6

	parser  *gopacket.DecodingLayerParser
	decoded []gopacket.LayerType
	quic    quicOpener

	protoNames [256]string // Summary.Proto by IP protocol number
}

// NewDecoder returns a Decoder.
func NewDecoder() *Decoder {
	d := &Decoder{decoded: make([]gopacket.LayerType, 0, 16)}
	p := gopacket.NewDecodingLayerParser(layers.LayerTypeEthernet)
	// A slice indexed by layer type: the fastest of gopacket's containers.
	p.SetDecodingLayerContainer(gopacket.DecodingLayerSparse(nil))
	for _, l := range []gopacket.DecodingLayer{
		&d.eth, &d.dot1q, &d.arp, &d.ip4, &d.ip6,
		&d.ip6ext,  // routing, destination options, and hop-by-hop out of place ...
		&d.ip6frag, // ... but fragment headers here: added later, it takes their type over
		&d.tcp, &d.udp, &d.icmp4, &d.icmp6,
	} {
		p.AddDecodingLayer(l)
	}
	// Decoding stops at the first layer without a decoder (an application protocol,
	// IGMP, ESP...); what was decoded up to there is what counts.
	p.IgnoreUnsupported = true
	// IgnorePanic stays false: the parser turns a panic inside gopacket into an
	// error. The fuzz tests set it to let such panics through, so that they are
	// found and guarded against before they reach the parser.
	d.parser = p

	for i := range d.protoNames {
		d.protoNames[i] = "ip-" + strconv.Itoa(i)
	}
	d.protoNames[protoICMP] = "icmp"
	d.protoNames[protoIGMP] = "igmp"
	d.protoNames[protoTCP] = "tcp"
	d.protoNames[protoUDP] = "udp"
	d.protoNames[protoICMPv6] = "icmpv6"
	return d
}

// Decode decodes frame, which starts at its Ethernet header. It does not keep frame.
func (d *Decoder) Decode(frame []byte) Summary {
	var s Summary
	if len(frame) >= 2*macLen {
		copy(s.DstMAC[:], frame[:macLen])
		copy(s.SrcMAC[:], frame[macLen:2*macLen])
	}
	// An error leaves the layers decoded before it in d.decoded; those are read
	// below, and the bytes after them by hand where that is cheap.
	_ = d.parser.DecodeLayers(frame, &d.decoded)

	var (
		l3, l4        []byte // what follows the link headers, the IP headers
		haveIP        bool
		next          layers.IPProtocol // the protocol after the IP headers
		laterFragment bool              // l4 is from inside the transport datagram
		firstFragment bool              // l4 opens the transport datagram, whose rest is in later fragments
		haveTCP       bool
		haveUDP       bool
	)
	for _, t := range d.decoded {
		switch t {
		case layers.LayerTypeEthernet:
			s.EtherType = etherType(d.eth.EthernetType)
			l3 = d.eth.Payload
			if (d.eth.EthernetType == layers.EthernetTypeDot1Q || d.eth.EthernetType == layers.EthernetTypeQinQ) && len(frame) >= ethHeaderLen+2 {
				// Read from the frame: further tags reuse d.dot1q.
				s.VLAN = binary.BigEndian.Uint16(frame[ethHeaderLen:]) & vlanIDMask
			}
		case layers.LayerTypeDot1Q:
			s.EtherType = etherType(d.dot1q.Type)
			l3 = d.dot1q.Payload
		case layers.LayerTypeARP:
			s.Proto = "arp"
			if d.arp.Protocol == layers.EthernetTypeIPv4 && d.arp.ProtAddressSize == 4 {
				s.Src = netip.AddrFrom4([4]byte(d.arp.SourceProtAddress))
				s.Dst = netip.AddrFrom4([4]byte(d.arp.DstProtAddress))
			}
		case layers.LayerTypeIPv4:
			haveIP, s.Family = true, 4
			s.Src = netip.AddrFrom4([4]byte(d.ip4.SrcIP))
			s.Dst = netip.AddrFrom4([4]byte(d.ip4.DstIP))
			next, l4 = d.ip4.Protocol, d.ip4.Payload
			laterFragment = d.ip4.FragOffset != 0
			firstFragment = !laterFragment && d.ip4.Flags&layers.IPv4MoreFragments != 0
		case layers.LayerTypeIPv6:
			haveIP, s.Family = true, 6
			s.Src = netip.AddrFrom16([16]byte(d.ip6.SrcIP))
			s.Dst = netip.AddrFrom16([16]byte(d.ip6.DstIP))
			next, l4 = d.ip6.NextHeader, d.ip6.Payload
			if d.ip6.HopByHop != nil {
				next = d.ip6.HopByHop.NextHeader
			}
			laterFragment, firstFragment = false, false
		case layers.LayerTypeIPv6HopByHop, layers.LayerTypeIPv6Routing, layers.LayerTypeIPv6Destination:
			next, l4 = d.ip6ext.NextHeader, d.ip6ext.Payload
		case layers.LayerTypeIPv6Fragment:
			next, l4 = d.ip6frag.NextHeader, d.ip6frag.Payload
			laterFragment = d.ip6frag.FragmentOffset != 0
			firstFragment = !laterFragment && d.ip6frag.MoreFragments
		case layers.LayerTypeTCP:
			haveTCP = true
		case layers.LayerTypeUDP:
			haveUDP = true
		}
	}

	if !haveIP {
		// The IP header did not decode (a bad length or option, a hop-by-hop header
		// gopacket rejects): its addresses still went out.
		haveIP = rawIP(&s, l3, &next)
		l4 = nil
	}
	if !haveIP {
		return s
	}
	s.Proto = d.protoNames[next]

	if !haveTCP && !haveUDP && !laterFragment {
		switch {
		case next == layers.IPProtocolUDP && firstFragment:
			haveUDP = d.udp.DecodeFromBytes(l4, gopacket.NilDecodeFeedback) == nil
		case next == layers.IPProtocolTCP && firstFragment:
			haveTCP = d.tcp.DecodeFromBytes(l4, gopacket.NilDecodeFeedback) == nil
		}
		if !haveTCP && !haveUDP && (next == layers.IPProtocolUDP || next == layers.IPProtocolTCP) && len(l4) >= 4 {
			// A transport header cut short still shows its ports.
			s.SrcPort = binary.BigEndian.Uint16(l4[0:])
			s.DstPort = binary.BigEndian.Uint16(l4[2:])
		}
	}
	switch {
	case haveUDP:
		s.SrcPort, s.DstPort = uint16(d.udp.SrcPort), uint16(d.udp.DstPort)
		s.App, s.Name = d.udpApp(s.SrcPort, s.DstPort, d.udp.Payload)
	case haveTCP:
		s.SrcPort, s.DstPort = uint16(d.tcp.SrcPort), uint16(d.tcp.DstPort)
		if len(d.tcp.Payload) > 0 {
			s.App, s.Name = Stream(d.tcp.Payload, s.DstPort)
		}
	}
	return s
}

// etherType returns t as Summary.EtherType holds it: 0 for an 802.3 length.
func etherType(t layers.EthernetType) uint16 {
	const minEtherType = 0x0600
	if t < minEtherType {
		return 0
	}
	return uint16(t)
}

// rawIP fills in s's addresses and the protocol after the fixed header from an IP
// header that gopacket did not decode, if l3 holds enough of one for s.EtherType.
func rawIP(s *Summary, l3 []byte, next *layers.IPProtocol) bool {
	switch {
	case s.EtherType == uint16(layers.EthernetTypeIPv4) && len(l3) >= ipv4HeaderLen && l3[0]>>4 == 4:
		s.Family = 4
		s.Src = netip.AddrFrom4([4]byte(l3[12:16]))
		s.Dst = netip.AddrFrom4([4]byte(l3[16:20]))
		*next = layers.IPProtocol(l3[9])
	case s.EtherType == uint16(layers.EthernetTypeIPv6) && len(l3) >= ipv6HeaderLen && l3[0]>>4 == 6:
		s.Family = 6
		s.Src = netip.AddrFrom16([16]byte(l3[8:24]))
		s.Dst = netip.AddrFrom16([16]byte(l3[24:40]))
		*next = layers.IPProtocol(l3[6])
	default:
		return false
	}
	return true
}
