package vault

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

// cheap keeps tests fast; real boxes use Calibrate.
var cheap = Params{Time: 1, MemoryKiB: 8 << 10, Threads: 1}

func newVault(t *testing.T) (*Vault, string) {
	t.Helper()
	dir := t.TempDir()
	v, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { v.Close() })
	return v, dir
}

func TestLifecycle(t *testing.T) {
	v, dir := newVault(t)
	if v.Initialized() || !v.Locked() {
		t.Fatal("a new vault should be uninitialized and locked")
	}
	if _, err := v.Get("vpn", "config"); !errors.Is(err, ErrLocked) {
		t.Fatalf("get before init: %v", err)
	}
	if err := v.Unlock([]byte("x")); !errors.Is(err, ErrNotInitialized) {
		t.Fatalf("unlock before init: %v", err)
	}
	if err := v.Init([]byte("correct horse battery staple"), cheap); err != nil {
		t.Fatal(err)
	}
	if err := v.Init([]byte("again"), cheap); !errors.Is(err, ErrInitialized) {
		t.Fatalf("second init: %v", err)
	}
	if err := v.Put("vpn", "config", []byte("PrivateKey = secret")); err != nil {
		t.Fatal(err)
	}
	v.Put("members", "alice", []byte("note"))
	v.Put("members", "bob", []byte("note"))
	if got, err := v.Get("vpn", "config"); err != nil || string(got) != "PrivateKey = secret" {
		t.Fatalf("get: %q %v", got, err)
	}
	if _, err := v.Get("vpn", "other"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("get missing: %v", err)
	}
	if keys, err := v.List("members"); err != nil || fmt.Sprint(keys) != "[alice bob]" {
		t.Fatalf("list: %v %v", keys, err)
	}
	if keys, err := v.List("empty"); err != nil || len(keys) != 0 {
		t.Fatalf("list of an empty bucket: %v %v", keys, err)
	}
	v.Delete("members", "bob")
	v.Delete("members", "nobody")
	if keys, _ := v.List("members"); fmt.Sprint(keys) != "[alice]" {
		t.Fatalf("after delete: %v", keys)
	}

	// A restart: the vault comes back locked.
	v.Close()
	v, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	if !v.Initialized() || !v.Locked() {
		t.Fatal("after reopening the vault should be initialized and locked")
	}
	if _, err := v.Get("vpn", "config"); !errors.Is(err, ErrLocked) {
		t.Fatalf("get while locked: %v", err)
	}
	if err := v.Unlock([]byte("wrong")); !errors.Is(err, ErrWrongPass) {
		t.Fatalf("wrong passphrase: %v", err)
	}
	if err := v.Unlock([]byte("correct horse battery staple")); err != nil {
		t.Fatal(err)
	}
	if got, _ := v.Get("vpn", "config"); string(got) != "PrivateKey = secret" {
		t.Fatalf("after unlock: %q", got)
	}
	v.Lock()
	if _, err := v.List("members"); !errors.Is(err, ErrLocked) {
		t.Fatalf("list after lock: %v", err)
	}
}

func TestChangePassphraseKeepsData(t *testing.T) {
	v, _ := newVault(t)
	v.Init([]byte("first passphrase"), cheap)
	v.Put("a", "b", []byte("kept"))
	if err := v.ChangePassphrase([]byte("not it"), []byte("second"), cheap); !errors.Is(err, ErrWrongPass) {
		t.Fatalf("change with a wrong old passphrase: %v", err)
	}
	if err := v.ChangePassphrase([]byte("first passphrase"), []byte("second passphrase"), cheap); err != nil {
		t.Fatal(err)
	}
	v.Lock()
	if err := v.Unlock([]byte("first passphrase")); !errors.Is(err, ErrWrongPass) {
		t.Fatalf("old passphrase still works: %v", err)
	}
	if err := v.Unlock([]byte("second passphrase")); err != nil {
		t.Fatal(err)
	}
	if got, _ := v.Get("a", "b"); string(got) != "kept" {
		t.Fatalf("data after change: %q", got)
	}
}

func TestWrongPassphraseDelays(t *testing.T) {
	v, _ := newVault(t)
	now := time.Unix(1_800_000_000, 0)
	v.now = func() time.Time { return now }
	v.Init([]byte("right"), cheap)
	v.Lock()
	for i := range 3 {
		if err := v.Unlock([]byte("wrong")); !errors.Is(err, ErrWrongPass) {
			t.Fatalf("attempt %d: %v", i, err)
		}
	}
	var soon *TooSoonError
	if err := v.Unlock([]byte("right")); !errors.As(err, &soon) || soon.Wait != 2*time.Second {
		t.Fatalf("fourth attempt right away: %v", err)
	}
	now = now.Add(2 * time.Second)
	if err := v.Unlock([]byte("wrong")); !errors.Is(err, ErrWrongPass) {
		t.Fatalf("after waiting: %v", err)
	}
	if err := v.Unlock([]byte("right")); !errors.As(err, &soon) || soon.Wait != 4*time.Second {
		t.Fatalf("the delay should double: %v", err)
	}
	now = now.Add(4 * time.Second)
	if err := v.Unlock([]byte("right")); err != nil {
		t.Fatal(err)
	}
	if f := v.failures(); f.Count != 0 {
		t.Fatalf("failures not cleared: %+v", f)
	}
	if delayAfter(100) != 15*time.Minute {
		t.Fatalf("delay is not capped: %v", delayAfter(100))
	}
}

func TestDelaysSurviveRestart(t *testing.T) {
	v, dir := newVault(t)
	v.Init([]byte("right"), cheap)
	v.Lock()
	for range 4 {
		v.Unlock([]byte("wrong"))
	}
	v.Close()
	v2, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer v2.Close()
	var soon *TooSoonError
	if err := v2.Unlock([]byte("right")); !errors.As(err, &soon) {
		t.Fatalf("a restart reset the delay: %v", err)
	}
}

// TestNothingInPlainText writes known secrets and names, closes the vault and
// searches every byte under the directory for them.
func TestNothingInPlainText(t *testing.T) {
	v, dir := newVault(t)
	v.Init([]byte("passphrase-needle-1"), cheap)
	secrets := map[string]string{
		"wireguard": "PrivateKey-needle-2 = aGVsbG8gd29ybGQgaGVsbG8gd29ybGQgaGVsbG8gd29y",
		"members":   "alice-needle-3@example.org",
	}
	for b, s := range secrets {
		if err := v.Put(b+"-bucket-needle", "key-needle-"+b, []byte(s)); err != nil {
			t.Fatal(err)
		}
	}
	v.Close()
	needles := []string{"passphrase-needle-1", "PrivateKey-needle-2", "alice-needle-3", "bucket-needle", "key-needle"}
	filepath.Walk(dir, func(path string, info os.FileInfo, err error) error {
		if err != nil || info.IsDir() {
			return err
		}
		b, _ := os.ReadFile(path)
		for _, n := range needles {
			if bytes.Contains(b, []byte(n)) {
				t.Errorf("%s holds %q in plain text", path, n)
			}
		}
		return nil
	})
}

// TestTamperingDetected swaps and flips sealed values in the file.
func TestTamperingDetected(t *testing.T) {
	v, dir := newVault(t)
	v.Init([]byte("pass"), cheap)
	v.Put("b", "one", []byte("1"))
	v.Put("b", "two", []byte("2"))
	v.Close()

	db, err := bolt.Open(filepath.Join(dir, fileName), 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	db.Update(func(tx *bolt.Tx) error {
		var bucket *bolt.Bucket
		tx.Bucket(dataBucket).ForEachBucket(func(k []byte) error { bucket = tx.Bucket(dataBucket).Bucket(k); return nil })
		var slots, vals [][]byte
		bucket.ForEach(func(k, v []byte) error {
			slots = append(slots, append([]byte(nil), k...))
			vals = append(vals, append([]byte(nil), v...))
			return nil
		})
		// Swap the two values between their slots.
		bucket.Put(slots[0], vals[1])
		bucket.Put(slots[1], vals[0])
		return nil
	})
	db.Close()

	v, err = Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	v.Unlock([]byte("pass"))
	if _, err := v.Get("b", "one"); err == nil {
		t.Fatal("a value moved to another slot opened")
	}
	if _, err := v.List("b"); err == nil {
		t.Fatal("list of a tampered bucket succeeded")
	}
}

func TestCorruptedWrappedKey(t *testing.T) {
	v, dir := newVault(t)
	v.Init([]byte("pass"), cheap)
	v.Close()
	db, err := bolt.Open(filepath.Join(dir, fileName), 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	db.Update(func(tx *bolt.Tx) error {
		m := tx.Bucket(metaBucket)
		h := append([]byte(nil), m.Get(metaHeader)...)
		i := bytes.Index(h, []byte(`"wrapped_key":"`)) + len(`"wrapped_key":"`) + 10
		h[i] ^= 0x01
		return m.Put(metaHeader, h)
	})
	db.Close()
	v, _ = Open(dir)
	defer v.Close()
	if err := v.Unlock([]byte("pass")); err == nil {
		t.Fatal("a corrupted wrapped key unlocked")
	}
}

func TestWipe(t *testing.T) {
	v, _ := newVault(t)
	v.Init([]byte("pass"), cheap)
	v.Put("b", "k", []byte("v"))
	if err := v.Wipe(); err != nil {
		t.Fatal(err)
	}
	if v.Initialized() || !v.Locked() {
		t.Fatal("a wiped vault should be uninitialized and locked")
	}
	if err := v.Init([]byte("new owner"), cheap); err != nil {
		t.Fatal(err)
	}
	if _, err := v.Get("b", "k"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("data survived the wipe: %v", err)
	}
}

func TestParamsAndNames(t *testing.T) {
	if err := (Params{Time: 0, MemoryKiB: 64 << 10, Threads: 1}).Validate(); err == nil {
		t.Error("time 0 accepted")
	}
	if err := (Params{Time: 1, MemoryKiB: 1024, Threads: 1}).Validate(); err == nil {
		t.Error("1 MiB accepted")
	}
	v, _ := newVault(t)
	if err := v.Init(nil, cheap); err == nil {
		t.Error("empty passphrase accepted")
	}
	v.Init([]byte("p"), cheap)
	if err := v.Put("", "k", nil); err == nil {
		t.Error("empty bucket accepted")
	}
	if err := v.Put("b", string(make([]byte, 2000)), nil); err == nil {
		t.Error("huge key accepted")
	}
}

func TestCalibrate(t *testing.T) {
	p := Calibrate(50 * time.Millisecond)
	if p.Time < minTime || p.MemoryKiB != DefaultMemoryKiB || p.Threads != DefaultThreads {
		t.Fatalf("calibrated %+v", p)
	}
	if err := p.Validate(); err != nil {
		t.Fatal(err)
	}
}

// TestCrashMidWrite kills a process writing to the vault as fast as it can, many
// times over, and checks after each kill that the vault opens, unlocks, and holds
// a consistent, complete last value for every key it reports.
func TestCrashMidWrite(t *testing.T) {
	if os.Getenv("VAULT_WRITER") != "" {
		writer(os.Getenv("VAULT_WRITER"))
		return
	}
	dir := t.TempDir()
	v, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	v.Init([]byte("pass"), cheap)
	v.Close()
	for round := range 5 {
		cmd := exec.Command(os.Args[0], "-test.run=^TestCrashMidWrite$")
		cmd.Env = append(os.Environ(), "VAULT_WRITER="+dir)
		var out bytes.Buffer
		cmd.Stdout = &out
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		// Let it write for a while, then kill it without warning.
		deadline := time.Now().Add(3 * time.Second)
		for !bytes.Contains(out.Bytes(), []byte("wrote 50")) && time.Now().Before(deadline) {
			time.Sleep(5 * time.Millisecond)
		}
		time.Sleep(time.Duration(round*17) * time.Millisecond)
		cmd.Process.Signal(syscall.SIGKILL)
		cmd.Wait()

		v, err := Open(dir)
		if err != nil {
			t.Fatalf("round %d: the vault does not open after a crash: %v", round, err)
		}
		if err := v.Unlock([]byte("pass")); err != nil {
			t.Fatalf("round %d: unlock after a crash: %v", round, err)
		}
		keys, err := v.List("counter")
		if err != nil {
			t.Fatalf("round %d: list after a crash: %v", round, err)
		}
		for _, k := range keys {
			val, err := v.Get("counter", k)
			if err != nil {
				t.Fatalf("round %d: %s: %v", round, k, err)
			}
			if want := bytes.Repeat([]byte(k), 64); !bytes.Equal(val, want) {
				t.Fatalf("round %d: %s holds a torn value", round, k)
			}
		}
		if len(keys) == 0 {
			t.Fatalf("round %d: nothing survived", round)
		}
		v.Close()
	}
}

// writer is the child process of TestCrashMidWrite.
func writer(dir string) {
	v, err := Open(dir)
	if err != nil {
		fmt.Println("open:", err)
		os.Exit(1)
	}
	if err := v.Unlock([]byte("pass")); err != nil {
		fmt.Println("unlock:", err)
		os.Exit(1)
	}
	for i := 0; ; i++ {
		k := strconv.Itoa(i % 200)
		if err := v.Put("counter", k, bytes.Repeat([]byte(k), 64)); err != nil {
			fmt.Println("put:", err)
			os.Exit(1)
		}
		if i == 50 {
			fmt.Println("wrote 50")
		}
	}
}
