package repo

import (
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"

	"github.com/klauspost/compress/zstd"
	"golang.org/x/crypto/chacha20poly1305"
)

// MasterKeySize is the repository key's length.
const MasterKeySize = 32

// ID names a blob: HMAC-SHA256 of its plain content under a key of the
// repository, so a store cannot confirm it holds a file it knows.
type ID [32]byte

func (id ID) String() string { return hex.EncodeToString(id[:]) }

// Short is the first 8 hex digits.
func (id ID) Short() string { return hex.EncodeToString(id[:4]) }

// ParseID reads a hex ID.
func ParseID(s string) (ID, error) {
	var id ID
	b, err := hex.DecodeString(s)
	if err != nil || len(b) != len(id) {
		return id, fmt.Errorf("id %.70q: want 64 hex digits", s)
	}
	copy(id[:], b)
	return id, nil
}

// MarshalText writes the ID in hex (JSON).
func (id ID) MarshalText() ([]byte, error) { return []byte(id.String()), nil }

// UnmarshalText reads a hex ID.
func (id *ID) UnmarshalText(b []byte) error {
	v, err := ParseID(string(b))
	*id = v
	return err
}

// keys are the repository's working keys, derived from its master key.
type keys struct {
	data []byte // XChaCha20-Poly1305 for blobs and metadata
	ids  []byte // HMAC-SHA256 for blob IDs
	gear [256]uint64
	enc  *zstd.Encoder // EncodeAll and DecodeAll are safe for concurrent use
	dec  *zstd.Decoder
}

func derive(master []byte, label string, n int) []byte {
	k, err := hkdf.Key(sha256.New, master, nil, "redoubt backup "+label, n)
	if err != nil {
		panic(err) // only for n > 255*32
	}
	return k
}

func newKeys(master []byte) (*keys, error) {
	if len(master) != MasterKeySize {
		return nil, fmt.Errorf("repository key of %d bytes: want %d", len(master), MasterKeySize)
	}
	k := &keys{data: derive(master, "data", 32), ids: derive(master, "ids", 32)}
	seed := derive(master, "chunker", 256*8)
	for i := range k.gear {
		for j := 0; j < 8; j++ {
			k.gear[i] = k.gear[i]<<8 | uint64(seed[i*8+j])
		}
	}
	var err error
	// Fast settings: a Raspberry Pi 4's two spare cores are the budget.
	k.enc, err = zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedFastest), zstd.WithEncoderConcurrency(1), zstd.WithLowerEncoderMem(true))
	if err != nil {
		return nil, err
	}
	k.dec, err = zstd.NewReader(nil, zstd.WithDecoderConcurrency(0), zstd.WithDecoderMaxMemory(64<<20))
	if err != nil {
		return nil, err
	}
	return k, nil
}

func (k *keys) close() { k.dec.Close() }

// id computes a blob's ID.
func (k *keys) id(data []byte) ID {
	m := hmac.New(sha256.New, k.ids)
	m.Write(data)
	return ID(m.Sum(nil))
}

// Compression flags, inside the encryption.
const (
	plainFlag = 0
	zstdFlag  = 1
)

// seal compresses (when that helps) and encrypts plain, bound to ad.
func (k *keys) seal(plain, ad []byte, compress bool) ([]byte, error) {
	body := append([]byte{plainFlag}, plain...)
	if compress && len(plain) > 64 {
		z := k.enc.EncodeAll(plain, make([]byte, 1, len(plain)/2+64))
		z[0] = zstdFlag
		if len(z) < len(body) {
			body = z
		}
	}
	aead, err := chacha20poly1305.NewX(k.data)
	if err != nil {
		return nil, err
	}
	out := make([]byte, aead.NonceSize(), aead.NonceSize()+len(body)+aead.Overhead())
	rand.Read(out)
	return aead.Seal(out, out[:aead.NonceSize()], body, ad), nil
}

// ErrDamaged says an object or blob did not decrypt or check.
var ErrDamaged = errors.New("damaged or altered")

// open decrypts and decompresses what seal made.
func (k *keys) open(sealed, ad []byte, maxPlain int) ([]byte, error) {
	aead, err := chacha20poly1305.NewX(k.data)
	if err != nil {
		return nil, err
	}
	if len(sealed) < aead.NonceSize()+aead.Overhead()+1 {
		return nil, ErrDamaged
	}
	body, err := aead.Open(nil, sealed[:aead.NonceSize()], sealed[aead.NonceSize():], ad)
	if err != nil || len(body) == 0 {
		return nil, ErrDamaged
	}
	switch body[0] {
	case plainFlag:
		return body[1:], nil
	case zstdFlag:
		out, err := k.dec.DecodeAll(body[1:], nil)
		if err != nil || len(out) > maxPlain {
			return nil, ErrDamaged
		}
		return out, nil
	}
	return nil, ErrDamaged
}

// wrapKey encrypts the master key under a key-encrypting key.
func wrapKey(kek, master []byte, label string) ([]byte, error) {
	aead, err := chacha20poly1305.NewX(derive(kek, "wrap "+label, 32))
	if err != nil {
		return nil, err
	}
	out := make([]byte, aead.NonceSize(), aead.NonceSize()+len(master)+aead.Overhead())
	rand.Read(out)
	return aead.Seal(out, out[:aead.NonceSize()], master, []byte("redoubt backup key "+label)), nil
}

func unwrapKey(kek, wrapped []byte, label string) ([]byte, error) {
	aead, err := chacha20poly1305.NewX(derive(kek, "wrap "+label, 32))
	if err != nil {
		return nil, err
	}
	if len(wrapped) < aead.NonceSize()+aead.Overhead() {
		return nil, ErrDamaged
	}
	return aead.Open(nil, wrapped[:aead.NonceSize()], wrapped[aead.NonceSize():], []byte("redoubt backup key "+label))
}
