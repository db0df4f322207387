package daemon

import (
	"strings"
	"testing"
)

func TestEgressDigest(t *testing.T) {
	before := map[string]uint64{"egress": 10, "discovery": 5}
	now := map[string]uint64{"egress": 25, "discovery": 5, "closed-port": 2}
	d := delta(now, before)
	if len(d) != 2 || d["egress"] != 15 || d["closed-port"] != 2 {
		t.Fatalf("delta %v", d)
	}
	// Counters reset (a factory reset): nothing negative.
	if d := delta(map[string]uint64{"egress": 3}, map[string]uint64{"egress": 9}); len(d) != 0 {
		t.Fatalf("delta after a reset %v", d)
	}
	got := digest(17, d, 40, map[string]uint64{"stopped": 38, "box": 2})
	want := "stopped 17 frames from the LAN (closed-port 2, egress 15); answered 40 DNS queries (box 2, stopped 38)"
	if got != want {
		t.Fatalf("digest:\n got %s\nwant %s", got, want)
	}
	if !strings.Contains(digest(0, nil, 0, nil), "(none)") {
		t.Fatal("an empty digest")
	}
}
