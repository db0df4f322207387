package dns_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redoubt/redoubt/lab"
	"github.com/redoubt/redoubt/lab/labtest"
)

// The benchmarks compare Redoubt's resolver with dnsmasq doing the same job in the
// same lab, one after the other on the same veth pair: dnsmasq answers from the
// kernel with the box's address on the box's LAN port (the netstack is stopped
// then), Redoubt from `redoubt serve`. Both are authoritative for the same local
// names and answer NXDOMAIN to everything else, never forwarding; each run checks
// the two gave the same answers. bench/dns.sh runs them side by side in rounds and
// prints the comparison.
//
// DNS_BENCH_SECONDS sets the length of each dnsperf run (default 2, enough for
// `make test`, which runs every benchmark once).

// benchSeconds is how long each dnsperf run lasts.
func benchSeconds() int {
	if n, err := strconv.Atoi(os.Getenv("DNS_BENCH_SECONDS")); err == nil && n > 0 {
		return n
	}
	return 2
}

// dnsmasqConf makes dnsmasq answer like the box: its names and their reverse
// lookups, NXDOMAIN for every other name (local=/#/: every domain is local, none is
// forwarded), no upstream, no hosts file, no log.
const dnsmasqConf = `no-resolv
no-hosts
no-poll
no-negcache
port=53
listen-address=%[1]s
bind-interfaces
domain=home.arpa
local=/#/
host-record=redoubt.home.arpa,%[1]s
host-record=setup.home.arpa,%[1]s
cache-size=1000
`

// queryMix is what dnsperf asks: half the box's names (A, AAAA, PTR), half names
// it stops (A, AAAA, HTTPS for many distinct names, as a laptop's apps do).
func queryMix(distinct int) string {
	var lines []string
	for i := range distinct {
		lines = append(lines,
			"redoubt.home.arpa A", "setup.home.arpa A", "redoubt.home.arpa AAAA", "1.86.201.10.in-addr.arpa PTR",
			fmt.Sprintf("t%d.tracker.example A", i), fmt.Sprintf("telemetry%d.vendor.example AAAA", i),
			fmt.Sprintf("www.site%d.example A", i), fmt.Sprintf("api%d.example HTTPS", i))
	}
	r := rand.New(rand.NewPCG(1, 2))
	r.Shuffle(len(lines), func(i, j int) { lines[i], lines[j] = lines[j], lines[i] })
	return strings.Join(lines, "\n") + "\n"
}

// server is one resolver under test, on the box's LAN address.
type server struct {
	name  string
	start func(b *testing.B) (pid int, stop func())
}

func servers(e *labtest.Env) []server {
	ctx := context.Background()
	return []server{
		{"redoubt", func(b *testing.B) (int, func()) {
			box, err := e.Lab.StartBox(ctx, e.Lab.BoxConfig(""))
			if err != nil {
				b.Fatal(err)
			}
			stop := func() { box.Stop(10 * time.Second) }
			pid, err := daemonPid(box.Pid(), filepath.Base(e.Lab.Binary))
			if err != nil {
				stop()
				b.Fatal(err)
			}
			return pid, stop
		}},
		{"dnsmasq", func(b *testing.B) (int, func()) {
			// The kernel answers ARP on the port again (the netstack turns that
			// off) and holds the box's address there while dnsmasq runs. The
			// box's kernel firewall (vpn/wanfw), which stays after the daemon
			// stops, goes: it would drop everything dnsmasq sends and receives.
			// The box puts it back when it starts.
			e.Lab.Exec(ctx, lab.Box, "nft", "delete", "table", "inet", "redoubt")
			addr := lab.BoxLAN.String()
			for _, c := range [][]string{
				{"sysctl", "-qw", "net.ipv4.conf." + lab.BoxLANIface + ".arp_ignore=0"},
				{"ip", "addr", "add", addr + "/24", "dev", lab.BoxLANIface},
			} {
				if _, err := e.Lab.Exec(ctx, lab.Box, c...); err != nil {
					b.Fatal(err)
				}
			}
			conf := filepath.Join(e.Lab.Dir, "dnsmasq.conf")
			if err := os.WriteFile(conf, fmt.Appendf(nil, dnsmasqConf, addr), 0o644); err != nil {
				b.Fatal(err)
			}
			p, err := e.Lab.Start(lab.Box, "dnsmasq", "dnsmasq", "--keep-in-foreground", "--conf-file="+conf,
				"--pid-file=", "--user=root")
			if err != nil {
				b.Fatal(err)
			}
			stop := func() {
				p.Stop(5 * time.Second)
				e.Lab.Exec(ctx, lab.Box, "ip", "addr", "del", addr+"/24", "dev", lab.BoxLANIface)
			}
			if err := waitAnswer(e); err != nil {
				link, _ := e.Lab.Exec(ctx, lab.Box, "ip", "addr", "show", "dev", lab.BoxLANIface)
				stop()
				b.Fatalf("%v\ndnsmasq:\n%s\n%s", err, p.Output(), link)
			}
			pid, err := daemonPid(p.Pid(), "dnsmasq")
			if err != nil {
				stop()
				b.Fatal(err)
			}
			return pid, stop
		}},
	}
}

// waitAnswer waits until something answers DNS on the box's address.
func waitAnswer(e *labtest.Env) error {
	deadline := time.Now().Add(10 * time.Second)
	for {
		_, err := e.Lab.Exec(context.Background(), lab.Laptop, "dig", "+tries=1", "+time=1", "@"+lab.BoxLAN.String(), "redoubt.home.arpa")
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("nothing answers DNS on %s: %v", lab.BoxLAN, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// perf is what one dnsperf run measured.
type perf struct {
	qps       float64
	sent      int
	lost      int
	rcodes    string // "NOERROR 50.00%, NXDOMAIN 50.00%"
	latencies []time.Duration
}

// dnsperf runs dnsperf in the laptop for seconds against the box's address.
// maxQPS > 0 paces it and records every query's latency; otherwise it sends as fast
// as outstanding queries allow.
func dnsperf(b *testing.B, e *labtest.Env, file string, seconds, maxQPS, outstanding, clients int) perf {
	args := []string{"dnsperf", "-s", lab.BoxLAN.String(), "-d", file, "-l", strconv.Itoa(seconds),
		"-q", strconv.Itoa(outstanding), "-c", strconv.Itoa(clients), "-t", "2"}
	if maxQPS > 0 {
		args = append(args, "-Q", strconv.Itoa(maxQPS), "-v")
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Duration(seconds+30)*time.Second)
	defer cancel()
	out, err := e.Lab.Cmd(ctx, lab.Laptop, args...).Output()
	if err != nil {
		b.Fatalf("dnsperf: %v\n%s", err, out)
	}
	var p perf
	for _, line := range strings.Split(string(out), "\n") {
		f := strings.Fields(line)
		switch {
		case len(f) >= 3 && f[0] == ">" && maxQPS > 0:
			// "> NOERROR name type 0.000123" (T for a timeout).
			if f[1] == "T" || f[1] == "I" {
				continue
			}
			if s, err := strconv.ParseFloat(f[len(f)-1], 64); err == nil {
				p.latencies = append(p.latencies, time.Duration(s*float64(time.Second)))
			}
		case strings.HasPrefix(line, "  Queries per second:"):
			p.qps, _ = strconv.ParseFloat(f[len(f)-1], 64)
		case strings.HasPrefix(line, "  Queries sent:"):
			p.sent, _ = strconv.Atoi(f[len(f)-1])
		case strings.HasPrefix(line, "  Queries lost:"):
			p.lost, _ = strconv.Atoi(f[2])
		case strings.HasPrefix(line, "  Response codes:"):
			p.rcodes = rcodeShares(strings.TrimSpace(strings.TrimPrefix(line, "  Response codes:")))
		}
	}
	if p.sent == 0 {
		b.Fatalf("dnsperf sent nothing:\n%s", out)
	}
	return p
}

// rcodeShares keeps the response codes with their shares rounded to whole
// percents: "NOERROR 123 (50.00%), NXDOMAIN 124 (50.00%)" → "NOERROR 50%, NXDOMAIN 50%".
func rcodeShares(s string) string {
	var out []string
	for _, part := range strings.Split(s, ",") {
		f := strings.Fields(part)
		if len(f) != 3 {
			continue
		}
		pct, _ := strconv.ParseFloat(strings.Trim(f[2], "()%"), 64)
		out = append(out, fmt.Sprintf("%s %.0f%%", f[0], pct))
	}
	return strings.Join(out, ", ")
}

func percentile(d []time.Duration, p float64) time.Duration {
	if len(d) == 0 {
		return 0
	}
	s := slices.Clone(d)
	slices.Sort(s)
	return s[min(len(s)-1, int(p*float64(len(s))))]
}

// BenchmarkDNSPerf measures, for Redoubt and for dnsmasq in turn within each
// round (-benchtime Nx runs N rounds; bench/dns.sh runs -benchtime 1x -count N):
// queries per second with 100 queries outstanding (dnsperf's default), the
// server's CPU time per query, and latency p50/p99 at a fixed 10 000 queries per
// second and at 1 000 (more than a laptop ever asks). It reports each server's
// median over the rounds and the ratio of the medians.
func BenchmarkDNSPerf(b *testing.B) {
	e := benchLab(b)
	file := filepath.Join(e.Lab.Dir, "queries.txt")
	if err := os.WriteFile(file, []byte(queryMix(2000)), 0o644); err != nil {
		b.Fatal(err)
	}
	secs := benchSeconds()
	srvs := servers(e)
	qps := map[string][]float64{}
	cpu := map[string][]float64{}
	lost := map[string][]float64{}
	lat := map[string][]time.Duration{}
	lat1k := map[string][]time.Duration{}
	rcodes := map[string]string{}
	for range b.N {
		for _, s := range srvs {
			pid, stop := s.start(b)
			// Warm up: caches, ARP, the query log reaching its size.
			dnsperf(b, e, file, 1, 0, 100, 1)
			before := cpuTime(b, pid)
			p := dnsperf(b, e, file, secs, 0, 100, 1)
			used := cpuTime(b, pid) - before
			l := dnsperf(b, e, file, secs, 10000, 100, 1)
			l1k := dnsperf(b, e, file, secs, 1000, 100, 1)
			stop()
			qps[s.name] = append(qps[s.name], p.qps)
			cpu[s.name] = append(cpu[s.name], float64(used.Microseconds())/float64(p.sent-p.lost))
			lost[s.name] = append(lost[s.name], 100*float64(p.lost)/float64(p.sent))
			lat[s.name] = append(lat[s.name], l.latencies...)
			lat1k[s.name] = append(lat1k[s.name], l1k.latencies...)
			us := func(d []time.Duration, p float64) time.Duration { return percentile(d, p).Round(time.Microsecond) }
			b.Logf("result %s: %.0f queries/s, %.1f µs CPU/query, %d lost; p50/p99 at 10 000/s %v/%v, at 1 000/s %v/%v; %s",
				s.name, p.qps, cpu[s.name][len(cpu[s.name])-1], p.lost, us(l.latencies, 0.5), us(l.latencies, 0.99),
				us(l1k.latencies, 0.5), us(l1k.latencies, 0.99), p.rcodes)
			// Both must have answered the same mix the same way.
			if prev, ok := rcodes[s.name]; ok && prev != p.rcodes {
				b.Errorf("%s answered differently between rounds: %q then %q", s.name, prev, p.rcodes)
			}
			rcodes[s.name] = p.rcodes
		}
	}
	if rcodes["redoubt"] != rcodes["dnsmasq"] {
		b.Errorf("the servers answered the mix differently: redoubt %q, dnsmasq %q", rcodes["redoubt"], rcodes["dnsmasq"])
	}
	for _, s := range srvs {
		b.ReportMetric(median(qps[s.name]), s.name+"-qps")
		b.ReportMetric(median(cpu[s.name]), s.name+"-cpu-µs/query")
		b.ReportMetric(median(lost[s.name]), s.name+"-lost-%")
		b.ReportMetric(float64(percentile(lat[s.name], 0.50).Microseconds()), s.name+"-p50-µs")
		b.ReportMetric(float64(percentile(lat[s.name], 0.99).Microseconds()), s.name+"-p99-µs")
		b.ReportMetric(float64(percentile(lat1k[s.name], 0.50).Microseconds()), s.name+"-1k-p50-µs")
		b.ReportMetric(float64(percentile(lat1k[s.name], 0.99).Microseconds()), s.name+"-1k-p99-µs")
	}
	b.ReportMetric(median(qps["redoubt"])/median(qps["dnsmasq"]), "qps-ratio")
}

func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := slices.Clone(v)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// BenchmarkDNSFlood floods each resolver in turn for four times the run length —
// 10 dnsperf clients with 5 000 queries outstanding each, over 100 000 distinct
// names (so the query log churns) — and reports the server's peak resident memory
// (VmHWM, the most over the rounds), its idle memory before, its RSS halfway
// through and at the end (equal when memory is bounded), and the rate it kept up
// (median).
func BenchmarkDNSFlood(b *testing.B) {
	e := benchLab(b)
	file := filepath.Join(e.Lab.Dir, "flood.txt")
	var lines []string
	for i := range 100000 {
		lines = append(lines, fmt.Sprintf("n%d.flood%d.example A", i, i%97), "redoubt.home.arpa A")
	}
	if err := os.WriteFile(file, []byte(strings.Join(lines, "\n")+"\n"), 0o644); err != nil {
		b.Fatal(err)
	}
	secs := 4 * benchSeconds()
	srvs := servers(e)
	qps := map[string][]float64{}
	idle, half, end, peak := map[string]float64{}, map[string]float64{}, map[string]float64{}, map[string]float64{}
	for range b.N {
		for _, s := range srvs {
			pid, stop := s.start(b)
			i := float64(statusKiB(b, pid, "VmRSS")) / 1024
			mid := make(chan float64, 1)
			go func() {
				time.Sleep(time.Duration(secs) * time.Second / 2)
				mid <- float64(statusKiB(b, pid, "VmRSS")) / 1024
			}()
			p := dnsperf(b, e, file, secs, 0, 5000, 10)
			m := <-mid
			last := float64(statusKiB(b, pid, "VmRSS")) / 1024
			hwm := float64(statusKiB(b, pid, "VmHWM")) / 1024
			stop()
			qps[s.name] = append(qps[s.name], p.qps)
			idle[s.name] = max(idle[s.name], i)
			half[s.name] = max(half[s.name], m)
			end[s.name] = max(end[s.name], last)
			peak[s.name] = max(peak[s.name], hwm)
			b.Logf("result %s: %.0f queries/s under a %d s flood (%d of %d lost); RSS idle %.1f MiB, halfway %.1f, end %.1f, peak %.1f",
				s.name, p.qps, secs, p.lost, p.sent, i, m, last, hwm)
		}
	}
	for _, s := range srvs {
		b.ReportMetric(median(qps[s.name]), s.name+"-qps")
		b.ReportMetric(idle[s.name], s.name+"-idle-MiB")
		b.ReportMetric(half[s.name], s.name+"-half-MiB")
		b.ReportMetric(end[s.name], s.name+"-end-MiB")
		b.ReportMetric(peak[s.name], s.name+"-peak-MiB")
	}
}

// benchLab is the package's lab with no box running (each server starts its own)
// and the laptop on its static address.
func benchLab(b *testing.B) *labtest.Env {
	e := labtest.SharedLab(b)
	if e.Box != nil {
		if done, _ := e.Box.Exited(); !done {
			if err := e.Box.Stop(10 * time.Second); err != nil {
				b.Fatalf("stopping the shared box: %v", err)
			}
		}
	}
	if err := e.Lab.LaptopStatic(context.Background()); err != nil {
		b.Fatal(err)
	}
	for _, tool := range []string{"dnsperf", "dnsmasq"} {
		if _, err := e.Lab.Exec(context.Background(), lab.Laptop, "sh", "-c", "command -v "+tool); err != nil {
			b.Skipf("%s is not installed (scripts/deps.sh installs it)", tool)
		}
	}
	return e
}

// daemonPid finds the process running the program named name started under `ip
// netns exec` (which execs it, so it is usually the same pid).
func daemonPid(pid int, name string) (int, error) {
	comm := name[:min(len(name), 15)] // the kernel keeps 15 bytes of the name
	is := func(p int) bool {
		c, err := os.ReadFile(fmt.Sprintf("/proc/%d/comm", p))
		return err == nil && strings.TrimSpace(string(c)) == comm
	}
	for range 50 {
		if is(pid) {
			return pid, nil
		}
		kids, _ := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", pid, pid))
		for _, f := range strings.Fields(string(kids)) {
			if p, err := strconv.Atoi(f); err == nil && is(p) {
				return p, nil
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	return 0, fmt.Errorf("no %s process under pid %d", name, pid)
}

// cpuTime is the CPU time (user and system) a process has used so far.
func cpuTime(b *testing.B, pid int) time.Duration {
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		b.Fatal(err)
	}
	// The fields after the command name (which may hold spaces) in parentheses.
	f := strings.Fields(string(stat[strings.LastIndexByte(string(stat), ')')+1:]))
	utime, _ := strconv.ParseInt(f[11], 10, 64)
	stime, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(utime+stime) * time.Second / clockTicks
}

// clockTicks is USER_HZ, the unit of /proc/PID/stat times: 100 on Linux.
const clockTicks = 100

// statusKiB reads a field (VmRSS, VmHWM) of /proc/PID/status.
func statusKiB(b *testing.B, pid int, field string) int {
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		b.Fatal(err)
	}
	for _, line := range strings.Split(string(status), "\n") {
		if strings.HasPrefix(line, field+":") {
			n, _ := strconv.Atoi(strings.Fields(line)[1])
			return n
		}
	}
	b.Fatalf("no %s in /proc/%d/status", field, pid)
	return 0
}
