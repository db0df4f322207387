package store

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	mrand "math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/redoubt/redoubt/apps"
)

func testKey() []byte {
	k := make([]byte, KeySize)
	rand.Read(k)
	return k
}

func openT(t testing.TB, dir string, key []byte) *Store {
	t.Helper()
	s, err := Open(dir, key, Options{Logger: slog.New(slog.NewTextHandler(tlog{t}, nil))})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

type tlog struct{ t testing.TB }

func (l tlog) Write(p []byte) (int, error) { l.t.Log(strings.TrimSpace(string(p))); return len(p), nil }

func TestRecords(t *testing.T) {
	dir, key := t.TempDir(), testKey()
	s := openT(t, dir, key)
	r := s.Records()
	secret := "member:alex/salary-review-2026"
	if err := r.Put(secret, []byte("the value nobody may read")); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"b/2", "b/1", "a", "c"} {
		if err := r.Put(k, []byte(k)); err != nil {
			t.Fatal(err)
		}
	}
	if v, err := r.Get("b/1"); err != nil || string(v) != "b/1" {
		t.Errorf("get: %q %v", v, err)
	}
	if _, err := r.Get("nope"); !errors.Is(err, apps.ErrNotFound) {
		t.Errorf("a missing key: %v", err)
	}
	if l, _ := r.List("b/"); !slices.Equal(l, []string{"b/1", "b/2"}) {
		t.Errorf("list b/: %q", l)
	}
	if l, _ := r.List(""); len(l) != 5 {
		t.Errorf("list all: %q", l)
	}
	// Update: a counter, atomically.
	for range 3 {
		if err := r.Update("n", func(old []byte, ok bool) ([]byte, error) {
			n, _ := strconv.Atoi(string(old))
			return []byte(strconv.Itoa(n + 1)), nil
		}); err != nil {
			t.Fatal(err)
		}
	}
	if v, _ := r.Get("n"); string(v) != "3" {
		t.Errorf("counter: %q", v)
	}
	boom := errors.New("no")
	if err := r.Update("n", func([]byte, bool) ([]byte, error) { return []byte("9"), boom }); !errors.Is(err, boom) {
		t.Errorf("update's error: %v", err)
	}
	if v, _ := r.Get("n"); string(v) != "3" {
		t.Errorf("a failed update changed the value: %q", v)
	}
	if err := r.Delete("a"); err != nil {
		t.Fatal(err)
	}
	if err := r.Delete("a"); err != nil {
		t.Errorf("deleting twice: %v", err)
	}
	for _, bad := range []string{"", "nul\x00", string([]byte{0xff}), strings.Repeat("k", MaxKey+1)} {
		if err := r.Put(bad, nil); err == nil {
			t.Errorf("key %q accepted", bad)
		}
	}
	if err := r.Put("big", make([]byte, MaxRecord+1)); err == nil {
		t.Error("an oversized record was accepted")
	}

	// Nothing readable on disk.
	s.Close(nil)
	raw, _ := os.ReadFile(filepath.Join(dir, "store.db"))
	for _, plain := range []string{"salary", "nobody may read", "b/1"} {
		if bytes.Contains(raw, []byte(plain)) {
			t.Errorf("store.db shows %q", plain)
		}
	}
	// Reopened with the key, all there; with another key, refused.
	if _, err := Open(dir, testKey(), Options{}); err == nil || !strings.Contains(err.Error(), "key does not open") {
		t.Errorf("another key: %v", err)
	}
	s = openT(t, dir, key)
	defer s.Close(nil)
	if l, _ := s.Records().List(""); !slices.Equal(l, []string{"b/1", "b/2", "c", secret, "n"}) {
		t.Errorf("after reopening: %q", l)
	}
	s.Close(apps.ErrLocked)
	if _, err := s.Records().Get("c"); !errors.Is(err, apps.ErrLocked) {
		t.Errorf("closed as locked: %v", err)
	}
	if err := s.Records().Put("c", nil); !errors.Is(err, apps.ErrLocked) {
		t.Errorf("closed as locked: %v", err)
	}
}

// pattern is n deterministic bytes for name.
func pattern(name string, n int64) []byte {
	out := make([]byte, 0, n)
	seed := sha256.Sum256([]byte(name))
	for int64(len(out)) < n {
		seed = sha256.Sum256(seed[:])
		out = append(out, seed[:]...)
	}
	return out[:n]
}

func putBlob(t testing.TB, b apps.Blobs, name string, data []byte) apps.BlobInfo {
	t.Helper()
	u, err := b.Create()
	if err != nil {
		t.Fatal(err)
	}
	// Odd-sized writes, crossing chunk boundaries.
	for rest := data; len(rest) > 0; {
		n := min(len(rest), 7777)
		if _, err := u.Write(rest[:n]); err != nil {
			t.Fatal(err)
		}
		rest = rest[n:]
	}
	info, err := u.Commit(name)
	if err != nil {
		t.Fatal(err)
	}
	return info
}

func readBlob(b apps.Blobs, name string) ([]byte, error) {
	r, err := b.Open(name)
	if err != nil {
		return nil, err
	}
	defer r.Close()
	return io.ReadAll(r)
}

func TestBlobs(t *testing.T) {
	dir, key := t.TempDir(), testKey()
	s := openT(t, dir, key)
	defer s.Close(nil)
	b := s.Blobs()
	sizes := []int64{0, 1, ChunkSize - 1, ChunkSize, ChunkSize + 1, 3*ChunkSize + 12345}
	for _, n := range sizes {
		name := fmt.Sprintf("sizes/%d", n)
		info := putBlob(t, b, name, pattern(name, n))
		if info.Size != n || info.ETag == "" {
			t.Errorf("%s: %+v", name, info)
		}
		got, err := readBlob(b, name)
		if err != nil || !bytes.Equal(got, pattern(name, n)) {
			t.Errorf("%s read back: %d bytes, %v", name, len(got), err)
		}
	}
	// Random access.
	name := fmt.Sprintf("sizes/%d", sizes[len(sizes)-1])
	want := pattern(name, sizes[len(sizes)-1])
	r, _ := b.Open(name)
	for range 50 {
		off := mrand.Int64N(int64(len(want)))
		n := mrand.IntN(3 * ChunkSize)
		p := make([]byte, n)
		k, err := r.ReadAt(p, off)
		end := min(off+int64(n), int64(len(want)))
		if int64(k) != end-off || (err != nil && err != io.EOF) || !bytes.Equal(p[:k], want[off:end]) {
			t.Fatalf("ReadAt(%d, %d): %d %v", n, off, k, err)
		}
	}
	r.Close()
	// Ranges over HTTP, as an app serves them.
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		f, err := b.Open(name)
		if err != nil {
			http.Error(w, err.Error(), 500)
			return
		}
		defer f.Close()
		http.ServeContent(w, req, "x.bin", f.Info().Modified, f)
	}))
	defer srv.Close()
	req, _ := http.NewRequest("GET", srv.URL, nil)
	req.Header.Set("Range", "bytes=65530-131080")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusPartialContent || !bytes.Equal(body, want[65530:131081]) {
		t.Errorf("range: %d, %d bytes", resp.StatusCode, len(body))
	}

	// List, rename over another, delete; usage follows.
	if l, _ := b.List("sizes/"); len(l) != len(sizes) {
		t.Errorf("list: %d", len(l))
	}
	before := b.Usage()
	if err := b.Rename("sizes/1", "sizes/0"); err != nil {
		t.Fatal(err)
	}
	if got, _ := readBlob(b, "sizes/0"); !bytes.Equal(got, pattern("sizes/1", 1)) {
		t.Errorf("renamed over another: %q", got)
	}
	if _, err := b.Stat("sizes/1"); !errors.Is(err, apps.ErrNotFound) {
		t.Errorf("the old name stays: %v", err)
	}
	after := b.Usage()
	if after.Blobs != before.Blobs-1 || after.Bytes != before.Bytes-DiskSize(0) {
		t.Errorf("usage after the rename: %+v, before %+v", after, before)
	}
	if err := b.Delete("sizes/0"); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Open("sizes/0"); !errors.Is(err, apps.ErrNotFound) {
		t.Errorf("deleted: %v", err)
	}
	var sum int64
	filepath.WalkDir(filepath.Join(dir, "blobs"), func(p string, d fs.DirEntry, err error) error {
		if fi, err := os.Stat(p); err == nil && !d.IsDir() {
			sum += fi.Size()
		}
		return nil
	})
	if u := b.Usage(); u.Bytes != sum || u.DiskFree <= 0 {
		t.Errorf("usage %+v; the files take %d", u, sum)
	}

	// Locked: reads of an open blob fail from the next chunk.
	r, _ = b.Open(name)
	r.Read(make([]byte, 10))
	s.Close(apps.ErrLocked)
	if _, err := r.ReadAt(make([]byte, 10), 3*ChunkSize); !errors.Is(err, apps.ErrLocked) {
		t.Errorf("an open blob after the lock: %v", err)
	}
	r.Close()
	if _, err := b.Open(name); !errors.Is(err, apps.ErrLocked) {
		t.Errorf("open after the lock: %v", err)
	}
}

func TestBlobsNothingInPlain(t *testing.T) {
	dir := t.TempDir()
	s := openT(t, dir, testKey())
	b := s.Blobs()
	secret := bytes.Repeat([]byte("confidential source notes "), 10000)
	putBlob(t, b, "sources/whistleblower.txt", secret)
	s.Close(nil)
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if d.IsDir() {
			if strings.Contains(p, "whistleblower") {
				t.Errorf("a path shows the name: %s", p)
			}
			return nil
		}
		raw, _ := os.ReadFile(p)
		for _, plain := range []string{"confidential source", "whistleblower"} {
			if bytes.Contains(raw, []byte(plain)) {
				t.Errorf("%s shows %q", p, plain)
			}
		}
		return nil
	})
}

func TestBlobsTampering(t *testing.T) {
	dir, key := t.TempDir(), testKey()
	s := openT(t, dir, key)
	defer s.Close(nil)
	b := s.Blobs()
	a := putBlob(t, b, "a", pattern("a", 3*ChunkSize+5))
	c := putBlob(t, b, "c", pattern("c", 3*ChunkSize+5))
	path := func(i apps.BlobInfo) string {
		for _, e := range s.index {
			if e.Name == i.Name {
				return filepath.Join(dir, "blobs", e.ID)
			}
		}
		t.Fatal("no file")
		return ""
	}
	pa, pc := path(a), path(c)
	orig, _ := os.ReadFile(pa)
	other, _ := os.ReadFile(pc)
	for _, tc := range []struct {
		name string
		data []byte
	}{
		{"a flipped bit", func() []byte { d := slices.Clone(orig); d[headerSize+ChunkSize+100] ^= 1; return d }()},
		{"the last chunk dropped", orig[:headerSize+3*chunkDisk]},
		{"two chunks swapped", func() []byte {
			d := slices.Clone(orig)
			c1 := slices.Clone(d[headerSize : headerSize+chunkDisk])
			copy(d[headerSize:], d[headerSize+chunkDisk:headerSize+2*chunkDisk])
			copy(d[headerSize+chunkDisk:], c1)
			return d
		}()},
		{"another blob's file", other},
		{"another blob's chunks under this header", append(slices.Clone(orig[:headerSize]), other[headerSize:]...)},
	} {
		os.WriteFile(pa, tc.data, 0o600)
		if got, err := readBlob(b, "a"); err == nil {
			t.Errorf("%s: read %d bytes without an error", tc.name, len(got))
		}
	}
	os.WriteFile(pa, orig, 0o600)
	if got, err := readBlob(b, "a"); err != nil || !bytes.Equal(got, pattern("a", 3*ChunkSize+5)) {
		t.Errorf("restored: %v", err)
	}
}

func TestUploadResume(t *testing.T) {
	dir, key := t.TempDir(), testKey()
	s := openT(t, dir, key)
	b := s.Blobs()
	data := pattern("big", 5*ChunkSize+999)
	u, err := b.Create()
	if err != nil {
		t.Fatal(err)
	}
	id := u.ID()
	u.Write(data[:2*ChunkSize+10])
	if err := u.Close(); err != nil { // a dropped connection
		t.Fatal(err)
	}
	if ups, _ := b.Uploads(); len(ups) != 1 || ups[0].ID != id || ups[0].Size != 2*ChunkSize+10 {
		t.Errorf("uploads: %+v", ups)
	}
	if _, err := b.Open("big"); !errors.Is(err, apps.ErrNotFound) {
		t.Errorf("an upload is visible before its commit: %v", err)
	}
	// The box restarts; the upload resumes where it stopped, to the byte.
	s.Close(nil)
	s = openT(t, dir, key)
	b = s.Blobs()
	u, err = b.Resume(id)
	if err != nil {
		t.Fatal(err)
	}
	if u.Size() != 2*ChunkSize+10 {
		t.Fatalf("resumed at %d", u.Size())
	}
	if _, err := b.Resume(id); err == nil {
		t.Error("an upload resumed twice at once")
	}
	u.Write(data[u.Size() : 4*ChunkSize])
	u.Flush()
	u.Write(data[4*ChunkSize:])
	if _, err := u.Commit("big"); err != nil {
		t.Fatal(err)
	}
	if got, err := readBlob(b, "big"); err != nil || !bytes.Equal(got, data) {
		t.Errorf("resumed upload: %d bytes, %v", len(got), err)
	}
	if ups, _ := b.Uploads(); len(ups) != 0 {
		t.Errorf("uploads after the commit: %+v", ups)
	}

	// A torn last chunk (a crash mid-write) is dropped; the upload goes on
	// from the whole chunks before it.
	u, _ = b.Create()
	id = u.ID()
	u.Write(data[:3*ChunkSize+7])
	u.Flush()
	u.Close()
	f, _ := os.OpenFile(filepath.Join(dir, "uploads", id), os.O_RDWR, 0)
	fi, _ := f.Stat()
	f.Truncate(fi.Size() - 3) // the tail chunk torn
	f.Write(nil)
	f.Close()
	u, err = b.Resume(id)
	if err != nil || u.Size() != 3*ChunkSize {
		t.Fatalf("after a torn tail: %v, at %d", err, u.Size())
	}
	// A damaged whole chunk after the last flush: resumes before it.
	u.Write(data[3*ChunkSize : 5*ChunkSize])
	u.(*upload).f.Sync()
	f = u.(*upload).f
	f.WriteAt([]byte{1, 2, 3}, headerSize+3*chunkDisk+50) // chunk 3, written after the flush
	u.(*upload).done = true
	f.Close()
	s.mu.Lock()
	delete(s.writing, id)
	s.mu.Unlock()
	u, err = b.Resume(id)
	if err != nil || u.Size() != 3*ChunkSize {
		t.Fatalf("after a damaged chunk: %v, at %d", err, u.Size())
	}
	u.Write(data[3*ChunkSize:])
	if _, err := u.Commit("big2"); err != nil {
		t.Fatal(err)
	}
	if got, err := readBlob(b, "big2"); err != nil || !bytes.Equal(got, data) {
		t.Errorf("after the repairs: %d bytes, %v", len(got), err)
	}
	// Aborted: gone, its space back.
	u, _ = b.Create()
	u.Write(data)
	before := b.Usage().Bytes
	if err := u.Abort(); err != nil {
		t.Fatal(err)
	}
	if after := b.Usage().Bytes; after >= before {
		t.Errorf("usage after an abort: %d, before %d", after, before)
	}
	if ups, _ := b.Uploads(); len(ups) != 0 {
		t.Errorf("uploads after the abort: %+v", ups)
	}
	s.Close(nil)
}

func TestQuota(t *testing.T) {
	s := openT(t, t.TempDir(), testKey())
	defer s.Close(nil)
	s.SetQuota(3 * chunkDisk)
	b := s.Blobs()
	putBlob(t, b, "one", pattern("one", ChunkSize))
	u, _ := b.Create()
	_, err := u.Write(pattern("two", 3*ChunkSize))
	if !errors.Is(err, apps.ErrQuota) {
		t.Fatalf("past the quota: %v", err)
	}
	u.Abort()
	if got, err := readBlob(b, "one"); err != nil || len(got) != ChunkSize {
		t.Errorf("the blob before: %v", err)
	}
	if us := b.Usage(); us.Quota != 3*chunkDisk || us.Available() > us.Quota-us.Bytes {
		t.Errorf("usage: %+v", us)
	}
	s.SetQuota(0)
	putBlob(t, b, "two", pattern("two", 3*ChunkSize))
}

// TestDiskFull fills a small file system: the write fails saying so, nothing
// is half-written, and the store works again once space is freed.
func TestDiskFull(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("mounting a small tmpfs needs root (make test runs as root in CI)")
	}
	dir := t.TempDir()
	if err := unix.Mount("tmpfs", dir, "tmpfs", 0, "size=2m,mode=0700"); err != nil {
		t.Skipf("cannot mount a tmpfs here: %v", err)
	}
	defer unix.Unmount(dir, unix.MNT_DETACH)
	s := openT(t, filepath.Join(dir, "app"), testKey())
	defer s.Close(nil)
	b := s.Blobs()
	putBlob(t, b, "small", pattern("small", 100000))
	u, _ := b.Create()
	var err error
	for i := 0; err == nil && i < 100; i++ {
		_, err = u.Write(pattern("big", ChunkSize))
	}
	if !errors.Is(err, apps.ErrDiskFull) || !strings.Contains(err.Error(), "disk is full") {
		t.Fatalf("filling the disk: %v", err)
	}
	if _, err := u.Commit("big"); err == nil {
		t.Error("committed on a full disk")
	}
	u.Abort()
	if _, err := b.Stat("big"); !errors.Is(err, apps.ErrNotFound) {
		t.Errorf("half a blob: %v", err)
	}
	if got, err := readBlob(b, "small"); err != nil || len(got) != 100000 {
		t.Errorf("the blob from before: %v", err)
	}
	putBlob(t, b, "again", pattern("again", 200000))
}

// TestKill9 kills a process writing and committing blobs (kill -9, at
// random moments) again and again: after each, the store opens, every name
// has its whole blob, and uploads resume.
func TestKill9(t *testing.T) {
	if os.Getenv("STORE_KILL_CHILD") != "" {
		killChild()
		return
	}
	if testing.Short() {
		t.Skip("short")
	}
	dir, key := t.TempDir(), testKey()
	os.WriteFile(filepath.Join(dir, "key"), key, 0o600)
	exe, _ := os.Executable()
	for round := range 6 {
		cmd := exec.Command(exe, "-test.run=^TestKill9$")
		cmd.Env = append(os.Environ(), "STORE_KILL_CHILD="+dir)
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Duration(150+mrand.IntN(250)) * time.Millisecond)
		cmd.Process.Signal(syscall.SIGKILL)
		cmd.Wait()
		s := openT(t, filepath.Join(dir, "store"), key)
		b := s.Blobs()
		list, err := b.List("")
		if err != nil {
			t.Fatal(err)
		}
		for _, info := range list {
			n, _ := strconv.ParseInt(strings.Split(info.Name, "-")[1], 10, 64)
			got, err := readBlob(b, info.Name)
			if err != nil || !bytes.Equal(got, pattern(info.Name, n)) {
				t.Fatalf("round %d: %s after kill -9: %d bytes, %v\n%s", round, info.Name, len(got), err, out.String())
			}
		}
		ups, _ := b.Uploads()
		for _, up := range ups {
			u, err := b.Resume(up.ID)
			if err != nil {
				t.Fatalf("round %d: resuming %s: %v", round, up.ID, err)
			}
			u.Abort()
		}
		t.Logf("round %d: %d blobs whole, %d uploads resumed", round, len(list), len(ups))
		s.Close(nil)
	}
}

// killChild writes blobs until it is killed.
func killChild() {
	dir := os.Getenv("STORE_KILL_CHILD")
	key, _ := os.ReadFile(filepath.Join(dir, "key"))
	s, err := Open(filepath.Join(dir, "store"), key, Options{})
	if err != nil {
		fmt.Println(err)
		os.Exit(1)
	}
	b := s.Blobs()
	for i := 0; ; i++ {
		n := int64(mrand.IntN(6 * ChunkSize))
		name := fmt.Sprintf("%d-%d", i%7, n) // names repeat: commits replace
		if i%7 == 0 {
			name = fmt.Sprintf("x%d-%d", i, n)
		}
		u, err := b.Create()
		if err != nil {
			fmt.Println(err)
			os.Exit(1)
		}
		data := pattern(name, n)
		for len(data) > 0 {
			k := min(len(data), 10000)
			u.Write(data[:k])
			data = data[k:]
			if mrand.IntN(20) == 0 {
				u.Flush()
			}
		}
		if _, err := u.Commit(name); err != nil {
			fmt.Println(err)
			os.Exit(1)
		}
		if i%5 == 0 {
			if l, _ := b.List("x"); len(l) > 3 {
				b.Delete(l[0].Name)
			}
		}
	}
}
