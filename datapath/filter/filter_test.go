package filter

import (
	"net"
	"net/netip"
	"testing"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
)

var (
	boxMAC    = net.HardwareAddr{0x02, 0x52, 0x44, 0, 0, 0x01}
	laptopMAC = net.HardwareAddr{0x02, 0x52, 0x44, 0, 0, 0x64}
	bcastMAC  = net.HardwareAddr{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}
	boxIP     = net.IP{10, 201, 86, 1}
	laptopIP  = net.IP{10, 201, 86, 100}
	tracker   = net.IP{203, 0, 113, 10}
)

func testRules(t testing.TB, reveal bool) *Ruleset {
	t.Helper()
	rs, err := New(Config{
		Prefix: netip.MustParsePrefix("10.201.86.1/24"),
		MAC:    boxMAC,
		Services: []Service{
			{Proto: TCP, Port: 80},
			{Proto: UDP, Port: 53},
			{Proto: UDP, Port: 67, Broadcast: true},
		},
		Reveal: reveal,
	})
	if err != nil {
		t.Fatal(err)
	}
	return rs
}

// frame serializes layers with lengths and checksums fixed up.
func frame(t testing.TB, ls ...gopacket.SerializableLayer) []byte {
	t.Helper()
	var netLayer gopacket.NetworkLayer
	for _, l := range ls {
		if n, ok := l.(gopacket.NetworkLayer); ok {
			netLayer = n
		}
	}
	for _, l := range ls {
		if c, ok := l.(interface {
			SetNetworkLayerForChecksum(gopacket.NetworkLayer) error
		}); ok && netLayer != nil {
			c.SetNetworkLayerForChecksum(netLayer)
		}
	}
	buf := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}, ls...); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func eth(src, dst net.HardwareAddr, et layers.EthernetType) *layers.Ethernet {
	return &layers.Ethernet{SrcMAC: src, DstMAC: dst, EthernetType: et}
}

func ip4(src, dst net.IP, proto layers.IPProtocol) *layers.IPv4 {
	return &layers.IPv4{Version: 4, IHL: 5, TTL: 64, Protocol: proto, SrcIP: src, DstIP: dst}
}

func syn(dport uint16) *layers.TCP {
	return &layers.TCP{SrcPort: 40000, DstPort: layers.TCPPort(dport), SYN: true, Window: 1000}
}
func ack(dport uint16) *layers.TCP {
	return &layers.TCP{SrcPort: 40000, DstPort: layers.TCPPort(dport), ACK: true, Window: 1000}
}
func udp(dport uint16) *layers.UDP {
	return &layers.UDP{SrcPort: 40000, DstPort: layers.UDPPort(dport)}
}

func arp(op uint16, sha net.HardwareAddr, spa, tpa net.IP) *layers.ARP {
	return &layers.ARP{AddrType: layers.LinkTypeEthernet, Protocol: layers.EthernetTypeIPv4, HwAddressSize: 6, ProtAddressSize: 4,
		Operation: op, SourceHwAddress: sha, SourceProtAddress: spa, DstHwAddress: make([]byte, 6), DstProtAddress: tpa}
}

func TestCheck(t *testing.T) {
	rs := testRules(t, true)
	noReveal := testRules(t, false)
	ll := net.ParseIP("fe80::1")
	laptop6 := net.ParseIP("fe80::52:44ff:fe00:64")
	global6 := net.ParseIP("2001:db8::10")
	payload := gopacket.Payload([]byte("x"))

	frag := ip4(laptopIP, boxIP, layers.IPProtocolUDP)
	frag.Flags = layers.IPv4MoreFragments
	fragOffset := ip4(laptopIP, tracker, layers.IPProtocolUDP)
	fragOffset.FragOffset = 100

	tests := []struct {
		name  string
		rules *Ruleset
		frame []byte
		gso   bool
		vlan  bool
		want  Verdict
	}{
		{"tcp to box service", rs, frame(t, eth(laptopMAC, boxMAC, layers.EthernetTypeIPv4), ip4(laptopIP, boxIP, layers.IPProtocolTCP), syn(80)), false, false, accept},
		{"gso tcp to box service", rs, frame(t, eth(laptopMAC, boxMAC, layers.EthernetTypeIPv4), ip4(laptopIP, boxIP, layers.IPProtocolTCP), ack(80), payload), true, false, accept},
		{"gso udp", rs, frame(t, eth(laptopMAC, boxMAC, layers.EthernetTypeIPv4), ip4(laptopIP, boxIP, layers.IPProtocolUDP), udp(53), payload), true, false, drop(Malformed)},
		{"udp to box service", rs, frame(t, eth(laptopMAC, boxMAC, layers.EthernetTypeIPv4), ip4(laptopIP, boxIP, layers.IPProtocolUDP), udp(53), payload), false, false, accept},
		{"tcp to closed box port", rs, frame(t, eth(laptopMAC, boxMAC, layers.EthernetTypeIPv4), ip4(laptopIP, boxIP, layers.IPProtocolTCP), syn(22)), false, false, drop(ClosedPort)},
		{"udp to closed box port", rs, frame(t, eth(laptopMAC, boxMAC, layers.EthernetTypeIPv4), ip4(laptopIP, boxIP, layers.IPProtocolUDP), udp(123), payload), false, false, drop(ClosedPort)},
		{"ping box", rs, frame(t, eth(laptopMAC, boxMAC, layers.EthernetTypeIPv4), ip4(laptopIP, boxIP, layers.IPProtocolICMPv4), &layers.ICMPv4{TypeCode: layers.CreateICMPv4TypeCode(8, 0)}), false, false, accept},
		{"icmp timestamp to box", rs, frame(t, eth(laptopMAC, boxMAC, layers.EthernetTypeIPv4), ip4(laptopIP, boxIP, layers.IPProtocolICMPv4), &layers.ICMPv4{TypeCode: layers.CreateICMPv4TypeCode(13, 0)}), false, false, drop(ClosedPort)},
		{"ping tracker", rs, frame(t, eth(laptopMAC, boxMAC, layers.EthernetTypeIPv4), ip4(laptopIP, tracker, layers.IPProtocolICMPv4), &layers.ICMPv4{TypeCode: layers.CreateICMPv4TypeCode(8, 0)}), false, false, drop(Egress)},
		{"tcp syn to tracker, reveal", rs, frame(t, eth(laptopMAC, boxMAC, layers.EthernetTypeIPv4), ip4(laptopIP, tracker, layers.IPProtocolTCP), syn(443)), false, false, Verdict{Reveal, Egress}},
		{"tcp ack to tracker, reveal", rs, frame(t, eth(laptopMAC, boxMAC, layers.EthernetTypeIPv4), ip4(laptopIP, tracker, layers.IPProtocolTCP), ack(443)), false, false, Verdict{Reveal, Egress}},
		{"tcp syn to tracker, no reveal", noReveal, frame(t, eth(laptopMAC, boxMAC, layers.EthernetTypeIPv4), ip4(laptopIP, tracker, layers.IPProtocolTCP), syn(443)), false, false, drop(Egress)},
		{"udp dns to 8.8.8.8", rs, frame(t, eth(laptopMAC, boxMAC, layers.EthernetTypeIPv4), ip4(laptopIP, net.IP{8, 8, 8, 8}, layers.IPProtocolUDP), udp(53), payload), false, false, drop(Egress)},
		{"gre to tracker", rs, frame(t, eth(laptopMAC, boxMAC, layers.EthernetTypeIPv4), ip4(laptopIP, tracker, layers.IPProtocolGRE), payload), false, false, drop(Egress)},
		{"to another LAN address", rs, frame(t, eth(laptopMAC, boxMAC, layers.EthernetTypeIPv4), ip4(laptopIP, net.IP{10, 201, 86, 50}, layers.IPProtocolUDP), udp(9), payload), false, false, drop(Egress)},
		{"spoofed source outside LAN", rs, frame(t, eth(laptopMAC, boxMAC, layers.EthernetTypeIPv4), ip4(net.IP{198, 51, 100, 7}, boxIP, layers.IPProtocolTCP), syn(80)), false, false, drop(Spoofed)},
		{"spoofed source is the box", rs, frame(t, eth(laptopMAC, boxMAC, layers.EthernetTypeIPv4), ip4(boxIP, boxIP, layers.IPProtocolTCP), syn(80)), false, false, drop(Spoofed)},
		{"spoofed source is the LAN broadcast", rs, frame(t, eth(laptopMAC, boxMAC, layers.EthernetTypeIPv4), ip4(net.IP{10, 201, 86, 255}, boxIP, layers.IPProtocolTCP), syn(80)), false, false, drop(Spoofed)},
		{"unspecified source to tcp", rs, frame(t, eth(laptopMAC, boxMAC, layers.EthernetTypeIPv4), ip4(net.IP{0, 0, 0, 0}, boxIP, layers.IPProtocolTCP), syn(80)), false, false, drop(Spoofed)},
		{"group source MAC", rs, frame(t, eth(net.HardwareAddr{1, 0, 0x5e, 0, 0, 1}, boxMAC, layers.EthernetTypeIPv4), ip4(laptopIP, boxIP, layers.IPProtocolTCP), syn(80)), false, false, drop(Spoofed)},
		{"dhcp discover", rs, frame(t, eth(laptopMAC, bcastMAC, layers.EthernetTypeIPv4), ip4(net.IP{0, 0, 0, 0}, net.IP{255, 255, 255, 255}, layers.IPProtocolUDP), &layers.UDP{SrcPort: 68, DstPort: 67}, payload), false, false, accept},
		{"dhcp renew to box", rs, frame(t, eth(laptopMAC, boxMAC, layers.EthernetTypeIPv4), ip4(laptopIP, boxIP, layers.IPProtocolUDP), &layers.UDP{SrcPort: 68, DstPort: 67}, payload), false, false, accept},
		{"dhcp to foreign server", rs, frame(t, eth(laptopMAC, boxMAC, layers.EthernetTypeIPv4), ip4(net.IP{0, 0, 0, 0}, tracker, layers.IPProtocolUDP), &layers.UDP{SrcPort: 68, DstPort: 67}, payload), false, false, drop(Spoofed)},
		{"netbios broadcast", rs, frame(t, eth(laptopMAC, bcastMAC, layers.EthernetTypeIPv4), ip4(laptopIP, net.IP{10, 201, 86, 255}, layers.IPProtocolUDP), udp(137), payload), false, false, drop(Discovery)},
		{"other broadcast", rs, frame(t, eth(laptopMAC, bcastMAC, layers.EthernetTypeIPv4), ip4(laptopIP, net.IP{255, 255, 255, 255}, layers.IPProtocolUDP), udp(9999), payload), false, false, drop(Broadcast)},
		{"mdns", rs, frame(t, eth(laptopMAC, net.HardwareAddr{1, 0, 0x5e, 0, 0, 0xfb}, layers.EthernetTypeIPv4), ip4(laptopIP, net.IP{224, 0, 0, 251}, layers.IPProtocolUDP), udp(5353), payload), false, false, drop(Discovery)},
		{"ssdp", rs, frame(t, eth(laptopMAC, net.HardwareAddr{1, 0, 0x5e, 0x7f, 0xff, 0xfa}, layers.EthernetTypeIPv4), ip4(laptopIP, net.IP{239, 255, 255, 250}, layers.IPProtocolUDP), udp(1900), payload), false, false, drop(Discovery)},
		{"igmp report", rs, frame(t, eth(laptopMAC, net.HardwareAddr{1, 0, 0x5e, 0, 0, 0x16}, layers.EthernetTypeIPv4), ip4(laptopIP, net.IP{224, 0, 0, 22}, layers.IPProtocolIGMP), payload), false, false, drop(Broadcast)},
		{"to box address behind broadcast MAC", rs, frame(t, eth(laptopMAC, bcastMAC, layers.EthernetTypeIPv4), ip4(laptopIP, boxIP, layers.IPProtocolTCP), syn(80)), false, false, drop(Malformed)},
		{"to loopback", rs, frame(t, eth(laptopMAC, boxMAC, layers.EthernetTypeIPv4), ip4(laptopIP, net.IP{127, 0, 0, 1}, layers.IPProtocolTCP), syn(80)), false, false, drop(Malformed)},
		{"more fragments", rs, frame(t, eth(laptopMAC, boxMAC, layers.EthernetTypeIPv4), frag, udp(53), payload), false, false, drop(Fragment)},
		{"fragment offset", rs, frame(t, eth(laptopMAC, boxMAC, layers.EthernetTypeIPv4), fragOffset, payload), false, false, drop(Fragment)},
		{"unicast to another MAC", rs, frame(t, eth(laptopMAC, net.HardwareAddr{2, 0, 0, 0, 0, 9}, layers.EthernetTypeIPv4), ip4(laptopIP, tracker, layers.IPProtocolTCP), syn(80)), false, false, drop(OtherHost)},
		{"arp for box", rs, frame(t, eth(laptopMAC, bcastMAC, layers.EthernetTypeARP), arp(1, laptopMAC, laptopIP, boxIP)), false, false, accept},
		{"arp reply to box", rs, frame(t, eth(laptopMAC, boxMAC, layers.EthernetTypeARP), arp(2, laptopMAC, laptopIP, boxIP)), false, false, accept},
		{"arp for someone else", rs, frame(t, eth(laptopMAC, bcastMAC, layers.EthernetTypeARP), arp(1, laptopMAC, laptopIP, net.IP{10, 201, 86, 7})), false, false, drop(ARP)},
		{"arp for the tracker", rs, frame(t, eth(laptopMAC, bcastMAC, layers.EthernetTypeARP), arp(1, laptopMAC, laptopIP, tracker)), false, false, drop(ARP)},
		{"gratuitous arp", rs, frame(t, eth(laptopMAC, bcastMAC, layers.EthernetTypeARP), arp(1, laptopMAC, laptopIP, laptopIP)), false, false, drop(ARP)},
		{"arp probe", rs, frame(t, eth(laptopMAC, bcastMAC, layers.EthernetTypeARP), arp(1, laptopMAC, net.IP{0, 0, 0, 0}, laptopIP)), false, false, drop(ARP)},
		{"arp claiming the box's address", rs, frame(t, eth(laptopMAC, bcastMAC, layers.EthernetTypeARP), arp(1, laptopMAC, boxIP, net.IP{10, 201, 86, 7})), false, false, drop(Spoofed)},
		{"arp with lying sender MAC", rs, frame(t, eth(laptopMAC, bcastMAC, layers.EthernetTypeARP), arp(1, net.HardwareAddr{2, 0, 0, 0, 0, 9}, laptopIP, boxIP)), false, false, drop(Spoofed)},
		{"ipv6 router solicitation", rs, frame(t, eth(laptopMAC, net.HardwareAddr{0x33, 0x33, 0, 0, 0, 2}, layers.EthernetTypeIPv6), &layers.IPv6{Version: 6, NextHeader: layers.IPProtocolICMPv6, HopLimit: 255, SrcIP: laptop6, DstIP: net.ParseIP("ff02::2")}, &layers.ICMPv6{TypeCode: layers.CreateICMPv6TypeCode(133, 0)}), false, false, drop(IPv6Link)},
		{"ipv6 to link-local", rs, frame(t, eth(laptopMAC, boxMAC, layers.EthernetTypeIPv6), &layers.IPv6{Version: 6, NextHeader: layers.IPProtocolTCP, HopLimit: 64, SrcIP: laptop6, DstIP: ll}, syn(80)), false, false, drop(IPv6Link)},
		{"ipv6 to the internet", rs, frame(t, eth(laptopMAC, boxMAC, layers.EthernetTypeIPv6), &layers.IPv6{Version: 6, NextHeader: layers.IPProtocolTCP, HopLimit: 64, SrcIP: net.ParseIP("2001:db8::100"), DstIP: global6}, syn(443)), false, false, drop(Egress)},
		{"ipv6 mdns", rs, frame(t, eth(laptopMAC, net.HardwareAddr{0x33, 0x33, 0, 0, 0, 0xfb}, layers.EthernetTypeIPv6), &layers.IPv6{Version: 6, NextHeader: layers.IPProtocolUDP, HopLimit: 255, SrcIP: laptop6, DstIP: net.ParseIP("ff02::fb")}, udp(5353), payload), false, false, drop(Discovery)},
		{"ipv6 fragment", rs, frame(t, eth(laptopMAC, boxMAC, layers.EthernetTypeIPv6), &layers.IPv6{Version: 6, NextHeader: layers.IPProtocolIPv6Fragment, HopLimit: 64, SrcIP: laptop6, DstIP: global6}, gopacket.Payload(make([]byte, 16))), false, false, drop(Fragment)},
		{"vlan tagged", rs, frame(t, eth(laptopMAC, boxMAC, layers.EthernetTypeDot1Q), &layers.Dot1Q{VLANIdentifier: 7, Type: layers.EthernetTypeIPv4}, ip4(laptopIP, boxIP, layers.IPProtocolTCP), syn(80)), false, false, drop(VLAN)},
		{"vlan tag stripped by the kernel", rs, frame(t, eth(laptopMAC, boxMAC, layers.EthernetTypeIPv4), ip4(laptopIP, boxIP, layers.IPProtocolTCP), syn(80)), false, true, drop(VLAN)},
		{"lldp", rs, frame(t, eth(laptopMAC, net.HardwareAddr{1, 0x80, 0xc2, 0, 0, 0xe}, layers.EthernetType(0x88cc)), payload), false, false, drop(NonIP)},
		{"802.3 llc", rs, frame(t, eth(laptopMAC, boxMAC, layers.EthernetType(0x0026)), payload), false, false, drop(NonIP)},
		{"runt", rs, []byte{1, 2, 3}, false, false, drop(Malformed)},
		{"truncated ipv4", rs, frame(t, eth(laptopMAC, boxMAC, layers.EthernetTypeIPv4), payload), false, false, drop(Malformed)},
		{"truncated arp", rs, frame(t, eth(laptopMAC, bcastMAC, layers.EthernetTypeARP), gopacket.Payload(make([]byte, 10))), false, false, drop(Malformed)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.rules.Check(tt.frame, len(tt.frame), tt.gso, tt.vlan); got != tt.want {
				t.Errorf("Check = %+v (%v), want %+v (%v)", got, got.Kind, tt.want, tt.want.Kind)
			}
		})
	}
}

func TestTeamRelay(t *testing.T) {
	team := net.IP{100, 64, 0, 7}
	rs, err := testRules(t, true).With(func(c *Config) { c.Team = []netip.Addr{netip.MustParseAddr("100.64.0.7")} })
	if err != nil {
		t.Fatal(err)
	}
	relay := Verdict{Action: Relay}
	for name, tt := range map[string]struct {
		f    []byte
		want Verdict
	}{
		"tcp to a team device":       {frame(t, eth(laptopMAC, boxMAC, layers.EthernetTypeIPv4), ip4(laptopIP, team, layers.IPProtocolTCP), syn(8080)), relay},
		"udp to a team device":       {frame(t, eth(laptopMAC, boxMAC, layers.EthernetTypeIPv4), ip4(laptopIP, team, layers.IPProtocolUDP), udp(5353), gopacket.Payload("x")), relay},
		"ping to a team device":      {frame(t, eth(laptopMAC, boxMAC, layers.EthernetTypeIPv4), ip4(laptopIP, team, layers.IPProtocolICMPv4), &layers.ICMPv4{TypeCode: layers.CreateICMPv4TypeCode(8, 0)}), drop(Egress)},
		"tcp to another tailnet one": {frame(t, eth(laptopMAC, boxMAC, layers.EthernetTypeIPv4), ip4(laptopIP, net.IP{100, 64, 0, 8}, layers.IPProtocolTCP), syn(8080)), Verdict{Reveal, Egress}},
		"spoofed source to the team": {frame(t, eth(laptopMAC, boxMAC, layers.EthernetTypeIPv4), ip4(net.IP{198, 51, 100, 7}, team, layers.IPProtocolTCP), syn(8080)), drop(Spoofed)},
	} {
		if got := rs.Check(tt.f, len(tt.f), false, false); got != tt.want {
			t.Errorf("%s: %+v, want %+v", name, got, tt.want)
		}
	}
	reply := frame(t, eth(boxMAC, laptopMAC, layers.EthernetTypeIPv4), ip4(team, laptopIP, layers.IPProtocolUDP), udp(40000))
	if !rs.CheckOutbound(reply[:ethHdrLen+28]) {
		t.Error("the relay's reply from a team address was refused")
	}
	if testRules(t, false).CheckOutbound(reply[:ethHdrLen+28]) {
		t.Error("a reply from a team address went out with no team configured")
	}
	if _, err := New(Config{Prefix: netip.MustParsePrefix("10.201.86.1/24"), MAC: boxMAC, Team: []netip.Addr{netip.MustParseAddr("10.201.86.9")}}); err == nil {
		t.Error("a LAN address accepted as a team address")
	}
}

func TestCheckHeadOnly(t *testing.T) {
	rs := testRules(t, true)
	big := frame(t, eth(laptopMAC, boxMAC, layers.EthernetTypeIPv4), ip4(laptopIP, boxIP, layers.IPProtocolUDP), udp(53), gopacket.Payload(make([]byte, 1400)))
	if v := rs.Check(big[:HeadLen], len(big), false, false); v != accept {
		t.Errorf("head of a large datagram to a service: %+v", v)
	}
	// A wire length shorter than the IPv4 total length: truncated.
	if v := rs.Check(big[:HeadLen], HeadLen+10, false, false); v != drop(Malformed) {
		t.Errorf("truncated datagram: %+v", v)
	}
	gsoSeg := frame(t, eth(laptopMAC, boxMAC, layers.EthernetTypeIPv4), ip4(laptopIP, boxIP, layers.IPProtocolTCP), ack(80), gopacket.Payload(make([]byte, 60000)))
	if v := rs.Check(gsoSeg[:HeadLen], len(gsoSeg), true, false); v != accept {
		t.Errorf("head of a GSO segment: %+v", v)
	}
}

func TestCheckMangledIPv4(t *testing.T) {
	rs := testRules(t, true)
	good := frame(t, eth(laptopMAC, boxMAC, layers.EthernetTypeIPv4), ip4(laptopIP, boxIP, layers.IPProtocolTCP), syn(80))
	if v := rs.Check(good, len(good), false, false); v != accept {
		t.Fatalf("good frame: %+v", v)
	}
	mangle := map[string]func(b []byte){
		"bad header checksum": func(b []byte) { b[14+10] ^= 0xff },
		"ihl too small":       func(b []byte) { b[14] = 0x44 },
		"ihl beyond packet":   func(b []byte) { b[14] = 0x4f },
		"total length short":  func(b []byte) { b[14+2], b[14+3] = 0, 10 },
		"total length long":   func(b []byte) { b[14+2], b[14+3] = 0xff, 0xff },
		"version 5":           func(b []byte) { b[14] = 0x55 },
		"tcp offset beyond":   func(b []byte) { b[14+20+12] = 0xf0 },
	}
	for name, fn := range mangle {
		b := append([]byte(nil), good...)
		fn(b)
		if v := rs.Check(b, len(b), false, false); v.Action != Drop || v.Kind != Malformed {
			t.Errorf("%s: %+v (%v), want malformed", name, v, v.Kind)
		}
	}
}

func TestTransportChecksum(t *testing.T) {
	good := frame(t, eth(laptopMAC, boxMAC, layers.EthernetTypeIPv4), ip4(laptopIP, boxIP, layers.IPProtocolTCP), syn(80), gopacket.Payload("hello"))
	if !TransportChecksumOK(good) {
		t.Fatal("good TCP checksum refused")
	}
	bad := append([]byte(nil), good...)
	bad[14+20+20] ^= 1 // first payload byte
	if TransportChecksumOK(bad) {
		t.Fatal("bad TCP checksum accepted")
	}
	u := frame(t, eth(laptopMAC, boxMAC, layers.EthernetTypeIPv4), ip4(laptopIP, boxIP, layers.IPProtocolUDP), udp(53), gopacket.Payload("q"))
	if !TransportChecksumOK(u) {
		t.Fatal("good UDP checksum refused")
	}
	u[14+20+8] ^= 1
	if TransportChecksumOK(u) {
		t.Fatal("bad UDP checksum accepted")
	}
	u[14+20+6], u[14+20+7] = 0, 0
	if !TransportChecksumOK(u) {
		t.Fatal("UDP without checksum refused")
	}
	icmp := frame(t, eth(laptopMAC, boxMAC, layers.EthernetTypeIPv4), ip4(laptopIP, boxIP, layers.IPProtocolICMPv4), &layers.ICMPv4{TypeCode: layers.CreateICMPv4TypeCode(8, 0)}, gopacket.Payload("ping"))
	if !TransportChecksumOK(icmp) {
		t.Fatal("good ICMP checksum refused")
	}
	icmp[14+20+8] ^= 1
	if TransportChecksumOK(icmp) {
		t.Fatal("bad ICMP checksum accepted")
	}
}

func TestCheckOutbound(t *testing.T) {
	rs := testRules(t, true)
	noReveal := testRules(t, false)
	tests := []struct {
		name  string
		rules *Ruleset
		frame []byte
		want  bool
	}{
		{"box to laptop", rs, frame(t, eth(boxMAC, laptopMAC, layers.EthernetTypeIPv4), ip4(boxIP, laptopIP, layers.IPProtocolTCP), syn(80)), true},
		{"dhcp broadcast reply", rs, frame(t, eth(boxMAC, bcastMAC, layers.EthernetTypeIPv4), ip4(boxIP, net.IP{255, 255, 255, 255}, layers.IPProtocolUDP), udp(68)), true},
		{"box arp", rs, frame(t, eth(boxMAC, bcastMAC, layers.EthernetTypeARP), arp(1, boxMAC, boxIP, laptopIP)), true},
		{"arp claiming a foreign address", rs, frame(t, eth(boxMAC, bcastMAC, layers.EthernetTypeARP), arp(1, boxMAC, tracker, laptopIP)), false},
		{"reveal reply", rs, frame(t, eth(boxMAC, laptopMAC, layers.EthernetTypeIPv4), ip4(tracker, laptopIP, layers.IPProtocolTCP), ack(40000)), true},
		{"reveal reply with reveal off", noReveal, frame(t, eth(boxMAC, laptopMAC, layers.EthernetTypeIPv4), ip4(tracker, laptopIP, layers.IPProtocolTCP), ack(40000)), false},
		{"udp from a foreign address", rs, frame(t, eth(boxMAC, laptopMAC, layers.EthernetTypeIPv4), ip4(tracker, laptopIP, layers.IPProtocolUDP), udp(5)), false},
		{"forwarded off the LAN", rs, frame(t, eth(boxMAC, laptopMAC, layers.EthernetTypeIPv4), ip4(boxIP, tracker, layers.IPProtocolTCP), syn(80)), false},
		{"router advertisement", rs, frame(t, eth(boxMAC, net.HardwareAddr{0x33, 0x33, 0, 0, 0, 1}, layers.EthernetTypeIPv6), &layers.IPv6{Version: 6, NextHeader: layers.IPProtocolICMPv6, HopLimit: 255, SrcIP: net.ParseIP("fe80::1"), DstIP: net.ParseIP("ff02::1")}, &layers.ICMPv6{TypeCode: layers.CreateICMPv6TypeCode(134, 0)}), false},
		{"another source MAC", rs, frame(t, eth(laptopMAC, laptopMAC, layers.EthernetTypeIPv4), ip4(boxIP, laptopIP, layers.IPProtocolTCP), syn(80)), false},
	}
	for _, tt := range tests {
		hdr := tt.frame[:min(len(tt.frame), ethHdrLen+28)]
		if got := tt.rules.CheckOutbound(hdr); got != tt.want {
			t.Errorf("%s: CheckOutbound = %v, want %v", tt.name, got, tt.want)
		}
	}
}

func TestConfigValidate(t *testing.T) {
	good := Config{Prefix: netip.MustParsePrefix("10.201.86.1/24"), MAC: boxMAC}
	if err := good.Validate(); err != nil {
		t.Fatal(err)
	}
	bad := map[string]Config{
		"network address": {Prefix: netip.MustParsePrefix("10.201.86.0/24"), MAC: boxMAC},
		"broadcast":       {Prefix: netip.MustParsePrefix("10.201.86.255/24"), MAC: boxMAC},
		"ipv6":            {Prefix: netip.MustParsePrefix("fd00::1/64"), MAC: boxMAC},
		"/31":             {Prefix: netip.MustParsePrefix("10.0.0.1/31"), MAC: boxMAC},
		"group MAC":       {Prefix: good.Prefix, MAC: net.HardwareAddr{1, 0, 0, 0, 0, 1}},
		"short MAC":       {Prefix: good.Prefix, MAC: net.HardwareAddr{2, 0}},
		"port 0":          {Prefix: good.Prefix, MAC: boxMAC, Services: []Service{{Proto: TCP}}},
		"tcp broadcast":   {Prefix: good.Prefix, MAC: boxMAC, Services: []Service{{Proto: TCP, Port: 1, Broadcast: true}}},
		"proto":           {Prefix: good.Prefix, MAC: boxMAC, Services: []Service{{Proto: 1, Port: 1}}},
	}
	for name, c := range bad {
		if err := c.Validate(); err == nil {
			t.Errorf("%s: Validate accepted %+v", name, c)
		}
	}
}

func TestRulesetImmutable(t *testing.T) {
	cfg := Config{Prefix: netip.MustParsePrefix("10.201.86.1/24"), MAC: append(net.HardwareAddr(nil), boxMAC...),
		Services: []Service{{Proto: TCP, Port: 80}}}
	rs, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	cfg.MAC[5] = 0x99
	cfg.Services[0].Port = 22
	c := rs.Config()
	c.Services[0].Port = 23
	if got := rs.Config(); got.MAC[5] != 0x01 || got.Services[0].Port != 80 {
		t.Fatalf("ruleset changed through its config: %+v", got)
	}
	next, err := rs.With(func(c *Config) { c.Services = append(c.Services, Service{Proto: UDP, Port: 53}) })
	if err != nil {
		t.Fatal(err)
	}
	if len(rs.Config().Services) != 1 || len(next.Config().Services) != 2 {
		t.Fatal("With changed the original ruleset")
	}
}

func TestKindNames(t *testing.T) {
	for k := range NumKinds {
		name := Kind(k).String()
		back, err := ParseKind(name)
		if err != nil || back != Kind(k) {
			t.Errorf("kind %d: %q parses back as %v, %v", k, name, back, err)
		}
	}
	if _, err := ParseKind("nonsense"); err == nil {
		t.Error("ParseKind accepted nonsense")
	}
}

func FuzzCheck(f *testing.F) {
	f.Add(frame(f, eth(laptopMAC, boxMAC, layers.EthernetTypeIPv4), ip4(laptopIP, boxIP, layers.IPProtocolTCP), syn(80)), false, false)
	f.Add(frame(f, eth(laptopMAC, bcastMAC, layers.EthernetTypeARP), arp(1, laptopMAC, laptopIP, boxIP)), false, false)
	f.Add(frame(f, eth(laptopMAC, boxMAC, layers.EthernetTypeIPv6), &layers.IPv6{Version: 6, NextHeader: layers.IPProtocolIPv6HopByHop, HopLimit: 64, SrcIP: net.ParseIP("fe80::1"), DstIP: net.ParseIP("2001:db8::1")}, gopacket.Payload([]byte{6, 0, 0, 0, 0, 0, 0, 0})), false, false)
	f.Add(frame(f, eth(laptopMAC, bcastMAC, layers.EthernetTypeIPv4), ip4(net.IP{0, 0, 0, 0}, net.IP{255, 255, 255, 255}, layers.IPProtocolUDP), &layers.UDP{SrcPort: 68, DstPort: 67}), false, false)
	f.Add([]byte{}, true, true)
	rs := testRules(f, true)
	f.Fuzz(func(t *testing.T, b []byte, gso, vlan bool) {
		v := rs.Check(b, len(b), gso, vlan)
		if len(b) > HeadLen {
			// Seeing only the head gives the same verdict, or "malformed" when a
			// header lies beyond it (the gate then checks the whole frame).
			if h := rs.Check(b[:HeadLen], len(b), gso, vlan); h != v && h != drop(Malformed) {
				t.Fatalf("head-only verdict %+v, whole-frame verdict %+v", h, v)
			}
		}
		if v.Action == Accept && v.Kind != None {
			t.Fatalf("accept with a kind: %+v", v)
		}
		if v.Action == Drop && (v.Kind == None || int(v.Kind) >= NumKinds) {
			t.Fatalf("drop without a valid kind: %+v", v)
		}
		if v.Action != Drop && (len(b) < ethHdrLen || !macEqual(b[0:6], rs.mac)) && !(len(b) >= ethHdrLen && b[0]&1 == 1) {
			t.Fatalf("accepted a frame not addressed to the box: %+v", v)
		}
		rs.CheckOutbound(b)
		TransportChecksumOK(b)
	})
}

func BenchmarkCheckAccept(b *testing.B) {
	rs := testRules(b, true)
	f := frame(b, eth(laptopMAC, boxMAC, layers.EthernetTypeIPv4), ip4(laptopIP, boxIP, layers.IPProtocolTCP), ack(80), gopacket.Payload(make([]byte, 1400)))
	b.ReportAllocs()
	b.SetBytes(int64(len(f)))
	for b.Loop() {
		if rs.Check(f, len(f), false, false) != accept {
			b.Fatal("not accepted")
		}
	}
}

func BenchmarkCheckDropEgress(b *testing.B) {
	rs := testRules(b, true)
	f := frame(b, eth(laptopMAC, boxMAC, layers.EthernetTypeIPv4), ip4(laptopIP, net.IP{8, 8, 8, 8}, layers.IPProtocolUDP), udp(53), gopacket.Payload(make([]byte, 40)))
	b.ReportAllocs()
	for b.Loop() {
		if rs.Check(f, len(f), false, false).Kind != Egress {
			b.Fatal("not egress")
		}
	}
}

func BenchmarkTransportChecksum(b *testing.B) {
	f := frame(b, eth(laptopMAC, boxMAC, layers.EthernetTypeIPv4), ip4(laptopIP, boxIP, layers.IPProtocolTCP), ack(80), gopacket.Payload(make([]byte, 1400)))
	b.ReportAllocs()
	b.SetBytes(int64(len(f)))
	for b.Loop() {
		if !TransportChecksumOK(f) {
			b.Fatal("bad checksum")
		}
	}
}
