package ui

import (
	"context"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redoubt/redoubt/backup"
	"github.com/redoubt/redoubt/backup/peerstore"
	"github.com/redoubt/redoubt/backup/recovery"
)

// fakeBackups records what the backup pages asked for.
type fakeBackups struct {
	mu       sync.Mutex
	settings backup.Settings
	calls    []string
	restore  backup.RestoreRequest
}

func (f *fakeBackups) log(s string) { f.mu.Lock(); f.calls = append(f.calls, s); f.mu.Unlock() }
func (f *fakeBackups) did(s string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, c := range f.calls {
		if c == s {
			return true
		}
	}
	return false
}
func (f *fakeBackups) Status() backup.Status {
	return backup.Status{Configured: true, Targets: []backup.TargetStatus{{Name: "s3", Result: "ok", LastOK: time.Now().Add(-time.Hour), Snapshots: 4}},
		Drill: backup.DrillStatus{Time: time.Now().Add(-24 * time.Hour), OK: true, Files: 20}}
}
func (f *fakeBackups) Settings() (backup.Settings, error) { return f.settings.WithDefaults(), nil }
func (f *fakeBackups) SetSettings(s backup.Settings) error {
	if err := s.Validate(); err != nil {
		return err
	}
	f.settings = s
	f.log("settings")
	return nil
}
func (f *fakeBackups) BackupNow() error { f.log("now"); return nil }
func (f *fakeBackups) Drill(context.Context) backup.DrillStatus {
	f.log("drill")
	return backup.DrillStatus{OK: true, Files: 20}
}
func (f *fakeBackups) RecoveryKey() (recovery.Key, error) { return recovery.Key{1, 2, 3}, nil }
func (f *fakeBackups) Split(k int, members []string) ([]backup.ShareHolder, error) {
	if len(members) < 2 {
		return nil, &backup.FieldError{Field: "shares", Message: "choose at least 2 members"}
	}
	f.log("split " + strings.Join(members, ","))
	return nil, nil
}
func (f *fakeBackups) Snapshots(context.Context, string) ([]backup.SnapshotInfo, error) {
	return []backup.SnapshotInfo{{ID: "abcd1234", Time: time.Now()}}, nil
}
func (f *fakeBackups) Browse(_ context.Context, _, _, dir string) ([]backup.Entry, error) {
	return []backup.Entry{{Name: "general.db", Path: dir + "/general.db", Type: "file", Size: 2048}}, nil
}
func (f *fakeBackups) WriteFile(_ context.Context, _, _, p string, w io.Writer) error {
	_, err := io.WriteString(w, "content of "+p)
	return err
}
func (f *fakeBackups) RestoreItem(_ context.Context, t, s, p string) (backup.RestoredItem, error) {
	f.log("item " + p)
	return backup.RestoredItem{Path: p, Into: "/var/lib/redoubt/backup/restored/x"}, nil
}
func (f *fakeBackups) Kept() []peerstore.PeerStatus { return nil }
func (f *fakeBackups) Keep(name string, q int64) (string, error) {
	f.log("keep " + name)
	return "INVITATION-CODE-0123456789abcdefghij", nil
}
func (f *fakeBackups) Unkeep(name string) error { return nil }
func (f *fakeBackups) Members() []string        { return []string{"alice", "bob"} }
func (f *fakeBackups) RestoreFresh(_ context.Context, req backup.RestoreRequest) (backup.FreshRestore, error) {
	f.restore = req
	if _, err := backup.KeyFromInput(req.Key, req.Shares); err != nil {
		return backup.FreshRestore{}, &backup.FieldError{Field: "shares", Message: err.Error()}
	}
	return backup.FreshRestore{Files: 12, Snapshot: backup.SnapshotInfo{ID: "abcd1234", Host: "kestrel", Time: time.Now()}}, nil
}

func TestBackupPages(t *testing.T) {
	r := newRig(t, t.TempDir())
	fb := &fakeBackups{}
	r.u.d.Backups = fb
	r.setUp()
	csrf := r.signIn(goodPass)

	dash := r.do("GET", r.secure.URL, "/", nil, nil)
	if !strings.Contains(dash.body, `id="backup-tile"`) || !strings.Contains(dash.body, "Restore drill passed") {
		t.Fatalf("the dashboard has no backup tile:\n%s", dash.body)
	}
	page := r.do("GET", r.secure.URL, "/backups", nil, nil)
	if page.status != http.StatusOK || !strings.Contains(page.body, "✓ verified") || !strings.Contains(page.body, "Split among") {
		t.Fatalf("backups page: %d\n%s", page.status, page.body)
	}
	// Settings: an S3 bucket; a bad one is named.
	form := url.Values{"csrf": {csrf}, "s3_endpoint": {"ftp://nope"}, "s3_bucket": {"b"}, "s3_access_key": {"a"}, "s3_secret_key": {"s"},
		"at": {"03:30"}, "keep_last": {"3"}, "keep_daily": {"7"}, "keep_weekly": {"4"}, "keep_monthly": {"12"}}
	if res := r.do("POST", r.secure.URL, "/backups/settings", form, nil); res.status != http.StatusUnprocessableEntity || !strings.Contains(res.body, "s3 endpoint") {
		t.Fatalf("a bad endpoint: %d", res.status)
	}
	form.Set("s3_endpoint", "https://s3.example.org")
	if res := r.do("POST", r.secure.URL, "/backups/settings", form, nil); res.status != http.StatusSeeOther || fb.settings.S3 == nil || fb.settings.S3.SecretKey != "s" {
		t.Fatalf("settings: %d %+v", res.status, fb.settings)
	}
	// The secret left blank keeps the one set.
	form.Set("s3_secret_key", "")
	if res := r.do("POST", r.secure.URL, "/backups/settings", form, nil); res.status != http.StatusSeeOther || fb.settings.S3.SecretKey != "s" {
		t.Fatalf("settings again: %d %+v", res.status, fb.settings.S3)
	}
	// The recovery key, after the passphrase only.
	if res := r.do("POST", r.secure.URL, "/backups/key", url.Values{"csrf": {csrf}, "passphrase": {"wrong"}}, nil); strings.Contains(res.body, `id="recovery-key"`) {
		t.Fatal("the recovery key was shown for a wrong passphrase")
	}
	if res := r.do("POST", r.secure.URL, "/backups/key", url.Values{"csrf": {csrf}, "passphrase": {goodPass}}, nil); !strings.Contains(res.body, `id="recovery-key">RK-`) {
		t.Fatalf("the recovery key: %d", res.status)
	}
	for _, c := range []struct {
		path string
		form url.Values
		want string
	}{
		{"/backups/run", url.Values{}, "now"},
		{"/backups/drill", url.Values{}, "drill"},
		{"/backups/split", url.Values{"k": {"2"}, "member": {"alice", "bob"}}, "split alice,bob"},
		{"/backups/restore-item", url.Values{"target": {"s3"}, "snapshot": {"abcd1234"}, "path": {"state/apps/chat/general.db"}}, "item state/apps/chat/general.db"},
	} {
		c.form.Set("csrf", csrf)
		if res := r.do("POST", r.secure.URL, c.path, c.form, nil); res.status != http.StatusSeeOther || !fb.did(c.want) {
			t.Errorf("%s: %d, did %q: %v", c.path, res.status, c.want, fb.did(c.want))
		}
	}
	if res := r.do("POST", r.secure.URL, "/backups/split", url.Values{"csrf": {csrf}, "k": {"2"}, "member": {"alice"}}, nil); res.status != http.StatusUnprocessableEntity {
		t.Fatalf("a split among one: %d", res.status)
	}
	if res := r.do("POST", r.secure.URL, "/backups/keep", url.Values{"csrf": {csrf}, "name": {"osprey"}, "quota": {"20GB"}}, nil); !strings.Contains(res.body, "INVITATION-CODE") {
		t.Fatalf("keep: %d", res.status)
	}
	browse := r.do("GET", r.secure.URL, "/backups?browse=1&target=s3&dir=state/apps/chat", nil, nil)
	if !strings.Contains(browse.body, "general.db") || !strings.Contains(browse.body, "Put back") {
		t.Fatalf("browse:\n%s", browse.body)
	}
	if f := r.do("GET", r.secure.URL, "/backups/file?target=s3&snapshot=latest&path=state/x.txt", nil, nil); f.body != "content of state/x.txt" {
		t.Fatalf("download: %q", f.body)
	}
	if res := r.do("POST", r.secure.URL, "/backups/run", url.Values{}, nil); res.status != http.StatusForbidden {
		t.Fatalf("a change without CSRF: %d", res.status)
	}
}

func TestRestoreWizard(t *testing.T) {
	r := newRig(t, t.TempDir())
	fb := &fakeBackups{}
	r.u.d.Backups = fb
	// Without the setup code, the restore page asks for it.
	if page := r.do("GET", r.plain.URL, "/setup/restore", nil, nil); !strings.Contains(page.body, `action="/setup/code"`) {
		t.Fatalf("the restore page before the setup code:\n%s", page.body)
	}
	if res := r.do("POST", r.plain.URL, "/setup/code", url.Values{"code": {r.setup.Code()}}, nil); res.status != http.StatusSeeOther {
		t.Fatal(res.status)
	}
	page := r.do("GET", r.plain.URL, "/setup", nil, nil)
	if !strings.Contains(page.body, `href="/setup/restore"`) {
		t.Fatal("the wizard does not offer a restore")
	}
	page = r.do("GET", r.plain.URL, "/setup/restore", nil, nil)
	csrf := csrfIn(t, page.body)
	k, _ := recovery.NewKey()
	shares, _ := recovery.Split(k, 3, 2)
	form := url.Values{"csrf": {csrf}, "source": {"s3"}, "s3_endpoint": {"https://s3.example.org"}, "s3_bucket": {"b"},
		"s3_access_key": {"a"}, "s3_secret_key": {"s"}, "how": {"shares"}, "shares": {shares[0].String()},
		"passphrase": {"new pass phrase"}, "confirm": {"new pass phrase"}}
	res := r.do("POST", r.plain.URL, "/setup/restore", form, nil)
	if res.status != http.StatusUnprocessableEntity || !strings.Contains(res.body, "needs 2 of its 3") {
		t.Fatalf("one share: %d\n%s", res.status, res.body)
	}
	form.Set("shares", shares[0].String()+"\n"+shares[2].String())
	form.Set("confirm", "other")
	if res := r.do("POST", r.plain.URL, "/setup/restore", form, nil); res.status != http.StatusUnprocessableEntity || !strings.Contains(res.body, "passphrases differ") {
		t.Fatalf("passphrases that differ: %d", res.status)
	}
	form.Set("confirm", "new pass phrase")
	res = r.do("POST", r.plain.URL, "/setup/restore", form, nil)
	if res.status != http.StatusOK || !strings.Contains(res.body, "Restored") || fb.restore.S3 == nil || len(fb.restore.Shares) != 2 {
		t.Fatalf("restore: %d %+v\n%s", res.status, fb.restore, res.body)
	}
}
