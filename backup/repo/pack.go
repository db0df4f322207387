package repo

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strings"
	"sync"

	"github.com/redoubt/redoubt/backup/target"
)

// BlobType says what a blob holds.
type BlobType uint8

// Blob types.
const (
	DataBlob BlobType = 0 // a chunk of a file
	TreeBlob BlobType = 1 // a directory's listing
)

func (t BlobType) String() string {
	if t == TreeBlob {
		return "tree"
	}
	return "data"
}

// blobAD binds a sealed blob to its type and ID.
func blobAD(t BlobType, id ID) []byte {
	return append([]byte("blob "+t.String()+" "), id[:]...)
}

// blobRef is a blob's place in its pack.
type blobRef struct {
	Type   BlobType `json:"t"`
	ID     ID       `json:"id"`
	Offset uint32   `json:"o"`
	Length uint32   `json:"l"` // sealed
	Raw    uint32   `json:"r"` // plain
}

// Location is where a blob is.
type Location struct {
	Pack string
	blobRef
}

const (
	// PackSize is the size at which a pack is closed and uploaded.
	PackSize   = 16 << 20
	maxPack    = 128 << 20
	maxHeader  = 16 << 20
	packPrefix = "data/"
)

// packName is a pack's object name: its SHA-256, under a two-digit folder.
func packName(sum [32]byte) string {
	h := hex.EncodeToString(sum[:])
	return packPrefix + h[:2] + "/" + h
}

// packer fills one pack.
type packer struct {
	buf   bytes.Buffer
	blobs []blobRef
}

func (p *packer) add(t BlobType, id ID, raw int, sealed []byte) {
	p.blobs = append(p.blobs, blobRef{Type: t, ID: id, Offset: uint32(p.buf.Len()), Length: uint32(len(sealed)), Raw: uint32(raw)})
	p.buf.Write(sealed)
}

// finish appends the sealed header and its length and names the pack.
func (p *packer) finish(k *keys) (name string, data []byte, blobs []blobRef, err error) {
	hdr, _ := json.Marshal(p.blobs)
	sealed, err := k.seal(hdr, []byte("pack header"), true)
	if err != nil {
		return "", nil, nil, err
	}
	p.buf.Write(sealed)
	var n [4]byte
	binary.LittleEndian.PutUint32(n[:], uint32(len(sealed)))
	p.buf.Write(n[:])
	data = p.buf.Bytes()
	return packName(sha256.Sum256(data)), data, p.blobs, nil
}

// parseHeader reads a pack's header from its tail (the whole pack, or its
// last bytes with at least the header and length).
func (r *Repo) parseHeader(tail []byte) ([]blobRef, error) {
	if len(tail) < 4 {
		return nil, fmt.Errorf("pack header: %w", ErrDamaged)
	}
	n := int(binary.LittleEndian.Uint32(tail[len(tail)-4:]))
	if n > maxHeader || n+4 > len(tail) {
		return nil, fmt.Errorf("pack header of %d bytes: %w", n, ErrDamaged)
	}
	plain, err := r.keys.open(tail[len(tail)-4-n:len(tail)-4], []byte("pack header"), maxHeader*4)
	if err != nil {
		return nil, fmt.Errorf("pack header: %w", err)
	}
	var blobs []blobRef
	if err := json.Unmarshal(plain, &blobs); err != nil {
		return nil, fmt.Errorf("pack header: %w", ErrDamaged)
	}
	return blobs, nil
}

// readHeader fetches a pack's header from the store.
func (r *Repo) readHeader(ctx context.Context, name string, size int64) ([]blobRef, error) {
	tail, err := r.store.GetRange(ctx, name, -4, 4)
	if err != nil {
		return nil, err
	}
	if len(tail) != 4 {
		return nil, fmt.Errorf("%s: %w", name, ErrDamaged)
	}
	n := int64(binary.LittleEndian.Uint32(tail))
	if n > maxHeader || n+4 > size {
		return nil, fmt.Errorf("%s: a header of %d bytes: %w", name, n, ErrDamaged)
	}
	tail, err = r.store.GetRange(ctx, name, -(n + 4), n+4)
	if err != nil {
		return nil, err
	}
	blobs, err := r.parseHeader(tail)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return blobs, nil
}

// checkPack verifies a whole pack's bytes: its name is its hash, its header
// opens, and every blob opens and has the ID it claims.
func (r *Repo) checkPack(name string, data []byte) ([]blobRef, int64, error) {
	sum := sha256.Sum256(data)
	if packName(sum) != name {
		return nil, 0, fmt.Errorf("pack %s: its content does not match its name: %w", shortPack(name), ErrDamaged)
	}
	blobs, err := r.parseHeader(data)
	if err != nil {
		return nil, 0, fmt.Errorf("pack %s: %w", shortPack(name), err)
	}
	var plain int64
	for _, b := range blobs {
		end := int64(b.Offset) + int64(b.Length)
		if end > int64(len(data)) {
			return nil, 0, fmt.Errorf("pack %s: blob %s beyond its end: %w", shortPack(name), b.ID.Short(), ErrDamaged)
		}
		p, err := r.keys.open(data[b.Offset:end], blobAD(b.Type, b.ID), maxChunk*2)
		if err != nil {
			return nil, 0, fmt.Errorf("pack %s: blob %s: %w", shortPack(name), b.ID.Short(), err)
		}
		if r.keys.id(p) != b.ID {
			return nil, 0, fmt.Errorf("pack %s: blob %s holds other content: %w", shortPack(name), b.ID.Short(), ErrDamaged)
		}
		plain += int64(len(p))
	}
	return blobs, plain, nil
}

func shortPack(name string) string {
	i := strings.LastIndexByte(name, '/')
	if i >= 0 && len(name)-i > 9 {
		return name[i+1 : i+9]
	}
	return name
}

// packCache keeps the last few whole packs read, for restores (files'
// chunks are mostly in order in their packs); a pack several readers want at
// once is fetched once.
type packCache struct {
	mu      sync.Mutex
	store   target.Store
	max     int
	order   []string
	packs   map[string][]byte
	loading map[string]*packLoad
}

type packLoad struct {
	done chan struct{}
	data []byte
	err  error
}

func newPackCache(store target.Store, n int) *packCache {
	return &packCache{store: store, max: n, packs: map[string][]byte{}, loading: map[string]*packLoad{}}
}

func (c *packCache) get(ctx context.Context, name string) ([]byte, error) {
	c.mu.Lock()
	if b, ok := c.packs[name]; ok {
		c.mu.Unlock()
		return b, nil
	}
	if l, ok := c.loading[name]; ok {
		c.mu.Unlock()
		select {
		case <-l.done:
			return l.data, l.err
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	l := &packLoad{done: make(chan struct{})}
	c.loading[name] = l
	c.mu.Unlock()
	l.data, l.err = c.store.Get(ctx, name)
	c.mu.Lock()
	delete(c.loading, name)
	if l.err == nil {
		c.packs[name] = l.data
		c.order = append(c.order, name)
		for len(c.order) > c.max {
			delete(c.packs, c.order[0])
			c.order = c.order[1:]
		}
	}
	c.mu.Unlock()
	close(l.done)
	return l.data, l.err
}
