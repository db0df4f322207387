package apps

import (
	"context"
	"errors"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"
)

const good = `
id = "notes"
name = "Notes"
description = "Shared notes."
version = "1.0.0"
clients = ["any browser"]
docs = """
Open it.

Write."""
exposure = ["lan", "tailnet"]
data = ["notes"]

[[listeners]]
name = "web"
proto = "tcp"
port = 8450

[[listeners]]
name = "media"
proto = "udp"
port = 8450

[[options]]
name = "keep"
type = "duration"
default = "24h"
min = "1m"
max = "30d"
description = "How long notes are kept."
live = true

[[options]]
name = "autostart"
default = "true"

[[connect]]
label = "Browser"
path = "/"
qr = true
`

func TestParseManifest(t *testing.T) {
	m, err := ParseManifest([]byte(good))
	if err != nil {
		t.Fatal(err)
	}
	names := []string{}
	for _, o := range m.Options {
		names = append(names, o.Name)
	}
	if got := strings.Join(names, " "); got != "keep autostart persistence quota allow-lan allow-tailnet" {
		t.Errorf("options: %s", got)
	}
	opts := NewOptions(m, nil)
	if !opts.Bool(OptAutostart) || !opts.Bool(OptPersistence) || opts.Duration("keep") != 24*time.Hour || opts.Size(OptQuota) != 0 {
		t.Errorf("defaults: %v", opts.Values())
	}
	if o, _ := m.Option(OptAutostart); o.Type != Bool || o.Description == "" {
		t.Errorf("a standard option listed by the manifest keeps its type: %+v", o)
	}
	if w, ok := m.Web(); !ok || w.Port != 8450 {
		t.Errorf("web: %+v", w)
	}
	if !m.Exposed(LAN) || m.Exposed(Box) {
		t.Error("exposure")
	}
}

// TestManifestErrors: every mistake names its field and what is accepted.
func TestManifestErrors(t *testing.T) {
	for _, tc := range []struct {
		edit func(string) string
		want string // a regexp the error matches
	}{
		{func(s string) string { return strings.Replace(s, `id = "notes"`, `id = "Notes!"`, 1) }, `id: "Notes!": 2 to 20 lower-case`},
		{func(s string) string { return strings.Replace(s, `id = "notes"`, `id = "redoubt"`, 1) }, `id: "redoubt"`},
		{func(s string) string { return strings.Replace(s, `name = "Notes"`, "name = \"No\\u0007tes\"", 1) }, `name: control character U\+0007`},
		{func(s string) string { return strings.Replace(s, `version = "1.0.0"`, `version = "latest"`, 1) }, `version: "latest": a version such as 1.2.0`},
		{func(s string) string { return strings.Replace(s, `["lan", "tailnet"]`, `["internet"]`, 1) }, `exposure\[0\]: "internet": one of "lan", "tailnet", "box"`},
		{func(s string) string { return strings.Replace(s, `["lan", "tailnet"]`, `[]`, 1) }, `exposure: empty`},
		{func(s string) string { return strings.Replace(s, `proto = "udp"`, `proto = "sctp"`, 1) }, `listeners\[1\].proto: "sctp": "tcp" or "udp"`},
		{func(s string) string { return strings.Replace(s, `port = 8450`, `port = 53`, 1) }, `listeners\[0\].port: 53 is DNS`},
		{func(s string) string { return strings.Replace(s, `port = 8450`, `port = 22`, 1) }, `listeners\[0\].port: 22: from 1024 to 65535`},
		{func(s string) string { return strings.Replace(s, `name = "media"`, `name = "web"`, 1) }, `listeners\[1\].name: "web" is listed twice`},
		{func(s string) string { return strings.Replace(s, `type = "duration"`, `type = "date"`, 1) }, `options.keep.type: "date": one of bool, int, string, choice, size, duration`},
		{func(s string) string { return strings.Replace(s, `default = "24h"`, `default = "forever"`, 1) }, `options.keep.default: want a duration such as 90m, 24h or 7d from 1m to 30d`},
		{func(s string) string { return strings.Replace(s, `default = "24h"`, `default = "90d"`, 1) }, `options.keep.default: want a duration`},
		{func(s string) string { return strings.Replace(s, `min = "1m"`, `min = "60d"`, 1) }, `options.keep: min 60d is more than max 30d`},
		{func(s string) string { return strings.Replace(s, `default = "true"`, `type = "int"`, 1) }, `options.autostart.type: "int": autostart is a standard option of type bool`},
		{func(s string) string {
			return strings.Replace(s, `exposure = ["lan", "tailnet"]`, `exposure = ["lan"]`+"\n", 1) + "\n[[options]]\nname = \"allow-tailnet\"\ndefault = \"true\"\ntype = \"bool\"\ndescription = \"x\"\n"
		}, `allow-tailnet: the app's exposure \(\[lan\]\) does not include tailnet`},
		{func(s string) string { return s + "\ncolour = \"red\"\n" }, `connect.colour: unknown field`},
		{func(s string) string { return strings.Replace(s, `path = "/"`, `path = "dav"`, 1) }, `connect\[0\].path: "dav": a path starting with /`},
		{func(s string) string {
			return strings.Replace(s, `id = "notes"`, `egress = ["*.example.org:443"]`+"\nid = \"notes\"", 1)
		}, `egress\[0\]: "\*.example.org:443": a host and a port`},
		{func(s string) string { return s + "\n[program]\ncommand = [\"/bin/sh\"]\n" }, `program.command\[0\]: "/bin/sh": the program's path inside the app's directory`},
		{func(s string) string { return s + "\n[program]\ncommand = [\"bin/x\"]\n" }, `listeners: "media": an external app has only its web listener`},
		{func(s string) string { return strings.Replace(s, `name = "Notes"`, `name = "Notes`, 1) }, `\(file\): line 3:`},
		{func(s string) string { return "\x00" + s }, `\(file\): not UTF-8 text`},
	} {
		_, err := ParseManifest([]byte(tc.edit(good)))
		var me *ManifestError
		if err == nil || !errors.As(err, &me) || !regexp.MustCompile(tc.want).MatchString(err.Error()) {
			t.Errorf("want /%s/, got %v", tc.want, err)
		}
	}
}

func TestOptions(t *testing.T) {
	m, _ := ParseManifest([]byte(good + `
[[options]]
name = "mode"
type = "choice"
choices = ["fast", "safe"]
default = "safe"
description = "How."

[[options]]
name = "limit"
type = "size"
default = "10MB"
max = "1GB"
description = "Largest."

[[options]]
name = "count"
type = "int"
default = "3"
min = "1"
description = "Count."

[[options]]
name = "motto"
type = "string"
max_len = 10
description = "Motto."
`))
	o := NewOptions(m, map[string]string{"mode": "fast", "limit": "bogus", "unknown": "x"})
	if o.String("mode") != "fast" || o.Size("limit") != 10<<20 || o.Int("count") != 3 || o.String("motto") != "" {
		t.Errorf("values: %v", o.Values())
	}
	for _, tc := range []struct{ name, in, want, err string }{
		{"limit", "512 mb", "512MB", ""},
		{"limit", "1GiB", "1GB", ""},
		{"limit", "0.5GB", "512MB", ""},
		{"limit", "2GB", "", "at most 1GB"},
		{"limit", "lots", "", "a size with its unit"},
		{"keep", "7d", "7d", ""},
		{"keep", "90m", "1h30m", ""},
		{"keep", "10m", "10m", ""},
		{"keep", "30s", "", "from 1m to 30d"},
		{"count", "0", "", "a whole number of at least 1"},
		{"count", "12", "12", ""},
		{"mode", "turbo", "", "one of fast, safe"},
		{"autostart", "yes", "true", ""},
		{"autostart", "maybe", "", "true or false"},
		{"motto", "short", "short", ""},
		{"motto", "much too long", "", "at most 10 characters"},
		{"motto", "a\nb", "", "on one line"},
		{"colour", "red", "", "notes has no such option; it has keep, autostart"},
	} {
		next, err := o.With(tc.name, tc.in)
		switch {
		case tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err) || !strings.Contains(err.Error(), "option "+tc.name)):
			t.Errorf("%s=%q: want an error with %q, got %v", tc.name, tc.in, tc.err, err)
		case tc.err == "" && err != nil:
			t.Errorf("%s=%q: %v", tc.name, tc.in, err)
		case tc.err == "":
			if v, _ := next.Get(tc.name); v != tc.want {
				t.Errorf("%s=%q: %q, want %q", tc.name, tc.in, v, tc.want)
			}
			if ch := o.Changed(next); tc.want != o.vals[tc.name] && (len(ch) != 1 || ch[0] != tc.name) {
				t.Errorf("changed: %v", ch)
			}
		}
	}
}

func TestCaller(t *testing.T) {
	ctx := WithCaller(context.Background(), Caller{Member: Member{ID: "m1", Name: "alex"}, Network: Tailnet})
	c, ok := CallerFrom(ctx)
	if !ok || c.ID() != "member:m1" || c.Name() != "alex" {
		t.Errorf("%+v", c)
	}
	if _, ok := CallerFrom(context.Background()); ok {
		t.Error("a caller from nowhere")
	}
	if (Caller{Owner: true}).ID() != "owner" {
		t.Error("owner")
	}
}

// TestReadmeManifest parses the example manifest in README.md, so the
// documentation stays true.
func TestReadmeManifest(t *testing.T) {
	raw, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	blocks := regexp.MustCompile("(?s)```toml\n(.*?)```").FindAllSubmatch(raw, -1)
	if len(blocks) == 0 {
		t.Fatal("README.md has no toml example")
	}
	for _, b := range blocks {
		if _, err := ParseManifest(b[1]); err != nil {
			t.Errorf("README.md's example: %v\n%s", err, b[1])
		}
	}
}

func FuzzParseManifest(f *testing.F) {
	f.Add([]byte(good))
	f.Add([]byte("id = \"x\"\n[[options]]\nname=\"a\"\ntype=\"size\"\ndefault=\"1e400GB\""))
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := ParseManifest(data)
		if err != nil {
			var me *ManifestError
			if !errors.As(err, &me) || me.Field == "" {
				t.Fatalf("an error without a field: %v", err)
			}
			return
		}
		// A valid manifest's defaults are valid values.
		o := NewOptions(m, nil)
		for _, opt := range m.Options {
			v, _ := o.Get(opt.Name)
			if _, err := o.With(opt.Name, v); err != nil {
				t.Fatalf("default of %s: %v", opt.Name, err)
			}
		}
	})
}
