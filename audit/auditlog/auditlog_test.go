package auditlog_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/transparency-dev/merkle/compact"
	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/redoubt/redoubt/audit"
	"github.com/redoubt/redoubt/audit/auditlog"
	"github.com/redoubt/redoubt/audit/checkpoint"
	"github.com/redoubt/redoubt/audit/client"
	"github.com/redoubt/redoubt/vault"
)

type testClock struct{ synced atomic.Bool }

func (c *testClock) Now() time.Time { return time.Now() }
func (c *testClock) Synced() bool   { return c.synced.Load() }

type testLogger struct{ t testing.TB }

func (w testLogger) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

// rig is a log over a real vault.
type rig struct {
	t     testing.TB
	dir   string
	vault *vault.Vault
	clock *testClock
	log   *auditlog.Log
}

func newRig(t testing.TB) *rig {
	t.Helper()
	r := &rig{t: t, dir: t.TempDir(), clock: &testClock{}}
	r.clock.synced.Store(true)
	v, err := vault.Open(filepath.Join(r.dir, "vault"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { v.Close() })
	r.vault = v
	r.open()
	return r
}

func (r *rig) open() {
	l, err := auditlog.Open(filepath.Join(r.dir, "audit"), auditlog.Deps{Vault: r.vault, Clock: r.clock,
		Logger: slog.New(slog.NewTextHandler(testLogger{r.t}, nil))})
	if err != nil {
		r.t.Fatal(err)
	}
	r.t.Cleanup(func() { l.Close() })
	r.log = l
}

func (r *rig) setup() {
	r.t.Helper()
	if err := r.vault.Init([]byte("correct horse battery staple"), vault.Params{Time: 1, MemoryKiB: 8 << 10, Threads: 1}); err != nil {
		r.t.Fatal(err)
	}
	if err := r.log.Unlocked(); err != nil {
		r.t.Fatal(err)
	}
}

func (r *rig) add(n int) {
	r.t.Helper()
	for i := 0; i < n; i++ {
		if _, err := r.log.Append(audit.Event{Kind: audit.KindMember, Action: "add member", Actor: audit.ActorOwner, Subject: fmt.Sprintf("member-%d", r.log.Size())}); err != nil {
			r.t.Fatal(err)
		}
	}
}

func (r *rig) checkpoint() checkpoint.Checkpoint {
	r.t.Helper()
	signed, c, err := r.log.Checkpoint()
	if err != nil {
		r.t.Fatal(err)
	}
	if _, _, err := checkpoint.Open(signed, r.log.VerifierKey()); err != nil {
		r.t.Fatalf("the log's own checkpoint does not verify: %v\n%s", err, signed)
	}
	return c
}

// The tree's roots and proofs, made by x/mod's tlog, are checked by an
// independent implementation (transparency-dev/merkle) at every size.
func TestTreeAgainstTransparencyDev(t *testing.T) {
	r := newRig(t)
	r.setup()
	rf := compact.RangeFactory{Hash: rfc6962.DefaultHasher.HashChildren}
	cr := rf.NewEmptyRange(0)
	var sizes []checkpoint.Checkpoint
	for n := 1; n <= 70; n++ {
		r.add(1)
		es, err := r.log.Entries(int64(n-1), int64(n), int64(n))
		if err != nil {
			t.Fatal(err)
		}
		if err := cr.Append(rfc6962.DefaultHasher.HashLeaf(es[0].Data), nil); err != nil {
			t.Fatal(err)
		}
		root, err := cr.GetRootHash(nil)
		if err != nil {
			t.Fatal(err)
		}
		c := r.checkpoint()
		if c.Size != int64(n) || !bytes.Equal(root, c.Hash[:]) {
			t.Fatalf("size %d: checkpoint %v, transparency-dev's root %x", n, c, root)
		}
		sizes = append(sizes, c)
	}
	last := sizes[len(sizes)-1]
	for _, old := range sizes[:len(sizes)-1] {
		p, err := r.log.Consistency(old.Size, last.Size)
		if err != nil {
			t.Fatal(err)
		}
		if err := proof.VerifyConsistency(rfc6962.DefaultHasher, uint64(old.Size), uint64(last.Size), raw(p), old.Hash[:], last.Hash[:]); err != nil {
			t.Fatalf("consistency %d→%d: transparency-dev says %v", old.Size, last.Size, err)
		}
		if err := checkpoint.CheckConsistency(old, last, p); err != nil {
			t.Fatal(err)
		}
	}
	es, err := r.log.Entries(0, last.Size, last.Size)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range es {
		if err := proof.VerifyInclusion(rfc6962.DefaultHasher, uint64(e.Index), uint64(last.Size), rfc6962.DefaultHasher.HashLeaf(e.Data), raw(e.Proof), last.Hash[:]); err != nil {
			t.Fatalf("inclusion of %d: transparency-dev says %v", e.Index, err)
		}
		if err := checkpoint.CheckInclusion(last, e.Index, e.Data, e.Proof); err != nil {
			t.Fatal(err)
		}
	}
	// A wrong leaf or proof is refused by both.
	bad := bytes.Clone(es[3].Data)
	bad[10] ^= 1
	if err := checkpoint.CheckInclusion(last, 3, bad, es[3].Proof); !errors.Is(err, checkpoint.ErrNotIncluded) {
		t.Fatalf("an altered record passed: %v", err)
	}
}

func raw[T ~[]tlog.Hash](p T) [][]byte {
	var out [][]byte
	for _, h := range p {
		out = append(out, h[:])
	}
	return out
}

// Records are sealed on disk; they can be appended while locked (and before
// setup) and read once unlocked; checkpoints wait for the vault and the clock,
// and say so.
func TestSealedLockedAndClock(t *testing.T) {
	r := newRig(t)
	if _, err := r.log.Append(audit.Event{Kind: audit.KindStart, Action: "start", Actor: audit.ActorBox, Subject: "v1"}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := r.log.Checkpoint(); !errors.Is(err, auditlog.ErrNoCheckpont) || !strings.Contains(err.Error(), "locked") {
		t.Fatalf("checkpoint before setup: %v", err)
	}
	if _, err := os.Stat(filepath.Join(r.dir, "audit", "presetup-record.key")); err != nil {
		t.Fatalf("the records' key before setup: %v", err)
	}
	r.setup()
	if _, err := os.Stat(filepath.Join(r.dir, "audit", "presetup-record.key")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("the records' key is still beside the log after setup: %v", err)
	}
	r.add(2)
	c := r.checkpoint()
	if c.Size != 3 {
		t.Fatalf("size %d", c.Size)
	}
	// Locked: appends go on, reading and signing wait.
	r.log.Locked()
	r.add(1)
	if _, err := r.log.Entries(0, 1, 3); !errors.Is(err, auditlog.ErrLocked) {
		t.Fatalf("entries while locked: %v", err)
	}
	if _, c2, err := r.log.Checkpoint(); err != nil || c2.Size != 3 {
		t.Fatalf("while locked the last checkpoint is served: %v %v", c2, err)
	}
	if st := r.log.Status(); st.Signed != 3 || st.Size != 4 || !strings.Contains(st.Waiting, "locked") {
		t.Fatalf("status %+v", st)
	}
	// Unlocked but the clock is not synced: no signature, and the reason.
	r.clock.synced.Store(false)
	if err := r.vault.Unlock([]byte("correct horse battery staple")); err != nil {
		t.Fatal(err)
	}
	if err := r.log.Unlocked(); err != nil {
		t.Fatal(err)
	}
	r.add(1)
	if st := r.log.Status(); st.Signed != 3 || !strings.Contains(st.Waiting, "clock") {
		t.Fatalf("status %+v", st)
	}
	es, err := r.log.Entries(4, 5, 5)
	if err != nil {
		t.Fatal(err)
	}
	rec, err := audit.ParseRecord(es[0].Data)
	if err != nil || rec.Clock != audit.ClockUnsynced {
		t.Fatalf("record made before the clock was synced: %+v %v", rec, err)
	}
	r.clock.synced.Store(true)
	if c := r.checkpoint(); c.Size != 5 {
		t.Fatalf("after the sync: %v", c)
	}
	// Nothing readable on disk.
	r.log.Close()
	disk, err := os.ReadFile(filepath.Join(r.dir, "audit", "audit.db"))
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{"member-1", "add member", "start"} {
		if bytes.Contains(disk, []byte(s)) {
			t.Errorf("%q is readable in the log's file", s)
		}
	}
	// Reopened, it goes on where it was.
	r.open()
	if err := r.log.Unlocked(); err != nil {
		t.Fatal(err)
	}
	if r.log.Size() != 5 {
		t.Fatalf("size after reopening: %d", r.log.Size())
	}
	r.add(1)
	if c := r.checkpoint(); c.Size != 6 {
		t.Fatal(c)
	}
}

func TestEventValidation(t *testing.T) {
	r := newRig(t)
	for _, e := range []audit.Event{
		{},
		{Kind: "nonsense", Action: "x", Actor: "owner"},
		{Kind: audit.KindAdmin, Actor: "owner"},
		{Kind: audit.KindAdmin, Action: "x"},
		{Kind: audit.KindAdmin, Action: "x", Actor: "owner", Detail: strings.Repeat("x", audit.MaxDetail+1)},
		{Kind: audit.KindAdmin, Action: "x", Actor: "owner", Subject: "\xff"},
	} {
		if _, err := r.log.Append(e); err == nil {
			t.Errorf("%+v was accepted", e)
		}
	}
	if r.log.Size() != 0 {
		t.Fatal("a refused event was kept")
	}
}

// newWitness makes a member's device key.
func newWitness(t testing.TB, member string) (checkpoint.Witness, ed25519.PrivateKey) {
	pub, priv, _ := ed25519.GenerateKey(rand.Reader)
	return checkpoint.Witness{Name: auditlog.WitnessName(member, fmt.Sprintf("%x", pub[:4])), Key: pub}, priv
}

func cosign(t testing.TB, signed []byte, w checkpoint.Witness, priv ed25519.PrivateKey) []byte {
	t.Helper()
	text, _, err := checkpoint.SplitNote(signed)
	if err != nil {
		t.Fatal(err)
	}
	c, err := checkpoint.ParseBody(text)
	if err != nil {
		t.Fatal(err)
	}
	return append(bytes.Clone(signed), checkpoint.Cosign(c, w, priv, time.Now())...)
}

// serve runs the log's API with every request from member "alice".
func serve(t testing.TB, l *auditlog.Log) *client.Client {
	srv := httptest.NewServer(l.Handler(func(*http.Request) (string, bool) { return "alice", true }))
	t.Cleanup(srv.Close)
	return &client.Client{Base: srv.URL + "/", HTTP: srv.Client()}
}

// A verifier catches a truncated log, a rewritten record and a fork, and
// witnesses' checkpoints show a split view.
func TestVerifierCatchesTampering(t *testing.T) {
	ctx := context.Background()
	r := newRig(t)
	r.setup()
	r.add(10)
	cl := serve(t, r.log)

	res, err := cl.Verify(ctx, client.State{}, client.Options{Full: true})
	if err != nil || !res.First || len(res.Records) != 10 || res.Next.Size != 10 {
		t.Fatalf("first visit: %+v %v", res, err)
	}
	st := client.State{Key: r.log.VerifierKey(), Checkpoint: string(res.Signed)}
	r.add(5)
	res, err = cl.Verify(ctx, st, client.Options{Full: true})
	if err != nil || res.Prev.Size != 10 || res.Next.Size != 15 {
		t.Fatalf("second visit: %+v %v", res, err)
	}
	st.Checkpoint = string(res.Signed)

	leaves, err := r.log.Leaves()
	if err != nil {
		t.Fatal(err)
	}
	// Truncated: the box drops its last records and signs again.
	if err := r.log.Rebuild(leaves[:12]); err != nil {
		t.Fatal(err)
	}
	if _, err := cl.Verify(ctx, st, client.Options{}); !errors.Is(err, checkpoint.ErrShrunk) {
		t.Fatalf("truncated log: %v", err)
	}
	// Truncated and grown again past the old size.
	grown := append(append([][]byte{}, leaves[:12]...), leaves[13:]...)
	grown = append(grown, leaves[5], leaves[6])
	if err := r.log.Rebuild(grown); err != nil {
		t.Fatal(err)
	}
	if _, err := cl.Verify(ctx, st, client.Options{}); !errors.Is(err, checkpoint.ErrInconsistent) {
		t.Fatalf("a log with a record removed: %v", err)
	}
	// A record rewritten in place.
	rewritten := append([][]byte{}, leaves...)
	rewritten[3] = bytes.Replace(rewritten[3], []byte("add member"), []byte("del member"), 1)
	if err := r.log.Rebuild(rewritten); err != nil {
		t.Fatal(err)
	}
	if _, err := cl.Verify(ctx, st, client.Options{}); !errors.Is(err, checkpoint.ErrInconsistent) {
		t.Fatalf("rewritten record: %v", err)
	}
	// Same size, another root (a fork).
	forked := append([][]byte{}, leaves...)
	forked[14] = audit.NewRecord(audit.Event{Kind: audit.KindAdmin, Action: "nothing to see", Actor: "owner"}, time.Now(), true).Marshal()
	if err := r.log.Rebuild(forked); err != nil {
		t.Fatal(err)
	}
	if _, err := cl.Verify(ctx, st, client.Options{}); !errors.Is(err, checkpoint.ErrInconsistent) {
		t.Fatalf("fork at the same size: %v", err)
	}
	// The honest history again: it verifies.
	if err := r.log.Rebuild(leaves); err != nil {
		t.Fatal(err)
	}
	if _, err := cl.Verify(ctx, st, client.Options{Full: true}); err != nil {
		t.Fatalf("honest log: %v", err)
	}
	// A pinned key that is not the box's.
	other := newRig(t)
	other.setup()
	if _, err := cl.Verify(ctx, client.State{Key: other.log.VerifierKey()}, client.Options{}); !errors.Is(err, client.ErrKeyChanged) {
		t.Fatalf("another key: %v", err)
	}
	if _, err := cl.Verify(ctx, client.State{Key: r.log.VerifierKey(), Checkpoint: st.Checkpoint + "— junk"}, client.Options{}); err == nil {
		t.Fatal("a damaged saved checkpoint was accepted")
	}
}

// Witnesses: a member's device cosigns what it verified; the log keeps it
// and lists it; a cosigned checkpoint outside the log's history is a fork,
// recorded, refused, and shown to every verifier as a split view.
func TestWitnesses(t *testing.T) {
	ctx := context.Background()
	r := newRig(t)
	r.setup()
	r.add(6)
	cl := serve(t, r.log)
	w, priv := newWitness(t, "alice")
	signed, _, err := r.log.Checkpoint()
	if err != nil {
		t.Fatal(err)
	}
	if err := r.log.AddCosignature("alice", w.VerifierKey(), cosign(t, signed, w, priv)); err != nil {
		t.Fatal(err)
	}
	if ws := r.log.Witnesses(); len(ws) != 1 || ws[0].Member != "alice" || ws[0].Size != 6 {
		t.Fatalf("witnesses %+v", ws)
	}
	// A member cannot cosign under another's name, nor with a bad signature.
	if err := r.log.AddCosignature("bob", w.VerifierKey(), cosign(t, signed, w, priv)); err == nil {
		t.Fatal("bob cosigned as alice")
	}
	w2, priv2 := newWitness(t, "alice")
	if err := r.log.AddCosignature("alice", w2.VerifierKey(), cosign(t, signed, w2, priv)); err == nil {
		t.Fatal("a cosignature by the wrong key was accepted")
	}
	if err := r.log.AddCosignature("alice", w2.VerifierKey(), cosign(t, signed, w2, priv2)); err != nil {
		t.Fatal(err)
	}
	// Records say a witness was added.
	if n := r.log.Size(); n != 8 {
		t.Fatalf("size %d, want 6 and two 'witness added'", n)
	}
	if _, err := cl.Verify(ctx, client.State{}, client.Options{}); err != nil {
		t.Fatal(err)
	}
	// The box rewrites its history: the witnesses' checkpoints show it to
	// any verifier, even one that never visited before.
	leaves, _ := r.log.Leaves()
	leaves[2] = audit.NewRecord(audit.Event{Kind: audit.KindAdmin, Action: "nothing", Actor: "owner"}, time.Now(), true).Marshal()
	if err := r.log.Rebuild(leaves); err != nil {
		t.Fatal(err)
	}
	res, err := cl.Verify(ctx, client.State{}, client.Options{})
	if err == nil || !strings.Contains(err.Error(), "split view") || len(res.SplitViews) != 2 {
		t.Fatalf("split view not seen: %+v %v", res, err)
	}
	// A witness posting a checkpoint of the old history: a fork, recorded.
	if err := r.log.AddCosignature("alice", w.VerifierKey(), cosign(t, signed, w, priv)); !errors.Is(err, auditlog.ErrFork) {
		t.Fatalf("fork: %v", err)
	}
	if st := r.log.Status(); len(st.Forks) != 1 {
		t.Fatalf("status %+v", st)
	}
	// Through the API: only members may post.
	srv := httptest.NewServer(r.log.Handler(nil))
	defer srv.Close()
	resp, err := http.Post(srv.URL+"/witness", "application/json", strings.NewReader(`{}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden {
		t.Fatalf("anonymous cosignature: %s", resp.Status)
	}
}

func TestWipe(t *testing.T) {
	r := newRig(t)
	r.setup()
	r.add(3)
	key := r.log.VerifierKey()
	if err := r.log.Wipe(); err != nil {
		t.Fatal(err)
	}
	if r.log.Size() != 0 || r.log.VerifierKey() != "" {
		t.Fatal("a wiped log remembers")
	}
	if err := r.vault.Wipe(); err != nil {
		t.Fatal(err)
	}
	r.setup()
	if r.log.VerifierKey() == key || r.log.VerifierKey() == "" {
		t.Fatal("a new owner's log kept the old key")
	}
}

func BenchmarkAppend(b *testing.B) {
	r := newRig(b)
	r.setup()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		r.add(1)
	}
}

func BenchmarkConsistencyProof(b *testing.B) {
	r := newRig(b)
	r.setup()
	r.add(200)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := r.log.Consistency(int64(1+i%199), 200); err != nil {
			b.Fatal(err)
		}
	}
}
