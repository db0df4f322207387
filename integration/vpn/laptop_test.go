package vpn_test

import (
	"context"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/redoubt/redoubt/lab"
)

// TestLaptopNeverEntersTheTunnel: with the VPN up, the laptop tries every way out
// it has. The box stops each attempt (the leak log has them); none crosses the
// box's WAN, none comes out of the tunnel at the VPN server, none reaches the
// internet.
func TestLaptopNeverEntersTheTunnel(t *testing.T) {
	e := env(t)
	ctx := context.Background()
	if err := e.Lab.LaptopStatic(ctx); err != nil {
		t.Fatal(err)
	}
	for _, node := range []string{lab.HomeRouter, lab.Internet} {
		if err := e.Lab.ResetIngress(ctx, node); err != nil {
			t.Fatal(err)
		}
	}
	if err := e.Lab.ResetTunnelCounts(ctx); err != nil {
		t.Fatal(err)
	}
	hitsBefore, _ := e.Lab.InternetHits()
	tracker := lab.Tracker.String()
	for _, argv := range [][]string{
		{"curl", "-sS", "--max-time", "3", "-H", "Host: laptop-leak.tracker.example", "http://" + tracker + "/"},
		{"curl", "-sS", "--max-time", "3", "--resolve", lab.TrackerName + ":443:" + tracker, "https://" + lab.TrackerName + "/"},
		{"dig", "+tries=1", "+time=1", "@" + lab.Resolver.String(), "laptop-query.example", "A"},
		{"dig", "+tcp", "+tries=1", "+time=2", "@" + lab.Resolver.String(), "laptop-tcp-query.example", "A"},
		{"ping", "-c", "2", "-W", "1", tracker},
		{"sh", "-c", "echo hello | ncat -u -w 1 " + tracker + " 9999"},
		// The VPN server itself, and the tunnel's far end.
		{"sh", "-c", "echo hello | ncat -u -w 1 " + lab.VPNEndpoint.Addr().String() + " 51820"},
		{"ping", "-c", "1", "-W", "1", lab.VPNTunnelServer.Addr().String()},
	} {
		out, err := e.Lab.Exec(ctx, lab.Laptop, argv...)
		if err == nil && (argv[0] == "curl" || argv[0] == "ping") {
			t.Errorf("the laptop's %s succeeded:\n%s", strings.Join(argv, " "), out)
		}
	}
	// Meanwhile the box's own traffic flows, so the counters below are seen to
	// count.
	if res, err := fetch(e, "http://"+tracker+"/box-during-laptop-test", 10*time.Second); err != nil || res.Status != 200 {
		t.Errorf("the box's own fetch: %+v %v", res, err)
	}
	time.Sleep(500 * time.Millisecond)

	// The box saw and stopped them.
	leaks, err := e.Box.API.Leaks(ctx)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, en := range leaks.Entries {
		seen[en.Name] = true
	}
	for _, name := range []string{"laptop-leak.tracker.example", lab.TrackerName, "laptop-query.example"} {
		if !seen[name] {
			t.Errorf("the leak log lacks the laptop's attempt at %s", name)
		}
	}

	// Nothing of the laptop's on the box's WAN: only the VPN's flow (and ARP).
	hr, err := e.Lab.Ingress(ctx, lab.HomeRouter)
	if err != nil {
		t.Fatal(err)
	}
	if hr.FromLAN != 0 || hr.FromLaptopMAC != 0 || hr.Other != 0 {
		t.Errorf("the box's WAN carried more than the VPN's flow: %+v", hr)
	}
	// Nothing but the box's own address came out of the tunnel at the server.
	tc, err := e.Lab.TunnelCounts(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if tc.FromLAN != 0 || tc.Other != 0 {
		t.Errorf("the tunnel carried packets not from the box: %+v", tc)
	}
	if tc.FromBox == 0 || hr.VPN == 0 {
		t.Errorf("the counters did not see the box's own fetch: home router %+v, tunnel %+v", hr, tc)
	}
	t.Logf("home router saw %+v; the tunnel carried %+v", hr, tc)
	// And the internet saw nothing of the laptop's: no names it asked for, and
	// nothing from the home router's own address (outside the VPN).
	hits, _ := e.Lab.InternetHits()
	for _, h := range hits[len(hitsBefore):] {
		host, _, _ := net.SplitHostPort(h.Remote)
		if strings.Contains(h.Name, "laptop") || h.Proto == "https" || host != lab.VPNEndpoint.Addr().String() {
			t.Errorf("the internet was reached: %+v", h)
		}
	}
}
