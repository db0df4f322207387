// Package dns_test runs the box in the lab and checks, with real programs in the
// laptop's namespace — ISC dhclient for the lease, dig (UDP, TCP, +dnssec,
// +bufsize, ANY), host and getent for lookups, dnsperf for a flood — that the box is
// the laptop's resolver: its names and the laptop's own resolve, every other name
// gets NXDOMAIN and appears in the query log, captive probes lead to the box only
// while setup is unfinished, and no DNS packet ever reaches the internet.
package dns_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/redoubt/redoubt/dns/querylog"
	"github.com/redoubt/redoubt/lab"
	"github.com/redoubt/redoubt/lab/labtest"
	"github.com/redoubt/redoubt/ui/localapi"
)

func TestMain(m *testing.M) { labtest.Main(m) }

// laptopName is what the laptop calls itself in its DHCP request.
const laptopName = "jlaptop"

var (
	leaseOnce sync.Once
	leased    netip.Addr // the laptop's address from its lease
	leaseErr  error
)

// env returns the shared lab with the box running and the laptop configured by its
// DHCP lease (ISC dhclient, sending its hostname), once for the package: its
// address, router and resolver — resolv.conf in the laptop's namespace — all come
// from the box.
func env(t *testing.T) *labtest.Env {
	t.Helper()
	labtest.Require(t)
	if err := lab.RequireDHCPClients(); err != nil {
		t.Skipf("lab test skipped: %v", err)
	}
	e := labtest.Shared(t)
	leaseOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if leaseErr = e.Lab.LaptopUnconfigure(ctx); leaseErr != nil {
			return
		}
		// The lab wrote a resolv.conf naming no server: until the lease, the
		// laptop has no resolver at all.
		var c *lab.DHCPClient
		if c, leaseErr = e.Lab.StartDHClient(ctx, lab.DHCPOptions{Hostname: laptopName}); leaseErr != nil {
			return
		}
		var ev lab.DHCPEvent
		if ev, _, leaseErr = c.WaitLease(ctx, 0); leaseErr != nil {
			leaseErr = fmt.Errorf("%w\n%s", leaseErr, c.Log())
			return
		}
		leased = ev.Addr.Addr()
		if len(ev.DNS) != 1 || ev.DNS[0] != lab.BoxLAN {
			leaseErr = fmt.Errorf("the lease names DNS servers %v, want only the box (%v)", ev.DNS, lab.BoxLAN)
			return
		}
		// The client's script records the event, then writes resolv.conf.
		for {
			conf, _ := e.Lab.LaptopResolvConf()
			if strings.Contains(conf, "nameserver") {
				return
			}
			if ctx.Err() != nil {
				leaseErr = fmt.Errorf("the DHCP client wrote no resolv.conf:\n%s", c.Log())
				return
			}
			time.Sleep(20 * time.Millisecond)
		}
	})
	if leaseErr != nil {
		t.Fatalf("getting the laptop a lease: %v", leaseErr)
	}
	return e
}

// laptop runs argv in the laptop's namespace.
func laptop(t *testing.T, e *labtest.Env, argv ...string) (string, error) {
	t.Helper()
	out, err := e.Lab.Exec(context.Background(), lab.Laptop, argv...)
	t.Logf("laptop$ %s\n%s", strings.Join(argv, " "), strings.TrimSpace(out))
	return out, err
}

func mustLaptop(t *testing.T, e *labtest.Env, argv ...string) string {
	t.Helper()
	out, err := laptop(t, e, argv...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// dig runs dig with the laptop's own resolver (resolv.conf, from the lease).
func dig(t *testing.T, e *labtest.Env, args ...string) string {
	t.Helper()
	return mustLaptop(t, e, append([]string{"dig", "+tries=2", "+time=2"}, args...)...)
}

var (
	statusRE = regexp.MustCompile(`status: ([A-Z]+)`)
	flagsRE  = regexp.MustCompile(`;; flags: ([a-z ]+);`)
	serverRE = regexp.MustCompile(`;; SERVER: ([0-9.]+)#53\((?:[0-9.]+)\) \((UDP|TCP)\)`)
)

func digStatus(t *testing.T, out string) (status, flags, server, proto string) {
	t.Helper()
	if m := statusRE.FindStringSubmatch(out); m != nil {
		status = m[1]
	}
	if m := flagsRE.FindStringSubmatch(out); m != nil {
		flags = " " + m[1] + " "
	}
	if m := serverRE.FindStringSubmatch(out); m != nil {
		server, proto = m[1], m[2]
	}
	return
}

// answers returns the answer section's records as "name type data".
func answers(out string) []string {
	var rrs []string
	in := false
	for _, line := range strings.Split(out, "\n") {
		switch {
		case strings.HasPrefix(line, ";; ANSWER SECTION:"):
			in = true
		case in && (line == "" || strings.HasPrefix(line, ";;")):
			in = false
		case in:
			f := strings.Fields(line)
			if len(f) >= 5 {
				rrs = append(rrs, strings.Join([]string{f[0], f[3], strings.Join(f[4:], " ")}, " "))
			}
		}
	}
	return rrs
}

func TestLeaseMakesTheBoxTheResolver(t *testing.T) {
	e := env(t)
	conf, err := e.Lab.LaptopResolvConf()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("laptop's resolv.conf:\n%s", conf)
	if !strings.Contains(conf, "nameserver "+lab.BoxLAN.String()) || strings.Count(conf, "nameserver") != 1 {
		t.Errorf("resolv.conf does not name the box, and only the box:\n%s", conf)
	}
	if !strings.Contains(conf, "search home.arpa") {
		t.Errorf("resolv.conf has no home.arpa search domain:\n%s", conf)
	}
}

func TestDig(t *testing.T) {
	e := env(t)
	box := lab.BoxLAN.String()
	for _, tc := range []struct {
		args    []string
		status  string
		proto   string
		flags   []string // flags that must be set
		noflags []string // flags that must not
		answer  []string
	}{
		{[]string{"redoubt.home.arpa"}, "NOERROR", "UDP", []string{"qr", "aa", "ra"}, nil, []string{"redoubt.home.arpa. A " + box}},
		{[]string{"+tcp", "redoubt.home.arpa"}, "NOERROR", "TCP", []string{"aa"}, nil, []string{"redoubt.home.arpa. A " + box}},
		{[]string{"+dnssec", "setup.home.arpa"}, "NOERROR", "UDP", []string{"aa"}, []string{"ad"}, []string{"setup.home.arpa. A " + box}},
		{[]string{"+bufsize=512", "redoubt.home.arpa", "AAAA"}, "NOERROR", "UDP", []string{"aa"}, nil, nil},
		// dig sends ANY over TCP unless told not to.
		{[]string{"+notcp", "+noedns", "redoubt.home.arpa", "ANY"}, "NOERROR", "UDP", []string{"aa"}, nil, []string{"redoubt.home.arpa. A " + box}},
		{[]string{"redoubt.home.arpa", "ANY"}, "NOERROR", "TCP", []string{"aa"}, nil, []string{"redoubt.home.arpa. A " + box}},
		{[]string{"-x", box}, "NOERROR", "UDP", []string{"aa"}, nil, []string{"1.86.201.10.in-addr.arpa. PTR redoubt.home.arpa."}},
		{[]string{laptopName + ".home.arpa"}, "NOERROR", "UDP", []string{"aa"}, nil, nil}, // checked below
		{[]string{"tracker.example"}, "NXDOMAIN", "UDP", []string{"ra"}, []string{"aa"}, nil},
		{[]string{"+tcp", "telemetry.vendor.example", "AAAA"}, "NXDOMAIN", "TCP", nil, nil, nil},
		{[]string{"+dnssec", "+bufsize=1232", "www.example.com", "HTTPS"}, "NXDOMAIN", "UDP", nil, []string{"ad"}, nil},
		{[]string{"use-application-dns.net"}, "NXDOMAIN", "UDP", nil, nil, nil},
		{[]string{"example.com", "ANY"}, "NXDOMAIN", "TCP", nil, nil, nil},
		{[]string{"+notcp", "example.com", "ANY"}, "NXDOMAIN", "UDP", nil, nil, nil},
		{[]string{"nothing-here.home.arpa"}, "NXDOMAIN", "UDP", []string{"aa"}, nil, nil},
		{[]string{"captive.apple.com"}, "NOERROR", "UDP", nil, []string{"aa"}, []string{"captive.apple.com. A " + box}},
	} {
		out := dig(t, e, tc.args...)
		status, flags, server, proto := digStatus(t, out)
		what := strings.Join(tc.args, " ")
		if status != tc.status || server != box || proto != tc.proto {
			t.Errorf("dig %s: %s from %s over %s, want %s from %s over %s", what, status, server, proto, tc.status, box, tc.proto)
		}
		for _, f := range tc.flags {
			if !strings.Contains(flags, " "+f+" ") {
				t.Errorf("dig %s: flags [%s] lack %s", what, flags, f)
			}
		}
		for _, f := range tc.noflags {
			if strings.Contains(flags, " "+f+" ") {
				t.Errorf("dig %s: flags [%s] include %s", what, flags, f)
			}
		}
		if tc.answer != nil && strings.Join(answers(out), "\n") != strings.Join(tc.answer, "\n") {
			t.Errorf("dig %s: answers %q, want %q", what, answers(out), tc.answer)
		}
		if slicesContains(tc.args, "+dnssec") && !strings.Contains(out, "; EDNS: version: 0, flags: do;") {
			t.Errorf("dig %s: the answer's OPT record does not echo DO", what)
		}
		if slicesContains(tc.args, "+bufsize=512") && !strings.Contains(out, "udp: 512") {
			t.Errorf("dig %s: the answer's OPT record does not carry the client's size", what)
		}
	}
	// The laptop's own name, from its lease, both ways.
	if got := answers(dig(t, e, laptopName+".home.arpa")); len(got) != 1 || got[0] != laptopName+".home.arpa. A "+leased.String() {
		t.Errorf("the laptop's name: %q, want its leased address %v", got, leased)
	}
	if got := answers(dig(t, e, "-x", leased.String())); len(got) != 1 || !strings.HasSuffix(got[0], "PTR "+laptopName+".home.arpa.") {
		t.Errorf("the laptop's address: %q", got)
	}
}

func slicesContains(s []string, v string) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

// TestHostAndGetent resolves through the laptop's system resolver (glibc's, for
// getent; bind's host), with the search domain from the lease.
func TestHostAndGetent(t *testing.T) {
	e := env(t)
	box := lab.BoxLAN.String()
	if out := mustLaptop(t, e, "getent", "hosts", "redoubt.home.arpa"); !strings.HasPrefix(out, box+" ") {
		t.Errorf("getent hosts redoubt.home.arpa: %q", out)
	}
	// The search domain: bare names.
	if out := mustLaptop(t, e, "getent", "hosts", "setup"); !strings.HasPrefix(out, box+" ") {
		t.Errorf("getent hosts setup: %q", out)
	}
	if out := mustLaptop(t, e, "getent", "ahostsv4", laptopName); !strings.HasPrefix(out, leased.String()+" ") {
		t.Errorf("getent ahostsv4 %s: %q, want %v", laptopName, out, leased)
	}
	if out := mustLaptop(t, e, "getent", "hosts", box); !strings.Contains(out, "redoubt.home.arpa") {
		t.Errorf("getent hosts %s: %q", box, out)
	}
	// Names that are not the box's do not exist (exit status 2: not found).
	if out, err := laptop(t, e, "getent", "hosts", "tracker.example"); err == nil || !strings.Contains(err.Error(), "exit status 2") {
		t.Errorf("getent hosts tracker.example: %q %v, want not found (exit status 2)", out, err)
	}

	// host asks A, AAAA and MX: only the address exists, the rest is silent NODATA.
	if out := mustLaptop(t, e, "host", "redoubt.home.arpa"); strings.TrimSpace(out) != "redoubt.home.arpa has address "+box {
		t.Errorf("host redoubt.home.arpa:\n%s", out)
	}
	if out := mustLaptop(t, e, "host", "-t", "AAAA", "redoubt.home.arpa"); !strings.Contains(out, "has no AAAA record") {
		t.Errorf("host -t AAAA:\n%s", out)
	}
	if out := mustLaptop(t, e, "host", leased.String()); !strings.Contains(out, "domain name pointer "+laptopName+".home.arpa.") {
		t.Errorf("host %v:\n%s", leased, out)
	}
	if out, _ := laptop(t, e, "host", "-W", "2", "tracker.example"); !strings.Contains(out, "not found: 3(NXDOMAIN)") {
		t.Errorf("host tracker.example:\n%s", out)
	}
	if out, _ := laptop(t, e, "host", "-T", "-W", "2", "api.tracker.example"); !strings.Contains(out, "not found: 3(NXDOMAIN)") {
		t.Errorf("host -T api.tracker.example:\n%s", out)
	}
}

// TestQueryLog: stopped names appear in the query log with who asked, through the
// API and `redoubt queries`.
func TestQueryLog(t *testing.T) {
	e := env(t)
	for range 3 {
		dig(t, e, "v10.events.data.microsoft.com")
	}
	dig(t, e, "safebrowsing.googleapis.com", "AAAA")
	dig(t, e, "querylog-check.example")
	dig(t, e, "redoubt.home.arpa")
	q, err := e.Box.API.Queries(ctxFor(t, 5*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	find := func(name string) (querylog.Entry, bool) {
		for _, x := range q.Entries {
			if x.Name == name && x.Client == leased.String() {
				return x, true
			}
		}
		return querylog.Entry{}, false
	}
	for name, want := range map[string]string{
		"v10.events.data.microsoft.com": "stopped os-telemetry",
		"safebrowsing.googleapis.com":   "stopped browser",
		"querylog-check.example":        "stopped unknown",
		"redoubt.home.arpa":             "local local",
	} {
		x, ok := find(name)
		if !ok {
			t.Errorf("%s from %v is not in the query log", name, leased)
			continue
		}
		if got := x.Answer + " " + x.Class; got != want {
			t.Errorf("%s: %s, want %s", name, got, want)
		}
		if !strings.EqualFold(x.MAC, lab.LaptopMAC) {
			t.Errorf("%s: device %s, want the laptop's %s", name, x.MAC, lab.LaptopMAC)
		}
	}
	if x, _ := find("v10.events.data.microsoft.com"); x.Count < 3 {
		t.Errorf("telemetry name counted %d times, want at least 3", x.Count)
	}
	if q.Counters.ByAnswer["stopped"] == 0 || len(q.Counters.Devices) == 0 {
		t.Errorf("counters %+v", q.Counters)
	}
	// The CLI shows the same.
	out, err := exec.Command(e.Lab.Binary, "queries", "--socket", e.Box.Socket).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "querylog-check.example") || !strings.Contains(string(out), "os-telemetry") {
		t.Errorf("redoubt queries: %v\n%s", err, out)
	}
	out, err = exec.Command(e.Lab.Binary, "queries", "--json", "--socket", e.Box.Socket).CombinedOutput()
	var parsed localapi.Queries
	if err != nil || json.Unmarshal(out, &parsed) != nil || len(parsed.Entries) == 0 {
		t.Errorf("redoubt queries --json: %v\n%s", err, out)
	}
	st, err := e.Box.API.Status(ctxFor(t, 5*time.Second))
	if err != nil || st.DNS.Domain != "home.arpa" || st.DNS.Queries == 0 || st.DNS.Stopped == 0 {
		t.Errorf("status: %+v %v", st.DNS, err)
	}
}

// TestFollow: `redoubt queries --follow` prints lookups as they happen.
func TestFollow(t *testing.T) {
	e := env(t)
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, e.Lab.Binary, "queries", "--follow", "--json", "--socket", e.Box.Socket)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cmd.Process.Signal(syscall.SIGTERM); cmd.Wait() }()
	// Ask until the feed shows it: the command may not be following yet.
	found := make(chan struct{})
	defer close(found)
	go func() {
		for {
			e.Lab.Exec(context.Background(), lab.Laptop, "dig", "+tries=1", "+time=1", "follow-me.example")
			select {
			case <-found:
				return
			case <-time.After(300 * time.Millisecond):
			}
		}
	}()
	dec := json.NewDecoder(out)
	for {
		var x querylog.Entry
		if err := dec.Decode(&x); err != nil {
			t.Fatalf("reading the feed: %v", err)
		}
		if x.Name == "follow-me.example" {
			if x.Answer != "stopped" || x.Client != leased.String() {
				t.Errorf("followed entry %+v", x)
			}
			return
		}
	}
}

// TestNothingReachesTheInternet runs lookups of every kind and checks the internet
// saw no packet from the LAN and its resolver no query at all.
func TestNothingReachesTheInternet(t *testing.T) {
	e := env(t)
	ctx := context.Background()
	if err := e.Lab.ResetIngress(ctx, lab.Internet); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{
		{"leak-check.example"}, {"+tcp", "leak-check-tcp.example"}, {"+dnssec", "leak-check.example", "DS"},
		{"-x", "203.0.113.53"}, {".", "NS"}, {"+tcp", "leak-check.example", "AXFR"},
	} {
		laptop(t, e, append([]string{"dig", "+tries=1", "+time=2"}, args...)...)
	}
	laptop(t, e, "getent", "hosts", "leak-check-getent.example")
	laptop(t, e, "host", "-W", "2", "leak-check-host.example")
	c, err := e.Lab.Ingress(ctx, lab.Internet)
	if err != nil {
		t.Fatal(err)
	}
	if c.FromLAN != 0 || c.FromLaptopMAC != 0 {
		t.Errorf("the internet received %d packets from the LAN (%d with the laptop's MAC)", c.FromLAN, c.FromLaptopMAC)
	}
	hits, err := e.Lab.InternetHits()
	if err != nil {
		t.Fatal(err)
	}
	for _, h := range hits {
		if strings.HasPrefix(h.Proto, "dns") {
			t.Errorf("the internet's resolver was asked %q by %s", h.Name, h.Remote)
		}
	}
}

// TestFloodFromTheLaptop: the laptop floods the box with queries (dnsperf, 2 000
// outstanding, distinct names) while another device on the LAN keeps asking; the
// other device is answered, the box survives, its query log stays bounded.
func TestFloodFromTheLaptop(t *testing.T) {
	e := env(t)
	if _, err := exec.LookPath("dnsperf"); err != nil {
		t.Skip("dnsperf is not installed (scripts/deps.sh installs it)")
	}
	ctx := context.Background()
	// A second device: another address on the laptop's cable.
	const other = "10.201.86.222"
	if _, err := e.Lab.Exec(ctx, lab.Laptop, "ip", "addr", "add", other+"/32", "dev", lab.LaptopIface); err != nil {
		t.Fatal(err)
	}
	defer e.Lab.Exec(ctx, lab.Laptop, "ip", "addr", "del", other+"/32", "dev", lab.LaptopIface)
	file := e.Lab.Dir + "/flood.txt"
	var b strings.Builder
	for i := range 20000 {
		fmt.Fprintf(&b, "f%d.flood.example A\n", i)
	}
	if err := os.WriteFile(file, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	fctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	flood := e.Lab.Cmd(fctx, lab.Laptop, "dnsperf", "-s", lab.BoxLAN.String(), "-d", file, "-l", "4", "-q", "2000", "-c", "4", "-t", "1")
	var floodOut strings.Builder
	flood.Stdout, flood.Stderr = &floodOut, &floodOut
	if err := flood.Start(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(500 * time.Millisecond)
	var ok, asked int
	for asked < 10 {
		asked++
		out, err := laptop(t, e, "dig", "-b", other, "+tries=3", "+time=1", "@"+lab.BoxLAN.String(), "redoubt.home.arpa")
		if err == nil && len(answers(out)) == 1 {
			ok++
		}
	}
	flood.Wait()
	t.Logf("flood:\n%s", floodOut.String())
	if ok < asked-1 {
		t.Errorf("the other device got %d answers out of %d during the flood", ok, asked)
	}
	st, err := e.Box.API.Status(ctxFor(t, 5*time.Second))
	if err != nil {
		t.Fatalf("the box after the flood: %v", err)
	}
	q, err := e.Box.API.Queries(ctxFor(t, 5*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("after the flood: %d queries, %d dropped, %d entries", st.DNS.Queries, st.DNS.Dropped, len(q.Entries))
	if len(q.Entries) > querylog.DefaultEntries {
		t.Errorf("%d query-log entries, bound %d", len(q.Entries), querylog.DefaultEntries)
	}
	if got := answers(dig(t, e, "redoubt.home.arpa")); len(got) != 1 {
		t.Errorf("after the flood: %q", got)
	}
}

// TestCaptiveAfterSetup: once setup is done (the config says so, reloaded with
// SIGHUP) the probe names are stopped like any other, at once; before, they lead to
// the box.
func TestCaptiveAfterSetup(t *testing.T) {
	e := env(t)
	box := lab.BoxLAN.String()
	probes := []string{"captive.apple.com", "connectivitycheck.gstatic.com", "www.msftconnecttest.com", "detectportal.firefox.com"}
	for _, p := range probes {
		if got := answers(dig(t, e, p)); len(got) != 1 || got[0] != p+". A "+box {
			t.Errorf("%s during setup: %q, want the box", p, got)
		}
	}
	// The probe's own HTTP request, as macOS makes it, lands on the box, which
	// sends it to the setup page instead of answering "Success": a portal.
	out := mustLaptop(t, e, "curl", "-sS", "--max-time", "5", "-o", "/dev/null", "-w", "%{http_code} %{redirect_url}",
		"http://captive.apple.com/hotspot-detect.html")
	if code, loc, _ := strings.Cut(strings.TrimSpace(out), " "); (code != "302" && code != "303" && code != "307") || !strings.HasPrefix(loc, "http://"+box+"/") {
		t.Errorf("the probe's HTTP request got %q, want a redirect to the box's page", out)
	}
	reload := func(cfg string) {
		t.Helper()
		if err := os.WriteFile(e.Box.Config, []byte(cfg), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := e.Box.Signal(syscall.SIGHUP); err != nil {
			t.Fatal(err)
		}
		deadline := time.Now().Add(10 * time.Second)
		for !strings.Contains(e.Box.Output(), "config reloaded") {
			if time.Now().After(deadline) {
				t.Fatalf("the box did not reload its config:\n%s", e.Box.Output())
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	orig, err := os.ReadFile(e.Box.Config)
	if err != nil {
		t.Fatal(err)
	}
	reload(string(orig) + "\n[setup]\ndone = true\n")
	defer reload(string(orig))
	for _, p := range probes {
		out := dig(t, e, p)
		if status, _, _, _ := digStatus(t, out); status != "NXDOMAIN" {
			t.Errorf("%s after setup: %s, want NXDOMAIN", p, status)
		}
	}
	if got := answers(dig(t, e, "redoubt.home.arpa")); len(got) != 1 {
		t.Errorf("the box's name after setup: %q", got)
	}
	// The probe now fails to resolve (curl's exit status 6): no portal.
	if out, err := laptop(t, e, "curl", "-sS", "--max-time", "5", "http://captive.apple.com/hotspot-detect.html"); err == nil || !strings.Contains(err.Error(), "exit status 6") {
		t.Errorf("the probe after setup: %q %v, want a resolution failure", out, err)
	}
	q, err := e.Box.API.Queries(ctxFor(t, 5*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	for _, x := range q.Entries {
		if x.Name == "captive.apple.com" && (x.Answer != "stopped" || x.Class != "captive-probe") {
			t.Errorf("captive.apple.com after setup: %s %s", x.Answer, x.Class)
		}
	}
}

func ctxFor(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}
