// Package backup is the backups' story in the lab: the box backs up its
// team's data to a real S3 server (versitygw) reached only through its VPN,
// and to a teammate's store over the tailnet; a backup killed with SIGKILL
// leaves the repository usable; the recovery key is split between two
// members, who fetch their shares from the members' page on their own
// device; the box is wiped twice and restored through the setup wizard, from
// the teammate with the recovery key, then from S3 with the two members'
// shares (a wrong share refused with a clear error); every file comes back
// identical, the team and the settings too, and the audit log a member saved
// before still verifies against the restored box's.
package backup

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/redoubt/redoubt/backup"
	"github.com/redoubt/redoubt/lab"
	"github.com/redoubt/redoubt/lab/labtest"
	"github.com/redoubt/redoubt/lab/tools"
)

func TestMain(m *testing.M) { labtest.Main(m) }

const (
	passphrase  = "harbor quill saffron tundra"
	passphrase2 = "ember walnut cobalt meadow"
	passphrase3 = "violet anchor prism lagoon"
	boxName     = "kestrel"
)

var (
	plainBase  = "http://" + lab.BoxLAN.String()
	secureBase = "https://" + lab.BoxLAN.String()
	csrfField  = regexp.MustCompile(`name="csrf" value="([^"]+)"`)
	shareText  = regexp.MustCompile(`RS-[A-Z2-7-]+`)
)

func waitFor(tb testing.TB, d time.Duration, f func() error) {
	tb.Helper()
	deadline := time.Now().Add(d)
	for {
		err := f()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			tb.Fatalf("after %v: %v", d, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// browser is the owner at the laptop.
type browser struct {
	t    testing.TB
	c    *http.Client
	base string
	csrf string
}

func (b *browser) do(ctx context.Context, method, path string, form url.Values) (int, string, string) {
	b.t.Helper()
	var body io.Reader
	if form != nil {
		if b.csrf != "" && form.Get("csrf") == "" {
			form.Set("csrf", b.csrf)
		}
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequestWithContext(ctx, method, b.base+path, body)
	if err != nil {
		b.t.Fatal(err)
	}
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	resp, err := b.c.Do(req)
	if err != nil {
		b.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header.Get("Location"), string(out)
}

// signIn signs in again after the box restarted (its old connections are
// gone).
func (b *browser) signIn(ctx context.Context, pass string) {
	b.t.Helper()
	b.c.CloseIdleConnections()
	waitFor(b.t, 30*time.Second, func() error {
		var err error
		b.csrf, err = lab.SignIn(ctx, b.c, b.base, pass)
		return err
	})
}

func cli(ctx context.Context, e *labtest.Env, stdin string, args ...string) (string, error) {
	bin, err := labtest.Binary()
	if err != nil {
		return "", err
	}
	cmd := e.Lab.Cmd(ctx, lab.Box, append([]string{bin}, append(args, "--socket", e.Box.Socket)...)...)
	cmd.Stdin = strings.NewReader(stdin)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func boxState(e *labtest.Env) string { return filepath.Join(e.Lab.Dir, "box-state") }

// appData writes what the apps keep: files, a chat room, a document, and
// returns their contents by path.
func appData(t *testing.T, e *labtest.Env) map[string][]byte {
	big := make([]byte, 3<<20)
	rand.Read(big)
	files := map[string][]byte{
		"apps/files/alex/field-notes.pdf":   big,
		"apps/files/alex/photo-copy.jpg":    big,
		"apps/files/shared/plan.txt":        bytes.Repeat([]byte("meet at the usual place at 10\n"), 20000),
		"apps/chat/rooms/general/log.jsonl": []byte(`{"from":"alex","text":"the box is up"}` + "\n"),
		"apps/documents/report/updates.bin": []byte("\x00\x01yjs update log\x02"),
	}
	for p, b := range files {
		full := filepath.Join(boxState(e), filepath.FromSlash(p))
		if err := os.MkdirAll(filepath.Dir(full), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return files
}

func backupStatus(ctx context.Context, e *labtest.Env) (backup.Status, error) {
	st, err := e.Box.API.Status(ctx)
	if err != nil {
		return backup.Status{}, err
	}
	if st.Backup == nil {
		return backup.Status{}, fmt.Errorf("no backup status")
	}
	return *st.Backup, nil
}

// runBackup asks for a backup on the owner's page and waits for every target.
func runBackup(t *testing.T, ctx context.Context, e *labtest.Env, o *browser) backup.Status {
	t.Helper()
	start := time.Now()
	if st, loc, body := o.do(ctx, "POST", "/backups/run", url.Values{}); st != http.StatusSeeOther {
		t.Fatalf("back up now: %d %s\n%.500s", st, loc, body)
	}
	var st backup.Status
	waitFor(t, 3*time.Minute, func() error {
		var err error
		if st, err = backupStatus(ctx, e); err != nil {
			return err
		}
		for _, tg := range st.Targets {
			if tg.Result == "failed" && tg.Started.After(start.Add(-time.Second)) {
				t.Fatalf("the backup to %s failed: %s", tg.Name, tg.Error)
			}
			if tg.Result != "ok" || tg.LastOK.Before(start.Add(-time.Second)) {
				return fmt.Errorf("%s: %s", tg.Name, tg.Result)
			}
		}
		if st.Running || len(st.Targets) == 0 {
			return fmt.Errorf("running")
		}
		return nil
	})
	return st
}

func TestBackupRestoreStory(t *testing.T) {
	e := labtest.SharedMesh(t)
	if _, err := tools.S3Server(); err != nil {
		t.Skipf("lab S3 test skipped: %v", err)
	}
	m := e.Lab.Mesh
	ctx, cancel := context.WithTimeout(context.Background(), 12*time.Minute)
	defer cancel()
	waitFor(t, 30*time.Second, func() error {
		st, err := e.Box.API.Status(ctx)
		if err != nil || st.VPN == nil || st.VPN.State != "up" {
			return fmt.Errorf("the box's VPN: %v %v", st.VPN, err)
		}
		return nil
	})
	if err := e.Lab.LaptopStatic(ctx); err != nil {
		t.Fatal(err)
	}
	laptop := e.Lab.HTTPClient(lab.Laptop, nil)

	// The owner sets the box up with the team mesh; alex enrolls.
	code, err := e.Box.API.SetupCode(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := lab.SetUpBoxWith(ctx, laptop, plainBase, code, passphrase, boxName,
		map[string]url.Values{"team": {"login_server": {m.URL}, "api_key": {m.APIKey}}}); err != nil {
		t.Fatal(err)
	}
	caPEM := fetch(t, ctx, laptop, plainBase+"/ca.crt")
	o := &browser{t: t, c: e.Lab.HTTPClient(lab.Laptop, caPEM), base: secureBase}
	if o.csrf, err = lab.SignIn(ctx, o.c, secureBase, passphrase); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 90*time.Second, func() error {
		st, err := e.Box.API.Status(ctx)
		if err != nil || st.Mesh == nil || st.Mesh.Node != "up" {
			return fmt.Errorf("the box's node: %+v %v", st.Mesh, err)
		}
		return nil
	})
	enroll(t, ctx, e, o, "alex", "alex-laptop")
	o.do(ctx, "POST", "/team/add", url.Values{"name": {"sam"}, "note": {"backup test"}})
	teammateIP := teammateAddr(t, ctx, m)

	// The clock: synced through the VPN (the lab's internet answers NTP).
	waitFor(t, 60*time.Second, func() error {
		st, err := e.Box.API.Status(ctx)
		if err != nil || st.Clock == nil || !st.Clock.Synced {
			return fmt.Errorf("the clock: %+v %v", st.Clock, err)
		}
		return nil
	})

	// The targets: the lab's S3 server on the internet, a store on the
	// teammate's machine (the same code a box serves), reached over the
	// tailnet.
	s3, err := e.Lab.StartS3(ctx)
	if err != nil {
		t.Fatal(err)
	}
	bin, _ := labtest.Binary()
	storeDir := filepath.Join(e.Lab.Dir, "teammate-peer-store")
	inviteOut, err := m.Teammate(ctx, bin, "peer-store", "add", "--dir", storeDir, boxName, "2GB")
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(inviteOut), "\n")
	invite := strings.TrimSpace(lines[len(lines)-1])
	ps, err := e.Lab.Start(lab.Teammate, "peer-store", bin, "peer-store", "serve", "--dir", storeDir, "--listen", "127.0.0.1:8443")
	if err != nil {
		t.Fatal(err)
	}
	defer ps.Stop(3 * time.Second)
	files := appData(t, e)
	form := url.Values{"s3_endpoint": {s3.Endpoint}, "s3_bucket": {s3.Bucket}, "s3_prefix": {boxName + "/"}, "s3_access_key": {s3.AccessKey},
		"s3_secret_key": {s3.SecretKey}, "s3_ca": {string(s3.CA)}, "peers": {"alex " + teammateIP + " " + invite},
		"at": {"03:30"}, "keep_last": {"3"}, "keep_daily": {"7"}, "keep_weekly": {"4"}, "keep_monthly": {"12"}}
	if st, _, body := o.do(ctx, "POST", "/backups/settings", form); st != http.StatusSeeOther {
		t.Fatalf("backup settings: %d\n%s", st, body)
	}
	// The member checks the box's log from their own device, over the
	// tailnet, and keeps what they saw.
	auditState := filepath.Join(e.Lab.Dir, "alex-audit.json")
	caFile := filepath.Join(e.Lab.Dir, "box-ca.pem")
	os.WriteFile(caFile, caPEM, 0o644)
	memberVerify := func(args ...string) (string, error) {
		cmd := m.TeammateCmd(ctx, append([]string{bin, "audit", "verify", "--ca", caFile, "--state", auditState}, args...)...)
		cmd.Env = append(cmd.Env, "HTTPS_PROXY=socks5://"+lab.TeammateSOCKS.String())
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	if out, err := memberVerify("--full", "https://"+boxName+"/audit/api/"); err != nil || !strings.Contains(out, "every record") {
		t.Fatalf("alex's audit verify before the backup: %v\n%s", err, out)
	}
	tc0, _ := e.Lab.TunnelCounts(ctx)
	st := runBackup(t, ctx, e, o)
	t.Logf("backup: %+v", st.Targets)
	tc1, _ := e.Lab.TunnelCounts(ctx)
	// S3 was reached through the VPN only: every request came from its exit.
	checkAccessLog(t, s3.AccessLog)
	if tc1.FromBox-tc0.FromBox < 1000 {
		t.Errorf("the tunnel carried %d packets of the box's during the backup", tc1.FromBox-tc0.FromBox)
	}
	// The teammate's store holds nothing readable.
	noPlaintext(t, storeDir, []byte("meet at the usual place"))
	noPlaintext(t, s3.Dir, []byte("meet at the usual place"))
	// The owner's page shows it, and the dashboard.
	if _, _, page := o.do(ctx, "GET", "/backups", nil); !strings.Contains(page, "✓ verified") {
		t.Errorf("the backups page:\n%.2000s", page)
	}

	// kill -9 in the middle of a backup: the repository stays usable.
	huge := make([]byte, 48<<20)
	rand.Read(huge)
	os.WriteFile(filepath.Join(boxState(e), "apps", "files", "alex", "video.mp4"), huge, 0o600)
	files["apps/files/alex/video.mp4"] = huge
	packsBefore := countFiles(filepath.Join(s3.Dir, s3.Bucket))
	o.do(ctx, "POST", "/backups/run", url.Values{})
	waitFor(t, 60*time.Second, func() error {
		if n := countFiles(filepath.Join(s3.Dir, s3.Bucket)); n < packsBefore+2 {
			return fmt.Errorf("%d objects", n)
		}
		return nil
	})
	syscall.Kill(e.Box.Pid(), syscall.SIGKILL)
	waitFor(t, 10*time.Second, func() error {
		if done, _ := e.Box.Exited(); !done {
			return fmt.Errorf("the box has not died")
		}
		return nil
	})
	e.RestartBox(t, "")
	if out, err := cli(ctx, e, passphrase+"\n", "unlock"); err != nil {
		t.Fatalf("unlock after kill -9: %v\n%s", err, out)
	}
	o.signIn(ctx, passphrase)
	waitFor(t, 90*time.Second, func() error {
		s, err := e.Box.API.Status(ctx)
		if err != nil || s.Mesh == nil || s.Mesh.Node != "up" || s.Clock == nil || !s.Clock.Synced {
			return fmt.Errorf("after the restart: %v", err)
		}
		return nil
	})
	st = runBackup(t, ctx, e, o)
	if out, err := cli(ctx, e, "", "backup", "drill"); err != nil || !strings.Contains(out, "passed") {
		t.Fatalf("the restore drill after kill -9: %v\n%s", err, out)
	}

	// The recovery key: the owner keeps it; and splits it between alex and
	// sam, 2 of 2.
	keyOut, err := cli(ctx, e, "", "backup", "key")
	if err != nil {
		t.Fatal(err)
	}
	recoveryKey := strings.TrimSpace(keyOut)
	if st, _, body := o.do(ctx, "POST", "/backups/split", url.Values{"k": {"2"}, "member": {"alex", "sam"}}); st != http.StatusSeeOther {
		t.Fatalf("split: %d\n%.1000s", st, body)
	}
	alexShare := memberShare(t, ctx, m)
	// sam fetches theirs on their own device (the teammate's machine, now
	// enrolled as sam's: the store on it moves to its new address).
	if err := m.ResetTeammate(ctx); err != nil {
		t.Fatal(err)
	}
	enroll(t, ctx, e, o, "sam", "sam-laptop")
	samShare := memberShare(t, ctx, m)
	if samShare == alexShare {
		t.Fatal("alex and sam got the same share")
	}
	teammateIP = teammateAddr(t, ctx, m)
	form.Set("peers", "alex "+teammateIP)
	form.Set("s3_secret_key", "")
	form.Del("csrf")
	if st, _, body := o.do(ctx, "POST", "/backups/settings", form); st != http.StatusSeeOther {
		t.Fatalf("backup settings: %d\n%s", st, body)
	}
	runBackup(t, ctx, e, o)

	// Wipe #1, and restore from the teammate's box with the recovery key.
	fresh := wipe(t, ctx, e)
	walkToFinish(t, ctx, fresh, passphrase2, map[string]url.Values{"team": {"login_server": {m.URL}, "api_key": {m.APIKey}}})
	waitFor(t, 90*time.Second, func() error {
		s, err := e.Box.API.Status(ctx)
		if err != nil || s.Mesh == nil || s.Mesh.Node != "up" {
			return fmt.Errorf("the fresh box's node: %v", err)
		}
		return nil
	})
	restore(t, ctx, fresh, url.Values{"source": {"peer"}, "peer": {teammateIP}, "how": {"key"}, "key": {recoveryKey},
		"passphrase": {passphrase2}, "confirm": {passphrase2}})
	afterRestore(t, ctx, e, o, passphrase2, files)

	// Wipe #2, and restore from S3 with the two shares; a wrong share first.
	fresh = wipe(t, ctx, e)
	walkToFinish(t, ctx, fresh, passphrase3, nil)
	wrong := []byte(alexShare)
	wrong[10] = map[bool]byte{true: 'B', false: 'A'}[wrong[10] == 'A']
	s3form := url.Values{"source": {"s3"}, "s3_endpoint": {s3.Endpoint}, "s3_bucket": {s3.Bucket}, "s3_prefix": {boxName + "/"},
		"s3_access_key": {s3.AccessKey}, "s3_secret_key": {s3.SecretKey}, "s3_ca": {string(s3.CA)}, "how": {"shares"},
		"passphrase": {passphrase3}, "confirm": {passphrase3}}
	s3form.Set("shares", string(wrong)+"\n"+samShare)
	st1, body := restorePost(t, ctx, fresh, cloneForm(s3form))
	if st1 != http.StatusUnprocessableEntity || !strings.Contains(body, "share 1: the share&#39;s check digits do not match") {
		t.Fatalf("a mistyped share: %d\n%.3000s", st1, body)
	}
	s3form.Set("shares", alexShare)
	if st1, body = restorePost(t, ctx, fresh, cloneForm(s3form)); st1 != http.StatusUnprocessableEntity || !strings.Contains(body, "needs 2 of its 2") {
		t.Fatalf("one share of two: %d\n%.3000s", st1, body)
	}
	s3form.Set("shares", alexShare+"\n"+samShare)
	restore(t, ctx, fresh, s3form)
	afterRestore(t, ctx, e, o, passphrase3, files)

	// The log alex saved before the backup still verifies, from sam's device
	// now: the restored box carries the same history on.
	waitFor(t, 90*time.Second, func() error {
		out, err := memberVerify("https://" + boxName + "/audit/api/")
		if err != nil && (strings.Contains(out, "rewritten") || strings.Contains(out, "truncated") || strings.Contains(out, "key changed")) {
			t.Fatalf("audit verify after the restores: %v\n%s", err, out)
		}
		if err != nil || !strings.Contains(out, "nothing was rewritten") {
			return fmt.Errorf("audit verify after the restores: %v: %s", err, out)
		}
		return nil
	})
	if out, err := cli(ctx, e, "", "audit", "log", "--state", filepath.Join(e.Lab.Dir, "console-audit.json")); err != nil || !strings.Contains(out, "restore onto a fresh box") || !strings.Contains(out, "backup finished") {
		t.Fatalf("the audit log after the restores: %v\n%s", err, out)
	}
}

func cloneForm(v url.Values) url.Values {
	out := url.Values{}
	for k, vs := range v {
		out[k] = append([]string{}, vs...)
	}
	return out
}

func fetch(t testing.TB, ctx context.Context, c *http.Client, u string) []byte {
	req, _ := http.NewRequestWithContext(ctx, "GET", u, nil)
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return b
}

// enroll invites a member on the team page (or reissues their key) and runs
// their script in the teammate.
func enroll(t *testing.T, ctx context.Context, e *labtest.Env, o *browser, member, device string) {
	st, loc, body := o.do(ctx, "POST", "/team/add", url.Values{"name": {member}, "note": {"backup test"}})
	if st != http.StatusSeeOther {
		st, loc, body = o.do(ctx, "POST", "/team/reissue", url.Values{"member": {member}})
	}
	if st != http.StatusSeeOther || !strings.HasPrefix(loc, "/team/bundle/") {
		t.Fatalf("inviting %s: %d %s\n%.1000s", member, st, loc, body)
	}
	_, _, script := o.do(ctx, "GET", loc+"/join.sh", nil)
	if out, err := e.Lab.Mesh.Enroll(ctx, script, "--hostname", device); err != nil {
		t.Fatalf("enrolling %s: %v\n%s", member, err, out)
	}
	waitFor(t, 60*time.Second, func() error {
		out, err := e.Lab.Mesh.TeammateCurl(ctx, "https://"+boxName+"/")
		if err != nil || !strings.Contains(out, boxName) {
			return fmt.Errorf("the members' page from %s: %v", member, err)
		}
		return nil
	})
}

func teammateAddr(t *testing.T, ctx context.Context, m *lab.Mesh) string {
	st, err := m.TeammateStatus(ctx)
	if err != nil || st.Self == nil || len(st.Self.TailscaleIPs) == 0 {
		t.Fatalf("the teammate's tailnet address: %v", err)
	}
	return st.Self.TailscaleIPs[0].String()
}

// memberShare fetches the member's share from the members' page on their
// device, and tells the box they saved it.
func memberShare(t *testing.T, ctx context.Context, m *lab.Mesh) string {
	out, err := m.TeammateCurl(ctx, "https://"+boxName+"/share")
	if err != nil {
		t.Fatal(err)
	}
	sh := shareText.FindString(out)
	if sh == "" || !strings.Contains(out, "data:image/png;base64,") {
		t.Fatalf("no share (or no QR code) on the members' page:\n%.2000s", out)
	}
	if out, err := m.TeammateCurl(ctx, "-X", "POST", "-H", "Origin: https://"+boxName, "-o", "/dev/null", "-w", "%{http_code}", "https://"+boxName+"/share/saved"); err != nil || out != "303" {
		t.Fatalf("saying the share is saved: %v %s", err, out)
	}
	if out, _ := m.TeammateCurl(ctx, "https://"+boxName+"/share"); strings.Contains(out, sh) {
		t.Fatal("the box still shows a share its member saved")
	}
	return sh
}

// wipe stops the box, erases its state and starts it fresh, returning the
// laptop's browser past the setup code.
func wipe(t *testing.T, ctx context.Context, e *labtest.Env) *browser {
	if err := e.Box.Stop(10 * time.Second); err != nil {
		t.Fatal(err)
	}
	if err := os.RemoveAll(boxState(e)); err != nil {
		t.Fatal(err)
	}
	e.RestartBox(t, "")
	code, err := e.Box.API.SetupCode(ctx)
	if err != nil {
		t.Fatal(err)
	}
	b := &browser{t: t, c: e.Lab.HTTPClient(lab.Laptop, nil), base: plainBase}
	if st, _, body := b.do(ctx, "POST", "/setup/code", url.Values{"code": {code}}); st != http.StatusSeeOther {
		t.Fatalf("the fresh box's setup code: %d\n%s", st, body)
	}
	waitFor(t, 60*time.Second, func() error {
		s, err := e.Box.API.Status(ctx)
		if err != nil || s.Clock == nil || !s.Clock.Synced || s.VPN == nil || s.VPN.State != "up" {
			return fmt.Errorf("the fresh box's VPN and clock: %v", err)
		}
		return nil
	})
	return b
}

// walkToFinish goes through the wizard's steps (answers by step id) up to
// the last page, without finishing: a restore replaces what is set.
func walkToFinish(t *testing.T, ctx context.Context, b *browser, pass string, answers map[string]url.Values) {
	for range 12 {
		_, _, body := b.do(ctx, "GET", "/setup", nil)
		m := csrfField.FindStringSubmatch(body)
		if m == nil {
			t.Fatalf("no form in the wizard:\n%.2000s", body)
		}
		form := url.Values{"csrf": {m[1]}}
		var path string
		switch {
		case strings.Contains(body, `action="/setup/finish"`):
			if !strings.Contains(body, `href="/setup/restore"`) && !strings.Contains(fetchRestore(t, ctx, b), "Restore from a backup") {
				t.Fatal("the wizard offers no restore")
			}
			return
		case strings.Contains(body, `action="/setup/passphrase"`):
			if !strings.Contains(body, `/setup/restore`) {
				t.Errorf("the passphrase step does not offer a restore")
			}
			path = "/setup/passphrase"
			form.Set("passphrase", pass)
			form.Set("confirm", pass)
		case strings.Contains(body, `action="/setup/name"`):
			path = "/setup/name"
			form.Set("name", boxName+"-new")
		default:
			mm := regexp.MustCompile(`action="(/setup/step/[^"]+)"`).FindStringSubmatch(body)
			if mm == nil {
				t.Fatalf("an unknown step:\n%.2000s", body)
			}
			path = mm[1]
			if a, ok := answers[strings.TrimPrefix(path, "/setup/step/")]; ok {
				for k, v := range a {
					form[k] = v
				}
			} else {
				form.Set("skip", "1")
			}
		}
		if st, _, body := b.do(ctx, "POST", path, form); st != http.StatusSeeOther {
			t.Fatalf("%s: %d\n%.2000s", path, st, body)
		}
	}
	t.Fatal("the wizard did not reach its end")
}

func fetchRestore(t *testing.T, ctx context.Context, b *browser) string {
	_, _, body := b.do(ctx, "GET", "/setup/restore", nil)
	return body
}

// restorePost sends the wizard's restore form.
func restorePost(t *testing.T, ctx context.Context, b *browser, form url.Values) (int, string) {
	_, _, page := b.do(ctx, "GET", "/setup/restore", nil)
	m := csrfField.FindStringSubmatch(page)
	if m == nil {
		t.Fatalf("the restore page:\n%.2000s", page)
	}
	form.Set("csrf", m[1])
	// A restore takes as long as the download: longer than a page.
	slow := *b
	tr := b.c.Transport.(*http.Transport).Clone()
	tr.ResponseHeaderTimeout = 0
	slow.c = &http.Client{Jar: b.c.Jar, Transport: tr, Timeout: 5 * time.Minute, CheckRedirect: b.c.CheckRedirect}
	start := time.Now()
	st, _, body := slow.do(ctx, "POST", "/setup/restore", form)
	t.Logf("restore form (%s, %s): %d in %v", form.Get("source"), form.Get("how"), st, time.Since(start).Round(time.Millisecond))
	return st, body
}

// restore fills the wizard's restore form and checks the box restored.
func restore(t *testing.T, ctx context.Context, b *browser, form url.Values) {
	st, body := restorePost(t, ctx, b, form)
	if st != http.StatusOK || !strings.Contains(body, "Restored") {
		t.Fatalf("restore: %d\n%.3000s", st, body)
	}
}

// afterRestore waits for the restarted box, unlocks it with the new
// passphrase, and checks the data, the team and the settings came back.
func afterRestore(t *testing.T, ctx context.Context, e *labtest.Env, o *browser, pass string, files map[string][]byte) {
	waitFor(t, 60*time.Second, func() error {
		s, err := e.Box.API.Status(ctx)
		if err != nil {
			return err
		}
		if !s.Owner.SetupDone || !s.Owner.Locked || s.Owner.BoxName != boxName {
			return fmt.Errorf("the restored box: %+v", s.Owner)
		}
		return nil
	})
	if out, err := cli(ctx, e, pass+"\n", "unlock"); err != nil {
		t.Fatalf("unlocking the restored box with the new passphrase: %v\n%s", err, out)
	}
	for p, want := range files {
		got, err := os.ReadFile(filepath.Join(boxState(e), filepath.FromSlash(p)))
		if err != nil || !bytes.Equal(got, want) {
			t.Errorf("%s after the restore: %v (%d bytes, want %d)", p, err, len(got), len(want))
		}
	}
	o.signIn(ctx, pass)
	_, _, team := o.do(ctx, "GET", "/team", nil)
	for _, m := range []string{"alex", "sam"} {
		if !strings.Contains(team, m) {
			t.Errorf("the restored team has no %s", m)
		}
	}
	var s backup.Settings
	if out, err := cli(ctx, e, "", "backup", "settings"); err != nil || json.Unmarshal([]byte(out), &s) != nil || s.S3 == nil || len(s.Peers) != 1 {
		t.Errorf("the restored backup settings: %v\n%s", err, out)
	}
}

func checkAccessLog(t *testing.T, path string) {
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, line := range strings.Split(string(b), "\n") {
		i := strings.Index(line, "] ")
		if i < 0 {
			continue
		}
		ip, _, _ := strings.Cut(line[i+2:], " ")
		n++
		if ip != lab.VPNEndpoint.Addr().String() {
			t.Errorf("the S3 server was reached from %s, not the VPN's exit: %.200s", ip, line)
		}
	}
	if n < 5 {
		t.Fatalf("the S3 server logged %d requests", n)
	}
}

func noPlaintext(t *testing.T, dir string, needle []byte) {
	filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		if err == nil && fi.Mode().IsRegular() {
			if b, _ := os.ReadFile(p); bytes.Contains(b, needle) {
				t.Errorf("%s holds the team's data in clear", p)
			}
		}
		return nil
	})
}

func countFiles(dir string) int {
	n := 0
	filepath.Walk(dir, func(_ string, fi os.FileInfo, err error) error {
		if err == nil && fi.Mode().IsRegular() {
			n++
		}
		return nil
	})
	return n
}
