package members

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/redoubt/redoubt/vpn/headscale"
)

// statusState is the coordination server's status and its lock (apart from
// m.mu, so Status never waits behind a slow change).
type statusState struct {
	mu sync.Mutex
	Status
	backoff time.Duration
}

// Status returns the coordination server's status. It reflects the periodic
// checks (Start) and the outcome of every change; it is about managing
// members only: the tailnet's running connections do not depend on it.
func (m *Manager) Status() Status {
	m.st.mu.Lock()
	defer m.st.mu.Unlock()
	return m.st.Status
}

func (m *Manager) resetStatus(configured bool) {
	m.st.mu.Lock()
	defer m.st.mu.Unlock()
	m.st.Status = Status{Configured: configured}
	m.st.backoff = 0
	if !configured {
		m.st.Detail = ErrNotReady.Error()
	}
}

func (m *Manager) statusOK(detail string) {
	m.st.mu.Lock()
	defer m.st.mu.Unlock()
	now := m.now()
	if !m.st.Reachable && m.st.ConsecutiveFails > 0 {
		m.log.Info("the coordination server answers again", "after_failures", m.st.ConsecutiveFails)
	}
	if detail == "" {
		detail = "the coordination server answers and accepts the box's API key"
	}
	m.st.Status = Status{Configured: true, Reachable: true, Detail: detail, LastOK: now, LastTry: now, NextTry: now.Add(m.tm.every)}
	m.st.backoff = 0
}

func (m *Manager) statusFailed(err error) {
	m.st.mu.Lock()
	defer m.st.mu.Unlock()
	now := m.now()
	if m.st.backoff == 0 {
		m.st.backoff = m.tm.retryFirst
	} else {
		m.st.backoff = min(2*m.st.backoff, m.tm.retryMax)
	}
	s := &m.st.Status
	s.Configured = true
	s.LastTry = now
	s.NextTry = now.Add(m.st.backoff)
	s.ConsecutiveFails++
	s.KeyRejected = errors.Is(err, headscale.ErrUnauthorized)
	s.Reachable = s.KeyRejected // it answered, but refuses the key
	switch {
	case s.KeyRejected:
		s.Detail = "the coordination server refuses the box's API key (wrong, expired or revoked): make a new one with `headscale apikeys create` and give it to the box. Members cannot be changed meanwhile; the team's connections are not affected."
	default:
		s.Detail = "the coordination server does not answer: " + err.Error() + ". Members cannot be changed meanwhile. Devices already connected stay connected while the team's relay is up; a relay that runs inside this Headscale pauses them until it is back."
	}
	if s.ConsecutiveFails == 1 || s.ConsecutiveFails%10 == 0 {
		m.log.Warn("coordination server check failed", "failures", s.ConsecutiveFails, "retry_in", m.st.backoff, "err", err)
	}
}

// Start checks the coordination server's health now and then: every 30 s
// while it answers; after a failure again in 2 s, doubling up to 2 minutes.
// Close stops it.
func (m *Manager) Start() {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.cancel != nil {
		return
	}
	ctx, cancel := context.WithCancel(context.Background())
	m.cancel, m.done = cancel, make(chan struct{})
	go m.loop(ctx, m.done)
}

// Close stops the checks.
func (m *Manager) Close() {
	m.mu.Lock()
	cancel, done := m.cancel, m.done
	m.cancel = nil
	m.mu.Unlock()
	if cancel != nil {
		cancel()
		<-done
	}
}

func (m *Manager) poke() {
	select {
	case m.wake <- struct{}{}:
	default:
	}
}

func (m *Manager) loop(ctx context.Context, done chan struct{}) {
	defer close(done)
	for {
		m.check(ctx)
		wait := m.tm.every
		if st := m.Status(); st.Configured && (!st.Reachable || st.KeyRejected) {
			if d := time.Until(st.NextTry); d > 0 {
				wait = d
			} else {
				wait = m.tm.retryFirst
			}
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-m.wake:
			t.Stop()
		case <-t.C:
		}
	}
}

// check asks Headscale's health endpoint (which also checks the API key).
func (m *Manager) check(ctx context.Context) {
	m.mu.Lock()
	hs := m.hs
	m.mu.Unlock()
	if hs == nil {
		return
	}
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	err := hs.Health(cctx)
	if ctx.Err() != nil {
		return
	}
	if err != nil {
		m.statusFailed(err)
		return
	}
	m.statusOK("")
}
