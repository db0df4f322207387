package firsthour_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http/cookiejar"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redoubt/redoubt/lab"
	"github.com/redoubt/redoubt/lab/browser"
	"github.com/redoubt/redoubt/lab/labtest"
	"github.com/redoubt/redoubt/ui/localapi"
	"github.com/redoubt/redoubt/ui/selftest"
)

// TestFirstHour is the owner's first hour, in order. Each step is one of the
// things a new owner met broken before: HTTPS by the box's name right after
// setup, a first plain visit that explains the certificate, settings for the
// VPN and the team mesh after the wizard, a dashboard that says the laptop is
// safe and updates by itself, plain words, pages that fit a phone, a leak
// self-test that shows every way out stopped.
func TestFirstHour(t *testing.T) {
	e := browserEnv(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()

	// The laptop gets its address, router and resolver from the box.
	dc, err := e.Lab.StartDHClient(ctx, lab.DHCPOptions{Hostname: "reporter-laptop"})
	if err != nil {
		t.Fatal(err)
	}
	defer dc.Stop()
	if _, _, err := dc.WaitLease(ctx, 0); err != nil {
		t.Fatal(err)
	}
	waitFor(10*time.Second, func() bool {
		r, err := e.Lab.LaptopDefaultRoute(ctx)
		return err == nil && r.IsValid()
	})

	o := &owner{t: t, e: e, b: browser.ForTest(t, e.Lab, browser.Options{Timeout: 20 * time.Second})}

	// 1. An operating system's connectivity check lands on the setup page.
	o.open("http://connectivitycheck.gstatic.com/generate_204")
	o.wantText("Set up your Redoubt box")
	o.look("01-setup-code")

	// 2. The wizard: a wrong code, the right one, a passphrase, the name; the
	// VPN and team steps are skipped (they are set later, from Settings).
	o.must(o.b.Fill("#code", "AAAA-BBBB-CCCC"))
	o.submit("#code")
	o.wantText("not the setup code")
	code, err := e.Box.API.SetupCode(ctx)
	if err != nil {
		t.Fatal(err)
	}
	o.must(o.b.Fill("#code", code))
	o.submit("#code")
	o.wantText("Choose a passphrase")
	o.must(o.b.Fill("#passphrase", ownerPass))
	o.must(o.b.WaitTextIn("[data-meter-text]", "Strong"))
	o.must(o.b.Fill("#confirm", ownerPass))
	o.look("02-passphrase")
	o.submit("#passphrase")
	o.wantText("Name your box")
	o.must(o.b.Fill("#name", boxName))
	o.look("03-name")
	o.submit("#name")
	o.wantText("Paste the WireGuard configuration")
	o.look("04-vpn-step")
	o.submit(`button[name="skip"]`)
	o.wantText("Team mesh")
	o.look("05-team-step")
	o.submit(`button[name="skip"]`)
	// The apps to start: the members' page is ticked by itself; the owner
	// adds the clipboard.
	o.wantText("Start Clipboard")
	var ticked []bool
	o.must(o.b.Eval(`["#f-start-home", "#f-start-clipboard"].map(s => document.querySelector(s).checked)`, &ticked))
	if len(ticked) != 2 || !ticked[0] || ticked[1] {
		t.Errorf("the apps step's first choices (members' page, clipboard): %v", ticked)
	}
	o.must(o.b.Click("#f-start-clipboard"))
	o.look("06-apps-step")
	o.submit("#f-start-clipboard")
	o.wantText("Finish setup")
	o.look("07-finish")
	o.submit(`form[action="/setup/finish"]`)
	o.wantText("Your box is set up")
	o.wantText("does not trust the box yet")
	o.look("08-setup-done")

	// 3. Before the CA is installed, a plain visit by the box's new name
	// explains the certificate, offers it with its fingerprint, and does not
	// go on to HTTPS (the browser would refuse it).
	o.open("http://" + boxHost + "/settings")
	o.wantText("Trust your box")
	o.wantText("does not trust the box yet")
	if txt := o.text(); !regexp.MustCompile(`([0-9a-f]{2}:){31}[0-9a-f]{2}`).MatchString(txt) {
		t.Errorf("the trust page shows no fingerprint:\n%s", txt)
	}
	o.look("09-trust-untrusted")

	// 4. The owner installs the CA (a browser that trusts it), and the setup's
	// own "Open the dashboard" button opens the box by its name over HTTPS.
	caPEM := fetchCA(t, e)
	o.b.Close()
	o.b = browser.ForTest(t, e.Lab, browser.Options{Name: t.Name() + "-trusted", TrustCA: caPEM, Timeout: 20 * time.Second})
	o.open(plainIP + "/setup/done")
	o.wantText("This browser trusts the box")
	o.click("[data-continue-link]")
	if u, _ := o.b.URL(); !strings.HasPrefix(u, secureBox+"/") {
		t.Fatalf("“Open the dashboard” led to %s, not the box's name over HTTPS", u)
	}
	o.wantText("Sign in")
	o.look("10-sign-in")

	// 5. A first plain visit by address, with the CA trusted: the page sends
	// the browser on to HTTPS by itself.
	o.open(plainIP + "/devices")
	o.must(o.b.WaitFor(`location.protocol === "https:"`))
	if u, _ := o.b.URL(); !strings.HasPrefix(u, secureIP+"/unlock?next=%2Fdevices") {
		t.Errorf("the trust page went on to %s", u)
	}

	// 6. Signing in: wrong passphrases say how long to wait, once, in words.
	o.open(secureBox + "/")
	for range 4 {
		o.must(o.b.Fill("#passphrase", "not the passphrase at all"))
		o.submit("#passphrase")
	}
	if txt := o.text(); !strings.Contains(txt, "Too many wrong passphrases. Try again in") || strings.Contains(txt, "too many wrong passphrases:") {
		t.Errorf("the wait after wrong passphrases:\n%s", txt)
	}
	o.look("11-too-many")
	o.b.ClearProblems() // the refusals are answered 403, as they should
	time.Sleep(2500 * time.Millisecond)
	o.must(o.b.Fill("#passphrase", ownerPass))
	o.submit("#passphrase")
	o.wantText("cannot reach the internet")
	o.wantText("reporter-laptop")
	o.look("12-dashboard")

	// 7. A leak while the dashboard is open: the entry appears, in words, and
	// the numbers follow, without a reload.
	before := o.liveNumber("today")
	marker := fmt.Sprintf("live-%d.tracker.example", time.Now().UnixNano()%100000)
	leak(ctx, e, marker)
	o.must(o.b.WaitTextIn("[data-feed]", marker))
	o.must(o.b.WaitFor(fmt.Sprintf(`Number(document.querySelector('[data-live="today"]').textContent.replace(/\D/g, "")) > %d`, before)))
	feed, _ := o.b.Text("[data-feed]")
	for _, jargon := range []string{"egress", "tcp/tls", "dns A", "icmpv6", "ff02::"} {
		if strings.Contains(feed, jargon) {
			t.Errorf("the feed speaks jargon (%q):\n%s", jargon, feed)
		}
	}
	if !strings.Contains(feed, "Internet connection") || !strings.Contains(feed, "Encrypted web") {
		t.Errorf("the feed does not say what it stopped in words:\n%s", feed)
	}
	o.must(o.b.Click(`[data-feed] tr:first-child details summary`))
	o.must(o.b.WaitTextIn("[data-feed] tr:first-child details", "About"))
	o.look("13-live-leak")
	for _, p := range o.b.Problems() {
		t.Errorf("the dashboard had a problem: %v", p)
	}

	// 8. Settings: the VPN, given after setup from a file, comes up, says where
	// the box's traffic leaves from, and passes its test.
	o.open(secureBox + "/settings#vpn")
	o.must(o.b.WaitTextIn("#vpn", "Not set up"))
	o.look("14-settings")
	o.upload("#f-config-file", e.Lab.VPN.ClientConfig)
	o.click(`#vpn button[value="save"]`)
	o.must(o.b.WaitTextIn("#vpn", "The VPN is up"))
	o.must(o.b.WaitTextIn("#vpn .chip", "Up"))
	o.must(o.b.WaitTextIn("#vpn", "Exit address"))
	o.click(`#vpn button[value="test"]`)
	o.must(o.b.WaitTextIn("#vpn", "The VPN works"))
	o.look("15-vpn-up")
	if st, err := e.Box.API.VPNStatus(ctx); err != nil || st.State != "up" {
		t.Fatalf("the VPN set from Settings is not up: %+v %v", st.State, err)
	}

	// 9. Settings: the team mesh, with a wrong key first (the address stays,
	// the error is in words), then the right one.
	m := e.Lab.Mesh
	o.must(o.b.Fill("#f-login_server", m.URL))
	o.must(o.b.Fill("#f-api_key", "hskey-api-wrongwrongwrong"))
	o.click(`#team button[value="save"]`)
	o.must(o.b.WaitTextIn("#team .field-error", "API key is wrong"))
	if n := o.number(`document.querySelectorAll("#f-api_key ~ .field-error").length`); n != 1 {
		t.Errorf("the wrong key's error is not next to the key's field")
	}
	if v, _ := o.b.Value("#f-login_server"); v != m.URL {
		t.Errorf("the refused form lost the server's address: %q", v)
	}
	o.must(o.b.Fill("#f-api_key", m.APIKey))
	o.click(`#team button[value="save"]`)
	o.must(o.b.WaitTextIn("#team", "Headscale answered"))
	o.click(`#team button[value="test"]`)
	o.must(o.b.WaitTextIn("#team", "accepted the API key"))
	o.look("16-team-mesh")

	// 10. The team page: a bad name is refused in words, the input kept; a
	// good one gives an invitation that leads to the certificate for phones.
	o.open(secureBox + "/team")
	o.must(o.b.Fill("#name", "Alice Smith"))
	o.must(o.b.Fill("#note", "editor"))
	o.submit("#name")
	o.wantText("lower-case letters")
	if txt := o.text(); strings.Contains(txt, `member name "`) || strings.Contains(txt, "%q") {
		t.Errorf("the team page prints a program's message:\n%s", txt)
	}
	if v, _ := o.b.Value("#note"); v != "editor" {
		t.Errorf("the refused form lost the note: %q", v)
	}
	o.look("17-team-bad-name")
	o.must(o.b.Fill("#name", "alice"))
	o.submit("#name")
	o.wantText("Invite alice")
	o.wantText("the box's certificate")
	o.look("18-invitation")
	o.submit(`form[action$="/done"]`)
	o.wantText("alice")
	o.look("19-team")

	// 10b. The Apps page: the clipboard chosen in setup runs, with its address
	// on this laptop; its own page has the options and app passwords.
	o.click(`nav a[href="/apps"]`)
	o.must(o.b.WaitTextIn("#app-clipboard .chip", "Running"))
	o.wantText("https://clipboard." + boxHost + "/")
	o.look("20-apps")
	o.click(`a[href="/apps/clipboard"]`)
	o.wantText("App passwords")
	o.look("21-app")

	// 11. The leak self-test, from the browser: every way out stopped, each
	// with the box's log entry beside it.
	o.open(secureBox + "/")
	o.click(`a[href$="/selftest"]`)
	if u, _ := o.b.URL(); u != plainIP+"/selftest" {
		t.Errorf("the self-test opened at %s", u)
	}
	o.b.ClearProblems()
	o.must(o.b.Click("[data-selftest-start]"))
	old := o.b.SetTimeout(40 * time.Second)
	o.must(o.b.WaitFor(`document.body.dataset.selftest === "safe" || document.body.dataset.selftest === "unsafe" || document.body.dataset.selftest === "error"`))
	o.b.SetTimeout(old)
	var verdict string
	o.must(o.b.Eval(`document.body.dataset.selftest`, &verdict))
	txt, _ := o.b.Text("[data-selftest]")
	if verdict != "safe" {
		t.Errorf("the browser's self-test: %s\n%s", verdict, txt)
		for _, p := range o.b.Problems() {
			t.Logf("the self-test page had a problem: %v", p)
		}
	}
	for _, want := range []string{"Leak log,", "Query log,", "1.1.1.1:80", "8.8.8.8:443", "74.125.250.129:19302", "cloudflare-dns.com"} {
		if !strings.Contains(txt, want) {
			t.Errorf("the self-test does not show %q:\n%s", want, txt)
		}
	}
	o.look("22-selftest")
	leaks, err := e.Box.API.Leaks(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"tcp 1.1.1.1:80", "tcp 1.1.1.1:443", "tcp 8.8.8.8:443", "udp 74.125.250.129:19302"} {
		if !hasLeak(leaks.Entries, want) {
			t.Errorf("the leak log lacks the self-test's %s", want)
		}
	}

	// 12. The same test from the laptop's own sockets: raw DNS to public
	// resolvers and the lab's, too.
	bin, _ := labtest.Binary()
	out, err := e.Lab.Exec(ctx, lab.Laptop, bin, "selftest", "--json", "--resolver", lab.Resolver.String())
	var rep selftest.Report
	if jerr := json.Unmarshal([]byte(out[strings.Index(out, "{"):]), &rep); jerr != nil || err != nil || !rep.Safe {
		t.Errorf("redoubt selftest on the laptop: %v %v\n%s", err, jerr, out)
	}
	ids := map[string]bool{}
	for _, r := range rep.Results {
		ids[r.Probe.ID] = r.Safe()
	}
	for _, id := range []string{"http", "https", "doh-ip", "name", "stun", "ipv6", "dns-udp-8.8.8.8", "dns-udp-9.9.9.9", "dns-udp-" + lab.Resolver.String()} {
		if !ids[id] {
			t.Errorf("redoubt selftest: probe %s not stopped (or missing): %+v", id, ids)
		}
	}
	if leaks, err := e.Box.API.Leaks(ctx); err == nil && !hasLeak(leaks.Entries, "udp "+lab.Resolver.String()+":53") {
		t.Errorf("the leak log lacks the DNS sent to %s", lab.Resolver)
	}
	if in, err := e.Lab.Ingress(ctx, lab.Internet); err == nil && in.FromLAN+in.FromLaptopMAC != 0 {
		t.Errorf("the internet saw %d frames from the laptop", in.FromLAN+in.FromLaptopMAC)
	}

	// 13. The dashboard counts the test and shows it passed.
	o.open(secureBox + "/")
	o.wantText("every way out was stopped")

	// 14. Stopped: filters by device, kind and name; the numbers agree with the
	// dashboard's and the Devices page's (the laptop keeps trying things, so
	// the Stopped page's count falls between two of the dashboard's).
	dashBefore := o.liveNumber("total")
	o.open(secureBox + "/stopped")
	stoppedTotal := o.number(`document.querySelector(".lead strong").textContent`)
	o.open(secureBox + "/")
	if dashAfter := o.liveNumber("total"); stoppedTotal < dashBefore || stoppedTotal > dashAfter {
		t.Errorf("the dashboard says %d then %d stopped, the Stopped page %d", dashBefore, dashAfter, stoppedTotal)
	}
	o.open(secureBox + "/devices")
	devStopped := o.number(`document.querySelector('td[data-label="Stopped"] a').textContent`)
	o.click(`td[data-label="Stopped"] a`)
	filtered := o.number(`(document.querySelector("p.help[aria-live]").textContent.match(/: ([\d\s\u202f]+) attempts/) || [0, "-1"])[1]`)
	if devStopped != filtered || devStopped > stoppedTotal || devStopped == 0 {
		t.Errorf("the laptop's count: %d on Devices, %d on its Stopped page, %d in all", devStopped, filtered, stoppedTotal)
	}
	o.must(o.b.Select("#kind", "egress"))
	o.must(o.b.Fill("#q", marker))
	o.submit("#q")
	o.wantText(marker)
	if n := o.number(`document.querySelectorAll("table.feed tbody tr[data-key]").length`); n != 1 {
		t.Errorf("filtering by device, kind and name left %d entries", n)
	}
	o.look("23-stopped-filtered")
	o.open(secureBox + "/stopped")
	o.look("24-stopped")
	o.click(`table.feed a.tag`)
	if u, _ := o.b.URL(); !strings.Contains(u, "/help#") {
		t.Errorf("a kind leads to %s, not its help", u)
	}
	o.look("25-help")
	o.open(secureBox + "/devices")
	o.look("26-devices")

	// 15. A page that does not exist: a styled page with a way back.
	o.open(secureBox + "/nowhere/at/all")
	o.wantText("Nothing here")
	o.look("27-not-found")
	o.click(`main a.button`)
	o.wantText("cannot reach the internet")

	// 16. The certificate page is in the menu.
	o.click(`nav a[href="/ca"]`)
	o.wantText("Download the box's certificate")
	o.look("28-certificate")

	// 17. Restart asks first, then the box comes back locked; unlocking brings
	// the VPN back.
	o.open(secureBox + "/settings#restart")
	o.must(o.b.Click(`#restart summary`))
	o.look("29-restart-confirm")
	o.submit(`form[action="/reboot"]`)
	o.wantText("restarting")
	old = o.b.SetTimeout(60 * time.Second)
	if err := o.b.WaitText("Unlock your box"); err != nil {
		t.Fatalf("after the restart the unlock page did not come: %v", err)
	}
	o.b.SetTimeout(old)
	o.look("30-unlock")
	o.must(o.b.Fill("#passphrase", ownerPass))
	o.submit("#passphrase")
	o.wantText("cannot reach the internet")
	if !waitFor(15*time.Second, func() bool {
		st, err := e.Box.API.VPNStatus(ctx)
		return err == nil && st.State == "up"
	}) {
		t.Errorf("the VPN did not come back after the restart and unlock")
	}
	o.look("31-dashboard-after-restart")
}

// liveNumber reads a number the dashboard keeps live.
func (o *owner) liveNumber(key string) int {
	o.t.Helper()
	return o.number(fmt.Sprintf(`document.querySelector('[data-live=%q]').textContent`, key))
}

// number evaluates js (a string with a number in it) and returns the number.
func (o *owner) number(js string) int {
	o.t.Helper()
	var v any
	o.must(o.b.Eval(js, &v))
	s := strings.Map(func(r rune) rune {
		if r >= '0' && r <= '9' || r == '-' {
			return r
		}
		return -1
	}, fmt.Sprint(v))
	n, err := strconv.Atoi(s)
	if err != nil {
		o.t.Fatalf("not a number: %q (%s)", fmt.Sprint(v), js)
	}
	return n
}

// hasLeak reports whether the leak log has an entry "proto addr:port".
func hasLeak(entries any, want string) bool {
	b, _ := json.Marshal(entries)
	var es []struct {
		Proto, Dst string
		Port       uint16 `json:"port"`
	}
	json.Unmarshal(b, &es)
	for _, e := range es {
		a, err := netip.ParseAddr(e.Dst)
		if err != nil {
			continue
		}
		if e.Proto+" "+netip.AddrPortFrom(a, e.Port).String() == want {
			return true
		}
	}
	return false
}

// cli runs the redoubt command on the box's side, against the box's local API.
func cli(t *testing.T, e *labtest.Env, stdin string, args ...string) (string, error) {
	t.Helper()
	bin, err := labtest.Binary()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, append(args, "--socket", e.Lab.BoxSocket())...)
	cmd.Stdin = strings.NewReader(stdin)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err = cmd.Run()
	if err != nil {
		return out.String() + errb.String(), err
	}
	return out.String(), nil
}

func cliOK(t *testing.T, e *labtest.Env, stdin string, args ...string) string {
	t.Helper()
	out, err := cli(t, e, stdin, args...)
	if err != nil {
		t.Fatalf("redoubt %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

func cliJSON(t *testing.T, e *labtest.Env, v any, args ...string) {
	t.Helper()
	out := cliOK(t, e, "", append(args, "--json")...)
	if err := json.Unmarshal([]byte(out), v); err != nil {
		t.Fatalf("redoubt %s --json: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// cliFails runs a command that must fail, saying want.
func cliFails(t *testing.T, e *labtest.Env, want string, args ...string) {
	t.Helper()
	out, err := cli(t, e, "", args...)
	if err == nil || !strings.Contains(out, want) {
		t.Errorf("redoubt %s: want a failure saying %q, got %v:\n%s", strings.Join(args, " "), want, err, out)
	}
}

// TestOwnerCommands runs the box from its console, as an owner over SSH would:
// `redoubt settings` and `redoubt team`, over the local API, with the same rules
// and words as the pages. It runs after TestFirstHour (which needs the box new)
// and sets the box up itself when run alone.
func TestOwnerCommands(t *testing.T) {
	e := env(t)
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	if st, err := e.Box.API.Status(ctx); err != nil {
		t.Fatal(err)
	} else if !st.Owner.SetupDone {
		if err := e.Lab.LaptopStatic(ctx); err != nil {
			t.Fatal(err)
		}
		code, err := e.Box.API.SetupCode(ctx)
		if err != nil {
			t.Fatal(err)
		}
		jar, _ := cookiejar.New(nil)
		c := e.Lab.HTTPClient(lab.Laptop, nil)
		c.Jar = jar
		if err := lab.SetUpBox(ctx, c, plainIP, code, ownerPass, boxName); err != nil {
			t.Fatal(err)
		}
	}

	// Settings: shown, refused in words, changed.
	var s localapi.Settings
	cliJSON(t, e, &s, "settings")
	if s.BoxName != boxName || s.LANAddress != "10.201.86.1/24" {
		t.Fatalf("settings: %+v", s)
	}
	cliFails(t, e, "name: Use lower-case letters", "settings", "set", "name=Bad_Name")
	cliFails(t, e, "lease_time", "settings", "set", "lease_time=forever")
	cliFails(t, e, `unknown setting "colour"`, "settings", "set", "colour=blue")
	cliOK(t, e, "", "settings", "set", "lease_time=6h", "reservations=02:52:44:00:00:99=10.201.86.99")
	cliJSON(t, e, &s, "settings", "show")
	if s.LeaseTime != "6h" || len(s.Reservations) != 1 || s.Reservations[0].IP != "10.201.86.99" {
		t.Errorf("settings after set: %+v", s)
	}
	if out := cliOK(t, e, "", "settings"); !strings.Contains(out, "lease_time") || !strings.Contains(out, "02:52:44:00:00:99=10.201.86.99") {
		t.Errorf("redoubt settings:\n%s", out)
	}
	cliOK(t, e, "", "settings", "set", "lease_time=12h", "reservations=")

	// The VPN from a file, tested; the team's Headscale with the key from
	// standard input, tested.
	cliOK(t, e, "", "settings", "set", "vpn.config="+e.Lab.VPN.ClientConfig)
	if !waitFor(15*time.Second, func() bool {
		st, err := e.Box.API.VPNStatus(ctx)
		return err == nil && st.State == "up"
	}) {
		t.Fatal("the VPN set with redoubt settings did not come up")
	}
	if out := cliOK(t, e, "", "vpn", "test"); !strings.Contains(out, "ok    handshake") {
		t.Errorf("redoubt vpn test:\n%s", out)
	}
	cliFails(t, e, "team.api_key", "settings", "set", "team.server="+e.Lab.Mesh.URL, "team.api_key=hskey-api-wrongwrongwrong")
	cliOK(t, e, e.Lab.Mesh.APIKey+"\n", "settings", "set", "team.server="+e.Lab.Mesh.URL, "team.api_key=-")
	if out := cliOK(t, e, "", "team", "test"); !strings.Contains(out, "accepted the API key") {
		t.Errorf("redoubt team test: %s", out)
	}

	// The team: add (the invitation's files, for the owner alone), list,
	// rename, reissue, pending, approve, remove.
	dir := t.TempDir()
	cliFails(t, e, "name: Use 1 to 32 lower-case letters", "team", "add", "Bob Smith")
	out := cliOK(t, e, "", "team", "add", "bob", "--note", "field desk", "--out", dir)
	for _, f := range []string{"join-bob.sh", "join-bob.ps1", "bob-qr.png"} {
		fi, err := os.Stat(filepath.Join(dir, f))
		if err != nil || fi.Mode().Perm() != 0o600 || fi.Size() == 0 {
			t.Errorf("the invitation's %s: %v %v", f, fi, err)
		}
	}
	if !strings.Contains(out, "works once") || !strings.HasPrefix(readFile(t, filepath.Join(dir, "join-bob.sh")), "#!") {
		t.Errorf("redoubt team add:\n%s", out)
	}
	cliFails(t, e, "already a member called", "team", "add", "bob")
	var team localapi.Team
	cliJSON(t, e, &team, "team", "list")
	if !team.Status.Configured || !hasMember(team, "bob") {
		t.Fatalf("redoubt team list: %+v", team)
	}
	if out := cliOK(t, e, "", "team", "list"); !strings.Contains(out, "bob (field desk)") {
		t.Errorf("redoubt team list:\n%s", out)
	}
	cliOK(t, e, "", "team", "rename", "bob", "robert")
	cliJSON(t, e, &team, "team", "list")
	if hasMember(team, "bob") || !hasMember(team, "robert") {
		t.Errorf("after the rename: %+v", team.Members)
	}
	var inv localapi.Invitation
	cliJSON(t, e, &inv, "team", "reissue", "robert")
	if inv.Member != "robert" || !strings.Contains(inv.Shell, "robert") || len(inv.QR) == 0 || inv.CAFingerprint == "" {
		t.Errorf("redoubt team reissue --json: %+v", inv.Member)
	}
	var pending []localapi.PendingDevice
	cliJSON(t, e, &pending, "team", "pending")
	if len(pending) != 0 {
		t.Errorf("pending: %+v", pending)
	}
	cliFails(t, e, "not a device's registration link", "team", "pending", "https://example.org/register/nothing")
	cliFails(t, e, "", "team", "approve", "hskey-authreq-nothing", "robert")
	cliFails(t, e, "--yes", "team", "remove", "robert")
	cliOK(t, e, "", "team", "remove", "robert", "--yes")
	cliJSON(t, e, &team, "team", "list")
	if hasMember(team, "robert") {
		t.Errorf("robert is still listed: %+v", team.Members)
	}

	// A locked box says so, and the console unlocks it.
	cliOK(t, e, "", "lock")
	cliFails(t, e, "the box is locked", "team", "list")
	cliOK(t, e, ownerPass+"\n", "unlock")
	cliJSON(t, e, &team, "team", "list")
}

func hasMember(t localapi.Team, name string) bool {
	for _, m := range t.Members {
		if m.Name == name {
			return true
		}
	}
	return false
}
