package reveal

import (
	"crypto/tls"
	"testing"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"golang.org/x/net/dns/dnsmessage"
)

func benchmarkDecode(b *testing.B, frame []byte, wantApp string) {
	d := NewDecoder()
	if s := d.Decode(frame); s.App != wantApp {
		b.Fatalf("App %q, want %q", s.App, wantApp)
	}
	b.SetBytes(int64(len(frame)))
	b.ReportAllocs()
	for b.Loop() {
		d.Decode(frame)
	}
}

func BenchmarkDecodeTCPSYN(b *testing.B) {
	benchmarkDecode(b, tcpFrame(b, ap(laptop4, 51000), ap(remote4, 443), nil), "")
}

func BenchmarkDecodeDNS(b *testing.B) {
	benchmarkDecode(b, udpFrame(b, ap(laptop4, 40000), ap(remote4, 53), dnsQuery(b, "telemetry.example.org.", dnsmessage.TypeA)), appDNS)
}

func BenchmarkDecodeTLS(b *testing.B) {
	hello := clientHello(b, &tls.Config{ServerName: "tracker.example.com"})
	benchmarkDecode(b, tcpFrame(b, ap(laptop4, 51001), ap(remote4, 443), hello), appTLS)
}

// BenchmarkDecodeQUIC decodes the same Initial again and again, as a client's
// retransmissions come: the keys of its Destination Connection ID are kept.
func BenchmarkDecodeQUIC(b *testing.B) {
	benchmarkDecode(b, udpFrame(b, ap(laptop4, 50000), ap(remote4, 443), readHexFile(b, "rfc9001-client-initial.hex")), appQUIC)
}

// BenchmarkQUICServerName derives the keys anew each time, as for a new connection.
func BenchmarkQUICServerName(b *testing.B) {
	pkt := readHexFile(b, "rfc9001-client-initial.hex")
	b.SetBytes(int64(len(pkt)))
	b.ReportAllocs()
	for b.Loop() {
		if _, ok := QUICServerName(pkt); !ok {
			b.Fatal("no name")
		}
	}
}

func BenchmarkDecodeIPv6HopByHop(b *testing.B) {
	for _, tt := range frameCases(b) {
		if tt.name == "IPv6 hop-by-hop" {
			benchmarkDecode(b, tt.frame, appDNS)
			return
		}
	}
	b.Fatal("no hop-by-hop case")
}

// BenchmarkDNSName compares this package's question reader with decoding the
// message with gopacket's layers.DNS, reused as DecodingLayerParser would.
func BenchmarkDNSName(b *testing.B) {
	msg := dnsQuery(b, "telemetry.example.org.", dnsmessage.TypeA)
	b.Run("DNSQuestion", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if name, _ := DNSQuestion(msg); name == "" {
				b.Fatal("no name")
			}
		}
	})
	b.Run("layers.DNS", func(b *testing.B) {
		var dns layers.DNS
		b.ReportAllocs()
		for b.Loop() {
			if err := dns.DecodeFromBytes(msg, gopacket.NilDecodeFeedback); err != nil || len(dns.Questions) == 0 {
				b.Fatal(err)
			}
			_ = cleanName(dns.Questions[0].Name)
		}
	})
}
