package ui

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"mime/multipart"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redoubt/redoubt/internal/timeseries"
	"github.com/redoubt/redoubt/ui/selftest"
)

// fakeSection is a settings section another room would add.
type fakeSection struct {
	mu   sync.Mutex
	got  []string
	conf string
}

func (f *fakeSection) ID() string    { return "vpn" }
func (f *fakeSection) Title() string { return "VPN" }
func (f *fakeSection) Intro() string { return "The box's own connections leave through it." }
func (f *fakeSection) State() SectionState {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.conf == "" {
		return SectionState{State: "not configured", Label: "Not set up", Todo: "Paste your provider's config."}
	}
	return SectionState{State: "up", Label: "Up", Facts: []Fact{{"Exit address", "192.0.2.9"}}}
}
func (f *fakeSection) Fields() []Field {
	return []Field{{Name: "config", Label: "WireGuard configuration", Type: "textarea", Upload: true},
		{Name: "key", Label: "A secret", Type: "password", Optional: true}}
}
func (f *fakeSection) Actions() []Action {
	return []Action{{Name: "save", Label: "Use it", Fields: true}, {Name: "test", Label: "Test", Style: "secondary"},
		{Name: "remove", Label: "Remove", Style: "danger", Confirm: "Remove the VPN."}}
}
func (f *fakeSection) Submit(_ context.Context, action string, v map[string]string) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.got = append(f.got, action+":"+v["config"])
	switch action {
	case "save":
		if !strings.Contains(v["config"], "[Interface]") {
			return "", &FieldError{"config", "line 1: this is not a WireGuard configuration"}
		}
		f.conf = v["config"]
		return "Saved. The VPN is up.", nil
	case "test":
		return "", errors.New("the VPN server does not answer")
	}
	f.conf = ""
	return "Removed.", nil
}

func (r *rig) signedIn() string {
	r.t.Helper()
	r.setUp()
	return r.signIn(goodPass)
}

// multipartPost sends a multipart form with an optional file.
func (r *rig) multipartPost(path string, fields map[string]string, fileField, fileText string) resp {
	r.t.Helper()
	var body bytes.Buffer
	mw := multipart.NewWriter(&body)
	for k, v := range fields {
		mw.WriteField(k, v)
	}
	if fileField != "" {
		w, _ := mw.CreateFormFile(fileField, "vpn.conf")
		w.Write([]byte(fileText))
	}
	mw.Close()
	req, _ := http.NewRequest("POST", r.secure.URL+path, &body)
	req.Header.Set("Content-Type", mw.FormDataContentType())
	res, err := r.client.Do(req)
	if err != nil {
		r.t.Fatal(err)
	}
	defer res.Body.Close()
	var b bytes.Buffer
	b.ReadFrom(res.Body)
	return resp{res.StatusCode, b.String(), res.Header}
}

func TestSettingsSections(t *testing.T) {
	r := newRig(t, t.TempDir())
	sec := &fakeSection{}
	r.u.d.Sections = []Section{sec}
	csrf := r.signedIn()

	page := r.do("GET", r.secure.URL, "/settings", nil, nil)
	for _, want := range []string{`id="vpn"`, "Not set up", "What to do:</strong> Paste your provider", `action="/settings/vpn"`,
		`enctype="multipart/form-data"`, `name="config_file" type="file"`, `value="test"`, "Remove…", `href="#vpn"`,
		// The box's own part: name, address and the certificate that covers them.
		`id="box"`, "kestrel.home.arpa", "covers these names", `value="12h"`} {
		if !strings.Contains(page.body, want) {
			t.Errorf("the settings page lacks %q", want)
		}
	}
	if strings.Contains(page.body, "12h0m0s") {
		t.Error("the lease time is written as Go writes durations")
	}

	// A mistake is shown next to its field; the text stays, a secret does not.
	res := r.multipartPost("/settings/vpn", map[string]string{"csrf": csrf, "action": "save", "config": "nonsense", "key": "s3cret"}, "", "")
	if res.status != http.StatusUnprocessableEntity || !strings.Contains(res.body, "Line 1: this is not a WireGuard configuration.") ||
		!strings.Contains(res.body, ">nonsense</textarea>") || strings.Contains(res.body, "s3cret") {
		t.Fatalf("a bad config: %d\n%s", res.status, res.body)
	}
	// An uploaded file wins over the text.
	res = r.multipartPost("/settings/vpn", map[string]string{"csrf": csrf, "action": "save", "config": "ignored"}, "config_file", "[Interface]\nPrivateKey = x\n")
	if res.status != http.StatusSeeOther || res.header.Get("Location") != "/settings#vpn" || sec.conf != "[Interface]\nPrivateKey = x\n" {
		t.Fatalf("an uploaded config: %d %s %q", res.status, res.header.Get("Location"), sec.conf)
	}
	page = r.do("GET", r.secure.URL, "/settings", nil, nil)
	if !strings.Contains(page.body, "Saved. The VPN is up.") || !strings.Contains(page.body, "192.0.2.9") {
		t.Fatalf("after saving:\n%s", page.body)
	}
	if again := r.do("GET", r.secure.URL, "/settings", nil, nil); strings.Contains(again.body, "Saved. The VPN is up.") {
		t.Error("the notice is shown twice")
	}
	// An action's error is said as a sentence, above the form.
	res = r.do("POST", r.secure.URL, "/settings/vpn", url.Values{"csrf": {csrf}, "action": {"test"}}, nil)
	if res.status != http.StatusUnprocessableEntity || !strings.Contains(res.body, "The VPN server does not answer.") {
		t.Fatalf("a failed test: %d", res.status)
	}
	// Removing needs the box ticked.
	res = r.do("POST", r.secure.URL, "/settings/vpn", url.Values{"csrf": {csrf}, "action": {"remove"}}, nil)
	if res.status != http.StatusUnprocessableEntity || sec.conf == "" {
		t.Fatalf("remove without confirming: %d", res.status)
	}
	res = r.do("POST", r.secure.URL, "/settings/vpn", url.Values{"csrf": {csrf}, "action": {"remove"}, "confirm": {"on"}}, nil)
	if res.status != http.StatusSeeOther || sec.conf != "" {
		t.Fatalf("remove: %d", res.status)
	}
	// Unknown sections and buttons are refused; changes need the CSRF token.
	if res := r.do("POST", r.secure.URL, "/settings/nope", url.Values{"csrf": {csrf}}, nil); res.status != http.StatusNotFound {
		t.Errorf("an unknown section: %d", res.status)
	}
	if res := r.do("POST", r.secure.URL, "/settings/vpn", url.Values{"csrf": {csrf}, "action": {"format"}}, nil); res.status != http.StatusUnprocessableEntity {
		t.Errorf("an unknown button: %d", res.status)
	}
	if res := r.do("POST", r.secure.URL, "/settings/vpn", url.Values{"action": {"remove"}, "confirm": {"on"}}, nil); res.status != http.StatusForbidden {
		t.Errorf("a change without the token: %d", res.status)
	}
	// Restart asks first.
	if res := r.do("POST", r.secure.URL, "/reboot", url.Values{"csrf": {csrf}}, nil); res.status != http.StatusUnprocessableEntity || r.box.called("reboot") {
		t.Fatalf("restart without confirming: %d", res.status)
	}
	if res := r.do("POST", r.secure.URL, "/reboot", url.Values{"csrf": {csrf}, "confirm": {"restart"}}, nil); res.status != http.StatusOK {
		t.Fatalf("restart: %d", res.status)
	}
	time.Sleep(600 * time.Millisecond)
	if !r.box.called("reboot") {
		t.Error("the confirmed restart did not reach the box")
	}
}

// TestWords: what the pages show is in plain words, in one time format, and
// the numbers agree from page to page.
func TestWords(t *testing.T) {
	r := newRig(t, t.TempDir())
	r.signedIn()
	dash := r.do("GET", r.secure.URL, "/", nil, nil).body
	stopped := r.do("GET", r.secure.URL, "/stopped", nil, nil).body
	devices := r.do("GET", r.secure.URL, "/devices", nil, nil).body
	for page, body := range map[string]string{"dashboard": dash, "stopped": stopped, "devices": devices} {
		for _, jargon := range []string{">egress<", "tcp/tls", "dns A", "os-telemetry<", "12h0m0s", " AM<", " PM<"} {
			if strings.Contains(body, jargon) {
				t.Errorf("the %s page speaks jargon: %q", page, jargon)
			}
		}
	}
	for _, want := range []string{"Internet connection", "Encrypted web (HTTPS)", "Name lookup (A, AAAA)", "System telemetry", "Windows diagnostic data",
		"cannot reach the internet. 2 attempts stopped today; nothing got out.", "Test my protection", `href="http://127.0.0.1/selftest"`} {
		if !strings.Contains(dash+stopped, want) {
			t.Errorf("the pages do not say %q", want)
		}
	}
	// Link chatter is listed but not counted; every page has the same count.
	total := regexp.MustCompile(`<strong>(\d+)</strong> attempts stopped since`).FindStringSubmatch(stopped)
	if total == nil || total[1] != "5" || !strings.Contains(stopped, "besides 5 bits of link chatter") {
		t.Errorf("the Stopped page's count: %v", total)
	}
	if !strings.Contains(dash, `data-live="total">5<`) || !strings.Contains(devices, `00%3a64">5</a>`) {
		t.Errorf("the dashboard's or the Devices page's count differs from the Stopped page's")
	}
	// One time format, with the zone.
	zone := time.Now().Format("MST")
	if !regexp.MustCompile(`\d\d:\d\d:\d\d ` + zone).MatchString(stopped) {
		t.Errorf("the Stopped page's times lack the zone %s", zone)
	}
	// Filters: device, kind, name.
	for q, want := range map[string][]string{
		"kind=dns":                         {"v10.events.data.microsoft.com"},
		"kind=egress":                      {"tracker.example"},
		"q=microsoft":                      {"v10.events.data.microsoft.com"},
		"device=02:52:44:00:00:64&q=track": {"tracker.example"},
		"device=02:52:44:00:00:99":         {"Nothing from 02:52:44:00:00:99."},
	} {
		body := r.do("GET", r.secure.URL, "/stopped?"+q, nil, nil).body
		for _, w := range want {
			if !strings.Contains(body, w) {
				t.Errorf("/stopped?%s lacks %q", q, w)
			}
		}
		if q == "kind=dns" && strings.Contains(body, "tracker.example") {
			t.Errorf("/stopped?kind=dns shows a connection")
		}
	}
	// Every kind has its help.
	help := r.do("GET", r.secure.URL, "/help", nil, nil).body
	for _, k := range kinds {
		if !strings.Contains(help, `id="`+k.Key+`"`) {
			t.Errorf("the help page does not explain %q", k.Key)
		}
	}
}

func TestWhen(t *testing.T) {
	now := time.Date(2026, 12, 6, 15, 0, 0, 0, time.Local)
	zone := now.Format("MST")
	for _, c := range []struct {
		t    time.Time
		want string
	}{
		{now.Add(-time.Minute), "14:59:00 " + zone},
		{now.Add(-24 * time.Hour), "5 Dec 15:00 " + zone},
		{now.AddDate(-1, 0, 0), "6 Dec 2025 15:00 " + zone},
		{time.Time{}, "never"},
	} {
		if got := when(c.t, now); got != c.want {
			t.Errorf("when(%v) = %q, want %q", c.t, got, c.want)
		}
	}
	for d, want := range map[time.Duration]string{12 * time.Hour: "12h", 90 * time.Minute: "1h30m", 45 * time.Second: "45s", 30 * time.Minute: "30m"} {
		if got := shortDuration(d); got != want {
			t.Errorf("shortDuration(%v) = %q, want %q", d, got, want)
		}
	}
	if got := duration(90 * time.Minute); got != "1 hour 30 minutes" {
		t.Errorf("duration: %q", got)
	}
	if got := string(breakable("a.b-c<d")); got != "a.<wbr>b-<wbr>c&lt;d" {
		t.Errorf("breakable: %q", got)
	}
}

// TestTrustAndNotFound: a plain visit after setup explains the certificate;
// the check a trusted browser makes is readable by the box's plain pages only;
// an unknown address gets a page with a way back.
func TestTrustAndNotFound(t *testing.T) {
	r := newRig(t, t.TempDir())
	r.setUp()
	res := r.do("GET", r.secure.URL, "/trust-check", nil, map[string]string{"Origin": "http://127.0.0.1"})
	if res.status != http.StatusNoContent || res.header.Get("Access-Control-Allow-Origin") != "http://127.0.0.1" {
		t.Errorf("trust check from the box's plain page: %d %v", res.status, res.header)
	}
	res = r.do("GET", r.secure.URL, "/trust-check", nil, map[string]string{"Origin": "http://evil.example"})
	if res.header.Get("Access-Control-Allow-Origin") != "" {
		t.Errorf("another site may read the trust check")
	}
	r.trustBox()
	for _, base := range []string{r.secure.URL} {
		res := r.do("GET", base, "/no/such/page", nil, nil)
		if res.status != http.StatusNotFound || !strings.Contains(res.body, "Nothing here") || !strings.Contains(res.body, "Back to the dashboard") ||
			!strings.Contains(res.body, `<link rel="stylesheet"`) {
			t.Errorf("not found on %s: %d\n%s", base, res.status, res.body)
		}
	}
	// Before setup, the way back is setup.
	r2 := newRig(t, t.TempDir())
	if res := r2.do("GET", r2.plain.URL, "/nope", nil, nil); res.status != http.StatusNotFound || !strings.Contains(res.body, "Back to setup") {
		t.Errorf("not found before setup: %d", res.status)
	}
}

// TestUnlockTooSoon: the wait after wrong passphrases is said once, in words.
func TestUnlockTooSoon(t *testing.T) {
	r := newRig(t, t.TempDir())
	r.setUp()
	var last resp
	for range 4 {
		last = r.do("POST", r.secure.URL, "/unlock", url.Values{"passphrase": {"wrong wrong wrong"}}, nil)
	}
	if !regexp.MustCompile(`Too many wrong passphrases\. Try again in \d+ seconds?\.`).MatchString(last.body) || strings.Contains(last.body, "too many wrong passphrases:") {
		t.Errorf("after four wrong passphrases:\n%s", last.body)
	}
}

// TestSelfTestEndpoints: a device makes a run, reports what it saw, and reads
// the box's verdicts; another device cannot read the run.
func TestSelfTestEndpoints(t *testing.T) {
	r := newRig(t, t.TempDir())
	r.setUp()
	post := func(path string, v any, hdr map[string]string) resp {
		b, _ := json.Marshal(v)
		req, _ := http.NewRequest("POST", r.plain.URL+path, bytes.NewReader(b))
		req.Header.Set("Content-Type", "application/json")
		for k, v := range hdr {
			req.Header.Set(k, v)
		}
		res, err := r.client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		var buf bytes.Buffer
		buf.ReadFrom(res.Body)
		return resp{res.StatusCode, buf.String(), res.Header}
	}
	page := r.do("GET", r.plain.URL, "/selftest", nil, nil)
	if page.status != http.StatusOK || !strings.Contains(page.header.Get("Content-Security-Policy"), "connect-src 'self' http: https:") ||
		!strings.Contains(page.body, "WebRTC address discovery") {
		t.Fatalf("the self-test page: %d %v", page.status, page.header)
	}
	if res := r.do("GET", r.secure.URL, "/selftest", nil, nil); res.status != http.StatusFound || res.header.Get("Location") != "http://127.0.0.1/selftest" {
		t.Errorf("the self-test over HTTPS: %d %s", res.status, res.header.Get("Location"))
	}
	if res := post("/selftest/runs", map[string]string{"by": "nobody"}, nil); res.status != http.StatusBadRequest {
		t.Errorf("a run by nobody: %d", res.status)
	}
	if res := post("/selftest/runs", map[string]string{}, map[string]string{"Sec-Fetch-Site": "cross-site"}); res.status != http.StatusForbidden {
		t.Errorf("a run from another site: %d", res.status)
	}
	res := post("/selftest/runs", selftest.StartRequest{By: selftest.ByBrowser}, nil)
	var plan selftest.Plan
	if res.status != http.StatusOK || json.Unmarshal([]byte(res.body), &plan) != nil || len(plan.Probes) < 6 {
		t.Fatalf("a run: %d %s", res.status, res.body)
	}
	// The box saw the HTTP probe (as it would, in its leak log) from the test's
	// own address.
	r.box.mu.Lock()
	r.box.stopped = append(r.box.stopped, Stopped{Source: "connection", Category: "egress", IP: "127.0.0.1", Proto: "tcp", App: "http",
		Dst: "1.1.1.1", Port: 80, Count: 1, First: time.Now(), Last: time.Now()})
	r.box.mu.Unlock()
	out := []selftest.Outcome{{Probe: "http", Sent: true, Detail: "reset"}, {Probe: "https", Sent: true, Answered: true, Detail: "answered"}, {Probe: "bogus"}}
	if res := post("/selftest/runs/"+plan.ID+"/outcomes", out, nil); res.status != http.StatusOK {
		t.Fatalf("outcomes: %d %s", res.status, res.body)
	}
	got := r.do("GET", r.plain.URL, "/selftest/runs/"+plan.ID, nil, nil)
	var rep struct {
		Safe bool
		Rows []resultRow
	}
	if err := json.Unmarshal([]byte(got.body), &rep); err != nil || rep.Safe {
		t.Fatalf("results: %v %s", err, got.body)
	}
	verdicts := map[string]resultRow{}
	for _, row := range rep.Rows {
		verdicts[row.Probe] = row
	}
	if v := verdicts["http"]; v.Verdict != selftest.Stopped || len(v.Evidence) != 1 || !strings.Contains(v.Evidence[0], "Leak log") || !strings.Contains(v.Evidence[0], "1.1.1.1:80") {
		t.Errorf("the HTTP probe: %+v", v)
	}
	if v := verdicts["https"]; v.Verdict != selftest.GotOut {
		t.Errorf("an answered probe: %+v", v)
	}
	// The dashboard says how the last test went.
	csrf := r.signIn(goodPass)
	_ = csrf
	if dash := r.do("GET", r.secure.URL, "/", nil, nil).body; !strings.Contains(dash, "Check this") || !strings.Contains(dash, "got through") {
		t.Errorf("the dashboard does not warn about the failed test")
	}
	// Another run id (or a forged one) answers nothing.
	if res := r.do("GET", r.plain.URL, "/selftest/runs/0000000000000000", nil, nil); res.status != http.StatusNotFound {
		t.Errorf("someone else's run: %d", res.status)
	}
	if res := post("/selftest/runs/"+plan.ID+"/outcomes", strings.Repeat("x", maxTestBody+1), nil); res.status != http.StatusBadRequest {
		t.Errorf("a huge report: %d", res.status)
	}
	// Runs are bounded.
	for range maxRuns + 5 {
		post("/selftest/runs", selftest.StartRequest{By: selftest.ByCommand}, nil)
	}
	r.u.runs.mu.Lock()
	n := len(r.u.runs.list)
	r.u.runs.mu.Unlock()
	if n > maxRuns {
		t.Errorf("%d runs kept", n)
	}
}

func TestChartLayouts(t *testing.T) {
	now := time.Now()
	ts := timeseries.New([]string{"egress", "ipv6-link", "dns"}, 24*60)
	ts.Add(now, 0)
	ts.Add(now, 1)
	ts.Add(now, 2)
	snap := ts.Snapshot(now, 24*time.Hour, 30*time.Minute)
	wide := renderChart(snap, 24*time.Hour, false, now)
	narrow := renderChart(snap, 24*time.Hour, true, now)
	for name, svg := range map[string]string{"wide": wide, "narrow": narrow} {
		if !strings.Contains(svg, "Internet connection (1)") || !strings.Contains(svg, "Name lookup (1)") || strings.Contains(svg, "IPv6 housekeeping") {
			t.Errorf("the %s chart's legend: %s", name, svg)
		}
		if !strings.Contains(svg, now.Add(-24*time.Hour).Local().Format("Mon 2 Jan")) && !strings.Contains(svg, "today") {
			t.Errorf("the %s chart has no date on its axis", name)
		}
	}
	if !strings.Contains(narrow, `viewBox="0 0 340 `) || !strings.Contains(narrow, `font-size="13"`) {
		t.Errorf("the narrow chart: %.200s", narrow)
	}
	tab := tableOverTime(ts.Snapshot(now, 24*time.Hour, time.Hour), now)
	if len(tab.Rows) != 1 || tab.Rows[0].Total != 2 || !strings.Contains(tab.Rows[0].Kinds, "Internet connection 1") {
		t.Errorf("the table over time: %+v", tab)
	}
	_ = fmt.Sprint()
}
