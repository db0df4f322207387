// Package audit is the contract of the box's tamper-evident log: what a room
// records (an Event), the Recorder it is handed, and the record each event
// becomes (a leaf of the log's Merkle tree). It imports nothing of the box, so
// every room may import it; only the daemon builds the log itself (audit/log)
// and hands rooms its Recorder.
package audit

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"
)

// Kind sorts what happened. The strings are stable: members' devices and
// saved logs read them.
type Kind string

// The kinds of events.
const (
	// KindStart: the box's software started (its version and the hash of its
	// binary).
	KindStart Kind = "start"
	// KindAdmin: something the owner did on the owner's pages or the console.
	KindAdmin Kind = "admin"
	// KindMember: a change to the team (added, removed, renamed, a key
	// issued, a device approved).
	KindMember Kind = "member"
	// KindLock: the box was unlocked or locked.
	KindLock Kind = "lock"
	// KindVPN: the external VPN's configuration changed.
	KindVPN Kind = "vpn"
	// KindMesh: the team mesh's configuration changed.
	KindMesh Kind = "mesh"
	// KindApp: an app was enabled, disabled, or its options changed.
	KindApp Kind = "app"
	// KindUpdate: the box's software was updated or rolled back.
	KindUpdate Kind = "update"
	// KindBackup: a backup or restore ran (and how it ended), or its
	// settings changed.
	KindBackup Kind = "backup"
	// KindEgress: the daily digest of what the box stopped.
	KindEgress Kind = "egress"
	// KindWitness: a member's device countersigned the log, or a
	// countersignature showed the log forked.
	KindWitness Kind = "witness"
)

// Kinds lists every kind, in the order above.
var Kinds = []Kind{KindStart, KindAdmin, KindMember, KindLock, KindVPN, KindMesh, KindApp, KindUpdate, KindBackup, KindEgress, KindWitness}

// Actors that are not a member.
const (
	ActorOwner = "owner" // the owner, on the owner's pages or the console
	ActorBox   = "box"   // the box itself (a schedule, a start)
)

// Event is what a room records: who did what to what.
type Event struct {
	Kind Kind
	// Action says what happened, in a few words: "add member", "unlock",
	// "enable app", "backup finished".
	Action string
	// Actor is who did it: ActorOwner, ActorBox, or "member:<name>".
	Actor string
	// Subject is what it was done to ("alice", "files", "s3:bucket"), if
	// anything.
	Subject string
	// Detail adds what a member would want to know ("2 of 3 shares",
	// "1204 files, 3.1 MB new"). Never a secret.
	Detail string
}

// Limits on an event's fields, so a record stays small.
const (
	MaxAction  = 64
	MaxActor   = 128
	MaxSubject = 256
	MaxDetail  = 2048
)

// Validate says which field is wrong.
func (e Event) Validate() error {
	if e.Kind == "" {
		return fmt.Errorf("audit event: kind is empty")
	}
	ok := false
	for _, k := range Kinds {
		ok = ok || k == e.Kind
	}
	if !ok {
		return fmt.Errorf("audit event: kind %q: want one of %v", e.Kind, Kinds)
	}
	for _, f := range []struct {
		name, v string
		max     int
		empty   bool
	}{{"action", e.Action, MaxAction, false}, {"actor", e.Actor, MaxActor, false}, {"subject", e.Subject, MaxSubject, true}, {"detail", e.Detail, MaxDetail, true}} {
		if f.v == "" && !f.empty {
			return fmt.Errorf("audit event: %s is empty", f.name)
		}
		if len(f.v) > f.max {
			return fmt.Errorf("audit event: %s is %d bytes: at most %d", f.name, len(f.v), f.max)
		}
		if !utf8.ValidString(f.v) {
			return fmt.Errorf("audit event: %s is not UTF-8", f.name)
		}
	}
	return nil
}

// Recorder takes events. Recording never fails from the caller's side: a log
// that cannot keep an event says so in its own log and status.
type Recorder interface {
	Record(Event)
}

// RecorderFunc adapts a function to a Recorder.
type RecorderFunc func(Event)

// Record implements Recorder.
func (f RecorderFunc) Record(e Event) { f(e) }

// Discard is a Recorder that keeps nothing (tests, tools).
var Discard Recorder = RecorderFunc(func(Event) {})

// Clock states, as records carry them.
const (
	ClockSynced   = "synced"   // the time came from time servers reached through the VPN
	ClockUnsynced = "unsynced" // the box's own clock, not yet checked (a board has no real-time clock)
)

// Record is one leaf of the log: an event with when it happened. Its bytes
// (Marshal) are what the tree hashes and what verifiers are given.
type Record struct {
	Time time.Time `json:"time"`
	// Clock is ClockSynced or ClockUnsynced: whether Time can be trusted.
	Clock   string `json:"clock"`
	Kind    Kind   `json:"kind"`
	Action  string `json:"action"`
	Actor   string `json:"actor"`
	Subject string `json:"subject,omitempty"`
	Detail  string `json:"detail,omitempty"`
	// Salt is random: a leaf's hash, which the box's disk keeps in clear,
	// says nothing about a record one could guess.
	Salt string `json:"salt"`
}

// NewRecord makes the record for e at t.
func NewRecord(e Event, t time.Time, synced bool) Record {
	var salt [12]byte
	rand.Read(salt[:])
	clock := ClockUnsynced
	if synced {
		clock = ClockSynced
	}
	return Record{Time: t.UTC().Truncate(time.Millisecond), Clock: clock, Kind: e.Kind, Action: e.Action, Actor: e.Actor,
		Subject: e.Subject, Detail: e.Detail, Salt: base64.RawStdEncoding.EncodeToString(salt[:])}
}

// Marshal gives the record's leaf bytes: compact JSON.
func (r Record) Marshal() []byte {
	b, _ := json.Marshal(r)
	return b
}

// MaxRecord bounds a record's leaf bytes.
const MaxRecord = 8 << 10

// ParseRecord reads a leaf's bytes.
func ParseRecord(b []byte) (Record, error) {
	var r Record
	if len(b) > MaxRecord {
		return r, fmt.Errorf("audit record: %d bytes: at most %d", len(b), MaxRecord)
	}
	if err := json.Unmarshal(b, &r); err != nil {
		return r, fmt.Errorf("audit record: %w", err)
	}
	if r.Kind == "" || r.Action == "" {
		return r, fmt.Errorf("audit record: no kind or action")
	}
	return r, nil
}

// String is the record on one line, for the CLI.
func (r Record) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %-7s %-7s %s", r.Time.Format(time.RFC3339), r.Kind, r.Actor, r.Action)
	if r.Subject != "" {
		fmt.Fprintf(&b, " %s", r.Subject)
	}
	if r.Detail != "" {
		fmt.Fprintf(&b, " (%s)", r.Detail)
	}
	if r.Clock != ClockSynced {
		b.WriteString(" [clock not synced]")
	}
	return b.String()
}
