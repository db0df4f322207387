package bundle

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"io"
	"strings"
	"testing"

	"golang.org/x/mod/sumdb/note"

	"github.com/redoubt/redoubt/board/layout"
)

func keys(t testing.TB) (note.Signer, note.Verifier) {
	skey, vkey, err := note.GenerateKey(rand.Reader, "test-updates")
	if err != nil {
		t.Fatal(err)
	}
	s, _ := note.NewSigner(skey)
	v, _ := note.NewVerifier(vkey)
	return s, v
}

func sample(t testing.TB, s note.Signer, parts map[string][]byte) []byte {
	m := Manifest{Board: layout.PC, Arch: "amd64", Version: "v1.2.3", Commit: "abc123"}
	for _, n := range []string{"boot/vmlinuz", "root"} {
		m.Parts = append(m.Parts, Part{Name: n, Size: int64(len(parts[n])), SHA256: sha256.Sum256(parts[n])})
	}
	var b bytes.Buffer
	if err := Write(&b, m, s, func(n string) (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(parts[n])), nil }); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func TestRoundTrip(t *testing.T) {
	s, v := keys(t)
	parts := map[string][]byte{"boot/vmlinuz": []byte("kernel bytes"), "root": bytes.Repeat([]byte("r"), 100000)}
	r, err := Open(bytes.NewReader(sample(t, s, parts)), v)
	if err != nil {
		t.Fatal(err)
	}
	if r.Manifest.Version != "v1.2.3" || r.Signer != "test-updates" || len(r.Manifest.Hash()) != 64 {
		t.Fatalf("manifest %+v signer %q", r.Manifest, r.Signer)
	}
	for {
		p, pr, err := r.Next()
		if err == io.EOF {
			break
		}
		got, _ := io.ReadAll(pr)
		if err := pr.Check(); err != nil || !bytes.Equal(got, parts[p.Name]) {
			t.Fatalf("part %s: %v", p.Name, err)
		}
	}
}

func TestWrongKeyRefused(t *testing.T) {
	s, _ := keys(t)
	_, other := keys(t)
	_, err := Open(bytes.NewReader(sample(t, s, map[string][]byte{"boot/vmlinuz": []byte("k"), "root": []byte("r")})), other)
	if !errors.Is(err, ErrSignature) {
		t.Fatalf("another key's update: %v, want ErrSignature", err)
	}
}

func TestDamagedPartDetected(t *testing.T) {
	s, v := keys(t)
	b := sample(t, s, map[string][]byte{"boot/vmlinuz": []byte("kernel"), "root": []byte("rootfs contents")})
	b[len(b)-3] ^= 1 // a flipped bit in the root
	r, err := Open(bytes.NewReader(b), v)
	if err != nil {
		t.Fatal(err)
	}
	var last error
	for {
		_, pr, err := r.Next()
		if err == io.EOF {
			break
		}
		io.Copy(io.Discard, pr)
		if err := pr.Check(); err != nil {
			last = err
		}
	}
	if last == nil || !strings.Contains(last.Error(), "SHA-256") {
		t.Fatalf("a damaged part: %v", last)
	}
	// Cut short.
	r, _ = Open(bytes.NewReader(b[:len(b)-5]), v)
	r.Next()
	_, pr, _ := r.Next()
	io.Copy(io.Discard, pr)
	if err := pr.Check(); err == nil || !strings.Contains(err.Error(), "cut short") {
		t.Fatalf("a short part: %v", err)
	}
}

func TestTamperedManifestRefused(t *testing.T) {
	s, v := keys(t)
	b := sample(t, s, map[string][]byte{"boot/vmlinuz": []byte("k"), "root": []byte("r")})
	b = bytes.Replace(b, []byte("v1.2.3"), []byte("v9.2.3"), 1)
	if _, err := Open(bytes.NewReader(b), v); !errors.Is(err, ErrSignature) {
		t.Fatalf("a changed version: %v", err)
	}
}

func TestValidate(t *testing.T) {
	good := Manifest{Board: layout.PC, Arch: "amd64", Version: "v1.0.0", Commit: "c", Parts: []Part{{Name: "boot/vmlinuz", Size: 1}, {Name: "root", Size: 1}}}
	if err := good.Validate(); err != nil {
		t.Fatal(err)
	}
	for name, mut := range map[string]func(*Manifest){
		"board":     func(m *Manifest) { m.Board = "toaster" },
		"arch":      func(m *Manifest) { m.Arch = "arm64" },
		"version":   func(m *Manifest) { m.Version = "1.0" },
		"traversal": func(m *Manifest) { m.Parts[0].Name = "boot/../etc/x" },
		"absolute":  func(m *Manifest) { m.Parts[0].Name = "boot//etc" },
		"no root":   func(m *Manifest) { m.Parts = m.Parts[:1] },
		"no kernel": func(m *Manifest) { m.Parts = m.Parts[1:] },
		"too big":   func(m *Manifest) { m.Parts[1].Size = MaxPartSize + 1 },
		"twice":     func(m *Manifest) { m.Parts[1].Name = "boot/vmlinuz" },
	} {
		m := good
		m.Parts = append([]Part(nil), good.Parts...)
		mut(&m)
		if err := m.Validate(); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func FuzzOpen(f *testing.F) {
	s, v := keys(f)
	f.Add(sample(f, s, map[string][]byte{"boot/vmlinuz": []byte("k"), "root": []byte("r")}))
	f.Add([]byte(Magic + "5\nhello"))
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := Open(bytes.NewReader(b), v)
		if err != nil {
			return
		}
		if err := r.Manifest.Validate(); err != nil {
			t.Fatalf("a verified manifest that does not validate: %v", err)
		}
	})
}
