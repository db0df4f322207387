// Package repo is the backup repository: deduplicated, compressed, encrypted
// snapshots of directory trees (and of data made at backup time, such as the
// vault's sealed records), kept as objects in a target.Store (S3, a
// teammate's box, a directory).
//
// Format (version 1):
//
//	config                  {"version", "id", "created"}: no secret
//	keys/recovery           the master key, wrapped by the recovery key
//	data/XX/<sha256>        packs: encrypted blobs, then an encrypted header
//	                        listing them, then the header's length (4 bytes);
//	                        named by the SHA-256 of their bytes
//	index/<random>          encrypted: which blobs are in which packs
//	snapshots/<random>      encrypted: when, what, the root tree's blob
//
// A blob is a chunk of a file (content-defined cuts, keyed gear hash) or a
// tree (a directory's listing, JSON), named by HMAC-SHA256 of its content
// under a key of the repository, compressed with zstd when that helps, and
// sealed with XChaCha20-Poly1305 (the Raspberry Pi 4 has no AES
// instructions) under a key derived from the master key, bound to its type
// and ID. Metadata objects are sealed the same way, bound to their names.
//
// Writes are ordered so an interrupted backup (a crash, kill -9, a lost
// connection) leaves the repository usable: packs first, then the index that
// names them, then the snapshot. Packs nothing indexes yet are picked up by
// the next backup (their headers are read back), so its work is not lost.
//
// The backup room (package backup) drives it; tests and the benchmark use it
// directly.
package repo

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/redoubt/redoubt/backup/target"
)

// Version is the repository format's version.
const Version = 1

// Config is the repository's public description.
type Config struct {
	Version int       `json:"version"`
	ID      string    `json:"id"`
	Created time.Time `json:"created"`
}

// Repo is an open repository.
type Repo struct {
	store target.Store
	keys  *keys
	cfg   Config
}

// recoveryFile is keys/recovery.
type recoveryFile struct {
	KDF     string `json:"kdf"`
	Set     string `json:"set"` // the recovery key's set id (hex), for the restore wizard to say which key is wanted
	Wrapped []byte `json:"wrapped"`
}

// ErrNoRepository: the store holds no repository.
var ErrNoRepository = errors.New("no backup repository there")

// ErrWrongKey: the key given does not open this repository.
var ErrWrongKey = errors.New("this key does not open the backup repository")

// Init creates a repository in an empty store, with master as its key,
// reachable also with the recovery key (its set id is recorded beside it).
func Init(ctx context.Context, store target.Store, master, recoveryKey []byte, recoverySet string) (*Repo, error) {
	if _, err := store.Get(ctx, "config"); err == nil {
		return nil, fmt.Errorf("%s already holds a backup repository", store)
	} else if !errors.Is(err, target.ErrNotFound) {
		return nil, fmt.Errorf("reading %s: %w", store, err)
	}
	k, err := newKeys(master)
	if err != nil {
		return nil, err
	}
	var id [8]byte
	rand.Read(id[:])
	cfg := Config{Version: Version, ID: hex.EncodeToString(id[:]), Created: time.Now().UTC()}
	r := &Repo{store: store, keys: k, cfg: cfg}
	if err := r.SetRecoveryKey(ctx, master, recoveryKey, recoverySet); err != nil {
		return nil, err
	}
	// A check object: proves the master key opens this repository.
	if err := r.putSealed(ctx, "keys/check", []byte(cfg.ID)); err != nil {
		return nil, err
	}
	b, _ := json.Marshal(cfg)
	if err := store.Put(ctx, "config", b); err != nil {
		return nil, fmt.Errorf("writing the repository's config to %s: %w", store, err)
	}
	return r, nil
}

// SetRecoveryKey (re)writes keys/recovery: the master key wrapped by the
// recovery key.
func (r *Repo) SetRecoveryKey(ctx context.Context, master, recoveryKey []byte, set string) error {
	w, err := wrapKey(recoveryKey, master, "recovery")
	if err != nil {
		return err
	}
	b, _ := json.Marshal(recoveryFile{KDF: "hkdf-sha256", Set: set, Wrapped: w})
	if err := r.store.Put(ctx, "keys/recovery", b); err != nil {
		return fmt.Errorf("writing the recovery key's file to %s: %w", r.store, err)
	}
	return nil
}

// Open opens the repository in store with its master key.
func Open(ctx context.Context, store target.Store, master []byte) (*Repo, error) {
	raw, err := store.Get(ctx, "config")
	if errors.Is(err, target.ErrNotFound) {
		return nil, fmt.Errorf("%s: %w", store, ErrNoRepository)
	}
	if err != nil {
		return nil, fmt.Errorf("reading the repository's config from %s: %w", store, err)
	}
	var cfg Config
	if err := json.Unmarshal(raw, &cfg); err != nil {
		return nil, fmt.Errorf("the repository's config in %s is damaged: %w", store, err)
	}
	if cfg.Version != Version {
		return nil, fmt.Errorf("the repository in %s is of version %d: this box reads version %d", store, cfg.Version, Version)
	}
	k, err := newKeys(master)
	if err != nil {
		return nil, err
	}
	r := &Repo{store: store, keys: k, cfg: cfg}
	check, err := r.getSealed(ctx, "keys/check")
	if err != nil || string(check) != cfg.ID {
		return nil, fmt.Errorf("%s: %w", store, ErrWrongKey)
	}
	return r, nil
}

// MasterFromRecovery unwraps the master key with the recovery key.
func MasterFromRecovery(ctx context.Context, store target.Store, recoveryKey []byte) ([]byte, error) {
	raw, err := store.Get(ctx, "keys/recovery")
	if errors.Is(err, target.ErrNotFound) {
		return nil, fmt.Errorf("%s: %w", store, ErrNoRepository)
	}
	if err != nil {
		return nil, fmt.Errorf("reading the recovery key's file from %s: %w", store, err)
	}
	var f recoveryFile
	if err := json.Unmarshal(raw, &f); err != nil {
		return nil, fmt.Errorf("the recovery key's file in %s is damaged: %w", store, err)
	}
	master, err := unwrapKey(recoveryKey, f.Wrapped, "recovery")
	if err != nil {
		return nil, fmt.Errorf("%w: it was made with the recovery key of set %s", ErrWrongKey, f.Set)
	}
	return master, nil
}

// Config is the repository's public description.
func (r *Repo) Config() Config { return r.cfg }

// Store is where the repository is.
func (r *Repo) Store() target.Store { return r.store }

// Close releases the repository's resources.
func (r *Repo) Close() { r.keys.close() }

// maxMeta bounds a metadata object (index, snapshot) once decrypted.
const maxMeta = 256 << 20

func (r *Repo) putSealed(ctx context.Context, name string, plain []byte) error {
	sealed, err := r.keys.seal(plain, []byte("object "+name), true)
	if err != nil {
		return err
	}
	if err := r.store.Put(ctx, name, sealed); err != nil {
		return fmt.Errorf("writing %s to %s: %w", name, r.store, err)
	}
	return nil
}

func (r *Repo) getSealed(ctx context.Context, name string) ([]byte, error) {
	sealed, err := r.store.Get(ctx, name)
	if err != nil {
		return nil, fmt.Errorf("reading %s from %s: %w", name, r.store, err)
	}
	plain, err := r.keys.open(sealed, []byte("object "+name), maxMeta)
	if err != nil {
		return nil, fmt.Errorf("%s in %s: %w", name, r.store, err)
	}
	return plain, nil
}

func randomName(prefix string) string {
	var b [16]byte
	rand.Read(b[:])
	return prefix + hex.EncodeToString(b[:])
}
