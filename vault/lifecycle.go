package vault

import (
	"log/slog"
	"slices"
	"sync"
)

// Sealed is a room whose work needs what the vault keeps: the external VPN
// (a config the owner set), the team mesh (its node's keys, Headscale's API
// key), the apps (their data keys). It registers once with the daemon's
// Lifecycle and is told when the box is unlocked and locked.
type Sealed interface {
	// Unlocked is called once the vault is open. It returns promptly: work
	// that takes long (joining a network) goes on in the background and
	// ends with Locked.
	Unlocked()
	// Locked is called when the box is locked, and when it stops. When it
	// returns, the room no longer uses anything it read from the vault: it
	// stands as after a restart, waiting for the next Unlocked.
	Locked()
}

// Lifecycle tells the sealed rooms when the box is unlocked and locked: each
// room registers once, the daemon calls Unlocked and Locked, and a new room
// never edits either. Rooms are unlocked in the order they registered and
// locked in the reverse order (the apps stop before the mesh they are served
// on, the mesh before the VPN it travels through). Calls are serialised, and a
// second Unlocked (or Locked) in a row does nothing.
type Lifecycle struct {
	log *slog.Logger

	mu       sync.Mutex
	rooms    []room
	unlocked bool
}

type room struct {
	name string
	s    Sealed
}

// NewLifecycle returns a Lifecycle with no rooms, locked.
func NewLifecycle(log *slog.Logger) *Lifecycle {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Lifecycle{log: log}
}

// Register adds a sealed room, named for the log. Registered while the box is
// unlocked, it is unlocked at once.
func (l *Lifecycle) Register(name string, s Sealed) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.rooms = append(l.rooms, room{name, s})
	if l.unlocked {
		s.Unlocked()
	}
}

// Unlocked tells every room, in registration order, that the vault is open.
func (l *Lifecycle) Unlocked() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.unlocked {
		return
	}
	l.unlocked = true
	for _, r := range l.rooms {
		l.log.Debug("unlocking", "sealed", r.name)
		r.s.Unlocked()
	}
}

// Locked tells every room, in reverse registration order, to stop what runs
// on the vault's keys. The daemon calls it when the box is locked and when it
// stops.
func (l *Lifecycle) Locked() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.unlocked {
		return
	}
	l.unlocked = false
	for _, r := range slices.Backward(l.rooms) {
		l.log.Debug("locking", "sealed", r.name)
		r.s.Locked()
	}
}

// IsUnlocked reports whether the rooms were last told the box is unlocked.
func (l *Lifecycle) IsUnlocked() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.unlocked
}
