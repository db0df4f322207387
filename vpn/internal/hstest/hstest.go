// Package hstest runs a real Headscale (v0.29.2, built by scripts/tools.sh) on
// loopback for the vpn room's tests: TLS from a test CA, its embedded DERP and
// STUN, sqlite in a temporary directory, a random port, an API key made with its
// own CLI. It also runs real tailscaled nodes (userspace networking, state and
// socket in a temporary directory) that enroll with it. Tests skip, saying how
// to build the programs, when they are missing. Only tests import it.
package hstest

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/redoubt/redoubt/lab/coord"
	"github.com/redoubt/redoubt/lab/tools"
)

// Server is a running Headscale.
type Server struct {
	URL    string
	APIKey string
	CA     []byte // PEM
	CAFile string
	Dir    string
	// HTTP trusts the server's CA.
	HTTP *http.Client

	t     testing.TB
	tools tools.Paths
	conf  coord.Server
	cmd   *exec.Cmd
	done  chan struct{}
	log   *bytes.Buffer
}

// Tools returns the programs, skipping t when they are not built.
func Tools(t testing.TB) tools.Paths {
	t.Helper()
	p, err := tools.Find()
	if err != nil {
		t.Skipf("Headscale/tailscaled not built: %v", err)
	}
	return p
}

// Start runs Headscale for the test, stopped when it ends.
func Start(t testing.TB) *Server {
	t.Helper()
	paths := Tools(t)
	dir := t.TempDir()
	ports := freePorts(t, 2)
	s := &Server{t: t, tools: paths, Dir: dir, conf: coord.Server{
		Dir: dir, Addr: netip.MustParseAddr("127.0.0.1"), Port: ports[0], STUNPort: ports[1],
	}}
	ca, err := s.conf.Write()
	if err != nil {
		t.Fatal(err)
	}
	s.URL, s.CA, s.CAFile = s.conf.URL(), ca.PEM, s.conf.CAPath()
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(ca.PEM)
	s.HTTP = &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: pool}, Proxy: nil,
	}}
	start := time.Now()
	s.Start()
	t.Cleanup(s.Stop)
	out, err := s.CLI("apikeys", "create", "--expiration", "24h")
	if err != nil {
		t.Fatalf("creating an API key: %v\n%s", err, out)
	}
	f := strings.Fields(out)
	if len(f) == 0 || !strings.HasPrefix(f[len(f)-1], "hskey-api-") {
		t.Fatalf("headscale apikeys create said %q", out)
	}
	s.APIKey = f[len(f)-1]
	t.Logf("headscale %s up at %s in %v", tools.HeadscaleVersion, s.URL, time.Since(start).Round(time.Millisecond))
	return s
}

// Start runs (again) the server, on the same port with the same state, and
// waits until it answers.
func (s *Server) Start() {
	s.t.Helper()
	if s.cmd != nil {
		return
	}
	s.log = &bytes.Buffer{}
	cmd := exec.Command(s.tools.Headscale, "-c", s.conf.ConfigPath(), "serve")
	cmd.Stdout, cmd.Stderr = s.log, s.log
	cmd.Env = append(os.Environ(), "HOME="+s.Dir)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		s.t.Fatalf("starting headscale: %v", err)
	}
	s.cmd, s.done = cmd, make(chan struct{})
	go func(done chan struct{}) { cmd.Wait(); close(done) }(s.done)
	deadline := time.Now().Add(20 * time.Second)
	for {
		resp, err := s.HTTP.Get(s.URL + "/health")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return
			}
		}
		select {
		case <-s.done:
			s.t.Fatalf("headscale exited at start:\n%s", s.log)
		default:
		}
		if time.Now().After(deadline) {
			s.Stop()
			s.t.Fatalf("headscale did not answer within 20s (%v):\n%s", err, s.log)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Stop stops the server (its state stays for Start).
func (s *Server) Stop() {
	if s.cmd == nil {
		return
	}
	s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.done:
	case <-time.After(5 * time.Second):
		s.cmd.Process.Kill()
		<-s.done
	}
	s.cmd = nil
}

// Log is what the server has written since it last started.
func (s *Server) Log() string {
	if s.log == nil {
		return ""
	}
	return s.log.String()
}

// CLI runs the headscale command line against the server (its Unix socket).
func (s *Server) CLI(args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, s.tools.Headscale, append([]string{"-c", s.conf.ConfigPath()}, args...)...)
	cmd.Env = append(os.Environ(), "HOME="+s.Dir)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// Node is a running tailscaled in userspace-networking mode.
type Node struct {
	Name   string
	Dir    string
	Socket string
	// Env makes the enrollment scripts use this node: TAILSCALE (the CLI),
	// TAILSCALE_SOCKET, and SSL_CERT_FILE (the server's CA).
	Env []string

	t    testing.TB
	cli  string
	cmd  *exec.Cmd
	done chan struct{}
	log  *bytes.Buffer
}

// StartNode runs a tailscaled named name for the test (stopped when it ends);
// it waits for its socket.
func (s *Server) StartNode(name string) *Node {
	s.t.Helper()
	dir := s.t.TempDir()
	n := &Node{Name: name, Dir: dir, Socket: filepath.Join(dir, "tailscaled.sock"), t: s.t, cli: s.tools.Tailscale, log: &bytes.Buffer{}}
	env := []string{
		"TS_NO_LOGS_NO_SUPPORT=true", "TS_LOGS_DIR=" + dir, "SSL_CERT_FILE=" + s.CAFile,
		// Everything stays on loopback: no port mapping probes of the host's
		// gateway, no control-plane default, stray HTTP to a closed local port.
		"TS_DISABLE_PORTMAPPER=1", "TS_DISABLE_UPNP=true", "TS_PANIC_IF_HIT_MAIN_CONTROL=1",
		"TS_ASSUME_NETWORK_UP_FOR_TEST=1", "HTTP_PROXY=http://127.0.0.1:9", "HTTPS_PROXY=http://127.0.0.1:9",
		"NO_PROXY=127.0.0.1,localhost",
	}
	cmd := exec.Command(s.tools.Tailscaled, "--tun=userspace-networking", "--statedir="+dir,
		"--state="+filepath.Join(dir, "tailscaled.state"), "--socket="+n.Socket, "--port=0")
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdout, cmd.Stderr = n.log, n.log
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		s.t.Fatalf("starting tailscaled: %v", err)
	}
	n.cmd, n.done = cmd, make(chan struct{})
	go func() { cmd.Wait(); close(n.done) }()
	s.t.Cleanup(n.Stop)
	n.Env = append(env, "TAILSCALE="+s.tools.Tailscale, "TAILSCALE_SOCKET="+n.Socket)
	deadline := time.Now().Add(15 * time.Second)
	for {
		if c, err := net.Dial("unix", n.Socket); err == nil {
			c.Close()
			return n
		}
		select {
		case <-n.done:
			s.t.Fatalf("tailscaled exited at start:\n%s", n.log)
		default:
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("tailscaled made no socket within 15s:\n%s", n.log)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// CLI runs the tailscale command line against the node.
func (n *Node) CLI(ctx context.Context, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, n.cli, append([]string{"--socket=" + n.Socket}, args...)...)
	cmd.Env = append(os.Environ(), n.Env...)
	cmd.WaitDelay = time.Second
	out, err := cmd.CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("tailscale %s: %v: %s", strings.Join(args, " "), err, bytes.TrimSpace(out))
	}
	return string(out), nil
}

// Command is tailscale with args against the node, not started, for tests
// that read its output as it comes (an interactive login).
func (n *Node) Command(ctx context.Context, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, n.cli, append([]string{"--socket=" + n.Socket}, args...)...)
	cmd.Env = append(os.Environ(), n.Env...)
	cmd.WaitDelay = time.Second
	return cmd
}

// Log is what tailscaled has written.
func (n *Node) Log() string { return n.log.String() }

// Stop ends tailscaled.
func (n *Node) Stop() {
	select {
	case <-n.done:
		return
	default:
	}
	n.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-n.done:
	case <-time.After(5 * time.Second):
		n.cmd.Process.Kill()
		<-n.done
	}
}

// freePorts finds n free TCP ports on loopback (also free for UDP, checked).
func freePorts(t testing.TB, n int) []uint16 {
	t.Helper()
	var ports []uint16
	var held []net.Listener
	defer func() {
		for _, l := range held {
			l.Close()
		}
	}()
	for len(ports) < n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		held = append(held, l)
		port := l.Addr().(*net.TCPAddr).Port
		if u, err := net.ListenPacket("udp", fmt.Sprintf("127.0.0.1:%d", port)); err == nil {
			u.Close()
			ports = append(ports, uint16(port))
		}
	}
	return ports
}
