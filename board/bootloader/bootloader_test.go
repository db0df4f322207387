package bootloader

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/redoubt/redoubt/board/layout"
)

func TestEntryNames(t *testing.T) {
	for _, c := range []struct {
		name string
		e    Entry
	}{
		{"redoubt-00000001-a.conf", Entry{Generation: 1, Slot: layout.A}},
		{"redoubt-00000002-b+1.conf", Entry{Generation: 2, Slot: layout.B, Counted: true, TriesLeft: 1}},
		{"redoubt-00000002-b+0-1.conf", Entry{Generation: 2, Slot: layout.B, Counted: true, TriesLeft: 0, TriesDone: 1}},
	} {
		if got := c.e.FileName(); got != c.name {
			t.Errorf("%+v: %q, want %q", c.e, got, c.name)
		}
		e, ok := ParseEntryName(c.name)
		if !ok || e.FileName() != c.name {
			t.Errorf("parsing %q: %+v %v", c.name, e, ok)
		}
	}
	for _, bad := range []string{"loader.conf", "redoubt-1-a.conf", "redoubt-00000001-c.conf", "redoubt-00000001-a+x.conf"} {
		if _, ok := ParseEntryName(bad); ok {
			t.Errorf("%q parsed as an entry", bad)
		}
	}
}

// spend does what systemd-boot does before it boots a counted entry.
func spend(t *testing.T, l *SystemdBoot) {
	es, _ := l.Entries()
	for _, e := range es {
		if e.Bad() {
			continue
		}
		if e.Counted {
			n := e
			n.TriesLeft--
			n.TriesDone++
			if err := os.Rename(filepath.Join(l.entriesDir(), e.FileName()), filepath.Join(l.entriesDir(), n.FileName())); err != nil {
				t.Fatal(err)
			}
		}
		return // the newest good or counted entry is the one booted
	}
}

func TestSystemdBootTrial(t *testing.T) {
	dir := t.TempDir()
	l := &SystemdBoot{Dir: dir}
	first := Entry{Generation: 1, Slot: layout.A, Version: "v1.0.0", Kernel: "/slot-a/vmlinuz", Options: "root=x"}
	if err := writeFileSync(filepath.Join(l.entriesDir(), first.FileName()), []byte(first.Text())); err != nil {
		t.Fatal(err)
	}
	st, err := l.State()
	if err != nil || st != (State{Default: layout.A}) {
		t.Fatalf("fresh: %+v %v", st, err)
	}
	if err := l.Stage(layout.A, "v2", "x"); err == nil {
		t.Fatal("staged over the running slot's entry")
	}
	if err := l.Discard(layout.B); err != nil {
		t.Fatal(err)
	}
	if err := l.Stage(layout.B, "v2.0.0", "root=PARTUUID=b"); err != nil {
		t.Fatal(err)
	}
	if st, _ := l.State(); st != (State{Default: layout.A, Trial: layout.B}) {
		t.Fatalf("staged: %+v", st)
	}
	b, _ := os.ReadFile(filepath.Join(l.entriesDir(), "redoubt-00000002-b+1.conf"))
	if !strings.Contains(string(b), "linux /slot-b/vmlinuz") || !strings.Contains(string(b), "options root=PARTUUID=b") {
		t.Fatalf("trial entry:\n%s", b)
	}
	// The trial boot: systemd-boot spends the try; without a blessing, the
	// next boot's choice is slot a.
	spend(t, l)
	if st, _ := l.State(); st != (State{Default: layout.A, Failed: layout.B}) {
		t.Fatalf("trial spent: %+v", st)
	}
	// Blessed instead: b is the default.
	if err := l.Bless(layout.B); err != nil {
		t.Fatal(err)
	}
	if st, _ := l.State(); st != (State{Default: layout.B}) {
		t.Fatalf("blessed: %+v", st)
	}
	// The next update goes to a, newest generation.
	if err := l.Discard(layout.A); err != nil {
		t.Fatal(err)
	}
	if err := l.Stage(layout.A, "v3.0.0", "root=PARTUUID=a"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(l.entriesDir(), "redoubt-00000003-a+1.conf")); err != nil {
		t.Fatal(err)
	}
	if st, _ := l.State(); st != (State{Default: layout.B, Trial: layout.A}) {
		t.Fatalf("second update staged: %+v", st)
	}
}

func TestPiTryboot(t *testing.T) {
	dir := t.TempDir()
	l := &Pi{Dir: dir}
	os.WriteFile(filepath.Join(dir, "config.txt"), []byte(PiConfig(layout.A)), 0o644)
	if st, err := l.State(); err != nil || st != (State{Default: layout.A}) {
		t.Fatalf("fresh: %+v %v", st, err)
	}
	if err := l.Discard(layout.A); err == nil {
		t.Fatal("discarded the default slot")
	}
	if err := l.Stage(layout.B, "v2", "root=PARTUUID=1234abcd-03"); err != nil {
		t.Fatal(err)
	}
	if st, _ := l.State(); st != (State{Default: layout.A, Trial: layout.B}) {
		t.Fatalf("staged: %+v", st)
	}
	if l.RebootArg() != "0 tryboot" {
		t.Fatal(l.RebootArg())
	}
	b, _ := os.ReadFile(filepath.Join(dir, "slot-b", "cmdline.txt"))
	if !strings.Contains(string(b), "root=PARTUUID=1234abcd-03") {
		t.Fatalf("cmdline.txt: %s", b)
	}
	if err := l.Bless(layout.B); err != nil {
		t.Fatal(err)
	}
	if st, _ := l.State(); st != (State{Default: layout.B}) {
		t.Fatalf("blessed: %+v", st)
	}
	if _, err := os.Stat(filepath.Join(dir, "tryboot.txt")); err == nil {
		t.Fatal("tryboot.txt left after the blessing")
	}
}
