package wanfw

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
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
	if !strings.Contains(s, "192.0.2.1") || !strings.Contains(s, "51820") {
		t.Errorf("String: %s", s)
	}
}
