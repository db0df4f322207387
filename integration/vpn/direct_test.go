package vpn_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/redoubt/redoubt/lab"
	"github.com/redoubt/redoubt/vpn/external"
	"github.com/redoubt/redoubt/vpn/wan"
)

// directHelperEnv names the VPN client config when the test binary runs as the
// direct-paths helper: the box's vpn room alone, in the box's namespace.
const directHelperEnv = "REDOUBT_DIRECT_HELPER"

// The tailnet node's socket, as tailscale makes it (vpn/tailnet.SocketMark,
// the mesh's default port).
const (
	tailnetMark = 0x80000
	tailnetPort = 41641
)

// directHelper runs the box's external VPN — WAN port by DHCP, firewall, tunnel —
// exactly as the daemon builds it, and takes commands on standard input, one a
// line, answering each with a JSON line: "direct MARK PORT" (SetDirect; answers
// the error, if any) and "status" (answers the VPN's Status). At the end of
// input it closes the VPN and exits. It reports whether it ran.
func directHelper() bool {
	conf := os.Getenv(directHelperEnv)
	if conf == "" {
		return false
	}
	v, err := external.Start(external.Config{ConfigFile: conf}, external.Deps{
		Logger: slog.New(slog.NewTextHandler(os.Stderr, nil)),
		WAN:    wan.Config{Interface: lab.BoxWANIface, Addressing: wan.DHCP},
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	enc := json.NewEncoder(os.Stdout)
	sc := bufio.NewScanner(os.Stdin)
	for sc.Scan() {
		line := sc.Text()
		if line == "status" {
			enc.Encode(v.Status())
			continue
		}
		var mark uint32
		var port uint16
		if _, err := fmt.Sscanf(line, "direct %d %d", &mark, &port); err != nil {
			enc.Encode("unknown command: " + line)
			continue
		}
		errText := ""
		if err := v.SetDirect(mark, port); err != nil {
			errText = err.Error()
		}
		enc.Encode(errText)
	}
	v.Close()
	os.Exit(0)
	return true
}

// vpnRoom is the helper, running in the box's namespace.
type vpnRoom struct {
	cmd    *exec.Cmd
	in     io.WriteCloser
	out    *json.Decoder
	stderr *syncBuffer
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}
func (b *syncBuffer) String() string { b.mu.Lock(); defer b.mu.Unlock(); return b.b.String() }

func startVPNRoom(t *testing.T, l *lab.Lab) *vpnRoom {
	t.Helper()
	// Not tied to a context: the VPN must close by itself, at the end of its
	// input, to show what it leaves behind.
	cmd := l.Cmd(context.Background(), lab.Box, os.Args[0], "-test.run=^$")
	cmd.Env = append(cmd.Env, directHelperEnv+"="+l.VPN.ClientConfig)
	r := &vpnRoom{cmd: cmd, stderr: &syncBuffer{}}
	cmd.Stderr = r.stderr
	var err error
	if r.in, err = cmd.StdinPipe(); err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	r.out = json.NewDecoder(stdout)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.close(t) })
	return r
}

func (r *vpnRoom) ask(t *testing.T, line string, answer any) {
	t.Helper()
	if _, err := fmt.Fprintln(r.in, line); err != nil {
		t.Fatalf("the VPN room: %v\n%s", err, r.stderr)
	}
	if err := r.out.Decode(answer); err != nil {
		t.Fatalf("the VPN room's answer to %q: %v\n%s", line, err, r.stderr)
	}
}

func (r *vpnRoom) status(t *testing.T) external.Status {
	t.Helper()
	var st external.Status
	r.ask(t, "status", &st)
	return st
}

func (r *vpnRoom) setDirect(t *testing.T, mark uint32, port uint16) {
	t.Helper()
	var errText string
	r.ask(t, fmt.Sprintf("direct %d %d", mark, port), &errText)
	if errText != "" {
		t.Fatalf("SetDirect(0x%x, %d): %s", mark, port, errText)
	}
}

// waitFor polls the status until ok says yes.
func (r *vpnRoom) waitFor(t *testing.T, what string, ok func(external.Status) bool) external.Status {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		st := r.status(t)
		if ok(st) {
			return st
		}
		if time.Now().After(deadline) {
			t.Fatalf("waiting for %s: %+v\n%s", what, st, tail(r.stderr.String(), 30))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// close ends the helper's input: the VPN closes and the process exits.
func (r *vpnRoom) close(t *testing.T) {
	if r.in == nil {
		return
	}
	r.in.Close()
	r.in = nil
	done := make(chan error, 1)
	go func() { done <- r.cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("the VPN room exited: %v\n%s", err, tail(r.stderr.String(), 20))
		}
	case <-time.After(10 * time.Second):
		r.cmd.Process.Kill()
		<-done
		t.Errorf("the VPN room did not close within 10s\n%s", tail(r.stderr.String(), 20))
	}
}

// markedSocket opens a UDP socket in the box's namespace bound to port, with the
// socket mark when mark is not 0.
func markedSocket(t *testing.T, l *lab.Lab, mark, port int) *net.UDPConn {
	t.Helper()
	var c net.PacketConn
	if err := l.Do(lab.Box, func() (err error) {
		lc := net.ListenConfig{Control: markControl(mark)}
		c, err = lc.ListenPacket(context.Background(), "udp4", fmt.Sprintf(":%d", port))
		return err
	}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c.(*net.UDPConn)
}

func markControl(mark int) func(string, string, syscall.RawConn) error {
	return func(_, _ string, rc syscall.RawConn) error {
		var serr error
		if mark != 0 {
			rc.Control(func(fd uintptr) { serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_MARK, mark) })
		}
		return serr
	}
}

// TestDirectPaths runs the box's vpn room alone in the box's namespace (the
// shared box is stopped meanwhile) with a strict reverse-path filter, and checks
// the team mesh's direct paths through the real kernel, DHCP, NAT and VPN: off,
// the tailnet's socket (mark 0x80000, port 41641) reaches nothing and only the
// VPN's flow crosses the WAN; on, it reaches a UDP echo on the internet directly
// (from the home router's address, not the VPN's) and hears back, while the same
// port without the mark, the mark on another port, and TCP stay refused — by
// routing, or by the firewall, which counts them; the main table never has a
// default route; off again, and when the VPN closes, the rule, the route and the
// allowance are gone.
func TestDirectPaths(t *testing.T) {
	e := env(t)
	ctx := context.Background()
	l := e.Lab
	if err := e.Box.Stop(10 * time.Second); err != nil {
		t.Fatalf("stopping the box: %v", err)
	}
	defer func() {
		e.RestartBox(t, "")
		waitVPN(t, e, external.StateUp, 30*time.Second)
	}()
	// Strict reverse-path filtering, as many distributions set it: replies
	// from peers must still come in.
	prev, err := l.Exec(ctx, lab.Box, "sysctl", "-n", "net.ipv4.conf.all.rp_filter")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := l.Exec(ctx, lab.Box, "sysctl", "-q", "-w", "net.ipv4.conf.all.rp_filter=1"); err != nil {
		t.Fatal(err)
	}
	defer l.Exec(ctx, lab.Box, "sysctl", "-q", "-w", "net.ipv4.conf.all.rp_filter="+strings.TrimSpace(prev))

	// A UDP echo on the internet, which notes where datagrams come from.
	var echo net.PacketConn
	if err := l.Do(lab.Internet, func() (err error) {
		echo, err = net.ListenPacket("udp4", lab.Tracker.String()+":3478")
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer echo.Close()
	var seenMu sync.Mutex
	var seen []string
	go func() {
		b := make([]byte, 64)
		for {
			n, from, err := echo.ReadFrom(b)
			if err != nil {
				return
			}
			seenMu.Lock()
			seen = append(seen, from.String())
			seenMu.Unlock()
			echo.WriteTo(b[:n], from)
		}
	}()
	peer := net.UDPAddrFromAddrPort(netip.AddrPortFrom(lab.Tracker, 3478))
	endpoint := net.UDPAddrFromAddrPort(lab.VPNEndpoint)

	room := startVPNRoom(t, l)
	st := room.waitFor(t, "the VPN", func(st external.Status) bool { return st.State == external.StateUp })
	t.Logf("the VPN room is up: WAN %s via %s, firewall: %s", st.WAN.Address, st.WAN.Gateway, st.Firewall.Rules)

	// send sends a datagram from a socket in the box's namespace and says what
	// became of it: the send's error, or whether the echo answered.
	send := func(mark, port int, to *net.UDPAddr) (error, bool) {
		c := markedSocket(t, l, mark, port)
		defer c.Close()
		if _, err := c.WriteTo([]byte("direct?"), to); err != nil {
			return err, false
		}
		c.SetReadDeadline(time.Now().Add(time.Second))
		_, _, err := c.ReadFrom(make([]byte, 64))
		return nil, err == nil
	}
	dialTCP := func(mark, port int, to string) error {
		return l.Do(lab.Box, func() error {
			d := net.Dialer{Timeout: time.Second, Control: markControl(mark), LocalAddr: &net.TCPAddr{Port: port}}
			c, err := d.Dial("tcp4", to)
			if err == nil {
				c.Close()
			}
			return err
		})
	}
	unreachable := func(err error) bool { return errors.Is(err, syscall.ENETUNREACH) }
	refused := func(err error) bool { return errors.Is(err, syscall.EPERM) }
	noDefaultRoute := func() {
		t.Helper()
		out, err := l.Exec(ctx, lab.Box, "ip", "-4", "route", "show", "table", "main")
		if err != nil || strings.Contains(out, "default") {
			t.Errorf("the main table (%v):\n%s", err, out)
		}
	}
	counts := func() lab.IngressCounts {
		t.Helper()
		time.Sleep(200 * time.Millisecond) // let the last packets be counted
		c, err := l.Ingress(ctx, lab.HomeRouter)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}

	// Off: the tailnet's socket has no route; to the endpoint (which has
	// one) the firewall refuses it. Only the VPN's flow crosses the WAN.
	if err := l.ResetIngress(ctx, lab.HomeRouter); err != nil {
		t.Fatal(err)
	}
	dropped := room.status(t).Firewall.Dropped.OutDropped
	if err, _ := send(tailnetMark, tailnetPort, peer); !unreachable(err) {
		t.Errorf("off: the tailnet's socket to the peer: %v", err)
	}
	if err, _ := send(tailnetMark, tailnetPort, endpoint); !refused(err) {
		t.Errorf("off: the tailnet's socket to the VPN endpoint: %v", err)
	}
	if c := counts(); c.Other != 0 {
		t.Errorf("off: packets other than the VPN's crossed the WAN: %+v", c)
	}
	if d := room.status(t).Firewall.Dropped.OutDropped; d <= dropped {
		t.Errorf("off: the firewall counted no drop (%d, then %d)", dropped, d)
	}
	noDefaultRoute()

	// On.
	room.setDirect(t, tailnetMark, tailnetPort)
	st = room.waitFor(t, "the direct paths' route", func(st external.Status) bool {
		return strings.HasPrefix(st.WAN.DirectRoute, "fwmark") && st.Firewall.DirectOpen
	})
	rules, _ := l.Exec(ctx, lab.Box, "ip", "-4", "rule", "show")
	table, _ := l.Exec(ctx, lab.Box, "ip", "-4", "route", "show", "table", "201")
	t.Logf("on: firewall: %s\nroute: %s\nrules:\n%stable 201:\n%s", st.Firewall.Rules, st.WAN.DirectRoute, rules, table)
	if !strings.Contains(st.Firewall.Rules, "meta mark 0x80000 udp sport 41641") || st.Firewall.Direct.Port != tailnetPort {
		t.Errorf("on: the firewall's status: %+v", st.Firewall)
	}
	if !strings.Contains(table, "default via "+lab.Upstream.Addr().String()+" dev "+lab.BoxWANIface) {
		t.Errorf("on: table 201:\n%s", table)
	}
	noDefaultRoute()
	if err := l.ResetIngress(ctx, lab.HomeRouter); err != nil {
		t.Fatal(err)
	}
	dropped = room.status(t).Firewall.Dropped.OutDropped
	if err, echoed := send(tailnetMark, tailnetPort, peer); err != nil || !echoed {
		t.Errorf("on: the tailnet's socket to the peer: sent %v, echoed %v", err, echoed)
	}
	seenMu.Lock()
	t.Logf("the echo heard from %v", seen)
	if len(seen) != 1 || !strings.HasPrefix(seen[0], lab.HomeWAN.Addr().String()+":") {
		t.Errorf("the echo should have heard the box once, from the home router's address %s (not the VPN's): %v", lab.HomeWAN.Addr(), seen)
	}
	seenMu.Unlock()
	// Refused by routing (no route but for the marked UDP socket on the port).
	if err, _ := send(0, tailnetPort, peer); !unreachable(err) {
		t.Errorf("on: the port without the mark: %v", err)
	}
	if err, _ := send(tailnetMark, tailnetPort+1, peer); !unreachable(err) {
		t.Errorf("on: the mark on another port: %v", err)
	}
	if err := dialTCP(tailnetMark, tailnetPort, lab.Tracker.String()+":80"); !unreachable(err) {
		t.Errorf("on: TCP with the mark from the port: %v", err)
	}
	// Refused by the firewall, and counted (to the endpoint, which the main
	// table routes).
	if err, _ := send(0, tailnetPort, endpoint); !refused(err) {
		t.Errorf("on: the port without the mark, to the endpoint: %v", err)
	}
	if err, _ := send(tailnetMark, tailnetPort+1, endpoint); !refused(err) {
		t.Errorf("on: the mark on another port, to the endpoint: %v", err)
	}
	if err := dialTCP(tailnetMark, tailnetPort, lab.VPNEndpoint.Addr().String()+":80"); err == nil {
		t.Error("on: TCP with the mark from the port reached the endpoint's address")
	}
	if c := counts(); c.Other != 1 {
		t.Errorf("on: the WAN should have carried the VPN's flow and one direct datagram: %+v", c)
	}
	if d := room.status(t).Firewall.Dropped.OutDropped; d < dropped+3 {
		t.Errorf("on: the firewall counted %d drops, want at least 3", d-dropped)
	}

	// Off again: all gone.
	room.setDirect(t, 0, 0)
	st = room.waitFor(t, "the direct paths' route to go", func(st external.Status) bool { return st.WAN.DirectRoute == "" })
	if st.Firewall.DirectOpen || strings.Contains(st.Firewall.Rules, "41641") {
		t.Errorf("off again: the firewall's status: %+v", st.Firewall)
	}
	if err, _ := send(tailnetMark, tailnetPort, peer); !unreachable(err) {
		t.Errorf("off again: the tailnet's socket to the peer: %v", err)
	}
	if rules, _ := l.Exec(ctx, lab.Box, "ip", "-4", "rule", "show"); strings.Contains(rules, "lookup 201") {
		t.Errorf("off again: the rule stayed:\n%s", rules)
	}

	// On, then the VPN closes (the daemon stops): what stays lets out only
	// the VPN's flow, and routes nothing but the endpoint.
	room.setDirect(t, tailnetMark, tailnetPort)
	room.waitFor(t, "the direct paths' route", func(st external.Status) bool { return strings.HasPrefix(st.WAN.DirectRoute, "fwmark") })
	room.close(t)
	rules, _ = l.Exec(ctx, lab.Box, "ip", "-4", "rule", "show")
	table, _ = l.Exec(ctx, lab.Box, "ip", "-4", "route", "show", "table", "all")
	fw, _ := l.Exec(ctx, lab.Box, "nft", "list", "table", "inet", "redoubt")
	if strings.Contains(rules, "lookup 201") || strings.Contains(table, "table 201") || strings.Contains(fw, "41641") || !strings.Contains(fw, lab.VPNEndpoint.Addr().String()) {
		t.Errorf("after the VPN closed:\nrules:\n%sroutes:\n%sfirewall:\n%s", rules, table, fw)
	}
	noDefaultRoute()
}
