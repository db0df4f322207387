package mesh

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redoubt/redoubt/apps/home"
	"github.com/redoubt/redoubt/lab"
	"github.com/redoubt/redoubt/lab/labtest"
)

// benchMB is each download's size.
const benchMB = 64

// routedPort is where the plain routed path's server listens, on the lab
// internet's tracker address.
const routedPort = 8090

// BenchmarkTeammateDownload measures the teammate downloading from the box over
// the tailnet (the members' page's connection check, over HTTPS): relayed over
// DERP through the box's VPN (strict mode, the default), and with direct paths
// allowed (strict = false). Against it, in the same run, the same download from
// the same handler served by the kernel on the lab's internet over the plain
// routed path: teammate → its NAT → internet. Both go through curl in the teammate; the tailnet's through the
// teammate's tailscaled (userspace networking, its SOCKS5 proxy), as a member's
// machine without a TUN device would. Also reported: the time from running the
// enrollment script to the first fetch of the box's page, and the packets the
// relay dropped per MB (its queue toward a slower receiver is 32 packets deep;
// the tunnelled TCP takes each drop as congestion).
func BenchmarkTeammateDownload(b *testing.B) {
	e := labtest.SharedMesh(b)
	m := e.Lab.Mesh
	ctx, cancel := context.WithTimeout(context.Background(), 25*time.Minute)
	defer cancel()
	waitVPN(b, ctx, e)
	tm := setUpTeam(b, ctx, e)
	b.Run("enrollment", func(b *testing.B) {
		b.ReportMetric(tm.enrolled.Seconds(), "s-script-to-page")
		b.ReportMetric(tm.joined.Seconds(), "s-box-joins")
	})
	stop := serveRouted(b, e)
	defer stop()

	b.Run("routed", func(b *testing.B) {
		download(b, ctx, m, false, fmt.Sprintf("http://%s:%d/speed?mb=%d", lab.Tracker, routedPort, benchMB))
	})
	b.Run("tailnet-strict", func(b *testing.B) {
		direct := path(b, ctx, m)
		before := derpDrops(b, ctx, e)
		download(b, ctx, m, true, fmt.Sprintf("https://%s/speed?mb=%d", boxName, benchMB))
		// Reported after download, whose ResetTimer drops earlier metrics.
		b.ReportMetric(direct, "direct")
		b.ReportMetric((derpDrops(b, ctx, e)-before)/float64(b.N*benchMB), "relay-drops/MB")
	})

	// Direct paths allowed: the box restarts with strict = false and is
	// unlocked at its console.
	e.RestartBox(b, e.Lab.BoxConfig(e.Lab.VPNBoxConfig()+"\n[mesh]\nstrict = false\n"))
	unlock(b, ctx, e)
	waitFor(b, 90*time.Second, func() error {
		ms, err := meshStatus(ctx, e)
		if err != nil {
			return err
		}
		if ms.Node != "up" || ms.Strict {
			return fmt.Errorf("the box's mesh after the restart: %+v", ms)
		}
		return fetchBox(ctx, m, boxName, 5)
	})
	b.Run("tailnet-direct", func(b *testing.B) {
		direct := path(b, ctx, m)
		before := derpDrops(b, ctx, e)
		download(b, ctx, m, true, fmt.Sprintf("https://%s/speed?mb=%d", boxName, benchMB))
		// Reported after download, whose ResetTimer drops earlier metrics.
		b.ReportMetric(direct, "direct")
		b.ReportMetric((derpDrops(b, ctx, e)-before)/float64(b.N*benchMB), "relay-drops/MB")
	})
}

// derpDrops is the number of packets the lab's DERP relay (Headscale's) has
// dropped so far, from its metrics in the coordination server's namespace.
func derpDrops(b *testing.B, ctx context.Context, e *labtest.Env) float64 {
	out, err := e.Lab.Exec(ctx, lab.Coord, "curl", "-sS", "--max-time", "5", fmt.Sprintf("http://127.0.0.1:%d/debug/varz", lab.HeadscaleMetricsPort))
	if err != nil {
		b.Fatalf("Headscale's metrics: %v", err)
	}
	var n float64
	for _, l := range strings.Split(out, "\n") {
		if f := strings.Fields(l); len(f) == 2 && strings.HasPrefix(f[0], "derp_packets_dropped{") {
			v, _ := strconv.ParseFloat(f[1], 64)
			n += v
		}
	}
	return n
}

// download fetches url from the teammate b.N times (through tailscaled when
// tailnet) and reports MB/s.
func download(b *testing.B, ctx context.Context, m *lab.Mesh, tailnet bool, url string) {
	args := []string{"--max-time", "300", "-o", "/dev/null", "-w", "%{size_download} %{time_total}", url}
	var bytes, secs float64
	b.ResetTimer()
	for range b.N {
		var out string
		var err error
		if tailnet {
			out, err = m.TeammateCurl(ctx, args...)
		} else {
			out, err = m.Teammate(ctx, append([]string{"curl", "--silent", "--show-error"}, args...)...)
		}
		if err != nil {
			b.Fatalf("%s: %v", url, err)
		}
		f := strings.Fields(out)
		if len(f) != 2 {
			b.Fatalf("%s: curl said %q", url, out)
		}
		n, _ := strconv.ParseFloat(f[0], 64)
		s, _ := strconv.ParseFloat(f[1], 64)
		if n != benchMB<<20 {
			b.Fatalf("%s: %v bytes", url, n)
		}
		bytes += n
		secs += s
	}
	b.ReportMetric(bytes/secs/1e6, "MB/s")
}

// path pings the box from the teammate and reports 1 if the path is direct, 0
// if relayed over DERP.
func path(b *testing.B, ctx context.Context, m *lab.Mesh) float64 {
	var out string
	for range 10 {
		// Pings make tailscaled try (and upgrade to) a direct path.
		out, _ = m.Tailscale(ctx, "ping", "--c", "3", "--timeout", "2s", boxName)
		if l := lastLine(out); strings.Contains(l, "pong") && !strings.Contains(l, "via DERP") {
			b.Logf("the teammate's path to the box: %s", lastLine(out))
			return 1
		}
	}
	b.Logf("the teammate's path to the box: %s", lastLine(out))
	return 0
}

func lastLine(s string) string {
	l := strings.Split(strings.TrimSpace(s), "\n")
	return l[len(l)-1]
}

// serveRouted serves the members' page's connection check from the kernel in
// the lab's internet, on the tracker's address.
func serveRouted(b *testing.B, e *labtest.Env) (stop func()) {
	var ln net.Listener
	if err := e.Lab.Do(lab.Internet, func() (err error) {
		ln, err = net.Listen("tcp4", fmt.Sprintf("%s:%d", lab.Tracker, routedPort))
		return err
	}); err != nil {
		b.Fatal(err)
	}
	h, err := home.Handler(home.Info{BoxName: func() string { return boxName }}, slog.New(slog.DiscardHandler))
	if err != nil {
		b.Fatal(err)
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second}
	go srv.Serve(ln)
	return func() { srv.Close() }
}

// unlock unlocks the box at its console.
func unlock(tb testing.TB, ctx context.Context, e *labtest.Env) {
	tb.Helper()
	bin, err := labtest.Binary()
	if err != nil {
		tb.Fatal(err)
	}
	cmd := exec.CommandContext(ctx, bin, "unlock", "--socket", e.Box.Socket)
	cmd.Stdin = strings.NewReader(passphrase + "\n")
	if out, err := cmd.CombinedOutput(); err != nil {
		tb.Fatalf("redoubt unlock: %v %s", err, out)
	}
}
