package update

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"

	"github.com/redoubt/redoubt/board/bootloader"
	"github.com/redoubt/redoubt/board/bundle"
	"github.com/redoubt/redoubt/board/datapart"
	"github.com/redoubt/redoubt/board/layout"
)

type rig struct {
	dir    string
	signer note.Signer
	u      *Updater
	disk   datapart.Disk
	loader *bootloader.Pi
	store  Store
	audit  []string
}

// newRig is a Pi running v1.0.0 from slot a: a disk whose partitions are
// files, a boot partition that is a directory.
func newRig(t *testing.T) *rig {
	dir := t.TempDir()
	skey, vkey, _ := note.GenerateKey(rand.Reader, "test-updates")
	s, _ := note.NewSigner(skey)
	v, _ := note.NewVerifier(vkey)
	dev := filepath.Join(dir, "dev")
	os.MkdirAll(dev, 0o755)
	mbr := make([]byte, 512)
	copy(mbr[440:], []byte{0xef, 0xbe, 0xad, 0xde})
	os.WriteFile(filepath.Join(dev, "mmcblk0"), mbr, 0o644)
	for _, p := range []string{"mmcblk0p2", "mmcblk0p3"} {
		os.WriteFile(filepath.Join(dev, p), nil, 0o644)
	}
	boot := filepath.Join(dir, "boot")
	os.MkdirAll(boot, 0o755)
	os.WriteFile(filepath.Join(boot, "config.txt"), []byte(bootloader.PiConfig(layout.A)), 0o644)
	r := &rig{dir: dir, signer: s, disk: datapart.Disk{Name: "mmcblk0", Dev: dev, SysBlock: filepath.Join(dir, "sys")},
		loader: &bootloader.Pi{Dir: boot}, store: NewStore(filepath.Join(dir, "state"))}
	r.u = New(Config{}, Deps{
		Running:  Image{Board: layout.RPi, Version: "v1.0.0", Commit: "c", Slot: layout.A},
		Verifier: v, Disk: r.disk, Loader: r.loader, Store: r.store,
		Audit:   func(a, s, d string) { r.audit = append(r.audit, a+" "+s) },
		Restart: func() error { return nil },
	})
	if _, err := OnBoot(r.store, Image{Board: layout.RPi, Version: "v1.0.0", Slot: layout.A}, r.loader, time.Now()); err != nil {
		t.Fatal(err)
	}
	return r
}

func (r *rig) bundle(t *testing.T, board layout.Board, version string, s note.Signer) []byte {
	parts := map[string][]byte{"boot/" + board.KernelName(): []byte("kernel " + version), "boot/bcm2711-rpi-4-b.dtb": []byte("dtb"), "root": bytes.Repeat([]byte(version), 5000)}
	m := bundle.Manifest{Board: board, Arch: board.Arch(), Version: version, Commit: "c"}
	for _, n := range []string{"boot/" + board.KernelName(), "boot/bcm2711-rpi-4-b.dtb", "root"} {
		if _, ok := parts[n]; ok {
			m.Parts = append(m.Parts, bundle.Part{Name: n, Size: int64(len(parts[n])), SHA256: sha256.Sum256(parts[n])})
		}
	}
	var b bytes.Buffer
	if err := bundle.Write(&b, m, s, func(n string) (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(parts[n])), nil }); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func TestApplyStagesTheOtherSlot(t *testing.T) {
	r := newRig(t)
	m, err := r.u.Apply(context.Background(), bytes.NewReader(r.bundle(t, layout.RPi, "v1.1.0", r.signer)), "upload")
	if err != nil {
		t.Fatal(err)
	}
	root, _ := os.ReadFile(r.disk.SlotPath(layout.B))
	if !bytes.Equal(root, bytes.Repeat([]byte("v1.1.0"), 5000)) {
		t.Fatal("slot b does not hold the update's root")
	}
	if k, _ := os.ReadFile(filepath.Join(r.loader.Dir, "slot-b", "kernel8.img")); string(k) != "kernel v1.1.0" {
		t.Fatalf("kernel: %q", k)
	}
	st, _ := r.loader.State()
	if st.Trial != layout.B {
		t.Fatalf("boot loader: %+v", st)
	}
	if c, _ := os.ReadFile(filepath.Join(r.loader.Dir, "slot-b", "cmdline.txt")); !strings.Contains(string(c), "root=PARTUUID=deadbeef-03") {
		t.Fatalf("cmdline: %s", c)
	}
	s, _ := r.u.Status()
	if s.Staged == nil || s.Staged.Version != "v1.1.0" || s.Staged.Hash != m.Hash() {
		t.Fatalf("status: %+v", s)
	}
	if len(r.audit) != 1 || r.audit[0] != "update staged v1.1.0" {
		t.Fatalf("audit: %v", r.audit)
	}

	// The trial boot, from slot b: kept.
	b := Image{Board: layout.RPi, Version: "v1.1.0", Slot: layout.B}
	boot, err := OnBoot(r.store, b, r.loader, time.Now())
	if err != nil || boot.Trial == nil || boot.Trial.Version != "v1.1.0" {
		t.Fatalf("trial boot: %+v %v", boot, err)
	}
	if err := Keep(r.store, b, r.loader, time.Now(), "healthy"); err != nil {
		t.Fatal(err)
	}
	if st, _ := r.loader.State(); st.Default != layout.B {
		t.Fatalf("after keeping: %+v", st)
	}
	saved, _ := r.store.Load()
	if saved.LastGood != "v1.1.0" || saved.Staged != nil {
		t.Fatalf("state: %+v", saved)
	}
}

func TestRefusals(t *testing.T) {
	r := newRig(t)
	signer := func(k string) note.Signer { s, _ := note.NewSigner(k); return s }
	otherKey, _, _ := note.GenerateKey(rand.Reader, "test-updates")
	for name, c := range map[string]struct {
		b    []byte
		want error
	}{
		"badly signed": {r.bundle(t, layout.RPi, "v2.0.0", signer(otherKey)), bundle.ErrSignature},
		"older":        {r.bundle(t, layout.RPi, "v0.9.0", r.signer), ErrDowngrade},
		"same":         {r.bundle(t, layout.RPi, "v1.0.0", r.signer), ErrDowngrade},
		"other board":  {r.bundle(t, layout.PC, "v2.0.0", r.signer), ErrBoard},
	} {
		if _, err := r.u.Apply(context.Background(), bytes.NewReader(c.b), "upload"); !errors.Is(err, c.want) {
			t.Errorf("%s: %v, want %v", name, err, c.want)
		}
	}
	if st, _ := r.loader.State(); st.Trial != "" {
		t.Fatalf("a refused update was staged: %+v", st)
	}
	s, _ := r.u.Status()
	n := 0
	for _, e := range s.History {
		if e.Outcome == OutcomeRefused {
			n++
		}
	}
	if n != 4 || len(r.audit) != 4 {
		t.Fatalf("history %+v, audit %v", s.History, r.audit)
	}
}

func TestFailedTrialRollsBack(t *testing.T) {
	r := newRig(t)
	if _, err := r.u.Apply(context.Background(), bytes.NewReader(r.bundle(t, layout.RPi, "v1.1.0", r.signer)), "upload"); err != nil {
		t.Fatal(err)
	}
	b := Image{Board: layout.RPi, Version: "v1.1.0", Slot: layout.B}
	if _, err := OnBoot(r.store, b, r.loader, time.Now()); err != nil {
		t.Fatal(err)
	}
	if err := Fail(r.store, b, time.Now(), "dns: no answer"); err != nil {
		t.Fatal(err)
	}
	// The firmware starts config.txt's slot again: a.
	a := Image{Board: layout.RPi, Version: "v1.0.0", Slot: layout.A}
	boot, err := OnBoot(r.store, a, r.loader, time.Now())
	if err != nil || boot.RolledBack == nil {
		t.Fatalf("back on a: %+v %v", boot, err)
	}
	st, _ := r.store.Load()
	last := st.History[len(st.History)-1]
	if last.Outcome != OutcomeRolledBack || !strings.Contains(last.Detail, "dns: no answer") || st.LastGood != "v1.0.0" || st.Staged != nil {
		t.Fatalf("state: %+v", st)
	}
	if ls, _ := r.loader.State(); ls.Trial != "" {
		t.Fatalf("the failed slot is still staged: %+v", ls)
	}
	// The same version may be tried again (it never became good).
	if _, err := r.u.Apply(context.Background(), bytes.NewReader(r.bundle(t, layout.RPi, "v1.1.0", r.signer)), "upload"); err != nil {
		t.Fatal(err)
	}
}

func TestAPI(t *testing.T) {
	r := newRig(t)
	srv := httptest.NewServer(API{Updater: r.u}.Handler())
	defer srv.Close()
	resp, err := http.Post(srv.URL+"/v1/board/update", "application/octet-stream", bytes.NewReader([]byte("not an update")))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest || !strings.Contains(string(body), "not a Redoubt update file") {
		t.Fatalf("%d %s", resp.StatusCode, body)
	}
	resp, _ = http.Post(srv.URL+"/v1/board/update", "application/octet-stream", bytes.NewReader(r.bundle(t, layout.RPi, "v1.2.0", r.signer)))
	body, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), `"version":"v1.2.0"`) {
		t.Fatalf("%d %s", resp.StatusCode, body)
	}
}

func TestFetchNeedsTheVPN(t *testing.T) {
	r := newRig(t)
	if _, err := r.u.Fetch(context.Background(), "https://updates.example/x.rdu"); err == nil || !strings.Contains(err.Error(), "VPN") {
		t.Fatalf("fetch without a VPN: %v", err)
	}
	// Through a client standing in for the VPN's egress.
	bun := r.bundle(t, layout.RPi, "v1.3.0", r.signer)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.Write(bun) }))
	defer srv.Close()
	r.u.deps.Fetch = func() *http.Client { return srv.Client() }
	m, err := r.u.Fetch(context.Background(), srv.URL+"/x.rdu")
	if err != nil || m.Version != "v1.3.0" {
		t.Fatalf("%+v %v", m, err)
	}
	if s, _ := r.u.Status(); s.History[len(s.History)-1].Source != srv.URL+"/x.rdu" {
		t.Fatalf("source not recorded: %+v", s.History)
	}
}
