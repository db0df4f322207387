// Package dhcp_test runs the box in the lab and checks, with real DHCP clients in
// the laptop's namespace (ISC dhclient, busybox udhcpc) and a load generator,
// that the laptop gets its address, router, DNS server and captive portal from the
// box, renews, releases and gets the same address back, across box restarts and
// a kill -9 in the middle of heavy lease traffic.
package dhcp_test

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/redoubt/redoubt/dhcp"
	"github.com/redoubt/redoubt/lab"
	"github.com/redoubt/redoubt/lab/labtest"
	"github.com/redoubt/redoubt/ui/localapi"
)

func TestMain(m *testing.M) { labtest.Main(m) }

// boxDHCP is the [dhcp] section the tests run the box with: a short lease, so
// that dhclient renews on its own within a test.
const boxDHCP = `
[dhcp]
lease_time = "12s"
`

const captiveURL = "http://10.201.86.1/captive-portal/api"

// env returns the shared lab with the box running boxDHCP+extra (restarted only
// when it runs something else) and the laptop unconfigured; cleanup stops the
// test's DHCP clients and unconfigures the laptop again.
func env(t *testing.T, extra string) *labtest.Env {
	t.Helper()
	labtest.Require(t)
	if err := lab.RequireDHCPClients(); err != nil {
		t.Skipf("lab test skipped: %v", err)
	}
	e := labtest.Shared(t)
	want := e.Lab.BoxConfig(boxDHCP + extra)
	if e.Box == nil {
		e.RestartBox(t, want)
	} else if have, _ := os.ReadFile(e.Box.Config); string(have) != want {
		e.RestartBox(t, want)
	}
	ctx := context.Background()
	if err := e.Lab.LaptopUnconfigure(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := e.Lab.LaptopUnconfigure(context.Background()); err != nil {
			t.Error(err)
		}
	})
	return e
}

func ctxFor(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// start runs a DHCP client of kind on the laptop, stopped at cleanup.
func start(t *testing.T, e *labtest.Env, kind string, opts lab.DHCPOptions) *lab.DHCPClient {
	t.Helper()
	var c *lab.DHCPClient
	var err error
	if kind == lab.UDHCPC {
		c, err = e.Lab.StartUDHCPC(context.Background(), opts)
	} else {
		c, err = e.Lab.StartDHClient(context.Background(), opts)
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		c.Stop()
		t.Logf("%s log:\n%s", c.Kind, strings.TrimSpace(c.Log()))
	})
	return c
}

func devices(t *testing.T, e *labtest.Env) localapi.Devices {
	t.Helper()
	d, err := e.Box.API.Devices(ctxFor(t, 5*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func leaseOf(d localapi.Devices, mac string) (dhcp.Lease, bool) {
	for _, l := range d.Leases {
		if l.MAC == mac {
			return l, true
		}
	}
	return dhcp.Lease{}, false
}

// checkLease checks what a bound event gave the laptop, and that the laptop's
// kernel was configured with it.
func checkLease(t *testing.T, e *labtest.Env, ev lab.DHCPEvent, captive string) {
	t.Helper()
	box := lab.BoxLAN
	if !ev.Addr.IsValid() || ev.Addr.Bits() != 24 || !lab.LANPrefix.Contains(ev.Addr.Addr()) || ev.Addr.Addr() == box {
		t.Errorf("address %v: want a device address in %v", ev.Addr, lab.LANPrefix)
	}
	if len(ev.Router) != 1 || ev.Router[0] != box {
		t.Errorf("router %v, want %v", ev.Router, box)
	}
	if len(ev.DNS) != 1 || ev.DNS[0] != box {
		t.Errorf("DNS %v, want %v", ev.DNS, box)
	}
	if ev.Domain != "home.arpa" || ev.Search != "home.arpa" {
		t.Errorf("domain %q search %q, want home.arpa", ev.Domain, ev.Search)
	}
	if ev.MTU != 1500 || ev.Lease != 12*time.Second || ev.Server != box {
		t.Errorf("mtu %d lease %v server %v, want 1500, 12s, %v", ev.MTU, ev.Lease, ev.Server, box)
	}
	if ev.Captive != captive {
		t.Errorf("captive portal %q, want %q", ev.Captive, captive)
	}
	ctx := ctxFor(t, 10*time.Second)
	if a, err := e.Lab.LaptopAddr(ctx); err != nil || a != ev.Addr {
		t.Errorf("laptop's interface holds %v (%v), want %v", a, err, ev.Addr)
	}
	if r, err := e.Lab.LaptopDefaultRoute(ctx); err != nil || r != box {
		t.Errorf("laptop's default route via %v (%v), want %v", r, err, box)
	}
	if rc, err := e.Lab.LaptopResolvConf(); err != nil || !strings.Contains(rc, "nameserver "+box.String()) {
		t.Errorf("laptop's resolv.conf (%v):\n%s", err, rc)
	}
}

// TestUDHCPC: busybox udhcpc obtains a lease, renews, releases and gets the same
// address back; the box lists it, with the name it gave, and the name resolves.
func TestUDHCPC(t *testing.T) {
	e := env(t, "")
	ctx := ctxFor(t, 60*time.Second)
	c := start(t, e, lab.UDHCPC, lab.DHCPOptions{Hostname: "Laptop-U"})
	ev, n, err := c.WaitLease(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("udhcpc bound %v from %v", ev.Addr, ev.Server)
	checkLease(t, e, ev, captiveURL)
	addr := ev.Addr

	l, ok := leaseOf(devices(t, e), lab.LaptopMAC)
	if !ok || l.Address != addr.Addr() || l.Hostname != "laptop-u" || l.State != "bound" ||
		!strings.HasPrefix(l.VendorClass, "udhcp") || l.ClientID != "01"+strings.ReplaceAll(lab.LaptopMAC, ":", "") {
		t.Errorf("the box lists the laptop as %+v", l)
	}
	if out, err := e.Lab.Exec(ctx, lab.Laptop, "dig", "+short", "+time=2", "+tries=2", "@"+lab.BoxLAN.String(), "laptop-u.home.arpa"); err != nil || strings.TrimSpace(out) != addr.Addr().String() {
		t.Errorf("laptop-u.home.arpa resolves to %q (%v), want %v", strings.TrimSpace(out), err, addr.Addr())
	}

	// Renew: a unicast REQUEST from the bound address.
	if err := c.Renew(); err != nil {
		t.Fatal(err)
	}
	ev, n, err = c.WaitEvent(ctx, n, func(e lab.DHCPEvent) bool { return e.Reason == "renew" })
	if err != nil {
		t.Fatal(err)
	}
	if ev.Addr != addr {
		t.Errorf("renewed %v, want %v", ev.Addr, addr)
	}

	// Release: the address is given back, the interface deconfigured.
	if err := c.Release(ctx); err != nil {
		t.Fatal(err)
	}
	if _, n, err = c.WaitEvent(ctx, n, func(e lab.DHCPEvent) bool { return e.Reason == "deconfig" }); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the box to record the release", func() bool {
		l, ok := leaseOf(devices(t, e), lab.LaptopMAC)
		return ok && l.State == "expired"
	})

	// And again: the same address.
	if err := c.Renew(); err != nil {
		t.Fatal(err)
	}
	ev, _, err = c.WaitLease(ctx, n)
	if err != nil {
		t.Fatal(err)
	}
	if ev.Addr != addr {
		t.Errorf("after release got %v, want %v again", ev.Addr, addr)
	}
}

// TestDHClient: ISC dhclient obtains a lease, renews by itself at T1, releases,
// and a new dhclient (with no lease file) gets the same address back.
func TestDHClient(t *testing.T) {
	e := env(t, "")
	ctx := ctxFor(t, 60*time.Second)
	c := start(t, e, lab.DHClient, lab.DHCPOptions{Hostname: "laptop-d"})
	ev, n, err := c.WaitLease(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("dhclient %s %v", ev.Reason, ev.Addr)
	checkLease(t, e, ev, captiveURL)
	addr := ev.Addr

	// dhclient renews at T1 (6s with a 12s lease).
	ev, n, err = c.WaitEvent(ctx, n, func(e lab.DHCPEvent) bool { return e.Reason == "RENEW" })
	if err != nil {
		t.Fatal(err)
	}
	if ev.Addr != addr {
		t.Errorf("renewed %v, want %v", ev.Addr, addr)
	}
	if l, ok := leaseOf(devices(t, e), lab.LaptopMAC); !ok || l.Hostname != "laptop-d" || l.State != "bound" {
		t.Errorf("the box lists the laptop as %+v", l)
	}

	if err := c.Release(ctx); err != nil {
		t.Fatal(err)
	}
	if a, _ := e.Lab.LaptopAddr(ctx); a.IsValid() {
		t.Errorf("the laptop still holds %v after releasing", a)
	}
	waitFor(t, "the box to record the release", func() bool {
		l, ok := leaseOf(devices(t, e), lab.LaptopMAC)
		return ok && l.State == "expired"
	})

	// A fresh dhclient, which remembers nothing: DISCOVER, and the box offers
	// the same address.
	c2 := start(t, e, lab.DHClient, lab.DHCPOptions{Hostname: "laptop-d"})
	ev, _, err = c2.WaitLease(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	if ev.Reason != "BOUND" || ev.Addr != addr {
		t.Errorf("fresh dhclient: %s %v, want BOUND %v", ev.Reason, ev.Addr, addr)
	}
}

// TestBroadcastReplies: a client that asks for broadcast replies gets them.
func TestBroadcastReplies(t *testing.T) {
	e := env(t, "")
	c := start(t, e, lab.UDHCPC, lab.DHCPOptions{Broadcast: true})
	ev, _, err := c.WaitLease(ctxFor(t, 30*time.Second), 0)
	if err != nil {
		t.Fatal(err)
	}
	checkLease(t, e, ev, captiveURL)
}

// TestLeaseSurvivesRestart: after the box restarts, it still lists the lease, and
// a client that remembers nothing gets the same address.
func TestLeaseSurvivesRestart(t *testing.T) {
	e := env(t, "")
	ctx := ctxFor(t, 60*time.Second)
	c := start(t, e, lab.UDHCPC, lab.DHCPOptions{Hostname: "survivor"})
	ev, _, err := c.WaitLease(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	c.Stop() // no release: the laptop sleeps
	e.RestartBox(t, e.Lab.BoxConfig(boxDHCP))
	l, ok := leaseOf(devices(t, e), lab.LaptopMAC)
	if !ok || l.Address != ev.Addr.Addr() || l.Hostname != "survivor" {
		t.Fatalf("after restart the box lists %+v, want %v", l, ev.Addr)
	}
	c2 := start(t, e, lab.UDHCPC, lab.DHCPOptions{})
	ev2, _, err := c2.WaitLease(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	if ev2.Addr != ev.Addr {
		t.Errorf("after restart got %v, want %v", ev2.Addr, ev.Addr)
	}
}

// TestCaptivePortalOption: option 114 points at the setup page until setup is
// done, and is gone from the next renewal after (config reload, no restart).
func TestCaptivePortalOption(t *testing.T) {
	e := env(t, "")
	ctx := ctxFor(t, 60*time.Second)
	c := start(t, e, lab.UDHCPC, lab.DHCPOptions{})
	ev, n, err := c.WaitLease(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	if ev.Captive != captiveURL {
		t.Fatalf("before setup: option 114 %q, want %q", ev.Captive, captiveURL)
	}
	reload := func(extra string) {
		if err := os.WriteFile(e.Box.Config, []byte(e.Lab.BoxConfig(boxDHCP+extra)), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := e.Box.Signal(syscall.SIGHUP); err != nil {
			t.Fatal(err)
		}
	}
	reload("\n[setup]\ndone = true\n")
	t.Cleanup(func() { reload("") })
	deadline := time.Now().Add(10 * time.Second)
	for {
		if err := c.Renew(); err != nil {
			t.Fatal(err)
		}
		ev, n, err = c.WaitLease(ctx, n)
		if err != nil {
			t.Fatal(err)
		}
		if ev.Captive == "" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after setup: option 114 still %q", ev.Captive)
		}
		time.Sleep(200 * time.Millisecond)
	}
	checkLease(t, e, ev, "")
}

// TestDevicesCommand: `redoubt devices` shows the laptop, as a table and as JSON.
func TestDevicesCommand(t *testing.T) {
	e := env(t, "")
	ctx := ctxFor(t, 30*time.Second)
	c := start(t, e, lab.UDHCPC, lab.DHCPOptions{Hostname: "cli-laptop"})
	ev, _, err := c.WaitLease(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	bin, err := labtest.Binary()
	if err != nil {
		t.Fatal(err)
	}
	out, err := e.Lab.Exec(ctx, lab.Box, bin, "devices", "--socket", e.Box.Socket)
	t.Logf("redoubt devices:\n%s", out)
	if err != nil || !strings.Contains(out, "cli-laptop") || !strings.Contains(out, ev.Addr.Addr().String()) || !strings.Contains(out, "HOSTNAME") {
		t.Errorf("redoubt devices (%v) does not show the laptop", err)
	}
	out, err = e.Lab.Exec(ctx, lab.Box, bin, "devices", "--json", "--socket", e.Box.Socket)
	var d localapi.Devices
	if err != nil || json.Unmarshal([]byte(out), &d) != nil {
		t.Fatalf("redoubt devices --json (%v):\n%s", err, out)
	}
	if l, ok := leaseOf(d, lab.LaptopMAC); !ok || l.Hostname != "cli-laptop" || d.Counters.Acks == 0 {
		t.Errorf("JSON lists %+v, counters %+v", l, d.Counters)
	}
	if _, err := os.Stat(filepath.Join(e.Lab.Dir, "box-state", "dhcp-leases.db")); err != nil {
		t.Errorf("lease file: %v", err)
	}
}

func waitFor(t *testing.T, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
