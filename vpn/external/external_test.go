package external

import (
	"context"
	"errors"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redoubt/redoubt/vault"
	"github.com/redoubt/redoubt/vpn/egress"
	"github.com/redoubt/redoubt/vpn/internal/wgtest"
	"github.com/redoubt/redoubt/vpn/tunnel"
	"github.com/redoubt/redoubt/vpn/wan"
	"github.com/redoubt/redoubt/vpn/wanfw"
	"github.com/redoubt/redoubt/vpn/wgconfig"
)

// fakeFirewall records the rules the VPN installs.
type fakeFirewall struct {
	mu      sync.Mutex
	rules   []wanfw.Rules
	removed int
}

func (f *fakeFirewall) Apply(r wanfw.Rules) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.rules = append(f.rules, r)
	return nil
}

func (f *fakeFirewall) Remove() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.removed++
	return nil
}

func (f *fakeFirewall) Counters() (wanfw.Counters, error) { return wanfw.Counters{OutDropped: 3}, nil }

func (f *fakeFirewall) last() wanfw.Rules {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.rules) == 0 {
		return wanfw.Rules{Mark: 1} // a marker: nothing installed
	}
	return f.rules[len(f.rules)-1]
}

// fakePort is a WAN port that is ready (or not).
type fakePort struct {
	mu       sync.Mutex
	st       wan.State
	endpoint netip.Addr
	direct   wanfw.DirectPaths
}

func (p *fakePort) State() wan.State { p.mu.Lock(); defer p.mu.Unlock(); return p.st }
func (p *fakePort) SetEndpoint(a netip.Addr) {
	p.mu.Lock()
	p.endpoint = a
	p.mu.Unlock()
}
func (p *fakePort) SetDirect(mark uint32, port uint16) {
	p.mu.Lock()
	p.direct = wanfw.DirectPaths{Mark: mark, Port: port}
	p.mu.Unlock()
}
func (p *fakePort) Close() {}

// memStore is a vault.Store in memory, which can be locked.
type memStore struct {
	mu     sync.Mutex
	m      map[string][]byte
	locked bool
}

func (s *memStore) Get(b, k string) ([]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.locked {
		return nil, vault.ErrLocked
	}
	v, ok := s.m[b+"/"+k]
	if !ok {
		return nil, vault.ErrNotFound
	}
	return v, nil
}
func (s *memStore) Put(b, k string, v []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.locked {
		return vault.ErrLocked
	}
	s.m[b+"/"+k] = v
	return nil
}
func (s *memStore) Delete(b, k string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.m, b+"/"+k)
	return nil
}
func (s *memStore) List(string) ([]string, error) { return nil, nil }

type env struct {
	vpn    *VPN
	fw     *fakeFirewall
	port   *fakePort
	store  *memStore
	server *wgtest.Server
	key    wgconfig.PrivateKey
}

func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(tWriter{t}, &slog.HandlerOptions{Level: slog.LevelInfo}))
}

type tWriter struct{ t *testing.T }

func (w tWriter) Write(b []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(b)))
	return len(b), nil
}

// fastTiming makes the health check react within seconds.
var fastTiming = timing{tick: 100 * time.Millisecond, connectGrace: 2 * time.Second, rejectAfter: 180 * time.Second,
	probeIdle: 300 * time.Millisecond, replyTimeout: 2 * time.Second, kickEvery: 500 * time.Millisecond}

func newEnv(t *testing.T, cfg Config) *env {
	t.Helper()
	key, err := wgconfig.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	e := &env{fw: &fakeFirewall{}, port: &fakePort{st: wan.State{Ready: true, Addressing: wan.System}}, store: &memStore{m: map[string][]byte{}}, key: key}
	e.server = wgtest.New(t, key.Public())
	tm := fastTiming
	v, err := Start(cfg, Deps{
		Logger:        testLogger(t),
		Store:         e.store,
		Firewall:      e.fw,
		newPort:       func(wan.Config, wan.Deps) (port, error) { return e.port, nil },
		tunnelOptions: func(o *tunnel.Options) { o.Mark = 0 }, // no CAP_NET_ADMIN needed
		timing:        &tm,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(v.Close)
	e.vpn = v
	return e
}

func waitState(t *testing.T, v *VPN, want string, within time.Duration) Status {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		st := v.Status()
		if st.State == want {
			return st
		}
		if time.Now().After(deadline) {
			t.Fatalf("the VPN is %q (%s), not %q, after %v", st.State, st.Reason, want, within)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestNotConfiguredFailsClosed(t *testing.T) {
	e := newEnv(t, Config{})
	st := e.vpn.Status()
	if st.State != StateNotConfigured || !strings.Contains(st.Reason, "redoubt vpn set") {
		t.Errorf("status: %+v", st)
	}
	if r := e.fw.last(); r.Endpoint.IsValid() || r.Mark != Mark {
		t.Errorf("the firewall lets something out without a VPN: %+v", r)
	}
	_, err := e.vpn.Dialer().DialContext(context.Background(), "tcp", "10.66.0.1:80")
	if !errors.Is(err, egress.ErrNoEgress) {
		t.Errorf("dial without a VPN: %v", err)
	}
	if _, err := e.vpn.Fetch(context.Background(), "http://10.66.0.1/", 10); err == nil {
		t.Error("a fetch without a VPN succeeded")
	}
}

// TestSetUpDownUp sets a config through the API path, uses the tunnel, loses the
// server (down, fetches fail), and gets it back without touching the box.
func TestSetUpDownUp(t *testing.T) {
	e := newEnv(t, Config{ExitCheck: "http://10.66.0.1/ip"})
	if _, err := e.vpn.Set([]byte("[Interface]\nPrivateKey = nonsense\n")); err == nil {
		t.Fatal("a bad config was accepted")
	} else {
		var we *wgconfig.Error
		if !errors.As(err, &we) {
			t.Errorf("the error is not a *wgconfig.Error: %T %v", err, err)
		}
	}
	// The real parser refuses a loopback endpoint, as it should for a box; the
	// test server is on loopback, so the config goes in with a stand-in
	// endpoint and the test swaps it before the tunnel is made.
	c := e.server.ClientConfig(e.key)
	real := c.Peer.Endpoint
	c.Peer.Endpoint = netip.MustParseAddrPort("192.0.2.2:51820")
	e.vpn.deps.tunnelOptions = func(o *tunnel.Options) {
		o.Mark = 0
		cc := *o.Config
		cc.Peer.Endpoint = real
		o.Config = &cc
	}
	parsed, err := e.vpn.Set(c.Marshal())
	if err != nil {
		t.Fatal(err)
	}
	if parsed.Peer.Endpoint.Port() != 51820 {
		t.Errorf("parsed endpoint %v", parsed.Peer.Endpoint)
	}
	if got, _ := e.store.Get(StoreBucket, StoreKey); !strings.Contains(string(got), "[Peer]") {
		t.Errorf("the vault holds %q", got)
	}
	if r := e.fw.last(); r.Endpoint != netip.MustParseAddrPort("192.0.2.2:51820") || r.Mark != Mark {
		t.Errorf("firewall rules after Set: %+v", r)
	}
	if e.port.endpoint != netip.MustParseAddr("192.0.2.2") {
		t.Errorf("the WAN routes %v", e.port.endpoint)
	}
	st := waitState(t, e.vpn, StateUp, 10*time.Second)
	if st.HandshakeAge < 0 || st.Config == nil || st.Config.Endpoint != "192.0.2.2:51820" || st.Source == "" || st.FromFile {
		t.Errorf("status when up: %+v", st)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	res, err := e.vpn.Fetch(ctx, "http://www.example.test/bytes/1000000", 16)
	if err != nil || res.Status != 200 || res.Bytes != 1000000 {
		t.Fatalf("fetch by name through the tunnel: %+v %v", res, err)
	}
	// The exit check ran when the tunnel came up.
	deadline := time.Now().Add(5 * time.Second)
	for e.vpn.Status().Exit == "" && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	if st := e.vpn.Status(); st.Exit != wgtest.ClientAddr.String() {
		t.Errorf("exit address %q (%s)", st.Exit, st.ExitError)
	}

	// The server goes away.
	e.server.Stop()
	st = waitState(t, e.vpn, StateDown, 10*time.Second)
	t.Logf("down: %s", st.Reason)
	fctx, fcancel := context.WithTimeout(context.Background(), time.Second)
	if _, err := e.vpn.Fetch(fctx, "http://10.66.0.1/", 10); err == nil {
		t.Error("a fetch succeeded with the server down")
	}
	fcancel()
	// It comes back: so does the tunnel, by itself.
	e.server.Start()
	st = waitState(t, e.vpn, StateUp, 40*time.Second)
	if st.Reconnects != 1 {
		t.Errorf("reconnects = %d", st.Reconnects)
	}
	ctx2, cancel2 := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel2()
	res, err = e.vpn.Fetch(ctx2, "http://10.66.0.1/", 100)
	if err != nil || !strings.Contains(res.Head, "hello") {
		t.Errorf("fetch after the server came back: %+v %v", res, err)
	}

	// Clear: back to nothing.
	if err := e.vpn.Clear(); err != nil {
		t.Fatal(err)
	}
	waitState(t, e.vpn, StateNotConfigured, 2*time.Second)
	if r := e.fw.last(); r.Endpoint.IsValid() {
		t.Errorf("the firewall still lets the old endpoint out: %+v", r)
	}
	if _, err := e.vpn.Dialer().DialContext(context.Background(), "tcp", "10.66.0.1:80"); !errors.Is(err, egress.ErrNoEgress) {
		t.Errorf("dial after Clear: %v", err)
	}
}

func TestLockedVault(t *testing.T) {
	key, _ := wgconfig.GenerateKey()
	server := wgtest.New(t, key.Public())
	c := server.ClientConfig(key)
	real := c.Peer.Endpoint
	c.Peer.Endpoint = netip.MustParseAddrPort("192.0.2.2:51820")
	store := &memStore{m: map[string][]byte{StoreBucket + "/" + StoreKey: c.Marshal()}, locked: true}
	tm := fastTiming
	v, err := Start(Config{}, Deps{
		Logger: testLogger(t), Store: store, Firewall: &fakeFirewall{},
		newPort: func(wan.Config, wan.Deps) (port, error) {
			return &fakePort{st: wan.State{Ready: true}}, nil
		},
		tunnelOptions: func(o *tunnel.Options) {
			o.Mark = 0
			cc := *o.Config
			cc.Peer.Endpoint = real
			o.Config = &cc
		},
		timing: &tm,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	st := waitState(t, v, StateDown, 2*time.Second)
	if !strings.Contains(st.Reason, "locked") {
		t.Errorf("reason while locked: %s", st.Reason)
	}
	if _, err := v.Set(c.Marshal()); !errors.Is(err, vault.ErrLocked) {
		t.Errorf("Set while locked: %v", err)
	}
	store.mu.Lock()
	store.locked = false
	store.mu.Unlock()
	v.Unlocked()
	waitState(t, v, StateUp, 10*time.Second)

	// The owner's test: every step passes, in words.
	res := v.Test(context.Background())
	var names []string
	for _, c := range res.Checks {
		names = append(names, c.Name)
		if !c.OK || c.Detail == "" {
			t.Errorf("test step %+v", c)
		}
	}
	if !res.OK || strings.Join(names, " ") != "config wan handshake dns" {
		t.Errorf("test: %+v", res)
	}

	// Locked again: the tunnel closes, and nothing leaves, until the next unlock.
	store.mu.Lock()
	store.locked = true
	store.mu.Unlock()
	v.Locked()
	st = waitState(t, v, StateDown, 2*time.Second)
	if !strings.Contains(st.Reason, "locked") {
		t.Errorf("reason after locking: %s", st.Reason)
	}
	if c, err := v.Dialer().DialContext(context.Background(), "tcp", "10.0.0.1:80"); err == nil {
		c.Close()
		t.Error("the egress dials with the box locked")
	}
	store.mu.Lock()
	store.locked = false
	store.mu.Unlock()
	v.Unlocked()
	waitState(t, v, StateUp, 10*time.Second)
}

// TestLockedVaultWithNothingKept: a box restarted without a VPN config says it
// waits for the unlock, then, unlocked, that no VPN is set up (not "locked").
func TestLockedVaultWithNothingKept(t *testing.T) {
	store := &memStore{m: map[string][]byte{}, locked: true}
	tm := fastTiming
	v, err := Start(Config{}, Deps{
		Logger: testLogger(t), Store: store, Firewall: &fakeFirewall{},
		newPort: func(wan.Config, wan.Deps) (port, error) { return &fakePort{st: wan.State{Ready: true}}, nil },
		timing:  &tm,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	if st := waitState(t, v, StateDown, 2*time.Second); !strings.Contains(st.Reason, "locked") {
		t.Errorf("reason while locked: %s", st.Reason)
	}
	store.mu.Lock()
	store.locked = false
	store.mu.Unlock()
	v.Unlocked()
	waitState(t, v, StateNotConfigured, 2*time.Second)
	if res := v.Test(context.Background()); res.OK || len(res.Checks) != 1 || res.Checks[0].Name != "config" || strings.Contains(res.Checks[0].Detail, "locked") {
		t.Errorf("test without a VPN: %+v", res)
	}
}

func TestConfigFileWins(t *testing.T) {
	dir := t.TempDir()
	key, _ := wgconfig.GenerateKey()
	server := wgtest.New(t, key.Public())
	c := server.ClientConfig(key)
	c.Peer.Endpoint = netip.MustParseAddrPort("192.0.2.2:51820")
	path := filepath.Join(dir, "vpn.conf")
	os.WriteFile(path, c.Marshal(), 0o644)
	fw := &fakeFirewall{}
	v, err := Start(Config{ConfigFile: path}, Deps{
		Logger: testLogger(t), Store: &memStore{m: map[string][]byte{}}, Firewall: fw,
		newPort:       func(wan.Config, wan.Deps) (port, error) { return &fakePort{st: wan.State{Ready: true}}, nil },
		tunnelOptions: func(o *tunnel.Options) { o.Mark = 0 },
	})
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	st := v.Status()
	if !st.FromFile || !strings.Contains(st.Source, path) || st.State != StateConnecting {
		t.Errorf("status: %+v", st)
	}
	if r := fw.last(); r.Endpoint != c.Peer.Endpoint {
		t.Errorf("firewall: %+v", r)
	}
	if _, err := v.Set(c.Marshal()); !errors.Is(err, ErrFromFile) {
		t.Errorf("Set with a config file: %v", err)
	}
	if err := v.Clear(); !errors.Is(err, ErrFromFile) {
		t.Errorf("Clear with a config file: %v", err)
	}
}

func TestBadConfigFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "vpn.conf")
	os.WriteFile(path, []byte("[Interface]\nPrivateKey = abc\n"), 0o600)
	deps := func() Deps {
		return Deps{Logger: testLogger(t), Firewall: &fakeFirewall{}, tunnelOptions: func(o *tunnel.Options) { o.Mark = 0 },
			newPort: func(wan.Config, wan.Deps) (port, error) { return &fakePort{st: wan.State{Ready: true}}, nil }}
	}
	// At start-up, a bad or missing file stops the box like any bad setting.
	for file, want := range map[string]string{path: "line 2", filepath.Join(dir, "missing.conf"): "missing.conf"} {
		if _, err := Start(Config{ConfigFile: file}, deps()); err == nil || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), "vpn.config_file") {
			t.Errorf("start with %s: %v", file, err)
		}
	}
	// On a reload, it is refused and the running tunnel kept.
	key, _ := wgconfig.GenerateKey()
	server := wgtest.New(t, key.Public())
	c := server.ClientConfig(key)
	c.Peer.Endpoint = netip.MustParseAddrPort("192.0.2.2:51820")
	good := filepath.Join(dir, "good.conf")
	os.WriteFile(good, c.Marshal(), 0o600)
	v, err := Start(Config{ConfigFile: good}, deps())
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	os.WriteFile(good, []byte("[Interface]\nPrivateKey = abc\n"), 0o600)
	if err := v.Reconfig(Config{ConfigFile: good}); err == nil || !strings.Contains(err.Error(), "line 2") {
		t.Errorf("reload with a broken file: %v", err)
	}
	if st := v.Status(); st.Config == nil || st.State == StateNotConfigured {
		t.Errorf("the tunnel went away on a refused reload: %+v", st)
	}
	// Removed from under a running box: the next reload says so, and the
	// egress stays with the tunnel it has.
	os.Remove(good)
	if err := v.Reconfig(Config{ConfigFile: good}); err == nil || !strings.Contains(err.Error(), "good.conf") {
		t.Errorf("reload with the file gone: %v", err)
	}
	// A config file the box cannot use at all leaves it closed.
	v2, err := Start(Config{}, deps())
	if err != nil {
		t.Fatal(err)
	}
	defer v2.Close()
	v2.setConfigError("vpn.config_file /x: gone")
	_, err = v2.Dialer().DialContext(context.Background(), "tcp", "192.0.2.1:80")
	if !errors.Is(err, egress.ErrNoEgress) || !strings.Contains(err.Error(), "gone") {
		t.Errorf("dial with a bad config: %v", err)
	}
}

func TestConfigValidate(t *testing.T) {
	for _, tc := range []struct {
		cfg  Config
		want string
	}{
		{Config{ConfigFile: "/a", Config: "[Interface]"}, "both set"},
		{Config{ConfigFile: "vpn.conf"}, "absolute path"},
		{Config{Config: "[Interface]\n"}, "vpn.config"},
		{Config{ExitCheck: "ftp://x"}, "vpn.exit_check"},
		{Config{ExitCheck: "http://"}, "no host"},
	} {
		err := tc.cfg.Validate()
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: %v, want %q", tc.cfg, err, tc.want)
		}
	}
	if err := (Config{}).Validate(); err != nil {
		t.Error(err)
	}
}

func TestWANNotReady(t *testing.T) {
	e := newEnv(t, Config{})
	e.port.mu.Lock()
	e.port.st = wan.State{Ready: false, Problem: "no DHCP lease on wan0"}
	e.port.mu.Unlock()
	c := e.server.ClientConfig(e.key)
	c.Peer.Endpoint = netip.MustParseAddrPort("192.0.2.2:51820")
	if _, err := e.vpn.Set(c.Marshal()); err != nil {
		t.Fatal(err)
	}
	st := waitState(t, e.vpn, StateDown, 3*time.Second)
	if !strings.Contains(st.Reason, "no DHCP lease") {
		t.Errorf("reason: %s", st.Reason)
	}
}

func TestFindAddress(t *testing.T) {
	for in, want := range map[string]string{
		"203.0.113.7\n":                                            "203.0.113.7",
		`{"ip":"2001:db8::1","country":"SE"}`:                      "2001:db8::1",
		"tracker: you reached the internet from 192.0.2.2:41234\n": "192.0.2.2",
		"<html>You are 198.51.100.9</html>":                        "198.51.100.9",
	} {
		a, ok := findAddress(in)
		if !ok || a.String() != want {
			t.Errorf("findAddress(%q) = %v %v, want %s", in, a, ok, want)
		}
	}
	if _, ok := findAddress("no address here"); ok {
		t.Error("found an address in none")
	}
}

func FuzzFindAddress(f *testing.F) {
	f.Add("203.0.113.7\n")
	f.Add(`{"ip":"2001:db8::1"}`)
	f.Add("tracker: you reached the internet from 192.0.2.2:41234\n")
	f.Fuzz(func(t *testing.T, body string) {
		if a, ok := findAddress(body); ok && !a.IsValid() {
			t.Fatal("found an invalid address")
		}
	})
}

// TestDirectPaths: the team mesh's direct paths are in the firewall only while
// there is a VPN endpoint, survive new configs and Clear/Set, show in the
// status, are refused when malformed, and close with the VPN.
func TestDirectPaths(t *testing.T) {
	e := newEnv(t, Config{})
	direct := wanfw.DirectPaths{Mark: 0x80000, Port: 41641}
	if err := e.vpn.SetDirect(direct.Mark, direct.Port); err != nil {
		t.Fatal(err)
	}
	// No VPN: asked for, not open.
	if r := e.fw.last(); r.Direct.On() || r.Endpoint.IsValid() {
		t.Errorf("direct paths without a VPN: %+v", r)
	}
	if st := e.vpn.Status().Firewall; st.Direct != direct || st.DirectOpen {
		t.Errorf("status without a VPN: %+v", st)
	}
	if e.port.direct != direct {
		t.Errorf("the WAN port was told %+v", e.port.direct)
	}
	for _, bad := range []wanfw.DirectPaths{{Mark: Mark, Port: 41641}, {Mark: 0x80000}, {Port: 41641}} {
		if err := e.vpn.SetDirect(bad.Mark, bad.Port); err == nil {
			t.Errorf("SetDirect(0x%x, %d) accepted", bad.Mark, bad.Port)
		}
	}
	if st := e.vpn.Status().Firewall; st.Direct != direct {
		t.Errorf("a refused SetDirect changed the allowance: %+v", st)
	}

	// A VPN: open, with the endpoint's rule.
	c := e.server.ClientConfig(e.key)
	real := c.Peer.Endpoint
	e.vpn.deps.tunnelOptions = func(o *tunnel.Options) {
		o.Mark = 0
		cc := *o.Config
		cc.Peer.Endpoint = real
		o.Config = &cc
	}
	for _, ep := range []string{"192.0.2.2:51820", "192.0.2.3:51820"} { // a new config keeps it
		c.Peer.Endpoint = netip.MustParseAddrPort(ep)
		if _, err := e.vpn.Set(c.Marshal()); err != nil {
			t.Fatal(err)
		}
		if r := e.fw.last(); r.Direct != direct || r.Endpoint != c.Peer.Endpoint || r.Mark != Mark {
			t.Errorf("rules with a VPN at %s: %+v", ep, r)
		}
		st := e.vpn.Status().Firewall
		if !st.DirectOpen || !strings.Contains(st.Rules, "meta mark 0x80000 udp sport 41641") {
			t.Errorf("status with a VPN: %+v", st)
		}
	}
	// Cleared: shut with the rest; set again: open again.
	if err := e.vpn.Clear(); err != nil {
		t.Fatal(err)
	}
	if r := e.fw.last(); r.Direct.On() || r.Endpoint.IsValid() {
		t.Errorf("rules after Clear: %+v", r)
	}
	if _, err := e.vpn.Set(c.Marshal()); err != nil {
		t.Fatal(err)
	}
	if r := e.fw.last(); r.Direct != direct {
		t.Errorf("rules after Set again: %+v", r)
	}
	// Off.
	if err := e.vpn.SetDirect(0, 0); err != nil {
		t.Fatal(err)
	}
	if r := e.fw.last(); r.Direct.On() || !r.Endpoint.IsValid() {
		t.Errorf("rules with direct paths off: %+v", r)
	}
	if st := e.vpn.Status().Firewall; st.Direct.On() || st.DirectOpen || strings.Contains(st.Rules, "41641") {
		t.Errorf("status with direct paths off: %+v", st)
	}
	if e.port.direct.On() {
		t.Errorf("the WAN port still routes %+v", e.port.direct)
	}
	// On again, then the VPN closes: the table it leaves lets out only the
	// VPN's flow.
	if err := e.vpn.SetDirect(direct.Mark, direct.Port); err != nil {
		t.Fatal(err)
	}
	e.vpn.Close()
	if r := e.fw.last(); r.Direct.On() || r.Endpoint != c.Peer.Endpoint {
		t.Errorf("rules left by Close: %+v", r)
	}
}
