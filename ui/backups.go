package ui

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"path"
	"strconv"
	"strings"
	"time"

	"github.com/redoubt/redoubt/backup"
	"github.com/redoubt/redoubt/backup/peerstore"
	"github.com/redoubt/redoubt/backup/recovery"
	"github.com/redoubt/redoubt/backup/target/s3"
)

// Backups is the backups as the owner's pages manage them; the daemon
// implements it (package backup's engine, the teammates' stores kept here,
// and the restore onto a fresh box).
type Backups interface {
	Status() backup.Status
	Settings() (backup.Settings, error)
	SetSettings(backup.Settings) error
	BackupNow() error
	Drill(ctx context.Context) backup.DrillStatus
	RecoveryKey() (recovery.Key, error)
	Split(k int, members []string) ([]backup.ShareHolder, error)
	Snapshots(ctx context.Context, target string) ([]backup.SnapshotInfo, error)
	Browse(ctx context.Context, target, snapshot, dir string) ([]backup.Entry, error)
	WriteFile(ctx context.Context, target, snapshot, p string, w io.Writer) error
	RestoreItem(ctx context.Context, target, snapshot, p string) (backup.RestoredItem, error)
	// The teammates' backups this box keeps.
	Kept() []peerstore.PeerStatus
	Keep(name string, quota int64) (code string, err error)
	Unkeep(name string) error
	// Members are the team's members (for splitting the key).
	Members() []string
	// RestoreFresh restores a backup onto this fresh box (setup not done);
	// the box restarts afterwards.
	RestoreFresh(ctx context.Context, req backup.RestoreRequest) (backup.FreshRestore, error)
}

// withBackups refuses the backup pages on a box without them.
func (u *UI) withBackups(next func(http.ResponseWriter, *http.Request, *session)) func(http.ResponseWriter, *http.Request, *session) {
	return func(w http.ResponseWriter, r *http.Request, s *session) {
		if u.d.Backups == nil {
			u.fail(w, r, http.StatusNotFound, "This box has no backups.")
			return
		}
		next(w, r, s)
	}
}

// backupRoutes adds the backup pages and the wizard's restore path.
func (u *UI) backupRoutes(mux *http.ServeMux) {
	mux.HandleFunc("GET /backups", u.signedIn(u.withBackups(u.backupsPage)))
	mux.HandleFunc("POST /backups/settings", u.signedIn(u.changed(u.withBackups(u.backupsSave))))
	mux.HandleFunc("POST /backups/run", u.signedIn(u.changed(u.withBackups(u.backupsRun))))
	mux.HandleFunc("POST /backups/drill", u.signedIn(u.changed(u.withBackups(u.backupsDrill))))
	mux.HandleFunc("POST /backups/key", u.signedIn(u.changed(u.withBackups(u.backupsKey))))
	mux.HandleFunc("POST /backups/split", u.signedIn(u.changed(u.withBackups(u.backupsSplit))))
	mux.HandleFunc("POST /backups/restore-item", u.signedIn(u.changed(u.withBackups(u.backupsRestoreItem))))
	mux.HandleFunc("GET /backups/file", u.signedIn(u.withBackups(u.backupsFile)))
	mux.HandleFunc("POST /backups/keep", u.signedIn(u.changed(u.withBackups(u.backupsKeep))))
	mux.HandleFunc("POST /backups/unkeep", u.signedIn(u.changed(u.withBackups(u.backupsUnkeep))))
	mux.HandleFunc("GET /setup/restore", u.setupRestorePage)
	mux.HandleFunc("POST /setup/restore", u.setupOnly(u.setupRestore))
}

type backupsView struct {
	Status   backup.Status
	Settings backup.Settings
	Targets  []string
	Members  []string
	Kept     []peerstore.PeerStatus
	// Browsing: a target's snapshots and a folder of one.
	Target    string
	Snapshots []backup.SnapshotInfo
	Snapshot  string
	Dir       string
	Up        string
	Entries   []backup.Entry
	BrowseErr string
	// Shown once.
	Key  string
	Code string
}

func (u *UI) backupsPage(w http.ResponseWriter, r *http.Request, s *session) {
	u.renderBackups(w, r, s, http.StatusOK, nil, "", backupsView{})
}

func (u *UI) renderBackups(w http.ResponseWriter, r *http.Request, s *session, status int, fields map[string]string, msg string, v backupsView) {
	b := u.d.Backups
	v.Status = b.Status()
	set, err := b.Settings()
	if err != nil && msg == "" {
		msg = err.Error()
	}
	v.Settings = set.Redacted()
	v.Targets = set.Targets()
	v.Members = b.Members()
	v.Kept = b.Kept()
	q := r.URL.Query()
	if v.Target == "" {
		v.Target = q.Get("target")
	}
	if v.Target == "" && len(v.Targets) > 0 {
		v.Target = v.Targets[0]
	}
	if v.Snapshot == "" {
		v.Snapshot = q.Get("snapshot")
	}
	if v.Dir == "" {
		v.Dir = strings.Trim(q.Get("dir"), "/")
	}
	if v.Dir == "" {
		v.Dir = "state/apps"
	}
	if v.Target != "" && q.Has("browse") {
		ctx, cancel := context.WithTimeout(r.Context(), time.Minute)
		defer cancel()
		v.Snapshots, err = b.Snapshots(ctx, v.Target)
		if err == nil && len(v.Snapshots) > 0 {
			if v.Snapshot == "" {
				v.Snapshot = v.Snapshots[0].ID
			}
			v.Entries, err = b.Browse(ctx, v.Target, v.Snapshot, v.Dir)
		}
		if err != nil {
			v.BrowseErr = err.Error()
		}
		if i := strings.LastIndex(v.Dir, "/"); i > 0 {
			v.Up = v.Dir[:i]
		}
	}
	notice := q.Get("done")
	u.render(w, r, status, "backups", view{Title: "Backups", Page: "backups", CSRF: s.csrf, SignedIn: true, Data: v, Fields: fields, Error: msg, Notice: notice})
}

// backupsSave keeps the settings form: the S3 bucket, peers, schedule,
// retention. Secrets left blank keep the ones set.
func (u *UI) backupsSave(w http.ResponseWriter, r *http.Request, s *session) {
	b := u.d.Backups
	old, err := b.Settings()
	if err != nil {
		u.renderBackups(w, r, s, http.StatusServiceUnavailable, nil, err.Error(), backupsView{})
		return
	}
	f := r.PostFormValue
	next := old
	next.S3 = nil
	if ep := strings.TrimSpace(f("s3_endpoint")); ep != "" {
		next.S3 = &s3.Config{Endpoint: ep, Bucket: strings.TrimSpace(f("s3_bucket")), Prefix: strings.TrimSpace(f("s3_prefix")),
			Region: strings.TrimSpace(f("s3_region")), AccessKey: strings.TrimSpace(f("s3_access_key")), SecretKey: f("s3_secret_key"),
			CA: strings.TrimSpace(f("s3_ca"))}
	}
	next.Peers = nil
	for _, line := range strings.Split(f("peers"), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		parts := strings.Fields(line)
		if len(parts) < 2 || len(parts) > 3 {
			u.renderBackups(w, r, s, http.StatusUnprocessableEntity, map[string]string{"peers": fmt.Sprintf("%q: write the peer's name, its tailnet address and, the first time, its invitation code", line)}, "", backupsView{})
			return
		}
		p := backup.PeerTarget{Name: parts[0], Address: parts[1]}
		if len(parts) == 3 {
			p.Code = parts[2]
		}
		next.Peers = append(next.Peers, p)
	}
	next.At, next.Every = strings.TrimSpace(f("at")), 0
	if ev := strings.TrimSpace(f("every")); ev != "" {
		d, err := time.ParseDuration(ev)
		if err != nil {
			u.renderBackups(w, r, s, http.StatusUnprocessableEntity, map[string]string{"every": "Write a duration such as 6h or 24h."}, "", backupsView{})
			return
		}
		next.At, next.Every = "", d
	}
	for _, k := range []struct {
		name string
		dst  *int
	}{{"keep_last", &next.Keep.Last}, {"keep_daily", &next.Keep.Daily}, {"keep_weekly", &next.Keep.Weekly}, {"keep_monthly", &next.Keep.Monthly}} {
		n, err := strconv.Atoi(strings.TrimSpace(f(k.name)))
		if err != nil {
			u.renderBackups(w, r, s, http.StatusUnprocessableEntity, map[string]string{"keep": "Write whole numbers of snapshots to keep."}, "", backupsView{})
			return
		}
		*k.dst = n
	}
	next.Paused = f("paused") == "on"
	if err := b.SetSettings(next.KeepSecrets(old)); err != nil {
		var fe *backup.FieldError
		if errors.As(err, &fe) {
			u.renderBackups(w, r, s, http.StatusUnprocessableEntity, map[string]string{fe.Field: fe.Message}, "", backupsView{})
			return
		}
		u.renderBackups(w, r, s, http.StatusInternalServerError, nil, err.Error(), backupsView{})
		return
	}
	u.logf(r, "backup settings changed", "targets", strings.Join(next.Targets(), ","))
	http.Redirect(w, r, "/backups?done="+url.QueryEscape("Saved."), http.StatusSeeOther)
}

func (u *UI) backupsRun(w http.ResponseWriter, r *http.Request, s *session) {
	if err := u.d.Backups.BackupNow(); err != nil {
		u.renderBackups(w, r, s, http.StatusConflict, nil, err.Error(), backupsView{})
		return
	}
	http.Redirect(w, r, "/backups?done="+url.QueryEscape("The backup has started; this page shows how it went."), http.StatusSeeOther)
}

func (u *UI) backupsDrill(w http.ResponseWriter, r *http.Request, s *session) {
	ctx, cancel := context.WithTimeout(r.Context(), 30*time.Minute)
	defer cancel()
	d := u.d.Backups.Drill(ctx)
	msg := fmt.Sprintf("The restore drill passed: %d files restored and checked.", d.Files)
	if !d.OK {
		msg = "The restore drill failed: " + strings.Join(d.Problems, "; ")
	}
	http.Redirect(w, r, "/backups?done="+url.QueryEscape(msg), http.StatusSeeOther)
}

// backupsKey shows the recovery key, after the owner's passphrase.
func (u *UI) backupsKey(w http.ResponseWriter, r *http.Request, s *session) {
	if err := u.checkPassphrase(r.PostFormValue("passphrase")); err != nil {
		u.renderBackups(w, r, s, http.StatusUnprocessableEntity, map[string]string{"key": "That is not the box's passphrase."}, "", backupsView{})
		return
	}
	k, err := u.d.Backups.RecoveryKey()
	if err != nil {
		u.renderBackups(w, r, s, http.StatusConflict, nil, err.Error(), backupsView{})
		return
	}
	u.logf(r, "recovery key shown")
	u.renderBackups(w, r, s, http.StatusOK, nil, "", backupsView{Key: k.String()})
}

// checkPassphrase checks the owner's passphrase against the vault (an
// unlocked vault unlocks again with the right one).
func (u *UI) checkPassphrase(p string) error {
	if p == "" {
		return errors.New("empty")
	}
	return u.d.Vault.Unlock([]byte(p))
}

func (u *UI) backupsSplit(w http.ResponseWriter, r *http.Request, s *session) {
	k, _ := strconv.Atoi(r.PostFormValue("k"))
	if _, err := u.d.Backups.Split(k, r.PostForm["member"]); err != nil {
		u.renderBackups(w, r, s, http.StatusUnprocessableEntity, map[string]string{"shares": err.Error()}, "", backupsView{})
		return
	}
	u.logf(r, "recovery key split", "k", k, "n", len(r.PostForm["member"]))
	http.Redirect(w, r, "/backups?done="+url.QueryEscape("The recovery key is split. Each member finds their share on their members' page."), http.StatusSeeOther)
}

func (u *UI) backupsRestoreItem(w http.ResponseWriter, r *http.Request, s *session) {
	ctx, cancel := context.WithTimeout(r.Context(), 30*time.Minute)
	defer cancel()
	f := r.PostFormValue
	item, err := u.d.Backups.RestoreItem(ctx, f("target"), f("snapshot"), f("path"))
	if err != nil {
		u.renderBackups(w, r, s, http.StatusUnprocessableEntity, map[string]string{"browse": err.Error()}, "", backupsView{})
		return
	}
	http.Redirect(w, r, "/backups?done="+url.QueryEscape(fmt.Sprintf("%s is back from the backup, beside the current one: %s", item.Path, item.Into)), http.StatusSeeOther)
}

func (u *UI) backupsFile(w http.ResponseWriter, r *http.Request, s *session) {
	ctx, cancel := context.WithTimeout(r.Context(), 30*time.Minute)
	defer cancel()
	q := r.URL.Query()
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("Content-Disposition", fmt.Sprintf("attachment; filename=%q", path.Base(q.Get("path"))))
	if err := u.d.Backups.WriteFile(ctx, q.Get("target"), q.Get("snapshot"), q.Get("path"), w); err != nil {
		http.Error(w, err.Error(), http.StatusNotFound)
	}
}

func (u *UI) backupsKeep(w http.ResponseWriter, r *http.Request, s *session) {
	q, err := peerstore.ParseSize(r.PostFormValue("quota"))
	if err != nil {
		u.renderBackups(w, r, s, http.StatusUnprocessableEntity, map[string]string{"keep_peer": err.Error()}, "", backupsView{})
		return
	}
	code, err := u.d.Backups.Keep(strings.TrimSpace(r.PostFormValue("name")), q)
	if err != nil {
		u.renderBackups(w, r, s, http.StatusUnprocessableEntity, map[string]string{"keep_peer": err.Error()}, "", backupsView{})
		return
	}
	u.renderBackups(w, r, s, http.StatusOK, nil, "", backupsView{Code: code})
}

func (u *UI) backupsUnkeep(w http.ResponseWriter, r *http.Request, s *session) {
	if err := u.d.Backups.Unkeep(r.PostFormValue("name")); err != nil {
		u.renderBackups(w, r, s, http.StatusUnprocessableEntity, map[string]string{"keep_peer": err.Error()}, "", backupsView{})
		return
	}
	http.Redirect(w, r, "/backups?done="+url.QueryEscape("Removed, with everything it kept here."), http.StatusSeeOther)
}

type restoreView struct {
	Values  map[string]string
	HasMesh bool
	Done    *backup.FreshRestore
}

// setupRestorePage is the wizard's "restore from a backup" path.
func (u *UI) setupRestorePage(w http.ResponseWriter, r *http.Request) {
	if u.d.Setup.Done() {
		http.Redirect(w, r, "/", http.StatusFound)
		return
	}
	if !u.setupSession(r) {
		u.render(w, r, http.StatusOK, "setup-code", view{Title: "Restore your Redoubt box"})
		return
	}
	if u.d.Backups == nil {
		u.fail(w, r, http.StatusNotFound, "This box cannot restore backups.")
		return
	}
	u.render(w, r, http.StatusOK, "restore", view{Title: "Restore from a backup", CSRF: u.csrfForSetup(), Data: restoreView{Values: map[string]string{}}})
}

func (u *UI) setupRestore(w http.ResponseWriter, r *http.Request) {
	if u.d.Backups == nil {
		u.fail(w, r, http.StatusNotFound, "This box cannot restore backups.")
		return
	}
	f := func(k string) string { return strings.TrimSpace(r.PostFormValue(k)) }
	values := map[string]string{}
	for _, k := range []string{"source", "s3_endpoint", "s3_bucket", "s3_prefix", "s3_region", "s3_access_key", "peer", "how"} {
		values[k] = f(k)
	}
	again := func(status int, fields map[string]string, msg string) {
		u.render(w, r, status, "restore", view{Title: "Restore from a backup", CSRF: u.csrfForSetup(), Data: restoreView{Values: values}, Fields: fields, Error: msg})
	}
	if r.PostFormValue("passphrase") != r.PostFormValue("confirm") {
		again(http.StatusUnprocessableEntity, map[string]string{"confirm": "The two passphrases differ."}, "")
		return
	}
	req := backup.RestoreRequest{Passphrase: r.PostFormValue("passphrase")}
	if f("source") == "peer" {
		req.Peer = f("peer")
	} else {
		req.S3 = &s3.Config{Endpoint: f("s3_endpoint"), Bucket: f("s3_bucket"), Prefix: f("s3_prefix"), Region: f("s3_region"),
			AccessKey: f("s3_access_key"), SecretKey: r.PostFormValue("s3_secret_key"), CA: f("s3_ca")}
	}
	if f("how") == "shares" {
		for _, line := range strings.Split(r.PostFormValue("shares"), "\n") {
			if strings.TrimSpace(line) != "" {
				req.Shares = append(req.Shares, line)
			}
		}
		if len(req.Shares) == 0 {
			again(http.StatusUnprocessableEntity, map[string]string{"shares": "Type the members' shares, one per line."}, "")
			return
		}
	} else {
		req.Key = r.PostFormValue("key")
		if strings.TrimSpace(req.Key) == "" {
			again(http.StatusUnprocessableEntity, map[string]string{"key": "Type the recovery key."}, "")
			return
		}
	}
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Hour)
	defer cancel()
	res, err := u.d.Backups.RestoreFresh(ctx, req)
	if err != nil {
		var fe *backup.FieldError
		if errors.As(err, &fe) {
			again(http.StatusUnprocessableEntity, map[string]string{fe.Field: fe.Message}, "")
			return
		}
		again(http.StatusInternalServerError, nil, err.Error())
		return
	}
	u.d.Logger.Warn("restored from a backup in the setup wizard", "snapshot", res.Snapshot.ID, "files", res.Files)
	u.render(w, r, http.StatusOK, "restore", view{Title: "Restored", Data: restoreView{Done: &res}})
}

// BackupTile is the dashboard's summary of the backups and the last restore
// drill.
type BackupTile struct {
	State   string // "up", "down", "connecting", "off"
	Label   string
	Detail  string
	Drill   string
	DrillOK bool
}

func (u *UI) backupTile() *BackupTile {
	if u.d.Backups == nil {
		return nil
	}
	st := u.d.Backups.Status()
	t := &BackupTile{State: "off", Label: "Not set up", Detail: "Nothing leaves the box for safekeeping yet: set up backups."}
	var last time.Time
	failed := ""
	for _, tg := range st.Targets {
		if tg.LastOK.After(last) {
			last = tg.LastOK
		}
		if tg.Result == "failed" {
			failed = tg.Name + ": " + tg.Error
		}
	}
	switch {
	case st.Running:
		t.State, t.Label, t.Detail = "connecting", "Running", "A backup is running now."
	case failed != "":
		t.State, t.Label, t.Detail = "down", "Failed", failed
	case st.Waiting != "" && st.Configured:
		t.State, t.Label, t.Detail = "connecting", "Waiting", st.Waiting
	case !last.IsZero():
		t.State, t.Label, t.Detail = "up", "Backed up", "Last verified backup "+ago(last)+"."
	case st.Configured:
		t.State, t.Label, t.Detail = "connecting", "Not yet", "The first backup runs "+ago(st.Next)+"."
	}
	switch {
	case st.Drill.Time.IsZero():
		t.Drill = "Restore drill: not yet run."
	case st.Drill.OK:
		t.Drill, t.DrillOK = fmt.Sprintf("Restore drill passed %s: %d files restored and checked.", ago(st.Drill.Time), st.Drill.Files), true
	default:
		t.Drill = "Restore drill FAILED " + ago(st.Drill.Time) + ": " + strings.Join(st.Drill.Problems, "; ")
	}
	return t
}

// humanBytes writes a size for people.
func humanBytes(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}
