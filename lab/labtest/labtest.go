// Package labtest gives tests the lab: the redoubt binary built once per test
// binary, one lab shared by a package's tests (with the box running), removal of
// whatever a crashed run left behind, and a clear skip where the lab cannot run.
// Only tests import it.
package labtest

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/redoubt/redoubt/lab"
	"github.com/redoubt/redoubt/lab/tools"
)

var (
	binOnce sync.Once
	binPath string
	binErr  error
)

// Binary returns the redoubt executable: $REDOUBT_BIN (make test sets it), or one
// built from this module into a temporary directory, once per test binary.
func Binary() (string, error) {
	binOnce.Do(func() {
		if p := os.Getenv("REDOUBT_BIN"); p != "" {
			binPath, binErr = filepath.Abs(p)
			return
		}
		dir, err := os.MkdirTemp("", "redoubt-bin-")
		if err != nil {
			binErr = err
			return
		}
		binPath = filepath.Join(dir, "redoubt")
		cmd := exec.Command("go", "build", "-o", binPath, "github.com/redoubt/redoubt/cmd/redoubt")
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			binErr = fmt.Errorf("building redoubt: %v\n%s", err, out)
		}
	})
	return binPath, binErr
}

// Require skips t when the lab cannot run here, saying why.
func Require(t testing.TB) {
	t.Helper()
	if err := lab.Supported(); err != nil {
		t.Skipf("lab test skipped: %v (make test runs these as root in CI)", err)
	}
}

// Env is a package's shared lab with its box.
type Env struct {
	Lab *lab.Lab
	Box *lab.RunningBox
	// config is the box's config file when RestartBox is given none.
	config string
}

var (
	envMu  sync.Mutex
	shared *Env
)

// Shared returns the package's lab, building it (and starting the box with the
// default config) on first use. Main removes it when the package's tests end.
func Shared(t testing.TB) *Env { return shared1(t, true, false, false) }

// SharedLab is Shared without the box, for tests that run their own netstack on
// the box's LAN port.
func SharedLab(t testing.TB) *Env { return shared1(t, false, false, false) }

// SharedVPN is Shared with the lab's VPN provider, and the box configured to use
// it (lab.Options.VPN, lab.VPNBoxConfig).
func SharedVPN(t testing.TB) *Env { return shared1(t, true, true, false) }

// SharedMesh is SharedVPN with the team mesh (lab.Options.Mesh): a real
// Headscale beside the internet (Lab.Mesh: URL, API key, CA) and a teammate
// running tailscaled behind its own NAT. It skips t, saying how to build them,
// when Headscale and tailscaled are not built (scripts/tools.sh).
func SharedMesh(t testing.TB) *Env {
	t.Helper()
	Require(t)
	if _, err := tools.Find(); err != nil {
		t.Skipf("lab mesh test skipped: %v", err)
	}
	return shared1(t, true, true, true)
}

func shared1(t testing.TB, withBox, vpn, mesh bool) *Env {
	t.Helper()
	Require(t)
	envMu.Lock()
	defer envMu.Unlock()
	if shared != nil {
		if shared.Box != nil {
			if done, err := shared.Box.Exited(); done {
				t.Fatalf("the shared box has exited (%v):\n%s", err, shared.Box.Output())
			}
		}
		return shared
	}
	bin, err := Binary()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	// The lab outlives the test that built it, so it logs to standard error
	// (in verbose runs) rather than to that test.
	logf := func(format string, args ...any) {
		if testing.Verbose() {
			fmt.Fprintf(os.Stderr, format+"\n", args...)
		}
	}
	l, err := lab.Up(ctx, lab.Options{Binary: bin, Logf: logf, VPN: vpn, Mesh: mesh})
	if err != nil {
		t.Fatalf("building the lab: %v", err)
	}
	e := &Env{Lab: l, config: l.BoxConfig(l.VPNBoxConfig())}
	shared = e
	if !withBox {
		return e
	}
	if e.Box, err = l.StartBox(ctx, e.config); err != nil {
		t.Fatalf("starting the box: %v", err)
	}
	return e
}

// RestartBox stops the shared box (unless it already ended: a test killed
// it) and starts it again with config ("" for the default), for tests of
// restarts and reconfiguration.
func (e *Env) RestartBox(t testing.TB, config string) {
	t.Helper()
	if e.Box != nil {
		if done, _ := e.Box.Exited(); done {
			// Killed by the test: nothing to stop.
		} else if err := e.Box.Stop(10 * time.Second); err != nil {
			t.Fatalf("stopping the box: %v\n%s", err, e.Box.Output())
		}
	}
	if config == "" {
		config = e.config
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	b, err := e.Lab.StartBox(ctx, config)
	if err != nil {
		t.Fatal(err)
	}
	e.Box = b
}

// Main runs a package's tests: it first removes labs that crashed runs left
// behind, and afterwards removes the package's shared lab whatever happened.
func Main(m *testing.M) {
	if lab.Supported() == nil {
		lab.Sweep(false, nil)
	}
	// Interrupted (Ctrl-C, a CI timeout): remove the lab before dying.
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
	go func() {
		<-sig
		envMu.Lock()
		if shared != nil {
			shared.Lab.Down()
		}
		os.Exit(130)
	}()
	code := m.Run()
	signal.Stop(sig)
	envMu.Lock()
	if shared != nil {
		if code != 0 && shared.Box != nil {
			fmt.Fprintf(os.Stderr, "--- box log (lab %s) ---\n%s\n", shared.Lab.Prefix, tailString(shared.Box.Output(), 80))
		}
		if m := shared.Lab.Mesh; code != 0 && m != nil {
			fmt.Fprintf(os.Stderr, "--- headscale log (lab %s) ---\n%s\n", shared.Lab.Prefix, tailString(m.HeadscaleLog(), 40))
			fmt.Fprintf(os.Stderr, "--- teammate's tailscaled log (lab %s) ---\n%s\n", shared.Lab.Prefix, tailString(m.TailscaledLog(), 40))
		}
		shared.Lab.Down()
	}
	envMu.Unlock()
	os.Exit(code)
}

func tailString(s string, lines int) string {
	n := 0
	for i := len(s) - 1; i >= 0; i-- {
		if s[i] == '\n' {
			n++
			if n > lines {
				return s[i+1:]
			}
		}
	}
	return s
}
