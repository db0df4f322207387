package wanfw

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
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
)

const testMark = 0x5244

// twoNamespaces makes a "box" namespace and a "server" namespace joined by a veth
// pair (198.51.100.1 and .2), removed at the end of the test.
func twoNamespaces(t *testing.T) (box, server string) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("firewall test skipped: it needs root (network namespaces, nftables)")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		t.Skip("firewall test skipped: no ip command")
	}
	var b [3]byte
	rand.Read(b[:])
	prefix := "rdt" + hex.EncodeToString(b[:])
	box, server = prefix+"-fwbox", prefix+"-fwserver"
	run := func(args ...string) {
		t.Helper()
		if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
			t.Fatalf("ip %s: %v: %s", strings.Join(args, " "), err, out)
		}
	}
	run("netns", "add", box)
	t.Cleanup(func() { exec.Command("ip", "netns", "del", box).Run() })
	run("netns", "add", server)
	t.Cleanup(func() { exec.Command("ip", "netns", "del", server).Run() })
	run("-n", box, "link", "add", "wan0", "type", "veth", "peer", "name", "eth0", "netns", server)
	run("-n", box, "addr", "add", "198.51.100.1/24", "dev", "wan0")
	run("-n", server, "addr", "add", "198.51.100.2/24", "dev", "eth0")
	for _, ns := range []string{box, server} {
		run("-n", ns, "link", "set", "lo", "up")
	}
	run("-n", box, "link", "set", "wan0", "up")
	run("-n", server, "link", "set", "eth0", "up")
	return box, server
}

// in runs fn on a thread inside namespace ns.
func in(t *testing.T, ns string, fn func() error) error {
	t.Helper()
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread dies with the goroutine
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

func nsFD(t *testing.T, ns string) int {
	f, err := os.Open("/run/netns/" + ns)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return int(f.Fd())
}

// sendUDP sends one datagram from the box namespace, with a socket mark when mark
// is not 0, and reports the send's error.
func sendUDP(t *testing.T, box string, mark int, to string) error {
	return in(t, box, func() error {
		fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			return err
		}
		defer unix.Close(fd)
		if mark != 0 {
			if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_MARK, mark); err != nil {
				return err
			}
		}
		ap := netip.MustParseAddrPort(to)
		return unix.Sendto(fd, []byte("x"), 0, &unix.SockaddrInet4{Port: int(ap.Port()), Addr: ap.Addr().As4()})
	})
}

func dialTCP(t *testing.T, box, to string) error {
	return in(t, box, func() error {
		c, err := net.DialTimeout("tcp", to, 2*time.Second)
		if err == nil {
			c.Close()
		}
		return err
	})
}

func TestFirewall(t *testing.T) {
	box, server := twoNamespaces(t)
	// Something to talk to on the server.
	var udpLn net.PacketConn
	if err := in(t, server, func() (err error) {
		udpLn, err = net.ListenPacket("udp4", "198.51.100.2:51820")
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer udpLn.Close()
	var tcpLn net.Listener
	if err := in(t, server, func() (err error) {
		tcpLn, err = net.Listen("tcp4", "198.51.100.2:80")
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer tcpLn.Close()
	go func() {
		for {
			c, err := tcpLn.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()

	// No firewall: everything goes.
	if err := dialTCP(t, box, "198.51.100.2:80"); err != nil {
		t.Fatalf("before the firewall: %v", err)
	}

	fw := New(nsFD(t, box))
	endpoint := netip.MustParseAddrPort("198.51.100.2:51820")
	if err := fw.Apply(Rules{Endpoint: endpoint, Mark: testMark}); err != nil {
		t.Fatal(err)
	}
	eperm := func(err error) bool { return errors.Is(err, syscall.EPERM) }
	if err := sendUDP(t, box, testMark, "198.51.100.2:51820"); err != nil {
		t.Errorf("the VPN's own flow was refused: %v", err)
	}
	udpLn.SetReadDeadline(time.Now().Add(2 * time.Second))
	if _, _, err := udpLn.ReadFrom(make([]byte, 16)); err != nil {
		t.Errorf("the VPN's datagram did not arrive: %v", err)
	}
	if err := sendUDP(t, box, 0, "198.51.100.2:51820"); !eperm(err) {
		t.Errorf("an unmarked socket reached the endpoint: %v", err)
	}
	if err := sendUDP(t, box, testMark, "198.51.100.2:53"); !eperm(err) {
		t.Errorf("the marked socket reached another port: %v", err)
	}
	if err := sendUDP(t, box, testMark, "198.51.100.3:51820"); !eperm(err) {
		t.Errorf("the marked socket reached another address: %v", err)
	}
	if err := dialTCP(t, box, "198.51.100.2:80"); err == nil {
		t.Error("TCP left the box")
	}
	if err := dialTCP(t, box, "127.0.0.1:1"); err == nil || eperm(err) {
		t.Errorf("loopback should be open (connection refused, not EPERM): %v", err)
	}
	cs, err := fw.Counters()
	if err != nil {
		t.Fatal(err)
	}
	if cs.OutDropped < 4 {
		t.Errorf("drop counters: %+v", cs)
	}

	// A new endpoint replaces the old one at once.
	if err := fw.Apply(Rules{Endpoint: netip.MustParseAddrPort("198.51.100.2:4500"), Mark: testMark}); err != nil {
		t.Fatal(err)
	}
	if err := sendUDP(t, box, testMark, "198.51.100.2:51820"); !eperm(err) {
		t.Errorf("the old endpoint is still allowed: %v", err)
	}
	if err := sendUDP(t, box, testMark, "198.51.100.2:4500"); err != nil {
		t.Errorf("the new endpoint is refused: %v", err)
	}
	// No VPN: nothing at all.
	if err := fw.Apply(Rules{}); err != nil {
		t.Fatal(err)
	}
	if err := sendUDP(t, box, testMark, "198.51.100.2:4500"); !eperm(err) {
		t.Errorf("without an endpoint something left: %v", err)
	}
	out, _ := exec.Command("ip", "netns", "exec", box, "nft", "list", "table", "inet", Table).CombinedOutput()
	t.Logf("the installed table:\n%s", out)
	if !strings.Contains(string(out), "policy drop") {
		t.Errorf("nft does not list the table as expected:\n%s", out)
	}

	// Removed: open again.
	if err := fw.Remove(); err != nil {
		t.Fatal(err)
	}
	if err := fw.Remove(); err != nil {
		t.Errorf("removing twice: %v", err)
	}
	if err := dialTCP(t, box, "198.51.100.2:80"); err != nil {
		t.Errorf("after removal: %v", err)
	}
	if _, err := fw.Counters(); err == nil {
		t.Error("counters of a removed table")
	}
}

func TestRulesValidate(t *testing.T) {
	if err := (Rules{Endpoint: netip.MustParseAddrPort("192.0.2.1:51820")}).Validate(); err == nil {
		t.Error("an endpoint without a mark was accepted")
	}
	if err := (Rules{}).Validate(); err != nil {
		t.Errorf("no endpoint: %v", err)
	}
	s := Rules{Endpoint: netip.MustParseAddrPort("192.0.2.1:51820"), Mark: 1}.String()
	if !strings.Contains(s, "192.0.2.1") || !strings.Contains(s, "51820") || strings.Contains(s, "direct") {
		t.Errorf("String: %s", s)
	}
	ep := netip.MustParseAddrPort("192.0.2.1:51820")
	for _, tc := range []struct {
		r    Rules
		want string // in the error; "" for valid
	}{
		{Rules{Endpoint: ep, Mark: 1, Direct: DirectPaths{Mark: tailnetMark, Port: tailnetPort}}, ""},
		{Rules{Direct: DirectPaths{Mark: tailnetMark, Port: tailnetPort}}, "need the VPN"},
		{Rules{Endpoint: ep, Mark: 1, Direct: DirectPaths{Mark: tailnetMark}}, "both a socket mark and a UDP port"},
		{Rules{Endpoint: ep, Mark: 1, Direct: DirectPaths{Port: tailnetPort}}, "both a socket mark and a UDP port"},
		{Rules{Endpoint: ep, Mark: 1, Direct: DirectPaths{Mark: 1, Port: tailnetPort}}, "the VPN's own"},
	} {
		err := tc.r.Validate()
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%+v: %v", tc.r, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("%+v: %v, want an error saying %q", tc.r, err, tc.want)
		}
	}
	s = Rules{Endpoint: ep, Mark: 1, Direct: DirectPaths{Mark: tailnetMark, Port: tailnetPort}}.String()
	for _, want := range []string{"192.0.2.1", "meta mark 0x80000 udp sport 41641", "udp dport 41641", "direct paths"} {
		if !strings.Contains(s, want) {
			t.Errorf("String %q does not say %q", s, want)
		}
	}
	if d := (DirectPaths{}); d.On() || d.String() != "none" || d.Validate() != nil {
		t.Errorf("zero DirectPaths: on %v, %q, %v", d.On(), d, d.Validate())
	}
}

// tailnetMark and tailnetPort stand for the tailnet node's socket: tailscale's
// mark on its sockets (tsconst.LinuxBypassMarkNum) and the mesh's port.
const (
	tailnetMark = 0x80000
	tailnetPort = 41641
)

// udpSocket opens a UDP socket in namespace ns, bound to port (0: any), with a
// socket mark when mark is not 0, asking for the mark of what it receives.
func udpSocket(t *testing.T, ns string, mark, port int) *net.UDPConn {
	t.Helper()
	var c net.PacketConn
	err := in(t, ns, func() (err error) {
		lc := net.ListenConfig{Control: func(_, _ string, rc syscall.RawConn) error {
			var serr error
			rc.Control(func(fd uintptr) {
				if mark != 0 {
					serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_MARK, mark)
				}
				if serr == nil {
					serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVMARK, 1)
				}
			})
			return serr
		}}
		c, err = lc.ListenPacket(context.Background(), "udp4", fmt.Sprintf(":%d", port))
		return err
	})
	if err != nil {
		t.Fatalf("a UDP socket in %s (mark 0x%x, port %d): %v", ns, mark, port, err)
	}
	t.Cleanup(func() { c.Close() })
	return c.(*net.UDPConn)
}

// receive reads one datagram within d and says where it came from and the
// packet mark it arrived with.
func receive(c *net.UDPConn, d time.Duration) (from netip.AddrPort, mark uint32, err error) {
	c.SetReadDeadline(time.Now().Add(d))
	b, oob := make([]byte, 64), make([]byte, 64)
	_, oobn, _, from, err := c.ReadMsgUDPAddrPort(b, oob)
	if err != nil {
		return from, 0, err
	}
	msgs, _ := unix.ParseSocketControlMessage(oob[:oobn])
	for _, m := range msgs {
		if m.Header.Level == unix.SOL_SOCKET && m.Header.Type == unix.SO_MARK && len(m.Data) >= 4 {
			mark = binary.NativeEndian.Uint32(m.Data)
		}
	}
	return from, mark, nil
}

// echo answers every datagram on c until it is closed.
func echo(c *net.UDPConn) {
	b := make([]byte, 64)
	for {
		n, from, err := c.ReadFromUDPAddrPort(b)
		if err != nil {
			return
		}
		c.WriteToUDPAddrPort(b[:n], from)
	}
}

// TestDirectPaths: with the direct-path allowance, the marked socket on the
// mesh's port reaches any address and hears back, and datagrams to that port
// come in (marked for the reverse-path filter); the same socket without the mark,
// the mark on another port, and TCP stay refused and counted; without the
// allowance, or without a VPN endpoint, the port is shut again.
func TestDirectPaths(t *testing.T) {
	box, server := twoNamespaces(t)
	peer := udpSocket(t, server, 0, 3478)
	go echo(peer)
	peerAddr := netip.MustParseAddrPort("198.51.100.2:3478")
	other := udpSocket(t, server, 0, 9999) // a peer the box never sent to
	var tcpLn net.Listener
	if err := in(t, server, func() (err error) {
		tcpLn, err = net.Listen("tcp4", "198.51.100.2:80")
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer tcpLn.Close()

	fw := New(nsFD(t, box))
	endpoint := netip.MustParseAddrPort("198.51.100.2:51820")
	direct := DirectPaths{Mark: tailnetMark, Port: tailnetPort}
	if err := fw.Apply(Rules{Direct: direct}); err == nil || !strings.Contains(err.Error(), "need the VPN") {
		t.Errorf("direct paths without a VPN endpoint: %v", err)
	}
	if err := fw.Apply(Rules{Endpoint: endpoint, Mark: testMark, Direct: direct}); err != nil {
		t.Fatal(err)
	}
	out, _ := exec.Command("ip", "netns", "exec", box, "nft", "list", "table", "inet", Table).CombinedOutput()
	t.Logf("the installed table:\n%s", out)
	for _, want := range []string{"udp sport 41641", "udp dport 41641", "meta mark set 0x00080000"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("the table has no %q", want)
		}
	}
	before, err := fw.Counters()
	if err != nil {
		t.Fatal(err)
	}

	eperm := func(err error) bool { return errors.Is(err, syscall.EPERM) }
	sock := udpSocket(t, box, tailnetMark, tailnetPort)
	if _, err := sock.WriteToUDPAddrPort([]byte("ping"), peerAddr); err != nil {
		t.Fatalf("the direct socket was refused: %v", err)
	}
	if from, _, err := receive(sock, 2*time.Second); err != nil || from != peerAddr {
		t.Fatalf("no echo on the direct path: %v %v", from, err)
	}
	// Unsolicited, from a port the box never sent to: in, with the mark.
	if _, err := other.WriteToUDPAddrPort([]byte("hello"), netip.MustParseAddrPort("198.51.100.1:41641")); err != nil {
		t.Fatal(err)
	}
	if from, mark, err := receive(sock, 2*time.Second); err != nil {
		t.Errorf("a datagram to the direct port did not come in: %v", err)
	} else if mark != tailnetMark {
		t.Errorf("a datagram from %v arrived with mark 0x%x, want 0x%x", from, mark, tailnetMark)
	}
	// The VPN's own flow is unchanged.
	if err := sendUDP(t, box, testMark, endpoint.String()); err != nil {
		t.Errorf("the VPN's flow: %v", err)
	}

	// Refused: the port without the mark, the mark on another port, TCP.
	sock.Close()
	unmarked := udpSocket(t, box, 0, tailnetPort)
	if _, err := unmarked.WriteToUDPAddrPort([]byte("x"), peerAddr); !eperm(err) {
		t.Errorf("an unmarked socket on the direct port got out: %v", err)
	}
	unmarked.Close()
	elsewhere := udpSocket(t, box, tailnetMark, tailnetPort+1)
	if _, err := elsewhere.WriteToUDPAddrPort([]byte("x"), peerAddr); !eperm(err) {
		t.Errorf("the mark on another port got out: %v", err)
	}
	if err := sendUDP(t, box, tailnetMark, "198.51.100.2:53"); !eperm(err) {
		t.Errorf("the mark on an ephemeral port got out: %v", err)
	}
	if err := in(t, box, func() error {
		d := net.Dialer{Timeout: time.Second, LocalAddr: &net.TCPAddr{Port: tailnetPort},
			Control: func(_, _ string, rc syscall.RawConn) error {
				var serr error
				rc.Control(func(fd uintptr) { serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_MARK, tailnetMark) })
				return serr
			}}
		c, err := d.Dial("tcp4", "198.51.100.2:80")
		if err == nil {
			c.Close()
		}
		return err
	}); err == nil {
		t.Error("TCP from the direct port with the mark got out")
	}
	// Unsolicited to another port: dropped.
	other.WriteToUDPAddrPort([]byte("x"), netip.MustParseAddrPort("198.51.100.1:41642"))
	if _, _, err := receive(elsewhere, 300*time.Millisecond); err == nil {
		t.Error("a datagram to a port other than the direct one came in")
	}
	after, err := fw.Counters()
	if err != nil {
		t.Fatal(err)
	}
	if after.OutDropped-before.OutDropped < 4 || after.InDropped == before.InDropped {
		t.Errorf("drops counted: before %+v, after %+v", before, after)
	}

	// The allowance off: the port is shut both ways.
	if err := fw.Apply(Rules{Endpoint: endpoint, Mark: testMark}); err != nil {
		t.Fatal(err)
	}
	sock = udpSocket(t, box, tailnetMark, tailnetPort)
	if _, err := sock.WriteToUDPAddrPort([]byte("x"), peerAddr); !eperm(err) {
		t.Errorf("the direct socket got out after the allowance was withdrawn: %v", err)
	}
	other.WriteToUDPAddrPort([]byte("x"), netip.MustParseAddrPort("198.51.100.1:41641"))
	if _, _, err := receive(sock, 300*time.Millisecond); err == nil {
		t.Error("a datagram to the direct port came in after the allowance was withdrawn")
	}
	out, _ = exec.Command("ip", "netns", "exec", box, "nft", "list", "table", "inet", Table).CombinedOutput()
	if strings.Contains(string(out), "41641") || strings.Contains(string(out), "prerouting") {
		t.Errorf("the table still mentions the direct paths:\n%s", out)
	}
}
