package ui

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redoubt/redoubt/apps"
)

// fakeApps is one app, as the Apps page manages it.
type fakeApps struct {
	mu      sync.Mutex
	m       apps.Manifest
	opts    apps.Options
	running bool
	pws     []apps.Password
	calls   []string
}

func newFakeApps() *fakeApps {
	m := apps.MustParseManifest([]byte(`
id = "notes"
name = "Notes"
description = "Notes the team writes together."
version = "1.0.0"
clients = ["any browser"]
docs = "Open it.\n\nWrite."
exposure = ["lan", "tailnet"]

[[listeners]]
name = "web"
proto = "tcp"
port = 8450

[[options]]
name = "keep"
type = "duration"
default = "30d"
description = "How long a note stays."

[[connect]]
label = "In a browser"
path = "/"
qr = true
`))
	return &fakeApps{m: m, opts: apps.NewOptions(m, nil)}
}

func (f *fakeApps) status() apps.Status {
	st := apps.Status{ID: f.m.ID, Name: f.m.Name, Description: f.m.Description, Kind: "built-in", Installed: true, State: "stopped",
		Running: f.running, Autostart: f.opts.Bool(apps.OptAutostart)}
	if f.running {
		st.State = "running"
		st.Published = []apps.Origin{{Network: apps.LAN, URL: "https://notes.kestrel.home.arpa"}, {Network: apps.Tailnet, URL: "https://kestrel.team.example:8450"}}
		st.Connect = apps.ConnectURLs(f.m, st.Published)
	}
	return st
}

func (f *fakeApps) List() []apps.Status {
	f.mu.Lock()
	defer f.mu.Unlock()
	return []apps.Status{f.status()}
}
func (f *fakeApps) Info(id string) (apps.Info, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if id != "notes" {
		return apps.Info{}, fmt.Errorf("%w %q", apps.ErrNoApp, id)
	}
	return apps.Info{Status: f.status(), Manifest: f.m, Options: f.opts.Values()}, nil
}
func (f *fakeApps) Enable(string) error  { f.mu.Lock(); f.running = true; f.mu.Unlock(); return nil }
func (f *fakeApps) Disable(string) error { f.mu.Lock(); f.running = false; f.mu.Unlock(); return nil }
func (f *fakeApps) SetOption(id, name, value string) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	next, err := f.opts.With(name, value)
	if err != nil {
		return "", err
	}
	f.opts = next
	f.calls = append(f.calls, name+"="+value)
	v, _ := next.Get(name)
	return v, nil
}
func (f *fakeApps) Passwords(string) ([]apps.Password, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.pws, nil
}
func (f *fakeApps) AddPassword(id, label string) (string, error) {
	if strings.Contains(label, "/") {
		return "", errors.New("label: letters, digits, spaces, dots, hyphens and underscores only")
	}
	f.mu.Lock()
	f.pws = append(f.pws, apps.Password{Label: label, Created: time.Now()})
	f.mu.Unlock()
	return "abcd-efgh-ijkl", nil
}
func (f *fakeApps) RevokePassword(id, label string) error {
	f.mu.Lock()
	f.pws = nil
	f.mu.Unlock()
	return nil
}
func (f *fakeApps) Handoff(id, next string) (string, error) {
	return "https://notes.kestrel.home.arpa/.redoubt/handoff?t=secret&n=" + url.QueryEscape(next), nil
}

func TestAppsPages(t *testing.T) {
	r := newRig(t, t.TempDir())
	fa := newFakeApps()
	r.u.d.Apps = fa
	r.setUp()
	csrf := r.signIn(goodPass)

	page := r.do("GET", r.secure.URL, "/apps", nil, nil)
	if page.status != 200 || !strings.Contains(page.body, "Notes the team writes together") || !strings.Contains(page.body, `action="/apps/notes/enable"`) {
		t.Fatalf("apps page: %d\n%s", page.status, page.body)
	}
	if res := r.do("POST", r.secure.URL, "/apps/notes/enable", url.Values{"csrf": {"forged"}}, nil); res.status != http.StatusForbidden || fa.running {
		t.Errorf("a start without the CSRF token: %d", res.status)
	}
	if res := r.do("POST", r.secure.URL, "/apps/notes/enable", url.Values{"csrf": {csrf}}, nil); res.status != http.StatusSeeOther || !fa.running {
		t.Fatalf("start: %d", res.status)
	}
	page = r.do("GET", r.secure.URL, "/apps", nil, nil)
	for _, want := range []string{`href="/apps/notes/open"`, "https://notes.kestrel.home.arpa/", "https://kestrel.team.example:8450/", `action="/apps/notes/disable"`} {
		if !strings.Contains(page.body, want) {
			t.Errorf("the running app's card lacks %q", want)
		}
	}
	// Open: a one-time link to the app's own origin, no password.
	res := r.do("GET", r.secure.URL, "/apps/notes/open?next=/x", nil, nil)
	if res.status != http.StatusSeeOther || !strings.HasPrefix(res.header.Get("Location"), "https://notes.kestrel.home.arpa/.redoubt/handoff?t=") {
		t.Errorf("open: %d %s", res.status, res.header.Get("Location"))
	}
	// The app's page: connect URLs with QR codes, options, passwords.
	page = r.do("GET", r.secure.URL, "/apps/notes", nil, nil)
	if !strings.Contains(page.body, `src="/apps/notes/qr.png?n=0"`) || !strings.Contains(page.body, `name="opt-keep" value="30d"`) || !strings.Contains(page.body, "<p>Write.</p>") {
		t.Errorf("the app's page:\n%s", page.body)
	}
	if qr := r.do("GET", r.secure.URL, "/apps/notes/qr.png?n=1", nil, nil); qr.header.Get("Content-Type") != "image/png" {
		t.Errorf("qr: %d %v", qr.status, qr.header)
	}
	if qr := r.do("GET", r.secure.URL, "/apps/notes/qr.png?n=9", nil, nil); qr.status != 404 {
		t.Errorf("qr out of range: %d", qr.status)
	}
	res = r.do("POST", r.secure.URL, "/apps/notes/options", url.Values{"csrf": {csrf}, "opt-keep": {"forever"}, "opt-autostart": {"true"}, "opt-persistence": {"true"},
		"opt-allow-lan": {"true"}, "opt-allow-tailnet": {"true"}, "opt-quota": {"0"}}, nil)
	if res.status != http.StatusUnprocessableEntity || !strings.Contains(res.body, "Want a duration such as 90m, 24h or 7d") {
		t.Errorf("a bad option: %d", res.status)
	}
	if v, _ := fa.opts.Get(apps.OptAutostart); v != "true" {
		t.Errorf("the good option beside the bad one: %q", v)
	}
	res = r.do("POST", r.secure.URL, "/apps/notes/options", url.Values{"csrf": {csrf}, "opt-keep": {"7d"}, "opt-persistence": {"true"},
		"opt-allow-lan": {"true"}, "opt-allow-tailnet": {"true"}, "opt-quota": {"0"}}, nil)
	if res.status != http.StatusSeeOther {
		t.Errorf("options: %d %s", res.status, res.body)
	}
	if v, _ := fa.opts.Get(apps.OptAutostart); v != "false" {
		t.Errorf("an unticked box: autostart %q", v)
	}
	res = r.do("POST", r.secure.URL, "/apps/notes/passwords", url.Values{"csrf": {csrf}, "label": {"macbook finder"}}, nil)
	if res.status != 200 || !strings.Contains(res.body, "abcd-efgh-ijkl") || res.header.Get("Cache-Control") != "no-store" {
		t.Errorf("a new password: %d %v", res.status, res.header)
	}
	if page := r.do("GET", r.secure.URL, "/apps/notes", nil, nil); strings.Contains(page.body, "abcd-efgh-ijkl") || !strings.Contains(page.body, "macbook finder") {
		t.Error("the password is shown again, or its label not at all")
	}
	if res := r.do("POST", r.secure.URL, "/apps/notes/passwords", url.Values{"csrf": {csrf}, "label": {"a/b"}}, nil); res.status != http.StatusUnprocessableEntity || !strings.Contains(res.body, "letters, digits") {
		t.Errorf("a bad label: %d", res.status)
	}
	if res := r.do("GET", r.secure.URL, "/apps/nope", nil, nil); res.status != 404 || !strings.Contains(res.body, "Nothing here") {
		t.Errorf("an unknown app: %d %s", res.status, res.body)
	}
}
