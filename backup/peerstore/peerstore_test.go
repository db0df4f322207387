package peerstore_test

import (
	"bytes"
	"context"
	"errors"
	"net"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/redoubt/redoubt/backup/peerstore"
	"github.com/redoubt/redoubt/backup/repo"
	"github.com/redoubt/redoubt/backup/target"
	"github.com/redoubt/redoubt/backup/target/peer"
)

type memPersist struct {
	mu    sync.Mutex
	peers []peerstore.Peer
}

func (m *memPersist) Load() ([]peerstore.Peer, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]peerstore.Peer{}, m.peers...), nil
}
func (m *memPersist) Save(p []peerstore.Peer) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.peers = append([]peerstore.Peer{}, p...)
	return nil
}

func dial(ctx context.Context, network, addr string) (net.Conn, error) {
	var d net.Dialer
	return d.DialContext(ctx, network, addr)
}

func TestPeerStore(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	srv, err := peerstore.New(dir, &memPersist{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	code, err := srv.Add("kestrel", 64<<20)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := srv.Add("Kestrel", 64<<20); err == nil {
		t.Fatal("a second store of the same name")
	}
	hs := httptest.NewServer(srv.Handler())
	defer hs.Close()
	addr := strings.TrimPrefix(hs.URL, "http://")
	st, err := peer.New(addr, code, dial)
	if err != nil {
		t.Fatal(err)
	}

	// A repository on the peer: back up, restore.
	src := t.TempDir()
	os.WriteFile(filepath.Join(src, "notes.txt"), bytes.Repeat([]byte("team notes\n"), 10000), 0o600)
	master, rec := make([]byte, 32), bytes.Repeat([]byte{7}, 32)
	r, err := repo.Init(ctx, st, master, rec, "SET")
	if err != nil {
		t.Fatal(err)
	}
	s, err := r.Backup(ctx, []repo.Item{{Name: "state", Path: src}}, repo.Options{Verify: true})
	if err != nil {
		t.Fatal(err)
	}
	// The peer's files hold nothing readable.
	filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		if err == nil && fi.Mode().IsRegular() {
			b, _ := os.ReadFile(p)
			if bytes.Contains(b, []byte("team notes")) {
				t.Errorf("%s holds the backup's content in clear", p)
			}
		}
		return nil
	})
	// The read code, registered, lets a fresh box (with the recovery key
	// only) read it back, but not change it.
	if err := st.RegisterReadCode(ctx, peer.ReadCode(rec)); err != nil {
		t.Fatal(err)
	}
	ro, _ := peer.New(addr, peer.ReadCode(rec), dial)
	m2, err := repo.MasterFromRecovery(ctx, ro, rec)
	if err != nil || !bytes.Equal(m2, master) {
		t.Fatalf("recovery through the read code: %v", err)
	}
	r2, err := repo.Open(ctx, ro, m2)
	if err != nil {
		t.Fatal(err)
	}
	rd, _ := r2.NewReader(ctx, s)
	dst := filepath.Join(t.TempDir(), "r")
	if _, err := rd.Restore(ctx, "state", dst); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(filepath.Join(dst, "notes.txt")); !bytes.Contains(b, []byte("team notes")) {
		t.Fatal("restored content")
	}
	if err := ro.Put(ctx, "snapshots/x", []byte("x")); err == nil || !strings.Contains(err.Error(), "403") {
		t.Fatalf("a write with the read code: %v", err)
	}
	// A wrong code opens nothing.
	bad, _ := peer.New(addr, strings.Repeat("x", 32), dial)
	if _, err := bad.List(ctx, ""); err == nil || !strings.Contains(err.Error(), "401") {
		t.Fatalf("a wrong code: %v", err)
	}
	// The quota holds.
	if err := st.Put(ctx, "data/zz/big", make([]byte, 64<<20)); err == nil || !strings.Contains(err.Error(), "quota is full") {
		t.Fatalf("beyond the quota: %v", err)
	}
	ps := srv.Peers()
	if len(ps) != 1 || ps[0].Used == 0 || !ps[0].CanRecover {
		t.Fatalf("peers %+v", ps)
	}
	if _, err := st.Get(ctx, "nothing/here"); !errors.Is(err, target.ErrNotFound) {
		t.Fatalf("a missing object: %v", err)
	}
	if err := srv.Remove("kestrel"); err != nil {
		t.Fatal(err)
	}
	if _, err := st.List(ctx, ""); err == nil {
		t.Fatal("a removed store still answers")
	}
}

func TestParseSize(t *testing.T) {
	for in, want := range map[string]int64{"20GB": 20e9, "512MiB": 512 << 20, "1.5 TiB": 3 << 39, "2g": 2 << 30} {
		if got, err := peerstore.ParseSize(in); err != nil || got != want {
			t.Errorf("%s: %d %v, want %d", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "12", "-1GB", "GB"} {
		if _, err := peerstore.ParseSize(bad); err == nil {
			t.Errorf("%q parsed", bad)
		}
	}
}
