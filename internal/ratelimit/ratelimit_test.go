package ratelimit

import (
	"testing"
	"time"
)

func TestLimiter(t *testing.T) {
	l := &Limiter{Rate: 2, Burst: 3}
	t0 := time.Unix(1000, 0)
	for i := range 3 {
		if ok, _ := l.Allow(t0); !ok {
			t.Fatalf("event %d within the burst was refused", i)
		}
	}
	for range 5 {
		if ok, _ := l.Allow(t0); ok {
			t.Fatal("event beyond the burst was allowed")
		}
	}
	// Half a second later one token has come back.
	ok, suppressed := l.Allow(t0.Add(500 * time.Millisecond))
	if !ok || suppressed != 5 {
		t.Fatalf("after refill: ok=%v suppressed=%d, want true 5", ok, suppressed)
	}
	if ok, _ := l.Allow(t0.Add(500 * time.Millisecond)); ok {
		t.Fatal("second event after a one-token refill was allowed")
	}
	// A long pause refills only up to the burst.
	for i := range 3 {
		if ok, _ := l.Allow(t0.Add(time.Hour)); !ok {
			t.Fatalf("event %d after a long pause was refused", i)
		}
	}
	if ok, _ := l.Allow(t0.Add(time.Hour)); ok {
		t.Fatal("bucket refilled beyond its burst")
	}
}
