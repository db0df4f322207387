package store

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

// A copy of a running store's database opens as the store it was.
func TestCopyRecords(t *testing.T) {
	dir, key := t.TempDir(), testKey()
	s := openT(t, dir, key)
	if err := s.Records().Put("note", []byte("kept")); err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := s.CopyRecords(&buf); err != nil {
		t.Fatal(err)
	}
	s.Close(nil)
	if err := s.CopyRecords(&buf); err == nil {
		t.Fatal("a closed store copied")
	}
	other := t.TempDir()
	if err := os.WriteFile(filepath.Join(other, "store.db"), buf.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	c := openT(t, other, key)
	defer c.Close(nil)
	if v, err := c.Records().Get("note"); err != nil || string(v) != "kept" {
		t.Fatalf("the copy: %q %v", v, err)
	}
}
