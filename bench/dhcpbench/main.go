// Command dhcpbench measures Redoubt's DHCP server against dnsmasq in the same lab
// topology, in the same run: leases per second under perfdhcp load from the
// laptop's namespace, the drop rate, and the time from the laptop's link coming
// up to a bound lease with real clients. It prints a Markdown section for
// bench/RESULTS.md. Only bench/dhcp.sh runs it; it needs root.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/redoubt/redoubt/lab"
)

// The bench LAN: a /16, so a run's worth of simulated clients fits the pool.
const (
	benchBox   = "10.201.0.1"
	benchLAN   = "10.201.0.1/16"
	relayAddr  = "10.201.0.2" // the laptop's address; perfdhcp relays from it
	poolStart  = "10.201.1.0"
	poolEnd    = "10.201.255.254"
	leaseTime  = "1h"
	serverName = "redoubt"
)

var (
	rounds   = flag.Int("rounds", 3, "rounds; each runs perfdhcp against both servers, in alternating order")
	period   = flag.Int("period", 5, "seconds of perfdhcp load per rate, server and round")
	rates    = flag.String("rates", "500,1000,2000,4000,8000", "DORA exchanges per second perfdhcp offers, one load each")
	clients  = flag.Int("clients", 30000, "distinct simulated clients (MACs)")
	ttlRuns  = flag.Int("ttl", 5, "time-to-lease runs per client program, server and round")
	verbose  = flag.Bool("v", false, "log progress, tool output and the box's counters to standard error")
	only     = flag.String("only", "", "run only this server (redoubt or dnsmasq), for profiling")
	boxState string
)

func logf(format string, args ...any) {
	if *verbose {
		fmt.Fprintf(os.Stderr, format+"\n", args...)
	}
}

// scenario is one perfdhcp load.
type scenario struct {
	name          string
	rate, clients int
}

// result is one perfdhcp run.
type result struct {
	scenario       string
	round          int
	server         string
	sent, acks     int // REQUESTs sent, ACKs received
	discovers      int
	offers         int
	seconds        float64
	leasesPerSec   float64
	dropPercent    float64 // exchanges started that did not end in an ACK
	avgDelayMillis float64 // REQUEST→ACK
}

func main() {
	flag.Parse()
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "dhcpbench:", err)
		os.Exit(1)
	}
}

func run() error {
	if err := lab.Supported(); err != nil {
		return err
	}
	for _, t := range []string{"perfdhcp", "dnsmasq", "busybox", "dhclient"} {
		if _, err := exec.LookPath(t); err != nil {
			return fmt.Errorf("%s is missing (run scripts/deps.sh)", t)
		}
	}
	bin := os.Getenv("REDOUBT_BIN")
	if bin == "" {
		return errors.New("set REDOUBT_BIN to the redoubt binary (make build; bench/dhcp.sh does)")
	}
	ctx := context.Background()
	l, err := lab.Up(ctx, lab.Options{Binary: bin, Logf: logf})
	if err != nil {
		return err
	}
	defer l.Down()
	boxState = filepath.Join(l.Dir, "bench-box-state")

	var perf []result
	ttl := map[string][]time.Duration{} // "server/client" → times
	for round := range *rounds {
		order := []string{serverName, "dnsmasq"}
		if round%2 == 1 {
			slices.Reverse(order)
		}
		for _, srv := range order {
			if *only != "" && srv != *only {
				continue
			}
			// Each load starts from an empty lease table.
			for _, sc := range scenarios() {
				stop, err := startServer(ctx, l, srv)
				if err != nil {
					return err
				}
				r, err := perfdhcp(ctx, l, srv, sc, round)
				if err != nil {
					stop()
					return err
				}
				perf = append(perf, r)
				logf("round %d %s %s: %.0f leases/s, %.2f%% dropped", round, sc.name, srv, r.leasesPerSec, r.dropPercent)
				if srv == serverName && *verbose {
					boxCounters(ctx, l)
				}
				stop()
			}
			stop, err := startServer(ctx, l, srv)
			if err != nil {
				return err
			}
			for _, kind := range []string{lab.UDHCPC, lab.DHClient} {
				for range *ttlRuns {
					d, _, err := l.TimeToLease(ctx, kind, lab.DHCPOptions{Hostname: "laptop"})
					if err != nil {
						stop()
						return fmt.Errorf("%s, %s: %w", srv, kind, err)
					}
					ttl[srv+"/"+kind] = append(ttl[srv+"/"+kind], d)
				}
			}
			stop()
		}
	}
	report(perf, ttl)
	return nil
}

// startServer runs one DHCP server on the box's LAN port, with its state fresh,
// and returns how to stop it and give the port back.
func startServer(ctx context.Context, l *lab.Lab, name string) (func(), error) {
	if err := l.LaptopUnconfigure(ctx); err != nil {
		return nil, err
	}
	if _, err := l.Exec(ctx, lab.Laptop, "ip", "addr", "replace", relayAddr+"/16", "dev", lab.LaptopIface); err != nil {
		return nil, err
	}
	if name == serverName {
		os.RemoveAll(boxState)
		cfg := fmt.Sprintf(`# written by bench/dhcpbench
[lan]
interface = %q
address = %q

[dhcp]
pool_start = %q
pool_end = %q
lease_time = %q

[setup]
done = true

[state]
dir = %q

[log]
level = "warn"

[api]
socket = %q
`, lab.BoxLANIface, benchLAN, poolStart, poolEnd, leaseTime, boxState, l.BoxSocket())
		box, err := l.StartBox(ctx, cfg)
		if err != nil {
			return nil, err
		}
		return func() { box.Stop(10 * time.Second) }, nil
	}
	// dnsmasq needs the kernel to hold the address and answer ARP on the port;
	// Redoubt refuses a port with an address, so both are undone after.
	dir := filepath.Join(l.Dir, "dnsmasq")
	os.RemoveAll(dir)
	os.MkdirAll(dir, 0o755)
	for _, c := range [][]string{
		{"ip", "addr", "add", benchLAN, "dev", lab.BoxLANIface},
		{"sysctl", "-q", "-w", "net.ipv4.conf." + lab.BoxLANIface + ".arp_ignore=0"},
	} {
		if _, err := l.Exec(ctx, lab.Box, c...); err != nil {
			return nil, err
		}
	}
	p, err := l.Start(lab.Box, "dnsmasq", "dnsmasq", "--keep-in-foreground", "--conf-file=/dev/null",
		"--port=0", "--interface="+lab.BoxLANIface, "--bind-interfaces", "--user=root",
		"--dhcp-range="+poolStart+","+poolEnd+",255.255.0.0,"+leaseTime,
		"--dhcp-authoritative", "--dhcp-lease-max=70000", "--no-ping", "--quiet-dhcp",
		"--dhcp-leasefile="+filepath.Join(dir, "leases"), "--pid-file="+filepath.Join(dir, "pid"),
		"--log-facility="+filepath.Join(dir, "log"))
	if err != nil {
		return nil, err
	}
	time.Sleep(300 * time.Millisecond)
	if done, err := p.Exited(); done {
		return nil, fmt.Errorf("dnsmasq exited at start (%v): %s", err, p.Output())
	}
	return func() {
		p.Stop(5 * time.Second)
		l.Exec(ctx, lab.Box, "ip", "addr", "flush", "dev", lab.BoxLANIface)
	}, nil
}

// boxCounters logs what the box counted during a run.
func boxCounters(ctx context.Context, l *lab.Lab) {
	out, _ := l.Exec(ctx, lab.Box, l.Binary, "devices", "--json", "--socket", l.BoxSocket())
	if i := strings.Index(out, `"counters"`); i >= 0 {
		out = out[i:]
	}
	st, _ := l.Exec(ctx, lab.Box, l.Binary, "status", "--json", "--socket", l.BoxSocket())
	logf("box counters: %s\nbox status: %s", out, st)
}

var (
	reSection = regexp.MustCompile(`\*\*\*Statistics for: ([A-Z-]+)\*\*\*`)
	reField   = regexp.MustCompile(`^(sent packets|received packets|drops|avg delay): ([0-9.]+)`)
)

func scenarios() []scenario {
	var out []scenario
	for _, f := range strings.Split(*rates, ",") {
		if r, err := strconv.Atoi(strings.TrimSpace(f)); err == nil && r > 0 {
			out = append(out, scenario{name: f, rate: r, clients: *clients})
		}
	}
	return out
}

// perfdhcp runs perfdhcp from the laptop, relaying from its address, and parses
// its final report.
func perfdhcp(ctx context.Context, l *lab.Lab, server string, sc scenario, round int) (result, error) {
	args := []string{"perfdhcp", "-4", "-l", relayAddr, "-r", strconv.Itoa(sc.rate), "-p", strconv.Itoa(*period),
		"-R", strconv.Itoa(sc.clients), "-s", strconv.Itoa(round + 1), "-d", "2", "-W", "1000000", benchBox}
	cctx, cancel := context.WithTimeout(ctx, time.Duration(*period+30)*time.Second)
	defer cancel()
	start := time.Now()
	out, err := l.Cmd(cctx, lab.Laptop, args...).CombinedOutput()
	elapsed := time.Since(start)
	logf("%s\n%s", strings.Join(args, " "), out)
	if err != nil && !strings.Contains(string(out), "Statistics for") {
		return result{}, fmt.Errorf("perfdhcp against %s: %v\n%s", server, err, out)
	}
	r := result{scenario: sc.name, round: round + 1, server: server, seconds: float64(*period)}
	section := ""
	for _, line := range strings.Split(string(out), "\n") {
		line = strings.TrimSpace(line)
		if m := reSection.FindStringSubmatch(line); m != nil {
			section = m[1]
			continue
		}
		m := reField.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		v, _ := strconv.ParseFloat(m[2], 64)
		switch section + "/" + m[1] {
		case "DISCOVER-OFFER/sent packets":
			r.discovers = int(v)
		case "DISCOVER-OFFER/received packets":
			r.offers = int(v)
		case "REQUEST-ACK/sent packets":
			r.sent = int(v)
		case "REQUEST-ACK/received packets":
			r.acks = int(v)
		case "REQUEST-ACK/avg delay":
			r.avgDelayMillis = v
		}
	}
	if r.discovers == 0 {
		return r, fmt.Errorf("perfdhcp against %s printed no statistics (%v after %v):\n%s", server, err, elapsed, out)
	}
	r.leasesPerSec = float64(r.acks) / r.seconds
	r.dropPercent = 100 * (1 - float64(r.acks)/float64(r.discovers))
	return r, nil
}

func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func report(perf []result, ttl map[string][]time.Duration) {
	host, _ := os.Hostname()
	fmt.Println("## DHCP: Redoubt against dnsmasq, same lab topology, same run")
	fmt.Println()
	fmt.Printf("%s, %d cores, %s, lease files on %s. `bench/dhcp.sh`: %d rounds; in each, the two servers in\n",
		host, runtime.NumCPU(), time.Now().UTC().Format("2006-01-02"), fsType(boxState), *rounds)
	fmt.Printf("alternating order take the box's LAN port (`lan0`) in turn, from an empty lease table for each load.\n")
	fmt.Printf("perfdhcp runs %ds per load in the laptop's namespace at the offered rate (DORA exchanges/s) over %d\n", *period, *clients)
	fmt.Printf("simulated clients, relaying from the laptop's address (giaddr). dnsmasq %s runs with `--no-ping\n", dnsmasqVersion())
	fmt.Printf("--quiet-dhcp --dhcp-authoritative` (Redoubt does no conflict ping either), Redoubt with `log.level =\n")
	fmt.Printf("\"warn\"`; both write each lease to disk before acknowledging it. leases/s = ACKs perfdhcp received / %ds;\n", *period)
	fmt.Printf("dropped = exchanges perfdhcp started that did not end in an ACK within 2 s. Medians over the rounds.\n")
	fmt.Println()
	fmt.Println("| offered DORA/s | Redoubt leases/s | dropped | REQUEST→ACK ms | dnsmasq leases/s | dropped | REQUEST→ACK ms | ratio |")
	fmt.Println("| --- | --- | --- | --- | --- | --- | --- | --- |")
	best := map[string]float64{}
	for _, sc := range scenarios() {
		col := func(server string) (lps, drop, delay float64) {
			var a, b, c []float64
			for _, r := range perf {
				if r.scenario == sc.name && r.server == server {
					a, b, c = append(a, r.leasesPerSec), append(b, r.dropPercent), append(c, r.avgDelayMillis)
				}
			}
			return median(a), median(b), median(c)
		}
		rl, rd, rm := col(serverName)
		dl, dd, dm := col("dnsmasq")
		best[serverName], best["dnsmasq"] = max(best[serverName], rl), max(best["dnsmasq"], dl)
		ratio := "—"
		if dl > 0 {
			ratio = fmt.Sprintf("%.2f×", rl/dl)
		}
		fmt.Printf("| %d | %.0f | %.2f%% | %.2f | %.0f | %.2f%% | %.2f | %s |\n", sc.rate, rl, rd, rm, dl, dd, dm, ratio)
	}
	fmt.Println()
	if best["dnsmasq"] > 0 {
		fmt.Printf("Most leases/s at any offered rate: **Redoubt %.0f, dnsmasq %.0f: %.2f×** (target ≥ 1.0×).\n",
			best[serverName], best["dnsmasq"], best[serverName]/best["dnsmasq"])
	}
	fmt.Println()
	fmt.Println("<details><summary>every run</summary>")
	fmt.Println()
	fmt.Println("| offered | round | server | leases/s | DISCOVERs | ACKs | dropped | REQUEST→ACK ms |")
	fmt.Println("| --- | --- | --- | --- | --- | --- | --- | --- |")
	for _, r := range perf {
		fmt.Printf("| %s | %d | %s | %.0f | %d | %d | %.2f%% | %.2f |\n", r.scenario, r.round, r.server, r.leasesPerSec,
			r.discovers, r.acks, r.dropPercent, r.avgDelayMillis)
	}
	fmt.Println()
	fmt.Println("</details>")
	fmt.Println()
	fmt.Println("Time from the laptop's link coming up to a bound lease: the link goes down and up, the client")
	fmt.Println("starts at once (as a network manager does on carrier), and the time runs until its script sees")
	fmt.Println("the lease. Each run is a fresh client; the server remembers the laptop.")
	fmt.Println()
	fmt.Println("| client | Redoubt median | dnsmasq median | runs each |")
	fmt.Println("| --- | --- | --- | --- |")
	for _, kind := range []string{lab.UDHCPC, lab.DHClient} {
		a, b := ttl[serverName+"/"+kind], ttl["dnsmasq/"+kind]
		fmt.Printf("| %s | %s | %s | %d |\n", kind, medianDur(a), medianDur(b), len(a))
	}
}

// fsType names the filesystem holding dir's parent (both servers' lease files).
func fsType(dir string) string {
	out, err := exec.Command("findmnt", "-n", "-o", "FSTYPE", "-T", filepath.Dir(dir)).Output()
	if err != nil {
		return "?"
	}
	return strings.TrimSpace(string(out))
}

func medianDur(ds []time.Duration) string {
	xs := make([]float64, len(ds))
	for i, d := range ds {
		xs[i] = float64(d)
	}
	return time.Duration(median(xs)).Round(100 * time.Microsecond).String()
}

func dnsmasqVersion() string {
	out, err := exec.Command("dnsmasq", "--version").Output()
	if err != nil {
		return ""
	}
	f := strings.Fields(string(out))
	if len(f) >= 3 {
		return f[2]
	}
	return ""
}
