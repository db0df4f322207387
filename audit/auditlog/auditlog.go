// Package auditlog is the box's tamper-evident log: an append-only Merkle tree
// (RFC 6962 hashing, golang.org/x/mod/sumdb/tlog) of audit records, with
// checkpoints signed in the C2SP signed-note format by an Ed25519 key kept in
// the vault, consistency and inclusion proofs for verifiers, and the
// countersignatures of members' devices (witnesses).
//
// The file (state.dir/audit/audit.db, bbolt) holds the tree's hashes in clear,
// so proofs can be served at any time, and each record sealed to an X25519
// key whose private half is in the vault: a thief holding the box reads
// neither who is in the team nor what the owner did, and records can still be
// appended while the box is locked (a start, an unlock). Until the owner's
// vault exists (first boot), that private key waits in a file beside the log
// and moves into the vault at the first unlock; nothing before setup is
// sensitive.
//
// Checkpoints are signed only while the box is unlocked (the signing key is
// in the vault) and its clock was synced through the VPN (records carry
// times the signature vouches for); until then the last signed checkpoint is
// served, and Status says why there is no newer one.
//
// Only the daemon imports this package; rooms record through audit.Recorder.
package auditlog

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"
	"golang.org/x/crypto/curve25519"
	"golang.org/x/crypto/nacl/box"
	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/redoubt/redoubt/audit"
	"github.com/redoubt/redoubt/audit/checkpoint"
	"github.com/redoubt/redoubt/vault"
)

// Clock is the box's time as the log needs it.
type Clock interface {
	Now() time.Time
	// Synced says whether Now came from time servers reached through the
	// VPN (or the owner said the system clock is to be trusted).
	Synced() bool
}

type systemClock struct{}

func (systemClock) Now() time.Time { return time.Now() }
func (systemClock) Synced() bool   { return true }

// Deps are what the log needs from the rest of the box.
type Deps struct {
	// Vault keeps the signing key and the records' key. Required.
	Vault  vault.Store
	Logger *slog.Logger
	// Clock gives records their time; nil is the system clock, trusted.
	Clock Clock
}

// Vault bucket and keys.
const (
	vaultBucket    = "audit"
	vaultSigner    = "signer"      // note signer key ("PRIVATE+KEY+…")
	vaultRecordKey = "record-keys" // JSON list of X25519 private keys, base64
)

var (
	bucketMeta      = []byte("meta")
	bucketHashes    = []byte("hashes")
	bucketRecords   = []byte("records")
	bucketWitnesses = []byte("witnesses")

	metaOrigin     = []byte("origin")
	metaSize       = []byte("size")
	metaVKey       = []byte("vkey")
	metaRecordPub  = []byte("record-pub")
	metaCheckpoint = []byte("checkpoint")
	metaForks      = []byte("forks")
)

const (
	fileName       = "audit.db"
	presetupKey    = "presetup-record.key"
	maxEntries     = 256
	maxWitnesses   = 256
	maxPerMember   = 8
	witnessPrefix  = "witness.redoubt/"
	keyFingerprint = 8
)

// Errors callers tell apart.
var (
	ErrLocked      = errors.New("the box is locked: the log's records and key are in the vault")
	ErrNoCheckpont = errors.New("the log has no signed checkpoint yet")
	ErrFork        = errors.New("the witness saw a different history: the log forked")
	ErrRange       = errors.New("out of the log's range")
)

// Log is the audit log.
type Log struct {
	deps Deps
	log  *slog.Logger
	dir  string

	mu        sync.Mutex
	db        *bolt.DB
	size      int64
	origin    string
	recordPub [32]byte
	// While unlocked:
	signer      note.Signer
	recordPrivs map[string]*[32]byte // by fingerprint of the public key
	signed      []byte               // the latest signed checkpoint
	signedAt    checkpoint.Checkpoint
	failed      int // appends that failed since start
}

// Open opens (creating if needed) the log in dir.
func Open(dir string, deps Deps) (*Log, error) {
	if deps.Vault == nil {
		return nil, errors.New("audit log: no vault")
	}
	if deps.Logger == nil {
		deps.Logger = slog.New(slog.DiscardHandler)
	}
	if deps.Clock == nil {
		deps.Clock = systemClock{}
	}
	l := &Log{deps: deps, log: deps.Logger, dir: dir}
	if err := l.open(); err != nil {
		return nil, err
	}
	return l, nil
}

func (l *Log) open() error {
	if err := os.MkdirAll(l.dir, 0o700); err != nil {
		return fmt.Errorf("audit log: %w", err)
	}
	// A log restored from a backup takes the place of the fresh box's.
	restored := filepath.Join(l.dir, fileName+RestoredSuffix)
	if _, err := os.Stat(restored); err == nil {
		if err := os.Rename(restored, filepath.Join(l.dir, fileName)); err != nil {
			return fmt.Errorf("audit log: taking the restored log: %w", err)
		}
		l.log.Info("the audit log restored from a backup takes over")
	}
	db, err := bolt.Open(filepath.Join(l.dir, fileName), 0o600, &bolt.Options{Timeout: 5 * time.Second})
	if err != nil {
		return fmt.Errorf("audit log: opening %s: %w", filepath.Join(l.dir, fileName), err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		for _, b := range [][]byte{bucketMeta, bucketHashes, bucketRecords, bucketWitnesses} {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return err
			}
		}
		m := tx.Bucket(bucketMeta)
		if m.Get(metaOrigin) == nil {
			var id [8]byte
			rand.Read(id[:])
			if err := m.Put(metaOrigin, fmt.Appendf(nil, "redoubt.box/audit/%x", id)); err != nil {
				return err
			}
		}
		if m.Get(metaRecordPub) == nil {
			pub, priv, err := box.GenerateKey(rand.Reader)
			if err != nil {
				return err
			}
			// Until the vault exists, the private half waits beside the log.
			if err := writeFileSync(filepath.Join(l.dir, presetupKey), priv[:]); err != nil {
				return err
			}
			if err := m.Put(metaRecordPub, pub[:]); err != nil {
				return err
			}
		}
		l.origin = string(m.Get(metaOrigin))
		copy(l.recordPub[:], m.Get(metaRecordPub))
		if v := m.Get(metaSize); len(v) == 8 {
			l.size = int64(binary.BigEndian.Uint64(v))
		}
		if v := m.Get(metaCheckpoint); v != nil {
			l.signed = bytes.Clone(v)
		}
		return nil
	})
	if err != nil {
		db.Close()
		return fmt.Errorf("audit log: %w", err)
	}
	l.db = db
	if l.signed != nil {
		c, err := l.parseOwn(l.signed)
		if err != nil {
			l.log.Warn("the stored checkpoint does not parse", "err", err)
			l.signed = nil
		} else {
			l.signedAt = c
		}
	}
	return nil
}

func (l *Log) parseOwn(signed []byte) (checkpoint.Checkpoint, error) {
	text, _, err := checkpoint.SplitNote(signed)
	if err != nil {
		return checkpoint.Checkpoint{}, err
	}
	return checkpoint.ParseBody(text)
}

// Close closes the log's file.
func (l *Log) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.db == nil {
		return nil
	}
	err := l.db.Close()
	l.db = nil
	return err
}

// Origin is the log's name (the checkpoints' first line).
func (l *Log) Origin() string { return l.origin }

// Size is the number of records.
func (l *Log) Size() int64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.size
}

// Record implements audit.Recorder: it appends e, logging a failure.
func (l *Log) Record(e audit.Event) {
	if _, err := l.Append(e); err != nil {
		l.log.Error("an audit record was not kept", "kind", e.Kind, "action", e.Action, "err", err)
	}
}

// Append adds e to the log and returns its index.
func (l *Log) Append(e audit.Event) (int64, error) {
	if err := e.Validate(); err != nil {
		return 0, err
	}
	rec := audit.NewRecord(e, l.deps.Clock.Now(), l.deps.Clock.Synced())
	data := rec.Marshal()
	if len(data) > audit.MaxRecord {
		return 0, fmt.Errorf("audit record: %d bytes: at most %d", len(data), audit.MaxRecord)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.db == nil {
		return 0, errors.New("audit log: closed")
	}
	sealed, err := l.seal(data)
	if err != nil {
		return 0, err
	}
	n := l.size
	err = l.db.Update(func(tx *bolt.Tx) error {
		hashes, err := tlog.StoredHashes(n, data, txHashes(tx))
		if err != nil {
			return err
		}
		hb := tx.Bucket(bucketHashes)
		for i, h := range hashes {
			if err := hb.Put(u64(tlog.StoredHashIndex(0, n)+int64(i)), h[:]); err != nil {
				return err
			}
		}
		if err := tx.Bucket(bucketRecords).Put(u64(n), sealed); err != nil {
			return err
		}
		return tx.Bucket(bucketMeta).Put(metaSize, u64(n+1))
	})
	if err != nil {
		l.failed++
		return 0, fmt.Errorf("audit log: appending record %d: %w", n, err)
	}
	l.size = n + 1
	l.log.Debug("audit record", "index", n, "kind", e.Kind, "action", e.Action, "actor", e.Actor, "subject", e.Subject)
	if err := l.signLocked(); err != nil && !errors.Is(err, ErrLocked) {
		l.log.Debug("no checkpoint signed", "err", err)
	}
	return n, nil
}

func u64(n int64) []byte { return binary.BigEndian.AppendUint64(nil, uint64(n)) }

// txHashes reads stored hashes inside a transaction.
func txHashes(tx *bolt.Tx) tlog.HashReader {
	return tlog.HashReaderFunc(func(idx []int64) ([]tlog.Hash, error) {
		b := tx.Bucket(bucketHashes)
		out := make([]tlog.Hash, len(idx))
		for i, x := range idx {
			v := b.Get(u64(x))
			if len(v) != tlog.HashSize {
				return nil, fmt.Errorf("audit log: stored hash %d is missing", x)
			}
			copy(out[i][:], v)
		}
		return out, nil
	})
}

// view runs f with a hash reader over one read transaction.
func (l *Log) view(f func(tx *bolt.Tx, hr tlog.HashReader) error) error {
	if l.db == nil {
		return errors.New("audit log: closed")
	}
	return l.db.View(func(tx *bolt.Tx) error { return f(tx, txHashes(tx)) })
}

func fingerprint(pub []byte) string {
	h := sha256.Sum256(pub)
	return string(h[:keyFingerprint])
}

// seal encrypts a record to the records' public key, prefixed with the key's
// fingerprint.
func (l *Log) seal(data []byte) ([]byte, error) {
	out := []byte(fingerprint(l.recordPub[:]))
	return box.SealAnonymous(out, data, &l.recordPub, rand.Reader)
}

func (l *Log) unseal(sealed []byte) ([]byte, error) {
	if len(sealed) < keyFingerprint {
		return nil, errors.New("sealed record too short")
	}
	if l.recordPrivs == nil {
		return nil, ErrLocked
	}
	priv := l.recordPrivs[string(sealed[:keyFingerprint])]
	if priv == nil {
		return nil, errors.New("sealed under a key this box no longer has")
	}
	var pub [32]byte
	curve25519Base(&pub, priv)
	data, ok := box.OpenAnonymous(nil, sealed[keyFingerprint:], &pub, priv)
	if !ok {
		return nil, errors.New("the sealed record does not open: altered on disk")
	}
	return data, nil
}

// Unlocked loads the keys from the vault, making them the first time (and
// moving the records' key from beside the log into the vault), and signs a
// checkpoint if the clock allows.
func (l *Log) Unlocked() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	st := l.deps.Vault
	skey, err := st.Get(vaultBucket, vaultSigner)
	if errors.Is(err, vault.ErrNotFound) {
		sk, _, gerr := note.GenerateKey(rand.Reader, l.origin)
		if gerr != nil {
			return fmt.Errorf("audit log: making the signing key: %w", gerr)
		}
		if err := st.Put(vaultBucket, vaultSigner, []byte(sk)); err != nil {
			return fmt.Errorf("audit log: keeping the signing key: %w", err)
		}
		skey, err = []byte(sk), nil
		l.log.Info("the audit log has a signing key", "origin", l.origin)
	}
	if err != nil {
		return fmt.Errorf("audit log: reading the signing key: %w", err)
	}
	signer, err := note.NewSigner(string(skey))
	if err != nil {
		return fmt.Errorf("audit log: the signing key: %w", err)
	}
	privs, err := l.loadRecordKeys()
	if err != nil {
		return err
	}
	vkey, err := vkeyOf(string(skey))
	if err != nil {
		return fmt.Errorf("audit log: the signing key: %w", err)
	}
	l.signer, l.recordPrivs = signer, privs
	if err := l.db.Update(func(tx *bolt.Tx) error { return tx.Bucket(bucketMeta).Put(metaVKey, []byte(vkey)) }); err != nil {
		return fmt.Errorf("audit log: %w", err)
	}
	if err := l.signLocked(); err != nil {
		l.log.Debug("no checkpoint signed", "err", err)
	}
	return nil
}

// loadRecordKeys reads the records' private keys from the vault, adding the
// one waiting beside the log.
func (l *Log) loadRecordKeys() (map[string]*[32]byte, error) {
	st := l.deps.Vault
	var list [][]byte
	raw, err := st.Get(vaultBucket, vaultRecordKey)
	switch {
	case errors.Is(err, vault.ErrNotFound):
	case err != nil:
		return nil, fmt.Errorf("audit log: reading the records' key: %w", err)
	default:
		if err := json.Unmarshal(raw, &list); err != nil {
			return nil, fmt.Errorf("audit log: the records' keys: %w", err)
		}
	}
	path := filepath.Join(l.dir, presetupKey)
	if pre, err := os.ReadFile(path); err == nil && len(pre) == 32 {
		list = append(list, pre)
		b, _ := json.Marshal(list)
		if err := st.Put(vaultBucket, vaultRecordKey, b); err != nil {
			return nil, fmt.Errorf("audit log: moving the records' key into the vault: %w", err)
		}
		os.Remove(path)
	}
	out := map[string]*[32]byte{}
	for _, k := range list {
		if len(k) != 32 {
			continue
		}
		var priv, pub [32]byte
		copy(priv[:], k)
		curve25519Base(&pub, &priv)
		out[fingerprint(pub[:])] = &priv
	}
	if out[fingerprint(l.recordPub[:])] == nil {
		// The private half was lost before the vault existed (a restart in
		// the middle of setup): records from then on use a new key.
		pub, priv, err := box.GenerateKey(rand.Reader)
		if err != nil {
			return nil, err
		}
		list = append(list, priv[:])
		b, _ := json.Marshal(list)
		if err := st.Put(vaultBucket, vaultRecordKey, b); err != nil {
			return nil, fmt.Errorf("audit log: keeping the records' key: %w", err)
		}
		if err := l.db.Update(func(tx *bolt.Tx) error { return tx.Bucket(bucketMeta).Put(metaRecordPub, pub[:]) }); err != nil {
			return nil, fmt.Errorf("audit log: %w", err)
		}
		l.recordPub = *pub
		out[fingerprint(pub[:])] = priv
		l.log.Warn("the audit log's records key was lost before setup finished: earlier records stay sealed")
	}
	return out, nil
}

// Locked forgets the keys.
func (l *Log) Locked() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.signer, l.recordPrivs = nil, nil
}

// VerifierKey is the log's public key as a vkey ("" before the first unlock
// made it).
func (l *Log) VerifierKey() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.verifierKeyLocked()
}

func (l *Log) verifierKeyLocked() string {
	var vkey []byte
	if l.db != nil {
		l.db.View(func(tx *bolt.Tx) error { vkey = bytes.Clone(tx.Bucket(bucketMeta).Get(metaVKey)); return nil })
	}
	return string(vkey)
}

// vkeyOf derives the verifier key from a signer key
// ("PRIVATE+KEY+name+hash+base64(0x01 || seed)").
func vkeyOf(skey string) (string, error) {
	parts := strings.SplitN(skey, "+", 5)
	if len(parts) != 5 || parts[0] != "PRIVATE" || parts[1] != "KEY" {
		return "", errors.New("not a signer key")
	}
	raw, err := base64.StdEncoding.DecodeString(parts[4])
	if err != nil || len(raw) != 1+ed25519.SeedSize || raw[0] != 1 {
		return "", errors.New("not an Ed25519 signer key")
	}
	pub := ed25519.NewKeyFromSeed(raw[1:]).Public().(ed25519.PublicKey)
	return note.NewEd25519VerifierKey(parts[2], pub)
}

func curve25519Base(pub, priv *[32]byte) {
	p, _ := curve25519.X25519(priv[:], curve25519.Basepoint)
	copy(pub[:], p)
}

// waitReason says why a newer checkpoint cannot be signed now, or "".
func (l *Log) waitReason() string {
	switch {
	case l.signer == nil:
		return "the box is locked: checkpoints are signed with a key in the vault"
	case !l.deps.Clock.Synced():
		return "waiting for the clock: the time is not yet synced through the VPN"
	case l.size == 0:
		return "the log is empty"
	}
	return ""
}

// signLocked signs a checkpoint of the whole tree if it grew and the box can.
func (l *Log) signLocked() error {
	if l.signer == nil {
		return ErrLocked
	}
	if r := l.waitReason(); r != "" {
		return errors.New(r)
	}
	if l.signed != nil && l.signedAt.Size == l.size {
		return nil
	}
	var root tlog.Hash
	if err := l.view(func(_ *bolt.Tx, hr tlog.HashReader) (err error) {
		root, err = tlog.TreeHash(l.size, hr)
		return err
	}); err != nil {
		return fmt.Errorf("audit log: the tree's root at size %d: %w", l.size, err)
	}
	c := checkpoint.Checkpoint{Origin: l.origin, Size: l.size, Hash: root}
	signed, err := checkpoint.Sign(c, l.signer)
	if err != nil {
		return fmt.Errorf("audit log: %w", err)
	}
	if err := l.db.Update(func(tx *bolt.Tx) error { return tx.Bucket(bucketMeta).Put(metaCheckpoint, signed) }); err != nil {
		return fmt.Errorf("audit log: keeping the checkpoint: %w", err)
	}
	l.signed, l.signedAt = signed, c
	return nil
}

// Checkpoint returns the latest signed checkpoint, signing one first if the
// log grew and the box can. When there is none yet, the error says why.
func (l *Log) Checkpoint() ([]byte, checkpoint.Checkpoint, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.db == nil {
		return nil, checkpoint.Checkpoint{}, errors.New("audit log: closed")
	}
	l.signLocked()
	if l.signed == nil {
		r := l.waitReason()
		if r == "" {
			r = "not signed yet"
		}
		return nil, checkpoint.Checkpoint{}, fmt.Errorf("%w: %s", ErrNoCheckpont, r)
	}
	return bytes.Clone(l.signed), l.signedAt, nil
}

// Status is the log as the owner's pages and the console show it.
type Status struct {
	Origin string `json:"origin"`
	Key    string `json:"key,omitempty"`
	Size   int64  `json:"size"`
	// Signed is the size of the latest signed checkpoint.
	Signed int64 `json:"signed"`
	// Waiting says why the latest records are not in a signed checkpoint.
	Waiting   string          `json:"waiting,omitempty"`
	Failed    int             `json:"failed,omitempty"`
	Witnesses []WitnessStatus `json:"witnesses"`
	// Forks are witnesses' checkpoints this log does not contain: its
	// history was rewritten after they saw it.
	Forks []string `json:"forks,omitempty"`
}

// Status reports the log's state.
func (l *Log) Status() Status {
	l.mu.Lock()
	defer l.mu.Unlock()
	st := Status{Origin: l.origin, Key: l.verifierKeyLocked(), Size: l.size, Failed: l.failed, Witnesses: []WitnessStatus{}}
	if l.signed != nil {
		st.Signed = l.signedAt.Size
	}
	if st.Signed < l.size {
		st.Waiting = l.waitReason()
	}
	if l.db != nil {
		l.db.View(func(tx *bolt.Tx) error {
			st.Witnesses = witnessesIn(tx)
			if v := tx.Bucket(bucketMeta).Get(metaForks); v != nil {
				json.Unmarshal(v, &st.Forks)
			}
			return nil
		})
	}
	return st
}

// Consistency proves that the tree at size next extends the tree at prev.
func (l *Log) Consistency(prev, next int64) (tlog.TreeProof, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if prev < 1 || prev > next || next > l.size {
		return nil, fmt.Errorf("consistency from %d to %d: %w (1 ≤ old ≤ new ≤ %d)", prev, next, ErrRange, l.size)
	}
	var p tlog.TreeProof
	err := l.view(func(_ *bolt.Tx, hr tlog.HashReader) (err error) {
		p, err = tlog.ProveTree(next, prev, hr)
		return err
	})
	return p, err
}

// Entry is a record with its proof of inclusion in a tree size.
type Entry struct {
	Index int64
	Data  []byte
	Proof tlog.RecordProof
}

// Entries returns records [start, end) with inclusion proofs against the
// tree of the given size. The box must be unlocked.
func (l *Log) Entries(start, end, size int64) ([]Entry, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if start < 0 || start >= end || end > size || size > l.size {
		return nil, fmt.Errorf("entries [%d, %d) of size %d: %w (size at most %d)", start, end, size, ErrRange, l.size)
	}
	if end-start > maxEntries {
		end = start + maxEntries
	}
	if l.recordPrivs == nil {
		return nil, ErrLocked
	}
	var out []Entry
	err := l.view(func(tx *bolt.Tx, hr tlog.HashReader) error {
		rb := tx.Bucket(bucketRecords)
		for i := start; i < end; i++ {
			sealed := rb.Get(u64(i))
			if sealed == nil {
				return fmt.Errorf("audit log: record %d is missing", i)
			}
			data, err := l.unseal(sealed)
			if err != nil {
				return fmt.Errorf("audit log: record %d: %w", i, err)
			}
			p, err := tlog.ProveRecord(size, i, hr)
			if err != nil {
				return fmt.Errorf("audit log: proving record %d: %w", i, err)
			}
			out = append(out, Entry{Index: i, Data: data, Proof: p})
		}
		return nil
	})
	return out, err
}

// WitnessStatus is one member's device that countersigns the log.
type WitnessStatus struct {
	Member string `json:"member"`
	Key    string `json:"key"`
	Added  time.Time
	// Checkpoint is the latest checkpoint it cosigned, with the log's
	// signature and its own.
	Checkpoint string    `json:"checkpoint,omitempty"`
	Size       int64     `json:"size"`
	Time       time.Time `json:"time"`
}

func witnessesIn(tx *bolt.Tx) []WitnessStatus {
	out := []WitnessStatus{}
	tx.Bucket(bucketWitnesses).ForEach(func(_, v []byte) error {
		var w WitnessStatus
		if json.Unmarshal(v, &w) == nil {
			out = append(out, w)
		}
		return nil
	})
	return out
}

// Witnesses lists the witnesses and what they last cosigned.
func (l *Log) Witnesses() []WitnessStatus {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []WitnessStatus
	l.view(func(tx *bolt.Tx, _ tlog.HashReader) error { out = witnessesIn(tx); return nil })
	return out
}

// WitnessName is the key name a member's device cosigns under:
// "witness.redoubt/<member>/<id>".
func WitnessName(member, id string) string { return witnessPrefix + member + "/" + id }

// AddCosignature takes a checkpoint the member's device verified and
// cosigned with the witness key vkey. A first key of a device is registered
// to the member (at most 8 per member). A cosigned checkpoint that is not in
// this log's history is a fork: it is recorded, kept for the owner and
// members to see, and refused with ErrFork.
func (l *Log) AddCosignature(member, vkey string, cosigned []byte) error {
	w, err := checkpoint.ParseWitnessKey(vkey)
	if err != nil {
		return err
	}
	if !strings.HasPrefix(w.Name, witnessPrefix+member+"/") {
		return fmt.Errorf("witness key %q: a member's key is named %s<member>/<id>, and you are %q", w.Name, witnessPrefix, member)
	}
	logKey := l.VerifierKey()
	if logKey == "" {
		return ErrNoCheckpont
	}
	c, n, err := checkpoint.Open(cosigned, logKey, w)
	if err != nil {
		return err
	}
	cos := checkpoint.Cosignatures(n, []checkpoint.Witness{w})
	if len(cos) == 0 {
		return fmt.Errorf("the checkpoint has no valid cosignature by %s", w.Name)
	}
	if cos[0].Time.After(l.deps.Clock.Now().Add(10 * time.Minute)) {
		return fmt.Errorf("the cosignature's time %s is in the future", cos[0].Time.Format(time.RFC3339))
	}
	forked, added, err := l.addCosignature(member, vkey, w, c, cos[0], cosigned)
	switch {
	case forked != "":
		l.log.Error("the audit log forked", "detail", forked)
		l.Record(audit.Event{Kind: audit.KindWitness, Action: "fork detected", Actor: "member:" + member, Subject: w.Name, Detail: forked})
		return fmt.Errorf("%w: %s", ErrFork, forked)
	case err != nil:
		return err
	case added:
		l.Record(audit.Event{Kind: audit.KindWitness, Action: "witness added", Actor: "member:" + member, Subject: w.Name})
	}
	return nil
}

func (l *Log) addCosignature(member, vkey string, w checkpoint.Witness, c checkpoint.Checkpoint, cos checkpoint.Cosignature, cosigned []byte) (forked string, added bool, err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.db == nil {
		return "", false, errors.New("audit log: closed")
	}
	if c.Size > l.size {
		forked = fmt.Sprintf("%s cosigned size %d, but the log has %d records: records were removed", w.Name, c.Size, l.size)
	} else {
		var root tlog.Hash
		if err := l.view(func(_ *bolt.Tx, hr tlog.HashReader) (err error) {
			root, err = tlog.TreeHash(c.Size, hr)
			return err
		}); err != nil {
			return "", false, fmt.Errorf("audit log: %w", err)
		}
		if root != c.Hash {
			forked = fmt.Sprintf("%s cosigned size %d with another root: the history it saw was rewritten", w.Name, c.Size)
		}
	}
	if forked != "" {
		l.db.Update(func(tx *bolt.Tx) error {
			var forks []string
			json.Unmarshal(tx.Bucket(bucketMeta).Get(metaForks), &forks)
			if len(forks) < 64 {
				forks = append(forks, forked)
			}
			b, _ := json.Marshal(forks)
			return tx.Bucket(bucketMeta).Put(metaForks, b)
		})
		return forked, false, nil
	}
	err = l.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketWitnesses)
		var cur WitnessStatus
		if v := b.Get([]byte(w.Name)); v != nil {
			json.Unmarshal(v, &cur)
			if cur.Key != vkey {
				return fmt.Errorf("witness %s is registered with another key", w.Name)
			}
		} else {
			all := witnessesIn(tx)
			mine := 0
			for _, o := range all {
				if o.Member == member {
					mine++
				}
			}
			if mine >= maxPerMember || len(all) >= maxWitnesses {
				return fmt.Errorf("too many witness keys (%d for %s, %d in all): the owner can remove old devices", mine, member, len(all))
			}
			cur = WitnessStatus{Member: member, Key: vkey, Added: l.deps.Clock.Now().UTC()}
			added = true
		}
		if c.Size >= cur.Size {
			cur.Checkpoint, cur.Size, cur.Time = string(cosigned), c.Size, cos.Time
		}
		v, _ := json.Marshal(cur)
		return b.Put([]byte(w.Name), v)
	})
	return "", added, err
}

// RemoveWitnesses forgets a member's witness keys (the member was removed).
func (l *Log) RemoveWitnesses(member string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.db == nil {
		return
	}
	l.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketWitnesses)
		for _, w := range witnessesIn(tx) {
			if w.Member == member {
				if wk, err := checkpoint.ParseWitnessKey(w.Key); err == nil {
					b.Delete([]byte(wk.Name))
				}
			}
		}
		return nil
	})
}

// Wipe erases the log (a factory reset): the next unlock starts a new log
// with new keys.
func (l *Log) Wipe() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.db != nil {
		l.db.Close()
		l.db = nil
	}
	for _, f := range []string{fileName, presetupKey} {
		if err := os.Remove(filepath.Join(l.dir, f)); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("audit log: erasing: %w", err)
		}
	}
	l.size, l.signed, l.signedAt, l.signer, l.recordPrivs = 0, nil, checkpoint.Checkpoint{}, nil, nil
	return l.open()
}

// writeFileSync writes a file and syncs it before returning.
func writeFileSync(path string, data []byte) error {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

var _ io.Closer = (*Log)(nil)

// Copy returns a consistent copy of the log's file (for backups): its hashes,
// sealed records, witnesses and checkpoints.
func (l *Log) Copy() ([]byte, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.db == nil {
		return nil, errors.New("audit log: closed")
	}
	var buf bytes.Buffer
	err := l.db.View(func(tx *bolt.Tx) error {
		_, err := tx.WriteTo(&buf)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("audit log: copying: %w", err)
	}
	return buf.Bytes(), nil
}

// FileName is the log's file in its directory; a restore writes its copy
// as FileName+RestoredSuffix, which the log takes at its next start.
const (
	FileName       = fileName
	RestoredSuffix = ".restored"
)
