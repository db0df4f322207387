// Package browser gives lab tests a real browser: Debian's Chromium, headless,
// running inside a lab node's network namespace (the laptop's, by default), driven
// from the test process with chromedp. The browser reaches the box exactly as the
// laptop does — by the laptop's address, routes and resolv.conf — and nothing
// else. The package owns the browser's process tree, its throwaway profile, the
// certificates it trusts, and the artifacts a test keeps (screenshots, Chromium's
// log). Only tests import it (integration/… packages); nothing the box runs may.
//
// # Crossing the namespace
//
// The test process lives in the root namespace; the browser must live in the
// laptop's. Chromium is started as
//
//	ip netns exec <prefix>-laptop /usr/lib/chromium/chromium --remote-debugging-pipe …
//
// and chromedp talks the DevTools protocol over the two pipes Chromium inherits as
// file descriptors 3 and 4. This was chosen over the alternatives because:
//
//   - A pipe belongs to no network namespace, so nothing has to bridge one: no
//     DevTools port is opened anywhere (not on the laptop's loopback, where a page
//     under test could probe it, and not in the root namespace), no loopback proxy
//     dials into the namespace per connection, and there is no port to discover
//     or race for.
//   - `ip netns exec` does what a laptop's own process would see: it enters the
//     network namespace, and in a private mount namespace bind-mounts
//     /etc/netns/<ns>/resolv.conf over /etc/resolv.conf, so Chromium resolves
//     names through whatever the laptop's DHCP client wrote there (the box's DNS,
//     once it serves one). The DHCP script rewrites that file in place, so a
//     browser started before the lease sees the new servers.
//   - It then execs Chromium in the same process, so the pid chromedp waits on is
//     Chromium's own, and the process group set at fork is Chromium's group.
//   - Starting chromedp's allocator from a thread inside the namespace (lab.Do)
//     does not work: chromedp forks the browser from a goroutine of its own,
//     locked to a thread that is not in the namespace, so Chromium would quietly
//     start in the root namespace; and even if it did not, the child would miss
//     the resolv.conf bind mount.
//
// # Nothing left behind, nothing sent
//
// Chromium and every helper it spawns (zygote, renderers, GPU and network
// services) run in one process group. Close kills that group and any process still
// naming the profile directory on its command line, then removes the profile;
// the allocator's context kills the group too, and Chromium gets SIGKILL if the
// test binary dies (PR_SET_PDEATHSIG, on a thread chromedp keeps alive for the
// browser's lifetime). lab.Down would also kill what is left in the namespace, but
// nothing here relies on it.
//
// Chromium is started from its real binary, not Debian's /usr/bin/chromium
// wrapper (which exports Google API keys and re-enables remote extensions), with
// an environment of its own (HOME inside the profile, no proxy variables), the
// flags in defaultFlags (no background networking, component or safe-browsing
// updates, sync, metrics, domain reliability, network time, translation, media
// router or QUIC; Chromium's own Google service hosts never resolve) and the
// profile preferences in defaultPrefs (no DNS probe of 8.8.8.8 after a failed
// lookup, no prediction, no sign-in): the browser sends nothing but what the test
// makes it send. The integration/browser test checks that by capturing every
// packet the laptop sends while Chromium runs; when a new Chromium finds a new way
// to phone home, that test names it.
//
// # Certificates
//
// Options.TrustCA puts CA certificates into the profile's own NSS database
// ($HOME/.pki/nssdb, with certutil from libnss3-tools), which is how Chromium on
// Linux learns locally trusted roots, and what an owner installing the box's CA
// does. (--ignore-certificate-errors-spki-list was rejected: it matches only the
// certificates a server sends, so it can pin the box's leaf but cannot express
// "trust this CA".) Options.IgnoreCertErrors accepts any certificate, for tests
// that need HTTPS but not its trust.
package browser

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/redoubt/redoubt/lab"
)

// Default timeouts.
const (
	DefaultStartTimeout = 30 * time.Second
	DefaultTimeout      = 10 * time.Second
	closeTimeout        = 10 * time.Second
)

// Options configure a browser. The zero value is a headless Chromium in the
// laptop's namespace that trusts no extra CA.
type Options struct {
	// Node is the lab node whose network namespace the browser runs in;
	// default lab.Laptop.
	Node string
	// Name names the browser's artifacts directory (screenshots, Chromium's
	// log): <artifacts>/screenshots/<Name>/. ForTest sets it to t.Name();
	// default "browser".
	Name string
	// TrustCA holds PEM certificates of CAs the browser trusts for HTTPS, as
	// after an owner installed the box's CA certificate. It needs certutil
	// (libnss3-tools).
	TrustCA []byte
	// IgnoreCertErrors makes the browser accept any certificate
	// (--ignore-certificate-errors).
	IgnoreCertErrors bool
	// StartTimeout bounds Start; default DefaultStartTimeout.
	StartTimeout time.Duration
	// Timeout bounds each action (navigation, wait, click, …); default
	// DefaultTimeout.
	Timeout time.Duration
	// Width and Height are the window size; default 1280×800.
	Width, Height int
	// Flags add to or override Chromium's command-line flags: a string value
	// gives --name=value, true gives --name, false removes a default flag.
	Flags map[string]any
	// Exec is the Chromium binary; default ExecPath().
	Exec string
	// Logf receives the package's progress lines; default discards them.
	// Chromium's own output goes to chromium.log in the artifacts directory.
	Logf func(format string, args ...any)
}

// flag is one Chromium command-line flag.
type flag struct {
	name  string
	value any
}

// defaultFlags keep Chromium headless, runnable as root, and quiet on the
// network. The DevTools pipe and the profile directory are added by Start. A
// test that wants Chromium's own Google hosts to resolve (to watch the box stop
// them) sets Options.Flags["host-resolver-rules"] = false.
func defaultFlags() []flag {
	return []flag{
		{"headless", true},
		{"no-sandbox", true}, // the lab runs as root
		{"disable-gpu", true},
		{"no-first-run", true},
		{"no-default-browser-check", true},
		{"disable-background-networking", true},
		{"disable-component-update", true},
		{"disable-sync", true},
		{"disable-quic", true},
		{"disable-default-apps", true},
		{"disable-extensions", true},
		{"disable-breakpad", true},
		{"disable-domain-reliability", true},
		{"disable-client-side-phishing-detection", true},
		{"disable-search-engine-choice-screen", true},
		{"no-pings", true},
		{"metrics-recording-only", true},
		{"safebrowsing-disable-auto-update", true},
		{"no-proxy-server", true},
		{"password-store", "basic"},
		{"use-mock-keychain", true},
		{"disable-features", "Translate,OptimizationHints,MediaRouter,DialMediaRouteProvider," +
			"InterestFeedContentSuggestions,CertificateTransparencyComponentUpdater," +
			"AutofillServerCommunication,NetworkTimeServiceQuerying,PrivacySandboxSettings4"},
		// Pages under test keep their timers and live updates when nothing looks.
		{"disable-background-timer-throttling", true},
		{"disable-backgrounding-occluded-windows", true},
		{"disable-renderer-backgrounding", true},
		{"disable-dev-shm-usage", true},
		{"hide-scrollbars", true},
		{"mute-audio", true},
		{"force-color-profile", "srgb"},
		{"lang", "en-US"},
		// What no flag turns off in Chromium 156: the on-device model component
		// registers itself and asks update.googleapis.com at once, and the
		// Google-account cookie check asks accounts.google.com. These names (and
		// the rest of Chromium's own service hosts) never resolve, so no query
		// leaves; every other name resolves through the node's resolv.conf.
		{"host-resolver-rules", "MAP *.googleapis.com ~NOTFOUND, MAP accounts.google.com ~NOTFOUND, " +
			"MAP clients*.google.com ~NOTFOUND, MAP dl.google.com ~NOTFOUND, MAP *.gvt1.com ~NOTFOUND, MAP *.gvt2.com ~NOTFOUND"},
	}
}

// defaultPrefs seed the profile (Default/Preferences), as Debian's
// master_preferences would for a first run: above all, no DNS probe of
// google.com at 8.8.8.8 and 8.8.4.4 after a page fails to resolve
// (alternate_error_pages), no prediction or preconnection, no sign-in.
const defaultPrefs = `{
  "alternate_error_pages": {"enabled": false},
  "net": {"network_prediction_options": 2},
  "search": {"suggest_enabled": false},
  "signin": {"allowed": false, "allowed_on_next_startup": false},
  "safebrowsing": {"enabled": false},
  "translate": {"enabled": false},
  "autofill": {"profile_enabled": false, "credit_card_enabled": false},
  "credentials_enable_service": false,
  "credentials_enable_autosignin": false,
  "browser": {"check_default_browser": false, "has_seen_welcome_page": true}
}
`

// ExecPath returns the Chromium binary Start runs by default: $REDOUBT_CHROMIUM,
// Debian's /usr/lib/chromium/chromium, or chromium on PATH.
func ExecPath() (string, error) {
	if p := os.Getenv("REDOUBT_CHROMIUM"); p != "" {
		return exec.LookPath(p)
	}
	if st, err := os.Stat("/usr/lib/chromium/chromium"); err == nil && !st.IsDir() {
		return "/usr/lib/chromium/chromium", nil
	}
	if p, err := exec.LookPath("chromium"); err == nil {
		return p, nil
	}
	return "", errors.New("chromium is not installed (scripts/deps.sh installs Debian's chromium)")
}

// Available reports why a browser with opts cannot start here, or nil.
func Available(opts Options) error {
	if err := lab.Supported(); err != nil {
		return err
	}
	if opts.Exec == "" {
		if _, err := ExecPath(); err != nil {
			return err
		}
	} else if _, err := exec.LookPath(opts.Exec); err != nil {
		return fmt.Errorf("chromium %q: %w", opts.Exec, err)
	}
	if len(opts.TrustCA) > 0 {
		if _, err := exec.LookPath("certutil"); err != nil {
			return errors.New("trusting a CA needs certutil (scripts/deps.sh installs libnss3-tools)")
		}
	}
	return nil
}

// Browser is a Chromium running in a lab node, with one tab the helpers drive.
// Its methods are not safe for concurrent use: they act on one tab.
type Browser struct {
	// Node is the lab node the browser runs in.
	Node string
	// Dir holds the browser's profile and home; Close removes it.
	Dir string
	// Artifacts is where screenshots and chromium.log go.
	Artifacts string
	// StartTime is how long Chromium took from exec to a tab ready for
	// commands.
	StartTime time.Duration

	timeout time.Duration
	logf    func(string, ...any)
	logMu   sync.Mutex
	quiet   bool // set when closed: later log lines are dropped (a test's t.Logf would panic)
	log     *os.File

	ctx         context.Context // the tab's chromedp context
	cancelTab   context.CancelFunc
	cancelAlloc context.CancelFunc
	pgid        atomic.Int64

	problems problems
	shots    atomic.Int64 // screenshots taken, for unnamed steps

	closeOnce sync.Once
	closeErr  error
}

// ForTest starts a browser for t with Start and closes it when t ends. It skips
// t, saying why, when the lab or Chromium (or certutil, for TrustCA) is missing.
// The browser logs to t, and its artifacts are named after t.
func ForTest(t testing.TB, l *lab.Lab, opts Options) *Browser {
	t.Helper()
	if err := Available(opts); err != nil {
		t.Skipf("browser test skipped: %v", err)
	}
	if opts.Name == "" {
		opts.Name = t.Name()
	}
	if opts.Logf == nil {
		opts.Logf = t.Logf
	}
	b, err := Start(context.Background(), l, opts)
	if err != nil {
		t.Fatalf("starting chromium: %v", err)
	}
	t.Cleanup(func() {
		if err := b.Close(); err != nil {
			t.Errorf("closing chromium: %v", err)
		}
	})
	return b
}

// Start runs Chromium in opts.Node's namespace of l, with a fresh profile under
// l.Dir, and opens a tab. ctx bounds the start, not the browser's life: the
// browser runs until Close.
func Start(ctx context.Context, l *lab.Lab, opts Options) (_ *Browser, err error) {
	if opts.Node == "" {
		opts.Node = lab.Laptop
	}
	if opts.Name == "" {
		opts.Name = "browser"
	}
	if opts.StartTimeout <= 0 {
		opts.StartTimeout = DefaultStartTimeout
	}
	if opts.Timeout <= 0 {
		opts.Timeout = DefaultTimeout
	}
	if opts.Width <= 0 || opts.Height <= 0 {
		opts.Width, opts.Height = 1280, 800
	}
	if opts.Logf == nil {
		opts.Logf = func(string, ...any) {}
	}
	if opts.Exec == "" {
		if opts.Exec, err = ExecPath(); err != nil {
			return nil, err
		}
	} else if opts.Exec, err = exec.LookPath(opts.Exec); err != nil {
		return nil, fmt.Errorf("finding chromium %q: %w", opts.Exec, err)
	}
	ipPath, err := exec.LookPath("ip")
	if err != nil {
		return nil, fmt.Errorf("the browser needs ip (iproute2): %w", err)
	}
	if _, err := os.Stat(filepath.Join("/run/netns", l.NS(opts.Node))); err != nil {
		return nil, fmt.Errorf("lab node %q has no namespace: %w", opts.Node, err)
	}
	artifacts, err := ArtifactsDir(opts.Name)
	if err != nil {
		return nil, err
	}

	b := &Browser{Node: opts.Node, Artifacts: artifacts, timeout: opts.Timeout}
	b.logf = func(format string, args ...any) {
		b.logMu.Lock()
		defer b.logMu.Unlock()
		if !b.quiet {
			opts.Logf(format, args...)
		}
	}
	b.problems.init()
	if b.Dir, err = os.MkdirTemp(l.Dir, "browser-"); err != nil {
		return nil, fmt.Errorf("making the browser's directory: %w", err)
	}
	defer func() {
		if err != nil {
			b.Close()
		}
	}()
	profile, home := filepath.Join(b.Dir, "profile"), filepath.Join(b.Dir, "home")
	for _, d := range []string{filepath.Join(profile, "Default"), home} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return nil, err
		}
	}
	if err := os.WriteFile(filepath.Join(profile, "Default", "Preferences"), []byte(defaultPrefs), 0o600); err != nil {
		return nil, fmt.Errorf("seeding the profile: %w", err)
	}
	if len(opts.TrustCA) > 0 {
		if err := trustCAs(ctx, home, opts.TrustCA); err != nil {
			return nil, err
		}
	}
	if b.log, err = openLog(filepath.Join(artifacts, "chromium.log")); err != nil {
		return nil, fmt.Errorf("opening chromium's log: %w", err)
	}
	fmt.Fprintf(b.log, "=== %s: chromium in %s (%s), profile %s\n", time.Now().Format(time.RFC3339), opts.Node, l.NS(opts.Node), profile)

	allocOpts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(opts.Exec),
		chromedp.UserDataDir(profile),
		chromedp.WindowSize(opts.Width, opts.Height),
		chromedp.CombinedOutput(b.log),
		chromedp.NoInheritEnv,
		chromedp.Env(
			"HOME="+home,
			"XDG_CONFIG_HOME="+filepath.Join(home, ".config"),
			"XDG_CACHE_HOME="+filepath.Join(home, ".cache"),
			"XDG_DATA_HOME="+filepath.Join(home, ".local", "share"),
			"TMPDIR="+b.Dir,
			"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
			"LANG=C.UTF-8",
			"TZ=UTC",
		),
		chromedp.ModifyCmdFunc(func(cmd *exec.Cmd) {
			// ip netns exec enters the namespace, bind-mounts its
			// resolv.conf, and execs Chromium in this very process. The
			// DevTools pipes (ExtraFiles, fds 3 and 4) pass through.
			cmd.Args = append([]string{"ip", "netns", "exec", l.NS(opts.Node), cmd.Path}, cmd.Args[1:]...)
			cmd.Path = ipPath
			cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
			cmd.Cancel = func() error {
				return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			}
			cmd.WaitDelay = 2 * time.Second
		}),
	}
	defaults := defaultFlags()
	flags := map[string]any{}
	for _, f := range defaults {
		flags[f.name] = f.value
	}
	if opts.IgnoreCertErrors {
		flags["ignore-certificate-errors"] = true
	}
	for k, v := range opts.Flags {
		flags[k] = v
	}
	for _, f := range defaults {
		allocOpts = append(allocOpts, chromedp.Flag(f.name, flags[f.name]))
		delete(flags, f.name)
	}
	for _, k := range slices.Sorted(maps.Keys(flags)) {
		allocOpts = append(allocOpts, chromedp.Flag(k, flags[k]))
	}

	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), allocOpts...)
	b.cancelAlloc = cancelAlloc
	b.ctx, b.cancelTab = chromedp.NewContext(allocCtx,
		chromedp.WithListener(b.problems.record),
		chromedp.WithLogf(b.logf),
		chromedp.WithErrorf(func(format string, args ...any) { b.logf("chromedp: "+format, args...) }),
	)

	// The first Do starts Chromium and attaches the tab. It must run on the
	// tab's own context (chromedp ties the process to it), so the start's
	// deadline is enforced from here.
	begin := time.Now()
	started := make(chan error, 1)
	go func() { started <- chromedp.Do(b.ctx) }()
	timer := time.NewTimer(opts.StartTimeout)
	defer timer.Stop()
	select {
	case err = <-started:
	case <-timer.C:
		err = fmt.Errorf("chromium did not start within %v", opts.StartTimeout)
	case <-ctx.Done():
		err = ctx.Err()
	}
	if c := chromedp.FromContext(b.ctx); c != nil && c.Browser != nil && c.Browser.Process() != nil {
		b.pgid.Store(int64(c.Browser.Process().Pid))
	}
	if err != nil {
		return nil, fmt.Errorf("starting chromium in %s: %w (its log: %s)\n%s", opts.Node, err, b.log.Name(), tailFile(b.log.Name(), 15))
	}
	b.StartTime = time.Since(begin)
	b.logf("chromium started in %s (%s), pid %d, in %v", opts.Node, l.NS(opts.Node), b.pgid.Load(), b.StartTime.Round(time.Millisecond))
	return b, nil
}

// Close kills Chromium and every process it spawned and removes its profile.
// It is safe to call more than once, and returns within a few seconds even when
// the browser hangs.
func (b *Browser) Close() error {
	b.closeOnce.Do(func() {
		var errs []error
		if b.ctx != nil {
			// Ask Chromium to quit, briefly; then kill whatever is left.
			done := make(chan error, 1)
			go func() {
				ctx, cancel := context.WithTimeout(b.ctx, 3*time.Second)
				defer cancel()
				done <- chromedp.Cancel(ctx)
			}()
			select {
			case <-done:
			case <-time.After(4 * time.Second):
			}
		}
		if n := b.kill(); n > 0 {
			b.logf("killed %d chromium processes still running or exiting after it quit", n)
		}
		if b.cancelTab != nil {
			// Both cancel funcs wait for the process to be reaped and the
			// allocator to finish; bound the wait.
			done := make(chan struct{})
			go func() {
				b.cancelTab()
				b.cancelAlloc()
				close(done)
			}()
			select {
			case <-done:
			case <-time.After(closeTimeout):
				errs = append(errs, fmt.Errorf("chromedp did not finish within %v after chromium was killed", closeTimeout))
			}
		}
		if b.Dir != "" {
			if err := removeAll(b.Dir); err != nil {
				errs = append(errs, fmt.Errorf("removing the browser's profile: %w", err))
			}
		}
		if b.log != nil {
			b.log.Close()
		}
		b.logMu.Lock()
		b.quiet = true
		b.logMu.Unlock()
		b.closeErr = errors.Join(errs...)
	})
	return b.closeErr
}

// Pid is Chromium's main process (also its process group), 0 before it ran.
func (b *Browser) Pid() int { return int(b.pgid.Load()) }

// Pids returns the processes of this browser still running: its process group,
// and any process naming its profile on the command line.
func (b *Browser) Pids() []int {
	return b.scan(false)
}

// kill SIGKILLs the browser's processes until none has been seen for a few
// passes in a row (a helper can fork as its parent dies), and returns how many
// it killed.
func (b *Browser) kill() int {
	if pg := b.pgid.Load(); pg > 0 {
		syscall.Kill(-int(pg), syscall.SIGKILL)
	}
	killed, quiet := map[int]bool{}, 0
	for deadline := time.Now().Add(3 * time.Second); quiet < 3 && time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		pids := b.scan(true)
		for _, p := range pids {
			killed[p] = true
		}
		if len(pids) > 0 {
			quiet = 0
		} else {
			quiet++
		}
	}
	return len(killed)
}

// scan lists (and with kill, SIGKILLs) the processes in the browser's group or
// with its profile directory on their command line. Zombies are skipped: they
// are dead already and their parent reaps them.
func (b *Browser) scan(kill bool) []int {
	if b.Dir == "" {
		return nil
	}
	want := []byte("--user-data-dir=" + filepath.Join(b.Dir, "profile"))
	pg := int(b.pgid.Load())
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	var pids []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		stat, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		// pid (comm) state ppid pgrp …; comm may hold spaces and parens.
		rest := stat[bytes.LastIndexByte(stat, ')')+1:]
		f := strings.Fields(string(rest))
		if len(f) < 3 || f[0] == "Z" {
			continue
		}
		pgrp, _ := strconv.Atoi(f[2])
		match := pg > 0 && pgrp == pg
		if !match {
			cmdline, _ := os.ReadFile("/proc/" + e.Name() + "/cmdline")
			for arg := range bytes.SplitSeq(cmdline, []byte{0}) {
				if bytes.Equal(arg, want) {
					match = true
					break
				}
			}
		}
		if match {
			pids = append(pids, pid)
			if kill {
				syscall.Kill(pid, syscall.SIGKILL)
			}
		}
	}
	return pids
}

// trustCAs writes an NSS database at home/.pki/nssdb trusting every
// certificate in pemData as a CA for TLS servers.
func trustCAs(ctx context.Context, home string, pemData []byte) error {
	ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	db := filepath.Join(home, ".pki", "nssdb")
	if err := os.MkdirAll(db, 0o700); err != nil {
		return err
	}
	certutil := func(args ...string) error {
		out, err := exec.CommandContext(ctx, "certutil", append([]string{"-d", "sql:" + db}, args...)...).CombinedOutput()
		if err != nil {
			return fmt.Errorf("certutil %s: %v: %s", strings.Join(args, " "), err, bytes.TrimSpace(out))
		}
		return nil
	}
	if err := certutil("-N", "--empty-password"); err != nil {
		return err
	}
	certs, err := splitPEM(pemData)
	if err != nil {
		return err
	}
	for i, c := range certs {
		f := filepath.Join(home, fmt.Sprintf("ca-%d.pem", i))
		if err := os.WriteFile(f, c, 0o600); err != nil {
			return err
		}
		if err := certutil("-A", "-n", fmt.Sprintf("redoubt-lab-ca-%d", i), "-t", "C,,", "-i", f); err != nil {
			return err
		}
	}
	return nil
}

// SetTimeout changes the bound on each action (Options.Timeout) and returns
// the previous one, for a step expected to fail quickly or to take long.
func (b *Browser) SetTimeout(d time.Duration) time.Duration {
	old := b.timeout
	b.timeout = d
	return old
}

// Context returns the tab's chromedp context, for actions the helpers lack. Run
// them under a timeout derived from it.
func (b *Browser) Context() context.Context { return b.ctx }

// actx is the context of one action: the tab's, bounded by the timeout.
func (b *Browser) actx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(b.ctx, b.timeout)
}

// loaded is when this process loaded the package. It is set once and never
// changes.
var loaded = time.Now()

// openLog appends to path, so the browsers of one test share a log, but
// replaces a log left by an earlier run.
func openLog(path string) (*os.File, error) {
	flags := os.O_CREATE | os.O_WRONLY | os.O_APPEND
	if st, err := os.Stat(path); err == nil && st.ModTime().Before(loaded) {
		flags |= os.O_TRUNC
	}
	return os.OpenFile(path, flags, 0o644)
}

func removeAll(dir string) error {
	var err error
	for deadline := time.Now().Add(3 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		// A dying helper can still write into the profile.
		if err = os.RemoveAll(dir); err == nil || time.Now().After(deadline) {
			return err
		}
	}
}

func tailFile(path string, n int) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	b, _ := io.ReadAll(io.LimitReader(f, 4<<20))
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
