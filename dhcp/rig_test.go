package dhcp

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/insomniacslk/dhcp/dhcpv4"
	"golang.org/x/sys/unix"

	"github.com/redoubt/redoubt/datapath/lan"
	"github.com/redoubt/redoubt/datapath/leaklog"
)

var (
	boxMAC    = net.HardwareAddr{0x02, 0x52, 0x44, 0, 0, 0x01}
	laptopMAC = net.HardwareAddr{0x02, 0x52, 0x44, 0, 0, 0x64}
	boxLAN    = netip.MustParsePrefix("10.201.86.1/24")
	bcastMAC  = net.HardwareAddr{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}
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

// stateDir is a fresh directory for lease files, on tmpfs when there is one: the
// tests commit often, and fsync on a shared disk costs milliseconds each.
func stateDir(t testing.TB) string {
	t.Helper()
	if fi, err := os.Stat("/dev/shm"); err == nil && fi.IsDir() {
		d, err := os.MkdirTemp("/dev/shm", "redoubt-dhcp-test-")
		if err == nil {
			t.Cleanup(func() { os.RemoveAll(d) })
			return d
		}
	}
	return t.TempDir()
}

// names records what the server publishes to the DNS room.
type names struct {
	mu sync.Mutex
	m  map[netip.Addr]string
}

func (n *names) SetHost(a netip.Addr, name string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.m == nil {
		n.m = map[netip.Addr]string{}
	}
	if name == "" {
		delete(n.m, a)
	} else {
		n.m[a] = name
	}
}

func (n *names) get(a netip.Addr) string {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.m[a]
}

// rig is the box's real LAN port (the gVisor netstack and its filter) with the
// DHCP server on it, and the laptop's end of the cable as a socket that sends and
// receives raw Ethernet frames: the whole path, in process, without root.
type rig struct {
	t        testing.TB
	lan      *lan.LAN
	srv      *Server
	names    *names
	captive  string
	dir      string
	wire     int
	cfg      Config
	serveErr chan error
	mu       sync.Mutex
	now      time.Time // zero: real time
}

func newRig(t testing.TB, cfg Config) *rig {
	t.Helper()
	goroutines := runtime.NumGoroutine()
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, fd := range fds {
		unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_SNDBUF, 4<<20)
		unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUF, 4<<20)
	}
	tv := unix.NsecToTimeval(int64(50 * time.Millisecond))
	unix.SetsockoptTimeval(fds[1], unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv)
	l, err := lan.OpenFD(fds[0], boxMAC, lan.Config{Address: boxLAN}, lan.Deps{Logger: testLogger(t).With("room", "datapath"), Leaks: leaklog.New(leaklog.Config{})})
	if err != nil {
		t.Fatal(err)
	}
	r := &rig{t: t, lan: l, names: &names{}, captive: "http://10.201.86.1/captive-portal/api", dir: stateDir(t), wire: fds[1], cfg: cfg}
	r.start()
	t.Cleanup(func() {
		r.stop()
		l.Close()
		unix.Close(fds[0])
		unix.Close(fds[1])
		checkGoroutines(t, goroutines)
	})
	return r
}

// checkGoroutines fails t if more goroutines run than before it started, a
// moment after everything it started was closed.
func checkGoroutines(t testing.TB, before int) {
	t.Helper()
	for deadline := time.Now().Add(2 * time.Second); runtime.NumGoroutine() > before; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			t.Errorf("%d goroutines left running (%d before):\n%s", runtime.NumGoroutine()-before, before, buf[:runtime.Stack(buf, true)])
			return
		}
	}
}

// start runs a DHCP server on the LAN, as the daemon does.
func (r *rig) start() {
	r.t.Helper()
	conn, err := r.lan.ListenUDPBroadcast(67)
	if err != nil {
		r.t.Fatal(err)
	}
	srv, err := New(r.cfg, Deps{
		Conn: conn, Neighbors: r.lan, LAN: boxLAN, StateDir: r.dir, HostNames: r.names,
		CaptiveURL: func() string { r.mu.Lock(); defer r.mu.Unlock(); return r.captive },
		Logger:     testLogger(r.t).With("room", "dhcp"),
		Now:        r.clock,
	})
	if err != nil {
		r.t.Fatal(err)
	}
	r.srv = srv
	r.serveErr = make(chan error, 1)
	go func() { r.serveErr <- srv.Serve() }()
}

// stop closes the server and checks Serve ended cleanly.
func (r *rig) stop() {
	if r.srv == nil {
		return
	}
	r.srv.Close()
	select {
	case err := <-r.serveErr:
		if err != nil {
			r.t.Errorf("Serve: %v", err)
		}
	case <-time.After(5 * time.Second):
		r.t.Error("Serve did not return after Close")
	}
	r.srv = nil
}

func (r *rig) restart() {
	r.stop()
	r.start()
}

func (r *rig) clock() time.Time {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.now.IsZero() {
		return time.Now()
	}
	return r.now
}

func (r *rig) setClock(t time.Time) {
	r.mu.Lock()
	r.now = t
	r.mu.Unlock()
}

func (r *rig) setCaptive(url string) {
	r.mu.Lock()
	r.captive = url
	r.mu.Unlock()
}

// frame builds an Ethernet frame carrying a UDP datagram.
func frame(t testing.TB, srcMAC, dstMAC net.HardwareAddr, src, dst netip.AddrPort, payload []byte) []byte {
	t.Helper()
	eth := &layers.Ethernet{SrcMAC: srcMAC, DstMAC: dstMAC, EthernetType: layers.EthernetTypeIPv4}
	ip := &layers.IPv4{Version: 4, TTL: 64, Protocol: layers.IPProtocolUDP, SrcIP: src.Addr().AsSlice(), DstIP: dst.Addr().AsSlice()}
	udp := &layers.UDP{SrcPort: layers.UDPPort(src.Port()), DstPort: layers.UDPPort(dst.Port())}
	udp.SetNetworkLayerForChecksum(ip)
	buf := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true},
		eth, ip, udp, gopacket.Payload(payload)); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// received is a DHCP reply as it arrived on the laptop's wire.
type received struct {
	dstMAC   net.HardwareAddr
	src, dst netip.AddrPort
	msg      *dhcpv4.DHCPv4
}

// sendRaw puts a frame on the wire.
func (r *rig) sendRaw(f []byte) {
	r.t.Helper()
	if _, err := unix.Write(r.wire, f); err != nil {
		r.t.Fatal(err)
	}
}

// send transmits a DHCP message as a client without an address does: from
// 0.0.0.0:68 to 255.255.255.255:67.
func (r *rig) send(m *dhcpv4.DHCPv4) {
	r.t.Helper()
	r.sendFrom(m, netip.AddrPortFrom(netip.IPv4Unspecified(), 68), netip.AddrPortFrom(bcast4, 67), bcastMAC)
}

func (r *rig) sendFrom(m *dhcpv4.DHCPv4, src, dst netip.AddrPort, dstMAC net.HardwareAddr) {
	r.t.Helper()
	r.sendRaw(frame(r.t, laptopMAC, dstMAC, src, dst, m.ToBytes()))
}

// recv waits up to d for a DHCP reply to port, skipping other frames (ARP).
func (r *rig) recv(d time.Duration, port uint16) (received, error) {
	deadline := time.Now().Add(d)
	buf := make([]byte, 4096)
	for time.Now().Before(deadline) {
		n, err := unix.Read(r.wire, buf)
		if err != nil {
			if errors.Is(err, unix.EAGAIN) || errors.Is(err, unix.EINTR) {
				continue
			}
			return received{}, err
		}
		p := gopacket.NewPacket(buf[:n], layers.LayerTypeEthernet, gopacket.NoCopy)
		eth, _ := p.Layer(layers.LayerTypeEthernet).(*layers.Ethernet)
		ip, _ := p.Layer(layers.LayerTypeIPv4).(*layers.IPv4)
		udp, _ := p.Layer(layers.LayerTypeUDP).(*layers.UDP)
		if eth == nil || ip == nil || udp == nil || uint16(udp.DstPort) != port {
			continue
		}
		m, err := dhcpv4.FromBytes(udp.Payload)
		if err != nil {
			return received{}, err
		}
		src, _ := netip.AddrFromSlice(ip.SrcIP.To4())
		dst, _ := netip.AddrFromSlice(ip.DstIP.To4())
		return received{
			dstMAC: eth.DstMAC,
			src:    netip.AddrPortFrom(src, uint16(udp.SrcPort)),
			dst:    netip.AddrPortFrom(dst, uint16(udp.DstPort)),
			msg:    m,
		}, nil
	}
	return received{}, errors.New("no DHCP reply")
}

// expect waits for a reply of type mt.
func (r *rig) expect(mt dhcpv4.MessageType) received {
	r.t.Helper()
	got, err := r.recv(3*time.Second, 68)
	if err != nil {
		r.t.Fatalf("waiting for %v: %v (stats %+v)", mt, err, r.srv.Stats())
	}
	if got.msg.MessageType() != mt {
		r.t.Fatalf("got %v, want %v: %s", got.msg.MessageType(), mt, got.msg.Summary())
	}
	return got
}

// expectNothing checks no reply comes within d.
func (r *rig) expectNothing(d time.Duration) {
	r.t.Helper()
	if got, err := r.recv(d, 68); err == nil {
		r.t.Fatalf("unexpected reply: %s", got.msg.Summary())
	}
}

// client builds the messages of one DHCP client.
type client struct {
	mac   net.HardwareAddr
	xid   uint32
	mods  []dhcpv4.Modifier
	bcast bool
}

func (c *client) msg(mt dhcpv4.MessageType, mods ...dhcpv4.Modifier) *dhcpv4.DHCPv4 {
	c.xid++
	m := &dhcpv4.DHCPv4{
		OpCode: dhcpv4.OpcodeBootRequest, HWType: 1, ClientHWAddr: c.mac,
		TransactionID: dhcpv4.TransactionID{byte(c.xid >> 24), byte(c.xid >> 16), byte(c.xid >> 8), byte(c.xid)},
		ClientIPAddr:  net.IPv4zero, YourIPAddr: net.IPv4zero, ServerIPAddr: net.IPv4zero, GatewayIPAddr: net.IPv4zero,
		Options: dhcpv4.Options{},
	}
	m.UpdateOption(dhcpv4.OptMessageType(mt))
	if c.bcast {
		m.SetBroadcast()
	}
	for _, f := range append(c.mods, mods...) {
		f(m)
	}
	return m
}

func requestFor(offer *dhcpv4.DHCPv4) []dhcpv4.Modifier {
	return []dhcpv4.Modifier{
		dhcpv4.WithOption(dhcpv4.OptRequestedIPAddress(offer.YourIPAddr)),
		dhcpv4.WithOption(dhcpv4.OptServerIdentifier(offer.ServerIdentifier())),
	}
}

// bind runs a whole DISCOVER/OFFER/REQUEST/ACK exchange.
func (r *rig) bind(c *client) received {
	r.t.Helper()
	r.send(c.msg(dhcpv4.MessageTypeDiscover))
	offer := r.expect(dhcpv4.MessageTypeOffer)
	r.send(c.msg(dhcpv4.MessageTypeRequest, requestFor(offer.msg)...))
	return r.expect(dhcpv4.MessageTypeAck)
}

func addrOf(ip net.IP) netip.Addr {
	a, _ := netip.AddrFromSlice(ip.To4())
	return a
}

// waitStats polls the server's counters until ok or a timeout.
func (r *rig) waitStats(ok func(Stats) bool) Stats {
	r.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	for {
		st := r.srv.Stats()
		if ok(st) {
			return st
		}
		select {
		case <-ctx.Done():
			r.t.Fatalf("counters never got there: %+v", st)
		case <-time.After(10 * time.Millisecond):
		}
	}
}
