package reveal

import (
	"context"
	"crypto/tls"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"golang.org/x/net/dns/dnsmessage"
)

// The laptop and what it talks to, in the frames the tests build.
const (
	laptopMAC = "02:00:00:00:00:01"
	boxMAC    = "02:00:00:00:00:fe"
)

func mustMAC(s string) net.HardwareAddr {
	m, err := net.ParseMAC(s)
	if err != nil {
		panic(err)
	}
	return m
}

func macArray(s string) [6]byte { return [6]byte(mustMAC(s)) }

// serialize builds a frame from layers, fixing lengths and checksums.
func serialize(tb testing.TB, ls ...gopacket.SerializableLayer) []byte {
	tb.Helper()
	buf := gopacket.NewSerializeBuffer()
	opts := gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}
	if err := gopacket.SerializeLayers(buf, opts, ls...); err != nil {
		tb.Fatalf("serializing %v: %v", ls, err)
	}
	return append([]byte(nil), buf.Bytes()...)
}

// ethernet returns the Ethernet header of a frame from the laptop.
func ethernet(typ layers.EthernetType) *layers.Ethernet {
	return &layers.Ethernet{SrcMAC: mustMAC(laptopMAC), DstMAC: mustMAC(boxMAC), EthernetType: typ}
}

// ipHeader returns an IPv4 or IPv6 header from src to dst carrying proto.
func ipHeader(src, dst netip.Addr, proto layers.IPProtocol) (gopacket.SerializableLayer, gopacket.NetworkLayer, layers.EthernetType) {
	if src.Is4() {
		ip := &layers.IPv4{Version: 4, TTL: 64, Protocol: proto, SrcIP: src.AsSlice(), DstIP: dst.AsSlice()}
		return ip, ip, layers.EthernetTypeIPv4
	}
	ip := &layers.IPv6{Version: 6, HopLimit: 64, NextHeader: proto, SrcIP: src.AsSlice(), DstIP: dst.AsSlice()}
	return ip, ip, layers.EthernetTypeIPv6
}

// udpFrame builds an Ethernet frame carrying a UDP datagram.
func udpFrame(tb testing.TB, src, dst netip.AddrPort, payload []byte) []byte {
	tb.Helper()
	ip, netLayer, typ := ipHeader(src.Addr(), dst.Addr(), layers.IPProtocolUDP)
	udp := &layers.UDP{SrcPort: layers.UDPPort(src.Port()), DstPort: layers.UDPPort(dst.Port())}
	if err := udp.SetNetworkLayerForChecksum(netLayer); err != nil {
		tb.Fatal(err)
	}
	return serialize(tb, ethernet(typ), ip, udp, gopacket.Payload(payload))
}

// tcpFrame builds an Ethernet frame carrying a TCP segment: a SYN when payload is
// empty, else a PSH/ACK.
func tcpFrame(tb testing.TB, src, dst netip.AddrPort, payload []byte) []byte {
	tb.Helper()
	ip, netLayer, typ := ipHeader(src.Addr(), dst.Addr(), layers.IPProtocolTCP)
	tcp := &layers.TCP{
		SrcPort: layers.TCPPort(src.Port()), DstPort: layers.TCPPort(dst.Port()),
		Seq: 1000, Window: 64240,
		SYN: len(payload) == 0, PSH: len(payload) > 0, ACK: len(payload) > 0,
	}
	if tcp.SYN {
		tcp.Options = []layers.TCPOption{
			{OptionType: layers.TCPOptionKindMSS, OptionLength: 4, OptionData: []byte{0x05, 0xb4}},
			{OptionType: layers.TCPOptionKindSACKPermitted, OptionLength: 2},
			{OptionType: layers.TCPOptionKindWindowScale, OptionLength: 3, OptionData: []byte{7}},
		}
	}
	if err := tcp.SetNetworkLayerForChecksum(netLayer); err != nil {
		tb.Fatal(err)
	}
	return serialize(tb, ethernet(typ), ip, tcp, gopacket.Payload(payload))
}

// dnsQuery builds a DNS query message for name with dnsmessage.
func dnsQuery(tb testing.TB, name string, typ dnsmessage.Type) []byte {
	tb.Helper()
	b := dnsmessage.NewBuilder(nil, dnsmessage.Header{ID: 0x1234, RecursionDesired: true})
	b.EnableCompression()
	if err := b.StartQuestions(); err != nil {
		tb.Fatal(err)
	}
	if err := b.Question(dnsmessage.Question{Name: dnsmessage.MustNewName(name), Type: typ, Class: dnsmessage.ClassINET}); err != nil {
		tb.Fatal(err)
	}
	msg, err := b.Finish()
	if err != nil {
		tb.Fatal(err)
	}
	return msg
}

// clientHello returns the first record a crypto/tls client writes: its ClientHello.
func clientHello(tb testing.TB, cfg *tls.Config) []byte {
	tb.Helper()
	c, s := net.Pipe()
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = tls.Client(c, cfg).Handshake() // fails once s is closed
		c.Close()
	}()
	defer func() { s.Close(); <-done }()
	if err := s.SetReadDeadline(time.Now().Add(10 * time.Second)); err != nil {
		tb.Fatal(err)
	}
	hdr := make([]byte, tlsRecordHeaderLen)
	if _, err := io.ReadFull(s, hdr); err != nil {
		tb.Fatalf("reading the ClientHello record header: %v", err)
	}
	body := make([]byte, binary.BigEndian.Uint16(hdr[3:]))
	if _, err := io.ReadFull(s, body); err != nil {
		tb.Fatalf("reading the ClientHello record: %v", err)
	}
	return append(hdr, body...)
}

// quicClientHello returns the ClientHello handshake message crypto/tls writes for
// QUIC (what a QUIC client puts into its Initial CRYPTO frames). Naming curves other
// than the default's post-quantum one makes it a few hundred bytes instead of 1.5 KB.
func quicClientHello(tb testing.TB, serverName string, curves ...tls.CurveID) []byte {
	tb.Helper()
	qc := tls.QUICClient(&tls.QUICConfig{TLSConfig: &tls.Config{
		ServerName: serverName, NextProtos: []string{"h3"}, MinVersion: tls.VersionTLS13,
		CurvePreferences: curves,
	}})
	defer qc.Close()
	// initial_max_data = 1 MiB, as any client sends some transport parameters.
	qc.SetTransportParameters([]byte{0x04, 0x04, 0x80, 0x10, 0x00, 0x00})
	if err := qc.Start(context.Background()); err != nil {
		tb.Fatal(err)
	}
	var hello []byte
	for {
		e := qc.NextEvent()
		switch {
		case e.Kind == tls.QUICNoEvent:
			if len(hello) == 0 {
				tb.Fatal("crypto/tls wrote no Initial data")
			}
			return hello
		case e.Kind == tls.QUICWriteData && e.Level == tls.QUICEncryptionLevelInitial:
			hello = append(hello, e.Data...)
		}
	}
}

// sealInitial protects a client Initial packet carrying frames, as a QUIC client does
// (RFC 9001 section 5), with a 4-byte packet number. Its key derivation is the
// package's, which TestQUICInitialKeys checks against the RFCs.
func sealInitial(tb testing.TB, version uint32, dcid []byte, pn uint32, frames []byte) []byte {
	tb.Helper()
	var q quicOpener
	if !q.setKeys(version, dcid) {
		tb.Fatal("deriving Initial keys")
	}
	const pnLen = 4
	first := byte(0xc0 | (pnLen - 1))
	if version == quicVersion2 {
		first |= 0b01 << 4
	}
	hdr := []byte{first}
	hdr = binary.BigEndian.AppendUint32(hdr, version)
	hdr = append(hdr, byte(len(dcid)))
	hdr = append(hdr, dcid...)
	hdr = append(hdr, 0) // no Source Connection ID
	hdr = append(hdr, 0) // no token
	length := pnLen + len(frames) + quicTagLen
	if length >= 1<<14 {
		tb.Fatalf("frames too long: %d", len(frames))
	}
	hdr = binary.BigEndian.AppendUint16(hdr, 0x4000|uint16(length))
	pnOffset := len(hdr)
	hdr = binary.BigEndian.AppendUint32(hdr, pn)

	nonce := q.iv
	for i := range 4 {
		nonce[len(nonce)-1-i] ^= byte(pn >> (8 * i))
	}
	pkt := q.aead.Seal(hdr, nonce[:], frames, hdr)

	var mask [16]byte
	q.hp.Encrypt(mask[:], pkt[pnOffset+4:pnOffset+4+16])
	pkt[0] ^= mask[0] & 0x0f
	for i := range pnLen {
		pkt[pnOffset+i] ^= mask[1+i]
	}
	return pkt
}

// cryptoFrame encodes a CRYPTO frame.
func cryptoFrame(off int, data []byte) []byte {
	f := []byte{quicFrameCrypto}
	f = appendVarint(f, uint64(off))
	f = appendVarint(f, uint64(len(data)))
	return append(f, data...)
}

// appendVarint appends v as a QUIC variable-length integer.
func appendVarint(b []byte, v uint64) []byte {
	switch {
	case v < 1<<6:
		return append(b, byte(v))
	case v < 1<<14:
		return binary.BigEndian.AppendUint16(b, uint16(v)|0x4000)
	case v < 1<<30:
		return binary.BigEndian.AppendUint32(b, uint32(v)|0x80000000)
	}
	return binary.BigEndian.AppendUint64(b, v|0xc000000000000000)
}

// readHexFile reads a testdata file of hex digits, ignoring white space and lines
// starting with '#'.
func readHexFile(tb testing.TB, name string) []byte {
	tb.Helper()
	text, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		tb.Fatal(err)
	}
	var digits strings.Builder
	for line := range strings.Lines(string(text)) {
		if strings.HasPrefix(line, "#") {
			continue
		}
		digits.WriteString(strings.Join(strings.Fields(line), ""))
	}
	b, err := hex.DecodeString(digits.String())
	if err != nil {
		tb.Fatalf("%s: %v", name, err)
	}
	return b
}

func mustHex(s string) []byte {
	b, err := hex.DecodeString(strings.Join(strings.Fields(s), ""))
	if err != nil {
		panic(err)
	}
	return b
}

// checkName reports what is wrong with a name a decoder returned, if anything.
func checkName(name string) error {
	if len(name) > maxName {
		return fmt.Errorf("name is %d bytes long", len(name))
	}
	if strings.HasSuffix(name, ".") {
		return fmt.Errorf("name %q ends in a dot", name)
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if c <= ' ' || c >= 0x7f || ('A' <= c && c <= 'Z') {
			return fmt.Errorf("name %q has byte %#x at %d", name, c, i)
		}
	}
	return nil
}

// checkSummary reports what is wrong with a Summary, if anything.
func checkSummary(s Summary) error {
	if err := checkName(s.Name); err != nil {
		return err
	}
	switch s.App {
	case "", appDNS, appMDNS, appLLMNR, appNetBIOS, appSSDP, appDHCP, appTLS, appHTTP, appQUIC:
	default:
		return fmt.Errorf("unknown App %q", s.App)
	}
	if s.App == "" && s.Name != "" {
		return fmt.Errorf("Name %q without App", s.Name)
	}
	switch {
	case s.Family == 4 && s.Src.Is4() && s.Dst.Is4():
	case s.Family == 6 && s.Src.Is6() && s.Dst.Is6():
	case s.Family == 0 && s.Proto == "arp":
	case s.Family == 0 && !s.Src.IsValid() && !s.Dst.IsValid() && s.Proto == "":
	default:
		return fmt.Errorf("Family %d with Src %v Dst %v Proto %q", s.Family, s.Src, s.Dst, s.Proto)
	}
	if s.VLAN > vlanIDMask {
		return fmt.Errorf("VLAN %d", s.VLAN)
	}
	return nil
}

// checkGoroutines fails the test if it leaves goroutines behind.
func checkGoroutines(t *testing.T) {
	before := runtime.NumGoroutine()
	t.Cleanup(func() {
		deadline := time.Now().Add(5 * time.Second)
		for runtime.NumGoroutine() > before {
			if time.Now().After(deadline) {
				buf := make([]byte, 1<<16)
				t.Errorf("%d goroutines left behind (%d before):\n%s", runtime.NumGoroutine()-before, before, buf[:runtime.Stack(buf, true)])
				return
			}
			time.Sleep(10 * time.Millisecond)
		}
	})
}
