// Package browser_test checks the lab's browser (lab/browser) against the box:
// Debian's Chromium, started in the laptop's namespace, opens the box's page the
// way the laptop does (its routes, its resolv.conf), finds it clean (no console
// errors, no Content-Security-Policy violations), reaches nothing beyond the box,
// sends nothing the test did not ask for, and leaves no process behind — even
// when it hangs.
package browser_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/redoubt/redoubt/lab"
	"github.com/redoubt/redoubt/lab/browser"
	"github.com/redoubt/redoubt/lab/labtest"
)

func TestMain(m *testing.M) { labtest.Main(m) }

var boxURL = "http://" + lab.BoxLAN.String() + "/"

// env returns the shared lab, its box running and the laptop on its static
// address, and skips when Chromium cannot run here.
func env(t *testing.T) *labtest.Env {
	t.Helper()
	if err := browser.Available(browser.Options{}); err != nil {
		t.Skipf("browser test skipped: %v", err)
	}
	e := labtest.Shared(t)
	ctx := context.Background()
	if err := e.Lab.LaptopStatic(ctx); err != nil {
		t.Fatal(err)
	}
	// A fresh lab's laptop is still checking its IPv6 link-local address;
	// when that ends Chromium sees the network change and aborts what is in
	// flight. Start once the laptop's addresses are settled.
	err := waitFor(5*time.Second, func() bool {
		out, err := e.Lab.Exec(ctx, lab.Laptop, "ip", "addr", "show", "tentative")
		return err == nil && strings.TrimSpace(out) == ""
	})
	if err != nil {
		t.Logf("the laptop still has tentative addresses after 5s")
	}
	return e
}

func TestBoxPageInChromium(t *testing.T) {
	e := env(t)
	ctx := context.Background()

	// The laptop resolves through the box, as a DHCP lease would set it.
	resolv := filepath.Join("/etc/netns", e.Lab.NS(lab.Laptop), "resolv.conf")
	old, err := os.ReadFile(resolv)
	if err != nil {
		t.Fatal(err)
	}
	// Until the box serves DNS its netstack drops queries without a word, so
	// give up on a name after a second, not Chromium's default ten or more.
	if err := os.WriteFile(resolv, []byte("nameserver "+lab.BoxLAN.String()+"\noptions timeout:1 attempts:1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.WriteFile(resolv, old, 0o644) })

	// Everything the laptop sends while Chromium runs.
	capture := startCapture(t, e)
	if err := e.Lab.ResetIngress(ctx, lab.Internet); err != nil {
		t.Fatal(err)
	}
	hitsBefore, _ := e.Lab.InternetHits()

	b := browser.ForTest(t, e.Lab, browser.Options{})
	t.Logf("chromium started in %v", b.StartTime.Round(time.Millisecond))

	// It runs in the laptop's network namespace, and sees the laptop's
	// resolv.conf as /etc/resolv.conf.
	if got, want := nsInode(t, fmt.Sprintf("/proc/%d/ns/net", b.Pid())), nsInode(t, "/run/netns/"+e.Lab.NS(lab.Laptop)); got != want {
		t.Fatalf("chromium (pid %d) is in network namespace %d, the laptop's is %d", b.Pid(), got, want)
	}
	if rc, err := os.ReadFile(fmt.Sprintf("/proc/%d/root/etc/resolv.conf", b.Pid())); err != nil || !strings.Contains(string(rc), "nameserver "+lab.BoxLAN.String()) {
		t.Errorf("chromium's /etc/resolv.conf is not the laptop's (%v):\n%s", err, rc)
	}

	// The box's page, clean.
	resp, err := b.Navigate(boxURL)
	if err != nil {
		t.Fatal(err)
	}
	if resp == nil || resp.Status != 200 {
		t.Fatalf("the box's page: response %+v", resp)
	}
	// "… connected to a Redoubt box", or, for a new box, "Set up your
	// Redoubt box".
	if err := b.WaitText("Redoubt box"); err != nil {
		t.Fatal(err)
	}
	title, _ := b.Title()
	final, _ := b.URL()
	t.Logf("the box's page: %s: %d %s, title %q", final, resp.Status, resp.MimeType, title)
	shot, err := b.Screenshot("box-page")
	if err != nil {
		t.Fatal(err)
	}
	if st, err := os.Stat(shot); err != nil || st.Size() < 1000 {
		t.Errorf("screenshot %s: %v", shot, err)
	}
	if p := b.Problems(); len(p) > 0 {
		t.Errorf("the box's page had problems:\n%s", lines(p))
	}

	// A script that tries to load an image from the internet is stopped by
	// the page's Content-Security-Policy, and the test sees the violation:
	// the check above would have caught one.
	var failed bool
	if err := b.Eval(`new Promise(done => { const i = new Image(); i.onload = () => done(false); i.onerror = () => done(true);
		i.src = "http://`+lab.Tracker.String()+`/pixel.gif"; document.body.appendChild(i) })`, &failed); err != nil {
		t.Fatal(err)
	}
	if !failed {
		t.Error("an image from the internet loaded on the box's page")
	}
	if err := waitFor(3*time.Second, func() bool { return hasCSP(b.Problems()) }); err != nil {
		t.Errorf("no Content-Security-Policy violation seen for the blocked image; problems:\n%s", lines(b.Problems()))
	}
	b.ClearProblems()

	// Nothing beyond the box: the tracker, by address and by name.
	for _, u := range []string{"http://" + lab.Tracker.String() + "/", "http://" + lab.TrackerName + "/"} {
		start := time.Now()
		_, err := b.Navigate(u)
		t.Logf("%s: failed after %v", u, time.Since(start).Round(time.Millisecond))
		text, _ := b.PageText()
		netErr, isLoad := browser.IsLoadError(err)
		t.Logf("%s: %v (%s)", u, err, netErr)
		if err == nil && !isLoad || strings.Contains(text, "you reached the internet") {
			t.Errorf("chromium in the laptop loaded %s:\n%s", u, text)
		}
	}
	if _, err := b.Screenshot("tracker-blocked"); err != nil {
		t.Error(err)
	}

	packets := capture.stop(t)
	hits, _ := e.Lab.InternetHits()
	if len(hits) != len(hitsBefore) {
		t.Errorf("the internet's services were reached: %+v", hits[len(hitsBefore):])
	}
	c, err := e.Lab.Ingress(ctx, lab.Internet)
	if err != nil {
		t.Fatal(err)
	}
	if c.All != 0 {
		t.Errorf("packets reached the internet namespace: %+v", c)
	}

	// The name went to the box's DNS, as resolv.conf says, and the laptop sent
	// nothing the test did not ask for: no update checks, no telemetry, no
	// discovery.
	askedBox := regexp.MustCompile(`> ` + regexp.QuoteMeta(lab.BoxLAN.String()) + `\.53: .*\? ` + regexp.QuoteMeta(lab.TrackerName) + `\.`)
	allowed := []*regexp.Regexp{
		regexp.MustCompile(`> ` + regexp.QuoteMeta(lab.BoxLAN.String()) + `\.(80|443): `),  // the box's page
		regexp.MustCompile(`> ` + regexp.QuoteMeta(lab.Tracker.String()) + `\.(80|443): `), // the tracker the test opened
		regexp.MustCompile(`> ` + regexp.QuoteMeta(lab.BoxLAN.String()) + `\.53: .*\? ` + // its name, asked of the box
			regexp.QuoteMeta(lab.TrackerName) + `\. `),
		regexp.MustCompile(`\bARP\b`),
		// The laptop's kernel, not Chromium: it keeps soliciting a router
		// (RFC 7559 backoff), resolves neighbours, and reports its
		// multicast groups after the link comes up. (A browser's discovery
		// would show as its own UDP queries, which are not allowed.)
		regexp.MustCompile(`ICMP6, (router|neighbor) solicitation|ICMP6, multicast listener report`),
	}
	var unexpected []string
	sawQuery := false
	for _, p := range packets {
		if strings.TrimSpace(p) == "" {
			continue
		}
		sawQuery = sawQuery || askedBox.MatchString(p)
		ok := false
		for _, re := range allowed {
			if re.MatchString(p) {
				ok = true
				break
			}
		}
		if !ok {
			unexpected = append(unexpected, p)
		}
	}
	t.Logf("the laptop sent %d packets while chromium ran", len(packets))
	if !sawQuery {
		t.Errorf("chromium did not ask the box (the laptop's resolv.conf) for %s; the laptop sent:\n%s", lab.TrackerName, strings.Join(packets, "\n"))
	}
	if len(unexpected) > 0 {
		t.Errorf("the laptop sent packets the test did not ask for:\n%s", strings.Join(unexpected, "\n"))
	}
}

// TestCloseKillsEverything hangs a browser (SIGSTOP on its whole process tree)
// and checks that actions time out, that Close returns promptly, and that no
// process and no profile are left.
func TestCloseKillsEverything(t *testing.T) {
	e := env(t)
	b, err := browser.Start(context.Background(), e.Lab, browser.Options{Name: t.Name(), Timeout: 2 * time.Second, Logf: t.Logf})
	if err != nil {
		t.Fatal(err)
	}
	closed := false
	t.Cleanup(func() {
		if !closed {
			b.Close()
		}
	})
	if _, err := b.Navigate(boxURL); err != nil {
		t.Fatal(err)
	}
	pids := b.Pids()
	t.Logf("chromium runs as %d processes: %v", len(pids), pids)
	if len(pids) < 2 {
		t.Fatalf("expected chromium and its helpers, found %v", pids)
	}
	inLaptop := laptopPids(t, e)
	for _, p := range pids {
		if !inLaptop[p] {
			t.Errorf("chromium process %d is not in the laptop's namespace", p)
		}
	}

	for _, p := range pids {
		syscall.Kill(p, syscall.SIGSTOP)
	}
	start := time.Now()
	_, err = b.Title()
	if err == nil {
		t.Fatal("a stopped browser answered")
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("an action on a hung browser took %v, its timeout is 2s", d)
	}
	t.Logf("hung browser: %v after %v", err, time.Since(start).Round(time.Millisecond))

	start = time.Now()
	if err := b.Close(); err != nil {
		t.Error(err)
	}
	closed = true
	if d := time.Since(start); d > 15*time.Second {
		t.Errorf("closing a hung browser took %v", d)
	}
	t.Logf("closed a hung browser in %v", time.Since(start).Round(time.Millisecond))
	if left := b.Pids(); len(left) > 0 {
		t.Errorf("processes left after Close: %v", left)
	}
	inLaptop = laptopPids(t, e)
	for _, p := range pids {
		if inLaptop[p] {
			t.Errorf("chromium process %d is still in the laptop's namespace", p)
		}
	}
	if _, err := os.Stat(b.Dir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the profile %s is still there (%v)", b.Dir, err)
	}
}

// capture is tcpdump on the laptop's interface, recording what it sends.
type capture struct {
	cancel context.CancelFunc
	done   chan struct{}
	mu     sync.Mutex
	lines  []string
	stderr strings.Builder
}

func startCapture(t *testing.T, e *labtest.Env) *capture {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	c := &capture{cancel: cancel, done: make(chan struct{})}
	cmd := e.Lab.Cmd(ctx, lab.Laptop, "tcpdump", "-i", lab.LaptopIface, "-Q", "out", "-n", "-l", "--immediate-mode")
	cmd.Cancel = func() error { return cmd.Process.Signal(os.Interrupt) }
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	errOut, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	listening := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(errOut)
		once := sync.Once{}
		for sc.Scan() {
			c.mu.Lock()
			c.stderr.WriteString(sc.Text() + "\n")
			c.mu.Unlock()
			if strings.Contains(sc.Text(), "listening on") {
				once.Do(func() { close(listening) })
			}
		}
		once.Do(func() { close(listening) })
	}()
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			c.mu.Lock()
			c.lines = append(c.lines, sc.Text())
			c.mu.Unlock()
		}
		io.Copy(io.Discard, out)
		cmd.Wait()
		close(c.done)
	}()
	t.Cleanup(func() { cancel(); <-c.done })
	select {
	case <-listening:
	case <-time.After(10 * time.Second):
		t.Fatal("tcpdump did not start listening")
	}
	return c
}

// stop ends the capture and returns a line per packet.
func (c *capture) stop(t *testing.T) []string {
	time.Sleep(300 * time.Millisecond) // the last packets reach tcpdump
	c.cancel()
	select {
	case <-c.done:
	case <-time.After(10 * time.Second):
		t.Fatal("tcpdump did not stop")
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	t.Logf("tcpdump: %s", strings.TrimSpace(c.stderr.String()))
	return c.lines
}

func laptopPids(t *testing.T, e *labtest.Env) map[int]bool {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "ip", "netns", "pids", e.Lab.NS(lab.Laptop)).Output()
	if err != nil {
		t.Fatalf("ip netns pids: %v", err)
	}
	m := map[int]bool{}
	for _, f := range strings.Fields(string(out)) {
		var p int
		if _, err := fmt.Sscan(f, &p); err == nil {
			m[p] = true
		}
	}
	return m
}

func nsInode(t *testing.T, path string) uint64 {
	t.Helper()
	var st syscall.Stat_t
	if err := syscall.Stat(path, &st); err != nil {
		t.Fatalf("stat %s: %v", path, err)
	}
	return st.Ino
}

func hasCSP(ps []browser.Problem) bool {
	for _, p := range ps {
		if p.IsCSP() {
			return true
		}
	}
	return false
}

func lines(ps []browser.Problem) string {
	var b strings.Builder
	for _, p := range ps {
		fmt.Fprintf(&b, "  %s\n", p)
	}
	return b.String()
}

func waitFor(d time.Duration, cond func() bool) error {
	for deadline := time.Now().Add(d); !cond(); time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			return errors.New("timed out")
		}
	}
	return nil
}
