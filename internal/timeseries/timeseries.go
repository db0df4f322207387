// Package timeseries counts events per category per minute over a bounded window
// (a day by default), for charts of what the box stopped over time. Memory is fixed
// at creation. Any room may import it.
package timeseries

import (
	"sync"
	"time"
)

// Series is a ring of per-minute counters, one row per category. It is safe for
// concurrent use.
type Series struct {
	names   []string
	minutes int

	mu    sync.Mutex
	slots [][]uint32 // [minute % minutes][category]
	stamp []int64    // the minute (Unix minutes) each slot holds
}

// New makes a Series for categories over the last minutes minutes.
func New(categories []string, minutes int) *Series {
	if minutes < 1 {
		minutes = 24 * 60
	}
	s := &Series{names: append([]string(nil), categories...), minutes: minutes,
		slots: make([][]uint32, minutes), stamp: make([]int64, minutes)}
	for i := range s.slots {
		s.slots[i] = make([]uint32, len(categories))
		s.stamp[i] = -1
	}
	return s
}

// Add counts one event of category c (an index into the categories) at t.
func (s *Series) Add(t time.Time, c int) {
	if c < 0 || c >= len(s.names) {
		return
	}
	m := t.Unix() / 60
	i := int(m % int64(s.minutes))
	s.mu.Lock()
	if s.stamp[i] != m {
		clear(s.slots[i])
		s.stamp[i] = m
	}
	if s.slots[i][c] < ^uint32(0) {
		s.slots[i][c]++
	}
	s.mu.Unlock()
}

// Reset zeroes every count.
func (s *Series) Reset() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i := range s.slots {
		clear(s.slots[i])
		s.stamp[i] = -1
	}
}

// Snapshot is the counts over a window, in buckets of Step, oldest first.
type Snapshot struct {
	Categories []string   `json:"categories"`
	Start      time.Time  `json:"start"`
	Step       int        `json:"step_seconds"`
	Counts     [][]uint64 `json:"counts"` // [bucket][category]
}

// Total is the sum of every bucket for category c.
func (s Snapshot) Total(c int) uint64 {
	var n uint64
	for _, b := range s.Counts {
		n += b[c]
	}
	return n
}

// Snapshot returns the window ending at now, in buckets of step (whole minutes).
func (s *Series) Snapshot(now time.Time, window, step time.Duration) Snapshot {
	stepMin := max(int64(step/time.Minute), 1)
	windowMin := min(max(int64(window/time.Minute), stepMin), int64(s.minutes))
	buckets := int((windowMin + stepMin - 1) / stepMin)
	end := now.Unix() / 60
	first := end - int64(buckets)*stepMin + 1
	snap := Snapshot{Categories: append([]string(nil), s.names...), Start: time.Unix(first*60, 0), Step: int(stepMin * 60),
		Counts: make([][]uint64, buckets)}
	for b := range snap.Counts {
		snap.Counts[b] = make([]uint64, len(s.names))
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for m := first; m <= end; m++ {
		if end-m >= int64(s.minutes) {
			continue
		}
		i := int(m % int64(s.minutes))
		if s.stamp[i] != m {
			continue
		}
		b := int((m - first) / stepMin)
		for c, n := range s.slots[i] {
			snap.Counts[b][c] += uint64(n)
		}
	}
	return snap
}
