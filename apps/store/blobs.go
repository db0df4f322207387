package store

import (
	"crypto/cipher"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/redoubt/redoubt/apps"
)

// A blob file is a header and chunks:
//
//	header  "RDTBLOB1" (8) | id (16) | chunk size, big-endian (4) | zero (4)
//	chunk   nonce (24) | XChaCha20-Poly1305(plaintext) with its tag (16)
//
// Every chunk holds ChunkSize bytes of plaintext but the last, which holds 0
// to ChunkSize and is sealed as the last. Each chunk has a fresh random nonce
// and is bound, by its associated data, to the blob's id, its index and
// whether it is the last: chunks cannot be moved, swapped between blobs,
// dropped from the end or added. The blob's size is known from the file's.
const (
	ChunkSize  = 64 << 10
	headerSize = 32
	nonceSize  = chacha20poly1305NonceSizeX
	tagSize    = 16
	chunkDisk  = nonceSize + ChunkSize + tagSize
	magic      = "RDTBLOB1"
)

const chacha20poly1305NonceSizeX = 24

// header returns the header of the blob with this id.
func header(id string) ([]byte, error) {
	raw, err := hex.DecodeString(id)
	if err != nil || len(raw) != 16 {
		return nil, fmt.Errorf("blob id %q: not 32 hex digits", id)
	}
	h := make([]byte, headerSize)
	copy(h, magic)
	copy(h[8:], raw)
	binary.BigEndian.PutUint32(h[24:], ChunkSize)
	return h, nil
}

// chunkAD binds a chunk to its blob, place and finality.
func chunkAD(id []byte, index uint64, last bool) []byte {
	ad := make([]byte, 0, 16+8+1+len("redoubt blob"))
	ad = append(ad, "redoubt blob"...)
	ad = append(ad, id...)
	ad = binary.BigEndian.AppendUint64(ad, index)
	if last {
		return append(ad, 1)
	}
	return append(ad, 0)
}

// layout says how many chunks a blob file of disk bytes holds and how much
// plaintext its last one has; false if no whole blob has that size.
func layout(disk int64) (chunks int64, lastLen int, ok bool) {
	body := disk - headerSize
	if body < nonceSize+tagSize {
		return 0, 0, false
	}
	full := body / chunkDisk
	rest := body % chunkDisk
	switch {
	case rest == 0:
		return full, ChunkSize, true
	case rest >= nonceSize+tagSize:
		return full + 1, int(rest - nonceSize - tagSize), true
	}
	return 0, 0, false
}

// DiskSize is what a blob of n bytes takes on disk.
func DiskSize(n int64) int64 {
	full := n / ChunkSize
	return headerSize + full*chunkDisk + nonceSize + (n - full*ChunkSize) + tagSize
}

// blobs implements apps.Blobs.
type blobs struct{ s *Store }

func (b blobs) Create() (apps.Upload, error) {
	s := b.s
	id := newID()
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.errOf(); err != nil {
		return nil, err
	}
	if s.quota > 0 && s.usage+headerSize > s.quota {
		return nil, fmt.Errorf("starting an upload: %w (%s of %s)", apps.ErrQuota, apps.FormatSize(s.usage), apps.FormatSize(s.quota))
	}
	rec := uploadRecord{Created: s.now().UTC()}
	raw, _ := json.Marshal(rec)
	if err := s.db.Update(func(tx *bolt.Tx) error {
		sv, err := seal(s.rec, raw, adOf(bUploads, []byte(id)))
		if err != nil {
			return err
		}
		return tx.Bucket(bUploads).Put([]byte(id), sv)
	}); err != nil {
		return nil, diskErr("starting an upload", err)
	}
	path := filepath.Join(s.dir, "uploads", id)
	f, err := os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_RDWR, 0o600)
	if err == nil {
		var h []byte
		h, _ = header(id)
		if _, err = f.Write(h); err == nil {
			err = f.Sync()
		}
		if err != nil {
			f.Close()
			os.Remove(path)
		}
	}
	if err != nil {
		s.db.Update(func(tx *bolt.Tx) error { return tx.Bucket(bUploads).Delete([]byte(id)) })
		return nil, diskErr("starting an upload", err)
	}
	s.uploads[id] = rec
	s.writing[id] = true
	s.usage += headerSize
	raw16, _ := hex.DecodeString(id)
	return &upload{s: s, id: id, raw: raw16, f: f, disk: headerSize, buf: make([]byte, 0, ChunkSize)}, nil
}

func (b blobs) Resume(id string) (apps.Upload, error) {
	s := b.s
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.errOf(); err != nil {
		return nil, err
	}
	if _, ok := s.uploads[id]; !ok || !validID(id) {
		return nil, fmt.Errorf("upload %q: %w", truncate(id), apps.ErrNotFound)
	}
	if s.writing[id] {
		return nil, fmt.Errorf("upload %s is being written already", id)
	}
	f, err := os.OpenFile(filepath.Join(s.dir, "uploads", id), os.O_RDWR, 0)
	if err != nil {
		return nil, fmt.Errorf("resuming upload %s: %w", id, err)
	}
	u := &upload{s: s, id: id, f: f, buf: make([]byte, 0, ChunkSize)}
	u.raw, _ = hex.DecodeString(id)
	if err := u.recover(s.blob); err != nil {
		f.Close()
		return nil, fmt.Errorf("resuming upload %s: %w", id, err)
	}
	s.writing[id] = true
	return u, nil
}

func (b blobs) Uploads() ([]apps.UploadInfo, error) {
	s := b.s
	s.mu.RLock()
	defer s.mu.RUnlock()
	if err := s.errOf(); err != nil {
		return nil, err
	}
	out := make([]apps.UploadInfo, 0, len(s.uploads))
	for id, u := range s.uploads {
		info := apps.UploadInfo{ID: id, Created: u.Created}
		if fi, err := os.Stat(filepath.Join(s.dir, "uploads", id)); err == nil {
			if n, last, ok := layout(fi.Size()); ok {
				info.Size = (n-1)*ChunkSize + int64(last)
			} else {
				info.Size = max(0, (fi.Size()-headerSize)/chunkDisk*ChunkSize)
			}
		}
		out = append(out, info)
	}
	return out, nil
}

func (b blobs) Open(name string) (apps.Blob, error) {
	if err := checkName("blob name", name); err != nil {
		return nil, err
	}
	s := b.s
	s.mu.RLock()
	defer s.mu.RUnlock()
	if err := s.errOf(); err != nil {
		return nil, err
	}
	e, ok := s.index[name]
	if !ok {
		return nil, fmt.Errorf("blob %q: %w", truncate(name), apps.ErrNotFound)
	}
	f, err := os.Open(filepath.Join(s.dir, "blobs", e.ID))
	if err != nil {
		return nil, fmt.Errorf("opening blob %q: %w", truncate(name), err)
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, err
	}
	chunks, last, ok := layout(fi.Size())
	if !ok || (chunks-1)*ChunkSize+int64(last) != e.Size {
		f.Close()
		return nil, fmt.Errorf("blob %q is damaged: its file's size does not match the index", truncate(name))
	}
	h := make([]byte, headerSize)
	if _, err := io.ReadFull(f, h); err != nil || string(h[:8]) != magic || hex.EncodeToString(h[8:24]) != e.ID || binary.BigEndian.Uint32(h[24:]) != ChunkSize {
		f.Close()
		return nil, fmt.Errorf("blob %q is damaged: its header does not match the index", truncate(name))
	}
	raw, _ := hex.DecodeString(e.ID)
	return &reader{s: s, f: f, info: e.info(), raw: raw, chunks: chunks, cur: -1}, nil
}

func (e entry) info() apps.BlobInfo {
	return apps.BlobInfo{Name: e.Name, Size: e.Size, Modified: e.Modified, ETag: `"` + e.ID[:16] + `"`}
}

func (b blobs) Stat(name string) (apps.BlobInfo, error) {
	s := b.s
	s.mu.RLock()
	defer s.mu.RUnlock()
	if err := s.errOf(); err != nil {
		return apps.BlobInfo{}, err
	}
	e, ok := s.index[name]
	if !ok {
		return apps.BlobInfo{}, fmt.Errorf("blob %q: %w", truncate(name), apps.ErrNotFound)
	}
	return e.info(), nil
}

func (b blobs) List(prefix string) ([]apps.BlobInfo, error) {
	s := b.s
	s.mu.RLock()
	defer s.mu.RUnlock()
	if err := s.errOf(); err != nil {
		return nil, err
	}
	names := prefixed(s.sorted, prefix)
	out := make([]apps.BlobInfo, len(names))
	for i, n := range names {
		out[i] = s.index[n].info()
	}
	return out, nil
}

func (b blobs) Rename(old, new string) error {
	if err := checkName("blob name", new); err != nil {
		return err
	}
	s := b.s
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.errOf(); err != nil {
		return err
	}
	e, ok := s.index[old]
	if !ok {
		return fmt.Errorf("blob %q: %w", truncate(old), apps.ErrNotFound)
	}
	if old == new {
		return nil
	}
	e.Name, e.Modified = new, s.now().UTC()
	replaced, had := s.index[new]
	if err := s.putEntries(map[string]*entry{old: nil, new: &e}); err != nil {
		return diskErr("renaming blob "+truncate(old), err)
	}
	if had {
		s.removeFile(replaced)
	}
	return nil
}

func (b blobs) Delete(name string) error {
	s := b.s
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.errOf(); err != nil {
		return err
	}
	e, ok := s.index[name]
	if !ok {
		return fmt.Errorf("blob %q: %w", truncate(name), apps.ErrNotFound)
	}
	if err := s.putEntries(map[string]*entry{name: nil}); err != nil {
		return diskErr("deleting blob "+truncate(name), err)
	}
	s.removeFile(e)
	return nil
}

func (b blobs) Usage() apps.Usage {
	s := b.s
	s.mu.RLock()
	defer s.mu.RUnlock()
	return apps.Usage{Bytes: s.usage, Blobs: len(s.index), Quota: s.quota, DiskFree: s.diskFree()}
}

// putEntries changes the index in one transaction (nil deletes a name), and
// then the memory's copy. Called with mu held.
func (s *Store) putEntries(changes map[string]*entry) error {
	err := s.db.Update(func(tx *bolt.Tx) error {
		bk := tx.Bucket(bBlobs)
		for name, e := range changes {
			k := s.blobKey(name)
			if e == nil {
				if err := bk.Delete(k); err != nil {
					return err
				}
				continue
			}
			raw, _ := json.Marshal(e)
			sv, err := seal(s.rec, raw, adOf(bBlobs, k))
			if err != nil {
				return err
			}
			if err := bk.Put(k, sv); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	for name, e := range changes {
		if e == nil {
			delete(s.index, name)
			s.sorted = removeSorted(s.sorted, name)
			continue
		}
		s.index[name] = *e
		s.sorted = insertSorted(s.sorted, name)
	}
	return nil
}

// removeFile removes a blob's file once the index no longer names it.
// Called with mu held; a failure leaves a file Open tidies away.
func (s *Store) removeFile(e entry) {
	if err := os.Remove(filepath.Join(s.dir, "blobs", e.ID)); err != nil {
		s.log.Warn("removing a replaced blob's file", "file", e.ID, "err", err)
		return
	}
	s.usage -= e.Disk
}

// upload implements apps.Upload.
type upload struct {
	s    *Store
	id   string
	raw  []byte
	f    *os.File
	n    uint64 // whole chunks sealed on disk, not the last
	disk int64  // the file's length: header and the n chunks, and the tail's if tailOnDisk
	buf  []byte // the plaintext after the n chunks
	out  []byte // a chunk sealed
	// tailOnDisk: buf is also on disk, sealed as the last chunk (Flush);
	// writing more first takes it off again.
	tailOnDisk bool
	done       bool
	// failed is the first write's failure: the upload cannot be committed
	// (it lacks what failed), only closed to be resumed, or aborted.
	failed error
}

func (u *upload) ID() string  { return u.id }
func (u *upload) Size() int64 { return int64(u.n)*ChunkSize + int64(len(u.buf)) }

// aead returns the blob cipher, or why the store is closed.
func (u *upload) aead() (cipher.AEAD, error) {
	u.s.mu.RLock()
	defer u.s.mu.RUnlock()
	if err := u.s.errOf(); err != nil {
		return nil, err
	}
	return u.s.blob, nil
}

// grow accounts n more bytes on disk against the quota.
func (u *upload) grow(n int64) error {
	s := u.s
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.errOf(); err != nil {
		return err
	}
	if n > 0 && s.quota > 0 && s.usage+n > s.quota {
		return fmt.Errorf("writing upload %s: %w (%s of %s)", u.id, apps.ErrQuota, apps.FormatSize(s.usage), apps.FormatSize(s.quota))
	}
	s.usage += n
	return nil
}

func (u *upload) Write(p []byte) (int, error) {
	if u.done {
		return 0, errors.New("writing an upload that was committed, closed or aborted")
	}
	if err := u.untail(); err != nil {
		return 0, err
	}
	written := 0
	for len(p) > 0 {
		k := copy(u.buf[len(u.buf):cap(u.buf)], p)
		u.buf = u.buf[:len(u.buf)+k]
		p = p[k:]
		if len(u.buf) == ChunkSize {
			if err := u.writeChunk(false); err != nil {
				u.buf = u.buf[:len(u.buf)-k]
				u.failed = err
				return written, err
			}
			u.buf = u.buf[:0]
		}
		written += k
	}
	return written, nil
}

// writeChunk seals buf as chunk n (the last one if last) and appends it.
func (u *upload) writeChunk(last bool) error {
	a, err := u.aead()
	if err != nil {
		return err
	}
	if cap(u.out) < chunkDisk {
		u.out = make([]byte, chunkDisk)
	}
	out := u.out[:nonceSize]
	if _, err := rand.Read(out); err != nil {
		return err
	}
	out = a.Seal(out, out, u.buf, chunkAD(u.raw, u.n, last))
	if err := u.grow(int64(len(out))); err != nil {
		return err
	}
	if _, err := u.f.WriteAt(out, u.disk); err != nil {
		u.f.Truncate(u.disk)
		u.grow(-int64(len(out)))
		return diskErr("writing upload "+u.id, err)
	}
	u.disk += int64(len(out))
	if !last {
		u.n++
	}
	return nil
}

// untail takes the last chunk Flush wrote off the file again, so more can
// follow; its plaintext is still in buf.
func (u *upload) untail() error {
	if !u.tailOnDisk {
		return nil
	}
	tail := int64(nonceSize + len(u.buf) + tagSize)
	if err := u.f.Truncate(u.disk - tail); err != nil {
		return fmt.Errorf("writing upload %s: %w", u.id, err)
	}
	u.disk -= tail
	u.grow(-tail)
	u.tailOnDisk = false
	return nil
}

func (u *upload) Flush() error {
	if u.done {
		return nil
	}
	if u.tailOnDisk {
		return nil
	}
	if err := u.writeChunk(true); err != nil {
		return err
	}
	u.tailOnDisk = true
	if err := u.f.Sync(); err != nil {
		return diskErr("writing upload "+u.id, err)
	}
	return u.s.setFlushed(u.id, u.n)
}

// setFlushed records that an upload's first n chunks are on disk for good:
// a resume after a power cut checks only the chunks after them.
func (s *Store) setFlushed(id string, n uint64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.errOf(); err != nil {
		return err
	}
	rec, ok := s.uploads[id]
	if !ok || rec.Flushed == n {
		return nil
	}
	rec.Flushed = n
	raw, _ := json.Marshal(rec)
	if err := s.db.Update(func(tx *bolt.Tx) error {
		sv, err := seal(s.rec, raw, adOf(bUploads, []byte(id)))
		if err != nil {
			return err
		}
		return tx.Bucket(bUploads).Put([]byte(id), sv)
	}); err != nil {
		return diskErr("writing upload "+id, err)
	}
	s.uploads[id] = rec
	return nil
}

// recover reads where a resumed upload's file ends: whole chunks, and a last
// chunk written by Flush or Close (taken into buf, to be written again), or a
// chunk torn by a crash (dropped).
func (u *upload) recover(a cipher.AEAD) error {
	fi, err := u.f.Stat()
	if err != nil {
		return err
	}
	size := fi.Size()
	if size < headerSize {
		// Killed while the upload was being created: it is empty.
		h, _ := header(u.id)
		if _, err := u.f.WriteAt(h, 0); err != nil {
			return err
		}
		u.s.usage += headerSize - size // called with mu held
		u.disk = headerSize
		return u.f.Sync()
	}
	h := make([]byte, headerSize)
	if _, err := io.ReadFull(u.f, h); err != nil || string(h[:8]) != magic || hex.EncodeToString(h[8:24]) != u.id {
		return errors.New("the upload's file is damaged: bad header")
	}
	full := (size - headerSize) / chunkDisk
	rest := (size - headerSize) % chunkDisk
	// The part after the whole chunks: a short last chunk, or torn.
	if rest >= nonceSize+tagSize {
		c := make([]byte, rest)
		if _, err := u.f.ReadAt(c, headerSize+full*chunkDisk); err != nil {
			return err
		}
		if pt, err := a.Open(nil, c[:nonceSize], c[nonceSize:], chunkAD(u.raw, uint64(full), true)); err == nil {
			u.buf = append(u.buf, pt...)
		}
	}
	// The whole chunks written since the last flush may be damaged after a
	// power cut (the disk kept some pages and not others): they are checked,
	// and the upload goes on from the first that does not open. After a
	// crash of the box's process alone they all open.
	u.n = uint64(full)
	c := make([]byte, chunkDisk)
	for i := u.s.uploads[u.id].Flushed; i < uint64(full); i++ {
		if _, err := u.f.ReadAt(c, headerSize+int64(i)*chunkDisk); err != nil {
			return err
		}
		if _, err := a.Open(c[nonceSize:nonceSize], c[:nonceSize], c[nonceSize:], chunkAD(u.raw, i, false)); err != nil {
			u.n, u.buf = i, u.buf[:0]
			break
		}
	}
	u.disk = headerSize + int64(u.n)*chunkDisk
	if err := u.f.Truncate(u.disk); err != nil {
		return err
	}
	u.s.usage -= size - u.disk // called with mu held
	return nil
}

func (u *upload) Commit(name string) (apps.BlobInfo, error) {
	if err := checkName("blob name", name); err != nil {
		return apps.BlobInfo{}, err
	}
	if u.done {
		return apps.BlobInfo{}, errors.New("committing an upload that was committed, closed or aborted")
	}
	if u.failed != nil {
		return apps.BlobInfo{}, fmt.Errorf("committing upload %s: a write failed (%w): close it to resume later, or abort it", u.id, u.failed)
	}
	if err := u.untail(); err != nil {
		return apps.BlobInfo{}, err
	}
	size := u.Size()
	if err := u.writeChunk(true); err != nil {
		return apps.BlobInfo{}, err
	}
	if err := u.f.Sync(); err != nil {
		return apps.BlobInfo{}, diskErr("committing upload "+u.id, err)
	}
	u.f.Close()
	u.done = true
	s := u.s
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.writing, u.id)
	if err := s.errOf(); err != nil {
		return apps.BlobInfo{}, err
	}
	from, to := filepath.Join(s.dir, "uploads", u.id), filepath.Join(s.dir, "blobs", u.id)
	if err := os.Rename(from, to); err != nil {
		return apps.BlobInfo{}, fmt.Errorf("committing upload %s: %w", u.id, err)
	}
	if err := syncDir(filepath.Join(s.dir, "blobs")); err != nil {
		return apps.BlobInfo{}, diskErr("committing upload "+u.id, err)
	}
	e := entry{Name: name, ID: u.id, Size: size, Modified: s.now().UTC(), Disk: u.disk}
	replaced, had := s.index[name]
	err := s.db.Update(func(tx *bolt.Tx) error {
		k := s.blobKey(name)
		raw, _ := json.Marshal(e)
		sv, err := seal(s.rec, raw, adOf(bBlobs, k))
		if err != nil {
			return err
		}
		if err := tx.Bucket(bBlobs).Put(k, sv); err != nil {
			return err
		}
		return tx.Bucket(bUploads).Delete([]byte(u.id))
	})
	if err != nil {
		// Not committed: it is an upload again.
		os.Rename(to, from)
		return apps.BlobInfo{}, diskErr("committing upload "+u.id, err)
	}
	delete(s.uploads, u.id)
	s.index[name] = e
	s.sorted = insertSorted(s.sorted, name)
	if had {
		s.removeFile(replaced)
	}
	return e.info(), nil
}

func (u *upload) Close() error {
	if u.done {
		return nil
	}
	err := u.Flush()
	u.done = true
	u.f.Close()
	u.s.mu.Lock()
	delete(u.s.writing, u.id)
	u.s.mu.Unlock()
	return err
}

func (u *upload) Abort() error {
	if !u.done {
		u.f.Close()
		u.done = true
	}
	s := u.s
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.writing, u.id)
	if err := s.errOf(); err != nil {
		return err
	}
	if _, ok := s.uploads[u.id]; !ok {
		return nil
	}
	if err := s.db.Update(func(tx *bolt.Tx) error { return tx.Bucket(bUploads).Delete([]byte(u.id)) }); err != nil {
		return diskErr("aborting upload "+u.id, err)
	}
	delete(s.uploads, u.id)
	path := filepath.Join(s.dir, "uploads", u.id)
	if fi, err := os.Stat(path); err == nil {
		s.usage -= fi.Size()
	}
	os.Remove(path)
	return nil
}

// AbortUpload throws away an upload by ID (abandoned ones).
func (s *Store) AbortUpload(id string) error {
	s.mu.RLock()
	writing := s.writing[id]
	s.mu.RUnlock()
	if writing {
		return fmt.Errorf("upload %s is being written", id)
	}
	u := &upload{s: s, id: id, done: true}
	return u.Abort()
}

// reader implements apps.Blob.
type reader struct {
	mu     sync.Mutex // ReadAt may be called in parallel
	s      *Store
	f      *os.File
	info   apps.BlobInfo
	raw    []byte
	chunks int64
	pos    int64
	cur    int64 // the chunk in plain, or -1
	plain  []byte
	cipher []byte
}

func (r *reader) Info() apps.BlobInfo { return r.info }

// chunk decrypts chunk i into r.plain.
func (r *reader) chunk(i int64) error {
	if r.cur == i {
		return nil
	}
	r.s.mu.RLock()
	err := r.s.errOf()
	a := r.s.blob
	r.s.mu.RUnlock()
	if err != nil {
		return err
	}
	last := i == r.chunks-1
	n := chunkDisk
	if last {
		n = int(DiskSize(r.info.Size) - headerSize - i*chunkDisk)
	}
	if cap(r.cipher) < n {
		r.cipher = make([]byte, chunkDisk)
	}
	c := r.cipher[:n]
	if _, err := r.f.ReadAt(c, headerSize+i*chunkDisk); err != nil {
		return fmt.Errorf("reading blob %q: %w", truncate(r.info.Name), err)
	}
	pt, err := a.Open(r.plain[:0], c[:nonceSize], c[nonceSize:], chunkAD(r.raw, uint64(i), last))
	if err != nil {
		r.cur = -1
		return fmt.Errorf("blob %q is damaged or was tampered with (chunk %d does not open)", truncate(r.info.Name), i)
	}
	r.plain, r.cur = pt, i
	return nil
}

func (r *reader) ReadAt(p []byte, off int64) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if off < 0 {
		return 0, errors.New("negative offset")
	}
	n := 0
	for len(p) > 0 {
		if off >= r.info.Size {
			return n, io.EOF
		}
		i := off / ChunkSize
		if err := r.chunk(i); err != nil {
			return n, err
		}
		k := copy(p, r.plain[off-i*ChunkSize:])
		p, off, n = p[k:], off+int64(k), n+k
	}
	return n, nil
}

func (r *reader) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	n, err := r.ReadAt(p, r.pos)
	r.pos += int64(n)
	if err == io.EOF && n > 0 {
		err = nil
	}
	return n, err
}

func (r *reader) Seek(offset int64, whence int) (int64, error) {
	switch whence {
	case io.SeekStart:
	case io.SeekCurrent:
		offset += r.pos
	case io.SeekEnd:
		offset += r.info.Size
	default:
		return 0, errors.New("seek: bad whence")
	}
	if offset < 0 {
		return 0, errors.New("seek: negative position")
	}
	r.pos = offset
	return offset, nil
}

func (r *reader) Close() error { return r.f.Close() }

// Compile-time checks.
var (
	_ apps.Blobs  = blobs{}
	_ apps.Upload = (*upload)(nil)
	_ apps.Blob   = (*reader)(nil)
	_             = time.Now
)
