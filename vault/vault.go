// Package vault is the box's sealed store: one crash-safe file holding every secret
// and every piece of state the box keeps for its owner, each value sealed with
// XChaCha20-Poly1305 under a data key that is itself wrapped by a key derived from
// the owner's passphrase with Argon2id.
//
// After a restart the vault is locked: nothing in it can be read until Unlock is
// given the passphrase. Wrong passphrases cost growing delays, counted in the file so
// a restart does not reset them. Changing the passphrase re-wraps the data key; the
// data is not re-encrypted. Key names are stored as keyed hashes and values carry
// their own names sealed inside, so the file shows neither names nor contents.
//
// The daemon opens the vault and hands it to the rooms that keep secrets (the VPN,
// the tailnet, the UI's sessions and CA, apps); rooms see only the Store interface.
package vault

import (
	"bytes"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"
	"golang.org/x/crypto/argon2"
	"golang.org/x/crypto/chacha20poly1305"
)

// Store is what rooms see of the vault: sealed values under a bucket and a key.
type Store interface {
	// Get returns the value stored under bucket/key, or ErrNotFound.
	Get(bucket, key string) ([]byte, error)
	// Put stores value under bucket/key, replacing what was there.
	Put(bucket, key string, value []byte) error
	// Delete removes bucket/key; deleting what is not there is not an error.
	Delete(bucket, key string) error
	// List returns the keys in bucket, sorted.
	List(bucket string) ([]string, error)
}

// Errors callers tell apart.
var (
	ErrLocked         = errors.New("the box is locked: unlock it with the owner's passphrase")
	ErrNotInitialized = errors.New("the box has no owner passphrase yet: finish setup first")
	ErrInitialized    = errors.New("the box already has an owner passphrase")
	ErrWrongPass      = errors.New("wrong passphrase")
	ErrNotFound       = errors.New("not found")
)

// TooSoonError says how long to wait before the next unlock attempt.
type TooSoonError struct{ Wait time.Duration }

func (e *TooSoonError) Error() string {
	return fmt.Sprintf("too many wrong passphrases: try again in %s", e.Wait.Round(time.Second))
}

// Params are Argon2id's cost parameters.
type Params struct {
	Time      uint32 `json:"time"`
	MemoryKiB uint32 `json:"memory_kib"`
	Threads   uint8  `json:"threads"`
}

// Validate refuses parameters too weak to protect a passphrase, or too large to run
// on a small board.
func (p Params) Validate() error {
	if p.Time < 1 || p.Time > 100 {
		return fmt.Errorf("vault: argon2 time %d: want 1..100", p.Time)
	}
	if p.MemoryKiB < 8<<10 || p.MemoryKiB > 1<<20 {
		return fmt.Errorf("vault: argon2 memory %d KiB: want 8 MiB..1 GiB", p.MemoryKiB)
	}
	if p.Threads < 1 {
		return fmt.Errorf("vault: argon2 threads %d: want at least 1", p.Threads)
	}
	return nil
}

// DefaultMemoryKiB and DefaultThreads fit a Raspberry Pi 4 (4 cores, 1–8 GiB).
const (
	DefaultMemoryKiB = 64 << 10
	DefaultThreads   = 4
	minTime          = 3
)

// Calibrate returns parameters with DefaultMemoryKiB and DefaultThreads and the
// time cost at which one derivation on this machine takes at least target (never
// less than 3 passes). Init calibrates with 750 ms, so unlocking takes about that
// long on whatever board the box runs on: on a Raspberry Pi 4 that is 3 passes.
func Calibrate(target time.Duration) Params {
	p := Params{Time: 1, MemoryKiB: DefaultMemoryKiB, Threads: DefaultThreads}
	start := time.Now()
	argon2.IDKey([]byte("calibration"), make([]byte, 16), p.Time, p.MemoryKiB, p.Threads, 32)
	one := time.Since(start)
	if one <= 0 {
		one = time.Millisecond
	}
	t := uint32((target + one - 1) / one)
	p.Time = min(max(t, minTime), 100)
	return p
}

const (
	fileName    = "vault.db"
	keyLen      = chacha20poly1305.KeySize
	formatV1    = 1
	wrapContext = "redoubt vault data key v1"
)

var (
	metaBucket = []byte("meta")
	dataBucket = []byte("data")
	metaHeader = []byte("header")
	metaTries  = []byte("failures")
)

// header is the vault's public part: what is needed to derive the wrapping key and
// unwrap the data key. It holds no secret.
type header struct {
	Version    int    `json:"version"`
	Params     Params `json:"params"`
	Salt       []byte `json:"salt"`
	WrappedKey []byte `json:"wrapped_key"` // nonce || XChaCha20-Poly1305(kek, data key)
	Created    int64  `json:"created"`
}

// failures counts wrong passphrases in a row and when the last one was.
type failures struct {
	Count int   `json:"count"`
	Last  int64 `json:"last"`
}

// Vault is the sealed store.
type Vault struct {
	path string
	db   *bolt.DB
	now  func() time.Time

	mu  sync.RWMutex
	key []byte // data key; nil while locked
	mac []byte // key-name hashing key, derived from the data key
}

// Open opens (creating if needed) the vault in dir. It starts locked.
func Open(dir string) (*Vault, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("making vault directory: %w", err)
	}
	path := filepath.Join(dir, fileName)
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: 2 * time.Second})
	if err != nil {
		return nil, fmt.Errorf("opening vault %s: %w", path, err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		if _, err := tx.CreateBucketIfNotExists(metaBucket); err != nil {
			return err
		}
		_, err := tx.CreateBucketIfNotExists(dataBucket)
		return err
	})
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("preparing vault %s: %w", path, err)
	}
	return &Vault{path: path, db: db, now: time.Now}, nil
}

// Close locks the vault and closes its file.
func (v *Vault) Close() error {
	v.Lock()
	return v.db.Close()
}

// Initialized reports whether the vault has an owner passphrase.
func (v *Vault) Initialized() bool {
	h, err := v.header()
	return err == nil && h != nil
}

// Locked reports whether the vault's contents are out of reach.
func (v *Vault) Locked() bool {
	v.mu.RLock()
	defer v.mu.RUnlock()
	return v.key == nil
}

// Init gives a new vault its owner passphrase and leaves it unlocked. p are the
// Argon2id parameters (Calibrate(750*time.Millisecond) on a real box).
func (v *Vault) Init(passphrase []byte, p Params) error {
	if err := p.Validate(); err != nil {
		return err
	}
	if len(passphrase) == 0 {
		return errors.New("vault: the passphrase is empty")
	}
	dataKey := make([]byte, keyLen)
	salt := make([]byte, 16)
	rand.Read(dataKey)
	rand.Read(salt)
	kek := argon2.IDKey(passphrase, salt, p.Time, p.MemoryKiB, p.Threads, keyLen)
	wrapped, err := seal(kek, dataKey, []byte(wrapContext))
	if err != nil {
		return err
	}
	h := header{Version: formatV1, Params: p, Salt: salt, WrappedKey: wrapped, Created: v.now().Unix()}
	err = v.db.Update(func(tx *bolt.Tx) error {
		m := tx.Bucket(metaBucket)
		if m.Get(metaHeader) != nil {
			return ErrInitialized
		}
		b, _ := json.Marshal(h)
		return m.Put(metaHeader, b)
	})
	if err != nil {
		return err
	}
	v.setKey(dataKey)
	return nil
}

// Unlock derives the wrapping key from passphrase and unwraps the data key. After
// three wrong passphrases each further attempt must wait: 2 s, doubling with each
// failure, up to 15 minutes.
func (v *Vault) Unlock(passphrase []byte) error {
	h, err := v.header()
	if err != nil {
		return err
	}
	if h == nil {
		return ErrNotInitialized
	}
	if wait := v.waitBeforeTry(); wait > 0 {
		return &TooSoonError{Wait: wait}
	}
	kek := argon2.IDKey(passphrase, h.Salt, h.Params.Time, h.Params.MemoryKiB, h.Params.Threads, keyLen)
	dataKey, err := open(kek, h.WrappedKey, []byte(wrapContext))
	if err != nil {
		v.recordFailure()
		return ErrWrongPass
	}
	v.clearFailures()
	v.setKey(dataKey)
	return nil
}

// Lock forgets the data key.
func (v *Vault) Lock() {
	v.mu.Lock()
	defer v.mu.Unlock()
	clear(v.key)
	clear(v.mac)
	v.key, v.mac = nil, nil
}

// ChangePassphrase re-wraps the data key under a new passphrase, after checking
// the old one. The data is not touched.
func (v *Vault) ChangePassphrase(old, next []byte, p Params) error {
	if err := p.Validate(); err != nil {
		return err
	}
	if len(next) == 0 {
		return errors.New("vault: the new passphrase is empty")
	}
	h, err := v.header()
	if err != nil {
		return err
	}
	if h == nil {
		return ErrNotInitialized
	}
	if wait := v.waitBeforeTry(); wait > 0 {
		return &TooSoonError{Wait: wait}
	}
	kek := argon2.IDKey(old, h.Salt, h.Params.Time, h.Params.MemoryKiB, h.Params.Threads, keyLen)
	dataKey, err := open(kek, h.WrappedKey, []byte(wrapContext))
	if err != nil {
		v.recordFailure()
		return ErrWrongPass
	}
	salt := make([]byte, 16)
	rand.Read(salt)
	newKek := argon2.IDKey(next, salt, p.Time, p.MemoryKiB, p.Threads, keyLen)
	wrapped, err := seal(newKek, dataKey, []byte(wrapContext))
	if err != nil {
		return err
	}
	h.Params, h.Salt, h.WrappedKey = p, salt, wrapped
	err = v.db.Update(func(tx *bolt.Tx) error {
		b, _ := json.Marshal(h)
		return tx.Bucket(metaBucket).Put(metaHeader, b)
	})
	if err != nil {
		return fmt.Errorf("saving the re-wrapped key: %w", err)
	}
	v.clearFailures()
	v.setKey(dataKey)
	return nil
}

// Wipe destroys the vault's contents and passphrase: a factory reset. The data is
// unreadable from then on, since its key is gone.
func (v *Vault) Wipe() error {
	v.Lock()
	return v.db.Update(func(tx *bolt.Tx) error {
		for _, b := range [][]byte{metaBucket, dataBucket} {
			if err := tx.DeleteBucket(b); err != nil && !errors.Is(err, bolt.ErrBucketNotFound) {
				return err
			}
			if _, err := tx.CreateBucket(b); err != nil {
				return err
			}
		}
		return nil
	})
}

func (v *Vault) setKey(dataKey []byte) {
	m := hmac.New(sha256.New, dataKey)
	m.Write([]byte("redoubt vault names v1"))
	v.mu.Lock()
	v.key = dataKey
	v.mac = m.Sum(nil)
	v.mu.Unlock()
}

func (v *Vault) header() (*header, error) {
	var h *header
	err := v.db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket(metaBucket).Get(metaHeader)
		if b == nil {
			return nil
		}
		h = new(header)
		if err := json.Unmarshal(b, h); err != nil {
			return fmt.Errorf("vault header is damaged: %w", err)
		}
		if h.Version != formatV1 {
			return fmt.Errorf("vault format %d is not one this version reads", h.Version)
		}
		return nil
	})
	return h, err
}

func (v *Vault) failures() failures {
	var f failures
	v.db.View(func(tx *bolt.Tx) error {
		if b := tx.Bucket(metaBucket).Get(metaTries); b != nil {
			json.Unmarshal(b, &f)
		}
		return nil
	})
	return f
}

// delayAfter is how long to wait after n wrong passphrases in a row.
func delayAfter(n int) time.Duration {
	if n < 3 {
		return 0
	}
	d := 2 * time.Second << min(n-3, 10)
	return min(d, 15*time.Minute)
}

func (v *Vault) waitBeforeTry() time.Duration {
	f := v.failures()
	wait := time.Unix(f.Last, 0).Add(delayAfter(f.Count)).Sub(v.now())
	return max(wait, 0)
}

func (v *Vault) recordFailure() {
	v.db.Update(func(tx *bolt.Tx) error {
		var f failures
		m := tx.Bucket(metaBucket)
		if b := m.Get(metaTries); b != nil {
			json.Unmarshal(b, &f)
		}
		f.Count++
		f.Last = v.now().Unix()
		b, _ := json.Marshal(f)
		return m.Put(metaTries, b)
	})
}

func (v *Vault) clearFailures() {
	v.db.Update(func(tx *bolt.Tx) error { return tx.Bucket(metaBucket).Delete(metaTries) })
}

// keys returns the data key and the name key, or ErrLocked.
func (v *Vault) keys() (key, mac []byte, err error) {
	v.mu.RLock()
	defer v.mu.RUnlock()
	if v.key == nil {
		return nil, nil, ErrLocked
	}
	return v.key, v.mac, nil
}

// hashName hides a bucket or key name.
func hashName(mac []byte, parts ...string) []byte {
	m := hmac.New(sha256.New, mac)
	for _, p := range parts {
		var n [4]byte
		binary.BigEndian.PutUint32(n[:], uint32(len(p)))
		m.Write(n[:])
		m.Write([]byte(p))
	}
	return m.Sum(nil)
}

// record is what a sealed value holds: its own name and the value, so that List
// can recover names and a value moved to another slot fails to open.
type record struct {
	Key   string `json:"k"`
	Value []byte `json:"v"`
}

func checkName(bucket, key string) error {
	if bucket == "" || len(bucket) > 256 || len(key) > 1024 {
		return fmt.Errorf("vault: bucket %q / key of %d bytes: bucket must be 1..256 bytes, key at most 1024", bucket, len(key))
	}
	return nil
}

// Get implements Store.
func (v *Vault) Get(bucket, key string) ([]byte, error) {
	if err := checkName(bucket, key); err != nil {
		return nil, err
	}
	k, mac, err := v.keys()
	if err != nil {
		return nil, err
	}
	var out []byte
	err = v.db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket(dataBucket).Bucket(hashName(mac, bucket))
		if b == nil {
			return ErrNotFound
		}
		slot := hashName(mac, bucket, key)
		sealed := b.Get(slot)
		if sealed == nil {
			return ErrNotFound
		}
		r, err := openRecord(k, slot, sealed)
		if err != nil {
			return err
		}
		if r.Key != key {
			return fmt.Errorf("vault: %s/%s holds another key's value: the file was tampered with", bucket, key)
		}
		out = r.Value
		return nil
	})
	return out, err
}

// Put implements Store.
func (v *Vault) Put(bucket, key string, value []byte) error {
	if err := checkName(bucket, key); err != nil {
		return err
	}
	k, mac, err := v.keys()
	if err != nil {
		return err
	}
	slot := hashName(mac, bucket, key)
	plain, _ := json.Marshal(record{Key: key, Value: value})
	sealed, err := seal(k, plain, slot)
	clear(plain)
	if err != nil {
		return err
	}
	return v.db.Update(func(tx *bolt.Tx) error {
		b, err := tx.Bucket(dataBucket).CreateBucketIfNotExists(hashName(mac, bucket))
		if err != nil {
			return err
		}
		return b.Put(slot, sealed)
	})
}

// Delete implements Store.
func (v *Vault) Delete(bucket, key string) error {
	if err := checkName(bucket, key); err != nil {
		return err
	}
	_, mac, err := v.keys()
	if err != nil {
		return err
	}
	return v.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(dataBucket).Bucket(hashName(mac, bucket))
		if b == nil {
			return nil
		}
		return b.Delete(hashName(mac, bucket, key))
	})
}

// List implements Store.
func (v *Vault) List(bucket string) ([]string, error) {
	if err := checkName(bucket, ""); err != nil {
		return nil, err
	}
	k, mac, err := v.keys()
	if err != nil {
		return nil, err
	}
	var keys []string
	err = v.db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket(dataBucket).Bucket(hashName(mac, bucket))
		if b == nil {
			return nil
		}
		return b.ForEach(func(slot, sealed []byte) error {
			r, err := openRecord(k, slot, sealed)
			if err != nil {
				return err
			}
			if !bytes.Equal(slot, hashName(mac, bucket, r.Key)) {
				return fmt.Errorf("vault: bucket %s holds a value from elsewhere: the file was tampered with", bucket)
			}
			keys = append(keys, r.Key)
			return nil
		})
	})
	sort.Strings(keys)
	return keys, err
}

func openRecord(key, slot, sealed []byte) (record, error) {
	plain, err := open(key, sealed, slot)
	if err != nil {
		return record{}, errors.New("vault: a sealed value does not open: the file is damaged or was tampered with")
	}
	var r record
	if err := json.Unmarshal(plain, &r); err != nil {
		return record{}, fmt.Errorf("vault: a sealed value is damaged: %w", err)
	}
	clear(plain)
	return r, nil
}

// seal encrypts plain under key, binding it to ad; the random nonce leads.
func seal(key, plain, ad []byte) ([]byte, error) {
	aead, err := chacha20poly1305.NewX(key)
	if err != nil {
		return nil, err
	}
	nonce := make([]byte, aead.NonceSize(), aead.NonceSize()+len(plain)+aead.Overhead())
	rand.Read(nonce)
	return aead.Seal(nonce, nonce, plain, ad), nil
}

func open(key, sealed, ad []byte) ([]byte, error) {
	aead, err := chacha20poly1305.NewX(key)
	if err != nil {
		return nil, err
	}
	if len(sealed) < aead.NonceSize()+aead.Overhead() {
		return nil, errors.New("sealed value too short")
	}
	return aead.Open(nil, sealed[:aead.NonceSize()], sealed[aead.NonceSize():], ad)
}
