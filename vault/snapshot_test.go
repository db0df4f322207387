package vault

import (
	"errors"
	"testing"
)

func TestSnapshotRestore(t *testing.T) {
	v, _ := newVault(t)
	if _, err := v.Snapshot(); !errors.Is(err, ErrLocked) {
		t.Fatalf("snapshot of a locked vault: %v", err)
	}
	if err := v.Init([]byte("old passphrase"), cheap); err != nil {
		t.Fatal(err)
	}
	v.Put("vpn", "config", []byte("PrivateKey = x"))
	v.Put("members", "alice", []byte(`{"name":"alice"}`))
	snap, err := v.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	fresh, _ := newVault(t)
	if err := fresh.RestoreSnapshot([]byte("new passphrase"), cheap, snap); err != nil {
		t.Fatal(err)
	}
	if got, err := fresh.Get("members", "alice"); err != nil || string(got) != `{"name":"alice"}` {
		t.Fatalf("restored record: %q %v", got, err)
	}
	if keys, _ := fresh.List("vpn"); len(keys) != 1 || keys[0] != "config" {
		t.Fatalf("restored list: %v", keys)
	}
	fresh.Lock()
	if err := fresh.Unlock([]byte("old passphrase")); err == nil {
		t.Fatal("the old passphrase opens the restored vault")
	}
	if err := fresh.Unlock([]byte("new passphrase")); err != nil {
		t.Fatal(err)
	}
	// Only onto a vault with no owner; a damaged snapshot is refused.
	if err := fresh.RestoreSnapshot([]byte("x"), cheap, snap); !errors.Is(err, ErrInitialized) {
		t.Fatalf("restore over an owner's vault: %v", err)
	}
	other, _ := newVault(t)
	bad := []byte(string(snap[:len(snap)-40]) + `"}}}`)
	if err := other.RestoreSnapshot([]byte("x"), cheap, bad); err == nil {
		t.Fatal("a damaged snapshot was restored")
	}
}
