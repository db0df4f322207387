package host

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/redoubt/redoubt/apps"
)

// An external app is a program with its own files: a directory named by its
// ID holding manifest.toml (with a [program] table) and whatever the program
// needs. The host runs it in a bubblewrap sandbox:
//
//   - its own namespaces (user, PID, IPC, UTS, cgroup, mount, network): the
//     network namespace has only a loopback, so nothing it sends leaves;
//   - as nobody (uid 65534) with no capabilities, a new session, killed with
//     the host;
//   - seeing /usr read-only, its own directory read-only at /app, an empty
//     /tmp, and one directory with two Unix sockets: app.sock, where it
//     serves HTTP, and env.sock, where the host serves its Env (records,
//     blobs, members, options, origins). Nothing of the box's state, the
//     vault or other apps' data is in its view.
//
// The host carries requests to app.sock with the caller in the
// Redoubt-Caller header (base64url of apps.Caller's JSON; a client's own
// Redoubt-* headers are dropped), so the program needs no TLS and no
// identity logic of its own.
type external struct {
	dir   string
	m     apps.Manifest
	bwrap string

	mu   sync.Mutex
	done chan struct{} // closed when the running program exits
}

// Header names between the host and an external app.
const (
	CallerHeader  = "Redoubt-Caller"
	appSocketEnv  = "REDOUBT_APP_SOCKET"
	envSocketEnv  = "REDOUBT_ENV_SOCKET"
	sandboxSocks  = "/run/redoubt-app"
	externalStart = 15 * time.Second
)

// loadExternal reads the external apps in dir.
func loadExternal(dir string) ([]*external, error) {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading the external apps in %s: %w", dir, err)
	}
	var out []*external
	for _, e := range entries {
		if !e.IsDir() || strings.HasPrefix(e.Name(), ".") {
			continue
		}
		appDir := filepath.Join(dir, e.Name())
		raw, err := os.ReadFile(filepath.Join(appDir, "manifest.toml"))
		if err != nil {
			return nil, fmt.Errorf("external app %s: %w", appDir, err)
		}
		m, err := apps.ParseManifest(raw)
		if err != nil {
			return nil, fmt.Errorf("external app %s: %w", appDir, err)
		}
		if m.Program == nil {
			return nil, fmt.Errorf("external app %s: manifest: program: missing: an external app names its program ([program] command = [\"bin/server\"])", appDir)
		}
		if m.ID != e.Name() {
			return nil, fmt.Errorf("external app %s: manifest: id: %q: an external app's directory is named by its id", appDir, m.ID)
		}
		prog := filepath.Join(appDir, filepath.FromSlash(m.Program.Command[0]))
		fi, err := os.Stat(prog)
		if err != nil || !fi.Mode().IsRegular() || fi.Mode().Perm()&0o111 == 0 {
			return nil, fmt.Errorf("external app %s: manifest: program.command[0]: %s is not an executable file", appDir, m.Program.Command[0])
		}
		out = append(out, &external{dir: appDir, m: m})
	}
	return out, nil
}

// sockDir is where the app's two sockets live on the box.
func (h *Host) sockDir(id string) string { return filepath.Join(h.d.RunDir, "external", id) }

// start runs the program and returns the handler that carries requests to
// it; the program stops when ctx ends.
func (e *external) start(ctx context.Context, env *env) (http.Handler, error) {
	in := env.r.in
	h := in.h
	if h.d.RunDir == "" {
		return nil, errors.New("the box has no run directory for external apps")
	}
	bwrap := h.cfg.Bwrap
	if bwrap == "" {
		p, err := exec.LookPath("bwrap")
		if err != nil {
			return nil, errors.New("bubblewrap (bwrap) is not installed: external apps run only in its sandbox")
		}
		bwrap = p
	}
	dir := h.sockDir(in.m.ID)
	if err := os.RemoveAll(dir); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	envLn, err := net.Listen("unix", filepath.Join(dir, "env.sock"))
	if err != nil {
		return nil, fmt.Errorf("the app's env socket: %w", err)
	}
	envSrv := &http.Server{Handler: envAPI(env), ReadHeaderTimeout: 10 * time.Second,
		ErrorLog: slog.NewLogLogger(in.log.Handler(), slog.LevelDebug)}
	go envSrv.Serve(envLn)

	args := []string{
		"--unshare-all", "--die-with-parent", "--new-session", "--cap-drop", "ALL",
		"--uid", "65534", "--gid", "65534",
		"--ro-bind", "/usr", "/usr",
		"--symlink", "usr/lib", "/lib", "--symlink", "usr/lib64", "/lib64",
		"--symlink", "usr/bin", "/bin", "--symlink", "usr/sbin", "/sbin",
		"--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp",
		"--ro-bind", e.dir, "/app",
		"--bind", dir, sandboxSocks,
		"--chdir", "/app",
		"--clearenv",
		"--setenv", "PATH", "/usr/bin:/bin",
		"--setenv", "HOME", "/tmp",
		"--setenv", "REDOUBT_APP_ID", in.m.ID,
		"--setenv", appSocketEnv, sandboxSocks + "/app.sock",
		"--setenv", envSocketEnv, sandboxSocks + "/env.sock",
		"--", "/app/" + e.m.Program.Command[0],
	}
	args = append(args, e.m.Program.Command[1:]...)
	cmd := exec.Command(bwrap, args...)
	cmd.Env = []string{}
	out := &lineLogger{log: in.log}
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		envSrv.Close()
		return nil, fmt.Errorf("starting the app's sandbox: %w", err)
	}
	done := make(chan struct{})
	e.mu.Lock()
	e.done = done
	e.mu.Unlock()
	go func() {
		err := cmd.Wait()
		envSrv.Close()
		os.RemoveAll(dir)
		close(done)
		if ctx.Err() == nil {
			// Exited by itself: the run ends, and the owner sees why.
			in.log.Warn("the app's program exited", "err", err)
			go func() {
				in.stop(apps.ErrStopped, "its program exited")
				in.setState(stateFailed, fmt.Sprintf("its program exited (%v): %s", err, out.last()))
			}()
		}
	}()
	go func() {
		<-ctx.Done()
		syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(2 * time.Second):
			syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		}
	}()

	sock := filepath.Join(dir, "app.sock")
	deadline := time.Now().Add(externalStart)
	for {
		c, err := net.DialUnix("unix", nil, &net.UnixAddr{Name: sock, Net: "unix"})
		if err == nil {
			c.Close()
			break
		}
		select {
		case <-done:
			return nil, fmt.Errorf("the app's program exited before serving: %s", out.last())
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			return nil, fmt.Errorf("the app's program did not serve on its socket within %v", externalStart)
		}
	}
	return proxy(sock, in), nil
}

// wait waits for the program to be gone.
func (e *external) wait() {
	e.mu.Lock()
	done := e.done
	e.mu.Unlock()
	if done == nil {
		return
	}
	select {
	case <-done:
	case <-time.After(5 * time.Second):
	}
}

// proxy carries requests to the app's socket, with the caller.
func proxy(sock string, in *instance) http.Handler {
	rp := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.Out.URL.Scheme, pr.Out.URL.Host = "http", "app"
			pr.Out.Host = pr.In.Host
			for k := range pr.Out.Header {
				if strings.HasPrefix(strings.ToLower(k), "redoubt-") {
					delete(pr.Out.Header, k)
				}
			}
			if c, ok := apps.CallerFrom(pr.In.Context()); ok {
				raw, _ := json.Marshal(c)
				pr.Out.Header.Set(CallerHeader, base64.RawURLEncoding.EncodeToString(raw))
			}
		},
		Transport: &http.Transport{
			DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
				return net.DialUnix("unix", nil, &net.UnixAddr{Name: sock, Net: "unix"})
			},
			MaxIdleConns:          16,
			IdleConnTimeout:       30 * time.Second,
			ResponseHeaderTimeout: 60 * time.Second,
		},
		FlushInterval: -1,
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			in.log.Warn("the app's program did not answer", "path", r.URL.Path, "err", err)
			in.h.page(w, r, http.StatusBadGateway, in, in.m.Name+" did not answer.", "Its program may have stopped: see the box's log.")
		},
	}
	return rp
}

// CallerOf decodes the caller an external app's request carries. External
// apps written in Go may import package host for it; others decode the
// header themselves.
func CallerOf(r *http.Request) (apps.Caller, bool) {
	raw, err := base64.RawURLEncoding.DecodeString(r.Header.Get(CallerHeader))
	if err != nil || len(raw) == 0 {
		return apps.Caller{}, false
	}
	var c apps.Caller
	if json.Unmarshal(raw, &c) != nil {
		return apps.Caller{}, false
	}
	return c, true
}

// lineLogger logs a program's output, a line at a time, and keeps the last
// few lines for error messages.
type lineLogger struct {
	log *slog.Logger
	mu  sync.Mutex
	buf []byte
	end []string
}

func (l *lineLogger) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.buf = append(l.buf, p...)
	for {
		i := bytes.IndexByte(l.buf, '\n')
		if i < 0 {
			break
		}
		line := string(l.buf[:i])
		l.buf = l.buf[i+1:]
		if len(line) > 500 {
			line = line[:500] + "…"
		}
		l.log.Info("program: " + line)
		l.end = append(l.end, line)
		if len(l.end) > 5 {
			l.end = l.end[1:]
		}
	}
	if len(l.buf) > 4096 {
		l.buf = l.buf[:0]
	}
	return len(p), nil
}

func (l *lineLogger) last() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.end) == 0 {
		return "no output"
	}
	return strings.Join(l.end, " / ")
}
