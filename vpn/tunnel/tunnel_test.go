package tunnel

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/net/dns/dnsmessage"
	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/adapters/gonet"
	"gvisor.dev/gvisor/pkg/tcpip/network/ipv4"

	"github.com/redoubt/redoubt/vpn/wgconfig"
)

var (
	serverTunAddr = netip.MustParseAddr("10.66.0.1")
	clientTunAddr = netip.MustParseAddr("10.66.0.2")
)

// pair is a client tunnel (as the box makes it) and an in-process VPN server: a
// second Tunnel whose netstack serves TCP and DNS, over real UDP on loopback.
type pair struct {
	client, server *Tunnel
	serverLog      *bytes.Buffer
}

func testLogger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(tlogWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type tlogWriter struct{ t testing.TB }

func (w tlogWriter) Write(b []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(b)))
	return len(b), nil
}

func newPair(t testing.TB, dns bool) *pair {
	t.Helper()
	serverKey, _ := wgconfig.GenerateKey()
	clientKey, _ := wgconfig.GenerateKey()
	server, err := New(Options{Config: &wgconfig.Config{
		PrivateKey: serverKey,
		Addresses:  []netip.Prefix{netip.PrefixFrom(serverTunAddr, 24)},
		MTU:        1420,
		Peer: wgconfig.Peer{
			PublicKey:  clientKey.Public(),
			AllowedIPs: []netip.Prefix{netip.PrefixFrom(clientTunAddr, 32)},
		},
	}})
	if err != nil {
		t.Fatalf("server tunnel: %v", err)
	}
	if err := server.Up(); err != nil {
		t.Fatal(err)
	}
	port := server.Stats().ListenPort
	if port == 0 {
		t.Fatal("the server tunnel has no UDP port")
	}
	ccfg := &wgconfig.Config{
		PrivateKey: clientKey,
		Addresses:  []netip.Prefix{netip.PrefixFrom(clientTunAddr, 32)},
		MTU:        1420,
		Peer: wgconfig.Peer{
			PublicKey:  serverKey.Public(),
			Endpoint:   netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), uint16(port)),
			AllowedIPs: []netip.Prefix{netip.MustParsePrefix("0.0.0.0/0")},
			Keepalive:  25 * time.Second,
		},
	}
	if dns {
		ccfg.DNS = []netip.Addr{serverTunAddr}
	}
	client, err := New(Options{Config: ccfg, Logger: testLogger(t)})
	if err != nil {
		server.Close()
		t.Fatalf("client tunnel: %v", err)
	}
	if err := client.Up(); err != nil {
		t.Fatal(err)
	}
	p := &pair{client: client, server: server}
	t.Cleanup(func() { client.Close(); server.Close() })
	return p
}

// listenTCP listens on the server's netstack.
func (p *pair) listenTCP(t testing.TB, port uint16) net.Listener {
	ln, err := gonet.ListenTCP(p.server.tun.stack, tcpip.FullAddress{NIC: nicID, Addr: tcpip.AddrFrom4(serverTunAddr.As4()), Port: port}, ipv4.ProtocolNumber)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	return ln
}

func (p *pair) listenUDP(t testing.TB, port uint16) net.PacketConn {
	fa := tcpip.FullAddress{NIC: nicID, Addr: tcpip.AddrFrom4(serverTunAddr.As4()), Port: port}
	c, err := gonet.DialUDP(p.server.tun.stack, &fa, nil, ipv4.ProtocolNumber)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// checkGoroutines fails t if goroutines started during the test are still running
// a few seconds after it ends.
func checkGoroutines(t *testing.T) {
	before := runtime.NumGoroutine()
	t.Cleanup(func() {
		deadline := time.Now().Add(5 * time.Second)
		for runtime.NumGoroutine() > before {
			if time.Now().After(deadline) {
				buf := make([]byte, 1<<20)
				n := runtime.Stack(buf, true)
				t.Errorf("%d goroutines left behind (%d before):\n%s", runtime.NumGoroutine()-before, before, buf[:n])
				return
			}
			time.Sleep(50 * time.Millisecond)
		}
	})
}

func TestTCPThroughTunnel(t *testing.T) {
	checkGoroutines(t)
	p := newPair(t, false)
	ln := p.listenTCP(t, 80)
	const size = 16 << 20
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				// Echo the request line, then send size pseudo-random bytes.
				var n [8]byte
				if _, err := io.ReadFull(c, n[:]); err != nil {
					return
				}
				c.Write(n[:])
				io.Copy(c, io.LimitReader(newPattern(), int64(binary.BigEndian.Uint64(n[:]))))
			}()
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := p.client.DialContext(ctx, "tcp", "10.66.0.1:80")
	if err != nil {
		t.Fatalf("dial through the tunnel: %v", err)
	}
	defer c.Close()
	if got := c.RemoteAddr().String(); got != "10.66.0.1:80" {
		t.Errorf("remote address %s", got)
	}
	var req [8]byte
	binary.BigEndian.PutUint64(req[:], size)
	c.Write(req[:])
	var echo [8]byte
	if _, err := io.ReadFull(c, echo[:]); err != nil || echo != req {
		t.Fatalf("echo: %v %x", err, echo)
	}
	h := sha256.New()
	start := time.Now()
	n, err := io.Copy(h, c)
	if err != nil || n != size {
		t.Fatalf("download: %d bytes, %v", n, err)
	}
	want := sha256.New()
	io.Copy(want, io.LimitReader(newPattern(), size))
	if !bytes.Equal(h.Sum(nil), want.Sum(nil)) {
		t.Fatal("the download was corrupted")
	}
	t.Logf("16 MiB through the tunnel in %v", time.Since(start))
	st := p.client.Stats()
	if st.LastHandshake.IsZero() || st.RxBytes < size || st.TxBytes == 0 || st.Endpoint == "" {
		t.Errorf("stats after a download: %+v", st)
	}
	if st.Link.RxPackets == 0 || st.Link.TxPackets == 0 {
		t.Errorf("link stats: %+v", st.Link)
	}
}

// newPattern is a deterministic byte stream.
func newPattern() io.Reader { return &pattern{} }

type pattern struct{ i uint64 }

func (p *pattern) Read(b []byte) (int, error) {
	for i := range b {
		p.i++
		b[i] = byte(p.i*2654435761>>24) ^ byte(p.i)
	}
	return len(b), nil
}

func TestUDPThroughTunnel(t *testing.T) {
	checkGoroutines(t)
	p := newPair(t, false)
	srv := p.listenUDP(t, 7)
	go func() {
		buf := make([]byte, 2048)
		for {
			n, from, err := srv.ReadFrom(buf)
			if err != nil {
				return
			}
			srv.WriteTo(bytes.ToUpper(buf[:n]), from)
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	c, err := p.client.DialContext(ctx, "udp4", "10.66.0.1:7")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	got := make([]byte, 64)
	for {
		c.SetDeadline(time.Now().Add(500 * time.Millisecond))
		c.Write([]byte("hello"))
		n, err := c.Read(got)
		if err == nil {
			if string(got[:n]) != "HELLO" {
				t.Fatalf("got %q", got[:n])
			}
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("no UDP answer through the tunnel: %v", err)
		}
	}
	pc, err := p.client.ListenPacket(ctx, "udp", ":0")
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	if a := pc.LocalAddr().(*net.UDPAddr); a.IP.String() != clientTunAddr.String() || a.Port == 0 {
		t.Errorf("ListenPacket bound %v", pc.LocalAddr())
	}
	pc.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := pc.WriteTo([]byte("abc"), &net.UDPAddr{IP: net.IP(serverTunAddr.AsSlice()), Port: 7}); err != nil {
		t.Fatal(err)
	}
	n, from, err := pc.ReadFrom(got)
	if err != nil || string(got[:n]) != "ABC" || from.String() != "10.66.0.1:7" {
		t.Errorf("ListenPacket round trip: %q from %v: %v", got[:n], from, err)
	}
	if _, err := p.client.ListenPacket(ctx, "tcp", ":0"); err == nil {
		t.Error("ListenPacket accepted tcp")
	}
}

// dnsServer answers on the server's netstack: A records for names under
// "example.test.", NXDOMAIN otherwise, a truncated UDP answer for "big.example.test."
// (whose TCP answer holds 40 addresses), and a CNAME chain for "alias.example.test.".
func (p *pair) dnsServer(t testing.TB) *sync.Map {
	seen := &sync.Map{}
	answer := func(q []byte, udp bool) []byte {
		var m dnsmessage.Message
		if err := m.Unpack(q); err != nil || len(m.Questions) != 1 {
			return nil
		}
		question := m.Questions[0]
		name := question.Name.String()
		seen.Store(name, true)
		resp := dnsmessage.Message{Header: dnsmessage.Header{ID: m.ID, Response: true, RecursionAvailable: true}, Questions: m.Questions}
		a := func(n dnsmessage.Name, ip [4]byte) dnsmessage.Resource {
			return dnsmessage.Resource{Header: dnsmessage.ResourceHeader{Name: n, Type: dnsmessage.TypeA, Class: dnsmessage.ClassINET, TTL: 60}, Body: &dnsmessage.AResource{A: ip}}
		}
		switch {
		case question.Type != dnsmessage.TypeA:
		case name == "big.example.test.":
			if udp {
				resp.Truncated = true
			} else {
				for i := range 40 {
					resp.Answers = append(resp.Answers, a(question.Name, [4]byte{192, 0, 2, byte(i + 1)}))
				}
			}
		case name == "alias.example.test.":
			target := dnsmessage.MustNewName("target.example.test.")
			resp.Answers = append(resp.Answers,
				dnsmessage.Resource{Header: dnsmessage.ResourceHeader{Name: question.Name, Type: dnsmessage.TypeCNAME, Class: dnsmessage.ClassINET, TTL: 60}, Body: &dnsmessage.CNAMEResource{CNAME: target}},
				a(target, [4]byte{192, 0, 2, 77}),
				a(dnsmessage.MustNewName("unrelated.example."), [4]byte{6, 6, 6, 6}))
		case strings.HasSuffix(name, ".example.test."):
			resp.Answers = append(resp.Answers, a(question.Name, [4]byte{192, 0, 2, 10}))
		default:
			resp.RCode = dnsmessage.RCodeNameError
		}
		out, _ := resp.Pack()
		return out
	}
	udp := p.listenUDP(t, 53)
	go func() {
		buf := make([]byte, 2048)
		for {
			n, from, err := udp.ReadFrom(buf)
			if err != nil {
				return
			}
			if out := answer(buf[:n], true); out != nil {
				udp.WriteTo(out, from)
			}
		}
	}()
	ln := p.listenTCP(t, 53)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				var l [2]byte
				if _, err := io.ReadFull(c, l[:]); err != nil {
					return
				}
				q := make([]byte, binary.BigEndian.Uint16(l[:]))
				if _, err := io.ReadFull(c, q); err != nil {
					return
				}
				out := answer(q, false)
				c.Write(append(binary.BigEndian.AppendUint16(nil, uint16(len(out))), out...))
			}()
		}
	}()
	return seen
}

func TestLookupThroughTunnel(t *testing.T) {
	checkGoroutines(t)
	p := newPair(t, true)
	seen := p.dnsServer(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	addrs, err := p.client.LookupNetIP(ctx, "www.example.test")
	if err != nil || len(addrs) != 1 || addrs[0] != netip.MustParseAddr("192.0.2.10") {
		t.Fatalf("lookup: %v %v", addrs, err)
	}
	if _, ok := seen.Load("www.example.test."); !ok {
		t.Error("the server never saw the query")
	}
	addrs, err = p.client.LookupNetIP(ctx, "big.example.test.")
	if err != nil || len(addrs) != 40 {
		t.Errorf("truncated answer, retried over TCP: %d addresses, %v", len(addrs), err)
	}
	addrs, err = p.client.LookupNetIP(ctx, "alias.example.test")
	if err != nil || len(addrs) != 1 || addrs[0] != netip.MustParseAddr("192.0.2.77") {
		t.Errorf("CNAME chain: %v %v (the unrelated record must be ignored)", addrs, err)
	}
	_, err = p.client.LookupNetIP(ctx, "nothing.invalid")
	var de *net.DNSError
	if !errors.As(err, &de) || !de.IsNotFound {
		t.Errorf("NXDOMAIN: %v", err)
	}
	if _, err := p.client.LookupNetIP(ctx, "localhost"); err == nil {
		t.Error("localhost was looked up through the VPN")
	}
	addrs, err = p.client.LookupNetIP(ctx, "192.0.2.9")
	if err != nil || addrs[0] != netip.MustParseAddr("192.0.2.9") {
		t.Errorf("IP literal: %v %v", addrs, err)
	}
	// Dial by name resolves through the tunnel.
	ln := p.listenTCP(t, 8080)
	go func() {
		c, err := ln.Accept()
		if err == nil {
			c.Write([]byte("ok"))
			c.Close()
		}
	}()
	// 10.66.0.1 by name: the server's own name answers with 192.0.2.10, so use a
	// name the test server does not know to see the error path, and an IP.
	if _, err := p.client.DialContext(ctx, "tcp", "nothing.invalid:80"); err == nil {
		t.Error("dialing an unknown name succeeded")
	}
	c, err := p.client.DialContext(ctx, "tcp4", "10.66.0.1:8080")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(c)
	c.Close()
	if string(b) != "ok" {
		t.Errorf("got %q", b)
	}
}

func TestNoDNSConfigured(t *testing.T) {
	p := newPair(t, false)
	_, err := p.client.LookupNetIP(context.Background(), "example.com")
	if err == nil || !strings.Contains(err.Error(), "names no DNS server") {
		t.Errorf("lookup without DNS servers: %v", err)
	}
}

// TestServerGone checks that with the VPN server gone, dials fail within their
// context and the handshake stops advancing; nothing falls back to another path.
func TestServerGone(t *testing.T) {
	checkGoroutines(t)
	p := newPair(t, false)
	p.listenTCP(t, 80)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	c, err := p.client.DialContext(ctx, "tcp", "10.66.0.1:80")
	cancel()
	if err != nil {
		t.Fatalf("first dial: %v", err)
	}
	c.Close()
	p.server.Close()
	ctx, cancel = context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	start := time.Now()
	if _, err := p.client.DialContext(ctx, "tcp", "10.66.0.1:80"); err == nil {
		t.Fatal("a dial succeeded with the server gone")
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("the failed dial took %v, beyond its context", d)
	}
	p.client.Kick() // must not block or panic with the server gone
}

func TestBadOptions(t *testing.T) {
	if _, err := New(Options{}); err == nil {
		t.Error("New without a config succeeded")
	}
	p := newPair(t, false)
	for _, tc := range []struct{ network, addr string }{{"ip", "10.66.0.1:1"}, {"tcp", "10.66.0.1"}, {"tcp", "10.66.0.1:http"}, {"tcp6", "10.66.0.1:80"}} {
		if _, err := p.client.DialContext(context.Background(), tc.network, tc.addr); err == nil {
			t.Errorf("dial %s %s succeeded", tc.network, tc.addr)
		}
	}
}

// benchChunk is what one benchmark iteration moves through the tunnel.
const benchChunk = 32 << 20

// benchTunnel runs serve on every connection the in-process server accepts,
// dials it from the box's tunnel, and runs iter b.N times on that connection.
func benchTunnel(b *testing.B, serve func(c net.Conn, buf []byte) error, iter func(c net.Conn, buf []byte) error) {
	p := newPair(b, false)
	ln := p.listenTCP(b, 80)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				buf := make([]byte, 256<<10)
				for serve(c, buf) == nil {
				}
			}()
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	c, err := p.client.DialContext(ctx, "tcp", "10.66.0.1:80")
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	buf := make([]byte, 256<<10)
	b.SetBytes(benchChunk)
	b.ResetTimer()
	for range b.N {
		if err := iter(c, buf); err != nil {
			b.Fatal(err)
		}
	}
}

// sendChunk writes benchChunk bytes.
func sendChunk(c net.Conn, buf []byte) error {
	for n := 0; n < benchChunk; n += len(buf) {
		if _, err := c.Write(buf); err != nil {
			return err
		}
	}
	return nil
}

// readChunk reads benchChunk bytes.
func readChunk(c net.Conn, buf []byte) error {
	n, err := io.CopyBuffer(io.Discard, io.LimitReader(c, benchChunk), buf)
	if err == nil && n != benchChunk {
		err = fmt.Errorf("read %d of %d bytes", n, benchChunk)
	}
	return err
}

// BenchmarkTunnelDownload moves 32 MiB per iteration from the in-process server
// to the client over the tunnel on loopback: WireGuard both ways, the netstack's
// link layer, GRO and TCP.
func BenchmarkTunnelDownload(b *testing.B) {
	benchTunnel(b,
		func(c net.Conn, buf []byte) error { // one byte asks for a chunk
			if _, err := c.Read(buf[:1]); err != nil {
				return err
			}
			return sendChunk(c, buf)
		},
		func(c net.Conn, buf []byte) error {
			if _, err := c.Write([]byte{1}); err != nil {
				return err
			}
			return readChunk(c, buf)
		})
}

// BenchmarkTunnelUpload moves 32 MiB per iteration from the client to the
// in-process server over the tunnel on loopback: the box sending, as its tailnet
// node does to a DERP relay in strict mode.
func BenchmarkTunnelUpload(b *testing.B) {
	benchTunnel(b,
		func(c net.Conn, buf []byte) error { // one byte acknowledges a chunk
			if err := readChunk(c, buf); err != nil {
				return err
			}
			_, err := c.Write([]byte{1})
			return err
		},
		func(c net.Conn, buf []byte) error {
			if err := sendChunk(c, buf); err != nil {
				return err
			}
			_, err := io.ReadFull(c, buf[:1])
			return err
		})
}
