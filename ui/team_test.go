package ui

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeTeam records what the team page asked for.
type fakeTeam struct {
	mu      sync.Mutex
	members []Member
	calls   []string
}

func (f *fakeTeam) log(s string) { f.mu.Lock(); f.calls = append(f.calls, s); f.mu.Unlock() }
func (f *fakeTeam) Status() TeamStatus {
	return TeamStatus{Configured: true, Reachable: true, Detail: "Headscale answers", LoginServer: "https://hs.example"}
}
func (f *fakeTeam) Members(context.Context) ([]Member, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]Member(nil), f.members...), nil
}
func (f *fakeTeam) Pending(context.Context) ([]PendingDevice, error) {
	return []PendingDevice{{ID: "7", Name: "alice-phone", OS: "iOS", Requested: time.Now()}}, nil
}
func (f *fakeTeam) Add(_ context.Context, name, note string) (Bundle, error) {
	if name == "bad name" {
		return Bundle{}, &FieldError{"name", "Use lower-case letters, digits and hyphens."}
	}
	if name == "down" {
		return Bundle{}, errors.New(`adding member "down": creating the user: the coordination server did not answer`)
	}
	f.mu.Lock()
	f.members = append(f.members, Member{Name: name, Note: note})
	f.mu.Unlock()
	f.log("add " + name)
	return Bundle{Member: name, Expires: time.Now().Add(time.Hour), LoginServer: "https://hs.example",
		Shell: "#!/bin/sh\necho join\n", PowerShell: "Write-Host join", QR: []byte("\x89PNG"), MobileSteps: []string{"Open the app"}}, nil
}
func (f *fakeTeam) Reissue(ctx context.Context, name string) (Bundle, error) {
	f.log("reissue " + name)
	return Bundle{Member: name, Shell: "#!/bin/sh\n"}, nil
}
func (f *fakeTeam) Rename(_ context.Context, o, n string) error {
	f.log("rename " + o + " " + n)
	return nil
}
func (f *fakeTeam) Remove(_ context.Context, n string) error { f.log("remove " + n); return nil }
func (f *fakeTeam) Approve(_ context.Context, id, m string) error {
	f.log("approve " + id + " " + m)
	return nil
}
func (f *fakeTeam) Reject(_ context.Context, id string) error { f.log("reject " + id); return nil }
func (f *fakeTeam) Configure(_ context.Context, s, k string) error {
	f.log("configure " + s)
	return nil
}
func (f *fakeTeam) AddPending(_ context.Context, link, name string) error {
	f.log("pending " + link)
	return nil
}
func (f *fakeTeam) SetReachEachOther(_ context.Context, on bool) error {
	f.log("each-other " + map[bool]string{true: "on", false: "off"}[on])
	return nil
}

func (f *fakeTeam) did(s string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, c := range f.calls {
		if c == s {
			return true
		}
	}
	return false
}

func TestTeamPages(t *testing.T) {
	r := newRig(t, t.TempDir())
	team := &fakeTeam{}
	r.u.d.Team = team
	r.setUp()
	csrf := r.signIn(goodPass)

	page := r.do("GET", r.secure.URL, "/team", nil, nil)
	if page.status != http.StatusOK || !strings.Contains(page.body, "alice-phone") || !strings.Contains(page.body, "Add a member") {
		t.Fatalf("team page: %d", page.status)
	}
	// A refused name is said next to the field, and what was typed stays.
	if res := r.do("POST", r.secure.URL, "/team/add", url.Values{"csrf": {csrf}, "name": {"bad name"}, "note": {"field desk"}}, nil); res.status != http.StatusUnprocessableEntity ||
		!strings.Contains(res.body, `<p class="field-error" role="alert">Use lower-case`) || !strings.Contains(res.body, `value="field desk"`) || !strings.Contains(res.body, `value="bad name"`) {
		t.Fatalf("bad member name: %d\n%s", res.status, res.body)
	}
	// Another failure reads as a sentence about the member.
	if res := r.do("POST", r.secure.URL, "/team/add", url.Values{"csrf": {csrf}, "name": {"down"}}, nil); !strings.Contains(res.body, "down could not be added: Adding member") {
		t.Fatalf("a failed add: %d\n%s", res.status, res.body)
	}
	res := r.do("POST", r.secure.URL, "/team/add", url.Values{"csrf": {csrf}, "name": {"alice"}, "note": {"editor"}}, nil)
	loc := res.header.Get("Location")
	if res.status != http.StatusSeeOther || !strings.HasPrefix(loc, "/team/bundle/") {
		t.Fatalf("add: %d %s", res.status, loc)
	}
	bundle := r.do("GET", r.secure.URL, loc, nil, nil)
	if !strings.Contains(bundle.body, "Invite alice") || !strings.Contains(bundle.body, "join.sh") {
		t.Fatalf("bundle page:\n%s", bundle.body)
	}
	if sh := r.do("GET", r.secure.URL, loc+"/join.sh", nil, nil); sh.body != "#!/bin/sh\necho join\n" || !strings.Contains(sh.header.Get("Content-Disposition"), "join-alice.sh") {
		t.Fatalf("script: %q %v", sh.body, sh.header)
	}
	if qr := r.do("GET", r.secure.URL, loc+"/qr.png", nil, nil); qr.header.Get("Content-Type") != "image/png" {
		t.Fatalf("qr: %v", qr.header)
	}
	if res := r.do("POST", r.secure.URL, loc+"/done", url.Values{"csrf": {csrf}}, nil); res.status != http.StatusSeeOther {
		t.Fatalf("done: %d", res.status)
	}
	if gone := r.do("GET", r.secure.URL, loc, nil, nil); gone.status != http.StatusGone {
		t.Fatalf("a bundle shown after Done: %d", gone.status)
	}

	if res := r.do("POST", r.secure.URL, "/team/remove", url.Values{"csrf": {csrf}, "member": {"alice"}, "confirm": {"bob"}}, nil); res.status != http.StatusUnprocessableEntity || team.did("remove alice") {
		t.Fatalf("remove without confirmation: %d", res.status)
	}
	for _, c := range []struct {
		path string
		form url.Values
		want string
	}{
		{"/team/remove", url.Values{"member": {"alice"}, "confirm": {"alice"}}, "remove alice"},
		{"/team/rename", url.Values{"member": {"alice"}, "new_name": {"Alice2"}}, "rename alice alice2"},
		{"/team/pending", url.Values{"id": {"7"}, "member": {"alice"}}, "approve 7 alice"},
		{"/team/pending", url.Values{"id": {"7"}, "reject": {"1"}}, "reject 7"},
		{"/team/policy", url.Values{"each_other": {"on"}}, "each-other on"},
		{"/team/reissue", url.Values{"member": {"alice"}}, "reissue alice"},
	} {
		c.form.Set("csrf", csrf)
		if res := r.do("POST", r.secure.URL, c.path, c.form, nil); res.status != http.StatusSeeOther || !team.did(c.want) {
			t.Errorf("%s: %d, did %q: %v", c.path, res.status, c.want, team.did(c.want))
		}
	}
	// No CSRF token, no change.
	if res := r.do("POST", r.secure.URL, "/team/remove", url.Values{"member": {"x"}, "confirm": {"x"}}, nil); res.status != http.StatusForbidden {
		t.Fatalf("remove without CSRF: %d", res.status)
	}
}

func TestNoTeam(t *testing.T) {
	r := newRig(t, t.TempDir())
	r.setUp()
	csrf := r.signIn(goodPass)
	if res := r.do("POST", r.secure.URL, "/team/add", url.Values{"csrf": {csrf}, "name": {"x"}}, nil); res.status != http.StatusNotFound {
		t.Fatalf("add without a team mesh: %d", res.status)
	}
}
