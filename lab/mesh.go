package lab

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/redoubt/redoubt/lab/coord"
	"github.com/redoubt/redoubt/lab/tools"
)

// The mesh's nodes (Options.Mesh): the coordination server beside the
// internet, and a team member behind a NAT of its own.
const (
	Coord      = "coord"
	TeamRouter = "teamrouter"
	Teammate   = "teammate"

	// HeadscaleMetricsPort is where Headscale serves its metrics on the
	// coordination namespace's loopback (/debug/varz holds the DERP relay's
	// counters).
	HeadscaleMetricsPort = 9090
)

// The mesh's addressing.
var (
	// Headscale is the coordination server's address on the internet: https
	// on 443 (API, control, embedded DERP), STUN on udp/3478.
	Headscale = netip.MustParseAddr("198.18.1.2")
	// CoordUpstream is the internet's address facing it.
	CoordUpstream = netip.MustParsePrefix("198.18.1.1/24")
	// The team router's public side and the internet's address facing it.
	TeamRouterWAN = netip.MustParsePrefix("198.18.2.2/24")
	TeamUpstream  = netip.MustParsePrefix("198.18.2.1/24")
	// The team member's home network behind the team router.
	TeamLAN      = netip.MustParsePrefix("192.168.77.1/24")
	TeammateAddr = netip.MustParsePrefix("192.168.77.2/24")
	// TeammateSOCKS is tailscaled's SOCKS5 proxy in the teammate (userspace
	// networking has no TUN: programs there reach the tailnet through it).
	TeammateSOCKS = netip.MustParseAddrPort("127.0.0.1:1055")
	// Interfaces: the internet's toward the coordination server and the team
	// router; the team router's; the teammate's.
	InternetCoordIface = "coord0"
	InternetTeamIface  = "team0"
	TeamRouterWANIface = "wan0"
	TeamRouterLANIface = "lan0"
	TeammateIface      = "eth0"
	// TeamDomain is the tailnet's MagicDNS domain in the lab.
	TeamDomain = "team.lab"
)

// Mesh is the lab's team mesh: a real Headscale (v0.29.2, built by
// scripts/tools.sh) with TLS from a per-run CA, and a teammate running a real
// tailscaled (userspace networking) and the tailscale CLI behind a NAT.
type Mesh struct {
	// URL is Headscale's server_url (https://198.18.1.2); APIKey an API key
	// the lab made with `headscale apikeys create`.
	URL    string
	APIKey string
	// CA is the lab CA's certificate (PEM), at CAFile: Headscale's TLS
	// certificate is from it; clients get it as SSL_CERT_FILE.
	CA     []byte
	CAFile string
	// Dir holds Headscale's config and state and the teammate's tailscaled.
	Dir string
	// TeammateSocket is the teammate's tailscaled socket.
	TeammateSocket string
	// Tools are the programs' paths.
	Tools tools.Paths
	// HeadscaleUp and TailscaledUp are how long each took to start (until
	// Headscale answered over TLS; until tailscaled's socket answered).
	HeadscaleUp, TailscaledUp time.Duration

	lab  *Lab
	conf coord.Server
	mu   sync.Mutex
	hs   *Proc
	tsd  *Proc
}

// addMesh builds the coordination server's node and the team member's, and
// starts Headscale and the teammate's tailscaled.
func (l *Lab) addMesh(ctx context.Context) error {
	l.logf("lab %s: adding the team mesh (Headscale, team router, teammate)", l.Prefix)
	paths, err := tools.Find()
	if err != nil {
		return fmt.Errorf("the lab's mesh: %w", err)
	}
	for _, tool := range []string{"unshare", "curl"} {
		if _, err := exec.LookPath(tool); err != nil {
			return fmt.Errorf("the lab's mesh needs %q (run scripts/deps.sh)", tool)
		}
	}
	for _, n := range []string{Coord, TeamRouter, Teammate} {
		if err := l.AddNode(ctx, n, false); err != nil {
			return err
		}
	}
	for _, link := range [][4]string{
		{Coord, "wan0", Internet, InternetCoordIface},
		{TeamRouter, TeamRouterWANIface, Internet, InternetTeamIface},
		{Teammate, TeammateIface, TeamRouter, TeamRouterLANIface},
	} {
		if err := l.AddLink(ctx, link[0], link[1], "", link[2], link[3], ""); err != nil {
			return err
		}
	}
	for _, s := range [][]string{
		{Internet, "ip", "addr", "add", CoordUpstream.String(), "dev", InternetCoordIface},
		{Internet, "ip", "addr", "add", TeamUpstream.String(), "dev", InternetTeamIface},
		{Coord, "ip", "addr", "add", netip.PrefixFrom(Headscale, CoordUpstream.Bits()).String(), "dev", "wan0"},
		{Coord, "ip", "route", "add", "default", "via", CoordUpstream.Addr().String()},
		{TeamRouter, "ip", "addr", "add", TeamRouterWAN.String(), "dev", TeamRouterWANIface},
		{TeamRouter, "ip", "addr", "add", TeamLAN.String(), "dev", TeamRouterLANIface},
		{TeamRouter, "ip", "route", "add", "default", "via", TeamUpstream.Addr().String()},
		{TeamRouter, "sysctl", "-q", "-w", "net.ipv4.ip_forward=1"},
		{Teammate, "ip", "addr", "add", TeammateAddr.String(), "dev", TeammateIface},
		{Teammate, "ip", "route", "add", "default", "via", TeamLAN.Addr().String()},
	} {
		if _, err := l.Exec(ctx, s[0], s[1:]...); err != nil {
			return err
		}
	}
	// The team member's home router: everything leaves from its address.
	if err := l.nft(ctx, TeamRouter, routerNAT(TeamRouterWANIface)); err != nil {
		return err
	}
	// The teammate's own /etc/ssl (ip netns exec binds /etc/netns/<ns>/ssl
	// over /etc/ssl), so an enrollment script's certificate goes there and
	// never into this machine's trust store.
	if out, err := exec.CommandContext(ctx, "cp", "-a", "/etc/ssl", filepath.Join("/etc/netns", l.NS(Teammate), "ssl")).CombinedOutput(); err != nil {
		return fmt.Errorf("giving the teammate its own /etc/ssl: %v: %s", err, out)
	}

	dir := filepath.Join(l.Dir, "mesh")
	m := &Mesh{Dir: dir, Tools: paths, lab: l, TeammateSocket: filepath.Join(dir, "teammate", "tailscaled.sock"),
		conf: coord.Server{Dir: filepath.Join(dir, "headscale"), Addr: Headscale, BaseDomain: TeamDomain,
			Metrics: fmt.Sprintf("127.0.0.1:%d", HeadscaleMetricsPort)}}
	ca, err := m.conf.Write()
	if err != nil {
		return fmt.Errorf("writing Headscale's config: %w", err)
	}
	m.URL, m.CA, m.CAFile = m.conf.URL(), ca.PEM, m.conf.CAPath()
	l.Mesh = m
	if err := m.StartHeadscale(ctx); err != nil {
		return err
	}
	if _, err := m.NewAPIKey(ctx); err != nil {
		return err
	}
	return m.StartTailscaled(ctx)
}

// NewAPIKey makes a new Headscale API key, valid for 30 days, and makes it
// the lab's: APIKey and the api-key file. A test that revokes the lab's key
// calls it so the tests after it find a working one.
func (m *Mesh) NewAPIKey(ctx context.Context) (string, error) {
	out, err := m.HeadscaleCLI(ctx, "apikeys", "create", "--expiration", "720h")
	if err != nil {
		return "", fmt.Errorf("creating Headscale's API key: %w", err)
	}
	f := strings.Fields(out)
	if len(f) == 0 || !strings.HasPrefix(f[len(f)-1], "hskey-api-") {
		return "", fmt.Errorf("headscale apikeys create said %q", out)
	}
	m.APIKey = f[len(f)-1]
	if err := os.WriteFile(filepath.Join(m.Dir, "api-key"), []byte(m.APIKey+"\n"), 0o600); err != nil {
		return "", err
	}
	return m.APIKey, nil
}

// httpClient trusts the lab CA; dial says where its connections are made.
func (m *Mesh) httpClient(dial func(ctx context.Context, network, addr string) (net.Conn, error)) *http.Client {
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(m.CA)
	return &http.Client{Timeout: 15 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: pool}, Proxy: nil, DisableKeepAlives: true, DialContext: dial,
	}}
}

// HTTPClientFrom is an HTTP client trusting the lab CA whose connections are
// made in node's namespace (such as Internet, to reach Headscale as the box's
// VPN exit would). Every dial enters the namespace itself: an http.Transport
// dials on goroutines of its own, so a client used inside Lab.Do would not.
func (m *Mesh) HTTPClientFrom(node string) *http.Client {
	return m.httpClient(m.lab.DialContext(node))
}

// ResetTeammate logs the teammate's tailscaled out (it forgets its node key),
// so the next test enrolls it afresh. A node Headscale has already deleted
// cannot log out: then tailscaled starts again without its state.
func (m *Mesh) ResetTeammate(ctx context.Context) error {
	if st, err := m.TeammateStatus(ctx); err == nil && st.BackendState == "NeedsLogin" && st.Self == nil {
		return nil
	}
	if _, err := m.Tailscale(ctx, "logout"); err == nil {
		return nil
	}
	if err := m.StopTailscaled(); err != nil {
		return err
	}
	if err := os.Remove(filepath.Join(filepath.Dir(m.TeammateSocket), "tailscaled.state")); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return m.StartTailscaled(ctx)
}

// StartHeadscale runs Headscale in the coordination server's namespace (again,
// with the same state), returning once it answers over TLS.
func (m *Mesh) StartHeadscale(ctx context.Context) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.hs != nil {
		if done, _ := m.hs.Exited(); !done {
			return nil
		}
	}
	l := m.lab
	start := time.Now()
	p, err := l.Start(Coord, "headscale", m.Tools.Headscale, "-c", m.conf.ConfigPath(), "serve")
	if err != nil {
		return err
	}
	hc := m.HTTPClientFrom(Coord)
	hc.Timeout = 2 * time.Second
	deadline := time.Now().Add(20 * time.Second)
	for {
		resp, lastErr := hc.Get(m.URL + "/health")
		if lastErr == nil {
			resp.Body.Close()
			if resp.StatusCode != 200 {
				lastErr = fmt.Errorf("HTTP %d", resp.StatusCode)
			}
		}
		if lastErr == nil {
			break
		}
		if done, err := p.Exited(); done {
			return fmt.Errorf("headscale exited at start (%v):\n%s", err, tail(p.Output(), 20))
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			p.Stop(time.Second)
			return fmt.Errorf("headscale did not answer at %s within 20s (%v):\n%s", m.URL, lastErr, tail(p.Output(), 20))
		}
		time.Sleep(50 * time.Millisecond)
	}
	m.hs = p
	m.HeadscaleUp = time.Since(start)
	l.logf("lab %s: headscale up at %s in %v", l.Prefix, m.URL, m.HeadscaleUp.Round(time.Millisecond))
	return nil
}

// StopHeadscale takes the coordination server away (its state stays).
func (m *Mesh) StopHeadscale() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.hs == nil {
		return nil
	}
	err := m.hs.Stop(5 * time.Second)
	m.hs = nil
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		err = nil // it exits non-zero on SIGTERM
	}
	return err
}

// HeadscaleLog is what Headscale has written.
func (m *Mesh) HeadscaleLog() string {
	b, _ := os.ReadFile(filepath.Join(m.lab.Dir, "headscale.log"))
	return string(b)
}

// HeadscaleCLI runs the headscale command line against the server (its Unix
// socket).
func (m *Mesh) HeadscaleCLI(ctx context.Context, args ...string) (string, error) {
	return m.lab.Exec(ctx, Coord, append([]string{m.Tools.Headscale, "-c", m.conf.ConfigPath()}, args...)...)
}

// teammateEnv is the teammate's environment for tailscaled, its CLI and
// enrollment scripts.
func (m *Mesh) teammateEnv() []string {
	return []string{
		"TS_NO_LOGS_NO_SUPPORT=true",
		"TS_LOGS_DIR=" + filepath.Dir(m.TeammateSocket),
		"SSL_CERT_FILE=" + m.CAFile,
		"TAILSCALE=" + m.Tools.Tailscale,
		"TAILSCALE_SOCKET=" + m.TeammateSocket,
	}
}

// StartTailscaled runs the teammate's tailscaled (again, with its state),
// returning once its socket answers.
func (m *Mesh) StartTailscaled(ctx context.Context) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.tsd != nil {
		if done, _ := m.tsd.Exited(); !done {
			return nil
		}
	}
	l := m.lab
	dir := filepath.Dir(m.TeammateSocket)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	start := time.Now()
	argv := append([]string{"env"}, m.teammateEnv()...)
	argv = append(argv, m.Tools.Tailscaled, "--tun=userspace-networking", "--statedir="+dir,
		"--state="+filepath.Join(dir, "tailscaled.state"), "--socket="+m.TeammateSocket, "--port=41641",
		"--socks5-server="+TeammateSOCKS.String())
	p, err := l.Start(Teammate, "teammate-tailscaled", argv...)
	if err != nil {
		return err
	}
	deadline := time.Now().Add(15 * time.Second)
	for {
		if c, err := net.Dial("unix", m.TeammateSocket); err == nil {
			c.Close()
			break
		}
		if done, err := p.Exited(); done {
			return fmt.Errorf("the teammate's tailscaled exited at start (%v):\n%s", err, tail(p.Output(), 20))
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			p.Stop(time.Second)
			return fmt.Errorf("the teammate's tailscaled made no socket within 15s:\n%s", tail(p.Output(), 20))
		}
		time.Sleep(20 * time.Millisecond)
	}
	m.tsd = p
	m.TailscaledUp = time.Since(start)
	l.logf("lab %s: teammate's tailscaled up in %v", l.Prefix, m.TailscaledUp.Round(time.Millisecond))
	return nil
}

// StopTailscaled stops the teammate's tailscaled (its state stays).
func (m *Mesh) StopTailscaled() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.tsd == nil {
		return nil
	}
	err := m.tsd.Stop(5 * time.Second)
	m.tsd = nil
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		err = nil
	}
	return err
}

// TailscaledLog is what the teammate's tailscaled has written.
func (m *Mesh) TailscaledLog() string {
	b, _ := os.ReadFile(filepath.Join(m.lab.Dir, "teammate-tailscaled.log"))
	return string(b)
}

// TeammateCmd is argv in the teammate's namespace with the teammate's
// environment (TAILSCALE, TAILSCALE_SOCKET, SSL_CERT_FILE, …).
func (m *Mesh) TeammateCmd(ctx context.Context, argv ...string) *exec.Cmd {
	cmd := m.lab.Cmd(ctx, Teammate, argv...)
	cmd.Env = append(cmd.Env, m.teammateEnv()...)
	return cmd
}

// Teammate runs argv in the teammate and returns its combined output; a
// failure carries it.
func (m *Mesh) Teammate(ctx context.Context, argv ...string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	out, err := m.TeammateCmd(ctx, argv...).CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("teammate: %s: %v: %s", strings.Join(argv, " "), err, strings.TrimSpace(string(out)))
	}
	return string(out), nil
}

// Tailscale runs the tailscale CLI against the teammate's tailscaled.
func (m *Mesh) Tailscale(ctx context.Context, args ...string) (string, error) {
	return m.Teammate(ctx, append([]string{m.Tools.Tailscale, "--socket=" + m.TeammateSocket}, args...)...)
}

// TailscaleStatus is the part of `tailscale status --json` the lab reads.
type TailscaleStatus struct {
	BackendState   string
	AuthURL        string
	CurrentTailnet *struct{ Name, MagicDNSSuffix string }
	Self           *TailscalePeer
	Peer           map[string]*TailscalePeer
}

// TailscalePeer is a node in a TailscaleStatus.
type TailscalePeer struct {
	ID           string
	HostName     string
	DNSName      string
	OS           string
	TailscaleIPs []netip.Addr
	Online       bool
	Tags         []string
	CurAddr      string // the direct path, "" when relayed
	Relay        string
}

// TeammateStatus is `tailscale status --json` in the teammate.
func (m *Mesh) TeammateStatus(ctx context.Context) (TailscaleStatus, error) {
	var st TailscaleStatus
	out, err := m.Teammate(ctx, m.Tools.Tailscale, "--socket="+m.TeammateSocket, "status", "--json")
	if jerr := json.Unmarshal([]byte(out), &st); jerr != nil {
		if err == nil {
			err = jerr
		}
		return st, fmt.Errorf("tailscale status in the teammate: %w", err)
	}
	return st, nil
}

// Enroll runs an enrollment shell script in the teammate as its member would,
// non-interactively (--yes, plus args), against the teammate's tailscaled. The
// certificate the script installs goes to the teammate's own /etc/ssl; the
// script's write to /usr/local/share/ca-certificates lands on a private tmpfs.
func (m *Mesh) Enroll(ctx context.Context, script string, args ...string) (string, error) {
	path := filepath.Join(m.Dir, "enroll-"+strconv.FormatInt(time.Now().UnixNano(), 36)+".sh")
	if err := os.WriteFile(path, []byte(script), 0o600); err != nil {
		return "", err
	}
	defer os.Remove(path)
	inner := `set -e
mkdir -p /usr/local/share/ca-certificates
mount -t tmpfs redoubt-lab /usr/local/share/ca-certificates
exec sh "$@"`
	argv := append([]string{"unshare", "--mount", "--propagation", "private", "sh", "-c", inner, "sh", path, "--yes"}, args...)
	return m.Teammate(ctx, argv...)
}

// TeammateCurl runs curl in the teammate through tailscaled's SOCKS5 proxy,
// so names and addresses are the tailnet's (MagicDNS names resolve there).
func (m *Mesh) TeammateCurl(ctx context.Context, args ...string) (string, error) {
	return m.Teammate(ctx, append([]string{"curl", "--silent", "--show-error", "--max-time", "10",
		"--proxy", "socks5h://" + TeammateSOCKS.String()}, args...)...)
}

// ServeTeammate serves h on the teammate's tailnet address, port port: an
// HTTP server on the teammate's loopback, where its userspace tailscaled
// delivers what comes in from the tailnet. stop ends it.
func (m *Mesh) ServeTeammate(port uint16, h http.Handler) (stop func(), err error) {
	var ln net.Listener
	if err := m.lab.Do(Teammate, func() error {
		var err error
		ln, err = net.Listen("tcp", netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), port).String())
		return err
	}); err != nil {
		return nil, fmt.Errorf("listening in the teammate: %w", err)
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second}
	done := make(chan struct{})
	go func() { srv.Serve(ln); close(done) }()
	return func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
		<-done
	}, nil
}
