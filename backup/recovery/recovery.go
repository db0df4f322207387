// Package recovery is the backups' recovery key and its shares as people
// handle them: written down, printed, typed back into a fresh box's setup
// wizard. The key is 32 random bytes; it unlocks the backup repository (and
// reaches it on a teammate's box) without the owner's passphrase. The owner
// can keep it whole, or split it among members, k of n (Shamir, backup/shamir):
// each member holds one share, and any k of them rebuild the key.
//
// Both are written in base32 (A–Z, 2–7; case, spaces and dashes ignored, and
// 0, 1, 8 read as O, I, B) in groups of five, with a prefix and check bytes,
// so a typo is caught at once and named. A share also says which set it
// belongs to, how many are needed, and its number; a rebuilt key is checked
// against its set, so a wrong or altered share is refused, and with more than
// k shares, found.
//
// The backup room imports it, and the setup wizard's restore path.
package recovery

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base32"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/redoubt/redoubt/backup/shamir"
)

// KeySize is the recovery key's length.
const KeySize = 32

// Key is a recovery key.
type Key [KeySize]byte

// NewKey makes a random key.
func NewKey() (Key, error) {
	var k Key
	if _, err := io.ReadFull(rand.Reader, k[:]); err != nil {
		return k, fmt.Errorf("making a recovery key: %w", err)
	}
	return k, nil
}

const (
	keyPrefix   = "RK"
	sharePrefix = "RS"
	version     = 1
	checkLen    = 4
)

var b32 = base32.StdEncoding.WithPadding(base32.NoPadding)

// SetID identifies the key's share sets: 4 bytes of a hash of the key, which
// the shares carry and the rebuilt key must match.
func (k Key) SetID() [4]byte {
	h := sha256.Sum256(append([]byte("redoubt recovery set\n"), k[:]...))
	return [4]byte(h[:4])
}

// String writes the key for a person: "RK-XXXXX-XXXXX-…".
func (k Key) String() string { return encode(keyPrefix, append([]byte{version}, k[:]...)) }

// ParseKey reads a key as String wrote it.
func ParseKey(s string) (Key, error) {
	var k Key
	raw, err := decode(keyPrefix, s, "recovery key")
	if err != nil {
		return k, err
	}
	if len(raw) != 1+KeySize || raw[0] != version {
		return k, fmt.Errorf("the recovery key is %d characters too short or long: check that you copied all of it", abs(len(raw)-1-KeySize)*8/5)
	}
	copy(k[:], raw[1:])
	return k, nil
}

func abs(n int) int {
	if n < 0 {
		return -n
	}
	return n
}

// Share is one member's share of a recovery key.
type Share struct {
	Set    [4]byte
	K, N   int
	Number int // x: 1…N
	Y      [KeySize]byte
}

// String writes the share for a person: "RS-…".
func (s Share) String() string {
	b := []byte{version}
	b = append(b, s.Set[:]...)
	b = append(b, byte(s.K), byte(s.N), byte(s.Number))
	b = append(b, s.Y[:]...)
	return encode(sharePrefix, b)
}

// SetName is the set's id as people see it: "A1B2C3D4".
func (s Share) SetName() string { return fmt.Sprintf("%X", s.Set) }

// ParseShare reads a share as String wrote it.
func ParseShare(text string) (Share, error) {
	var s Share
	raw, err := decode(sharePrefix, text, "share")
	if err != nil {
		return s, err
	}
	if len(raw) != 1+4+3+KeySize || raw[0] != version {
		return s, errors.New("the share has the wrong length: check that you copied all of it")
	}
	copy(s.Set[:], raw[1:5])
	s.K, s.N, s.Number = int(raw[5]), int(raw[6]), int(raw[7])
	if s.K < 2 || s.N < s.K || s.Number < 1 || s.Number > s.N {
		return s, fmt.Errorf("the share says it is number %d of %d, %d needed: it is damaged", s.Number, s.N, s.K)
	}
	copy(s.Y[:], raw[8:])
	return s, nil
}

// Split makes n shares of k, one per member.
func Split(k Key, n, threshold int) ([]Share, error) {
	if threshold < 2 || n < threshold || n > 64 {
		return nil, fmt.Errorf("%d of %d members: want at least 2 needed, and at most 64 members", threshold, n)
	}
	parts, err := shamir.Split(k[:], n, threshold, rand.Reader)
	if err != nil {
		return nil, err
	}
	out := make([]Share, n)
	for i, p := range parts {
		out[i] = Share{Set: k.SetID(), K: threshold, N: n, Number: int(p.X), Y: [KeySize]byte(p.Y)}
	}
	return out, nil
}

// ShareError names the share that is wrong.
type ShareError struct {
	// Index is the share's place in what was given (1-based), 0 for all.
	Index  int
	Reason string
}

func (e *ShareError) Error() string {
	if e.Index == 0 {
		return e.Reason
	}
	return fmt.Sprintf("share %d: %s", e.Index, e.Reason)
}

// Combine parses the shares people typed and rebuilds the key. Every mistake
// is named: a typo (and in which share), a share from another set, the same
// share twice, too few, or a share that does not fit the others (found when
// more than k are given).
func Combine(texts []string) (Key, error) {
	var key Key
	var shares []Share
	for i, t := range texts {
		if strings.TrimSpace(t) == "" {
			continue
		}
		s, err := ParseShare(t)
		if err != nil {
			return key, &ShareError{Index: i + 1, Reason: err.Error()}
		}
		for j, o := range shares {
			if o.Set != s.Set {
				return key, &ShareError{Index: i + 1, Reason: fmt.Sprintf("it belongs to set %s, share %d to set %s: they are shares of different recovery keys", s.SetName(), j+1, o.SetName())}
			}
			if o.K != s.K || o.N != s.N {
				return key, &ShareError{Index: i + 1, Reason: fmt.Sprintf("it says %d of %d are needed, share %d says %d of %d: one of them is damaged", s.K, s.N, j+1, o.K, o.N)}
			}
			if o.Number == s.Number {
				return key, &ShareError{Index: i + 1, Reason: fmt.Sprintf("it is share number %d again (as share %d): each member's share is different", s.Number, j+1)}
			}
		}
		shares = append(shares, s)
	}
	if len(shares) == 0 {
		return key, &ShareError{Reason: "no share given"}
	}
	need := shares[0].K
	if len(shares) < need {
		return key, &ShareError{Reason: fmt.Sprintf("%d share(s) given: set %s needs %d of its %d", len(shares), shares[0].SetName(), need, shares[0].N)}
	}
	try := func(sub []Share) (Key, bool) {
		parts := make([]shamir.Share, len(sub))
		for i, s := range sub {
			parts[i] = shamir.Share{X: byte(s.Number), Y: s.Y[:]}
		}
		raw, err := shamir.Combine(parts)
		if err != nil {
			return Key{}, false
		}
		k := Key(raw)
		return k, k.SetID() == sub[0].Set
	}
	if k, ok := try(shares[:need]); ok && (len(shares) == need || func() bool { _, ok := try(shares); return ok }()) {
		return k, nil
	}
	if len(shares) == need {
		return key, &ShareError{Reason: fmt.Sprintf("these %d shares do not rebuild the recovery key of set %s: one of them was altered or mistyped in a way its check digits missed", need, shares[0].SetName())}
	}
	// More than k: find the shares that every good subset leaves out.
	good := map[int]bool{}
	var found Key
	var ok bool
	subsets(len(shares), need, func(idx []int) {
		sub := make([]Share, len(idx))
		for i, x := range idx {
			sub[i] = shares[x]
		}
		if k, yes := try(sub); yes {
			found, ok = k, true
			for _, x := range idx {
				good[x] = true
			}
		}
	})
	if !ok {
		return key, &ShareError{Reason: fmt.Sprintf("no %d of these %d shares rebuild the recovery key of set %s: more than one is wrong", need, len(shares), shares[0].SetName())}
	}
	var bad []string
	for i := range shares {
		if !good[i] {
			bad = append(bad, fmt.Sprintf("%d (number %d)", i+1, shares[i].Number))
		}
	}
	return found, &ShareError{Reason: fmt.Sprintf("the key was rebuilt without share(s) %s, which do not fit the others: the key is right, but those shares are wrong", strings.Join(bad, ", "))}
}

// subsets calls f with every k-subset of 0…n-1 (n ≤ 64, so this stays small
// for the share counts people handle).
func subsets(n, k int, f func([]int)) {
	idx := make([]int, k)
	var rec func(start, depth int)
	rec = func(start, depth int) {
		if depth == k {
			f(idx)
			return
		}
		for i := start; i <= n-(k-depth); i++ {
			idx[depth] = i
			rec(i+1, depth+1)
		}
	}
	rec(0, 0)
}

// encode writes prefix-GROUPS with check bytes.
func encode(prefix string, payload []byte) string {
	sum := sha256.Sum256(append([]byte(prefix), payload...))
	s := b32.EncodeToString(append(bytes.Clone(payload), sum[:checkLen]...))
	var groups []string
	for len(s) > 5 {
		groups = append(groups, s[:5])
		s = s[5:]
	}
	groups = append(groups, s)
	return prefix + "-" + strings.Join(groups, "-")
}

// decode reads what encode wrote, naming the mistake.
func decode(prefix, s, what string) ([]byte, error) {
	s = strings.ToUpper(strings.TrimSpace(s))
	clean := strings.Map(func(r rune) rune {
		switch r {
		case ' ', '-', '\t', '\n', '\r':
			return -1
		case '0':
			return 'O'
		case '1':
			return 'I'
		case '8':
			return 'B'
		}
		return r
	}, s)
	if !strings.HasPrefix(clean, prefix) {
		other := "a share (RS-…)"
		if prefix == sharePrefix {
			other = "a recovery key (RK-…)"
		}
		if strings.HasPrefix(clean, keyPrefix) || strings.HasPrefix(clean, sharePrefix) {
			return nil, fmt.Errorf("this is %s, not a %s", other, what)
		}
		return nil, fmt.Errorf("a %s starts with %s-", what, prefix)
	}
	clean = clean[len(prefix):]
	for i, r := range clean {
		if !(r >= 'A' && r <= 'Z' || r >= '2' && r <= '7') {
			return nil, fmt.Errorf("the %s has %q at character %d: only letters and the digits 2 to 7 are used", what, r, i+1)
		}
	}
	raw, err := b32.DecodeString(clean)
	if err != nil || len(raw) <= checkLen {
		return nil, fmt.Errorf("the %s is too short or has a character missing: check that you copied all of it", what)
	}
	payload, check := raw[:len(raw)-checkLen], raw[len(raw)-checkLen:]
	sum := sha256.Sum256(append([]byte(prefix), payload...))
	if !bytes.Equal(sum[:checkLen], check) {
		return nil, fmt.Errorf("the %s's check digits do not match: a character is wrong or missing; type it again", what)
	}
	return payload, nil
}
