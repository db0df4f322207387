package wan

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/redoubt/redoubt/vpn/wanfw"
)

// Stand-ins for the tailnet node's socket (tailscale's mark, the mesh's port).
var tailnet = direct{mark: 0x80000, port: 41641}

func TestDirectRuleRoundTrip(t *testing.T) {
	b, err := directRule(tailnet).MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	r, err := parseRule(b)
	if err != nil {
		t.Fatal(err)
	}
	if !r.isDirect(tailnet) || r.protocol() != RouteProtocol {
		t.Errorf("the rule read back is not the rule: %v", r.attrs)
	}
	for _, other := range []direct{{0x80000, 41642}, {0x80001, 41641}} {
		if r.isDirect(other) {
			t.Errorf("the rule for %+v passes for %+v", tailnet, other)
		}
	}
	// An attribute the code does not know (FRA_SPORT_MASK, which kernels from
	// 6.15 add) is kept and does not change the verdict.
	b = append(b, 6, 0, 28, 0, 0xff, 0xff, 0, 0)
	if r, err := parseRule(b); err != nil || !r.isDirect(tailnet) {
		t.Errorf("with FRA_SPORT_MASK: %v %v", err, r.attrs)
	}
	if _, err := parseRule(b[:8]); err == nil {
		t.Error("a short message was read")
	}
}

// router makes a "box" namespace whose wan0 (192.168.1.2/24) is cabled to a
// "router" namespace holding both gateways the test uses (192.168.1.1 and .254)
// and, on its loopback, an internet address with a UDP echo on port 3478. The
// box's reverse-path filter is strict, as many distributions set it.
func router(t *testing.T) (box, rtr string) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("WAN routing test skipped: it needs root (network namespaces)")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		t.Skip("WAN routing test skipped: no ip command")
	}
	var b [3]byte
	rand.Read(b[:])
	prefix := "rdt" + hex.EncodeToString(b[:])
	box, rtr = prefix+"-wanbox", prefix+"-wanrouter"
	for _, ns := range []string{box, rtr} {
		ipCmd(t, "netns", "add", ns)
		t.Cleanup(func() { exec.Command("ip", "netns", "del", ns).Run() })
		ipCmd(t, "-n", ns, "link", "set", "lo", "up")
	}
	ipCmd(t, "-n", box, "link", "add", "wan0", "type", "veth", "peer", "name", "eth0", "netns", rtr)
	ipCmd(t, "-n", box, "link", "set", "wan0", "up")
	ipCmd(t, "-n", rtr, "link", "set", "eth0", "up")
	ipCmd(t, "-n", rtr, "addr", "add", "192.168.1.1/24", "dev", "eth0")
	ipCmd(t, "-n", rtr, "addr", "add", "192.168.1.254/24", "dev", "eth0")
	ipCmd(t, "-n", rtr, "addr", "add", "203.0.113.10/32", "dev", "lo")
	for _, k := range []string{"all", "wan0"} {
		if out, err := exec.Command("ip", "netns", "exec", box, "sysctl", "-q", "-w", "net.ipv4.conf."+k+".rp_filter=1").CombinedOutput(); err != nil {
			t.Fatalf("sysctl: %v: %s", err, out)
		}
	}
	return box, rtr
}

func ipCmd(t *testing.T, args ...string) string {
	t.Helper()
	out, err := exec.Command("ip", args...).CombinedOutput()
	if err != nil {
		t.Fatalf("ip %s: %v: %s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// in runs fn on a thread inside namespace ns (the thread ends with it).
func in(ns string, fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		f, err := os.Open("/run/netns/" + ns)
		if err != nil {
			errc <- err
			return
		}
		defer f.Close()
		if err := unix.Setns(int(f.Fd()), unix.CLONE_NEWNET); err != nil {
			errc <- err
			return
		}
		errc <- fn()
	}()
	return <-errc
}

// udpFrom sends a datagram from a socket in ns bound to port with mark (0: none)
// and reports the send's error and, when it went, whether the echo came back.
func udpFrom(t *testing.T, ns string, mark, port int, to string) (sendErr error, echoed bool) {
	t.Helper()
	var c net.PacketConn
	if err := in(ns, func() (err error) {
		lc := net.ListenConfig{Control: func(_, _ string, rc syscall.RawConn) error {
			var serr error
			if mark != 0 {
				rc.Control(func(fd uintptr) { serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_MARK, mark) })
			}
			return serr
		}}
		c, err = lc.ListenPacket(context.Background(), "udp4", fmt.Sprintf(":%d", port))
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.WriteTo([]byte("ping"), net.UDPAddrFromAddrPort(netip.MustParseAddrPort(to))); err != nil {
		return err, false
	}
	c.SetReadDeadline(time.Now().Add(time.Second))
	_, _, err := c.ReadFrom(make([]byte, 16))
	return nil, err == nil
}

// TestDirectRoute: the direct paths' rule and route in a namespace — installed
// for the marked socket only, never as a default route in the main table,
// working through a strict reverse-path filter with the firewall's mark, moved
// when the gateway changes, cleaned of leftovers, and removed when turned off,
// when the VPN goes, and when the port closes.
func TestDirectRoute(t *testing.T) {
	box, rtr := router(t)
	var echo net.PacketConn
	if err := in(rtr, func() (err error) {
		echo, err = net.ListenPacket("udp4", "203.0.113.10:3478")
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer echo.Close()
	go func() {
		b := make([]byte, 64)
		for {
			n, from, err := echo.ReadFrom(b)
			if err != nil {
				return
			}
			echo.WriteTo(b[:n], from)
		}
	}()
	const peer = "203.0.113.10:3478"
	endpoint := netip.MustParseAddrPort("198.51.100.7:51820")
	addr := netip.MustParsePrefix("192.168.1.2/24")
	gw1, gw2 := netip.MustParseAddr("192.168.1.1"), netip.MustParseAddr("192.168.1.254")
	p := &Port{cfg: Config{Interface: "wan0", Addressing: Static, Address: addr, Gateway: gw1},
		log: slog.New(slog.NewTextHandler(tWriter{t}, nil)), cancel: func() {}, done: make(chan struct{})}
	close(p.done)
	configure := func(gw, ep netip.Addr, dp direct) string {
		t.Helper()
		var desc string
		if err := in(box, func() (err error) {
			desc, err = p.configure(addr, 0, gw, ep, dp)
			return err
		}); err != nil {
			t.Fatal(err)
		}
		p.mu.Lock()
		p.state.DirectRoute = desc
		p.mu.Unlock()
		return desc
	}
	rules := func() string { return ipCmd(t, "-n", box, "-4", "rule", "show") }
	table := func() string {
		out, _ := exec.Command("ip", "-n", box, "-4", "route", "show", "table", fmt.Sprint(DirectTable)).CombinedOutput()
		return string(out)
	}
	noMainDefault := func() {
		t.Helper()
		if out := ipCmd(t, "-n", box, "-4", "route", "show", "table", "main"); strings.Contains(out, "default") {
			t.Errorf("the main table has a default route:\n%s", out)
		}
	}
	srcValidMark := func() string {
		out, _ := exec.Command("ip", "netns", "exec", box, "cat", "/proc/sys/net/ipv4/conf/wan0/src_valid_mark").CombinedOutput()
		return strings.TrimSpace(string(out))
	}
	eunreach := func(err error) bool { return errors.Is(err, syscall.ENETUNREACH) }

	// Before: only the endpoint's route; the peer is out of reach.
	if desc := configure(gw1, endpoint.Addr(), direct{}); desc != "" {
		t.Errorf("description without direct paths: %q", desc)
	}
	if err, _ := udpFrom(t, box, int(tailnet.mark), int(tailnet.port), peer); !eunreach(err) {
		t.Errorf("the tailnet's socket reached the peer with no direct paths: %v", err)
	}

	// On: the rule, the route in its own table, src_valid_mark.
	desc := configure(gw1, endpoint.Addr(), tailnet)
	t.Logf("direct route: %s\nrules:\n%stable %d:\n%s", desc, rules(), DirectTable, table())
	if !strings.Contains(desc, "via 192.168.1.1") {
		t.Errorf("description: %q", desc)
	}
	if r := rules(); !strings.Contains(r, "32800:\tfrom all fwmark 0x80000 ipproto udp sport 41641 lookup 201 proto 201") {
		t.Errorf("no direct rule:\n%s", r)
	}
	if tb := table(); !strings.Contains(tb, "default via 192.168.1.1 dev wan0 proto 201") {
		t.Errorf("table %d:\n%s", DirectTable, tb)
	}
	noMainDefault()
	if v := srcValidMark(); v != "1" {
		t.Errorf("src_valid_mark = %q", v)
	}
	// Traffic, with the firewall that marks what comes back (the box's
	// reverse-path filter is strict).
	f, err := os.Open("/run/netns/" + box)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	fw := wanfw.New(int(f.Fd()))
	if err := fw.Apply(wanfw.Rules{Endpoint: endpoint, Mark: 0x5244, Direct: wanfw.DirectPaths{Mark: tailnet.mark, Port: tailnet.port}}); err != nil {
		t.Fatal(err)
	}
	if err, echoed := udpFrom(t, box, int(tailnet.mark), int(tailnet.port), peer); err != nil || !echoed {
		t.Errorf("the tailnet's socket to the peer: sent %v, echoed %v", err, echoed)
	}
	if err, _ := udpFrom(t, box, 0, int(tailnet.port), peer); !eunreach(err) {
		t.Errorf("an unmarked socket on the port found a route: %v", err)
	}
	if err, _ := udpFrom(t, box, int(tailnet.mark), int(tailnet.port)+1, peer); !eunreach(err) {
		t.Errorf("the mark on another port found a route: %v", err)
	}

	// The gateway changes (a new lease): the route follows.
	configure(gw2, endpoint.Addr(), tailnet)
	if tb := table(); !strings.Contains(tb, "default via 192.168.1.254") || strings.Count(tb, "default") != 1 {
		t.Errorf("after the gateway changed, table %d:\n%s", DirectTable, tb)
	}
	if err, echoed := udpFrom(t, box, int(tailnet.mark), int(tailnet.port), peer); err != nil || !echoed {
		t.Errorf("via the new gateway: sent %v, echoed %v", err, echoed)
	}
	// Leftovers of another run (another port) go; ours stays.
	ipCmd(t, "-n", box, "rule", "add", "priority", "32800", "fwmark", "0x80000", "ipproto", "udp", "sport", "41000", "lookup", "201", "proto", "201")
	configure(gw2, endpoint.Addr(), tailnet)
	if r := rules(); strings.Contains(r, "41000") || !strings.Contains(r, "sport 41641") {
		t.Errorf("after a restart:\n%s", r)
	}
	// No gateway: nothing to route by.
	if desc := configure(netip.Addr{}, endpoint.Addr(), tailnet); !strings.Contains(desc, "no router") || strings.Contains(rules(), "41641") || table() != "" {
		t.Errorf("without a gateway: %q\n%s%s", desc, rules(), table())
	}
	// No VPN: no direct paths either.
	configure(gw1, endpoint.Addr(), tailnet)
	if desc := configure(gw1, netip.Addr{}, tailnet); desc != "" || strings.Contains(rules(), "41641") || table() != "" {
		t.Errorf("without a VPN endpoint: %q\n%s%s", desc, rules(), table())
	}
	// Off.
	configure(gw1, endpoint.Addr(), tailnet)
	configure(gw1, endpoint.Addr(), direct{})
	if strings.Contains(rules(), "41641") || table() != "" || srcValidMark() != "0" {
		t.Errorf("turned off:\n%s%s src_valid_mark %s", rules(), table(), srcValidMark())
	}
	// The port closes: the direct paths go, the endpoint's route stays.
	configure(gw1, endpoint.Addr(), tailnet)
	if err := in(box, func() error { p.Close(); return nil }); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(rules(), "41641") || table() != "" {
		t.Errorf("after Close:\n%s%s", rules(), table())
	}
	if out := ipCmd(t, "-n", box, "-4", "route", "show"); !strings.Contains(out, "198.51.100.7 via 192.168.1.1") {
		t.Errorf("the endpoint's route went with Close:\n%s", out)
	}
	noMainDefault()
}

type tWriter struct{ t *testing.T }

func (w tWriter) Write(b []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(b)))
	return len(b), nil
}
