// Package bundle is the update file: a signed manifest (a C2SP signed note,
// Ed25519) naming the board, the version and the SHA-256 and size of each part,
// followed by the parts themselves (the kernel, the root file system). The image
// builder writes bundles; the box reads them, untrusted, from an upload or
// through the VPN. Any package may import it.
//
// The file is:
//
//	redoubt-update 1\n
//	<length of the signed note, decimal>\n
//	<signed note>
//	<part 1><part 2>…   (in the manifest's order, back to back)
//
// and the note's text is, one field a line, in this order:
//
//	redoubt update
//	board pc
//	arch amd64
//	version v0.1.42
//	commit 4e0ed9f2a1b3
//	part boot/vmlinuz 16548864 <sha256 hex>
//	part root 13434880 <sha256 hex>
//
// Nothing in a part is believed before the note's signature is, and a part is
// used only once its whole length has hashed to the manifest's value.
package bundle

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"path"
	"strconv"
	"strings"

	"golang.org/x/mod/semver"
	"golang.org/x/mod/sumdb/note"

	"github.com/redoubt/redoubt/board/layout"
)

// Magic opens every bundle.
const Magic = "redoubt-update 1\n"

// Limits on untrusted input.
const (
	MaxNote     = 256 << 10 // a Pi's update names ~400 files (device trees, overlays)
	MaxParts    = 2048
	MaxPartSize = layout.SlotSize
)

// Part is one file of an update.
type Part struct {
	// Name is "root" (the slot's squashfs) or "boot/<file>" (a file in the
	// slot's directory on the boot partition: the kernel, a device tree).
	Name   string
	Size   int64
	SHA256 [32]byte
}

// Manifest is what a bundle claims.
type Manifest struct {
	Board   layout.Board
	Arch    string
	Version string // semantic version, "v1.2.3"
	Commit  string
	Parts   []Part
}

// Validate names the first wrong field.
func (m Manifest) Validate() error {
	if _, err := layout.ParseBoard(string(m.Board)); err != nil {
		return fmt.Errorf("manifest: %w", err)
	}
	if m.Arch != m.Board.Arch() {
		return fmt.Errorf("manifest: arch %q for board %s: want %s", m.Arch, m.Board, m.Board.Arch())
	}
	if !semver.IsValid(m.Version) {
		return fmt.Errorf("manifest: version %q is not a semantic version (v1.2.3)", m.Version)
	}
	if m.Commit == "" || strings.ContainsAny(m.Commit, " \n") || len(m.Commit) > 64 {
		return fmt.Errorf("manifest: commit %q: want a short hash", m.Commit)
	}
	if len(m.Parts) == 0 || len(m.Parts) > MaxParts {
		return fmt.Errorf("manifest: %d parts: want 1 to %d", len(m.Parts), MaxParts)
	}
	seen := map[string]bool{}
	root := false
	for _, p := range m.Parts {
		if err := checkPartName(p.Name); err != nil {
			return fmt.Errorf("manifest: %w", err)
		}
		if seen[p.Name] {
			return fmt.Errorf("manifest: part %q twice", p.Name)
		}
		seen[p.Name] = true
		root = root || p.Name == "root"
		if p.Size <= 0 || p.Size > MaxPartSize {
			return fmt.Errorf("manifest: part %q is %d bytes: want 1 to %d", p.Name, p.Size, int64(MaxPartSize))
		}
	}
	if !root {
		return fmt.Errorf("manifest: no root part")
	}
	if !seen["boot/"+m.Board.KernelName()] {
		return fmt.Errorf("manifest: no kernel (boot/%s)", m.Board.KernelName())
	}
	return nil
}

func checkPartName(n string) error {
	if n == "root" {
		return nil
	}
	f, ok := strings.CutPrefix(n, "boot/")
	if !ok || f == "" || len(n) > 128 || path.Clean(f) != f || strings.HasPrefix(f, "/") || strings.HasPrefix(f, "..") || strings.Contains(f, "/../") {
		return fmt.Errorf("part name %q: want root or boot/<relative path>", n)
	}
	for _, r := range f {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("._-/", r)) {
			return fmt.Errorf("part name %q: character %q not allowed", n, r)
		}
	}
	return nil
}

// Text is the manifest as the note's text.
func (m Manifest) Text() string {
	var b strings.Builder
	fmt.Fprintf(&b, "redoubt update\nboard %s\narch %s\nversion %s\ncommit %s\n", m.Board, m.Arch, m.Version, m.Commit)
	for _, p := range m.Parts {
		fmt.Fprintf(&b, "part %s %d %s\n", p.Name, p.Size, hex.EncodeToString(p.SHA256[:]))
	}
	return b.String()
}

// parseText reads a manifest's text strictly.
func parseText(text string) (Manifest, error) {
	var m Manifest
	lines := strings.Split(strings.TrimSuffix(text, "\n"), "\n")
	if len(lines) < 6 || lines[0] != "redoubt update" {
		return m, errors.New("manifest: not a redoubt update")
	}
	want := []string{"board", "arch", "version", "commit"}
	vals := make([]string, len(want))
	for i, k := range want {
		v, ok := strings.CutPrefix(lines[1+i], k+" ")
		if !ok {
			return m, fmt.Errorf("manifest: line %d: want %q", 2+i, k+" …")
		}
		vals[i] = v
	}
	m.Board, m.Arch, m.Version, m.Commit = layout.Board(vals[0]), vals[1], vals[2], vals[3]
	for i, l := range lines[5:] {
		f := strings.Fields(l)
		if len(f) != 4 || f[0] != "part" {
			return m, fmt.Errorf("manifest: line %d: want \"part NAME SIZE SHA256\"", 6+i)
		}
		size, err := strconv.ParseInt(f[2], 10, 64)
		if err != nil {
			return m, fmt.Errorf("manifest: line %d: size %q: %v", 6+i, f[2], err)
		}
		sum, err := hex.DecodeString(f[3])
		if err != nil || len(sum) != 32 {
			return m, fmt.Errorf("manifest: line %d: sha256 %q: want 64 hex digits", 6+i, f[3])
		}
		p := Part{Name: f[1], Size: size}
		copy(p.SHA256[:], sum)
		m.Parts = append(m.Parts, p)
	}
	return m, m.Validate()
}

// Write writes a bundle: the manifest signed by signer, then the parts, read
// from open in the manifest's order.
func Write(w io.Writer, m Manifest, signer note.Signer, open func(name string) (io.ReadCloser, error)) error {
	if err := m.Validate(); err != nil {
		return err
	}
	signed, err := note.Sign(&note.Note{Text: m.Text()}, signer)
	if err != nil {
		return fmt.Errorf("signing the manifest: %w", err)
	}
	if _, err := fmt.Fprintf(w, "%s%d\n", Magic, len(signed)); err != nil {
		return err
	}
	if _, err := w.Write(signed); err != nil {
		return err
	}
	for _, p := range m.Parts {
		r, err := open(p.Name)
		if err != nil {
			return fmt.Errorf("opening part %s: %w", p.Name, err)
		}
		n, err := io.Copy(w, io.LimitReader(r, p.Size+1))
		r.Close()
		if err != nil {
			return fmt.Errorf("writing part %s: %w", p.Name, err)
		}
		if n != p.Size {
			return fmt.Errorf("writing part %s: %d bytes, the manifest says %d", p.Name, n, p.Size)
		}
	}
	return nil
}

// ErrSignature is a manifest whose signature does not verify with the box's key.
var ErrSignature = errors.New("the update is not signed by this box's update key")

// Reader reads a bundle whose manifest has been verified.
type Reader struct {
	Manifest Manifest
	// Signer is the name of the key that signed it.
	Signer string
	r      *bufio.Reader
	next   int
	cur    *PartReader
}

// Open reads the header and manifest from r and checks the signature with
// verifier. It reads nothing of the parts.
func Open(r io.Reader, verifier note.Verifier) (*Reader, error) {
	br := bufio.NewReaderSize(r, 64<<10)
	magic := make([]byte, len(Magic))
	if _, err := io.ReadFull(br, magic); err != nil || string(magic) != Magic {
		return nil, errors.New("not a Redoubt update file (wrong header)")
	}
	line, err := br.ReadString('\n')
	if err != nil || len(line) > 8 {
		return nil, errors.New("update file: bad manifest length")
	}
	n, err := strconv.Atoi(strings.TrimSuffix(line, "\n"))
	if err != nil || n <= 0 || n > MaxNote {
		return nil, fmt.Errorf("update file: manifest length %q: want 1 to %d", strings.TrimSpace(line), MaxNote)
	}
	msg := make([]byte, n)
	if _, err := io.ReadFull(br, msg); err != nil {
		return nil, fmt.Errorf("update file: reading the manifest: %w", err)
	}
	nt, err := note.Open(msg, note.VerifierList(verifier))
	if err != nil {
		var unknown *note.UnknownVerifierError
		var inv *note.InvalidSignatureError
		var unverified *note.UnverifiedNoteError
		if errors.As(err, &unknown) || errors.As(err, &inv) || errors.As(err, &unverified) {
			return nil, fmt.Errorf("%w (%v)", ErrSignature, err)
		}
		return nil, fmt.Errorf("update file: manifest: %w", err)
	}
	m, err := parseText(nt.Text)
	if err != nil {
		return nil, err
	}
	return &Reader{Manifest: m, Signer: nt.Sigs[0].Name, r: br}, nil
}

// Next returns the next part and a reader of exactly its bytes, which hashes
// them; after the reader's EOF, Check says whether they matched. io.EOF after
// the last part.
func (b *Reader) Next() (Part, *PartReader, error) {
	if b.next >= len(b.Manifest.Parts) {
		return Part{}, nil, io.EOF
	}
	if b.cur != nil {
		// Whatever the caller left of the previous part is skipped.
		if _, err := io.Copy(io.Discard, b.cur.r); err != nil {
			return Part{}, nil, err
		}
	}
	p := b.Manifest.Parts[b.next]
	b.next++
	b.cur = &PartReader{part: p, r: io.LimitReader(b.r, p.Size), h: sha256.New()}
	return p, b.cur, nil
}

// PartReader reads one part, hashing it.
type PartReader struct {
	part Part
	r    io.Reader
	h    hash.Hash
	n    int64
}

func (p *PartReader) Read(b []byte) (int, error) {
	n, err := p.r.Read(b)
	p.h.Write(b[:n])
	p.n += int64(n)
	return n, err
}

// Check says whether the part was read whole and its hash matched.
func (p *PartReader) Check() error {
	if p.n != p.part.Size {
		return fmt.Errorf("update file: part %s is cut short: %d of %d bytes", p.part.Name, p.n, p.part.Size)
	}
	if got := p.h.Sum(nil); !bytes.Equal(got, p.part.SHA256[:]) {
		return fmt.Errorf("update file: part %s: SHA-256 %x, the signed manifest says %x", p.part.Name, got, p.part.SHA256)
	}
	return nil
}

// Hash is the SHA-256 of the signed manifest's text: the update's identity in
// the audit log.
func (m Manifest) Hash() string {
	s := sha256.Sum256([]byte(m.Text()))
	return hex.EncodeToString(s[:])
}

// Compare orders versions as semver does.
func Compare(a, b string) int { return semver.Compare(a, b) }
