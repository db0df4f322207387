// Package vpn_test runs the box in the lab with its external VPN: the lab's VPN
// provider (Debian's wireguard-go and wireguard-tools in the "vpn" namespace, NAT
// to the internet) behind a home router (NAT, DHCP). With a capture on the box's
// WAN cable, in the home router, it checks that the box's own traffic leaves only
// as the VPN's encrypted flow, that nothing leaves while the VPN is down, that the
// tunnel comes back by itself, and that the laptop's packets never enter the
// tunnel.
package vpn_test

import (
	"context"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/redoubt/redoubt/lab"
	"github.com/redoubt/redoubt/lab/labtest"
	"github.com/redoubt/redoubt/ui/localapi"
	"github.com/redoubt/redoubt/vpn/external"
)

func TestMain(m *testing.M) {
	if benchHelper() || directHelper() {
		return
	}
	labtest.Main(m)
}

// env is the package's lab, with the box's VPN up.
func env(t testing.TB) *labtest.Env {
	t.Helper()
	e := labtest.SharedVPN(t)
	waitVPN(t, e, external.StateUp, 30*time.Second)
	return e
}

func waitVPN(t testing.TB, e *labtest.Env, want string, within time.Duration) external.Status {
	t.Helper()
	deadline := time.Now().Add(within)
	var st external.Status
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		var err error
		st, err = e.Box.API.VPNStatus(ctx)
		cancel()
		if err == nil && st.State == want {
			return st
		}
		if time.Now().After(deadline) {
			t.Fatalf("the box's VPN is %q (%s), not %q, after %v (err %v)\n%s", st.State, st.Reason, want, within, err, tail(e.Box.Output(), 30))
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// fetch asks the box to fetch url through its egress dialer (the tunnel).
func fetch(e *labtest.Env, url string, timeout time.Duration) (external.FetchResult, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout+5*time.Second)
	defer cancel()
	return e.Box.API.FetchVPN(ctx, localapi.FetchRequest{URL: url, Keep: 512, TimeoutSeconds: int(timeout / time.Second)})
}

// startCapture records the box's WAN cable from the home router's side.
func startCapture(t *testing.T, e *labtest.Env) *lab.WANCapture {
	t.Helper()
	c, err := e.Lab.CaptureWAN()
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// stopCapture ends c and checks the WAN carried only the VPN's flow.
func stopCapture(t *testing.T, c *lab.WANCapture) lab.WANVerdict {
	t.Helper()
	v, err := c.Stop()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("WAN capture: %v", v)
	if v.OtherCount > 0 {
		t.Errorf("the box's WAN carried packets that are not the VPN's flow:\n%s", strings.Join(v.Other, "\n"))
	}
	return v
}

// TestOnlyTheVPNFlowOnTheWAN: the box fetches from the internet through its
// egress dialer; the WAN cable carries only its encrypted flow to the endpoint,
// and the internet sees the request come from the VPN's exit.
func TestOnlyTheVPNFlowOnTheWAN(t *testing.T) {
	e := env(t)
	hitsBefore, _ := e.Lab.InternetHits()
	c := startCapture(t, e)
	// By name: the name is resolved through the tunnel too.
	res, err := fetch(e, "http://"+lab.TrackerName+"/box-fetch", 20*time.Second)
	if err != nil {
		t.Fatalf("the box's fetch through the VPN: %v", err)
	}
	if res.Status != 200 || !strings.Contains(res.Head, "you reached the internet from "+lab.VPNEndpoint.Addr().String()) {
		t.Errorf("the fetch: %+v", res)
	}
	v := stopCapture(t, c)
	if v.VPNOut == 0 || v.VPNIn == 0 {
		t.Errorf("the capture shows no VPN flow both ways: %+v", v)
	}

	// The internet saw the box's lookup and request from the VPN's exit only.
	hits, _ := e.Lab.InternetHits()
	var sawDNS, sawHTTP bool
	for _, h := range hits[len(hitsBefore):] {
		host, _, _ := net.SplitHostPort(h.Remote)
		if host != lab.VPNEndpoint.Addr().String() {
			t.Errorf("the internet was reached from %s, not the VPN's exit: %+v", host, h)
		}
		sawDNS = sawDNS || (strings.HasPrefix(h.Proto, "dns") && strings.TrimSuffix(h.Name, ".") == lab.TrackerName)
		sawHTTP = sawHTTP || (h.Proto == "http" && h.Name == lab.TrackerName)
	}
	if !sawDNS || !sawHTTP {
		t.Errorf("the internet did not see the box's lookup (%v) and request (%v) through the VPN: %+v", sawDNS, sawHTTP, hits[len(hitsBefore):])
	}

	ctx := context.Background()
	st, err := e.Box.API.VPNStatus(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("status: %+v", st)
	if st.HandshakeAge < 0 || st.HandshakeAge > 180 || st.RxBytes == 0 || st.Endpoint != lab.VPNEndpoint.String() {
		t.Errorf("health: handshake %v s ago, %d bytes in, endpoint %s", st.HandshakeAge, st.RxBytes, st.Endpoint)
	}
	if st.WAN.Address != lab.BoxWAN || st.WAN.Addressing != "dhcp" || st.WAN.Gateway != lab.Upstream.Addr() {
		t.Errorf("the WAN (from the home router's DHCP server): %+v", st.WAN)
	}
	if !st.Firewall.Installed {
		t.Errorf("the firewall: %+v", st.Firewall)
	}
	deadline := time.Now().Add(10 * time.Second)
	for st.Exit == "" && time.Now().Before(deadline) {
		time.Sleep(200 * time.Millisecond)
		st, _ = e.Box.API.VPNStatus(ctx)
	}
	if st.Exit != lab.VPNEndpoint.Addr().String() {
		t.Errorf("exit address %q (%s), want the VPN's %s", st.Exit, st.ExitError, lab.VPNEndpoint.Addr())
	}
	// The VPN server agrees.
	show, err := e.Lab.VPN.Show(ctx)
	if err != nil || !strings.Contains(show, "latest handshake") {
		t.Errorf("wg show on the server: %v\n%s", err, show)
	}
}

// TestKernelCannotBypass: from the box's own namespace, a program using kernel
// sockets reaches nothing: no default route, and the firewall refuses.
func TestKernelCannotBypass(t *testing.T) {
	e := env(t)
	ctx := context.Background()
	routes, err := e.Lab.Exec(ctx, lab.Box, "ip", "-4", "route", "show")
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("the box's routes:\n%s", routes)
	if strings.Contains(routes, "default") {
		t.Errorf("the box has a default route:\n%s", routes)
	}
	if !strings.Contains(routes, lab.VPNEndpoint.Addr().String()+" via "+lab.Upstream.Addr().String()) {
		t.Errorf("no route to the VPN endpoint via the home router:\n%s", routes)
	}
	table, err := e.Lab.Exec(ctx, lab.Box, "nft", "list", "table", "inet", "redoubt")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(table, "policy drop") || !strings.Contains(table, lab.VPNEndpoint.Addr().String()) {
		t.Errorf("the firewall:\n%s", table)
	}
	if err := e.Lab.ResetIngress(ctx, lab.HomeRouter); err != nil {
		t.Fatal(err)
	}
	// A route the way a careless program's admin might add it: still nothing.
	e.Lab.Exec(ctx, lab.Box, "ip", "route", "add", lab.Tracker.String()+"/32", "via", lab.Upstream.Addr().String())
	defer e.Lab.Exec(ctx, lab.Box, "ip", "route", "del", lab.Tracker.String()+"/32")
	for _, argv := range [][]string{
		{"curl", "-sS", "--max-time", "3", "http://" + lab.Tracker.String() + "/bypass"},
		{"ping", "-c", "1", "-W", "1", lab.Tracker.String()},
		{"dig", "+tries=1", "+time=1", "@" + lab.Resolver.String(), "bypass.example"},
		// Even to the endpoint, without the VPN's socket mark.
		{"sh", "-c", "echo x | ncat -u -w 1 " + lab.VPNEndpoint.Addr().String() + " " + fmt.Sprint(lab.VPNEndpoint.Port())},
	} {
		out, err := e.Lab.Exec(ctx, lab.Box, argv...)
		if err == nil && argv[0] != "sh" {
			t.Errorf("%s from the box's namespace succeeded:\n%s", argv[0], out)
		}
		t.Logf("box$ %s: %v", strings.Join(argv, " "), strings.TrimSpace(out))
	}
	time.Sleep(300 * time.Millisecond)
	c, err := e.Lab.Ingress(ctx, lab.HomeRouter)
	if err != nil {
		t.Fatal(err)
	}
	if c.Other != 0 {
		t.Errorf("packets other than the VPN's left the box: %+v", c)
	}
	st, _ := e.Box.API.VPNStatus(ctx)
	if st.Firewall.Dropped.OutDropped == 0 {
		t.Errorf("the firewall counted no drops: %+v", st.Firewall)
	}
}

// TestFailClosedAndReconnect: the VPN server goes away; the box's fetches fail,
// only attempts to the endpoint cross the WAN, the status says down and why. The
// server comes back: so does the tunnel, without touching the box.
func TestFailClosedAndReconnect(t *testing.T) {
	e := env(t)
	ctx := context.Background()
	pid := e.Box.Pid()
	before, _ := e.Box.API.VPNStatus(ctx)
	c := startCapture(t, e)
	if err := e.Lab.VPN.Stop(); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	st := waitVPN(t, e, external.StateDown, 40*time.Second)
	t.Logf("down after %v: %s", time.Since(start).Round(100*time.Millisecond), st.Reason)
	if st.Reason == "" {
		t.Error("down without a reason")
	}
	hitsBefore, _ := e.Lab.InternetHits()
	if res, err := fetch(e, "http://"+lab.Tracker.String()+"/while-down", 5*time.Second); err == nil {
		t.Errorf("a fetch succeeded with the VPN down: %+v", res)
	} else {
		t.Logf("the fetch while down: %v", err)
	}
	v := stopCapture(t, c)
	if v.VPNOut == 0 {
		t.Errorf("the box did not try to reach the endpoint while down: %+v", v)
	}
	if v.VPNIn != 0 {
		t.Errorf("the endpoint answered while stopped? %+v", v)
	}
	hits, _ := e.Lab.InternetHits()
	if len(hits) != len(hitsBefore) {
		t.Errorf("the internet was reached while the VPN was down: %+v", hits[len(hitsBefore):])
	}

	// Back.
	c = startCapture(t, e)
	if err := e.Lab.VPN.Start(ctx); err != nil {
		t.Fatal(err)
	}
	start = time.Now()
	st = waitVPN(t, e, external.StateUp, 60*time.Second)
	t.Logf("up again %v after the server returned", time.Since(start).Round(100*time.Millisecond))
	if res, err := fetch(e, "http://"+lab.Tracker.String()+"/after-return", 20*time.Second); err != nil || res.Status != 200 {
		t.Errorf("fetch after the server returned: %+v %v", res, err)
	}
	stopCapture(t, c)
	if e.Box.Pid() != pid {
		t.Error("the box was restarted")
	}
	if done, _ := e.Box.Exited(); done {
		t.Fatal("the box exited")
	}
	if st.Reconnects <= before.Reconnects {
		t.Errorf("reconnects %d → %d", before.Reconnects, st.Reconnects)
	}
}

// TestWANReturns: the box's WAN cable goes dead (the home router's port is shut)
// and comes back: the status names the WAN as the reason, the box asks for its
// lease again, and the tunnel comes back by itself.
func TestWANReturns(t *testing.T) {
	e := env(t)
	ctx := context.Background()
	pid := e.Box.Pid()
	if _, err := e.Lab.Exec(ctx, lab.HomeRouter, "ip", "link", "set", lab.HomeLANIface, "down"); err != nil {
		t.Fatal(err)
	}
	restored := false
	defer func() {
		if !restored {
			e.Lab.Exec(ctx, lab.HomeRouter, "ip", "link", "set", lab.HomeLANIface, "up")
		}
	}()
	st := waitVPN(t, e, external.StateDown, 20*time.Second)
	if !strings.Contains(st.Reason, "no link") || st.WAN.Carrier {
		t.Errorf("down with the cable out: %s (WAN %+v)", st.Reason, st.WAN)
	}
	if _, err := e.Lab.Exec(ctx, lab.HomeRouter, "ip", "link", "set", lab.HomeLANIface, "up"); err != nil {
		t.Fatal(err)
	}
	restored = true
	start := time.Now()
	st = waitVPN(t, e, external.StateUp, 40*time.Second)
	t.Logf("up again %v after the cable came back", time.Since(start).Round(100*time.Millisecond))
	if st.WAN.Address != lab.BoxWAN || !st.WAN.Carrier {
		t.Errorf("the WAN after the cable came back: %+v", st.WAN)
	}
	if res, err := fetch(e, "http://"+lab.Tracker.String()+"/after-cable", 10*time.Second); err != nil || res.Status != 200 {
		t.Errorf("fetch after the cable came back: %+v %v", res, err)
	}
	if e.Box.Pid() != pid {
		t.Error("the box was restarted")
	}
}
