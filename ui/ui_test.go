package ui

import (
	"bufio"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redoubt/redoubt/internal/timeseries"
	"github.com/redoubt/redoubt/ui/setup"
	"github.com/redoubt/redoubt/vault"
)

var cheapKDF = vault.Params{Time: 1, MemoryKiB: 8 << 10, Threads: 1}

// fakeBox is the rest of the box, recording what the UI asked of it.
type fakeBox struct {
	mu       sync.Mutex
	settings Settings
	events   chan Stopped
	calls    []string
	// name is the box's name in its DNS, as the daemon sets it when told the
	// box was renamed ("" until then).
	name    string
	setup   *setup.Setup
	stopped []Stopped
}

func (f *fakeBox) call(s string) { f.mu.Lock(); f.calls = append(f.calls, s); f.mu.Unlock() }
func (f *fakeBox) called(s string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, c := range f.calls {
		if c == s {
			return true
		}
	}
	return false
}
func (f *fakeBox) Status() Status {
	return Status{Version: "test", Started: time.Now(), LAN: ServiceState{"up", "lan0"}, VPN: ServiceState{"not configured", ""}}
}
func (f *fakeBox) Devices() []Device {
	return []Device{{Name: "laptop", MAC: "02:52:44:00:00:64", IP: "10.201.86.100", Owner: true}}
}
func (f *fakeBox) Stopped() []Stopped {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := []Stopped{
		{Source: "connection", Category: "egress", Device: "laptop", MAC: "02:52:44:00:00:64", IP: "10.201.86.100", Proto: "tcp", App: "tls",
			Dst: "203.0.113.10", Port: 443, Name: "tracker.example", Count: 3, First: time.Now().Add(-time.Minute), Last: time.Now()},
		{Source: "dns", Category: "dns", Class: "os-telemetry", Who: "Windows diagnostic data", Device: "laptop", MAC: "02:52:44:00:00:64", IP: "10.201.86.100",
			Types: []string{"A", "AAAA"}, Name: "v10.events.data.microsoft.com", Count: 2, First: time.Now().Add(-time.Minute), Last: time.Now()},
		{Source: "connection", Category: "ipv6-link", Device: "laptop", MAC: "02:52:44:00:00:64", Proto: "icmpv6", Dst: "ff02::2", Count: 5, Last: time.Now()},
	}
	return append(out, f.stopped...)
}
func (f *fakeBox) Tally() Tally {
	t := Tally{Since: time.Now().Add(-time.Hour), ByKind: map[string]uint64{}}
	dev := DeviceTally{MAC: "02:52:44:00:00:64", IP: "10.201.86.100", ByKind: map[string]uint64{}}
	for _, e := range f.Stopped() {
		t.ByKind[e.Category] += e.Count
		dev.ByKind[e.Category] += e.Count
	}
	t.Devices = []DeviceTally{dev}
	return t
}
func (f *fakeBox) SubscribeStopped(int) (<-chan Stopped, func()) { return f.events, func() {} }
func (f *fakeBox) Chart(w, s time.Duration) timeseries.Snapshot {
	ts := timeseries.New([]string{"egress", "dns"}, 24*60)
	ts.Add(time.Now(), 0)
	ts.Add(time.Now(), 1)
	return ts.Snapshot(time.Now(), w, s)
}
func (f *fakeBox) WritePcap(w io.Writer) error { _, err := w.Write([]byte("pcap")); return err }
func (f *fakeBox) Settings() Settings {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.settings
}
func (f *fakeBox) ApplySettings(s Settings) error {
	if s.LeaseTime == "forever" {
		return &FieldError{"lease_time", "Write a duration such as 12h."}
	}
	f.mu.Lock()
	f.settings = s
	f.mu.Unlock()
	return nil
}
func (f *fakeBox) Reboot() error       { f.call("reboot"); return nil }
func (f *fakeBox) FactoryReset() error { f.call("reset"); return nil }
func (f *fakeBox) Unlocked()           { f.call("unlocked") }
func (f *fakeBox) Locked()             { f.call("locked") }
func (f *fakeBox) SetupDone()          { f.call("setup-done") }
func (f *fakeBox) Renamed() {
	f.call("renamed")
	f.mu.Lock()
	f.name = f.setup.BoxName()
	f.mu.Unlock()
}

// names are the box's names in its DNS: the defaults, and its own once the
// daemon was told of it.
func (f *fakeBox) names() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := []string{"redoubt.home.arpa", "setup.home.arpa"}
	if f.name != "" {
		out = append([]string{f.name + ".home.arpa"}, out...)
	}
	return out
}

// extStep is a setup step another room would add.
type extStep struct{ got map[string]string }

func (e *extStep) ID() string     { return "vpn" }
func (e *extStep) Title() string  { return "VPN" }
func (e *extStep) Intro() string  { return "Paste your VPN configuration." }
func (e *extStep) Optional() bool { return true }
func (e *extStep) Fields() []Field {
	return []Field{{Name: "config", Label: "WireGuard configuration", Type: "textarea"},
		{Name: "strict", Label: "Everything through the VPN", Type: "checkbox", Value: "on", Optional: true}}
}
func (e *extStep) Submit(v map[string]string) error {
	if !strings.Contains(v["config"], "[Interface]") {
		return &FieldError{"config", "This is not a WireGuard configuration."}
	}
	e.got = v
	return nil
}

// tlsServer is an httptest server whose listener speaks TLS.
type tlsServer struct {
	*httptest.Server
	URL string
}

// rig is a UI over a real vault and setup state in a temporary directory,
// served on plain HTTP and HTTPS like on the box.
type rig struct {
	t        testing.TB
	dir      string
	u        *UI
	box      *fakeBox
	vault    *vault.Vault
	setup    *setup.Setup
	step     *extStep
	plain    *httptest.Server
	secure   *tlsServer
	client   *http.Client
	now      time.Time
	nowMu    sync.Mutex
	codeFile string
}

func newRig(t testing.TB, dir string) *rig {
	t.Helper()
	r := &rig{t: t, dir: dir, box: &fakeBox{events: make(chan Stopped, 4), settings: Settings{BoxName: "kestrel", LANAddress: "10.201.86.1/24", LeaseTime: "12h0m0s"}},
		step: &extStep{}, now: time.Now(), codeFile: filepath.Join(dir, "boot", "code.txt")}
	var err error
	if r.setup, err = setup.Open(dir, r.codeFile); err != nil {
		t.Fatal(err)
	}
	if r.vault, err = vault.Open(filepath.Join(dir, "vault")); err != nil {
		t.Fatal(err)
	}
	r.box.setup = r.setup
	t.Cleanup(func() { r.vault.Close() })
	r.u, err = New(Deps{
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Version: "test", Setup: r.setup, Vault: r.vault, Box: r.box,
		Steps: []Step{r.step}, StateDir: dir, Addr: func() netip.Addr { return netip.MustParseAddr("127.0.0.1") },
		Names: r.box.names, KDF: func() vault.Params { return cheapKDF },
		Now: func() time.Time { r.nowMu.Lock(); defer r.nowMu.Unlock(); return r.now },
	})
	if err != nil {
		t.Fatal(err)
	}
	h := r.u.Handler()
	r.plain = httptest.NewServer(h)
	ts := httptest.NewUnstartedServer(h)
	// The box's own TLS configuration, as on the LAN port (httptest's StartTLS
	// would put its own certificate first).
	ts.Listener = tls.NewListener(ts.Listener, r.u.TLSConfig())
	ts.Start()
	r.secure = &tlsServer{ts, "https://" + ts.Listener.Addr().String()}
	t.Cleanup(func() { r.plain.Close(); r.secure.Close() })
	jar, _ := cookiejar.New(nil)
	r.client = &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	return r
}

func (r *rig) advance(d time.Duration) { r.nowMu.Lock(); r.now = r.now.Add(d); r.nowMu.Unlock() }

// caPEM is the box's CA certificate.
func (r *rig) caPEM() []byte {
	b, err := os.ReadFile(filepath.Join(r.dir, "ca.pem"))
	if err != nil {
		r.t.Fatal(err)
	}
	return b
}

// serverCert is the HTTPS certificate the box serves.
func (r *rig) serverCert() *x509.Certificate {
	r.t.Helper()
	c, err := tls.Dial("tcp", r.secure.Listener.Addr().String(), &tls.Config{InsecureSkipVerify: true})
	if err != nil {
		r.t.Fatal(err)
	}
	defer c.Close()
	return c.ConnectionState().PeerCertificates[0]
}

// trustBox makes the client trust the box's CA for HTTPS.
func (r *rig) trustBox() {
	pemBytes, err := os.ReadFile(filepath.Join(r.dir, "ca.pem"))
	if err != nil {
		r.t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pemBytes)
	r.client.Transport = &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, ServerName: "127.0.0.1"}}
}

type resp struct {
	status int
	body   string
	header http.Header
}

func (r *rig) do(method, base, path string, form url.Values, hdr map[string]string) resp {
	r.t.Helper()
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, _ := http.NewRequest(method, base+path, body)
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	res, err := r.client.Do(req)
	if err != nil {
		r.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return resp{res.StatusCode, string(b), res.Header}
}

var csrfRE = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

func csrfIn(t testing.TB, body string) string {
	t.Helper()
	m := csrfRE.FindStringSubmatch(body)
	if m == nil {
		t.Fatalf("no CSRF token in page:\n%s", body)
	}
	return m[1]
}

const goodPass = "orbit lantern cactus violin"

// setUp walks the wizard to the end over plain HTTP, as a new owner does.
func (r *rig) setUp() {
	t := r.t
	t.Helper()
	res := r.do("POST", r.plain.URL, "/setup/code", url.Values{"code": {r.setup.Code()}}, nil)
	if res.status != http.StatusSeeOther {
		t.Fatalf("right code: %d %s", res.status, res.body)
	}
	page := r.do("GET", r.plain.URL, "/setup", nil, nil)
	csrf := csrfIn(t, page.body)
	for _, step := range []struct {
		path string
		form url.Values
	}{
		{"/setup/passphrase", url.Values{"passphrase": {goodPass}, "confirm": {goodPass}}},
		{"/setup/name", url.Values{"name": {"kestrel"}}},
		{"/setup/step/vpn", url.Values{"skip": {"1"}}},
		{"/setup/finish", url.Values{}},
	} {
		step.form.Set("csrf", csrf)
		if res := r.do("POST", r.plain.URL, step.path, step.form, nil); res.status != http.StatusSeeOther {
			t.Fatalf("%s: %d %s", step.path, res.status, res.body)
		}
	}
	r.trustBox()
}

// signIn signs in over HTTPS and returns the session's CSRF token.
func (r *rig) signIn(pass string) string {
	r.t.Helper()
	res := r.do("POST", r.secure.URL, "/unlock", url.Values{"passphrase": {pass}}, nil)
	if res.status != http.StatusSeeOther {
		r.t.Fatalf("sign in: %d %s", res.status, res.body)
	}
	page := r.do("GET", r.secure.URL, "/", nil, nil)
	if page.status != http.StatusOK {
		r.t.Fatalf("dashboard after sign-in: %d", page.status)
	}
	return csrfIn(r.t, page.body)
}

func TestSetupWizard(t *testing.T) {
	r := newRig(t, t.TempDir())

	// Before setup, everything leads to the setup page, and the box says it is a
	// captive portal.
	if res := r.do("GET", r.plain.URL, "/", nil, nil); res.status != http.StatusFound || res.header.Get("Location") != "/setup" {
		t.Fatalf("GET / before setup: %d %s", res.status, res.header.Get("Location"))
	}
	if res := r.do("GET", r.plain.URL, "/captive-portal/api", nil, nil); !strings.Contains(res.body, `"captive":true`) ||
		res.header.Get("Content-Type") != "application/captive+json" || !strings.Contains(res.body, "/setup") {
		t.Fatalf("captive API before setup: %s %s", res.header.Get("Content-Type"), res.body)
	}
	page := r.do("GET", r.plain.URL, "/setup", nil, nil)
	if !strings.Contains(page.body, "setup code") {
		t.Fatalf("setup page does not ask for the code:\n%s", page.body)
	}

	// A wrong code is refused; steps cannot be reached without the code.
	if res := r.do("POST", r.plain.URL, "/setup/code", url.Values{"code": {"AAAA-BBBB-CCCC"}}, nil); res.status != http.StatusForbidden {
		t.Fatalf("wrong code: %d", res.status)
	}
	if res := r.do("POST", r.plain.URL, "/setup/passphrase", url.Values{"passphrase": {goodPass}, "confirm": {goodPass}}, nil); res.status != http.StatusForbidden {
		t.Fatalf("passphrase without the code: %d", res.status)
	}
	if r.vault.Initialized() {
		t.Fatal("the vault was created without the setup code")
	}

	code := r.setup.Code()
	if res := r.do("POST", r.plain.URL, "/setup/code", url.Values{"code": {code}}, nil); res.status != http.StatusSeeOther {
		t.Fatalf("right code: %d %s", res.status, res.body)
	}
	page = r.do("GET", r.plain.URL, "/setup", nil, nil)
	if !strings.Contains(page.body, "Choose a passphrase") {
		t.Fatalf("after the code, the passphrase step:\n%s", page.body)
	}
	csrf := csrfIn(t, page.body)

	// Weak passphrases are refused with the reason.
	res := r.do("POST", r.plain.URL, "/setup/passphrase", url.Values{"csrf": {csrf}, "passphrase": {"password1234"}, "confirm": {"password1234"}}, nil)
	if res.status != http.StatusUnprocessableEntity || !strings.Contains(res.body, "most common") {
		t.Fatalf("weak passphrase: %d", res.status)
	}
	res = r.do("POST", r.plain.URL, "/setup/passphrase", url.Values{"csrf": {csrf}, "passphrase": {goodPass}, "confirm": {goodPass + "x"}}, nil)
	if res.status != http.StatusUnprocessableEntity || !strings.Contains(res.body, "differ") {
		t.Fatalf("mismatched passphrases: %d", res.status)
	}
	// The meter asks the box.
	res = r.do("POST", r.plain.URL, "/setup/strength", url.Values{"csrf": {csrf}, "passphrase": {"short"}}, nil)
	if !strings.Contains(res.body, `"ok":false`) {
		t.Fatalf("strength of a short passphrase: %s", res.body)
	}
	// A missing CSRF token is refused.
	if res := r.do("POST", r.plain.URL, "/setup/passphrase", url.Values{"passphrase": {goodPass}, "confirm": {goodPass}}, nil); res.status != http.StatusForbidden {
		t.Fatalf("passphrase without CSRF: %d", res.status)
	}
	if res := r.do("POST", r.plain.URL, "/setup/passphrase", url.Values{"csrf": {csrf}, "passphrase": {goodPass}, "confirm": {goodPass}}, nil); res.status != http.StatusSeeOther {
		t.Fatalf("good passphrase: %d %s", res.status, res.body)
	}
	if !r.vault.Initialized() || r.vault.Locked() || !r.box.called("unlocked") {
		t.Fatal("the passphrase did not create and open the vault")
	}

	// A reload resumes at the name step; another browser cannot take over.
	if page := r.do("GET", r.plain.URL, "/setup", nil, nil); !strings.Contains(page.body, "Name your box") {
		t.Fatal("reload did not resume at the name step")
	}
	other := &http.Client{}
	if res, _ := other.PostForm(r.plain.URL+"/setup/name", url.Values{"csrf": {csrf}, "name": {"evil"}}); res.StatusCode != http.StatusForbidden {
		t.Fatalf("another browser continued setup: %d", res.StatusCode)
	}
	if res := r.do("POST", r.plain.URL, "/setup/name", url.Values{"csrf": {csrf}, "name": {"Not a name!"}}, nil); res.status != http.StatusUnprocessableEntity {
		t.Fatalf("bad name: %d", res.status)
	}
	if res := r.do("POST", r.plain.URL, "/setup/name", url.Values{"csrf": {csrf}, "name": {"Kestrel"}}, nil); res.status != http.StatusSeeOther {
		t.Fatalf("name: %d %s", res.status, res.body)
	}

	// A step added by another room: its errors show, its answers reach it.
	page = r.do("GET", r.plain.URL, "/setup", nil, nil)
	if !strings.Contains(page.body, "Paste your VPN configuration") {
		t.Fatalf("the added step is not shown:\n%s", page.body)
	}
	const ticked = `name="strict" value="on" checked`
	if !strings.Contains(page.body, ticked) {
		t.Errorf("a checkbox whose value is \"on\" is not ticked at first:\n%s", page.body)
	}
	res = r.do("POST", r.plain.URL, "/setup/step/vpn", url.Values{"csrf": {csrf}, "config": {"nonsense"}}, nil)
	if res.status != http.StatusUnprocessableEntity || !strings.Contains(res.body, "not a WireGuard configuration") {
		t.Fatalf("step error: %d", res.status)
	}
	if strings.Contains(res.body, ticked) {
		t.Errorf("the refused form ticked again a checkbox the owner left empty")
	}
	if res := r.do("POST", r.plain.URL, "/setup/step/vpn", url.Values{"csrf": {csrf}, "config": {"[Interface]\nPrivateKey = x"}}, nil); res.status != http.StatusSeeOther {
		t.Fatalf("step: %d", res.status)
	}
	if r.step.got == nil || r.step.got["strict"] != "" {
		t.Fatalf("the step's answers did not reach it as given: %q", r.step.got)
	}

	if res := r.do("POST", r.plain.URL, "/setup/finish", url.Values{"csrf": {csrf}}, nil); res.status != http.StatusSeeOther || res.header.Get("Location") != "/setup/done" {
		t.Fatalf("finish: %d %s", res.status, res.body)
	}
	if !r.setup.Done() || r.setup.BoxName() != "kestrel" || !r.box.called("setup-done") {
		t.Fatal("setup is not done")
	}
	done := r.do("GET", r.plain.URL, "/setup/done", nil, nil)
	if !strings.Contains(done.body, "/ca.crt") || !strings.Contains(done.body, "iPhone") || !strings.Contains(done.body, "Windows") {
		t.Fatalf("the finish page does not offer the CA with instructions:\n%s", done.body)
	}
	ca := r.do("GET", r.plain.URL, "/ca.crt", nil, nil)
	if !strings.Contains(ca.body, "BEGIN CERTIFICATE") {
		t.Fatal("the CA certificate is not offered over plain HTTP")
	}
	// After setup: a plain-HTTP visit explains and offers the certificate, then
	// leads to HTTPS on the host it came by; the box stops being a captive
	// portal, and HTTPS works with the box's CA, by the box's new name too.
	if res := r.do("GET", r.plain.URL, "/settings", nil, nil); res.status != http.StatusOK || !strings.Contains(res.body, "Trust your box") ||
		!strings.Contains(res.body, `href="https://127.0.0.1/settings"`) || !strings.Contains(res.body, pemFingerprint(r.caPEM())) ||
		!strings.Contains(res.body, `data-trust-check="https://127.0.0.1/trust-check"`) {
		t.Fatalf("plain HTTP after setup: %d\n%s", res.status, res.body)
	}
	if res := r.do("POST", r.plain.URL, "/lock", url.Values{}, nil); res.status != http.StatusSeeOther || res.header.Get("Location") != "https://127.0.0.1/lock" {
		t.Fatalf("a plain-HTTP change after setup: %d %s", res.status, res.header.Get("Location"))
	}
	leaf := r.serverCert()
	if err := leaf.VerifyHostname("kestrel.home.arpa"); err != nil {
		t.Fatalf("the certificate setup made does not cover the box's name: %v (it has %v)", err, leaf.DNSNames)
	}
	if !strings.Contains(done.body, `href="https://kestrel.home.arpa/"`) {
		t.Fatalf("the finish page does not lead to the box's name over HTTPS:\n%s", done.body)
	}
	if res := r.do("GET", r.plain.URL, "/captive-portal/api", nil, nil); !strings.Contains(res.body, `"captive":false`) {
		t.Fatalf("captive API after setup: %s", res.body)
	}
	r.trustBox()
	if res := r.do("GET", r.secure.URL, "/", nil, nil); res.status != http.StatusFound || !strings.HasPrefix(res.header.Get("Location"), "/unlock") {
		t.Fatalf("HTTPS dashboard without a session: %d %s", res.status, res.header.Get("Location"))
	}
}

func TestSignInLockAndCSRF(t *testing.T) {
	r := newRig(t, t.TempDir())
	r.setUp()
	if res := r.do("POST", r.secure.URL, "/unlock", url.Values{"passphrase": {"wrong wrong wrong"}}, nil); res.status != http.StatusForbidden {
		t.Fatalf("wrong passphrase: %d", res.status)
	}
	csrf := r.signIn(goodPass)
	page := r.do("GET", r.secure.URL, "/", nil, nil)
	for _, want := range []string{"tracker.example", "laptop", "Stopped over time", "/drops.pcap"} {
		if !strings.Contains(page.body, want) {
			t.Errorf("dashboard lacks %q", want)
		}
	}
	if page.header.Get("Strict-Transport-Security") == "" || !strings.Contains(page.header.Get("Content-Security-Policy"), "default-src 'none'") {
		t.Errorf("security headers: %v", page.header)
	}
	if !strings.HasPrefix(r.do("GET", r.secure.URL, "/chart.svg", nil, nil).body, "<svg") {
		t.Error("the chart is not an SVG")
	}
	if r.do("GET", r.secure.URL, "/drops.pcap", nil, nil).body != "pcap" {
		t.Error("pcap download")
	}

	// Changes need the CSRF token, and same-origin requests.
	if res := r.do("POST", r.secure.URL, "/lock", url.Values{}, nil); res.status != http.StatusForbidden {
		t.Fatalf("lock without CSRF: %d", res.status)
	}
	if res := r.do("POST", r.secure.URL, "/lock", url.Values{"csrf": {csrf}}, map[string]string{"Sec-Fetch-Site": "cross-site"}); res.status != http.StatusForbidden {
		t.Fatalf("cross-site lock: %d", res.status)
	}
	if res := r.do("POST", r.secure.URL, "/lock", url.Values{"csrf": {csrf}}, map[string]string{"Origin": "https://evil.example"}); res.status != http.StatusForbidden {
		t.Fatalf("lock from another origin: %d", res.status)
	}
	if r.vault.Locked() {
		t.Fatal("a refused request locked the box")
	}
	if res := r.do("POST", r.secure.URL, "/lock", url.Values{"csrf": {csrf}}, nil); res.status != http.StatusSeeOther {
		t.Fatalf("lock: %d", res.status)
	}
	if !r.vault.Locked() || !r.box.called("locked") {
		t.Fatal("the box is not locked")
	}
	if res := r.do("GET", r.secure.URL, "/", nil, nil); res.header.Get("Location") != "/unlock" {
		t.Fatalf("locked box: %d %s", res.status, res.header.Get("Location"))
	}
	if page := r.do("GET", r.secure.URL, "/unlock", nil, nil); !strings.Contains(page.body, "locked") {
		t.Fatal("the unlock page does not say the box is locked")
	}
	r.signIn(goodPass)
}

func TestHostCheck(t *testing.T) {
	r := newRig(t, t.TempDir())
	res := r.do("GET", r.plain.URL, "/", nil, map[string]string{})
	_ = res
	req, _ := http.NewRequest("GET", r.plain.URL+"/setup", nil)
	req.Host = "captive.apple.com"
	res2, err := r.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(res2.Body)
	res2.Body.Close()
	if res2.StatusCode != http.StatusFound || res2.Header.Get("Location") != "http://127.0.0.1/setup" || strings.Contains(string(b), "setup code") {
		t.Fatalf("foreign Host: %d %s", res2.StatusCode, res2.Header.Get("Location"))
	}
	req.Host = "redoubt.home.arpa"
	res3, _ := r.client.Do(req)
	res3.Body.Close()
	if res3.StatusCode != http.StatusOK {
		t.Fatalf("the box's own name: %d", res3.StatusCode)
	}
}

func TestRestartComesBackLockedAndSessionsExpire(t *testing.T) {
	dir := t.TempDir()
	r := newRig(t, dir)
	r.setUp()
	r.signIn(goodPass)
	r.vault.Close()

	// A new process over the same state: locked, sessions gone.
	r2 := newRig(t, dir)
	r2.trustBox()
	if !r2.vault.Locked() || !r2.setup.Done() {
		t.Fatal("after a restart the box should be set up and locked")
	}
	if res := r2.do("GET", r2.secure.URL, "/settings", nil, nil); res.header.Get("Location") != "/unlock" {
		t.Fatalf("settings on a locked box: %d %s", res.status, res.header.Get("Location"))
	}
	r2.signIn(goodPass)
	if !r2.box.called("unlocked") {
		t.Fatal("unlocking did not tell the box")
	}
	// Idle for 16 minutes: signed out.
	r2.advance(16 * time.Minute)
	if res := r2.do("GET", r2.secure.URL, "/settings", nil, nil); res.status != http.StatusFound {
		t.Fatalf("idle session still valid: %d", res.status)
	}
}

func TestSettings(t *testing.T) {
	r := newRig(t, t.TempDir())
	r.setUp()
	csrf := r.signIn(goodPass)
	page := r.do("GET", r.secure.URL, "/settings", nil, nil)
	if !strings.Contains(page.body, "10.201.86.1/24") {
		t.Fatal("settings page lacks the LAN address")
	}
	form := url.Values{"csrf": {csrf}, "box_name": {"kestrel"}, "lan_address": {"10.201.86.1/24"}, "lease_time": {"forever"}, "reservations": {""}}
	if res := r.do("POST", r.secure.URL, "/settings", form, nil); res.status != http.StatusUnprocessableEntity || !strings.Contains(res.body, "duration") {
		t.Fatalf("bad lease time: %d", res.status)
	}
	form.Set("lease_time", "2h")
	form.Set("reservations", "02:52:44:00:00:64 10.201.86.20 # the laptop\n\nnonsense")
	if res := r.do("POST", r.secure.URL, "/settings", form, nil); res.status != http.StatusUnprocessableEntity || !strings.Contains(res.body, "Line 3") {
		t.Fatalf("bad reservation line: %d", res.status)
	}
	form.Set("reservations", "02:52:44:00:00:64 10.201.86.20 # the laptop")
	if res := r.do("POST", r.secure.URL, "/settings", form, nil); res.status != http.StatusSeeOther {
		t.Fatalf("good settings: %d %s", res.status, res.body)
	}
	if got := r.box.Settings(); got.LeaseTime != "2h" || len(got.Reservations) != 1 || got.Reservations[0].IP != "10.201.86.20" {
		t.Fatalf("applied: %+v", got)
	}
	// A new LAN address: the page says where the box is going, by name and by
	// address, rather than sending the browser back to an address about to go.
	form.Set("lan_address", "10.77.0.1/24")
	form.Set("reservations", "")
	res := r.do("POST", r.secure.URL, "/settings", form, nil)
	if res.status != http.StatusOK || !strings.Contains(res.body, "moves to 10.77.0.1") ||
		!strings.Contains(res.body, `href="http://10.77.0.1/settings"`) || !strings.Contains(res.body, `href="http://kestrel.home.arpa/settings"`) {
		t.Fatalf("moving: %d %s", res.status, res.body)
	}

	// Passphrase change: the old one stops working.
	pw := url.Values{"csrf": {csrf}, "current": {"not it at all"}, "passphrase": {"quartz meadow falcon ember"}, "confirm": {"quartz meadow falcon ember"}}
	if res := r.do("POST", r.secure.URL, "/settings/passphrase", pw, nil); res.status != http.StatusUnprocessableEntity {
		t.Fatalf("wrong current passphrase: %d", res.status)
	}
	pw.Set("current", goodPass)
	if res := r.do("POST", r.secure.URL, "/settings/passphrase", pw, nil); res.status != http.StatusSeeOther {
		t.Fatalf("change passphrase: %d %s", res.status, res.body)
	}
	r.vault.Lock()
	if err := r.vault.Unlock([]byte(goodPass)); !errors.Is(err, vault.ErrWrongPass) {
		t.Fatalf("old passphrase after change: %v", err)
	}
	if err := r.vault.Unlock([]byte("quartz meadow falcon ember")); err != nil {
		t.Fatal(err)
	}
}

func TestFactoryResetNeedsTheName(t *testing.T) {
	r := newRig(t, t.TempDir())
	r.setUp()
	csrf := r.signIn(goodPass)
	if res := r.do("POST", r.secure.URL, "/reset", url.Values{"csrf": {csrf}, "confirm_reset": {"yes"}}, nil); res.status != http.StatusUnprocessableEntity || r.box.called("reset") {
		t.Fatalf("reset without the name: %d", res.status)
	}
	if res := r.do("POST", r.secure.URL, "/reset", url.Values{"csrf": {csrf}, "confirm_reset": {"kestrel"}}, nil); res.status != http.StatusOK || !r.box.called("reset") {
		t.Fatalf("reset: %d", res.status)
	}
	if _, err := os.Stat(filepath.Join(r.dir, "ca.pem")); !os.IsNotExist(err) {
		t.Error("the CA certificate survived the reset")
	}
}

func TestLiveFeed(t *testing.T) {
	r := newRig(t, t.TempDir())
	r.setUp()
	r.signIn(goodPass)
	req, _ := http.NewRequest("GET", r.secure.URL+"/events", nil)
	res, err := r.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	if res.Header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("events content type %q", res.Header.Get("Content-Type"))
	}
	r.box.events <- Stopped{Category: "egress", Name: "live.example", Last: time.Now()}
	sc := bufio.NewScanner(res.Body)
	deadline := time.After(5 * time.Second)
	got := make(chan string, 1)
	go func() {
		for sc.Scan() {
			if strings.Contains(sc.Text(), "live.example") {
				got <- sc.Text()
				return
			}
		}
	}()
	select {
	case <-got:
	case <-deadline:
		t.Fatal("the event did not arrive")
	}
}
