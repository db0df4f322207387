package backup_test

import (
	"bytes"
	"context"
	"errors"
	"net"
	"net/http/httptest"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3mem"

	"github.com/redoubt/redoubt/audit"
	"github.com/redoubt/redoubt/backup"
	"github.com/redoubt/redoubt/backup/repo"
	"github.com/redoubt/redoubt/backup/target/s3"
	"github.com/redoubt/redoubt/vault"
)

type clock struct{ synced atomic.Bool }

func (c *clock) Now() time.Time { return time.Now() }
func (c *clock) Synced() bool   { return c.synced.Load() }

// dialer is the VPN's egress dialer, on loopback, counting dials.
type dialer struct{ n atomic.Int32 }

func (d *dialer) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	d.n.Add(1)
	var nd net.Dialer
	return nd.DialContext(ctx, network, addr)
}
func (d *dialer) ListenPacket(context.Context, string, string) (net.PacketConn, error) {
	return nil, errors.New("no")
}
func (d *dialer) LookupNetIP(context.Context, string) ([]netip.Addr, error) {
	return nil, errors.New("no")
}

type recorder struct {
	mu     sync.Mutex
	events []audit.Event
}

func (r *recorder) Record(e audit.Event) {
	r.mu.Lock()
	r.events = append(r.events, e)
	r.mu.Unlock()
}

func (r *recorder) has(action string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, e := range r.events {
		if e.Action == action {
			return true
		}
	}
	return false
}

var cheap = vault.Params{Time: 1, MemoryKiB: 8 << 10, Threads: 1}

// box is a box's state directory, vault and backup engine.
type box struct {
	dir    string
	vault  *vault.Vault
	clock  *clock
	dialer *dialer
	audit  *recorder
	engine *backup.Engine
}

func newBox(t *testing.T) *box {
	b := &box{dir: t.TempDir(), clock: &clock{}, dialer: &dialer{}, audit: &recorder{}}
	b.clock.synced.Store(true)
	v, err := vault.Open(filepath.Join(b.dir, "vault"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { v.Close() })
	b.vault = v
	b.engine = backup.New(backup.Deps{Vault: v, VaultSnapshot: v.Snapshot, StateDir: b.dir, Clock: b.clock, Egress: b.dialer, Audit: b.audit,
		Host:  func() string { return "kestrel" },
		Extra: []repo.Item{{Name: "audit.db", Data: func() ([]byte, error) { return []byte("the audit log's copy"), nil }}}})
	return b
}

func writeState(t *testing.T, dir string) {
	for name, content := range map[string]string{
		"settings.json":               `{"lan_address":"10.201.86.1/24"}`,
		"setup.json":                  `{"done":true,"box_name":"kestrel"}`,
		"apps/files/alice/report.pdf": strings.Repeat("%PDF report ", 50000),
		"apps/chat/rooms/general.db":  "alice: the meeting is at 10\nbob: ok\n",
		"apps/documents/plan.yjs":     "\x01\x02\x03 a Yjs update log",
		"dhcp-leases.db":              "leases (not backed up)",
	} {
		p := filepath.Join(dir, filepath.FromSlash(name))
		os.MkdirAll(filepath.Dir(p), 0o700)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
}

func fakeS3(t *testing.T) *s3.Config {
	be := s3mem.New()
	be.CreateBucket("backups")
	srv := httptest.NewServer(gofakes3.New(be).Server())
	t.Cleanup(srv.Close)
	return &s3.Config{Endpoint: srv.URL, Bucket: "backups", Prefix: "kestrel", AccessKey: "key", SecretKey: "secret"}
}

func TestBackupAndFreshRestoreWithShares(t *testing.T) {
	ctx := context.Background()
	b := newBox(t)
	writeState(t, b.dir)
	if st := b.engine.Status(); !strings.Contains(st.Waiting, "locked") {
		t.Fatalf("before setup: %+v", st)
	}
	if err := b.vault.Init([]byte("owner passphrase"), cheap); err != nil {
		t.Fatal(err)
	}
	b.vault.Put("members", "alice", []byte(`{"name":"alice"}`))
	if err := b.engine.BackupNow(); !errors.Is(err, backup.ErrNotConfigured) {
		t.Fatalf("not set up: %v", err)
	}
	cfg := fakeS3(t)
	if err := b.engine.SetSettings(backup.Settings{S3: cfg}); err != nil {
		t.Fatal(err)
	}
	// The clock gate.
	b.clock.synced.Store(false)
	if err := b.engine.RunOnce(ctx, "test"); err == nil || !strings.Contains(err.Error(), "clock") {
		t.Fatalf("with the clock unsynced: %v", err)
	}
	if st := b.engine.Status(); !strings.Contains(st.Waiting, "synced through the VPN") {
		t.Fatalf("status: %+v", st)
	}
	b.clock.synced.Store(true)
	if err := b.engine.RunOnce(ctx, "test"); err != nil {
		t.Fatal(err)
	}
	st := b.engine.Status()
	if len(st.Targets) != 1 || st.Targets[0].Result != "ok" || !st.Targets[0].Stats.Verified || st.Targets[0].Snapshots != 1 {
		t.Fatalf("status after the backup: %+v", st)
	}
	if b.dialer.n.Load() == 0 {
		t.Fatal("the S3 target was not reached through the egress dialer")
	}
	if !b.audit.has("backup finished") || !b.audit.has("change backup settings") {
		t.Fatalf("audit: %+v", b.audit.events)
	}
	// Incremental: one file changed.
	os.WriteFile(filepath.Join(b.dir, "apps", "chat", "rooms", "general.db"), []byte("alice: moved to 11\n"), 0o600)
	if err := b.engine.RunOnce(ctx, "test"); err != nil {
		t.Fatal(err)
	}
	st = b.engine.Status()
	if s := st.Targets[0].Stats; s.Unchanged < 3 || s.NewBytes > 64<<10 {
		t.Fatalf("the second backup was not incremental: %+v", s)
	}

	// The recovery key, split 2 of 3.
	holders, err := b.engine.Split(2, []string{"alice", "bob", "carol"})
	if err != nil || len(holders) != 3 {
		t.Fatal(err)
	}
	var shares []string
	for _, m := range []string{"alice", "carol"} {
		ms, ok, err := b.engine.ShareFor(m)
		if err != nil || !ok || ms.Share == "" || ms.K != 2 {
			t.Fatalf("%s's share: %+v %v", m, ms, err)
		}
		shares = append(shares, ms.Share)
	}
	if err := b.engine.ShareSaved("alice"); err != nil {
		t.Fatal(err)
	}
	if ms, _, _ := b.engine.ShareFor("alice"); ms.Share != "" || !ms.Saved {
		t.Fatalf("a saved share is still kept: %+v", ms)
	}
	if _, ok, _ := b.engine.ShareFor("dave"); ok {
		t.Fatal("dave holds no share")
	}

	// The box burns. A fresh box, the same bucket, two members' shares.
	fresh := newBox(t)
	store, err := s3.New(*cfg, fresh.dialer, time.Now)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := backup.KeyFromInput("", shares[:1]); err == nil || !strings.Contains(err.Error(), "needs 2") {
		t.Fatalf("one share: %v", err)
	}
	bad := []byte(shares[1])
	bad[12] = map[bool]byte{true: 'B', false: 'A'}[bad[12] == 'A']
	if _, err := backup.KeyFromInput("", []string{shares[0], string(bad)}); err == nil || !strings.Contains(err.Error(), "share 2") {
		t.Fatalf("a wrong share: %v", err)
	}
	key, err := backup.KeyFromInput("", shares)
	if err != nil {
		t.Fatal(err)
	}
	res, err := backup.Restore(ctx, store, key, "", fresh.dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := fresh.vault.RestoreSnapshot([]byte("a new passphrase"), cheap, res.Vault); err != nil {
		t.Fatal(err)
	}
	if v, err := fresh.vault.Get("members", "alice"); err != nil || string(v) != `{"name":"alice"}` {
		t.Fatalf("the vault came back without alice: %q %v", v, err)
	}
	for _, f := range []string{"settings.json", "setup.json", "apps/files/alice/report.pdf", "apps/chat/rooms/general.db", "apps/documents/plan.yjs"} {
		want, _ := os.ReadFile(filepath.Join(b.dir, f))
		got, err := os.ReadFile(filepath.Join(fresh.dir, f))
		if err != nil || !bytes.Equal(got, want) {
			t.Errorf("%s after the restore: %v", f, err)
		}
	}
	if _, err := os.Stat(filepath.Join(fresh.dir, "dhcp-leases.db")); err == nil {
		t.Error("the DHCP leases were backed up")
	}
	if got, _ := os.ReadFile(filepath.Join(fresh.dir, "audit", "audit.db.restored")); string(got) != "the audit log's copy" {
		t.Errorf("the audit log: %q", got)
	}
	// The fresh box's engine, on the restored vault, carries on with the same
	// keys and repository.
	if err := fresh.engine.RunOnce(ctx, "after restore"); err != nil {
		t.Fatal(err)
	}
	snaps, err := fresh.engine.Snapshots(ctx, "s3")
	if err != nil || len(snaps) != 3 {
		t.Fatalf("snapshots after the restore: %d %v", len(snaps), err)
	}
}

func TestItemsDrillAndDamage(t *testing.T) {
	ctx := context.Background()
	b := newBox(t)
	writeState(t, b.dir)
	b.vault.Init([]byte("owner passphrase"), cheap)
	repoDir := t.TempDir()
	cfg := fakeS3(t)
	if err := b.engine.SetSettings(backup.Settings{S3: cfg}); err != nil {
		t.Fatal(err)
	}
	_ = repoDir
	if err := b.engine.RunOnce(ctx, "test"); err != nil {
		t.Fatal(err)
	}
	// Browse and put one file back.
	es, err := b.engine.Browse(ctx, "s3", "latest", "state/apps/chat/rooms")
	if err != nil || len(es) != 1 || es[0].Name != "general.db" {
		t.Fatalf("browse: %+v %v", es, err)
	}
	os.Remove(filepath.Join(b.dir, "apps", "chat", "rooms", "general.db"))
	item, err := b.engine.RestoreItem(ctx, "s3", "latest", "state/apps/chat/rooms/general.db")
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(item.Into); !strings.Contains(string(got), "meeting is at 10") {
		t.Fatalf("restored item at %s: %q", item.Into, got)
	}
	if _, err := b.engine.RestoreItem(ctx, "s3", "latest", "vault"); err == nil {
		t.Fatal("the vault was restored as an item")
	}
	if _, err := b.engine.RestoreItem(ctx, "s3", "latest", "state/../../etc"); err == nil {
		t.Fatal("a path out of the backup")
	}
	var buf bytes.Buffer
	if err := b.engine.WriteFile(ctx, "s3", "latest", "state/settings.json", &buf); err != nil || !strings.Contains(buf.String(), "10.201.86.1") {
		t.Fatalf("download: %q %v", buf.String(), err)
	}
	// The drill passes, then fails on a damaged pack.
	ds := b.engine.Drill(ctx)
	if !ds.OK || ds.Files == 0 {
		t.Fatalf("drill: %+v", ds)
	}
	if !b.audit.has("restore drill") {
		t.Fatal("the drill is not in the audit log")
	}
	store, _ := s3.New(*cfg, b.dialer, time.Now)
	packs, _ := store.List(ctx, "data/")
	for _, p := range packs {
		data, _ := store.Get(ctx, p.Name)
		data[len(data)/2] ^= 0xff
		store.Put(ctx, p.Name, data)
	}
	ds = b.engine.Drill(ctx)
	if ds.OK || len(ds.Problems) == 0 {
		t.Fatalf("the drill missed a damaged pack: %+v", ds)
	}
	if st := b.engine.Status(); st.Drill.OK {
		t.Fatal("the status shows the failed drill as passed")
	}
}

// The scheduler: a backup asked for runs at once; the next one is planned.
func TestScheduler(t *testing.T) {
	b := newBox(t)
	writeState(t, b.dir)
	b.vault.Init([]byte("owner passphrase"), cheap)
	if err := b.engine.SetSettings(backup.Settings{S3: fakeS3(t), At: "03:30"}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { b.engine.Run(ctx); close(done) }()
	defer func() { cancel(); <-done }()
	if err := b.engine.BackupNow(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		st := b.engine.Status()
		if len(st.Targets) == 1 && st.Targets[0].Result == "ok" && !st.Running {
			if st.Next.Hour() != 3 || st.Next.Minute() != 30 || !st.Next.After(time.Now()) {
				t.Fatalf("next run %v, want the next 03:30 UTC", st.Next)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the backup asked for did not run: %+v", st)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestSettingsValidation(t *testing.T) {
	for _, s := range []backup.Settings{
		{At: "25:00"},
		{Every: time.Minute},
		{Peers: []backup.PeerTarget{{Name: "x", Address: "b", Code: "short"}}},
		{Peers: []backup.PeerTarget{{Name: "", Address: "b", Code: strings.Repeat("c", 32)}}},
		{S3: &s3.Config{Endpoint: "ftp://x", Bucket: "b", AccessKey: "a", SecretKey: "s"}},
		{Keep: repo.Keep{Daily: -1}},
	} {
		if err := s.WithDefaults().Validate(); err == nil {
			t.Errorf("%+v accepted", s)
		}
	}
}

// A running app's database is taken from a copy made at one instant, not
// from its live file; uploads in progress are left out.
func TestAppStoresCopied(t *testing.T) {
	ctx := context.Background()
	b := newBox(t)
	writeState(t, b.dir)
	os.MkdirAll(filepath.Join(b.dir, "apps", "notes", "uploads"), 0o700)
	os.WriteFile(filepath.Join(b.dir, "apps", "notes", "store.db"), []byte("live file, half written"), 0o600)
	os.WriteFile(filepath.Join(b.dir, "apps", "notes", "uploads", "u1"), []byte("partial upload"), 0o600)
	b.engine = backup.New(backup.Deps{Vault: b.vault, VaultSnapshot: b.vault.Snapshot, StateDir: b.dir, Clock: b.clock, Egress: b.dialer, Audit: b.audit,
		AppStores: func(dir string) ([]string, error) {
			os.MkdirAll(filepath.Join(dir, "notes"), 0o700)
			return []string{"notes"}, os.WriteFile(filepath.Join(dir, "notes", "store.db"), []byte("consistent copy"), 0o600)
		}})
	b.vault.Init([]byte("owner passphrase"), cheap)
	cfg := fakeS3(t)
	if err := b.engine.SetSettings(backup.Settings{S3: cfg}); err != nil {
		t.Fatal(err)
	}
	if err := b.engine.RunOnce(ctx, "test"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(b.dir, "backup", "app-stores")); err == nil {
		t.Error("the copies were left behind")
	}
	key, _ := b.engine.RecoveryKey()
	fresh := newBox(t)
	store, _ := s3.New(*cfg, fresh.dialer, time.Now)
	if _, err := backup.Restore(ctx, store, key, "", fresh.dir); err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(filepath.Join(fresh.dir, "apps", "notes", "store.db")); string(got) != "consistent copy" {
		t.Fatalf("the app's database after the restore: %q", got)
	}
	if _, err := os.Stat(filepath.Join(fresh.dir, "apps", "notes", "uploads", "u1")); err == nil {
		t.Error("an upload in progress was backed up")
	}
}
