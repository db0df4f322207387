// Package store is an app's storage on the box's disk: sealed records (a
// key-value store) and encrypted blobs (large data, streamed), both under a
// key the host keeps in the vault, in a directory of the app's own. Nothing in
// the directory is readable without the key: record names and values are
// sealed, blob names live only in the sealed index, and blob files are
// XChaCha20-Poly1305 in 64 KiB chunks named by random IDs.
//
// Layout of an app's directory:
//
//	store.db        bbolt: the sealed records, the sealed blob index, the
//	                uploads in progress
//	blobs/<id>      committed blobs
//	uploads/<id>    uploads in progress (an upload keeps its ID when it commits)
//
// Committing an upload renames its file into blobs/ (fsynced) and then records
// it in the index in one bbolt transaction; at Open, files the index does not
// know are removed (or put back as uploads), so a crash at any point leaves
// the store consistent: every name the index holds has its whole blob, and an
// interrupted upload resumes from what reached the disk.
//
// The host (apps/host) opens a Store for each running app and closes it when
// the app stops or the box is locked; after Close every call fails with the
// reason given. Only the host and tests import this package; apps see it
// through apps.Records and apps.Blobs.
package store

import (
	"bytes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"
	"unicode/utf8"

	bolt "go.etcd.io/bbolt"
	"golang.org/x/crypto/chacha20poly1305"
	"golang.org/x/crypto/hkdf"
	"golang.org/x/sys/unix"

	"github.com/redoubt/redoubt/apps"
)

// KeySize is the size of a store's key.
const KeySize = 32

// Bucket names in store.db.
var (
	bMeta      = []byte("meta")
	bRecNames  = []byte("record-names")
	bRecValues = []byte("record-values")
	bBlobs     = []byte("blobs")
	bUploads   = []byte("uploads")
	checkKey   = []byte("check")
	checkValue = []byte("redoubt app store v1")
)

// MaxKey bounds record keys and blob names.
const MaxKey = 1024

// MaxRecord bounds a record's value.
const MaxRecord = 4 << 20

// Options are a store's settings.
type Options struct {
	// Quota is the most the blobs may take on disk; 0 for no limit but the
	// disk. SetQuota changes it later.
	Quota int64
	// Logger says what Open cleaned up.
	Logger *slog.Logger
	// Now is the clock (default time.Now).
	Now func() time.Time
}

// Store is one app's storage.
type Store struct {
	dir    string
	db     *bolt.DB
	log    *slog.Logger
	now    func() time.Time
	recMAC []byte

	mu      sync.RWMutex // guards everything below
	closed  error
	rec     cipher.AEAD
	blob    cipher.AEAD
	names   []string          // record keys, sorted
	hashes  map[string][]byte // record key → its hashed name
	index   map[string]entry  // blob name → entry
	sorted  []string          // blob names, sorted
	uploads map[string]uploadRecord
	writing map[string]bool // uploads open for writing
	usage   int64           // bytes on disk of blobs and uploads
	quota   int64
}

// entry is a committed blob in the index.
type entry struct {
	Name     string    `json:"name"`
	ID       string    `json:"id"`
	Size     int64     `json:"size"`
	Modified time.Time `json:"modified"`
	Disk     int64     `json:"disk"` // its file's size
}

// uploadRecord is an upload in progress in the index.
type uploadRecord struct {
	Created time.Time `json:"created"`
	// Flushed is how many whole chunks were on disk at the last Flush.
	Flushed uint64 `json:"flushed,omitempty"`
}

// Open opens (creating if needed) the store in dir with key. A key that does
// not open the store's check value is refused: the directory belongs to
// another key.
func Open(dir string, key []byte, opts Options) (*Store, error) {
	if len(key) != KeySize {
		return nil, fmt.Errorf("opening the app's store: the key is %d bytes, not %d", len(key), KeySize)
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	for _, d := range []string{dir, filepath.Join(dir, "blobs"), filepath.Join(dir, "uploads")} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return nil, fmt.Errorf("opening the app's store: %w", err)
		}
	}
	rec, err := chacha20poly1305.NewX(derive(key, "records seal"))
	if err != nil {
		return nil, err
	}
	blob, err := chacha20poly1305.NewX(derive(key, "blobs"))
	if err != nil {
		return nil, err
	}
	db, err := bolt.Open(filepath.Join(dir, "store.db"), 0o600, &bolt.Options{Timeout: 5 * time.Second})
	if err != nil {
		return nil, fmt.Errorf("opening the app's store %s: %w", dir, err)
	}
	s := &Store{dir: dir, db: db, log: opts.Logger, now: opts.Now, recMAC: derive(key, "records names"), rec: rec, blob: blob,
		hashes: map[string][]byte{}, index: map[string]entry{}, uploads: map[string]uploadRecord{}, writing: map[string]bool{},
		quota: opts.Quota}
	if err := s.load(); err != nil {
		db.Close()
		return nil, fmt.Errorf("opening the app's store %s: %w", dir, err)
	}
	if err := s.tidy(); err != nil {
		db.Close()
		return nil, fmt.Errorf("tidying the app's store %s: %w", dir, err)
	}
	return s, nil
}

func derive(key []byte, info string) []byte {
	out := make([]byte, 32)
	io.ReadFull(hkdf.New(sha256.New, key, nil, []byte("redoubt app store: "+info)), out)
	return out
}

// load checks the key and reads the indexes into memory.
func (s *Store) load() error {
	return s.db.Update(func(tx *bolt.Tx) error {
		for _, b := range [][]byte{bMeta, bRecNames, bRecValues, bBlobs, bUploads} {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return err
			}
		}
		meta := tx.Bucket(bMeta)
		if c := meta.Get(checkKey); c == nil {
			sealed, err := seal(s.rec, checkValue, bMeta)
			if err != nil {
				return err
			}
			if err := meta.Put(checkKey, sealed); err != nil {
				return err
			}
		} else if v, err := open(s.rec, c, bMeta); err != nil || !bytes.Equal(v, checkValue) {
			return errors.New("the key does not open this store")
		}
		if err := tx.Bucket(bRecNames).ForEach(func(k, v []byte) error {
			name, err := open(s.rec, v, append(slices.Clone(bRecNames), k...))
			if err != nil {
				return fmt.Errorf("a record's name does not open: %w", err)
			}
			s.hashes[string(name)] = slices.Clone(k)
			s.names = append(s.names, string(name))
			return nil
		}); err != nil {
			return err
		}
		slices.Sort(s.names)
		if err := tx.Bucket(bBlobs).ForEach(func(k, v []byte) error {
			raw, err := open(s.rec, v, append(slices.Clone(bBlobs), k...))
			if err != nil {
				return fmt.Errorf("a blob's index entry does not open: %w", err)
			}
			var e entry
			if err := json.Unmarshal(raw, &e); err != nil {
				return err
			}
			s.index[e.Name] = e
			s.sorted = append(s.sorted, e.Name)
			return nil
		}); err != nil {
			return err
		}
		slices.Sort(s.sorted)
		return tx.Bucket(bUploads).ForEach(func(k, v []byte) error {
			raw, err := open(s.rec, v, append(slices.Clone(bUploads), k...))
			if err != nil {
				return fmt.Errorf("an upload's record does not open: %w", err)
			}
			var u uploadRecord
			if err := json.Unmarshal(raw, &u); err != nil {
				return err
			}
			s.uploads[string(k)] = u
			return nil
		})
	})
}

// tidy makes the files agree with the index after a crash: a committed file
// the index does not know goes back to uploads if its upload is still
// recorded (the commit did not finish) or is removed; upload files without a
// record are removed, records without a file forgotten; index entries whose
// file is missing are dropped, loudly.
func (s *Store) tidy() error {
	blobsDir, upDir := filepath.Join(s.dir, "blobs"), filepath.Join(s.dir, "uploads")
	known := map[string]bool{}
	for _, e := range s.index {
		known[e.ID] = true
	}
	files, err := os.ReadDir(blobsDir)
	if err != nil {
		return err
	}
	for _, f := range files {
		id := f.Name()
		if known[id] {
			continue
		}
		if _, ok := s.uploads[id]; ok && validID(id) {
			s.log.Info("an upload's commit was interrupted: it is an upload again", "upload", id)
			if err := os.Rename(filepath.Join(blobsDir, id), filepath.Join(upDir, id)); err != nil {
				return err
			}
			continue
		}
		s.log.Info("removing a blob file no name refers to (a crash between a commit and removing what it replaced)", "file", id)
		if err := os.Remove(filepath.Join(blobsDir, id)); err != nil {
			return err
		}
	}
	ups, err := os.ReadDir(upDir)
	if err != nil {
		return err
	}
	present := map[string]int64{}
	for _, f := range ups {
		id := f.Name()
		if _, ok := s.uploads[id]; !ok || !validID(id) {
			s.log.Info("removing an upload file without a record", "file", id)
			if err := os.Remove(filepath.Join(upDir, id)); err != nil {
				return err
			}
			continue
		}
		if fi, err := f.Info(); err == nil {
			present[id] = fi.Size()
		}
	}
	var lostUploads []string
	for id := range s.uploads {
		if _, ok := present[id]; !ok {
			lostUploads = append(lostUploads, id)
		}
	}
	var lostBlobs []string
	for name, e := range s.index {
		fi, err := os.Stat(filepath.Join(blobsDir, e.ID))
		if err != nil {
			s.log.Warn("a blob's file is missing: its name is dropped", "blob", e.ID)
			lostBlobs = append(lostBlobs, name)
			continue
		}
		e.Disk = fi.Size()
		s.index[name] = e
		s.usage += fi.Size()
	}
	for _, n := range present {
		s.usage += n
	}
	if len(lostUploads) == 0 && len(lostBlobs) == 0 {
		return nil
	}
	return s.db.Update(func(tx *bolt.Tx) error {
		for _, id := range lostUploads {
			delete(s.uploads, id)
			if err := tx.Bucket(bUploads).Delete([]byte(id)); err != nil {
				return err
			}
		}
		for _, name := range lostBlobs {
			delete(s.index, name)
			s.sorted = removeSorted(s.sorted, name)
			if err := tx.Bucket(bBlobs).Delete(s.blobKey(name)); err != nil {
				return err
			}
		}
		return nil
	})
}

// Close forgets the keys and closes the store's file; every call after it
// fails with reason (apps.ErrLocked, apps.ErrStopped). Open blobs and
// uploads fail from their next read or write; an upload's file stays, to be
// resumed after the store opens again.
func (s *Store) Close(reason error) error {
	if reason == nil {
		reason = apps.ErrStopped
	}
	s.mu.Lock()
	if s.closed != nil {
		s.mu.Unlock()
		return nil
	}
	s.closed = reason
	s.rec, s.blob = nil, nil
	clear(s.recMAC)
	s.mu.Unlock()
	return s.db.Close()
}

// SetQuota changes the most the blobs may take on disk (0: no limit).
func (s *Store) SetQuota(n int64) {
	s.mu.Lock()
	s.quota = n
	s.mu.Unlock()
}

// Records is the store's records, as apps see them.
func (s *Store) Records() apps.Records { return records{s} }

// Blobs is the store's blobs, as apps see them.
func (s *Store) Blobs() apps.Blobs { return blobs{s} }

// errOf returns why the store cannot be used, or nil. Called with mu held.
func (s *Store) errOf() error { return s.closed }

func checkName(what, name string) error {
	if name == "" || len(name) > MaxKey || !utf8.ValidString(name) || strings.IndexByte(name, 0) >= 0 {
		return fmt.Errorf("%s %q: 1 to %d bytes of UTF-8 without NUL", what, truncate(name), MaxKey)
	}
	return nil
}

func truncate(s string) string {
	if len(s) > 64 {
		return s[:64] + "…"
	}
	return s
}

// seal encrypts v with a random nonce, bound to ad.
func seal(a cipher.AEAD, v, ad []byte) ([]byte, error) {
	out := make([]byte, a.NonceSize(), a.NonceSize()+len(v)+a.Overhead())
	if _, err := rand.Read(out); err != nil {
		return nil, err
	}
	return a.Seal(out, out, v, ad), nil
}

func open(a cipher.AEAD, sealed, ad []byte) ([]byte, error) {
	if len(sealed) < a.NonceSize()+a.Overhead() {
		return nil, errors.New("too short")
	}
	return a.Open(nil, sealed[:a.NonceSize()], sealed[a.NonceSize():], ad)
}

// hashName is a record's or blob's key in store.db: an HMAC of its name, so
// the file shows no names.
func hashName(macKey []byte, kind, name string) []byte {
	m := hmac.New(sha256.New, macKey)
	m.Write([]byte(kind))
	m.Write([]byte{0})
	m.Write([]byte(name))
	return m.Sum(nil)
}

func (s *Store) blobKey(name string) []byte { return hashName(s.recMAC, "blob", name) }

func insertSorted(list []string, v string) []string {
	i, found := slices.BinarySearch(list, v)
	if found {
		return list
	}
	return slices.Insert(list, i, v)
}

func removeSorted(list []string, v string) []string {
	i, found := slices.BinarySearch(list, v)
	if !found {
		return list
	}
	return slices.Delete(list, i, i+1)
}

// prefixed returns the entries of sorted list that start with prefix.
func prefixed(list []string, prefix string) []string {
	i, _ := slices.BinarySearch(list, prefix)
	j := i
	for j < len(list) && strings.HasPrefix(list[j], prefix) {
		j++
	}
	return slices.Clone(list[i:j])
}

func newID() string {
	b := make([]byte, 16)
	rand.Read(b)
	return hex.EncodeToString(b)
}

func validID(id string) bool {
	if len(id) != 32 {
		return false
	}
	_, err := hex.DecodeString(id)
	return err == nil
}

// diskErr turns a full disk into apps.ErrDiskFull.
func diskErr(what string, err error) error {
	if errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT) {
		return fmt.Errorf("%s: %w", what, apps.ErrDiskFull)
	}
	return fmt.Errorf("%s: %w", what, err)
}

// diskFree is what is left on the store's file system.
func (s *Store) diskFree() int64 {
	var st unix.Statfs_t
	if err := unix.Statfs(s.dir, &st); err != nil {
		return 0
	}
	return int64(st.Bavail) * int64(st.Bsize)
}

// syncDir makes a rename or removal in dir durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
