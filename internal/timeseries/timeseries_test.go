package timeseries

import (
	"testing"
	"time"
)

func TestSeries(t *testing.T) {
	s := New([]string{"a", "b"}, 60)
	t0 := time.Unix(1_800_000_000, 0).Truncate(time.Minute)
	s.Add(t0, 0)
	s.Add(t0.Add(30*time.Second), 0)
	s.Add(t0.Add(5*time.Minute), 1)
	s.Add(t0.Add(5*time.Minute), 7) // out of range: ignored
	snap := s.Snapshot(t0.Add(9*time.Minute), 10*time.Minute, 5*time.Minute)
	if len(snap.Counts) != 2 || snap.Step != 300 {
		t.Fatalf("%d buckets of %ds", len(snap.Counts), snap.Step)
	}
	if snap.Counts[0][0] != 2 || snap.Counts[1][1] != 1 || snap.Total(0) != 2 || snap.Total(1) != 1 {
		t.Fatalf("counts %v", snap.Counts)
	}
	// An hour later the old minutes have left the window and the ring.
	s.Add(t0.Add(65*time.Minute), 1)
	snap = s.Snapshot(t0.Add(65*time.Minute), time.Hour, time.Minute)
	if snap.Total(0) != 0 || snap.Total(1) != 1 {
		t.Fatalf("after wrapping: %v %v", snap.Total(0), snap.Total(1))
	}
}

func BenchmarkAdd(b *testing.B) {
	s := New([]string{"a", "b", "c"}, 1440)
	now := time.Now()
	for b.Loop() {
		s.Add(now, 1)
	}
}
