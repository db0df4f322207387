package vault

import (
	"slices"
	"sync"
	"testing"
)

type recorder struct {
	name string
	mu   *sync.Mutex
	log  *[]string
}

func (r recorder) Unlocked() { r.mu.Lock(); *r.log = append(*r.log, "unlock "+r.name); r.mu.Unlock() }
func (r recorder) Locked()   { r.mu.Lock(); *r.log = append(*r.log, "lock "+r.name); r.mu.Unlock() }

func TestSealedRooms(t *testing.T) {
	var mu sync.Mutex
	var log []string
	l := NewLifecycle(nil)
	l.Register("vpn", recorder{"vpn", &mu, &log})
	l.Register("mesh", recorder{"mesh", &mu, &log})
	l.Locked() // locked already: nothing to tell
	l.Unlocked()
	l.Unlocked() // twice in a row: once
	if !l.IsUnlocked() {
		t.Error("not unlocked")
	}
	l.Register("apps", recorder{"apps", &mu, &log}) // registered while unlocked: unlocked at once
	l.Locked()
	l.Locked()
	want := []string{"unlock vpn", "unlock mesh", "unlock apps", "lock apps", "lock mesh", "lock vpn"}
	if !slices.Equal(log, want) {
		t.Errorf("calls: %q\nwant   %q", log, want)
	}
}
