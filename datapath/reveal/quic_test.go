package reveal

import (
	"bytes"
	"context"
	"crypto/hkdf"
	"crypto/sha256"
	"crypto/tls"
	"net"
	"net/netip"
	"testing"
	"time"

	"golang.org/x/net/quic"
)

// rfcDCID is the Destination Connection ID of the RFC 9001 and RFC 9369 samples.
const rfcDCID = "8394c8f03e515708"

// TestQUICInitialKeys checks the key derivation against the intermediate values of
// RFC 9001 Appendix A.1 and RFC 9369 Appendix A.1.
func TestQUICInitialKeys(t *testing.T) {
	for _, tt := range []struct {
		name                       string
		salt                       string
		keyLabel, ivLabel, hpLabel string
		initial, client            string
		key, iv, hp                string
	}{
		{
			name: "v1", salt: quicSaltV1, keyLabel: "quic key", ivLabel: "quic iv", hpLabel: "quic hp",
			initial: "7db5df06e7a69e432496adedb0085192 3595221596ae2ae9fb8115c1e9ed0a44",
			client:  "c00cf151ca5be075ed0ebfb5c80323c4 2d6b7db67881289af4008f1f6c357aea",
			key:     "1f369613dd76d5467730efcbe3b1a22d",
			iv:      "fa044b2f42a3fd3b46fb255c",
			hp:      "9f50449e04a0e810283a1e9933adedd2",
		},
		{
			name: "v2", salt: quicSaltV2, keyLabel: "quicv2 key", ivLabel: "quicv2 iv", hpLabel: "quicv2 hp",
			initial: "2062e8b3cd8d52092614b8071d0aa1fb 7c2e3ac193f78b280e72d8f5751f6aba",
			client:  "14ec9d6eb9fd7af83bf5a668bc17a7e2 83766aade7ecd0891f70f9ff7f4bf47b",
			key:     "8b1a0bc121284290a29e0971b5cd045d",
			iv:      "91f73e2351d8fa91660e909f",
			hp:      "45b95e15235d6f45a6b19cbcb0294ba9",
		},
	} {
		t.Run(tt.name, func(t *testing.T) {
			initial, err := hkdf.Extract(sha256.New, mustHex(rfcDCID), []byte(tt.salt))
			if err != nil {
				t.Fatal(err)
			}
			expand := func(secret []byte, label string, n int) []byte {
				out, err := hkdfExpandLabel(secret, label, n)
				if err != nil {
					t.Fatal(err)
				}
				return out
			}
			client := expand(initial, "client in", 32)
			for _, c := range []struct{ what, got, want []byte }{
				{[]byte("initial_secret"), initial, mustHex(tt.initial)},
				{[]byte("client_initial_secret"), client, mustHex(tt.client)},
				{[]byte("key"), expand(client, tt.keyLabel, 16), mustHex(tt.key)},
				{[]byte("iv"), expand(client, tt.ivLabel, 12), mustHex(tt.iv)},
				{[]byte("hp"), expand(client, tt.hpLabel, 16), mustHex(tt.hp)},
			} {
				if !bytes.Equal(c.got, c.want) {
					t.Errorf("%s = %x, want %x", c.what, c.got, c.want)
				}
			}
		})
	}
}

// TestQUICServerNameRFC opens the client Initial samples of RFC 9001 Appendix A.2
// and RFC 9369 Appendix A.2.
func TestQUICServerNameRFC(t *testing.T) {
	for _, file := range []string{"rfc9001-client-initial.hex", "rfc9369-client-initial.hex"} {
		t.Run(file, func(t *testing.T) {
			pkt := readHexFile(t, file)
			if len(pkt) != 1200 {
				t.Fatalf("sample is %d bytes, want 1200", len(pkt))
			}
			name, ok := QUICServerName(pkt)
			if !ok || name != "example.com" {
				t.Fatalf("QUICServerName = %q, %v; want example.com", name, ok)
			}

			// Coalesced with a further packet: only the first counts.
			coalesced := append(append([]byte(nil), pkt...), pkt...)
			if name, ok := QUICServerName(coalesced); !ok || name != "example.com" {
				t.Errorf("coalesced: QUICServerName = %q, %v", name, ok)
			}

			// Any change is caught by the AEAD or the header checks.
			for _, i := range []int{0, 1, 5, 6, 13, 14, 16, 17, 18, 25, 600, 1199} {
				bad := append([]byte(nil), pkt...)
				bad[i] ^= 0x01
				if name, ok := QUICServerName(bad); ok {
					t.Errorf("byte %d flipped: QUICServerName = %q, true", i, name)
				}
			}

			// The sample as a Decoder sees it: in a UDP datagram to port 443.
			d := NewDecoder()
			frame := udpFrame(t, netip.MustParseAddrPort("192.0.2.10:50000"), netip.MustParseAddrPort("198.51.100.7:443"), pkt)
			s := d.Decode(frame)
			if s.App != appQUIC || s.Name != "example.com" {
				t.Errorf("Decode: App %q Name %q, want quic example.com", s.App, s.Name)
			}
		})
	}
}

// TestQUICTruncated cuts the RFC samples at every byte: nothing panics and nothing
// is found, since the AEAD needs the whole packet.
func TestQUICTruncated(t *testing.T) {
	for _, file := range []string{"rfc9001-client-initial.hex", "rfc9369-client-initial.hex"} {
		pkt := readHexFile(t, file)
		var q quicOpener
		for n := range len(pkt) {
			isInitial, sni, ok := q.serverName(pkt[:n])
			if ok {
				t.Fatalf("%s cut at %d: found %q", file, n, sni)
			}
			// The header up to its Length field (18 bytes) makes it an Initial.
			if wantInitial := n >= 18; isInitial != wantInitial {
				t.Fatalf("%s cut at %d: isInitial = %v, want %v", file, n, isInitial, wantInitial)
			}
		}
	}
}

// TestQUICFrames seals Initials around CRYPTO frames holding a real ClientHello
// written by crypto/tls, in the orders and shapes clients send them.
func TestQUICFrames(t *testing.T) {
	hello := quicClientHello(t, "Split.Example.ORG")
	sniEnd := bytes.Index(hello, []byte("Split.Example.ORG")) + len("Split.Example.ORG")
	if sniEnd < len("Split.Example.ORG") {
		t.Fatal("the ClientHello has no SNI")
	}
	ack := []byte{quicFrameACK, 0, 0, 0, 0}
	ackECN := []byte{quicFrameACKECN, 0x01, 0x02, 0x01, 0x00, 0x00, 0x00, 0x05, 0x06, 0x07}
	padding := make([]byte, 300)
	a, b := 20, sniEnd-10 // split points either side of the start of the SNI

	for _, tt := range []struct {
		name    string
		version uint32
		frames  [][]byte
		want    string
		ok      bool
	}{
		{"in order", quicVersion1, [][]byte{cryptoFrame(0, hello), padding}, "split.example.org", true},
		{"v2", quicVersion2, [][]byte{cryptoFrame(0, hello), padding}, "split.example.org", true},
		{
			"shuffled with ping and padding", quicVersion1,
			[][]byte{cryptoFrame(b, hello[b:]), {quicFramePing}, cryptoFrame(0, hello[:a]), padding, cryptoFrame(a, hello[a:b])},
			"split.example.org", true,
		},
		{
			"overlapping", quicVersion1,
			[][]byte{cryptoFrame(a, hello[a:]), cryptoFrame(0, hello[:b])},
			"split.example.org", true,
		},
		{
			"after ACK frames", quicVersion1,
			[][]byte{ack, ackECN, cryptoFrame(0, hello)},
			"split.example.org", true,
		},
		{"SNI complete, rest in a later packet", quicVersion1, [][]byte{cryptoFrame(0, hello[:sniEnd])}, "split.example.org", true},
		{"SNI in a later packet", quicVersion1, [][]byte{cryptoFrame(0, hello[:sniEnd-1]), padding}, "", false},
		{"a gap before the SNI", quicVersion1, [][]byte{cryptoFrame(0, hello[:a]), cryptoFrame(a+1, hello[a+1:])}, "", false},
		{"no offset 0", quicVersion1, [][]byte{cryptoFrame(a, hello[a:])}, "", false},
		{"stops at an unknown frame", quicVersion1, [][]byte{{0x1e}, cryptoFrame(0, hello)}, "", false},
		{"CRYPTO frame longer than the packet", quicVersion1, [][]byte{{quicFrameCrypto, 0x00, 0x50, 0x00}, hello[:100]}, "", false},
		{"ACK with more ranges than bytes", quicVersion1, [][]byte{{quicFrameACK, 0, 0, 0x7f, 0xff, 0}, cryptoFrame(0, hello)}, "", false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			pkt := sealInitial(t, tt.version, mustHex("0102030405060708090a"), 0, bytes.Join(tt.frames, nil))
			name, ok := QUICServerName(pkt)
			if name != tt.want || ok != tt.ok {
				t.Errorf("QUICServerName = %q, %v; want %q, %v", name, ok, tt.want, tt.ok)
			}
		})
	}
}

// TestQUICManyCryptoFrames sends the ClientHello a byte per CRYPTO frame, in reverse:
// only the frames that fit the opener's table count, and nothing breaks.
func TestQUICManyCryptoFrames(t *testing.T) {
	hello := quicClientHello(t, "x.example")
	var frames []byte
	for i := len(hello) - 1; i >= 0; i-- {
		frames = append(frames, cryptoFrame(i, hello[i:i+1])...)
	}
	pkt := sealInitial(t, quicVersion1, mustHex("0102030405060708"), 1, frames)
	if name, ok := QUICServerName(pkt); ok {
		t.Errorf("QUICServerName = %q, true; the first bytes were beyond the table", name)
	}
}

// TestQUICFromQUICClient opens the first datagram golang.org/x/net/quic, a QUIC client
// written independently of this package, sends when dialing a UDP socket on the
// loopback address.
func TestQUICFromQUICClient(t *testing.T) {
	checkGoroutines(t)
	server, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer server.Close()
	client, err := quic.Listen("udp", "127.0.0.1:0", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		// Close waits for the peer to acknowledge the close, which a plain socket
		// never does: it gives up at the deadline, having aborted the connection.
		ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
		defer cancel()
		_ = client.Close(ctx)
	}()

	ctx, cancel := context.WithCancel(context.Background())
	dialed := make(chan error, 1)
	go func() {
		_, err := client.Dial(ctx, "udp", server.LocalAddr().String(), &quic.Config{
			TLSConfig: &tls.Config{ServerName: "H3.Example.NET", NextProtos: []string{"h3"}, MinVersion: tls.VersionTLS13},
		})
		dialed <- err
	}()
	defer func() { cancel(); <-dialed }()

	if err := server.SetReadDeadline(time.Now().Add(10 * time.Second)); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 64<<10)
	n, from, err := server.ReadFrom(buf)
	if err != nil {
		t.Fatalf("reading the client's first datagram: %v", err)
	}
	datagram := buf[:n]
	t.Logf("first datagram: %d bytes from %v", n, from)

	if name, ok := QUICServerName(datagram); !ok || name != "h3.example.net" {
		t.Errorf("QUICServerName = %q, %v; want h3.example.net", name, ok)
	}
	src := from.(*net.UDPAddr).AddrPort()
	frame := udpFrame(t, netip.AddrPortFrom(netip.MustParseAddr("192.0.2.10"), src.Port()), netip.MustParseAddrPort("198.51.100.7:443"), datagram)
	s := NewDecoder().Decode(frame)
	if s.App != appQUIC || s.Name != "h3.example.net" || s.Proto != "udp" || s.DstPort != 443 {
		t.Errorf("Decode = %+v", s)
	}
}

func TestReadVarint(t *testing.T) {
	// The examples of RFC 9000 Appendix A.1.
	for _, tt := range []struct {
		in   string
		want uint64
		n    int
	}{
		{"c2197c5eff14e88c", 151288809941952652, 8},
		{"9d7f3e7d", 494878333, 4},
		{"7bbd", 15293, 2},
		{"25", 37, 1},
		{"4025", 37, 2},
		{"", 0, 0},
		{"9d7f3e", 0, 0},
	} {
		v, n := readVarint(mustHex(tt.in))
		if v != tt.want || n != tt.n {
			t.Errorf("readVarint(%s) = %d, %d; want %d, %d", tt.in, v, n, tt.want, tt.n)
		}
	}
}
