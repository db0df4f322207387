package update

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/redoubt/redoubt/board/layout"
)

// Outcomes of an update, as the history records them. Stable strings.
const (
	OutcomeRefused    = "refused"     // not applied: signature, board, downgrade, damage
	OutcomeStaged     = "staged"      // written to the inactive slot, trial boot next
	OutcomeKept       = "kept"        // the trial passed its health check
	OutcomeFailed     = "failed"      // the trial failed its health check (the box restarts)
	OutcomeRolledBack = "rolled-back" // the box came back on the previous slot
)

// Event is one entry of the update history.
type Event struct {
	At      time.Time   `json:"at"`
	Outcome string      `json:"outcome"`
	Version string      `json:"version,omitempty"`
	Hash    string      `json:"hash,omitempty"` // SHA-256 of the signed manifest
	Slot    layout.Slot `json:"slot,omitempty"`
	Source  string      `json:"source,omitempty"` // "upload", "console", "https://…"
	Detail  string      `json:"detail,omitempty"`
	// Audited is set once the event went to the audit log.
	Audited bool `json:"audited,omitempty"`
}

// Words says the outcome in plain words, for the owner's pages.
func (e Event) Words() string {
	switch e.Outcome {
	case OutcomeRefused:
		return "Refused"
	case OutcomeStaged:
		return "Written; restarting into it"
	case OutcomeKept:
		return "Kept"
	case OutcomeFailed:
		return "Failed its trial"
	case OutcomeRolledBack:
		return "Went back to the previous version"
	}
	return e.Outcome
}

// Staged is an update waiting for, or in, its trial boot.
type Staged struct {
	Slot    layout.Slot `json:"slot"`
	Version string      `json:"version"`
	Hash    string      `json:"hash"`
	At      time.Time   `json:"at"`
	// Failed says why the trial failed, once it has.
	Failed string `json:"failed,omitempty"`
}

// State is what the box remembers about updates, in
// state.dir/board/update.json on the data partition.
type State struct {
	// LastGood is the newest version that passed a trial (or the first
	// image's); nothing older is accepted.
	LastGood string  `json:"last_good"`
	Staged   *Staged `json:"staged,omitempty"`
	History  []Event `json:"history"`
}

// MaxHistory bounds the history.
const MaxHistory = 100

func (s *State) add(e Event) {
	s.History = append(s.History, e)
	if n := len(s.History); n > MaxHistory {
		s.History = append([]Event(nil), s.History[n-MaxHistory:]...)
	}
}

// Store reads and writes the state file.
type Store struct{ Path string }

// NewStore keeps the state under stateDir.
func NewStore(stateDir string) Store {
	return Store{Path: filepath.Join(stateDir, "board", "update.json")}
}

// Load reads the state; a missing file is an empty state.
func (s Store) Load() (State, error) {
	b, err := os.ReadFile(s.Path)
	if errors.Is(err, fs.ErrNotExist) {
		return State{}, nil
	}
	if err != nil {
		return State{}, fmt.Errorf("reading %s: %w", s.Path, err)
	}
	var st State
	if err := json.Unmarshal(b, &st); err != nil {
		return State{}, fmt.Errorf("reading %s: %w", s.Path, err)
	}
	return st, nil
}

// Save writes the state atomically (temporary file, fsync, rename).
func (s Store) Save(st State) error {
	if err := os.MkdirAll(filepath.Dir(s.Path), 0o700); err != nil {
		return err
	}
	b, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return err
	}
	tmp := s.Path + ".new"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	_, err = f.Write(append(b, '\n'))
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, s.Path)
	}
	if err != nil {
		return fmt.Errorf("writing %s: %w", s.Path, err)
	}
	if d, err := os.Open(filepath.Dir(s.Path)); err == nil {
		d.Sync()
		d.Close()
	}
	return nil
}
