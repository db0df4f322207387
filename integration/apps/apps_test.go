// Package apps tests the apps platform in the lab, with the real LAN netstack,
// the real tailnet (Headscale and a teammate's tailscaled) and Chromium: an app
// reached by name over HTTPS from the laptop (the owner, handed over from the
// box's pages without a password) and from a member's device (who the tailnet
// says they are), one origin unable to read another, a locked box serving no
// app data, the LAN moving under a running app, a removed member's socket
// closed within seconds.
package apps

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/netip"
	"net/url"
	"os/exec"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"
	"golang.org/x/net/proxy"

	"github.com/redoubt/redoubt/apps"
	"github.com/redoubt/redoubt/lab"
	"github.com/redoubt/redoubt/lab/browser"
	"github.com/redoubt/redoubt/lab/labtest"
)

func TestMain(m *testing.M) { labtest.Main(m) }

const (
	passphrase = "harbor quill saffron tundra"
	boxName    = "kestrel"
	member     = "alex"
	device     = "alex-laptop"
	clip       = "https://clipboard.kestrel.home.arpa"
	admin      = "https://kestrel.home.arpa"
)

// laptop is a program on the laptop: it resolves names with the box's DNS
// (the address in its lease) and connects from the laptop's namespace,
// trusting the box's CA.
type laptop struct {
	e   *labtest.Env
	dns atomic.Pointer[netip.Addr]
	ca  *x509.CertPool
}

func (l *laptop) dial(ctx context.Context, network, addr string) (net.Conn, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, err
	}
	if _, err := netip.ParseAddr(host); err != nil {
		r := &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return l.e.Lab.DialContext(lab.Laptop)(ctx, "udp", netip.AddrPortFrom(*l.dns.Load(), 53).String())
		}}
		ips, err := r.LookupNetIP(ctx, "ip4", host)
		if err != nil || len(ips) == 0 {
			return nil, fmt.Errorf("the box's DNS does not resolve %s: %v", host, err)
		}
		host = ips[0].String()
	}
	return l.e.Lab.DialContext(lab.Laptop)(ctx, network, net.JoinHostPort(host, port))
}

// client is a browser-like client on the laptop: cookies kept, redirects not
// followed.
func (l *laptop) client() *http.Client {
	jar, _ := cookiejar.New(nil)
	return &http.Client{Jar: jar, Timeout: 20 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		Transport:     &http.Transport{DialContext: l.dial, TLSClientConfig: &tls.Config{RootCAs: l.ca}}}
}

// teammate is a client on the member's device: through tailscaled's SOCKS5
// proxy, so names are the tailnet's, trusting the box's CA (which the
// enrollment script installed there).
func teammate(e *labtest.Env, ca *x509.CertPool) *http.Client {
	d, _ := proxy.SOCKS5("tcp", lab.TeammateSOCKS.String(), nil, nsDialer{e})
	cd := d.(proxy.ContextDialer)
	return &http.Client{Timeout: 20 * time.Second, Transport: &http.Transport{DialContext: cd.DialContext,
		TLSClientConfig: &tls.Config{RootCAs: ca}, DisableKeepAlives: true}}
}

type nsDialer struct{ e *labtest.Env }

func (n nsDialer) Dial(network, addr string) (net.Conn, error) {
	return n.e.Lab.DialContext(lab.Teammate)(context.Background(), network, addr)
}

func (n nsDialer) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	return n.e.Lab.DialContext(lab.Teammate)(ctx, network, addr)
}

func get(ctx context.Context, c *http.Client, u string, hdr ...string) (int, http.Header, string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return 0, nil, "", err
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := c.Do(req)
	if err != nil {
		return 0, nil, "", err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, string(b), nil
}

func waitFor(tb testing.TB, d time.Duration, fn func() error) {
	tb.Helper()
	var err error
	for deadline := time.Now().Add(d); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		if err = fn(); err == nil {
			return
		}
	}
	tb.Fatalf("after %v: %v", d, err)
}

// cli runs the redoubt command line against the box's socket.
func cli(ctx context.Context, e *labtest.Env, args ...string) (string, error) {
	bin, err := labtest.Binary()
	if err != nil {
		return "", err
	}
	return e.Lab.Exec(ctx, lab.Box, append([]string{bin}, append(args, "--socket", e.Box.Socket)...)...)
}

// openApp signs the owner's client into an app the way the Apps page's Open
// does: the owner's pages hand over a one-time link; no password.
func openApp(t *testing.T, ctx context.Context, c *http.Client, id string) {
	t.Helper()
	st, h, body, err := get(ctx, c, admin+"/apps/"+id+"/open")
	if err != nil || st != http.StatusSeeOther {
		t.Fatalf("opening %s from the owner's pages: %d %v %.300s", id, st, err, body)
	}
	link := h.Get("Location")
	if !strings.HasPrefix(link, "https://"+id+".kestrel.home.arpa/.redoubt/handoff?t=") {
		t.Fatalf("the hand-off link: %s", link)
	}
	if st, h, _, err := get(ctx, c, link); err != nil || st != http.StatusSeeOther || h.Get("Location") != "/" {
		t.Fatalf("the hand-off: %d %v %v", st, h, err)
	}
}

func TestApps(t *testing.T) {
	if err := lab.RequireDHCPClients(); err != nil {
		t.Skip(err)
	}
	e := labtest.SharedMesh(t)
	m := e.Lab.Mesh
	ctx, cancel := context.WithTimeout(context.Background(), 6*time.Minute)
	defer cancel()
	waitFor(t, 30*time.Second, func() error {
		st, err := e.Box.API.Status(ctx)
		if err != nil || st.VPN == nil || st.VPN.State != "up" {
			return fmt.Errorf("the box's VPN: %+v %v", st.VPN, err)
		}
		return nil
	})
	// The laptop takes its address, router and resolver from the box.
	dc, err := e.Lab.StartUDHCPC(ctx, lab.DHCPOptions{Hostname: "laptop"})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { dc.Stop() }()
	if _, _, err := dc.WaitLease(ctx, 0); err != nil {
		t.Fatal(err)
	}
	lp := &laptop{e: e}
	box := lab.BoxLAN
	lp.dns.Store(&box)

	// Setup, with the team mesh and the wizard's apps step: the clipboard
	// and the members' page start.
	plain := e.Lab.HTTPClient(lab.Laptop, nil)
	code, err := e.Box.API.SetupCode(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := lab.SetUpBoxWith(ctx, plain, "http://"+lab.BoxLAN.String(), code, passphrase, boxName, map[string]url.Values{
		"team": {"login_server": {m.URL}, "api_key": {m.APIKey}},
		"apps": {"start-clipboard": {"on"}, "start-home": {"on"}},
	}); err != nil {
		t.Fatalf("setup: %v", err)
	}
	_, _, caPEM, err := get(ctx, plain, "http://"+lab.BoxLAN.String()+"/ca.crt")
	if err != nil {
		t.Fatal(err)
	}
	lp.ca = x509.NewCertPool()
	lp.ca.AppendCertsFromPEM([]byte(caPEM))
	owner := lp.client()
	if _, err := lab.SignIn(ctx, owner, admin, passphrase); err != nil {
		t.Fatalf("signing in by the box's name: %v", err)
	}
	var tailName string
	waitFor(t, 90*time.Second, func() error {
		st, err := e.Box.API.Status(ctx)
		if err != nil || st.Mesh == nil || st.Mesh.Node != "up" || st.Mesh.Name == "" {
			return fmt.Errorf("the box's node: %+v %v", st.Mesh, err)
		}
		tailName = st.Mesh.Name + "." + lab.TeamDomain
		return nil
	})

	// A member joins with the team page's script.
	invite := func() {
		csrf := csrfOf(t, ctx, owner, admin+"/team")
		resp, err := owner.PostForm(admin+"/team/add", url.Values{"csrf": {csrf}, "name": {member}})
		if err != nil || resp.StatusCode != http.StatusSeeOther {
			t.Fatalf("adding %s: %v %v", member, resp, err)
		}
		resp.Body.Close()
		_, _, script, err := get(ctx, owner, admin+resp.Header.Get("Location")+"/join.sh")
		if err != nil || !strings.HasPrefix(script, "#!") {
			t.Fatalf("the script: %v %.100s", err, script)
		}
		if out, err := m.Enroll(ctx, script, "--hostname", device); err != nil {
			t.Fatalf("enrolling: %v\n%s", err, out)
		}
	}
	invite()
	t.Cleanup(func() { m.ResetTeammate(context.Background()) })
	tm := teammate(e, lp.ca)

	t.Run("by name from the laptop", func(t *testing.T) {
		out, err := e.Lab.Exec(ctx, lab.Laptop, "dig", "+short", "+tries=1", "+time=2", "clipboard.kestrel.home.arpa", "A")
		if err != nil || strings.TrimSpace(out) != lab.BoxLAN.String() {
			t.Errorf("the laptop's resolver on the app's name: %q %v", out, err)
		}
		// Without a session: a browser is sent to the owner's pages, a
		// native client asked for a password.
		st, h, _, err := get(ctx, lp.client(), clip+"/api/entries", "Accept", "text/html")
		if err != nil || st != http.StatusSeeOther || !strings.HasPrefix(h.Get("Location"), admin+"/apps/clipboard/open") {
			t.Errorf("without a session: %d %v %v", st, h.Get("Location"), err)
		}
		if st, h, _, _ := get(ctx, lp.client(), clip+"/api/entries"); st != http.StatusUnauthorized || h.Get("WWW-Authenticate") == "" {
			t.Errorf("a native client without a password: %d", st)
		}
		openApp(t, ctx, owner, "clipboard")
		st, _, body, err := get(ctx, owner, clip+"/api/whoami")
		if err != nil || st != 200 || !strings.Contains(body, `"owner":true`) || !strings.Contains(body, `"network":"lan"`) {
			t.Fatalf("whoami on the LAN: %d %v %s", st, err, body)
		}
		req, _ := http.NewRequestWithContext(ctx, "POST", clip+"/api/text", strings.NewReader(`{"text": "from the owner's laptop"}`))
		req.Header.Set("Content-Type", "application/json")
		resp, err := owner.Do(req)
		if err != nil || resp.StatusCode != http.StatusCreated {
			t.Fatalf("pasting: %v %v", resp, err)
		}
		resp.Body.Close()
		out, err = cli(ctx, e, "app", "status", "clipboard")
		if err != nil || !strings.Contains(out, "running: yes") || !strings.Contains(out, "published-lan: "+clip) ||
			!strings.Contains(out, "published-tailnet: https://"+tailName+":8440") {
			t.Errorf("redoubt app status: %v\n%s", err, out)
		}
	})

	t.Run("from the teammate, by who the tailnet says", func(t *testing.T) {
		u := "https://" + tailName + ":8440"
		var body string
		waitFor(t, 60*time.Second, func() error {
			st, _, b, err := get(ctx, tm, u+"/api/whoami")
			if err != nil || st != 200 {
				return fmt.Errorf("whoami: %d %v %.200s", st, err, b)
			}
			body = b
			return nil
		})
		var c apps.Caller
		json.Unmarshal([]byte(body), &c)
		if c.Owner || c.Member.Name != member || c.Device != device || c.Network != apps.Tailnet {
			t.Errorf("the member as the app sees them: %s", body)
		}
		if _, _, b, _ := get(ctx, tm, u+"/api/entries"); !strings.Contains(b, "from the owner's laptop") {
			t.Errorf("the owner's paste, from the teammate: %s", b)
		}
		if _, _, b, _ := get(ctx, tm, "https://"+tailName+"/"); !strings.Contains(b, "Clipboard") || !strings.Contains(b, "<strong>"+member+"</strong>") {
			t.Errorf("the members' page: %.500s", b)
		}
		// Another origin's page gets nothing to read: no CORS, resources
		// kept to the origin.
		_, h, _, _ := get(ctx, tm, u+"/api/entries", "Origin", "https://"+tailName)
		if h.Get("Access-Control-Allow-Origin") != "" || h.Get("Cross-Origin-Resource-Policy") != "same-origin" {
			t.Errorf("cross-origin headers: %v", h)
		}
	})

	t.Run("one origin cannot read another", func(t *testing.T) {
		if err := browser.Available(browser.Options{}); err != nil {
			t.Skipf("browser test skipped: %v", err)
		}
		b := browser.ForTest(t, e.Lab, browser.Options{TrustCA: []byte(caPEM), Timeout: 20 * time.Second, Width: 390, Height: 844})
		if _, err := b.Navigate(admin + "/unlock"); err != nil {
			t.Fatal(err)
		}
		must(t, b.Fill("#passphrase", passphrase))
		if _, err := b.Submit("#passphrase"); err != nil {
			t.Fatal(err)
		}
		if _, err := b.Navigate(admin + "/apps"); err != nil {
			t.Fatal(err)
		}
		must(t, b.WaitText("Clipboard"))
		// Open: the one-time hand-off, no password, on the app's own name.
		if _, err := b.Navigate(admin + "/apps/clipboard/open"); err != nil {
			t.Fatal(err)
		}
		must(t, b.WaitText("You are the box's owner"))
		must(t, b.WaitText("from the owner's laptop"))
		if u, _ := b.URL(); u != clip+"/" {
			t.Errorf("landed on %s", u)
		}
		b.Screenshot("clipboard-390")
		// From the app's page: the owner's pages can be neither read nor
		// changed, with the owner signed in there.
		var out string
		must(t, b.Eval(`fetch("`+admin+`/settings", {credentials: "include"}).then(r => "read " + r.status, e => "refused: " + e.message)`, &out))
		if !strings.HasPrefix(out, "refused") {
			t.Errorf("the app's page read the owner's settings: %s", out)
		}
		must(t, b.Eval(`fetch("`+admin+`/lock", {method: "POST", mode: "no-cors", credentials: "include", body: new URLSearchParams({x: "1"})}).then(() => "sent", e => "refused: " + e.message)`, &out))
		time.Sleep(500 * time.Millisecond)
		if st, err := e.Box.API.Status(ctx); err != nil || st.Owner.Locked {
			t.Fatalf("the app's page locked the box (%+v, %v)", st.Owner, err)
		}
		must(t, b.Eval(`document.cookie`, &out))
		if out != "" {
			t.Errorf("the app's page reads cookies: %q", out)
		}
		// From the owner's pages: the app's data cannot be read either.
		if _, err := b.Navigate(admin + "/apps"); err != nil {
			t.Fatal(err)
		}
		must(t, b.Eval(`fetch("`+clip+`/api/entries", {credentials: "include"}).then(r => r.text(), e => "refused: " + e.message)`, &out))
		if !strings.HasPrefix(out, "refused") {
			t.Errorf("the owner's pages read the app's data: %.200s", out)
		}
		for _, p := range b.Problems() {
			t.Logf("browser: %v", p)
		}
	})

	t.Run("a locked box serves no app data", func(t *testing.T) {
		if out, err := cli(ctx, e, "lock"); err != nil {
			t.Fatalf("redoubt lock: %v %s", err, out)
		}
		st, _, body, err := get(ctx, owner, clip+"/api/entries", "Accept", "text/html")
		if err != nil || st != http.StatusServiceUnavailable || !strings.Contains(body, "The box is locked") || strings.Contains(body, "from the owner's laptop") {
			t.Errorf("the app while locked: %d %v %.300s", st, err, body)
		}
		if out, err := cli(ctx, e, "app", "list"); err != nil || !strings.Contains(out, "clipboard") || !strings.Contains(out, "locked") {
			t.Errorf("redoubt app list while locked: %v\n%s", err, out)
		}
		if out, err := cli(ctx, e, "app", "get-option", "clipboard", "keep"); err == nil {
			t.Errorf("an option read while locked: %s", out)
		}
		unlock := exec.CommandContext(ctx, "ip", "netns", "exec", e.Lab.NS(lab.Box), mustBinary(t), "unlock", "--socket", e.Box.Socket)
		unlock.Stdin = strings.NewReader(passphrase + "\n")
		if out, err := unlock.CombinedOutput(); err != nil {
			t.Fatalf("redoubt unlock: %v %s", err, out)
		}
		// The lock ended the app's sessions; the data was kept.
		if st, _, _, _ := get(ctx, owner, clip+"/api/entries"); st != http.StatusUnauthorized && st != http.StatusSeeOther {
			t.Errorf("the session outlived the lock: %d", st)
		}
		if _, err := lab.SignIn(ctx, owner, admin, passphrase); err != nil {
			t.Fatal(err)
		}
		waitFor(t, 20*time.Second, func() error {
			out, err := cli(ctx, e, "app", "status", "clipboard")
			if err != nil || !strings.Contains(out, "running: yes") {
				return fmt.Errorf("%v %s", err, out)
			}
			return nil
		})
		openApp(t, ctx, owner, "clipboard")
		if _, _, body, _ := get(ctx, owner, clip+"/api/entries"); !strings.Contains(body, "from the owner's laptop") {
			t.Errorf("after the unlock: %.300s", body)
		}
	})

	t.Run("the LAN moves under a running app", func(t *testing.T) {
		to := netip.MustParsePrefix("10.77.0.1/24")
		csrf := csrfOf(t, ctx, owner, admin+"/settings")
		resp, err := owner.PostForm(admin+"/settings", url.Values{"csrf": {csrf}, "box_name": {boxName}, "lan_address": {to.String()}, "lease_time": {"12h"}, "reservations": {""}})
		if err != nil || resp.StatusCode != http.StatusOK {
			t.Fatalf("moving: %v %v", resp, err)
		}
		resp.Body.Close()
		moved := time.Now()
		// The laptop asks DHCP again when its link comes back.
		time.Sleep(2 * time.Second)
		dc.Stop()
		waitFor(t, 30*time.Second, func() error {
			out, _ := e.Lab.Exec(ctx, lab.Laptop, "cat", "/sys/class/net/"+lab.LaptopIface+"/operstate")
			if strings.TrimSpace(out) != "up" {
				return fmt.Errorf("the laptop's link is %s", strings.TrimSpace(out))
			}
			return nil
		})
		if dc, err = e.Lab.StartUDHCPC(ctx, lab.DHCPOptions{Hostname: "laptop"}); err != nil {
			t.Fatal(err)
		}
		lease, _, err := dc.WaitLease(ctx, 0)
		if err != nil || !to.Contains(lease.Addr.Addr()) {
			t.Fatalf("no lease on the new LAN: %+v %v", lease, err)
		}
		newBox := to.Addr()
		lp.dns.Store(&newBox)
		// The same session, the same name, the new address: the app never
		// restarted.
		waitFor(t, 20*time.Second, func() error {
			st, _, body, err := get(ctx, owner, clip+"/api/entries")
			if err != nil || st != 200 || !strings.Contains(body, "from the owner's laptop") {
				return fmt.Errorf("after the move: %d %v %.200s", st, err, body)
			}
			return nil
		})
		t.Logf("the move to the app answering at the new address: %v", time.Since(moved).Round(100*time.Millisecond))
		out, _ := e.Lab.Exec(ctx, lab.Laptop, "dig", "+short", "+tries=1", "+time=2", "@"+newBox.String(), "clipboard.kestrel.home.arpa", "A")
		if strings.TrimSpace(out) != newBox.String() {
			t.Errorf("the app's name after the move: %q", out)
		}
	})

	t.Run("a removed member is cut off within seconds", func(t *testing.T) {
		u := "wss://" + tailName + ":8440/api/live"
		ws, _, err := websocket.Dial(ctx, u, &websocket.DialOptions{HTTPClient: tm, HTTPHeader: http.Header{"Origin": {"https://" + tailName + ":8440"}}})
		if err != nil {
			t.Fatalf("the member's live feed: %v", err)
		}
		defer ws.CloseNow()
		csrf := csrfOf(t, ctx, owner, admin+"/team")
		start := time.Now()
		resp, err := owner.PostForm(admin+"/team/remove", url.Values{"csrf": {csrf}, "member": {member}, "confirm": {member}})
		if err != nil || resp.StatusCode != http.StatusSeeOther {
			t.Fatalf("removing %s: %v %v", member, resp, err)
		}
		resp.Body.Close()
		// The box closes the member's connections to the apps as the
		// removal ends. (The member's device does not hear of it: the
		// tailnet's policy already stops everything from the box to it.)
		waitFor(t, 10*time.Second, func() error {
			if !strings.Contains(e.Box.Output(), "their connections to the apps are closed\" room=apps member="+member+" connections=1") {
				return fmt.Errorf("the box has not closed %s's socket", member)
			}
			return nil
		})
		t.Logf("removal clicked to the member's socket closed by the box: within %v", time.Since(start).Round(100*time.Millisecond))
		if st, _, _, err := get(ctx, tm, "https://"+tailName+":8440/api/entries"); err == nil && st == 200 {
			t.Error("the removed member still reads the app")
		}
	})
}

func csrfOf(t *testing.T, ctx context.Context, c *http.Client, u string) string {
	t.Helper()
	_, _, body, err := get(ctx, c, u)
	if err != nil {
		t.Fatal(err)
	}
	i := strings.Index(body, `name="csrf" value="`)
	if i < 0 {
		t.Fatalf("no CSRF token on %s: %.300s", u, body)
	}
	rest := body[i+len(`name="csrf" value="`):]
	return rest[:strings.IndexByte(rest, '"')]
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func mustBinary(t *testing.T) string {
	bin, err := labtest.Binary()
	if err != nil {
		t.Fatal(err)
	}
	return bin
}
