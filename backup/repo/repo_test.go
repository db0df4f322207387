package repo

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io/fs"
	mrand "math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/redoubt/redoubt/backup/target"
)

func key() []byte {
	k := make([]byte, MasterKeySize)
	rand.Read(k)
	return k
}

// tree writes a small tree of mixed files: random (incompressible), text
// (compressible), duplicates, an empty file, a symlink, nested directories.
func writeTree(t testing.TB, dir string, seed uint64, big int) {
	t.Helper()
	r := mrand.New(mrand.NewPCG(seed, seed))
	must := func(err error) {
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.MkdirAll(filepath.Join(dir, "apps", "files", "docs"), 0o755))
	must(os.MkdirAll(filepath.Join(dir, "apps", "chat"), 0o700))
	rnd := make([]byte, big)
	for i := range rnd {
		rnd[i] = byte(r.Uint32())
	}
	must(os.WriteFile(filepath.Join(dir, "apps", "files", "photo.jpg"), rnd, 0o644))
	must(os.WriteFile(filepath.Join(dir, "apps", "files", "copy-of-photo.jpg"), rnd, 0o644))
	var text bytes.Buffer
	for i := 0; text.Len() < big/2; i++ {
		fmt.Fprintf(&text, "line %d: the team's notes, %d\n", i, r.IntN(1000))
	}
	must(os.WriteFile(filepath.Join(dir, "apps", "files", "docs", "notes.txt"), text.Bytes(), 0o600))
	must(os.WriteFile(filepath.Join(dir, "apps", "chat", "room.log"), []byte("alice: hello\nbob: hi\n"), 0o600))
	must(os.WriteFile(filepath.Join(dir, "empty"), nil, 0o600))
	must(os.WriteFile(filepath.Join(dir, "settings.json"), []byte(`{"lan":"10.201.86.1/24"}`), 0o600))
	os.Remove(filepath.Join(dir, "link"))
	must(os.Symlink("settings.json", filepath.Join(dir, "link")))
}

// sameTree compares two directories: contents, modes, links.
func sameTree(t testing.TB, a, b string) {
	t.Helper()
	err := filepath.WalkDir(a, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(a, p)
		q := filepath.Join(b, rel)
		fa, _ := os.Lstat(p)
		fb, err := os.Lstat(q)
		if err != nil {
			return fmt.Errorf("%s missing from the restore", rel)
		}
		if fa.Mode() != fb.Mode() {
			return fmt.Errorf("%s: mode %v, restored %v", rel, fa.Mode(), fb.Mode())
		}
		switch {
		case fa.Mode().IsRegular():
			x, _ := os.ReadFile(p)
			y, _ := os.ReadFile(q)
			if !bytes.Equal(x, y) {
				return fmt.Errorf("%s differs", rel)
			}
			if !fa.ModTime().Equal(fb.ModTime()) {
				return fmt.Errorf("%s: time %v, restored %v", rel, fa.ModTime(), fb.ModTime())
			}
		case fa.Mode()&fs.ModeSymlink != 0:
			x, _ := os.Readlink(p)
			y, _ := os.Readlink(q)
			if x != y {
				return fmt.Errorf("%s: link %q, restored %q", rel, x, y)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func initRepo(t testing.TB, store target.Store) (*Repo, []byte, []byte) {
	t.Helper()
	master, rec := key(), key()
	r, err := Init(context.Background(), store, master, rec, "ABCD1234")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.Close)
	return r, master, rec
}

func TestBackupRestoreIncremental(t *testing.T) {
	ctx := context.Background()
	src := t.TempDir()
	writeTree(t, src, 1, 3<<20)
	store := target.Dir{Root: t.TempDir()}
	r, master, rec := initRepo(t, store)
	vaultBytes := []byte("sealed vault records")
	items := []Item{
		{Name: "state", Path: src, Exclude: func(rel string) bool { return rel == "empty" }},
		{Name: "vault.json", Data: func() ([]byte, error) { return bytes.Clone(vaultBytes), nil }},
	}
	s1, err := r.Backup(ctx, items, Options{Host: "kestrel", Verify: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("first: %+v", s1.Stats)
	// The duplicate photo is stored once; text is compressed.
	if s1.Stats.Stored > int64(3<<20)+int64(3<<20)/2 || !s1.Stats.Verified {
		t.Errorf("stored %d bytes for 3 MiB random + 1.5 MiB text + a duplicate", s1.Stats.Stored)
	}
	// Restore everything and compare.
	dst := filepath.Join(t.TempDir(), "restored")
	rd, err := r.NewReader(ctx, s1)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := rd.Restore(ctx, "state", dst); err != nil {
		t.Fatal(err)
	}
	os.Remove(filepath.Join(src, "empty")) // excluded
	sameTree(t, src, dst)
	n, err := rd.Lookup(ctx, "vault.json")
	if err != nil {
		t.Fatal(err)
	}
	if b, err := rd.ReadAll(ctx, n); err != nil || !bytes.Equal(b, vaultBytes) {
		t.Fatalf("vault.json: %q %v", b, err)
	}
	// A single item.
	n, err = rd.Lookup(ctx, "state/apps/chat/room.log")
	if err != nil {
		t.Fatal(err)
	}
	if b, _ := rd.ReadAll(ctx, n); string(b) != "alice: hello\nbob: hi\n" {
		t.Fatalf("room.log: %q", b)
	}
	if _, err := rd.Lookup(ctx, "state/nope"); !errors.Is(err, ErrNoPath) {
		t.Fatalf("a missing path: %v", err)
	}

	// 1 % of one file changes: only it is read, and only a chunk or two sent.
	p := filepath.Join(src, "apps", "files", "photo.jpg")
	b, _ := os.ReadFile(p)
	copy(b[len(b)/2:], bytes.Repeat([]byte{0xAA}, len(b)/100))
	os.WriteFile(p, b, 0o644)
	s2, err := r.Backup(ctx, items, Options{Host: "kestrel", Verify: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("second: %+v", s2.Stats)
	if s2.Parent != s1.Name || s2.Stats.Unchanged != s2.Stats.Files-1 || s2.Stats.NewBytes > 3*maxChunk {
		t.Errorf("incremental: parent %q, %d of %d files unchanged, %d new bytes", s2.Parent, s2.Stats.Unchanged, s2.Stats.Files, s2.Stats.NewBytes)
	}
	dst2 := filepath.Join(t.TempDir(), "restored")
	rd2, _ := r.NewReader(ctx, s2)
	if _, err := rd2.Restore(ctx, "state", dst2); err != nil {
		t.Fatal(err)
	}
	sameTree(t, src, dst2)

	// The recovery key opens it; other keys do not.
	if m, err := MasterFromRecovery(ctx, store, rec); err != nil || !bytes.Equal(m, master) {
		t.Fatalf("recovery: %v", err)
	}
	if _, err := MasterFromRecovery(ctx, store, key()); !errors.Is(err, ErrWrongKey) || !strings.Contains(err.Error(), "ABCD1234") {
		t.Fatalf("another recovery key: %v", err)
	}
	if _, err := Open(ctx, store, key()); !errors.Is(err, ErrWrongKey) {
		t.Fatalf("another master key: %v", err)
	}
	if _, err := Open(ctx, target.Dir{Root: t.TempDir()}, master); !errors.Is(err, ErrNoRepository) {
		t.Fatalf("an empty store: %v", err)
	}
	res, err := r.Check(ctx, CheckOptions{ReadPacks: 1, SampleFiles: 3})
	if err != nil || !res.OK() || res.FilesRestored != 3 {
		t.Fatalf("check: %+v %v", res, err)
	}
}

func TestTamperingIsCaught(t *testing.T) {
	ctx := context.Background()
	src := t.TempDir()
	writeTree(t, src, 2, 1<<20)
	root := t.TempDir()
	store := target.Dir{Root: root}
	r, _, _ := initRepo(t, store)
	s, err := r.Backup(ctx, []Item{{Name: "state", Path: src}}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	packs, _ := store.List(ctx, "data/")
	p := filepath.Join(root, filepath.FromSlash(packs[0].Name))
	b, _ := os.ReadFile(p)
	b[100] ^= 1
	os.WriteFile(p, b, 0o600)
	res, err := r.Check(ctx, CheckOptions{ReadPacks: 1})
	if err != nil || res.OK() {
		t.Fatalf("a flipped bit went unseen: %+v %v", res, err)
	}
	t.Logf("check says: %v", res.Problems)
	rd, _ := r.NewReader(ctx, s)
	if _, err := rd.Restore(ctx, "", filepath.Join(t.TempDir(), "x")); !errors.Is(err, ErrDamaged) {
		t.Fatalf("restoring from an altered pack: %v", err)
	}
	// A snapshot swapped for another object's bytes does not open.
	snaps, _ := store.List(ctx, "snapshots/")
	idx, _ := store.List(ctx, "index/")
	ib, _ := store.Get(ctx, idx[0].Name)
	store.Put(ctx, snaps[0].Name, ib)
	if _, err := r.LoadSnapshot(ctx, snaps[0].Name); !errors.Is(err, ErrDamaged) {
		t.Fatalf("a swapped object: %v", err)
	}
}

func TestForgetPrune(t *testing.T) {
	ctx := context.Background()
	src := t.TempDir()
	store := target.Dir{Root: t.TempDir()}
	r, _, _ := initRepo(t, store)
	day := time.Date(2026, 11, 1, 3, 0, 0, 0, time.UTC)
	for i := 0; i < 4; i++ {
		writeTree(t, src, uint64(10+i), 1<<20) // new random content each time
		now := day.AddDate(0, 0, i)
		if _, err := r.Backup(ctx, []Item{{Name: "state", Path: src}}, Options{Host: "k", Now: func() time.Time { return now }}); err != nil {
			t.Fatal(err)
		}
	}
	before, _ := store.List(ctx, "data/")
	n, err := r.Forget(ctx, Keep{Daily: 2})
	if err != nil || n != 2 {
		t.Fatalf("forget: %d %v", n, err)
	}
	st, err := r.Prune(ctx)
	if err != nil {
		t.Fatal(err)
	}
	after, _ := store.List(ctx, "data/")
	t.Logf("prune: %+v; packs %d → %d", st, len(before), len(after))
	if st.BytesFreed < 1<<20 || st.PacksDeleted == 0 {
		t.Fatalf("prune freed too little: %+v", st)
	}
	res, err := r.Check(ctx, CheckOptions{ReadPacks: 1, SampleFiles: 10})
	if err != nil || !res.OK() || res.Snapshots != 2 {
		t.Fatalf("after prune: %+v %v", res, err)
	}
	snaps, _ := r.Snapshots(ctx)
	rd, _ := r.NewReader(ctx, snaps[len(snaps)-1])
	dst := filepath.Join(t.TempDir(), "r")
	if _, err := rd.Restore(ctx, "state", dst); err != nil {
		t.Fatal(err)
	}
	sameTree(t, src, dst)
}

// An edit in the middle of a large file changes one or two chunks.
func TestChunkerResynchronizes(t *testing.T) {
	k, _ := newKeys(key())
	data := make([]byte, 16<<20)
	rand.Read(data)
	ids := func(b []byte) map[ID]bool {
		out := map[ID]bool{}
		c := newChunker(bytes.NewReader(b), &k.gear, nil)
		total := 0
		for {
			ch, err := c.Next()
			if err != nil {
				break
			}
			if len(ch) > maxChunk || (len(ch) < minChunk && total+len(ch) != len(b)) {
				t.Fatalf("a chunk of %d bytes", len(ch))
			}
			total += len(ch)
			out[k.id(ch)] = true
		}
		if total != len(b) {
			t.Fatalf("chunks cover %d of %d bytes", total, len(b))
		}
		return out
	}
	a := ids(data)
	edited := append(append(append([]byte{}, data[:7<<20]...), []byte("inserted bytes")...), data[7<<20:]...)
	b := ids(edited)
	shared := 0
	for id := range b {
		if a[id] {
			shared++
		}
	}
	t.Logf("%d chunks, %d after the edit, %d shared", len(a), len(b), shared)
	if len(a) < 8 || len(b)-shared > 2 {
		t.Fatalf("an insertion changed %d of %d chunks", len(b)-shared, len(b))
	}
}

// failingStore fails every Put after n.
type failingStore struct {
	target.Dir
	n atomic.Int32
}

func (f *failingStore) Put(ctx context.Context, name string, data []byte) error {
	if strings.HasPrefix(name, "data/") && f.n.Add(-1) < 0 {
		return errors.New("connection lost")
	}
	return f.Dir.Put(ctx, name, data)
}

// An interrupted backup leaves the repository as it was, and the next one
// reuses the packs it sent.
func TestInterruptedBackup(t *testing.T) {
	ctx := context.Background()
	src := t.TempDir()
	writeTree(t, src, 3, 1<<20)
	dir := target.Dir{Root: t.TempDir()}
	r, master, _ := initRepo(t, dir)
	s1, err := r.Backup(ctx, []Item{{Name: "state", Path: src}}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	big := make([]byte, 40<<20)
	rand.Read(big)
	os.WriteFile(filepath.Join(src, "big.bin"), big, 0o600)
	fs := &failingStore{Dir: dir}
	fs.n.Store(1)
	r2, err := Open(ctx, fs, master)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r2.Backup(ctx, []Item{{Name: "state", Path: src}}, Options{}); err == nil || !strings.Contains(err.Error(), "connection lost") {
		t.Fatalf("the failing backup: %v", err)
	}
	snaps, _ := r.Snapshots(ctx)
	if len(snaps) != 1 || snaps[0].Name != s1.Name {
		t.Fatalf("snapshots after the failure: %d", len(snaps))
	}
	res, err := r.Check(ctx, CheckOptions{ReadPacks: 1, SampleFiles: 5})
	if err != nil || !res.OK() {
		t.Fatalf("check after the failure: %+v %v", res, err)
	}
	s3, err := r.Backup(ctx, []Item{{Name: "state", Path: src}}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if s3.Stats.NewBytes >= 40<<20 {
		t.Errorf("the pack sent before the failure was not reused: %d new bytes", s3.Stats.NewBytes)
	}
}

// TestKill9 kills a backup process with SIGKILL while it writes, then
// checks the repository is whole and the next backup completes.
func TestKill9(t *testing.T) {
	if os.Getenv("REDOUBT_KILL9_CHILD") != "" {
		return
	}
	ctx := context.Background()
	src := t.TempDir()
	writeTree(t, src, 4, 1<<20)
	root := t.TempDir()
	dir := target.Dir{Root: root}
	r, master, _ := initRepo(t, dir)
	if _, err := r.Backup(ctx, []Item{{Name: "state", Path: src}}, Options{}); err != nil {
		t.Fatal(err)
	}
	big := make([]byte, 96<<20)
	rand.Read(big)
	os.WriteFile(filepath.Join(src, "big.bin"), big, 0o600)
	kf := filepath.Join(t.TempDir(), "key")
	os.WriteFile(kf, master, 0o600)
	cmd := exec.Command(os.Args[0], "-test.run=^TestKill9Child$")
	cmd.Env = append(os.Environ(), "REDOUBT_KILL9_CHILD=1", "KILL9_SRC="+src, "KILL9_REPO="+root, "KILL9_KEY="+kf)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// Kill it once it has written a pack or two, mid-stream.
	deadline := time.Now().Add(60 * time.Second)
	for {
		objs, _ := dir.List(ctx, "data/")
		if len(objs) >= 3 || time.Now().After(deadline) {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	cmd.Process.Signal(syscall.SIGKILL)
	err := cmd.Wait()
	t.Logf("child: %v", err)
	if snaps, _ := r.Snapshots(ctx); len(snaps) != 1 {
		t.Fatalf("the killed backup left %d snapshots (its own was not to be written)", len(snaps))
	}
	res, err := r.Check(ctx, CheckOptions{ReadPacks: 1, SampleFiles: 5})
	if err != nil || !res.OK() {
		t.Fatalf("the repository after kill -9: %+v %v", res, err)
	}
	s, err := r.Backup(ctx, []Item{{Name: "state", Path: src}}, Options{Verify: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("after kill -9: %+v", s.Stats)
	rd, _ := r.NewReader(ctx, s)
	dst := filepath.Join(t.TempDir(), "r")
	if _, err := rd.Restore(ctx, "state", dst); err != nil {
		t.Fatal(err)
	}
	sameTree(t, src, dst)
}

// TestKill9Child is the backup TestKill9 kills.
func TestKill9Child(t *testing.T) {
	if os.Getenv("REDOUBT_KILL9_CHILD") == "" {
		t.Skip("run by TestKill9")
	}
	master, _ := os.ReadFile(os.Getenv("KILL9_KEY"))
	r, err := Open(context.Background(), &slowStore{Dir: target.Dir{Root: os.Getenv("KILL9_REPO")}}, master)
	if err != nil {
		t.Fatal(err)
	}
	r.Backup(context.Background(), []Item{{Name: "state", Path: os.Getenv("KILL9_SRC")}}, Options{})
	t.Fatal("the backup finished before it was killed")
}

// slowStore makes the child's uploads take a while, so the kill lands
// mid-backup.
type slowStore struct{ target.Dir }

func (s *slowStore) Put(ctx context.Context, name string, data []byte) error {
	if strings.HasPrefix(name, "data/") {
		time.Sleep(200 * time.Millisecond)
	}
	return s.Dir.Put(ctx, name, data)
}

func BenchmarkBackup(b *testing.B) {
	ctx := context.Background()
	src := b.TempDir()
	writeTree(b, src, 5, 8<<20)
	for i := 0; i < b.N; i++ {
		r, _, _ := initRepo(b, target.Dir{Root: b.TempDir()})
		s, err := r.Backup(ctx, []Item{{Name: "state", Path: src}}, Options{})
		if err != nil {
			b.Fatal(err)
		}
		b.SetBytes(s.Stats.Bytes)
	}
}
