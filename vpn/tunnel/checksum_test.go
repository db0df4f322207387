package tunnel

import (
	"net"
	"net/netip"
	"sync"
	"testing"
	"time"

	"golang.org/x/net/dns/dnsmessage"
	"gvisor.dev/gvisor/pkg/tcpip/checksum"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
)

func buildPacket(t testing.TB, v6 bool, l4 string) []byte {
	t.Helper()
	var ip gopacket.NetworkLayer
	var ipl gopacket.SerializableLayer
	if v6 {
		next := map[string]layers.IPProtocol{"tcp": layers.IPProtocolTCP, "udp": layers.IPProtocolUDP, "icmp": layers.IPProtocolICMPv6}[l4]
		l := &layers.IPv6{Version: 6, HopLimit: 64, NextHeader: next, SrcIP: net.ParseIP("fd00::1"), DstIP: net.ParseIP("fd00::2")}
		ip, ipl = l, l
	} else {
		proto := map[string]layers.IPProtocol{"tcp": layers.IPProtocolTCP, "udp": layers.IPProtocolUDP, "icmp": layers.IPProtocolICMPv4}[l4]
		l := &layers.IPv4{Version: 4, IHL: 5, TTL: 64, Protocol: proto, SrcIP: net.IP{10, 66, 0, 1}, DstIP: net.IP{10, 66, 0, 2}}
		ip, ipl = l, l
	}
	payload := gopacket.Payload("some payload bytes")
	var l4l gopacket.SerializableLayer
	switch l4 {
	case "tcp":
		tcp := &layers.TCP{SrcPort: 80, DstPort: 40000, ACK: true, Window: 1000, Seq: 7}
		tcp.SetNetworkLayerForChecksum(ip)
		l4l = tcp
	case "udp":
		udp := &layers.UDP{SrcPort: 53, DstPort: 40000}
		udp.SetNetworkLayerForChecksum(ip)
		l4l = udp
	case "icmp":
		if v6 {
			icmp := &layers.ICMPv6{TypeCode: layers.CreateICMPv6TypeCode(layers.ICMPv6TypeEchoReply, 0)}
			icmp.SetNetworkLayerForChecksum(ip)
			l4l = icmp
		} else {
			l4l = &layers.ICMPv4{TypeCode: layers.CreateICMPv4TypeCode(layers.ICMPv4TypeEchoReply, 0)}
		}
	}
	buf := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}, ipl, l4l, payload); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestChecksumsOK(t *testing.T) {
	for _, v6 := range []bool{false, true} {
		for _, l4 := range []string{"tcp", "udp", "icmp"} {
			p := buildPacket(t, v6, l4)
			if !checksumsOK(p) {
				t.Errorf("v6=%v %s: a good packet was refused", v6, l4)
			}
			bad := append([]byte(nil), p...)
			bad[len(bad)-1] ^= 0x40 // a payload bit flipped on the way to the VPN server
			if checksumsOK(bad) {
				t.Errorf("v6=%v %s: a damaged packet passed", v6, l4)
			}
			if checksumsOK(p[:len(p)/2]) {
				t.Errorf("v6=%v %s: a truncated packet passed", v6, l4)
			}
		}
	}
	p := buildPacket(t, false, "tcp")
	p[8]-- // TTL changed without fixing the header checksum
	if checksumsOK(p) {
		t.Error("a bad IPv4 header checksum passed")
	}
	for _, junk := range [][]byte{nil, {0x45}, {0x60, 0, 0}, {0x10, 1, 2, 3}, make([]byte, 40)} {
		if checksumsOK(junk) {
			t.Errorf("junk %x passed", junk)
		}
	}
}

func FuzzChecksumsOK(f *testing.F) {
	f.Add(buildPacket(f, false, "tcp"))
	f.Add(buildPacket(f, true, "udp"))
	f.Add(buildPacket(f, false, "icmp"))
	f.Fuzz(func(t *testing.T, p []byte) { checksumsOK(p) })
}

func checksumsOKIPHeader(p []byte) bool { return checksum.Checksum(p[:20], 0) == 0xffff }

func BenchmarkChecksumsOK(b *testing.B) {
	p := buildPacket(b, false, "tcp")
	p = append(p, make([]byte, 1380)...) // a full-sized segment (checksum now wrong; the work is the same)
	p[2], p[3] = byte(len(p)>>8), byte(len(p))
	p[10], p[11] = 0, 0
	sum := ^checksum.Checksum(p[:20], 0)
	p[10], p[11] = byte(sum>>8), byte(sum)
	if !checksumsOKIPHeader(p) {
		b.Fatal("the benchmark packet's IP header is wrong")
	}
	b.SetBytes(int64(len(p)))
	for range b.N {
		checksumsOK(p)
	}
}

// FuzzParseAnswer feeds arbitrary DNS answers (what comes back through the
// tunnel) to the resolver's parser: it must never panic, and what it returns is
// either addresses or an error.
func FuzzParseAnswer(f *testing.F) {
	name := dnsmessage.MustNewName("www.example.test.")
	good := dnsmessage.Message{
		Header:    dnsmessage.Header{ID: 1, Response: true},
		Questions: []dnsmessage.Question{{Name: name, Type: dnsmessage.TypeA, Class: dnsmessage.ClassINET}},
		Answers: []dnsmessage.Resource{
			{Header: dnsmessage.ResourceHeader{Name: name, Type: dnsmessage.TypeCNAME, Class: dnsmessage.ClassINET}, Body: &dnsmessage.CNAMEResource{CNAME: dnsmessage.MustNewName("b.example.test.")}},
			{Header: dnsmessage.ResourceHeader{Name: dnsmessage.MustNewName("b.example.test."), Type: dnsmessage.TypeA, Class: dnsmessage.ClassINET}, Body: &dnsmessage.AResource{A: [4]byte{192, 0, 2, 1}}},
		},
	}
	b, _ := good.Pack()
	f.Add(b)
	f.Add([]byte{0, 1, 0x81, 0x83, 0, 1, 0, 0, 0, 0, 0, 0})
	f.Fuzz(func(t *testing.T, resp []byte) {
		addrs, err := parseAnswer(resp, name, dnsmessage.TypeA)
		if (err == nil) == (len(addrs) == 0) {
			t.Fatalf("addresses %v and error %v", addrs, err)
		}
	})
}

// TestCloseWhileDelivering closes the tunnel's netstack while WireGuard hands
// it packets that make the stack answer (a TCP segment for no connection gets
// a reset, which takes the stack's lock). Closing removes the NIC under that
// lock and detaches the link endpoint: the two must not wait on each other.
func TestCloseWhileDelivering(t *testing.T) {
	pkt := buildPacket(t, false, "tcp")
	for i := range 100 {
		tn, err := newNetTUN([]netip.Prefix{netip.MustParsePrefix("10.66.0.2/32")}, 1420)
		if err != nil {
			t.Fatal(err)
		}
		stop := make(chan struct{})
		var wg sync.WaitGroup
		wg.Add(2)
		go func() { // WireGuard's receive side
			defer wg.Done()
			bufs := [][]byte{pkt, pkt, pkt, pkt}
			for {
				select {
				case <-stop:
					return
				default:
				}
				tn.Write(bufs, 0)
			}
		}()
		go func() { // WireGuard's send side, taking the resets
			defer wg.Done()
			bufs, sizes := make([][]byte, 8), make([]int, 8)
			for i := range bufs {
				bufs[i] = make([]byte, 2048)
			}
			for {
				if _, err := tn.Read(bufs, sizes, 0); err != nil {
					return
				}
			}
		}()
		time.Sleep(time.Duration(i%5) * time.Millisecond)
		closed := make(chan struct{})
		go func() {
			tn.Close()
			close(closed)
		}()
		select {
		case <-closed:
		case <-time.After(10 * time.Second):
			t.Fatalf("round %d: closing the tunnel's netstack while it receives hangs", i)
		}
		close(stop)
		wg.Wait()
	}
}
