package recovery

import (
	"errors"
	"strings"
	"testing"
)

func TestKeyText(t *testing.T) {
	k, _ := NewKey()
	s := k.String()
	if !strings.HasPrefix(s, "RK-") {
		t.Fatal(s)
	}
	got, err := ParseKey(strings.ToLower(strings.ReplaceAll(s, "-", " ")))
	if err != nil || got != k {
		t.Fatalf("round trip: %v", err)
	}
	// One character changed: caught, and said so.
	b := []byte(s)
	i := strings.LastIndexByte(s, '-') - 3
	if b[i] == 'A' {
		b[i] = 'B'
	} else {
		b[i] = 'A'
	}
	if _, err := ParseKey(string(b)); err == nil || !strings.Contains(err.Error(), "check digits") {
		t.Fatalf("a typo: %v", err)
	}
	if _, err := ParseKey(s[:len(s)-6]); err == nil {
		t.Fatal("a cut key")
	}
	if _, err := ParseKey("RK-ABC9D"); err == nil || !strings.Contains(err.Error(), "'9'") {
		t.Fatalf("a bad character: %v", err)
	}
	sh, _ := Split(k, 3, 2)
	if _, err := ParseKey(sh[0].String()); err == nil || !strings.Contains(err.Error(), "this is a share") {
		t.Fatalf("a share given as a key: %v", err)
	}
}

func texts(shares []Share) []string {
	var out []string
	for _, s := range shares {
		out = append(out, s.String())
	}
	return out
}

func TestShares(t *testing.T) {
	k, _ := NewKey()
	shares, err := Split(k, 5, 3)
	if err != nil {
		t.Fatal(err)
	}
	all := texts(shares)
	for _, pick := range [][]int{{0, 1, 2}, {4, 2, 0}, {1, 3, 4}, {0, 1, 2, 3, 4}} {
		var in []string
		for _, i := range pick {
			in = append(in, all[i])
		}
		got, err := Combine(in)
		if err != nil || got != k {
			t.Fatalf("shares %v: %v", pick, err)
		}
	}
	var se *ShareError
	// Too few.
	if _, err := Combine(all[:2]); !errors.As(err, &se) || !strings.Contains(err.Error(), "needs 3 of its 5") {
		t.Fatalf("two shares: %v", err)
	}
	// The same share twice.
	if _, err := Combine([]string{all[0], all[1], all[0]}); !errors.As(err, &se) || se.Index != 3 || !strings.Contains(err.Error(), "again") {
		t.Fatalf("twice: %v", err)
	}
	// A share of another key.
	k2, _ := NewKey()
	other, _ := Split(k2, 5, 3)
	if _, err := Combine([]string{all[0], other[1].String(), all[2]}); !errors.As(err, &se) || se.Index != 2 || !strings.Contains(err.Error(), "different recovery keys") {
		t.Fatalf("another set: %v", err)
	}
	// A typo in the third.
	typo := []byte(all[2])
	typo[10] = map[bool]byte{true: 'B', false: 'A'}[typo[10] == 'A']
	if _, err := Combine([]string{all[0], all[1], string(typo)}); !errors.As(err, &se) || se.Index != 3 || !strings.Contains(err.Error(), "check digits") {
		t.Fatalf("a typo: %v", err)
	}
	// A share altered with valid check digits (a member who lies): refused
	// with exactly three, found with four.
	forged := shares[1]
	forged.Y[0] ^= 0x40
	bad := []string{all[0], forged.String(), all[2]}
	if _, err := Combine(bad); !errors.As(err, &se) || !strings.Contains(err.Error(), "do not rebuild") {
		t.Fatalf("a forged share: %v", err)
	}
	got, err := Combine(append(bad, all[3]))
	if got != k || !errors.As(err, &se) || !strings.Contains(err.Error(), "without share(s) 2 (number 2)") {
		t.Fatalf("a forged share among four: %v", err)
	}
	if _, err := Split(k, 3, 1); err == nil {
		t.Fatal("1 of 3")
	}
}

func FuzzParse(f *testing.F) {
	k, _ := NewKey()
	sh, _ := Split(k, 3, 2)
	f.Add(k.String())
	f.Add(sh[0].String())
	f.Fuzz(func(t *testing.T, s string) {
		ParseKey(s)
		ParseShare(s)
		Combine([]string{s, s})
	})
}
