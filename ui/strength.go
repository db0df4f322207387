package ui

import (
	"math"
	"strings"
	"unicode"
)

// Strength is an estimate of how hard a passphrase is to guess.
type Strength struct {
	Bits   int    // estimated entropy
	Score  int    // 0 weak, 1 fair, 2 good, 3 strong
	Reason string // why it is refused, or "" when it is accepted
	Hint   string // how to make it stronger
}

// minBits is the least the box accepts. An attacker with the stolen box pays
// about 0.75 s of a Raspberry Pi's work (Argon2id, 64 MiB) per guess, so 50 bits
// is far beyond reach; the rules below keep people from landing well under it.
const minBits = 50

// commonPasswords are among the most used passwords and phrases; anything built
// on them is refused whatever its length.
var commonPasswords = strings.Fields(`
password passw0rd p@ssword p@ssw0rd 123456 1234567 12345678 123456789 1234567890
qwerty qwertyuiop asdfgh asdfghjkl zxcvbnm azerty qwertz 111111 000000 123123 654321
abc123 iloveyou admin administrator welcome letmein monkey dragon football baseball
sunshine princess master shadow superman batman trustno1 hello freedom whatever
michael jennifer jordan hunter ranger buster soccer harley charlie robert thomas
computer internet secret security redoubt changeme default login starwars pokemon
summer winter autumn spring love lovely flower cookie cheese chocolate mustang
access matrix killer pepper ginger banana orange purple yellow family friends
google facebook apple samsung microsoft amazon netflix linkedin twitter instagram
correcthorsebatterystaple letmeinplease passwordpassword mypassword yourpassword
`)

// Evaluate estimates a passphrase's strength. The page's meter runs the same rules
// (assets/app.js) so what it shows matches what the box then accepts.
func Evaluate(pass string) Strength {
	n := len([]rune(pass))
	if n == 0 {
		return Strength{Reason: "Choose a passphrase.", Hint: "A few unrelated words make a strong, memorable passphrase."}
	}
	if n < 12 {
		return Strength{Bits: estimateBits(pass), Reason: "It is too short: use at least 12 characters.",
			Hint: "A few unrelated words, like “orbit lantern cactus violin”, are long and easy to remember."}
	}
	if n > 1024 {
		return Strength{Reason: "It is too long: use at most 1024 characters."}
	}
	lower := strings.ToLower(pass)
	core := strings.TrimFunc(lower, func(r rune) bool { return unicode.IsDigit(r) || unicode.IsPunct(r) || unicode.IsSpace(r) })
	squashed := strings.Map(func(r rune) rune {
		if unicode.IsSpace(r) || r == '-' || r == '_' || r == '.' {
			return -1
		}
		return r
	}, core)
	for _, c := range commonPasswords {
		if squashed == c || strings.Repeat(c, max(1, len(squashed)/max(1, len(c)))) == squashed {
			return Strength{Bits: 10, Reason: "It is one of the most common passwords: anyone trying would guess it first.",
				Hint: "Pick words that mean nothing together."}
		}
	}
	if isSequence(lower) {
		return Strength{Bits: 10, Reason: "It is a keyboard or alphabet sequence.", Hint: "Pick words that mean nothing together."}
	}
	bits := estimateBits(pass)
	s := Strength{Bits: bits}
	switch {
	case bits < minBits:
		s.Reason = "It is too easy to guess."
		s.Hint = "Add another word or two, or mix in unexpected characters."
	case bits < 65:
		s.Score = 1
		s.Hint = "Good enough. Another word would make it stronger."
	case bits < 80:
		s.Score = 2
	default:
		s.Score = 3
	}
	return s
}

// estimateBits counts the characters that add information — repeats and steps
// of a run (aaaa, abcd, 1234) count once — times the bits of the alphabet used.
// A passphrase of several words is valued by its words instead when that is less.
func estimateBits(pass string) int {
	rs := []rune(pass)
	var lower, upper, digit, symbol, other bool
	for _, r := range rs {
		switch {
		case r >= 'a' && r <= 'z':
			lower = true
		case r >= 'A' && r <= 'Z':
			upper = true
		case r >= '0' && r <= '9':
			digit = true
		case r < 128:
			symbol = true
		default:
			other = true
		}
	}
	pool := 0
	for _, c := range []struct {
		on   bool
		size int
	}{{lower, 26}, {upper, 26}, {digit, 10}, {symbol, 33}, {other, 100}} {
		if c.on {
			pool += c.size
		}
	}
	effective := 0
	for i, r := range rs {
		if i > 0 {
			d := r - rs[i-1]
			if d == 0 || d == 1 || d == -1 {
				continue // repeat or run
			}
		}
		effective++
	}
	bits := float64(effective) * math.Log2(float64(max(pool, 2)))
	if words := strings.FieldsFunc(strings.ToLower(pass), func(r rune) bool { return !unicode.IsLetter(r) }); len(words) >= 3 {
		// Words from a dictionary of ~20,000 are worth about 14 bits each
		// whatever their length; short or repeated ones less.
		seen := map[string]bool{}
		var wb float64
		for _, w := range words {
			if seen[w] {
				continue
			}
			seen[w] = true
			switch {
			case len(w) >= 4:
				wb += 14
			case len(w) == 3:
				wb += 10
			default:
				wb += 4
			}
		}
		bits = min(bits, max(wb, bits*0.6))
	}
	return int(bits)
}

// isSequence reports whether s is made of one keyboard row, or of repeated or
// stepped characters, in either direction.
func isSequence(s string) bool {
	for _, row := range []string{"1234567890", "qwertyuiop", "asdfghjkl", "zxcvbnm", "abcdefghijklmnopqrstuvwxyz"} {
		for _, r := range []string{row, reverse(row)} {
			if len(s) >= 6 && strings.Contains(strings.Repeat(r, 1+len(s)/len(r)+1), s) {
				return true
			}
		}
	}
	return false
}

func reverse(s string) string {
	r := []rune(s)
	for i, j := 0, len(r)-1; i < j; i, j = i+1, j-1 {
		r[i], r[j] = r[j], r[i]
	}
	return string(r)
}
