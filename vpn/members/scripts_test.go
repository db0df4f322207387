package members

import (
	"bytes"
	"encoding/json"
	"fmt"
	"image/png"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/redoubt/redoubt/lab/coord"
	"github.com/tailscale/hujson"
)

func TestValidateName(t *testing.T) {
	good := []string{"a", "alice", "field-team-2", "b0b", strings.Repeat("x", 32), "a-b-c"}
	for _, n := range good {
		if err := ValidateName(n); err != nil {
			t.Errorf("ValidateName(%q) = %v", n, err)
		}
	}
	for n, want := range map[string]string{
		"":                      "empty",
		"Alice":                 "does not start with a lowercase letter",
		"aLice":                 `uppercase letter at position 2 (try "alice")`,
		"1alice":                "does not start",
		"-alice":                "does not start",
		"alice-":                "ends with a hyphen",
		"al ice":                `has ' ' at position 3`,
		"al'ice":                `has '\'' at position 3`,
		"alice@":                `has '@'`,
		"al_ice":                `has '_'`,
		"al.ice":                `has '.'`,
		"élise":                 "does not start",
		"a\u00e9":               `has 'é'`,
		"a$(reboot)":            `has '$'`,
		"a;rm":                  `has ';'`,
		"a\nb":                  `has '\n'`,
		strings.Repeat("x", 33): "33 characters long",
		"tagged-devices":        "reserved",
	} {
		err := ValidateName(n)
		if err == nil || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), "lowercase letters a-z") {
			t.Errorf("ValidateName(%q) = %v, want %q and the rule", n, err, want)
		}
	}
}

func TestPolicyRender(t *testing.T) {
	for _, tc := range []struct {
		p       Policy
		members []string
		grants  int
	}{
		{Policy{}, nil, 2},
		{Policy{}, []string{"alice", "bob"}, 2},
		{Policy{BoxTag: "tag:newsroom-box", MembersReachEachOther: true}, []string{"alice"}, 3},
	} {
		text := Render(tc.p, "The \"box\"\n// }", tc.members)
		std, err := hujson.Standardize([]byte(text))
		if err != nil {
			t.Fatalf("not HuJSON: %v\n%s", err, text)
		}
		var doc struct {
			Groups    map[string][]string
			TagOwners map[string][]string
			Grants    []struct {
				Src, Dst, IP []string
			}
			ACLs any
			SSH  any
		}
		dec := json.NewDecoder(bytes.NewReader(std))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&doc); err != nil {
			t.Fatalf("%v\n%s", err, text)
		}
		tag := tc.p.withDefaults().BoxTag
		want := []string{}
		for _, m := range tc.members {
			want = append(want, m+"@")
		}
		if fmt.Sprint(doc.Groups[MembersGroup]) != fmt.Sprint(want) || len(doc.Groups) != 1 {
			t.Errorf("groups %v, want %v", doc.Groups, want)
		}
		if owners, ok := doc.TagOwners[tag]; !ok || len(owners) != 0 || len(doc.TagOwners) != 1 {
			t.Errorf("tagOwners %v", doc.TagOwners)
		}
		if len(doc.Grants) != tc.grants || doc.ACLs != nil || doc.SSH != nil {
			t.Fatalf("grants %+v", doc.Grants)
		}
		pairs := map[string]bool{}
		for _, g := range doc.Grants {
			if len(g.Src) != 1 || len(g.Dst) != 1 || fmt.Sprint(g.IP) != "[*]" {
				t.Errorf("grant %+v", g)
			}
			pairs[g.Src[0]+">"+g.Dst[0]] = true
		}
		if !pairs[MembersGroup+">"+tag] || !pairs[tag+">"+MembersGroup] || pairs[MembersGroup+">"+MembersGroup] != tc.p.MembersReachEachOther {
			t.Errorf("grants %v", pairs)
		}
		if strings.Count(text, "\n// }") != 0 {
			t.Errorf("the box's name broke out of its comment:\n%s", text)
		}
	}
	if err := (Policy{BoxTag: "tag:Box"}).Validate(); err == nil {
		t.Error("an uppercase tag passed")
	}
	if err := (Policy{BoxTag: "redoubt"}).Validate(); err == nil {
		t.Error("a tag without tag: passed")
	}
}

// testInput is a benign bundle input; hostile variants change one field.
func testInput(t *testing.T) scriptInput {
	t.Helper()
	ca, err := coord.NewCA("box CA")
	if err != nil {
		t.Fatal(err)
	}
	pemText, file, print, err := caInfo(ca.PEM)
	if err != nil {
		t.Fatal(err)
	}
	return scriptInput{Member: "alice", BoxName: "Newsroom", LoginServer: "https://hs.example.org:8443",
		Key: "hskey-auth-AbC123_-xyzXYZ-0123456789abcdefghijklmnop", Expires: time.Date(2030, 1, 2, 3, 4, 0, 0, time.UTC),
		AppsURL: "https://redoubt.team.example/apps?x=1&y=2#top", CAPEM: pemText, CAFile: file, CAPrint: print}
}

// hostile strings for the one field that is free text (the box's name);
// the others are checked and refused.
var hostile = []string{
	`'`, `''`, `'\''`, `"`, "`", `$(touch /tmp/pwned)`, "${IFS}", `\`, "\n; reboot\n", "a'; rm -rf / #",
	"‘", "’", "‚", "‛", "“", "”", "'@", "\"@", "@'", "#>", "<#", "$Yes", "$(", "}", "{", ")", "%", "\r\n",
	"\u2028", "\x00", "é ü 日本", strings.Repeat("'", 100),
}

func TestShQuote(t *testing.T) {
	for _, s := range append(hostile, "", "plain", "a b", "-n") {
		if strings.ContainsRune(s, 0) {
			continue // no shell word holds NUL
		}
		out, err := exec.Command("sh", "-c", "printf '%s' "+shQuote(s)).Output()
		if err != nil || string(out) != s {
			t.Errorf("shQuote(%q) printed %q (%v)", s, out, err)
		}
	}
}

func TestScriptsRefuseBadInput(t *testing.T) {
	for name, mod := range map[string]func(*scriptInput){
		"member":       func(in *scriptInput) { in.Member = "a'b" },
		"key":          func(in *scriptInput) { in.Key = "abc'; reboot; '" },
		"key newline":  func(in *scriptInput) { in.Key = "hskey-auth-abcdefgh\nreboot" },
		"server quote": func(in *scriptInput) { in.LoginServer = "https://hs.example.org/'$(reboot)'" },
		"server http":  func(in *scriptInput) { in.LoginServer = "http://hs.example.org" },
		"server space": func(in *scriptInput) { in.LoginServer = "https://hs.example.org/a b" },
		"apps paren":   func(in *scriptInput) { in.AppsURL = "https://box/$(id)" },
		"apps smart":   func(in *scriptInput) { in.AppsURL = "https://box/‘x’" },
		"apps bslash":  func(in *scriptInput) { in.AppsURL = `https://box/\x` },
		"ca":           func(in *scriptInput) { in.CAPEM = "'; reboot" },
	} {
		in := testInput(t)
		mod(&in)
		if _, err := makeBundle(in); err == nil {
			t.Errorf("%s: a bundle was made", name)
		}
	}
	if _, _, _, err := caInfo([]byte("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n")); err == nil {
		t.Error("caInfo took garbage")
	}
}

func TestShellScript(t *testing.T) {
	dir := t.TempDir()
	for i, box := range append([]string{"Newsroom"}, hostile...) {
		in := testInput(t)
		in.BoxName = box
		b, err := makeBundle(in)
		if err != nil {
			t.Fatal(err)
		}
		path := filepath.Join(dir, fmt.Sprintf("join%d.sh", i))
		os.WriteFile(path, []byte(b.Shell), 0o600)
		for _, shell := range []string{"sh", "bash", "dash"} {
			if _, err := exec.LookPath(shell); err != nil {
				continue
			}
			if out, err := exec.Command(shell, "-n", path).CombinedOutput(); err != nil {
				t.Fatalf("%s -n on the script for box %q: %v\n%s", shell, box, err, out)
			}
		}
		// The assignments hold exactly the values, whatever they are.
		head := b.Shell[:strings.Index(b.Shell, "\nset -eu\n")]
		hpath := path + ".head"
		os.WriteFile(hpath, []byte(head), 0o600)
		for v, want := range map[string]string{"BOX_NAME": displayName(box), "MEMBER": in.Member, "AUTH_KEY": in.Key,
			"LOGIN_SERVER": in.LoginServer, "APPS_URL": in.AppsURL, "CA_PEM": in.CAPEM} {
			out, err := exec.Command("sh", "-c", `. "$1"; printf '%s' "$`+v+`"`, "sh", hpath).Output()
			if err != nil || string(out) != want {
				t.Fatalf("box %q: $%s = %q (%v), want %q", box, v, out, err, want)
			}
		}
		// The rest of the script is the constant body, whatever the inputs.
		if !strings.HasSuffix(b.Shell, shellBody) {
			t.Fatalf("box %q: the script's body changed", box)
		}
	}
	in := testInput(t)
	b, _ := makeBundle(in)
	path := filepath.Join(dir, "join.sh")
	os.WriteFile(path, []byte(b.Shell), 0o600)
	// --help, a bad option, and no one to ask: nothing happens.
	out, err := exec.Command("sh", path, "--help").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "--yes") {
		t.Errorf("--help: %v\n%s", err, out)
	}
	out, err = exec.Command("sh", path, "--frobnicate").CombinedOutput()
	if err == nil || !strings.Contains(string(out), "unknown option: --frobnicate") {
		t.Errorf("bad option: %v\n%s", err, out)
	}
	cmd := exec.Command("setsid", "sh", path) // no terminal to ask on
	cmd.Env = append(os.Environ(), "TAILSCALE=/nonexistent/tailscale")
	out, err = cmd.CombinedOutput()
	if err == nil || !strings.Contains(string(out), "run it again with --yes") || !strings.Contains(string(out), "Trust the certificate authority of the Redoubt box \"Newsroom\"") {
		t.Errorf("without a terminal: %v\n%s", err, out)
	}
	// A "no" on the terminal changes nothing.
	if _, err := exec.LookPath("script"); err != nil {
		t.Skip("no script(1) to give the enrollment script a terminal")
	}
	cmd = exec.Command("script", "-qec", "sh "+path, "/dev/null")
	cmd.Env = append(os.Environ(), "TAILSCALE=/nonexistent/tailscale")
	cmd.Stdin = strings.NewReader("n\n")
	out, err = cmd.CombinedOutput()
	if err == nil || !strings.Contains(string(out), "Nothing was changed.") {
		t.Errorf("answering no: %v\n%s", err, out)
	}
	if strings.Contains(b.Shell, "--authkey="+in.Key) {
		t.Error("the key is on tailscale's command line on Linux")
	}
}

func TestPowerShellScript(t *testing.T) {
	base := testInput(t)
	b, err := makeBundle(base)
	if err != nil {
		t.Fatal(err)
	}
	ref, err := lexPS(b.PowerShell)
	if err != nil {
		t.Fatalf("the script does not lex: %v\n%s", err, b.PowerShell)
	}
	for _, tok := range ref {
		if tok.kind == psDouble || tok.kind == psHereDouble {
			t.Fatalf("the script has an interpolating string %q: inputs must never be interpolated", tok.text)
		}
	}
	for _, v := range []string{base.Member, base.Key, base.LoginServer, base.AppsURL, base.CAPrint, "Newsroom"} {
		checkOnlyInSingleQuotes(t, b.PowerShell, ref, v)
	}
	for _, box := range hostile {
		in := base
		in.BoxName = box
		b, err := makeBundle(in)
		if err != nil {
			t.Fatal(err)
		}
		toks, err := lexPS(b.PowerShell)
		if err != nil {
			t.Fatalf("box %q: %v", box, err)
		}
		if kinds(toks) != kinds(ref) {
			t.Fatalf("box name %q changed the script's structure", box)
		}
		found := false
		for _, tok := range toks {
			if tok.kind == psSingle && tok.value == displayName(box) {
				found = true
			}
		}
		if !found {
			t.Fatalf("box name %q is not one single-quoted string holding %q", box, displayName(box))
		}
	}
}

func checkOnlyInSingleQuotes(t *testing.T, script string, toks []psToken, v string) {
	t.Helper()
	for i := 0; ; {
		j := strings.Index(script[i:], v)
		if j < 0 {
			return
		}
		at := i + j
		ok := false
		for _, tok := range toks {
			if (tok.kind == psSingle || tok.kind == psHereSingle || tok.kind == psComment) && at >= tok.start && at+len(v) <= tok.end {
				ok = true
			}
		}
		if !ok {
			t.Errorf("%q appears outside a single-quoted string at %d", v, at)
		}
		i = at + len(v)
	}
}

func TestBundle(t *testing.T) {
	in := testInput(t)
	b, err := makeBundle(in)
	if err != nil {
		t.Fatal(err)
	}
	img, err := png.Decode(bytes.NewReader(b.QR))
	if err != nil || img.Bounds().Dx() != qrSize {
		t.Fatalf("QR code: %v %v", err, img)
	}
	all := strings.Join(b.MobileSteps, "\n")
	for _, want := range []string{in.LoginServer, "Use custom coordination server", "Use an alternate server", "hskey-authreq-", in.CAPrint, in.AppsURL, "alice"} {
		if !strings.Contains(all, want) {
			t.Errorf("mobile steps lack %q", want)
		}
	}
	if b.Key != in.Key || b.LoginServer != in.LoginServer || b.CAFingerprint != in.CAPrint || !b.Expires.Equal(in.Expires) {
		t.Errorf("bundle %+v", b)
	}
}

func TestParseAuthLink(t *testing.T) {
	const id = "hskey-authreq-AbCdEfGhIjKlMnOpQrStUvWx"
	for link, want := range map[string]string{
		id:                                      id,
		"  " + id + "\n":                        id,
		"https://hs.example.org/register/" + id: id,
		"https://HS.example.org/register/" + id: id,
		"https://evil.example/register/" + id:   "not at the team's coordination server",
		"https://hs.example.org/register/hskey-authreq-x": "want …/register/",
		"https://hs.example.org/auth/" + id:               "want …/register/",
		"hskey-authreq-AbCdEfGhIjKlMnOpQrStUvW'":          "paste the link",
		"":                                                "paste the link",
		"https://hs.example.org/register/" + id + "/extra": "want …/register/",
	} {
		got, err := parseAuthLink(link, "https://hs.example.org")
		if want == id {
			if err != nil || got != id {
				t.Errorf("parseAuthLink(%q) = %q, %v", link, got, err)
			}
		} else if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("parseAuthLink(%q) = %q, %v; want %q", link, got, err, want)
		}
	}
}
