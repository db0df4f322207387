package members

import (
	"fmt"
	"strings"
	"testing"
)

// A lexer for the PowerShell the enrollment script uses, following the
// language specification's lexical grammar for what matters to quoting:
// comments (# … and <# … #>), single-quoted strings (a quote is any of ' ‘ ’ ‚ ‛,
// doubled to escape it), double-quoted strings (" “ ” „; ` escapes; $ starts an
// interpolation), here-strings (@' … '@ and @" … "@, their ends at the start of
// a line), the backtick escape outside strings, and brackets ( ) { } [ ] with
// $( @( @{ as openers. pwsh is not available here; this is what the tests can
// check: every string ends, every bracket closes, and what the inputs are.

type psKind int

const (
	psCode psKind = iota
	psComment
	psSingle
	psDouble
	psHereSingle
	psHereDouble
)

type psToken struct {
	kind       psKind
	start, end int // byte offsets in the script
	text       string
	value      string // a single-quoted string's value
}

func isSQ(r rune) bool {
	return r == '\'' || r == '\u2018' || r == '\u2019' || r == '\u201a' || r == '\u201b'
}
func isDQ(r rune) bool { return r == '"' || r == '\u201c' || r == '\u201d' || r == '\u201e' }

func lexPS(src string) ([]psToken, error) {
	rs := []rune(src)
	// byte offset of each rune
	off := make([]int, len(rs)+1)
	b := 0
	for i, r := range rs {
		off[i] = b
		b += len(string(r))
	}
	off[len(rs)] = b
	var toks []psToken
	var stack []rune
	lineStart := func(i int) bool { return i == 0 || rs[i-1] == '\n' }
	add := func(k psKind, i, j int, value string) {
		toks = append(toks, psToken{kind: k, start: off[i], end: off[j], text: string(rs[i:j]), value: value})
	}
	i := 0
	for i < len(rs) {
		r := rs[i]
		switch {
		case r == '#':
			j := i
			for j < len(rs) && rs[j] != '\n' {
				j++
			}
			add(psComment, i, j, "")
			i = j
		case r == '<' && i+1 < len(rs) && rs[i+1] == '#':
			j := strings.Index(string(rs[i+2:]), "#>")
			if j < 0 {
				return nil, fmt.Errorf("unterminated block comment at %d", off[i])
			}
			end := i + 2 + len([]rune(string(rs[i+2:])[:j])) + 2
			add(psComment, i, end, "")
			i = end
		case r == '@' && i+1 < len(rs) && (isSQ(rs[i+1]) || isDQ(rs[i+1])):
			double := isDQ(rs[i+1])
			// The opener ends its line; the closer starts one.
			j := i + 2
			for j < len(rs) && (rs[j] == ' ' || rs[j] == '\t') {
				j++
			}
			if j >= len(rs) || rs[j] != '\n' {
				return nil, fmt.Errorf("here-string opener at %d not at the end of its line", off[i])
			}
			k := j + 1
			for ; k+1 < len(rs); k++ {
				if lineStart(k) && ((double && isDQ(rs[k])) || (!double && isSQ(rs[k]))) && rs[k+1] == '@' {
					break
				}
			}
			if k+1 >= len(rs) {
				return nil, fmt.Errorf("unterminated here-string at %d", off[i])
			}
			kind := psHereSingle
			if double {
				kind = psHereDouble
			}
			add(kind, i, k+2, string(rs[j+1:max(j+1, k-1)]))
			i = k + 2
		case isSQ(r):
			var v strings.Builder
			j := i + 1
			for {
				if j >= len(rs) {
					return nil, fmt.Errorf("unterminated single-quoted string at %d", off[i])
				}
				if isSQ(rs[j]) {
					if j+1 < len(rs) && isSQ(rs[j+1]) {
						v.WriteRune(rs[j])
						j += 2
						continue
					}
					break
				}
				v.WriteRune(rs[j])
				j++
			}
			add(psSingle, i, j+1, v.String())
			i = j + 1
		case isDQ(r):
			j := i + 1
			for {
				if j >= len(rs) {
					return nil, fmt.Errorf("unterminated double-quoted string at %d", off[i])
				}
				if rs[j] == '`' {
					j += 2
					continue
				}
				if isDQ(rs[j]) {
					if j+1 < len(rs) && isDQ(rs[j+1]) {
						j += 2
						continue
					}
					break
				}
				j++
			}
			add(psDouble, i, j+1, "")
			i = j + 1
		case r == '`':
			i += 2
		case r == '(' || r == '{' || r == '[':
			stack = append(stack, r)
			add(psCode, i, i+1, "")
			i++
		case r == ')' || r == '}' || r == ']':
			open := map[rune]rune{')': '(', '}': '{', ']': '['}[r]
			if len(stack) == 0 || stack[len(stack)-1] != open {
				return nil, fmt.Errorf("unbalanced %q at %d", r, off[i])
			}
			stack = stack[:len(stack)-1]
			add(psCode, i, i+1, "")
			i++
		default:
			i++
		}
	}
	if len(stack) > 0 {
		return nil, fmt.Errorf("%d unclosed brackets (%q)", len(stack), string(stack))
	}
	return toks, nil
}

// kinds is the script's shape: its token kinds in order.
func kinds(toks []psToken) string {
	var b strings.Builder
	for _, t := range toks {
		fmt.Fprint(&b, int(t.kind))
	}
	return b.String()
}

func TestLexPS(t *testing.T) {
	for src, want := range map[string]string{
		`$a = 'it''s'`:         "2",
		"$a = 'a’’b'":          "2",
		`$a = "x $b"`:          "3",
		"$a = @'\nhi'\n'@\n":   "4",
		"$a = @\"\nhi\n\"@\n":  "5",
		"# 'x\n$a = (1)":       "100",
		"<# ' \" #> $a":        "1",
		"$a = `'":              "",
		"if ($a) { $b = '}' }": "00020",
	} {
		toks, err := lexPS(src)
		if err != nil {
			t.Errorf("lexPS(%q): %v", src, err)
			continue
		}
		if kinds(toks) != want {
			t.Errorf("lexPS(%q) kinds %q, want %q", src, kinds(toks), want)
		}
	}
	for _, bad := range []string{`'abc`, `"abc`, "@'\nabc", "{ (", "}", "$a = 'x‘‘"} {
		if _, err := lexPS(bad); err == nil {
			t.Errorf("lexPS(%q) passed", bad)
		}
	}
}
