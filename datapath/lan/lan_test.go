package lan

import (
	"bytes"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"runtime"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/adapters/gonet"
	"gvisor.dev/gvisor/pkg/tcpip/link/fdbased"
	"gvisor.dev/gvisor/pkg/tcpip/network/arp"
	"gvisor.dev/gvisor/pkg/tcpip/network/ipv4"
	"gvisor.dev/gvisor/pkg/tcpip/stack"
	"gvisor.dev/gvisor/pkg/tcpip/transport/icmp"
	"gvisor.dev/gvisor/pkg/tcpip/transport/tcp"
	"gvisor.dev/gvisor/pkg/tcpip/transport/udp"

	"github.com/redoubt/redoubt/datapath/filter"
	"github.com/redoubt/redoubt/datapath/leaklog"
	"github.com/redoubt/redoubt/datapath/link"
)

var (
	boxMAC    = net.HardwareAddr{0x02, 0x52, 0x44, 0, 0, 0x01}
	laptopMAC = net.HardwareAddr{0x02, 0x52, 0x44, 0, 0, 0x64}
	laptopIP  = netip.MustParseAddr("10.201.86.100")
)

// testLogger routes a component's log to t.Log.
func testLogger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(tWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type tWriter struct{ t testing.TB }

func (w tWriter) Write(p []byte) (int, error) {
	w.t.Helper()
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// rig is a box LAN and a laptop netstack joined by a socketpair: the whole
// datapath, in process, without root.
type rig struct {
	lan    *LAN
	leaks  *leaklog.Log
	laptop *stack.Stack
	wire   int // the laptop's end of the socketpair, for raw frames
}

func newRig(t testing.TB) *rig { return newRigBuf(t, 4<<20) }

// newRigBuf makes a rig whose socketpair buffers hold buf bytes each way.
func newRigBuf(t testing.TB, buf int) *rig {
	t.Helper()
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, fd := range fds {
		unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_SNDBUF, buf)
		unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUF, buf)
	}
	leaks := leaklog.New(leaklog.Config{})
	l, err := OpenFD(fds[0], boxMAC, Config{}, Deps{Logger: testLogger(t), Leaks: leaks})
	if err != nil {
		t.Fatal(err)
	}
	laptop := newLaptop(t, fds[1])
	t.Cleanup(func() {
		laptop.Close()
		l.Close()
		laptop.Wait()
		unix.Close(fds[0])
		unix.Close(fds[1])
	})
	return &rig{lan: l, leaks: leaks, laptop: laptop, wire: fds[1]}
}

// newLaptop is a plain gVisor stack standing in for the laptop's kernel.
func newLaptop(t testing.TB, fd int) *stack.Stack {
	t.Helper()
	ep, err := fdbased.New(&fdbased.Options{FDs: []int{fd}, MTU: 1500, EthernetHeader: true, Address: tcpip.LinkAddress(laptopMAC)})
	if err != nil {
		t.Fatal(err)
	}
	s := stack.New(stack.Options{
		NetworkProtocols:   []stack.NetworkProtocolFactory{ipv4.NewProtocol, arp.NewProtocol},
		TransportProtocols: []stack.TransportProtocolFactory{tcp.NewProtocol, udp.NewProtocol, icmp.NewProtocol4},
	})
	if err := s.CreateNIC(1, ep); err != nil {
		t.Fatal(err)
	}
	s.AddProtocolAddress(1, tcpip.ProtocolAddress{
		Protocol:          ipv4.ProtocolNumber,
		AddressWithPrefix: tcpip.AddrFrom4(laptopIP.As4()).WithPrefix(),
	}, stack.AddressProperties{})
	s.SetRouteTable([]tcpip.Route{{Destination: header0(), NIC: 1, Gateway: tcpip.AddrFrom4(DefaultAddress.Addr().As4())}})
	return s
}

func header0() tcpip.Subnet {
	sn, _ := tcpip.NewSubnet(tcpip.AddrFrom4([4]byte{}), tcpip.MaskFromBytes([]byte{0, 0, 0, 0}))
	return sn
}

func (r *rig) dial(ctx context.Context, addr netip.AddrPort) (net.Conn, error) {
	return gonet.DialContextTCP(ctx, r.laptop, tcpip.FullAddress{NIC: 1, Addr: tcpip.AddrFrom4(addr.Addr().As4()), Port: addr.Port()}, ipv4.ProtocolNumber)
}

func TestServiceReachable(t *testing.T) {
	r := newRig(t)
	ln, err := r.lan.ListenTCP(80)
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { fmt.Fprint(w, "box page") })}
	go srv.Serve(ln)
	defer srv.Close()

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	hc := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, addr string) (net.Conn, error) {
		return r.dial(ctx, netip.MustParseAddrPort(addr))
	}}}
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://10.201.86.1/", nil)
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatalf("fetching the box's page: %v (stats %+v)", err, r.lan.Stats())
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(body) != "box page" {
		t.Fatalf("body %q", body)
	}
	if got := r.lan.Services(); len(got) != 1 || got[0] != (filter.Service{Proto: filter.TCP, Port: 80}) {
		t.Fatalf("services %v, want tcp/80", got)
	}
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func findEntry(l *leaklog.Log, match func(leaklog.Entry) bool) (leaklog.Entry, bool) {
	for _, e := range l.Entries() {
		if match(e) {
			return e, true
		}
	}
	return leaklog.Entry{}, false
}

func TestRevealRecordsSNIAndResets(t *testing.T) {
	r := newRig(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	conn, err := r.dial(ctx, netip.MustParseAddrPort("203.0.113.10:443"))
	if err != nil {
		t.Fatalf("the handshake toward the tracker should complete on the box: %v", err)
	}
	tc := tls.Client(conn, &tls.Config{ServerName: "tracker.example", InsecureSkipVerify: true})
	tc.SetDeadline(time.Now().Add(5 * time.Second))
	if err := tc.Handshake(); err == nil {
		t.Fatal("TLS handshake with nothing succeeded")
	} else if ne, ok := err.(net.Error); ok && ne.Timeout() {
		t.Fatalf("the box should reset the connection, not leave it hanging: %v", err)
	}
	conn.Close()
	waitFor(t, "the attempt in the leak log", func() bool {
		_, ok := findEntry(r.leaks, func(e leaklog.Entry) bool { return e.Name == "tracker.example" })
		return ok
	})
	e, _ := findEntry(r.leaks, func(e leaklog.Entry) bool { return e.Name == "tracker.example" })
	if e.Kind != "egress" || e.Proto != "tcp" || e.App != "tls" || e.Dst != "203.0.113.10" || e.DstPort != 443 ||
		e.MAC != laptopMAC.String() || e.Src != laptopIP.String() || e.Count != 1 {
		t.Errorf("entry %+v", e)
	}
	if _, ok := findEntry(r.leaks, func(e leaklog.Entry) bool { return e.Name == "" && e.DstPort == 443 }); ok {
		t.Errorf("the reset left a nameless duplicate: %+v", r.leaks.Entries())
	}
}

func TestRevealHTTPHost(t *testing.T) {
	r := newRig(t)
	hc := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DialContext: func(ctx context.Context, _, addr string) (net.Conn, error) {
		return r.dial(ctx, netip.MustParseAddrPort(addr))
	}}}
	req, _ := http.NewRequest(http.MethodGet, "http://203.0.113.10/pixel.gif", nil)
	req.Host = "ads.example.com:8080"
	if _, err := hc.Do(req); err == nil {
		t.Fatal("request beyond the box succeeded")
	}
	waitFor(t, "the HTTP attempt in the leak log", func() bool {
		e, ok := findEntry(r.leaks, func(e leaklog.Entry) bool { return e.App == "http" })
		return ok && e.Name == "ads.example.com"
	})
}

func TestRevealOffDropsWithoutHandshake(t *testing.T) {
	r := newRig(t)
	off := false
	if err := r.lan.Reconfig(Config{Interface: "fd", Reveal: &off}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	if c, err := r.dial(ctx, netip.MustParseAddrPort("203.0.113.10:443")); err == nil {
		c.Close()
		t.Fatal("handshake toward the tracker completed with reveal off")
	}
	waitFor(t, "the dropped SYN in the leak log", func() bool {
		_, ok := findEntry(r.leaks, func(e leaklog.Entry) bool { return e.Kind == "egress" && e.DstPort == 443 })
		return ok
	})
	if err := r.lan.Reconfig(Config{Interface: "fd", Address: netip.MustParsePrefix("10.9.9.1/24")}); err == nil {
		t.Error("address change accepted at run time")
	}
}

func TestClosingListenerClosesPort(t *testing.T) {
	r := newRig(t)
	ln, err := r.lan.ListenTCP(8080)
	if err != nil {
		t.Fatal(err)
	}
	ln2, err := r.lan.ListenUDP(5353)
	if err != nil {
		t.Fatal(err)
	}
	if got := len(r.lan.Services()); got != 2 {
		t.Fatalf("%d services open, want 2", got)
	}
	ln.Close()
	ln.Close() // twice is harmless
	ln2.Close()
	if got := r.lan.Services(); len(got) != 0 {
		t.Fatalf("services after close: %v", got)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	if c, err := r.dial(ctx, netip.MustParseAddrPort("10.201.86.1:8080")); err == nil {
		c.Close()
		t.Fatal("connected to a closed port")
	}
	waitFor(t, "closed-port drop", func() bool { return r.leaks.Counters().ByKind["closed-port"] > 0 })
}

func TestRawFramesDroppedAndCounted(t *testing.T) {
	r := newRig(t)
	ln, err := r.lan.ListenTCP(80)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	send := func(b []byte) {
		if _, err := unix.Write(r.wire, b); err != nil {
			t.Fatal(err)
		}
	}
	eth := func(dst net.HardwareAddr, et uint16) []byte {
		return append(append(append([]byte{}, dst...), laptopMAC...), byte(et>>8), byte(et))
	}
	ipv4 := func(src, dst [4]byte, proto byte, flagsFrag uint16, l4 []byte) []byte {
		h := []byte{0x45, 0, 0, 0, 0, 1, byte(flagsFrag >> 8), byte(flagsFrag), 64, proto, 0, 0}
		h = append(append(h, src[:]...), dst[:]...)
		total := len(h) + len(l4)
		h[2], h[3] = byte(total>>8), byte(total)
		var sum uint32
		for i := 0; i < 20; i += 2 {
			sum += uint32(h[i])<<8 | uint32(h[i+1])
		}
		for sum > 0xffff {
			sum = sum>>16 + sum&0xffff
		}
		h[10], h[11] = byte(^sum>>8), byte(^sum)
		return append(h, l4...)
	}
	box := [4]byte{10, 201, 86, 1}
	lap := [4]byte{10, 201, 86, 100}
	frames := map[string][]byte{
		"runt":            {1, 2, 3},
		"garbage":         append(eth(boxMAC, 0x0800), 0xde, 0xad, 0xbe, 0xef),
		"vlan":            append(eth(boxMAC, 0x8100), 0, 7, 0x08, 0),
		"lldp":            append(eth(boxMAC, 0x88cc), make([]byte, 40)...),
		"fragment":        append(eth(boxMAC, 0x0800), ipv4(lap, box, 17, 0x2000, make([]byte, 16))...),
		"spoofed":         append(eth(boxMAC, 0x0800), ipv4([4]byte{198, 51, 100, 7}, box, 6, 0, make([]byte, 20))...),
		"bad tcp csum":    append(eth(boxMAC, 0x0800), ipv4(lap, box, 6, 0, []byte{0x9c, 0x40, 0, 80, 0, 0, 0, 1, 0, 0, 0, 0, 0x50, 0x02, 0x10, 0, 0xde, 0xad, 0, 0})...),
		"oversized total": append(eth(boxMAC, 0x0800), 0x45, 0, 0xff, 0xff),
	}
	for _, f := range frames {
		send(f)
	}
	// A frame as large as the link allows.
	send(append(eth(boxMAC, 0x0800), ipv4(lap, box, 17, 0, make([]byte, 1400))...))
	waitFor(t, "every frame counted", func() bool { return r.leaks.Counters().Total >= uint64(len(frames)) })
	c := r.leaks.Counters()
	for _, k := range []string{"malformed", "vlan", "non-ip", "fragment", "spoofed"} {
		if c.ByKind[k] == 0 {
			t.Errorf("no %s drop counted: %+v", k, c.ByKind)
		}
	}
	// The box still serves.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	conn, err := r.dial(ctx, netip.MustParseAddrPort("10.201.86.1:80"))
	if err != nil {
		t.Fatalf("box stopped serving after bad frames: %v", err)
	}
	conn.Close()
}

func TestCloseLeavesNoGoroutines(t *testing.T) {
	before := runtime.NumGoroutine()
	func() {
		r := newRig(t)
		ln, _ := r.lan.ListenTCP(80)
		go func() {
			for {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				c.Close()
			}
		}()
		pc, _ := r.lan.ListenUDP(53)
		pc.SetReadDeadline(time.Now().Add(time.Hour)) // a timer the LAN's Close must stop
		go func() {
			buf := make([]byte, 512)
			for {
				if _, _, err := pc.ReadFrom(buf); err != nil {
					return
				}
			}
		}()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if c, err := r.dial(ctx, netip.MustParseAddrPort("10.201.86.1:80")); err == nil {
			c.Close()
		}
		if c, err := r.dial(ctx, netip.MustParseAddrPort("203.0.113.10:443")); err == nil {
			c.Write([]byte("GET / HTTP/1.1\r\nHost: x.example\r\n\r\n"))
			c.Close()
		}
		ln.Close()
		r.laptop.Close()
		r.lan.Close()
		r.laptop.Wait()
	}()
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > before+1 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if n := runtime.NumGoroutine(); n > before+1 {
		buf := make([]byte, 1<<20)
		t.Fatalf("%d goroutines left running after Close (before: %d):\n%s", n, before, buf[:runtime.Stack(buf, true)])
	}
}

// TestBackpressure sends more than the wire can hold at once: writes must wait for
// room rather than drop, and every byte must arrive intact.
func TestBackpressure(t *testing.T) {
	r := newRigBuf(t, 32<<10)
	ln, err := r.lan.ListenTCP(80)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	const size = 16 << 20
	data := make([]byte, size)
	for i := range data {
		data[i] = byte(i * 7)
	}
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		c.Write(data)
		c.Close()
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := r.dial(ctx, netip.MustParseAddrPort("10.201.86.1:80"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(30 * time.Second))
	got, err := io.ReadAll(conn)
	if err != nil {
		t.Fatalf("after %d bytes: %v", len(got), err)
	}
	if !bytes.Equal(got, data) {
		t.Fatalf("received %d bytes, not what was sent", len(got))
	}
	st := r.lan.Stats().Link
	t.Logf("link: %+v", st)
	if st.TxWaits == 0 {
		t.Error("the link never waited for room: the test did not exercise backpressure")
	}
	if st.TxDropped != 0 {
		t.Errorf("%d frames dropped; writes should wait instead", st.TxDropped)
	}
}

// dropFrames are typical things a laptop sends that the box drops: a DNS query to
// a public resolver, a TLS ClientHello in a QUIC-less world, an mDNS query, a SYN
// to a closed port.
func dropFrames(b *testing.B) map[string][]byte {
	dns := []byte{0x12, 0x34, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0, 9, 't', 'e', 'l', 'e', 'm', 'e', 't', 'r', 'y', 7, 'e', 'x', 'a', 'm', 'p', 'l', 'e', 0, 0, 1, 0, 1}
	return map[string][]byte{
		"dns-egress":  rawUDP(b, [4]byte{8, 8, 8, 8}, 53, dns),
		"closed-port": rawUDP(b, [4]byte{10, 201, 86, 1}, 123, make([]byte, 48)),
		"non-ip":      append(append(append([]byte{}, boxMAC...), laptopMAC...), append([]byte{0x88, 0xcc}, make([]byte, 46)...)...),
	}
}

func rawUDP(b *testing.B, dst [4]byte, port uint16, payload []byte) []byte {
	f := append(append([]byte{}, boxMAC...), laptopMAC...)
	f = append(f, 0x08, 0x00)
	ip := []byte{0x45, 0, 0, 0, 0, 1, 0, 0, 64, 17, 0, 0, 10, 201, 86, 100}
	ip = append(ip, dst[:]...)
	total := 20 + 8 + len(payload)
	ip[2], ip[3] = byte(total>>8), byte(total)
	var sum uint32
	for i := 0; i < 20; i += 2 {
		sum += uint32(ip[i])<<8 | uint32(ip[i+1])
	}
	for sum > 0xffff {
		sum = sum>>16 + sum&0xffff
	}
	ip[10], ip[11] = byte(^sum>>8), byte(^sum)
	udp := []byte{0x9c, 0x40, byte(port >> 8), byte(port), byte((8 + len(payload)) >> 8), byte(8 + len(payload)), 0, 0}
	return append(append(append(f, ip...), udp...), payload...)
}

// BenchmarkDropPath is the cost of stopping one packet: the ruleset, the
// gopacket decode of what it reveals, and the leak log record (aggregated with
// its repeats, as a chatty laptop's packets are).
func BenchmarkDropPath(b *testing.B) {
	r := newRig(b)
	for name, f := range dropFrames(b) {
		b.Run(name, func(b *testing.B) {
			fr := link.NewFrame(f, link.Meta{})
			b.ReportAllocs()
			for b.Loop() {
				if r.lan.Inbound(fr) {
					b.Fatal("accepted")
				}
			}
		})
	}
}

// BenchmarkAcceptPath is the gate's cost for a frame the box accepts for the
// netstack, checksum verification included (a frame the kernel did not vouch
// for). BenchmarkUDPService measures the services that bypass the netstack.
func BenchmarkAcceptPath(b *testing.B) {
	r := newRig(b)
	f := rawUDP(b, [4]byte{10, 201, 86, 1}, 67, make([]byte, 64))
	pc, err := r.lan.ListenUDPBroadcast(67)
	if err != nil {
		b.Fatal(err)
	}
	defer pc.Close()
	fr := link.NewFrame(f, link.Meta{})
	b.ReportAllocs()
	for b.Loop() {
		if !r.lan.Inbound(fr) {
			b.Fatal("dropped")
		}
	}
}
