// Package ratelimit bounds how often something may happen: log lines on packet paths,
// answers to one client, attempts at a passphrase. Any room may import it.
package ratelimit

import (
	"sync"
	"time"
)

// Limiter is a token bucket: Burst events at once, then Rate per second. It is safe
// for concurrent use.
type Limiter struct {
	Rate  float64 // tokens added per second
	Burst float64 // bucket size

	mu         sync.Mutex
	tokens     float64
	last       time.Time
	suppressed int
	started    bool
}

// Allow reports whether an event at now may happen. When it may, suppressed is the
// number of events refused since the last allowed one, so a log line can say how
// many it stands for.
func (l *Limiter) Allow(now time.Time) (ok bool, suppressed int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.started {
		l.started = true
		l.tokens = l.Burst
		l.last = now
	}
	if dt := now.Sub(l.last).Seconds(); dt > 0 {
		l.tokens = min(l.Burst, l.tokens+dt*l.Rate)
		l.last = now
	}
	if l.tokens < 1 {
		l.suppressed++
		return false, 0
	}
	l.tokens--
	suppressed, l.suppressed = l.suppressed, 0
	return true, suppressed
}
