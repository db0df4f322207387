package status

import (
	"os"
	"path/filepath"
	"testing"
)

func TestOf(t *testing.T) {
	for _, c := range []struct {
		setup, locked bool
		vpn           string
		want          State
	}{
		{false, false, "up", WaitingSetup},
		{true, true, "up", Locked},
		{true, false, "down", VPNDown},
		{true, false, "not configured", VPNDown},
		{true, false, "up", Running},
	} {
		if got := Of(c.setup, c.locked, c.vpn); got != c.want {
			t.Errorf("%+v: %s", c, got)
		}
	}
}

func TestLEDs(t *testing.T) {
	dir := t.TempDir()
	for _, n := range []string{"ACT", "PWR"} {
		os.MkdirAll(filepath.Join(dir, n), 0o755)
	}
	l := FindLEDs(dir)
	if l.ACT != "ACT" || l.PWR != "PWR" {
		t.Fatalf("%+v", l)
	}
	if err := l.Show(Locked); err != nil {
		t.Fatal(err)
	}
	get := func(p string) string { b, _ := os.ReadFile(filepath.Join(dir, p)); return string(b) }
	if get("ACT/trigger") != "timer" || get("ACT/delay_on") != "100" || get("ACT/delay_off") != "1900" || get("PWR/trigger") != "none" || get("PWR/brightness") != "1" {
		t.Fatal("locked pattern")
	}
	l.Show(Running)
	if get("ACT/trigger") != "none" || get("ACT/brightness") != "1" || get("PWR/brightness") != "0" {
		t.Fatal("running pattern")
	}
	// Every state has a pattern distinct from the others.
	seen := map[[2]Pattern]State{}
	for _, s := range []State{Booting, WaitingSetup, Locked, Running, VPNDown, Trial, Failing, Resetting} {
		a, p := Patterns(s)
		if o, dup := seen[[2]Pattern{a, p}]; dup {
			t.Errorf("%s looks like %s", s, o)
		}
		seen[[2]Pattern{a, p}] = s
	}
	// A board without LEDs.
	if err := FindLEDs(t.TempDir()).Show(Running); err != nil {
		t.Fatal(err)
	}
}
