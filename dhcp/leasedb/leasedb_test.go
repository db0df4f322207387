package leasedb

import (
	"bufio"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/redoubt/redoubt/dhcp/leases"
)

var t0 = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

func lease(i int) leases.Lease {
	return leases.Lease{
		Addr:        netip.AddrFrom4([4]byte{10, 201, byte(i >> 8), byte(i)}),
		MAC:         [6]byte{2, 0, 0, 0, byte(i >> 8), byte(i)},
		ClientID:    []byte{1, 2, 0, 0, 0, byte(i >> 8), byte(i)},
		Hostname:    fmt.Sprintf("host-%d", i),
		VendorClass: "udhcp 1.35.0",
		Expiry:      t0.Add(time.Duration(i) * time.Second),
		FirstSeen:   t0,
		Owner:       i == 1,
	}
}

func TestCommitLoad(t *testing.T) {
	path := filepath.Join(t.TempDir(), FileName)
	db, note, err := Open(path)
	if err != nil || note != "" {
		t.Fatal(err, note)
	}
	var put []leases.Lease
	for i := 1; i <= 300; i++ {
		put = append(put, lease(i))
	}
	if err := db.Commit(put, nil); err != nil {
		t.Fatal(err)
	}
	if err := db.Commit(nil, []netip.Addr{lease(7).Addr}); err != nil {
		t.Fatal(err)
	}
	changed := lease(8)
	changed.Hostname, changed.Declined = "", true
	if err := db.Commit([]leases.Lease{changed}, nil); err != nil {
		t.Fatal(err)
	}
	db.Close()

	db, _, err = Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	got, bad, err := db.Load()
	if err != nil || bad != 0 {
		t.Fatal(err, bad)
	}
	if len(got) != 299 {
		t.Fatalf("loaded %d leases, want 299", len(got))
	}
	byAddr := map[netip.Addr]leases.Lease{}
	for _, l := range got {
		byAddr[l.Addr] = l
	}
	for i := 1; i <= 300; i++ {
		want := lease(i)
		l, ok := byAddr[want.Addr]
		switch {
		case i == 7:
			if ok {
				t.Fatal("deleted lease came back")
			}
		case i == 8:
			if !leases.Equal(l, changed) {
				t.Fatalf("changed lease: got %+v, want %+v", l, changed)
			}
		case !ok || !leases.Equal(l, want):
			t.Fatalf("lease %d: got %+v, want %+v", i, l, want)
		}
	}
}

func TestCorruptFileMovedAside(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, FileName)
	if err := os.WriteFile(path, []byte(strings.Repeat("not a database ", 1000)), 0o600); err != nil {
		t.Fatal(err)
	}
	db, note, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if !strings.Contains(note, "moved to") {
		t.Fatalf("note %q", note)
	}
	if ls, _, _ := db.Load(); len(ls) != 0 {
		t.Fatalf("a new file holds %d leases", len(ls))
	}
	m, _ := filepath.Glob(path + ".corrupt-*")
	if len(m) != 1 {
		t.Fatalf("corrupt file not kept aside: %v", m)
	}
}

func TestBadRecordSkipped(t *testing.T) {
	path := filepath.Join(t.TempDir(), FileName)
	db, _, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if err := db.Commit([]leases.Lease{lease(1), lease(2)}, nil); err != nil {
		t.Fatal(err)
	}
	// A record whose key and address disagree, and one that is not JSON.
	db.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketLeases)
		b.Put([]byte{10, 201, 0, 9}, Encode(ptr(lease(3))))
		return b.Put([]byte{10, 201, 0, 10}, []byte("{"))
	})
	ls, bad, err := db.Load()
	if err != nil || bad != 2 || len(ls) != 2 {
		t.Fatalf("load: %d leases, %d bad, %v", len(ls), bad, err)
	}
}

func ptr[T any](v T) *T { return &v }

func TestDecodeRejects(t *testing.T) {
	for _, s := range []string{
		``, `{}`, `{"addr":"10.0.0.1","mac":"zz"}`, `{"addr":"::1","mac":"02:00:00:00:00:01"}`,
		`{"addr":"10.0.0.1","mac":"02:00:00:00:00:01","client_id":"xyz"}`,
		`{"addr":"10.0.0.1","mac":"02:00:00:00:00:01:02:03"}`,
	} {
		if _, err := Decode([]byte(s)); err == nil {
			t.Errorf("Decode(%s) accepted", s)
		}
	}
}

// TestKill9DuringCommits runs a process that commits leases as fast as it can and
// prints each one once Commit returned, kills it with SIGKILL mid-stream, and
// checks that the file opens and holds every lease reported committed. It is
// repeated so the kill lands at different points of a transaction.
func TestKill9DuringCommits(t *testing.T) {
	path := filepath.Join(t.TempDir(), FileName)
	committed := map[netip.Addr]leases.Lease{}
	for round := range 3 {
		cmd := exec.Command(os.Args[0])
		cmd.Env = append(os.Environ(), "LEASEDB_CHILD="+path, fmt.Sprintf("LEASEDB_ROUND=%d", round))
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(out)
		n := 0
		kill := 40 + round*30
		for sc.Scan() {
			line := sc.Text()
			if !strings.HasPrefix(line, "committed ") {
				continue
			}
			var i int
			fmt.Sscanf(line, "committed %d", &i)
			l := lease(round*10000 + i)
			committed[l.Addr] = l
			if n++; n == kill {
				cmd.Process.Signal(syscall.SIGKILL)
				break
			}
		}
		cmd.Wait()
		if n < kill {
			t.Fatalf("round %d: the child committed only %d leases before ending", round, n)
		}

		db, note, err := Open(path)
		if err != nil || note != "" {
			t.Fatalf("round %d: reopening after kill -9: %v %s", round, err, note)
		}
		ls, bad, err := db.Load()
		db.Close()
		if err != nil || bad != 0 {
			t.Fatalf("round %d: load: %v, %d bad records", round, err, bad)
		}
		have := map[netip.Addr]leases.Lease{}
		for _, l := range ls {
			have[l.Addr] = l
		}
		for a, want := range committed {
			if got, ok := have[a]; !ok || !leases.Equal(got, want) {
				t.Fatalf("round %d: committed lease %v lost or changed after kill -9: %+v", round, a, got)
			}
		}
		t.Logf("round %d: killed after %d commits; %d leases on file, all %d committed ones intact", round, n, len(ls), len(committed))
	}
}

// TestMain runs the child process of TestKill9DuringCommits when asked to.
func TestMain(m *testing.M) {
	if path := os.Getenv("LEASEDB_CHILD"); path != "" {
		commitForever(path)
		return
	}
	os.Exit(m.Run())
}

// commitForever is the process TestKill9DuringCommits kills: it commits leases one
// per transaction and prints each once its Commit returned.
func commitForever(path string) {
	var round int
	fmt.Sscan(os.Getenv("LEASEDB_ROUND"), &round)
	db, _, err := Open(path)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	for i := 1; i < 9000; i++ {
		if err := db.Commit([]leases.Lease{lease(round*10000 + i)}, nil); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		fmt.Printf("committed %d\n", i)
	}
	time.Sleep(time.Minute) // wait for the kill
}

// BenchmarkCommit is the cost of making one lease durable (one transaction, two
// fdatasyncs) on the file system of the test's temporary directory; the server
// pays it once per batch, however many leases the batch holds.
func BenchmarkCommit(b *testing.B) {
	db, _, err := Open(filepath.Join(b.TempDir(), FileName))
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	i := 0
	for b.Loop() {
		i++
		if err := db.Commit([]leases.Lease{lease(i % 60000)}, nil); err != nil {
			b.Fatal(err)
		}
	}
}
