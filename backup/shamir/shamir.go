// Package shamir is Shamir's secret sharing over GF(2^8), byte by byte, in the
// field libgfshare uses (the polynomial x^8 + x^4 + x^3 + x^2 + 1, 0x11d), so
// its shares combine with Debian's gfcombine and the other way round (the
// tests check both). Any k of the n shares rebuild the secret; fewer say
// nothing about it: every secret of the same length is equally likely.
//
// The field arithmetic uses no tables and no branches on secret data.
//
// Only the recovery key's code (backup/recovery) imports it.
package shamir

import (
	"errors"
	"fmt"
	"io"
)

// Share is one share: the polynomial's value at X for every byte of the
// secret.
type Share struct {
	X byte
	Y []byte
}

// mul multiplies in GF(2^8) modulo 0x11d, in constant time.
func mul(a, b byte) byte {
	var p byte
	for i := 0; i < 8; i++ {
		p ^= -(b & 1) & a
		hi := -(a >> 7) // 0xff if the top bit is set
		a = a<<1 ^ (0x1d & hi)
		b >>= 1
	}
	return p
}

// inv is a^254 = a^-1 (0 for 0), in constant time.
func inv(a byte) byte {
	// a^254 = a^(2+4+8+16+32+64+128)
	r := byte(1)
	x := a
	for i := 0; i < 7; i++ {
		x = mul(x, x) // a^(2^(i+1))
		r = mul(r, x)
	}
	return r
}

// Limits.
const (
	MaxShares = 255
	MaxSecret = 1 << 16
)

// Split makes n shares of secret, any k of which rebuild it, at x = 1…n.
func Split(secret []byte, n, k int, rand io.Reader) ([]Share, error) {
	switch {
	case len(secret) == 0 || len(secret) > MaxSecret:
		return nil, fmt.Errorf("shamir: a secret of %d bytes: want 1 to %d", len(secret), MaxSecret)
	case k < 2:
		return nil, fmt.Errorf("shamir: threshold %d: want at least 2 (with 1, each share is the secret)", k)
	case n < k || n > MaxShares:
		return nil, fmt.Errorf("shamir: %d shares with threshold %d: want k ≤ n ≤ %d", n, k, MaxShares)
	}
	// coef[j][i] is the j-th coefficient of byte i's polynomial; coef[0] is
	// the secret.
	coef := make([][]byte, k)
	coef[0] = secret
	for j := 1; j < k; j++ {
		coef[j] = make([]byte, len(secret))
		if _, err := io.ReadFull(rand, coef[j]); err != nil {
			return nil, fmt.Errorf("shamir: random coefficients: %w", err)
		}
	}
	shares := make([]Share, n)
	for s := range shares {
		x := byte(s + 1)
		y := make([]byte, len(secret))
		for i := range y {
			// Horner: ((c[k-1] x + c[k-2]) x + …) x + c[0]
			var v byte
			for j := k - 1; j >= 0; j-- {
				v = mul(v, x) ^ coef[j][i]
			}
			y[i] = v
		}
		shares[s] = Share{X: x, Y: y}
	}
	for j := 1; j < k; j++ {
		clear(coef[j])
	}
	return shares, nil
}

// Errors Combine returns.
var (
	ErrDuplicate = errors.New("two shares have the same x")
	ErrLength    = errors.New("the shares have different lengths")
)

// Combine rebuilds the secret from shares by Lagrange interpolation at 0. It
// cannot tell a wrong result from a right one: with fewer than k shares, or
// a share altered, it returns some other bytes. Callers check the result (the
// recovery key carries a check value).
func Combine(shares []Share) ([]byte, error) {
	if len(shares) == 0 {
		return nil, errors.New("shamir: no shares")
	}
	size := len(shares[0].Y)
	for i, s := range shares {
		if len(s.Y) != size || size == 0 {
			return nil, fmt.Errorf("shamir: %w (%d and %d bytes)", ErrLength, size, len(s.Y))
		}
		if s.X == 0 {
			return nil, fmt.Errorf("shamir: share %d has x = 0", i+1)
		}
		for _, t := range shares[:i] {
			if t.X == s.X {
				return nil, fmt.Errorf("shamir: %w (%d)", ErrDuplicate, s.X)
			}
		}
	}
	out := make([]byte, size)
	for i, s := range shares {
		// The Lagrange basis at 0: prod x_j / (x_j - x_i) over j != i; in
		// GF(2^8) subtraction is xor.
		num, den := byte(1), byte(1)
		for j, t := range shares {
			if i != j {
				num = mul(num, t.X)
				den = mul(den, t.X^s.X)
			}
		}
		l := mul(num, inv(den))
		for b := range out {
			out[b] ^= mul(l, s.Y[b])
		}
	}
	return out, nil
}
