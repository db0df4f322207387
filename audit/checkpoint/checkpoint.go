// Package checkpoint is the audit log's checkpoints and proofs as a verifier
// sees them: the C2SP tlog-checkpoint text (origin, tree size, RFC 6962 root
// hash) in a signed note (C2SP signed-note, Ed25519), countersignatures by
// witnesses (C2SP tlog-cosignature, cosignature/v1), and the checks of
// consistency and inclusion proofs (golang.org/x/mod/sumdb/tlog).
//
// It is what both sides share: the log (audit/log) signs with it, and
// verifiers (audit/client, `redoubt audit verify`) check with it. The
// members' browsers do the same checks in JavaScript (apps/home/assets/audit.mjs).
// Any room may import it.
package checkpoint

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

// Checkpoint is a tree head: the log's name, its size and its root hash.
type Checkpoint struct {
	Origin string
	Size   int64
	Hash   tlog.Hash
}

// Body is the checkpoint's note text.
func (c Checkpoint) Body() []byte {
	return fmt.Appendf(nil, "%s\n%d\n%s\n", c.Origin, c.Size, base64.StdEncoding.EncodeToString(c.Hash[:]))
}

// String is the checkpoint on one line.
func (c Checkpoint) String() string {
	return fmt.Sprintf("%s size %d root %s", c.Origin, c.Size, base64.StdEncoding.EncodeToString(c.Hash[:]))
}

// MaxNote bounds a signed checkpoint with its countersignatures.
const MaxNote = 16 << 10

// ValidOrigin says whether s can be an origin (and a note key name): not
// empty, no spaces, no '+', printable, at most 256 bytes.
func ValidOrigin(s string) error {
	if s == "" || len(s) > 256 {
		return fmt.Errorf("origin %.40q: want 1 to 256 bytes", s)
	}
	for _, r := range s {
		if r <= ' ' || r == '+' || r == 0x7f || r > 0x7e {
			return fmt.Errorf("origin %.40q: want printable ASCII without spaces or '+'", s)
		}
	}
	return nil
}

// ParseBody reads a checkpoint's note text. Extension lines are refused: the
// box's log writes none.
func ParseBody(text []byte) (Checkpoint, error) {
	var c Checkpoint
	lines := strings.Split(string(text), "\n")
	if len(lines) != 4 || lines[3] != "" {
		return c, fmt.Errorf("checkpoint: want three lines (origin, size, root hash), got %d", len(lines)-1)
	}
	if err := ValidOrigin(lines[0]); err != nil {
		return c, fmt.Errorf("checkpoint: %w", err)
	}
	n, err := strconv.ParseInt(lines[1], 10, 64)
	if err != nil || n < 0 || strconv.FormatInt(n, 10) != lines[1] {
		return c, fmt.Errorf("checkpoint: size %.24q is not a decimal number without leading zeros", lines[1])
	}
	h, err := base64.StdEncoding.DecodeString(lines[2])
	if err != nil || len(h) != tlog.HashSize {
		return c, fmt.Errorf("checkpoint: root hash %.60q is not 32 bytes of base64", lines[2])
	}
	c.Origin, c.Size = lines[0], n
	copy(c.Hash[:], h)
	return c, nil
}

// Sign signs c as the log with signer (a note.Signer from the log's key,
// named after c.Origin).
func Sign(c Checkpoint, signer note.Signer) ([]byte, error) {
	if signer.Name() != c.Origin {
		return nil, fmt.Errorf("signing checkpoint: key %q is not the log's (%q)", signer.Name(), c.Origin)
	}
	return note.Sign(&note.Note{Text: string(c.Body())}, signer)
}

// Open verifies a signed checkpoint with the log's verifier key (a vkey) and
// returns it with the note; witnesses' cosignatures, if any are given, are
// checked too, and the note's Sigs list those that verified.
func Open(signed []byte, logKey string, witnesses ...Witness) (Checkpoint, *note.Note, error) {
	if len(signed) > MaxNote {
		return Checkpoint{}, nil, fmt.Errorf("checkpoint: %d bytes: at most %d", len(signed), MaxNote)
	}
	v, err := note.NewVerifier(logKey)
	if err != nil {
		return Checkpoint{}, nil, fmt.Errorf("the log's key %.60q: %w", logKey, err)
	}
	list := []note.Verifier{v}
	for _, w := range witnesses {
		list = append(list, w.verifier())
	}
	n, err := note.Open(signed, note.VerifierList(list...))
	if err != nil {
		var unverified *note.UnverifiedNoteError
		if errors.As(err, &unverified) {
			return Checkpoint{}, nil, fmt.Errorf("checkpoint: not signed by the log's key %s", v.Name())
		}
		return Checkpoint{}, nil, fmt.Errorf("checkpoint: %w", err)
	}
	logSigned := false
	for _, s := range n.Sigs {
		logSigned = logSigned || (s.Name == v.Name() && s.Hash == v.KeyHash())
	}
	if !logSigned {
		return Checkpoint{}, nil, fmt.Errorf("checkpoint: not signed by the log's key %s", v.Name())
	}
	c, err := ParseBody([]byte(n.Text))
	if err != nil {
		return Checkpoint{}, nil, err
	}
	if c.Origin != v.Name() {
		return Checkpoint{}, nil, fmt.Errorf("checkpoint: origin %q is not the log's key name %q", c.Origin, v.Name())
	}
	return c, n, nil
}

// Proof errors callers tell apart: each means the log is not what it
// claimed to be.
var (
	ErrShrunk       = errors.New("the log is smaller than a checkpoint it signed before: history was truncated")
	ErrInconsistent = errors.New("the log's history was rewritten: its new checkpoint does not extend the one seen before")
	ErrNotIncluded  = errors.New("the record is not in the log as its checkpoint says")
	ErrOtherLog     = errors.New("the checkpoint is from another log")
)

// CheckConsistency checks that next extends prev, with a proof from the log.
func CheckConsistency(prev, next Checkpoint, proof tlog.TreeProof) error {
	if prev.Origin != next.Origin {
		return fmt.Errorf("%w: %q, not %q", ErrOtherLog, next.Origin, prev.Origin)
	}
	if next.Size < prev.Size {
		return fmt.Errorf("%w (size %d, was %d)", ErrShrunk, next.Size, prev.Size)
	}
	if next.Size == prev.Size {
		if next.Hash != prev.Hash {
			return fmt.Errorf("%w: two different roots for size %d", ErrInconsistent, prev.Size)
		}
		return nil
	}
	if prev.Size == 0 {
		return nil
	}
	if err := tlog.CheckTree(proof, next.Size, next.Hash, prev.Size, prev.Hash); err != nil {
		return fmt.Errorf("%w (from size %d to %d): %v", ErrInconsistent, prev.Size, next.Size, err)
	}
	return nil
}

// CheckInclusion checks that leaf is record index of c, with a proof.
func CheckInclusion(c Checkpoint, index int64, leaf []byte, proof tlog.RecordProof) error {
	if index < 0 || index >= c.Size {
		return fmt.Errorf("%w: record %d is beyond size %d", ErrNotIncluded, index, c.Size)
	}
	if err := tlog.CheckRecord(proof, c.Size, c.Hash, index, tlog.RecordHash(leaf)); err != nil {
		return fmt.Errorf("%w: record %d: %v", ErrNotIncluded, index, err)
	}
	return nil
}

// Witness is a cosigner: a member's device that checked the log.
type Witness struct {
	Name string
	Key  ed25519.PublicKey
}

// ParseWitnessKey reads a witness's verifier key: "name+hash+base64(0x04 ||
// key)", as C2SP signed-note vkeys are written.
func ParseWitnessKey(vkey string) (Witness, error) {
	name, rest, ok := strings.Cut(vkey, "+")
	hashHex, keyB64, ok2 := strings.Cut(rest, "+") // the key's base64 may hold "+"
	if !ok || !ok2 {
		return Witness{}, fmt.Errorf("witness key %.60q: want name+hash+key", vkey)
	}
	if err := ValidOrigin(name); err != nil {
		return Witness{}, fmt.Errorf("witness key: name %w", err)
	}
	raw, err := base64.StdEncoding.DecodeString(keyB64)
	if err != nil || len(raw) != 1+ed25519.PublicKeySize || raw[0] != cosignatureAlg {
		return Witness{}, fmt.Errorf("witness key %.60q: want an Ed25519 cosignature key (0x04 and 32 bytes, base64)", vkey)
	}
	w := Witness{Name: name, Key: ed25519.PublicKey(raw[1:])}
	if h, err := strconv.ParseUint(hashHex, 16, 32); err != nil || len(hashHex) != 8 || uint32(h) != w.KeyID() {
		return Witness{}, fmt.Errorf("witness key %.60q: key hash %q does not match the name and key", vkey, hashHex)
	}
	return w, nil
}

// cosignatureAlg is C2SP tlog-cosignature's signature type for Ed25519.
const cosignatureAlg = 0x04

// VerifierKey writes the witness's key as a vkey.
func (w Witness) VerifierKey() string {
	return fmt.Sprintf("%s+%08x+%s", w.Name, w.KeyID(), base64.StdEncoding.EncodeToString(append([]byte{cosignatureAlg}, w.Key...)))
}

// KeyID is SHA-256(name || "\n" || 0x04 || key)[:4].
func (w Witness) KeyID() uint32 {
	h := sha256.New()
	h.Write([]byte(w.Name + "\n"))
	h.Write([]byte{cosignatureAlg})
	h.Write(w.Key)
	return binary.BigEndian.Uint32(h.Sum(nil))
}

// CosignedMessage is what a cosignature/v1 signs: a header, the time, and the
// checkpoint's body.
func CosignedMessage(body []byte, t int64) []byte {
	return append(fmt.Appendf(nil, "cosignature/v1\ntime %d\n", t), body...)
}

// Cosign signs c as witness w (with its private key) at t, and returns the
// signature line to append to the signed checkpoint.
func Cosign(c Checkpoint, w Witness, priv ed25519.PrivateKey, t time.Time) string {
	ts := t.Unix()
	sig := make([]byte, 4+8, 4+8+ed25519.SignatureSize)
	binary.BigEndian.PutUint32(sig, w.KeyID())
	binary.BigEndian.PutUint64(sig[4:], uint64(ts))
	sig = append(sig, ed25519.Sign(priv, CosignedMessage(c.Body(), ts))...)
	return fmt.Sprintf("— %s %s\n", w.Name, base64.StdEncoding.EncodeToString(sig))
}

// Cosignature is a witness's verified countersignature.
type Cosignature struct {
	Witness Witness
	Time    time.Time
}

// Cosignatures returns the witnesses among ws whose cosignatures on the note
// verified.
func Cosignatures(n *note.Note, ws []Witness) []Cosignature {
	var out []Cosignature
	for _, s := range n.Sigs {
		for _, w := range ws {
			if s.Name == w.Name && s.Hash == w.KeyID() {
				raw, _ := base64.StdEncoding.DecodeString(s.Base64)
				if len(raw) >= 12 {
					out = append(out, Cosignature{Witness: w, Time: time.Unix(int64(binary.BigEndian.Uint64(raw[4:12])), 0).UTC()})
				}
			}
		}
	}
	return out
}

// verifier is w as a note.Verifier of cosignature/v1.
func (w Witness) verifier() note.Verifier { return cosigVerifier{w} }

type cosigVerifier struct{ w Witness }

func (v cosigVerifier) Name() string    { return v.w.Name }
func (v cosigVerifier) KeyHash() uint32 { return v.w.KeyID() }
func (v cosigVerifier) Verify(msg, sig []byte) bool {
	if len(sig) != 8+ed25519.SignatureSize {
		return false
	}
	ts := binary.BigEndian.Uint64(sig)
	if ts > 1<<63-1 {
		return false
	}
	return ed25519.Verify(v.w.Key, CosignedMessage(msg, int64(ts)), sig[8:])
}

// SplitNote separates a signed note's text from its signature lines.
func SplitNote(signed []byte) (text []byte, sigs []byte, err error) {
	i := bytes.LastIndex(signed, []byte("\n\n"))
	if i < 0 {
		return nil, nil, errors.New("signed note: no blank line before the signatures")
	}
	return signed[:i+1], signed[i+2:], nil
}
