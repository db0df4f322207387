package host

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/redoubt/redoubt/apps"
	"github.com/redoubt/redoubt/ui/pki"
	"github.com/redoubt/redoubt/vault"
	"github.com/redoubt/redoubt/vpn/tailnet"
)

const probeManifest = `
id = "probe"
name = "Probe"
description = "An app the host's tests run."
version = "1.0.0"
exposure = ["lan", "tailnet", "box"]

[[listeners]]
name = "web"
proto = "tcp"
port = 8441

[[listeners]]
name = "echo"
proto = "tcp"
port = 8442

[[listeners]]
name = "ping"
proto = "udp"
port = 8443

[[options]]
name = "greeting"
type = "string"
default = "hi"
description = "What it says."
live = true

[[options]]
name = "mode"
type = "choice"
choices = ["fast", "safe"]
default = "safe"
description = "How."

[[connect]]
label = "Browser"
path = "/"
`

// probe is the test's app: it answers who called, keeps records, holds
// WebSockets open, and echoes on its extra TCP and UDP listeners.
type probe struct {
	m       apps.Manifest
	starts  atomic.Int32
	watched chan apps.Options
	removed chan apps.Member
}

func newProbe() *probe {
	return &probe{m: apps.MustParseManifest([]byte(probeManifest)), watched: make(chan apps.Options, 8), removed: make(chan apps.Member, 8)}
}

func (p *probe) Manifest() apps.Manifest { return p.m }

func (p *probe) Start(ctx context.Context, env apps.Env) (http.Handler, error) {
	p.starts.Add(1)
	env.WatchOptions(func(o apps.Options) { p.watched <- o })
	env.OnMemberRemoved(func(m apps.Member) { p.removed <- m })
	if ln, err := env.Listen("echo", apps.LAN); err == nil {
		go func() {
			for {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				go func() { io.Copy(c, c); c.Close() }()
			}
		}()
	}
	if pc, err := env.ListenPacket("ping", apps.LAN); err == nil {
		go func() {
			buf := make([]byte, 1500)
			for {
				n, a, err := pc.ReadFrom(buf)
				if err != nil {
					return
				}
				pc.WriteTo(buf[:n], a)
			}
		}()
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		c, _ := apps.CallerFrom(r.Context())
		json.NewEncoder(w).Encode(map[string]any{"caller": c, "greeting": env.Options().String("greeting"), "mode": env.Options().String("mode")})
	})
	mux.HandleFunc("GET /cors", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Access-Control-Allow-Origin", "*")
		w.Header().Set("Access-Control-Allow-Credentials", "true")
		io.WriteString(w, "data")
	})
	mux.HandleFunc("PUT /data/{k}", func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		if err := env.Records().Put(r.PathValue("k"), b); err != nil {
			http.Error(w, err.Error(), 500)
		}
	})
	mux.HandleFunc("GET /data/{k}", func(w http.ResponseWriter, r *http.Request) {
		b, err := env.Records().Get(r.PathValue("k"))
		if err != nil {
			http.Error(w, err.Error(), 404)
			return
		}
		w.Write(b)
	})
	mux.HandleFunc("GET /ws", func(w http.ResponseWriter, r *http.Request) {
		c, err := websocket.Accept(w, r, nil)
		if err != nil {
			return
		}
		defer c.CloseNow()
		c.Write(r.Context(), websocket.MessageText, []byte("hello"))
		c.Read(r.Context())
	})
	return mux, nil
}

// fakeLAN is the LAN port on loopback: its listeners on 127.0.0.1, at
// random ports remembered by the port asked for.
type fakeLAN struct {
	mu    sync.Mutex
	tcp   map[uint16]string
	udp   map[uint16]string
	addrs []io.Closer
}

func newFakeLAN() *fakeLAN { return &fakeLAN{tcp: map[uint16]string{}, udp: map[uint16]string{}} }

func (f *fakeLAN) Addr() netip.Addr { return netip.MustParseAddr("127.0.0.1") }
func (f *fakeLAN) ListenTCP(port uint16) (net.Listener, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err == nil {
		f.mu.Lock()
		f.tcp[port] = ln.Addr().String()
		f.addrs = append(f.addrs, ln)
		f.mu.Unlock()
	}
	return ln, err
}
func (f *fakeLAN) ListenUDP(port uint16) (net.PacketConn, error) {
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err == nil {
		f.mu.Lock()
		f.udp[port] = pc.LocalAddr().String()
		f.addrs = append(f.addrs, pc)
		f.mu.Unlock()
	}
	return pc, err
}
func (f *fakeLAN) close() {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, c := range f.addrs {
		c.Close()
	}
}

// fakeTailnet is the node on loopback: listeners on 127.0.0.2, and devices
// told apart by the loopback address they send from.
type fakeTailnet struct {
	mu      sync.Mutex
	tcp     map[string]string // ":port" → where it listens
	devices map[netip.Addr]tailnet.Identity
}

func (f *fakeTailnet) Listen(network, addr string) (net.Listener, error) {
	ln, err := net.Listen("tcp", "127.0.0.2:0")
	if err == nil {
		f.mu.Lock()
		f.tcp[addr] = ln.Addr().String()
		f.mu.Unlock()
	}
	return ln, err
}
func (f *fakeTailnet) ListenPacket(network, addr string) (net.PacketConn, error) {
	return net.ListenPacket("udp", "127.0.0.2:0")
}
func (f *fakeTailnet) WhoIs(_ context.Context, remote netip.AddrPort) (tailnet.Identity, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	id, ok := f.devices[remote.Addr()]
	if !ok {
		return tailnet.Identity{}, tailnet.ErrUnknownPeer
	}
	return id, nil
}
func (f *fakeTailnet) Status() tailnet.Status {
	return tailnet.Status{State: "up", Name: "kestrel", FQDN: "kestrel.team.example", Addrs: []netip.Addr{netip.MustParseAddr("100.64.0.1")}}
}
func (f *fakeTailnet) Peers() []tailnet.Peer {
	return []tailnet.Peer{{Name: "alex-laptop", UserID: 7, Addrs: []netip.Addr{netip.MustParseAddr("100.64.0.7")}, Online: true}}
}

type fakeDirectory struct {
	mu      sync.Mutex
	entries []DirectoryEntry
}

func (d *fakeDirectory) Members() ([]DirectoryEntry, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]DirectoryEntry(nil), d.entries...), nil
}

func (d *fakeDirectory) remove(id string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	for i, e := range d.entries {
		if e.ID == id {
			d.entries = append(d.entries[:i], d.entries[i+1:]...)
			return
		}
	}
}

type zone struct {
	mu    sync.Mutex
	names map[string][]netip.Addr
}

func (z *zone) Set(source, name string, addrs []netip.Addr) error {
	z.mu.Lock()
	defer z.mu.Unlock()
	z.names[name] = addrs
	return nil
}
func (z *zone) Clear(string) { z.mu.Lock(); clear(z.names); z.mu.Unlock() }

type tlog struct{ t testing.TB }

func (l tlog) Write(p []byte) (int, error) { l.t.Log(strings.TrimSpace(string(p))); return len(p), nil }

// rig is a host with the probe, on a loopback LAN and tailnet, with a vault
// and the box's CA.
type rig struct {
	t       *testing.T
	h       *Host
	v       *vault.Vault
	p       *probe
	lan     *fakeLAN
	tail    *fakeTailnet
	dir     *fakeDirectory
	zone    *zone
	https   net.Listener
	admin   *http.Server
	clients []*http.Client
	caPool  *x509.CertPool
	state   string
}

func newRig(t *testing.T, extra ...apps.App) *rig { return newRigWith(t, Config{}, extra...) }

func newRigWith(t *testing.T, cfg Config, extra ...apps.App) *rig {
	before := runtime.NumGoroutine()
	r := &rig{t: t, p: newProbe(), lan: newFakeLAN(), zone: &zone{names: map[string][]netip.Addr{}}, state: t.TempDir(),
		tail: &fakeTailnet{tcp: map[string]string{}, devices: map[netip.Addr]tailnet.Identity{
			netip.MustParseAddr("127.0.0.10"): {Device: "alex-laptop", UserID: 7, User: "alex@"},
			netip.MustParseAddr("127.0.0.11"): {Device: "sam-phone", UserID: 8, User: "sam@"},
			netip.MustParseAddr("127.0.0.12"): {Device: "tagged", Tags: []string{"tag:x"}},
		}},
		dir: &fakeDirectory{entries: []DirectoryEntry{{ID: "7-a", Name: "alex", UserID: 7}, {ID: "8-b", Name: "sam", UserID: 8}}}}
	v, err := vault.Open(filepath.Join(r.state, "vault"))
	if err != nil {
		t.Fatal(err)
	}
	if err := v.Init([]byte("a passphrase for the tests"), vault.Params{Time: 1, MemoryKiB: 8 * 1024, Threads: 1}); err != nil {
		t.Fatal(err)
	}
	ca, err := pki.CreateCA(v, "kestrel")
	if err != nil {
		t.Fatal(err)
	}
	r.v = v
	r.caPool = x509.NewCertPool()
	r.caPool.AddCert(ca.Cert)
	r.h, err = New(cfg, Deps{
		Logger:    slog.New(slog.NewTextHandler(tlog{t}, &slog.HandlerOptions{Level: slog.LevelDebug})),
		Vault:     v,
		Builtin:   append([]apps.App{r.p}, extra...),
		StateDir:  filepath.Join(r.state, "apps"),
		RunDir:    filepath.Join(r.state, "run"),
		BoxNames:  func() []string { return []string{"kestrel", "redoubt"} },
		Domain:    func() string { return "home.arpa" },
		AdminURL:  func() string { return "https://kestrel.home.arpa" },
		Names:     func() Zone { return r.zone },
		Directory: r.dir,
	})
	if err != nil {
		t.Fatal(err)
	}
	r.https, _ = net.Listen("tcp", "127.0.0.1:0")
	adminLn := r.h.MountLAN(r.lan, r.https)
	r.admin = &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) { io.WriteString(w, "the owner's pages") })}
	go r.admin.Serve(tls.NewListener(adminLn, &tls.Config{GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
		return r.h.net.lanCert("probe", false) // any certificate: the test checks only that the owner's side answers
	}}))
	t.Cleanup(func() {
		for _, c := range r.clients {
			c.CloseIdleConnections()
		}
		r.admin.Close()
		r.h.Close()
		r.lan.close()
		v.Close()
		for deadline := time.Now().Add(5 * time.Second); runtime.NumGoroutine() > before; time.Sleep(20 * time.Millisecond) {
			if time.Now().After(deadline) {
				buf := make([]byte, 1<<20)
				t.Errorf("%d goroutines left behind:\n%s", runtime.NumGoroutine()-before, buf[:runtime.Stack(buf, true)])
				break
			}
		}
	})
	return r
}

func (r *rig) unlock() {
	r.t.Helper()
	r.h.Unlocked()
	if err := r.h.Enable("probe"); err != nil {
		r.t.Fatal(err)
	}
	r.waitRunning("probe")
}

func (r *rig) waitRunning(id string) {
	r.t.Helper()
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		if st, _ := r.h.Status(id); st.Running {
			return
		}
		if time.Now().After(deadline) {
			st, _ := r.h.Status(id)
			r.t.Fatalf("%s does not run: %+v", id, st)
		}
	}
}

// lanClient is the owner's browser on the LAN: every name reaches the box's
// tcp/443, and it trusts the box's CA.
func (r *rig) lanClient() *http.Client {
	jar, _ := cookiejar.New(nil)
	return r.track(&http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: r.caPool},
			DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
				return (&net.Dialer{}).DialContext(ctx, "tcp", r.https.Addr().String())
			}}})
}

func (r *rig) track(c *http.Client) *http.Client {
	r.clients = append(r.clients, c)
	return c
}

// tailClient is a device on the tailnet at a loopback source address.
func (r *rig) tailClient(from string) *http.Client {
	return r.track(&http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: r.caPool},
		DialContext: func(ctx context.Context, _, addr string) (net.Conn, error) {
			_, port, _ := net.SplitHostPort(addr)
			r.tail.mu.Lock()
			to := r.tail.tcp[":"+port]
			r.tail.mu.Unlock()
			d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(from)}}
			return d.DialContext(ctx, "tcp", to)
		}}})
}

// do sends req and reads the answer's body to its end.
func do(c *http.Client, req *http.Request) (*http.Response, error) {
	resp, err := c.Do(req)
	if err == nil {
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	return resp, err
}

func get(t *testing.T, c *http.Client, u string, hdr ...string) (*http.Response, string) {
	t.Helper()
	req, _ := http.NewRequest("GET", u, nil)
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", u, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

func TestLAN(t *testing.T) {
	r := newRig(t)
	c := r.lanClient()
	app := "https://probe.kestrel.home.arpa"

	// Locked: the app's name still answers over HTTPS, and serves nothing.
	if _, err := c.Get(app + "/"); err == nil || !strings.Contains(err.Error(), "certificate") {
		// No certificate was ever issued: the handshake fails.
		t.Logf("before the first unlock: %v", err)
	}
	r.unlock()
	if addrs := r.zone.names["probe.kestrel"]; len(addrs) != 1 || addrs[0] != r.lan.Addr() {
		t.Errorf("the app's LAN name in DNS: %v", r.zone.names)
	}

	// The owner's pages keep the box's own names and its address.
	for _, u := range []string{"https://kestrel.home.arpa/", "https://127.0.0.1/"} {
		req, _ := http.NewRequest("GET", u, nil)
		tr := &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}, DialContext: c.Transport.(*http.Transport).DialContext}
		resp, err := r.track(&http.Client{Transport: tr}).Do(req)
		if err != nil {
			t.Fatalf("%s: %v", u, err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if string(b) != "the owner's pages" {
			t.Errorf("%s reached %q", u, b)
		}
	}

	// A browser without a session is sent to the owner's pages to open it.
	resp, _ := get(t, c, app+"/data/x?y=1", "Accept", "text/html")
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "https://kestrel.home.arpa/apps/probe/open?next=%2Fdata%2Fx%3Fy%3D1" {
		t.Errorf("no session: %d %s", resp.StatusCode, resp.Header.Get("Location"))
	}
	// Other clients are asked for a password.
	resp, _ = get(t, c, app+"/")
	if resp.StatusCode != http.StatusUnauthorized || !strings.HasPrefix(resp.Header.Get("WWW-Authenticate"), "Basic") {
		t.Errorf("no session, not a browser: %d %v", resp.StatusCode, resp.Header)
	}

	// The hand-off: once, and then a session of this origin only.
	link, err := r.h.Handoff("probe", "/data/x")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(link, app+handoffPath+"?t=") {
		t.Errorf("the link: %s", link)
	}
	resp, _ = get(t, c, link)
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/data/x" {
		t.Fatalf("hand-off: %d %s", resp.StatusCode, resp.Header.Get("Location"))
	}
	ck := resp.Cookies()
	if len(ck) != 1 || ck[0].Name != sessionCookie || !ck[0].HttpOnly || !ck[0].Secure || ck[0].SameSite != http.SameSiteStrictMode || ck[0].Domain != "" {
		t.Errorf("the session cookie: %+v", ck)
	}
	resp, body := get(t, c, app+"/")
	if resp.StatusCode != 200 || !strings.Contains(body, `"owner":true`) || !strings.Contains(body, `"network":"lan"`) {
		t.Errorf("with the session: %d %s", resp.StatusCode, body)
	}
	if resp, _ := get(t, r.lanClient(), link); resp.StatusCode != http.StatusForbidden {
		t.Errorf("the hand-off link used twice: %d", resp.StatusCode)
	}
	// The app's answers are its origin's alone.
	resp, body = get(t, c, app+"/cors", "Origin", "https://clipboard.kestrel.home.arpa")
	if body != "data" || resp.Header.Get("Access-Control-Allow-Origin") != "" || resp.Header.Get("Access-Control-Allow-Credentials") != "" ||
		resp.Header.Get("Cross-Origin-Resource-Policy") != "same-origin" {
		t.Errorf("CORS from the app: %v", resp.Header)
	}
	// A connection made for one name does not serve another.
	req, _ := http.NewRequest("GET", app+"/", nil)
	req.Host = "kestrel.home.arpa"
	if resp, err := do(c, req); err != nil || resp.StatusCode != http.StatusMisdirectedRequest {
		t.Errorf("Host unlike the TLS name: %v %v", resp, err)
	}

	// App passwords, for WebDAV clients: made, used, revoked.
	pw, err := r.h.AddPassword("probe", "macbook finder")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.h.AddPassword("probe", "Macbook Finder"); err == nil {
		t.Error("two passwords with one label")
	}
	if _, err := r.h.AddPassword("probe", "bad/label"); err == nil {
		t.Error("a label with a slash")
	}
	nc := r.lanClient()
	req, _ = http.NewRequest("GET", app+"/", nil)
	req.SetBasicAuth("owner", pw)
	resp, err = nc.Do(req)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("with the app password: %v %v", resp, err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(b), `"device":"macbook finder"`) {
		t.Errorf("caller: %s", b)
	}
	req.SetBasicAuth("owner", pw+"x")
	if resp, _ := do(nc, req); resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("a wrong password: %d", resp.StatusCode)
	}
	if ps, _ := r.h.Passwords("probe"); len(ps) != 1 || ps[0].Label != "macbook finder" {
		t.Errorf("passwords: %+v", ps)
	}
	raw, _ := os.ReadFile(filepath.Join(r.state, "vault", "vault.db"))
	if bytes.Contains(raw, []byte(pw)) {
		t.Error("the password is in the vault's file")
	}
	if err := r.h.RevokePassword("probe", "macbook finder"); err != nil {
		t.Fatal(err)
	}
	req.SetBasicAuth("owner", pw)
	if resp, _ := do(r.lanClient(), req); resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("a revoked password: %d", resp.StatusCode)
	}

	// The app's extra listeners, on the LAN.
	r.lan.mu.Lock()
	echo, ping := r.lan.tcp[8442], r.lan.udp[8443]
	r.lan.mu.Unlock()
	checkEcho(t, echo, ping)

	// Locked: sessions end; the name answers, to say so, and serves nothing.
	r.h.Locked()
	resp, body = get(t, c, app+"/data/x", "Accept", "text/html")
	if resp.StatusCode != http.StatusServiceUnavailable || !strings.Contains(body, "The box is locked") {
		t.Errorf("locked: %d %s", resp.StatusCode, body)
	}
	r.unlock()
	if resp, _ := get(t, c, app+"/"); resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("the session outlived the lock: %d", resp.StatusCode)
	}
}

func checkEcho(t *testing.T, tcpAddr, udpAddr string) {
	t.Helper()
	conn, err := net.DialTimeout("tcp", tcpAddr, 2*time.Second)
	if err != nil {
		t.Fatalf("echo: %v", err)
	}
	conn.SetDeadline(time.Now().Add(2 * time.Second))
	conn.Write([]byte("ping"))
	b := make([]byte, 4)
	if _, err := io.ReadFull(conn, b); err != nil || string(b) != "ping" {
		t.Errorf("echo over tcp: %q %v", b, err)
	}
	conn.Close()
	u, err := net.Dial("udp", udpAddr)
	if err != nil {
		t.Fatal(err)
	}
	defer u.Close()
	u.SetDeadline(time.Now().Add(2 * time.Second))
	u.Write([]byte("pong"))
	if n, err := u.Read(b); err != nil || string(b[:n]) != "pong" {
		t.Errorf("echo over udp: %q %v", b[:n], err)
	}
}

func TestTailnet(t *testing.T) {
	r := newRig(t)
	r.unlock()
	r.h.MountTailnet(r.tail)
	u := "https://kestrel.team.example:8441"
	if o := r.h.net.origins(r.h.apps["probe"]); len(o) != 3 || o[1].URL != u {
		t.Errorf("origins: %+v", o)
	}
	resp, body := get(t, r.tailClient("127.0.0.10"), u+"/")
	if resp.StatusCode != 200 || !strings.Contains(body, `"member":{"id":"7-a","name":"alex","devices":[{"name":"alex-laptop"`) ||
		!strings.Contains(body, `"device":"alex-laptop"`) || !strings.Contains(body, `"network":"tailnet"`) {
		t.Errorf("alex: %d %s", resp.StatusCode, body)
	}
	for from, why := range map[string]string{"127.0.0.12": "a tagged device", "127.0.0.13": "an unknown device"} {
		if resp, _ := get(t, r.tailClient(from), u+"/"); resp.StatusCode != http.StatusForbidden {
			t.Errorf("%s: %d", why, resp.StatusCode)
		}
	}
	if ms := r.h.memberList(); len(ms) != 2 || len(ms[0].Devices) != 1 || ms[1].Name != "sam" {
		t.Errorf("members: %+v", ms)
	}

	// Sam's open socket closes the moment sam is removed; alex's stays.
	dial := func(from string) *websocket.Conn {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		c, _, err := websocket.Dial(ctx, "wss://kestrel.team.example:8441/ws", &websocket.DialOptions{HTTPClient: r.tailClient(from)})
		if err != nil {
			t.Fatal(err)
		}
		if _, m, err := c.Read(ctx); err != nil || string(m) != "hello" {
			t.Fatalf("socket: %q %v", m, err)
		}
		return c
	}
	samWS, alexWS := dial("127.0.0.11"), dial("127.0.0.10")
	defer alexWS.CloseNow()
	r.dir.remove("8-b")
	removed := time.Now()
	r.h.MemberRemoved("8-b", "sam")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, _, err := samWS.Read(ctx); err == nil {
		t.Error("sam's socket is open after the removal")
	}
	t.Logf("removal to the socket closed: %v", time.Since(removed))
	if m := <-r.p.removed; m.ID != "8-b" {
		t.Errorf("the app was told of %+v", m)
	}
	if resp, _ := get(t, r.tailClient("127.0.0.11"), u+"/"); resp.StatusCode != http.StatusForbidden {
		t.Errorf("sam after the removal: %d", resp.StatusCode)
	}
	ctx2, cancel2 := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel2()
	if _, _, err := alexWS.Read(ctx2); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("alex's socket: %v", err)
	}

	// allow-tailnet off: the port closes.
	if _, err := r.h.SetOption("probe", apps.OptAllowTailnet, "false"); err != nil {
		t.Fatal(err)
	}
	if _, err := r.tailClient("127.0.0.10").Get(u + "/"); err == nil {
		t.Error("served on the tailnet with allow-tailnet off")
	}
	if o := r.h.net.origins(r.h.apps["probe"]); len(o) != 2 {
		t.Errorf("origins with the tailnet off: %+v", o)
	}
	r.h.SetOption("probe", apps.OptAllowTailnet, "true")
	r.h.MountTailnet(nil)
	if o := r.h.net.origins(r.h.apps["probe"]); len(o) != 2 {
		t.Errorf("origins without a node: %+v", o)
	}
}

func TestBoxSocket(t *testing.T) {
	r := newRig(t)
	r.unlock()
	sock := filepath.Join(r.state, "run", "probe.sock")
	fi, err := os.Stat(sock)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("the box's socket: %v %v", fi, err)
	}
	c := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return net.Dial("unix", sock)
	}}}
	_, body := get(t, c, "http://probe/")
	if !strings.Contains(body, `"owner":true`) || !strings.Contains(body, `"network":"box"`) {
		t.Errorf("from the box: %s", body)
	}
}

func TestOptionsAndPersistence(t *testing.T) {
	r := newRig(t)
	if err := r.h.Enable("probe"); !errors.Is(err, errLocked) {
		t.Errorf("enable while locked: %v", err)
	}
	if _, err := r.h.Option("probe", "greeting"); !errors.Is(err, errLocked) {
		t.Errorf("an option while locked: %v", err)
	}
	r.h.Unlocked()
	if st, _ := r.h.Status("probe"); st.Running || st.Autostart {
		t.Fatalf("autostart is off by default: %+v", st)
	}
	if err := r.h.Enable("probe"); err != nil {
		t.Fatal(err)
	}
	rt := r.h.apps["probe"].current()
	rt.store.Records().Put("kept", []byte("yes"))

	// A live option: the running app is told; no restart.
	if v, err := r.h.SetOption("probe", "greeting", "hello there"); err != nil || v != "hello there" {
		t.Fatal(v, err)
	}
	if o := <-r.p.watched; o.String("greeting") != "hello there" || r.p.starts.Load() != 1 {
		t.Errorf("live: %v, %d starts", o.Values(), r.p.starts.Load())
	}
	// Another: the app restarts with it.
	if _, err := r.h.SetOption("probe", "mode", "fast"); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(5 * time.Second); r.p.starts.Load() < 2 && time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
	}
	r.waitRunning("probe")
	if v, err := r.h.apps["probe"].current().store.Records().Get("kept"); err != nil || string(v) != "yes" {
		t.Errorf("kept data after the restart: %q %v", v, err)
	}
	// Bad values are named.
	for _, tc := range [][3]string{{"probe", "mode", "turbo"}, {"probe", "colour", "red"}, {"nope", "mode", "fast"}, {"probe", "quota", "lots"}} {
		if _, err := r.h.SetOption(tc[0], tc[1], tc[2]); err == nil {
			t.Errorf("%v accepted", tc)
		}
	}
	// The quota applies at once.
	r.h.SetOption("probe", apps.OptQuota, "1MB")
	<-r.p.watched
	if st, _ := r.h.Status("probe"); st.Usage == nil || st.Usage.Quota != 1<<20 {
		t.Errorf("usage: %+v", st.Usage)
	}
	// Persistence off: the kept data is erased, and each run starts empty.
	r.h.SetOption("probe", apps.OptPersistence, "false")
	for deadline := time.Now().Add(5 * time.Second); r.p.starts.Load() < 3 && time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
	}
	r.waitRunning("probe")
	if _, err := os.Stat(r.h.dataDir("probe")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the kept data is still there: %v", err)
	}
	rt = r.h.apps["probe"].current()
	if _, err := rt.store.Records().Get("kept"); !errors.Is(err, apps.ErrNotFound) {
		t.Errorf("kept data with persistence off: %v", err)
	}
	rt.store.Records().Put("fleeting", []byte("x"))
	r.h.Locked()
	if _, err := rt.store.Records().Get("fleeting"); !errors.Is(err, apps.ErrLocked) {
		t.Errorf("after the lock: %v", err)
	}
	if _, err := os.Stat(r.h.ephemeralDir("probe")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the run's data survived the lock: %v", err)
	}
	r.h.Unlocked()
	if st, _ := r.h.Status("probe"); st.Running {
		t.Error("started on unlock with autostart off")
	}
	r.h.SetOption("probe", apps.OptAutostart, "true")
	r.h.Locked()
	r.h.Unlocked()
	r.waitRunning("probe")
	if err := r.h.Disable("probe"); err != nil {
		t.Fatal(err)
	}
	if st, _ := r.h.Status("probe"); st.Running || st.State != "stopped" || len(st.Published) != 0 {
		t.Errorf("disabled: %+v", st)
	}
}

// TestRemount: the LAN moves and the node restarts; the app's listeners carry
// on without the app knowing.
func TestRemount(t *testing.T) {
	r := newRig(t)
	r.unlock()
	r.lan.mu.Lock()
	echo1 := r.lan.tcp[8442]
	r.lan.mu.Unlock()
	checkEcho(t, echo1, r.lan.udp[8443])

	// The LAN moves: a new port, new listeners.
	lan2 := newFakeLAN()
	defer lan2.close()
	r.lan.close()
	https2, _ := net.Listen("tcp", "127.0.0.1:0")
	admin2 := r.h.MountLAN(lan2, https2)
	defer admin2.Close()
	lan2.mu.Lock()
	echo2, ping2 := lan2.tcp[8442], lan2.udp[8443]
	lan2.mu.Unlock()
	if echo2 == "" || echo2 == echo1 {
		t.Fatalf("not re-mounted: %q", echo2)
	}
	checkEcho(t, echo2, ping2)
	if r.p.starts.Load() != 1 {
		t.Errorf("the app was restarted: %d", r.p.starts.Load())
	}
	r.https = https2
	c := r.lanClient()
	link, _ := r.h.Handoff("probe", "/")
	get(t, c, link)
	if resp, _ := get(t, c, "https://probe.kestrel.home.arpa/"); resp.StatusCode != 200 {
		t.Errorf("after the move: %d", resp.StatusCode)
	}
	// The node restarts.
	r.h.MountTailnet(r.tail)
	r.h.MountTailnet(nil)
	r.h.MountTailnet(r.tail)
	if resp, _ := get(t, r.tailClient("127.0.0.10"), "https://kestrel.team.example:8441/"); resp.StatusCode != 200 {
		t.Errorf("after the node restarted: %d", resp.StatusCode)
	}
}

func TestFront(t *testing.T) {
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	f := newFront(ln, func(n string) bool { return n == "app.example" })
	defer f.close()
	got := make(chan string, 4)
	for _, side := range []*chanListener{f.admin, f.apps} {
		name := "admin"
		if side == f.apps {
			name = "apps"
		}
		go func() {
			for {
				c, err := side.Accept()
				if err != nil {
					return
				}
				b := make([]byte, 5)
				io.ReadFull(c, b)
				got <- name + ":" + fmt.Sprintf("%x", b[:1])
				c.Close()
			}
		}()
	}
	send := func(sni string, plain bool) string {
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if plain {
			c.Write([]byte("GET / HTTP/1.1\r\n\r\n"))
		} else {
			go tls.Client(c, &tls.Config{ServerName: sni, InsecureSkipVerify: true}).Handshake()
		}
		select {
		case s := <-got:
			return s
		case <-time.After(3 * time.Second):
			return "nothing"
		}
	}
	// The side gets the ClientHello's first byte (0x16) intact.
	if s := send("app.example", false); s != "apps:16" {
		t.Errorf("an app's name: %s", s)
	}
	if s := send("kestrel.home.arpa", false); s != "admin:16" {
		t.Errorf("the box's name: %s", s)
	}
	if s := send("", false); s != "admin:16" {
		t.Errorf("no name: %s", s)
	}
	if s := send("", true); s != "admin:47" {
		t.Errorf("plain HTTP: %s", s)
	}
	_ = url.URL{}
}
