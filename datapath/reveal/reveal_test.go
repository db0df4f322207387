package reveal

import (
	"bytes"
	"crypto/tls"
	"encoding/binary"
	"net"
	"net/netip"
	"testing"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"golang.org/x/net/dns/dnsmessage"
)

// Addresses of the frames: the laptop, and what it tried to reach.
var (
	laptop4  = netip.MustParseAddr("192.168.77.10")
	remote4  = netip.MustParseAddr("198.51.100.7")
	laptop6  = netip.MustParseAddr("fd00:77::10")
	remote6  = netip.MustParseAddr("2001:db8::7")
	laptopLL = netip.MustParseAddr("fe80::1")
)

func ap(a netip.Addr, port uint16) netip.AddrPort { return netip.AddrPortFrom(a, port) }

// frameCase is a frame and the Summary it should decode to. MACs are the laptop's
// and the box's unless the case says otherwise.
type frameCase struct {
	name  string
	frame []byte
	want  Summary
}

// frameCases builds the table the tests, the fuzz seeds and the benchmarks share.
func frameCases(tb testing.TB) []frameCase {
	tb.Helper()
	udp4 := func(sport, dport uint16, payload []byte) []byte {
		return udpFrame(tb, ap(laptop4, sport), ap(remote4, dport), payload)
	}
	summary := func(family uint8, src, dst netip.Addr, proto string, sport, dport uint16, app, name string) Summary {
		s := Summary{
			SrcMAC: macArray(laptopMAC), DstMAC: macArray(boxMAC),
			Family: family, Src: src, Dst: dst, Proto: proto,
			SrcPort: sport, DstPort: dport, App: app, Name: name,
		}
		switch family {
		case 4:
			s.EtherType = uint16(layers.EthernetTypeIPv4)
		case 6:
			s.EtherType = uint16(layers.EthernetTypeIPv6)
		}
		return s
	}

	hello := clientHello(tb, &tls.Config{ServerName: "Tracker.Example.COM"})
	httpReq := []byte("GET /pixel.gif HTTP/1.1\r\nHost: ads.example.net:8080\r\nUser-Agent: x\r\n\r\n")
	query := dnsQuery(tb, "Telemetry.Example.ORG.", dnsmessage.TypeA)
	dnsTCP := append(binary.BigEndian.AppendUint16(nil, uint16(len(query))), query...)
	rfcInitial := readHexFile(tb, "rfc9001-client-initial.hex")
	rfcInitialV2 := readHexFile(tb, "rfc9369-client-initial.hex")

	cases := []frameCase{
		{
			"TCP SYN", tcpFrame(tb, ap(laptop4, 51000), ap(remote4, 443), nil),
			summary(4, laptop4, remote4, "tcp", 51000, 443, "", ""),
		},
		{
			"TCP SYN over IPv6", tcpFrame(tb, ap(laptop6, 51000), ap(remote6, 22), nil),
			summary(6, laptop6, remote6, "tcp", 51000, 22, "", ""),
		},
		{
			"DNS query", udp4(40000, 53, query),
			summary(4, laptop4, remote4, "udp", 40000, 53, appDNS, "telemetry.example.org"),
		},
		{
			"DNS over IPv6", udpFrame(tb, ap(laptop6, 40000), ap(remote6, 53), dnsQuery(tb, "v6.example.", dnsmessage.TypeAAAA)),
			summary(6, laptop6, remote6, "udp", 40000, 53, appDNS, "v6.example"),
		},
		{
			"DNS over TCP", tcpFrame(tb, ap(laptop4, 40001), ap(remote4, 53), dnsTCP),
			summary(4, laptop4, remote4, "tcp", 40001, 53, appDNS, "telemetry.example.org"),
		},
		{
			"TLS ClientHello", tcpFrame(tb, ap(laptop4, 51001), ap(remote4, 443), hello),
			summary(4, laptop4, remote4, "tcp", 51001, 443, appTLS, "tracker.example.com"),
		},
		{
			"TLS, first segment only", tcpFrame(tb, ap(laptop4, 51001), ap(remote4, 443), hello[:300]),
			summary(4, laptop4, remote4, "tcp", 51001, 443, appTLS, "tracker.example.com"),
		},
		{
			"HTTP request", tcpFrame(tb, ap(laptop6, 51002), ap(remote6, 8080), httpReq),
			summary(6, laptop6, remote6, "tcp", 51002, 8080, appHTTP, "ads.example.net"),
		},
		{
			"TCP, unknown payload", tcpFrame(tb, ap(laptop4, 51003), ap(remote4, 22), []byte("SSH-2.0-OpenSSH_9.6\r\n")),
			summary(4, laptop4, remote4, "tcp", 51003, 22, "", ""),
		},
		{
			"QUIC v1 Initial", udp4(50000, 443, rfcInitial),
			summary(4, laptop4, remote4, "udp", 50000, 443, appQUIC, "example.com"),
		},
		{
			"QUIC v2 Initial on another port", udpFrame(tb, ap(laptop6, 50000), ap(remote6, 8443), rfcInitialV2),
			summary(6, laptop6, remote6, "udp", 50000, 8443, appQUIC, "example.com"),
		},
		{
			"QUIC Initial cut short", udp4(50000, 443, rfcInitial[:600]),
			summary(4, laptop4, remote4, "udp", 50000, 443, appQUIC, ""),
		},
		{
			"UDP, unknown payload", udp4(50001, 4500, []byte{0, 0, 0, 0, 1, 2, 3}),
			summary(4, laptop4, remote4, "udp", 50001, 4500, "", ""),
		},
		{
			"DNS name with control characters",
			udp4(40002, 53, append(mustHex("abcd01000001000000000000"), append([]byte("\x05ev\x1bIL\x07example\x00"), 0, 1, 0, 1)...)),
			summary(4, laptop4, remote4, "udp", 40002, 53, appDNS, "ev?il.example"),
		},
	}
	cases = append(cases, localCases(tb, summary)...)
	cases = append(cases, linkCases(tb, summary)...)
	return cases
}

// localCases are the frames of the protocols a laptop speaks to its LAN.
func localCases(tb testing.TB, summary func(uint8, netip.Addr, netip.Addr, string, uint16, uint16, string, string) Summary) []frameCase {
	mdnsGroup := netip.MustParseAddr("224.0.0.251")
	llmnrGroup := netip.MustParseAddr("224.0.0.252")
	ssdpGroup := netip.MustParseAddr("239.255.255.250")
	broadcast := netip.MustParseAddr("192.168.77.255")

	// An mDNS announcement: no question, the host's name as the first answer's owner.
	announce := dnsmessage.NewBuilder(nil, dnsmessage.Header{Response: true, Authoritative: true})
	if err := announce.StartAnswers(); err != nil {
		tb.Fatal(err)
	}
	if err := announce.AResource(
		dnsmessage.ResourceHeader{Name: dnsmessage.MustNewName("Johns-MacBook-Pro.local."), Class: dnsmessage.ClassINET, TTL: 120},
		dnsmessage.AResource{A: laptop4.As4()},
	); err != nil {
		tb.Fatal(err)
	}
	announcement, err := announce.Finish()
	if err != nil {
		tb.Fatal(err)
	}

	// NetBIOS name query for FRED, the example of RFC 1001 section 14.1.
	nbQuery := append(mustHex("8001 0110 0001 0000 0000 0000"), 0x20)
	nbQuery = append(nbQuery, "EGFCEFEECACACACACACACACACACACACA"...)
	nbQuery = append(nbQuery, 0, 0x00, 0x20, 0x00, 0x01)
	// A browser announcement on the datagram service, from DESKTOP-7QK2M.
	nbDatagram := append(mustHex("11 0a 8002"), laptop4.AsSlice()...)
	nbDatagram = append(nbDatagram, 0x00, 0x8a, 0x00, 0xbb, 0x00, 0x00)
	nbDatagram = append(nbDatagram, encodeNetBIOS("DESKTOP-7QK2M", 0x00)...)
	nbDatagram = append(nbDatagram, encodeNetBIOS("WORKGROUP", 0x1d)...)

	msearch := []byte("M-SEARCH * HTTP/1.1\r\nHOST: 239.255.255.250:1900\r\nMAN: \"ssdp:discover\"\r\nMX: 1\r\n" +
		"ST: urn:dial-multiscreen-org:service:dial:1\r\nUSER-AGENT: Google Chrome/126.0 Linux\r\n\r\n")
	notify := []byte("NOTIFY * HTTP/1.1\r\nHOST: 239.255.255.250:1900\r\nNT: upnp:rootdevice\r\nNTS: ssdp:alive\r\n" +
		"USN: uuid:4D696E69-444C-164E-9D41-B827EB2B9C8A::upnp:rootdevice\r\nLOCATION: http://192.168.77.10:2869/desc.xml\r\n\r\n")

	return []frameCase{
		{
			"mDNS query", udpFrame(tb, ap(laptop4, 5353), ap(mdnsGroup, 5353), dnsQuery(tb, "_googlecast._tcp.local.", dnsmessage.TypePTR)),
			summary(4, laptop4, mdnsGroup, "udp", 5353, 5353, appMDNS, "_googlecast._tcp.local"),
		},
		{
			"mDNS announcement", udpFrame(tb, ap(laptop4, 5353), ap(mdnsGroup, 5353), announcement),
			summary(4, laptop4, mdnsGroup, "udp", 5353, 5353, appMDNS, "johns-macbook-pro.local"),
		},
		{
			"LLMNR query", udpFrame(tb, ap(laptop4, 61000), ap(llmnrGroup, 5355), dnsQuery(tb, "WPAD.", dnsmessage.TypeA)),
			summary(4, laptop4, llmnrGroup, "udp", 61000, 5355, appLLMNR, "wpad"),
		},
		{
			"LLMNR over IPv6", udpFrame(tb, ap(laptopLL, 61000), ap(netip.MustParseAddr("ff02::1:3"), 5355), dnsQuery(tb, "printer.", dnsmessage.TypeAAAA)),
			summary(6, laptopLL, netip.MustParseAddr("ff02::1:3"), "udp", 61000, 5355, appLLMNR, "printer"),
		},
		{
			"NetBIOS name query", udpFrame(tb, ap(laptop4, 137), ap(broadcast, 137), nbQuery),
			summary(4, laptop4, broadcast, "udp", 137, 137, appNetBIOS, "fred"),
		},
		{
			"NetBIOS browser announcement", udpFrame(tb, ap(laptop4, 138), ap(broadcast, 138), nbDatagram),
			summary(4, laptop4, broadcast, "udp", 138, 138, appNetBIOS, "desktop-7qk2m"),
		},
		{
			"SSDP M-SEARCH", udpFrame(tb, ap(laptop4, 52000), ap(ssdpGroup, 1900), msearch),
			summary(4, laptop4, ssdpGroup, "udp", 52000, 1900, appSSDP, "urn:dial-multiscreen-org:service:dial:1"),
		},
		{
			"SSDP NOTIFY", udpFrame(tb, ap(laptop4, 1900), ap(ssdpGroup, 1900), notify),
			summary(4, laptop4, ssdpGroup, "udp", 1900, 1900, appSSDP, "uuid:4d696e69-444c-164e-9d41-b827eb2b9c8a::upnp:rootdevice"),
		},
		{
			"DHCP DISCOVER with host name", udpFrame(tb, ap(netip.IPv4Unspecified(), 68), ap(netip.MustParseAddr("255.255.255.255"), 67), dhcpMessage(tb,
				layers.NewDHCPOption(layers.DHCPOptHostname, []byte("Johns-Laptop")))),
			summary(4, netip.IPv4Unspecified(), netip.MustParseAddr("255.255.255.255"), "udp", 68, 67, appDHCP, "johns-laptop"),
		},
		{
			"DHCP REQUEST with client FQDN", udpFrame(tb, ap(netip.IPv4Unspecified(), 68), ap(netip.MustParseAddr("255.255.255.255"), 67), dhcpMessage(tb,
				layers.NewDHCPOption(81, append([]byte{0x05, 0, 0}, "\x05alice\x04corp\x07example\x00"...)))),
			summary(4, netip.IPv4Unspecified(), netip.MustParseAddr("255.255.255.255"), "udp", 68, 67, appDHCP, "alice.corp.example"),
		},
		{
			"DHCP without a name", udpFrame(tb, ap(netip.IPv4Unspecified(), 68), ap(netip.MustParseAddr("255.255.255.255"), 67), dhcpMessage(tb)),
			summary(4, netip.IPv4Unspecified(), netip.MustParseAddr("255.255.255.255"), "udp", 68, 67, appDHCP, ""),
		},
	}
}

// linkCases are frames whose link or network layer is out of the ordinary.
func linkCases(tb testing.TB, summary func(uint8, netip.Addr, netip.Addr, string, uint16, uint16, string, string) Summary) []frameCase {
	query := dnsQuery(tb, "vlan.example.", dnsmessage.TypeA)
	udpOver := func(ip gopacket.SerializableLayer, netLayer gopacket.NetworkLayer, sport, dport uint16, payload []byte) (*layers.UDP, gopacket.Payload) {
		udp := &layers.UDP{SrcPort: layers.UDPPort(sport), DstPort: layers.UDPPort(dport)}
		if err := udp.SetNetworkLayerForChecksum(netLayer); err != nil {
			tb.Fatal(err)
		}
		return udp, gopacket.Payload(payload)
	}

	// 802.1Q: VLAN 42.
	ip4 := &layers.IPv4{Version: 4, TTL: 64, Protocol: layers.IPProtocolUDP, SrcIP: laptop4.AsSlice(), DstIP: remote4.AsSlice()}
	udp, payload := udpOver(ip4, ip4, 40000, 53, query)
	vlan := serialize(tb, ethernet(layers.EthernetTypeDot1Q), &layers.Dot1Q{VLANIdentifier: 42, Type: layers.EthernetTypeIPv4}, ip4, udp, payload)
	wantVLAN := summary(4, laptop4, remote4, "udp", 40000, 53, appDNS, "vlan.example")
	wantVLAN.VLAN = 42

	// 802.1ad: service VLAN 100 outside, customer VLAN 200 inside.
	udp, payload = udpOver(ip4, ip4, 40000, 53, query)
	qinq := serialize(tb, ethernet(layers.EthernetTypeQinQ),
		&layers.Dot1Q{VLANIdentifier: 100, Type: layers.EthernetTypeDot1Q},
		&layers.Dot1Q{VLANIdentifier: 200, Type: layers.EthernetTypeIPv4}, ip4, udp, payload)
	wantQinQ := wantVLAN
	wantQinQ.VLAN = 100

	// IPv6 with a hop-by-hop header (router alert), as MLD reports carry.
	ip6 := &layers.IPv6{Version: 6, HopLimit: 1, NextHeader: layers.IPProtocolIPv6HopByHop, SrcIP: laptop6.AsSlice(), DstIP: remote6.AsSlice()}
	// The PadN option is spelled out: gopacket v1.7.7 pads the header wrongly itself
	// (by length%8 bytes rather than up to a multiple of 8).
	ip6.HopByHop = &layers.IPv6HopByHop{Options: []*layers.IPv6HopByHopOption{
		{OptionType: 5, OptionLength: 2, OptionData: []byte{0, 0}},
		{OptionType: 1, OptionLength: 0},
	}}
	ip6.HopByHop.NextHeader = layers.IPProtocolUDP
	udp, payload = udpOver(ip6, ip6, 40000, 53, query)
	hopByHop := serialize(tb, ethernet(layers.EthernetTypeIPv6), ip6, udp, payload)

	// IPv6 with destination options and a routing header before TCP.
	ip6 = &layers.IPv6{Version: 6, HopLimit: 64, NextHeader: layers.IPProtocolIPv6Destination, SrcIP: laptop6.AsSlice(), DstIP: remote6.AsSlice()}
	extTCP := append(mustHex("2b 00 01 04 00000000"), mustHex("06 00 00 00 00000000")...) // dest opts (PadN), routing type 0 with no segments left
	extTCP = append(extTCP, tcpHeader(51000, 443)...)
	extensions := serialize(tb, ethernet(layers.EthernetTypeIPv6), ip6, gopacket.Payload(extTCP))

	// IPv6 fragments of a UDP datagram: the first shows its ports, a later one only
	// its protocol.
	fragUDP := append(mustHex("1100 0001 12345678"), udpHeader(40000, 53, len(query)+100)...) // offset 0, more fragments
	fragUDP = append(fragUDP, query...)
	ip6 = &layers.IPv6{Version: 6, HopLimit: 64, NextHeader: layers.IPProtocolIPv6Fragment, SrcIP: laptop6.AsSlice(), DstIP: remote6.AsSlice()}
	firstFrag6 := serialize(tb, ethernet(layers.EthernetTypeIPv6), ip6, gopacket.Payload(fragUDP))
	laterFrag6 := serialize(tb, ethernet(layers.EthernetTypeIPv6), ip6, gopacket.Payload(append(mustHex("1100 00a0 12345678"), query...)))

	// IPv4 fragments, likewise.
	ip4 = &layers.IPv4{Version: 4, TTL: 64, Protocol: layers.IPProtocolUDP, Flags: layers.IPv4MoreFragments, SrcIP: laptop4.AsSlice(), DstIP: remote4.AsSlice()}
	firstFrag4 := serialize(tb, ethernet(layers.EthernetTypeIPv4), ip4, gopacket.Payload(append(udpHeader(40000, 53, len(query)+100), query...)))
	ip4 = &layers.IPv4{Version: 4, TTL: 64, Protocol: layers.IPProtocolUDP, FragOffset: 20, SrcIP: laptop4.AsSlice(), DstIP: remote4.AsSlice()}
	laterFrag4 := serialize(tb, ethernet(layers.EthernetTypeIPv4), ip4, gopacket.Payload(query))

	arp := serialize(tb, &layers.Ethernet{SrcMAC: mustMAC(laptopMAC), DstMAC: layers.EthernetBroadcast, EthernetType: layers.EthernetTypeARP},
		&layers.ARP{
			AddrType: layers.LinkTypeEthernet, Protocol: layers.EthernetTypeIPv4, HwAddressSize: 6, ProtAddressSize: 4,
			Operation: layers.ARPRequest, SourceHwAddress: mustMAC(laptopMAC), SourceProtAddress: laptop4.AsSlice(),
			DstHwAddress: make(net.HardwareAddr, 6), DstProtAddress: netip.MustParseAddr("192.168.77.1").AsSlice(),
		})
	wantARP := Summary{
		SrcMAC: macArray(laptopMAC), DstMAC: [6]byte(layers.EthernetBroadcast),
		EtherType: uint16(layers.EthernetTypeARP), Proto: "arp",
		Src: laptop4, Dst: netip.MustParseAddr("192.168.77.1"),
	}

	lldp := serialize(tb, ethernet(layers.EthernetTypeLinkLayerDiscovery), gopacket.Payload(mustHex("0207 04 020000000001 0403 05 6574 68 0000")))
	llc := append(append(append(mustMAC(boxMAC), mustMAC(laptopMAC)...), 0x00, 0x26), bytes.Repeat([]byte{0x42}, 46)...) // STP BPDU framing
	ipv4Bad := serialize(tb, ethernet(layers.EthernetTypeIPv4), gopacket.Payload(append(mustHex("4f00 0030 0000 0000 4011 0000"), append(laptop4.AsSlice(), remote4.AsSlice()...)...)))

	icmp := func(src, dst netip.Addr, l gopacket.SerializableLayer, proto layers.IPProtocol) []byte {
		ip, netLayer, typ := ipHeader(src, dst, proto)
		if i6, ok := l.(*layers.ICMPv6); ok {
			if err := i6.SetNetworkLayerForChecksum(netLayer); err != nil {
				tb.Fatal(err)
			}
		}
		return serialize(tb, ethernet(typ), ip, l, gopacket.Payload("ping"))
	}

	withEther := func(s Summary, typ uint16) Summary { s.EtherType = typ; return s }
	return []frameCase{
		{"802.1Q VLAN", vlan, wantVLAN},
		{"802.1ad double tag", qinq, wantQinQ},
		{"IPv6 hop-by-hop", hopByHop, summary(6, laptop6, remote6, "udp", 40000, 53, appDNS, "vlan.example")},
		{"IPv6 destination options and routing", extensions, summary(6, laptop6, remote6, "tcp", 51000, 443, "", "")},
		{"IPv6 first fragment", firstFrag6, summary(6, laptop6, remote6, "udp", 40000, 53, appDNS, "vlan.example")},
		{"IPv6 later fragment", laterFrag6, summary(6, laptop6, remote6, "udp", 0, 0, "", "")},
		{"IPv4 first fragment", firstFrag4, summary(4, laptop4, remote4, "udp", 40000, 53, appDNS, "vlan.example")},
		{"IPv4 later fragment", laterFrag4, summary(4, laptop4, remote4, "udp", 0, 0, "", "")},
		{"ARP request", arp, wantARP},
		{"LLDP", lldp, withEther(summary(0, netip.Addr{}, netip.Addr{}, "", 0, 0, "", ""), uint16(layers.EthernetTypeLinkLayerDiscovery))},
		{"802.3 LLC", llc, Summary{SrcMAC: macArray(laptopMAC), DstMAC: macArray(boxMAC)}},
		{"IPv4 with a bad header length", ipv4Bad, summary(4, laptop4, remote4, "udp", 0, 0, "", "")},
		{
			"ICMP echo", icmp(laptop4, remote4, &layers.ICMPv4{TypeCode: layers.CreateICMPv4TypeCode(layers.ICMPv4TypeEchoRequest, 0), Id: 1, Seq: 1}, layers.IPProtocolICMPv4),
			summary(4, laptop4, remote4, "icmp", 0, 0, "", ""),
		},
		{
			"ICMPv6 echo", icmp(laptop6, remote6, &layers.ICMPv6{TypeCode: layers.CreateICMPv6TypeCode(layers.ICMPv6TypeEchoRequest, 0)}, layers.IPProtocolICMPv6),
			summary(6, laptop6, remote6, "icmpv6", 0, 0, "", ""),
		},
		{
			"IGMP report", serialize(tb, ethernet(layers.EthernetTypeIPv4), &layers.IPv4{Version: 4, TTL: 1, Protocol: layers.IPProtocolIGMP, SrcIP: laptop4.AsSlice(), DstIP: netip.MustParseAddr("224.0.0.22").AsSlice()}, gopacket.Payload(mustHex("2200f9020000000104000000e00000fb"))),
			summary(4, laptop4, netip.MustParseAddr("224.0.0.22"), "igmp", 0, 0, "", ""),
		},
		{
			"ESP", serialize(tb, ethernet(layers.EthernetTypeIPv4), &layers.IPv4{Version: 4, TTL: 64, Protocol: layers.IPProtocolESP, SrcIP: laptop4.AsSlice(), DstIP: remote4.AsSlice()}, gopacket.Payload(mustHex("0000100100000001deadbeef"))),
			summary(4, laptop4, remote4, "ip-50", 0, 0, "", ""),
		},
	}
}

// tcpHeader is a bare 20-byte TCP SYN header (checksum left 0).
func tcpHeader(sport, dport uint16) []byte {
	h := binary.BigEndian.AppendUint16(nil, sport)
	h = binary.BigEndian.AppendUint16(h, dport)
	h = append(h, 0, 0, 0, 1, 0, 0, 0, 0, 0x50, 0x02, 0xfa, 0xf0, 0, 0, 0, 0)
	return h
}

// udpHeader is a UDP header for a payload of n bytes (checksum left 0).
func udpHeader(sport, dport uint16, n int) []byte {
	h := binary.BigEndian.AppendUint16(nil, sport)
	h = binary.BigEndian.AppendUint16(h, dport)
	h = binary.BigEndian.AppendUint16(h, uint16(8+n))
	return append(h, 0, 0)
}

// encodeNetBIOS writes a NetBIOS name in first-level encoding, with an empty scope
// (RFC 1001 section 14.1).
func encodeNetBIOS(name string, suffix byte) []byte {
	var raw [16]byte
	copy(raw[:], "                ")
	copy(raw[:15], name)
	raw[15] = suffix
	enc := []byte{0x20}
	for _, c := range raw {
		enc = append(enc, 'A'+c>>4, 'A'+c&0xf)
	}
	return append(enc, 0)
}

// dhcpMessage builds a DHCPDISCOVER from the laptop with gopacket's DHCPv4 layer.
func dhcpMessage(tb testing.TB, opts ...layers.DHCPOption) []byte {
	tb.Helper()
	d := &layers.DHCPv4{
		Operation: layers.DHCPOpRequest, HardwareType: layers.LinkTypeEthernet, HardwareLen: 6,
		Xid: 0x3903f326, Flags: 0x8000, ClientHWAddr: mustMAC(laptopMAC),
		Options: append(layers.DHCPOptions{layers.NewDHCPOption(layers.DHCPOptMessageType, []byte{byte(layers.DHCPMsgTypeDiscover)})}, opts...),
	}
	return serialize(tb, d)
}

func TestDecode(t *testing.T) {
	d := NewDecoder()
	for _, tt := range frameCases(t) {
		t.Run(tt.name, func(t *testing.T) {
			got := d.Decode(tt.frame)
			if got != tt.want {
				t.Errorf("Decode:\n got %+v\nwant %+v", got, tt.want)
			}
			if err := checkSummary(got); err != nil {
				t.Error(err)
			}
		})
	}
}

// TestDecodeTruncated cuts every table frame at every byte: nothing panics, every
// Summary is well-formed, and what the intact headers show is kept.
func TestDecodeTruncated(t *testing.T) {
	d := NewDecoder()
	d.parser.IgnorePanic = true // let a panic inside gopacket through
	for _, tt := range frameCases(t) {
		for n := range len(tt.frame) {
			got := d.Decode(tt.frame[:n])
			if err := checkSummary(got); err != nil {
				t.Fatalf("%s cut at %d: %v", tt.name, n, err)
			}
			if n >= ethHeaderLen && got.SrcMAC != tt.want.SrcMAC {
				t.Fatalf("%s cut at %d: lost the source MAC", tt.name, n)
			}
		}
	}

	// The ports of a TCP SYN survive as soon as its first 4 bytes are there.
	syn := tcpFrame(t, ap(laptop4, 51000), ap(remote4, 443), nil)
	for n := ethHeaderLen + ipv4HeaderLen + 4; n < len(syn); n++ {
		got := d.Decode(syn[:n])
		if got.Proto != "tcp" || got.SrcPort != 51000 || got.DstPort != 443 || got.Src != laptop4 {
			t.Fatalf("SYN cut at %d: %+v", n, got)
		}
	}
}

// TestDecodeReusesNothing checks that a Summary does not depend on the frame or the
// Decoder after Decode returns.
func TestDecodeReusesNothing(t *testing.T) {
	d := NewDecoder()
	cases := frameCases(t)
	var got []Summary
	for _, tt := range cases {
		frame := append([]byte(nil), tt.frame...)
		got = append(got, d.Decode(frame))
		clear(frame)
	}
	for i, tt := range cases {
		if got[i] != tt.want {
			t.Errorf("%s: later decoding changed the Summary:\n got %+v\nwant %+v", tt.name, got[i], tt.want)
		}
	}
}

func TestDecodeAllocations(t *testing.T) {
	// What gopacket allocates itself.
	extra := map[string]float64{
		"IPv6 hop-by-hop":               2, // an ipv6HeaderTLVOption per option
		"IPv4 with a bad header length": 2, // the error
	}
	d := NewDecoder()
	for _, tt := range frameCases(t) {
		want := extra[tt.name]
		if tt.want.Name != "" {
			want++ // the Name string
		}
		if allocs := testing.AllocsPerRun(100, func() { d.Decode(tt.frame) }); allocs > want {
			t.Errorf("%s: %v allocations per Decode, want at most %v", tt.name, allocs, want)
		}
	}
}
