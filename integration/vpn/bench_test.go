package vpn_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/redoubt/redoubt/lab"
	"github.com/redoubt/redoubt/lab/labtest"
	"github.com/redoubt/redoubt/ui/localapi"
	"github.com/redoubt/redoubt/vpn/external"
)

const (
	benchPort = 8080
	benchSize = 256 << 20 // bytes per download
	// helperEnv makes the test binary the kernel-path client: it fetches the URL
	// with Go's HTTP client over kernel sockets and prints what it got.
	helperEnv = "REDOUBT_VPN_BENCH_FETCH"
)

// benchHelper runs the benchmark's kernel-path client when the test binary was
// started as that helper, and reports whether it was.
func benchHelper() bool {
	url := os.Getenv(helperEnv)
	if url == "" {
		return false
	}
	start := time.Now()
	resp, err := http.Get(url)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	n, err := io.CopyBuffer(io.Discard, resp.Body, make([]byte, 256<<10))
	resp.Body.Close()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	json.NewEncoder(os.Stdout).Encode(external.FetchResult{URL: url, Status: resp.StatusCode, Bytes: n, Seconds: time.Since(start).Seconds()})
	os.Exit(0)
	return true
}

// bulkServer serves /bytes/N in the internet namespace, on the tracker's address.
func bulkServer(b testing.TB, e *labtest.Env) string {
	var ln net.Listener
	err := e.Lab.Do(lab.Internet, func() (err error) {
		ln, err = net.Listen("tcp4", fmt.Sprintf("%s:%d", lab.Tracker, benchPort))
		return err
	})
	if err != nil {
		b.Fatal(err)
	}
	buf := make([]byte, 256<<10)
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n, _ := strconv.ParseInt(strings.TrimPrefix(r.URL.Path, "/bytes/"), 10, 64)
		w.Header().Set("Content-Length", strconv.FormatInt(n, 10))
		for n > 0 {
			m, err := w.Write(buf[:min(int64(len(buf)), n)])
			if err != nil {
				return
			}
			n -= int64(m)
		}
	})}
	go srv.Serve(ln)
	b.Cleanup(func() { srv.Close() })
	return fmt.Sprintf("http://%s:%d/bytes/%d", lab.Tracker, benchPort, benchSize)
}

// machineBusy is the CPU time the whole machine spent not idle, from /proc/stat.
func machineBusy(b *testing.B) time.Duration {
	raw, err := os.ReadFile("/proc/stat")
	if err != nil {
		b.Fatal(err)
	}
	f := strings.Fields(strings.SplitN(string(raw), "\n", 2)[0])
	var busy int64
	for i, v := range f[1:] {
		n, _ := strconv.ParseInt(v, 10, 64)
		if i != 3 && i != 4 && i < 8 { // not idle, not iowait, not guest (counted in user)
			busy += n
		}
	}
	return time.Duration(busy) * time.Second / 100 // USER_HZ
}

// cpu is a process's CPU time, user and system.
type cpu struct{ user, sys time.Duration }

func (c cpu) sub(o cpu) cpu { return cpu{c.user - o.user, c.sys - o.sys} }
func (c cpu) add(o cpu) cpu { return cpu{c.user + o.user, c.sys + o.sys} }

// processCPU reads a process's CPU time from /proc/PID/stat.
func processCPU(b *testing.B, pid int) cpu {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		b.Fatal(err)
	}
	s := string(raw)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
	utime, _ := strconv.ParseInt(f[11], 10, 64)
	stime, _ := strconv.ParseInt(f[12], 10, 64)
	return cpu{time.Duration(utime) * time.Second / 100, time.Duration(stime) * time.Second / 100}
}

// BenchmarkDownload downloads benchSize bytes from the internet namespace, by the
// box through its VPN tunnel (the daemon's egress dialer, wireguard-go, its
// netstack; the lab's wireguard-go server and NAT on the far side), and by Go's
// HTTP client on the box's kernel without a tunnel, over the same home router, in
// the same run. Besides MB/s it reports, per GB, the CPU seconds of the process
// that downloads (user and system: the system part includes the kernel's work
// forwarding what that process sends through the lab's NAT hops), of the VPN
// server, and of the whole machine (both ends, the kernel, the VPN server — and
// anything else running on the machine meanwhile).
//
// The kernel path needs the box's firewall off: the box runs with
// wan.firewall = false and a route to the server for the duration.
func BenchmarkDownload(b *testing.B) {
	e := labtest.SharedVPN(b)
	ctx := context.Background()
	noFirewall := e.Lab.BoxConfig(strings.Replace(e.Lab.VPNBoxConfig(), "[wan]\n", "[wan]\nfirewall = false\n", 1))
	e.RestartBox(b, noFirewall)
	defer e.RestartBox(b, "")
	waitVPN(b, e, external.StateUp, 30*time.Second)
	url := bulkServer(b, e)
	route := []string{"ip", "route", "replace", lab.Tracker.String() + "/32", "via", lab.Upstream.Addr().String()}
	if _, err := e.Lab.Exec(ctx, lab.Box, route...); err != nil {
		b.Fatal(err)
	}
	defer e.Lab.Exec(ctx, lab.Box, "ip", "route", "del", lab.Tracker.String()+"/32")
	self, err := os.Executable()
	if err != nil {
		b.Fatal(err)
	}
	report := func(b *testing.B, proc, server cpu, machine time.Duration, secs float64) {
		gb := float64(benchSize) * float64(b.N) / 1e9
		b.ReportMetric(proc.user.Seconds()/gb, "user-s/GB")
		b.ReportMetric(proc.sys.Seconds()/gb, "sys-s/GB")
		b.ReportMetric((server.user+server.sys).Seconds()/gb, "server-s/GB")
		b.ReportMetric(machine.Seconds()/gb, "machine-s/GB")
		b.ReportMetric(gb*1e3/secs, "dl-MB/s")
	}

	b.Run("tunnel", func(b *testing.B) {
		b.SetBytes(benchSize)
		pid, spid := e.Box.Pid(), e.Lab.VPN.Pid()
		var proc, server cpu
		var machine time.Duration
		var secs float64
		for range b.N {
			p0, s0, m0 := processCPU(b, pid), processCPU(b, spid), machineBusy(b)
			res, err := e.Box.API.FetchVPN(ctx, localapi.FetchRequest{URL: url, TimeoutSeconds: 300})
			if err != nil || res.Bytes != benchSize {
				b.Fatalf("through the tunnel: %+v %v", res, err)
			}
			proc = proc.add(processCPU(b, pid).sub(p0))
			server = server.add(processCPU(b, spid).sub(s0))
			machine += machineBusy(b) - m0
			secs += res.Seconds
		}
		report(b, proc, server, machine, secs)
	})
	b.Run("kernel", func(b *testing.B) {
		b.SetBytes(benchSize)
		var proc cpu
		var machine time.Duration
		var secs float64
		for range b.N {
			cmd := e.Lab.Cmd(ctx, lab.Box, self)
			cmd.Env = append(os.Environ(), helperEnv+"="+url)
			m0 := machineBusy(b)
			out, err := cmd.Output()
			machine += machineBusy(b) - m0
			if err != nil {
				b.Fatalf("the kernel path: %v\n%s", err, out)
			}
			var res external.FetchResult
			if err := json.Unmarshal(out, &res); err != nil || res.Bytes != benchSize {
				b.Fatalf("the kernel path: %+v %v (%s)", res, err, out)
			}
			ru := cmd.ProcessState.SysUsage().(*syscall.Rusage)
			proc = proc.add(cpu{time.Duration(ru.Utime.Nano()), time.Duration(ru.Stime.Nano())})
			secs += res.Seconds
		}
		report(b, proc, cpu{}, machine, secs)
	})
}
