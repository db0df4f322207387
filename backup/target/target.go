// Package target is where backups are kept: the Store interface the backup
// repository writes its objects to (whole objects, written atomically, read
// whole or by range, listed by prefix), and a store in a local directory
// (tests, a USB disk). The S3 store (target/s3) and a teammate's box
// (target/peer) implement it too.
//
// A store learns nothing of what it keeps: every object the repository
// writes is encrypted, named by a hash or a random id.
//
// The backup room and its tests import it.
package target

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// Store keeps a repository's objects.
type Store interface {
	// Put writes an object whole: after an error or a crash, the object
	// is either absent or complete.
	Put(ctx context.Context, name string, data []byte) error
	// Get reads a whole object; ErrNotFound if there is none.
	Get(ctx context.Context, name string) ([]byte, error)
	// GetRange reads length bytes at offset (offset < 0: the last -offset
	// bytes).
	GetRange(ctx context.Context, name string, offset, length int64) ([]byte, error)
	// List returns the objects whose names start with prefix, sorted.
	List(ctx context.Context, prefix string) ([]Object, error)
	// Delete removes an object; removing what is not there is not an error.
	Delete(ctx context.Context, name string) error
	// String names the store for people ("s3 https://…/bucket/prefix").
	String() string
}

// Object is a listed object.
type Object struct {
	Name string
	Size int64
}

// ErrNotFound is what Get says of an object that is not there.
var ErrNotFound = errors.New("no such object")

// CheckName refuses names a repository never writes: they keep stores from
// being walked out of (“../”) by a damaged or hostile repository.
func CheckName(name string) error {
	if name == "" || len(name) > 256 || strings.HasPrefix(name, "/") || strings.Contains(name, "..") || strings.Contains(name, "//") {
		return fmt.Errorf("object name %.80q: want a relative name without ..", name)
	}
	for _, r := range name {
		if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '/' || r == '-' || r == '_' || r == '.') {
			return fmt.Errorf("object name %.80q: want lowercase letters, digits, / - _ .", name)
		}
	}
	return nil
}

// Dir is a store in a local directory.
type Dir struct{ Root string }

// String implements Store.
func (d Dir) String() string { return "dir " + d.Root }

func (d Dir) path(name string) (string, error) {
	if err := CheckName(name); err != nil {
		return "", err
	}
	return filepath.Join(d.Root, filepath.FromSlash(name)), nil
}

// Put writes to a temporary file, syncs it, and renames it into place.
func (d Dir) Put(_ context.Context, name string, data []byte) error {
	p, err := d.path(name)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
		return err
	}
	var rnd [8]byte
	rand.Read(rnd[:])
	tmp := p + ".tmp-" + hex.EncodeToString(rnd[:])
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		os.Remove(tmp)
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		os.Remove(tmp)
		return err
	}
	if err := f.Close(); err != nil {
		os.Remove(tmp)
		return err
	}
	if err := os.Rename(tmp, p); err != nil {
		os.Remove(tmp)
		return err
	}
	if dir, err := os.Open(filepath.Dir(p)); err == nil {
		dir.Sync()
		dir.Close()
	}
	return nil
}

// Get implements Store.
func (d Dir) Get(_ context.Context, name string) ([]byte, error) {
	p, err := d.path(name)
	if err != nil {
		return nil, err
	}
	b, err := os.ReadFile(p)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%s: %w", name, ErrNotFound)
	}
	return b, err
}

// GetRange implements Store.
func (d Dir) GetRange(_ context.Context, name string, off, n int64) ([]byte, error) {
	p, err := d.path(name)
	if err != nil {
		return nil, err
	}
	f, err := os.Open(p)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%s: %w", name, ErrNotFound)
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if off < 0 {
		fi, err := f.Stat()
		if err != nil {
			return nil, err
		}
		off = max(0, fi.Size()+off)
	}
	buf := make([]byte, n)
	m, err := f.ReadAt(buf, off)
	if err != nil && !errors.Is(err, io.EOF) {
		return nil, err
	}
	return buf[:m], nil
}

// List implements Store; temporary files of interrupted writes are left out.
func (d Dir) List(_ context.Context, prefix string) ([]Object, error) {
	var out []Object
	err := filepath.WalkDir(d.Root, func(p string, e fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		if e.IsDir() {
			return nil
		}
		rel, _ := filepath.Rel(d.Root, p)
		name := filepath.ToSlash(rel)
		if strings.Contains(name, ".tmp-") || !strings.HasPrefix(name, prefix) {
			return nil
		}
		fi, err := e.Info()
		if err != nil {
			return nil
		}
		out = append(out, Object{Name: name, Size: fi.Size()})
		return nil
	})
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, err
}

// Delete implements Store.
func (d Dir) Delete(_ context.Context, name string) error {
	p, err := d.path(name)
	if err != nil {
		return err
	}
	if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return nil
}
