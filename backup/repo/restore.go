package repo

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
	"sync"
	"time"
)

// Reader reads a snapshot's trees and files.
type Reader struct {
	r     *Repo
	ix    *Index
	cache *packCache
	snap  *Snapshot
}

// NewReader opens snap for reading (the index is loaded once).
func (r *Repo) NewReader(ctx context.Context, snap *Snapshot) (*Reader, error) {
	ix, err := r.LoadIndex(ctx)
	if err != nil {
		return nil, err
	}
	return &Reader{r: r, ix: ix, cache: newPackCache(r.store, 8), snap: snap}, nil
}

// ErrNoPath: the snapshot has nothing at that path.
var ErrNoPath = errors.New("not in the snapshot")

// Lookup finds the node at a slash-separated path ("" or "/" is the root,
// a directory node with the root tree).
func (rd *Reader) Lookup(ctx context.Context, p string) (Node, error) {
	id := rd.snap.Tree
	node := Node{Name: "/", Type: "dir", Subtree: &id, Mode: fs.ModeDir | 0o755}
	for _, part := range strings.Split(strings.Trim(path.Clean("/"+p), "/"), "/") {
		if part == "" {
			continue
		}
		if node.Type != "dir" || node.Subtree == nil {
			return Node{}, fmt.Errorf("%s: %w", p, ErrNoPath)
		}
		t, err := rd.r.loadTree(ctx, rd.ix, *node.Subtree, rd.cache)
		if err != nil {
			return Node{}, err
		}
		n := find(t, part)
		if n == nil {
			return Node{}, fmt.Errorf("%s: %w", p, ErrNoPath)
		}
		node = *n
	}
	return node, nil
}

// List returns a directory node's entries.
func (rd *Reader) List(ctx context.Context, dir Node) ([]Node, error) {
	if dir.Type != "dir" || dir.Subtree == nil {
		return nil, fmt.Errorf("%s is not a directory", dir.Name)
	}
	t, err := rd.r.loadTree(ctx, rd.ix, *dir.Subtree, rd.cache)
	if err != nil {
		return nil, err
	}
	return t.Nodes, nil
}

// WriteFile writes a file node's content to w, checking every chunk.
func (rd *Reader) WriteFile(ctx context.Context, n Node, w io.Writer) (int64, error) {
	if n.Type != "file" {
		return 0, fmt.Errorf("%s is not a file", n.Name)
	}
	var total int64
	for _, id := range n.Content {
		b, err := rd.r.readBlob(ctx, rd.ix, id, rd.cache)
		if err != nil {
			return total, err
		}
		m, err := w.Write(b)
		total += int64(m)
		if err != nil {
			return total, err
		}
	}
	if total != n.Size {
		return total, fmt.Errorf("%s: %d bytes restored, the snapshot says %d: %w", n.Name, total, n.Size, ErrDamaged)
	}
	return total, nil
}

// ReadAll reads a small file node whole.
func (rd *Reader) ReadAll(ctx context.Context, n Node) ([]byte, error) {
	var b strings.Builder
	if _, err := rd.WriteFile(ctx, n, &b); err != nil {
		return nil, err
	}
	return []byte(b.String()), nil
}

// RestoreStats say what a restore did.
type RestoreStats struct {
	Files, Dirs int
	Bytes       int64
	Duration    time.Duration
}

// Restore writes the subtree at src (a path in the snapshot; "" for all)
// into dest, which must not exist or be empty. Directories and links are
// made first; files are then written by a few workers at once (packs are
// fetched once and shared through a cache), each to a temporary name renamed
// when whole; modes and times are set last.
func (rd *Reader) Restore(ctx context.Context, src, dest string) (RestoreStats, error) {
	start := time.Now()
	var st RestoreStats
	n, err := rd.Lookup(ctx, src)
	if err != nil {
		return st, err
	}
	if entries, err := os.ReadDir(dest); err == nil && len(entries) > 0 && n.Type == "dir" {
		return st, fmt.Errorf("restoring into %s: it is not empty", dest)
	}
	var files []fileJob
	var dirs []fileJob
	if err := rd.layout(ctx, n, dest, &files, &dirs, &st); err != nil {
		return st, err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	jobs := make(chan fileJob)
	var (
		mu    sync.Mutex
		first error
		wg    sync.WaitGroup
	)
	for i := 0; i < restoreWorkers; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range jobs {
				m, err := rd.restoreFile(ctx, j.node, j.dest)
				mu.Lock()
				if err != nil && first == nil {
					first = err
					cancel()
				}
				st.Files++
				st.Bytes += m
				mu.Unlock()
			}
		}()
	}
feed:
	for _, j := range files {
		select {
		case jobs <- j:
		case <-ctx.Done():
			break feed
		}
	}
	close(jobs)
	wg.Wait()
	if first != nil {
		return st, first
	}
	if err := ctx.Err(); err != nil {
		return st, err
	}
	for i := len(dirs) - 1; i >= 0; i-- {
		os.Chmod(dirs[i].dest, dirs[i].node.Mode.Perm())
		os.Chtimes(dirs[i].dest, dirs[i].node.MTime, dirs[i].node.MTime)
	}
	st.Duration = time.Since(start)
	return st, nil
}

// restoreWorkers write files at once during a restore.
const restoreWorkers = 4

type fileJob struct {
	node Node
	dest string
}

// layout makes the directories and links of n under dest and lists its files.
func (rd *Reader) layout(ctx context.Context, n Node, dest string, files, dirs *[]fileJob, st *RestoreStats) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	switch n.Type {
	case "dir":
		if err := os.Mkdir(dest, 0o700); err != nil && !errors.Is(err, fs.ErrExist) {
			return err
		}
		if fi, err := os.Lstat(dest); err != nil || !fi.IsDir() {
			return fmt.Errorf("restoring %s: not a directory", dest)
		}
		children, err := rd.List(ctx, n)
		if err != nil {
			return err
		}
		for i, c := range children {
			if c.Name == "" || c.Name == "." || c.Name == ".." || strings.ContainsAny(c.Name, "/\x00") || (i > 0 && c.Name <= children[i-1].Name) {
				return fmt.Errorf("a tree holds the name %q twice or out of order: %w", c.Name, ErrDamaged)
			}
			if err := rd.layout(ctx, c, filepath.Join(dest, c.Name), files, dirs, st); err != nil {
				return err
			}
		}
		st.Dirs++
		*dirs = append(*dirs, fileJob{n, dest})
	case "file":
		*files = append(*files, fileJob{n, dest})
	case "symlink":
		os.Remove(dest)
		if err := os.Symlink(n.Target, dest); err != nil {
			return err
		}
	}
	return nil
}

// restoreFile writes one file whole, under a temporary name first.
func (rd *Reader) restoreFile(ctx context.Context, n Node, dest string) (int64, error) {
	tmp := dest + ".restoring"
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
	if err != nil {
		return 0, err
	}
	m, err := rd.WriteFile(ctx, n, f)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(tmp)
		return m, fmt.Errorf("restoring %s: %w", dest, err)
	}
	os.Chmod(tmp, n.Mode.Perm())
	os.Chtimes(tmp, n.MTime, n.MTime)
	return m, os.Rename(tmp, dest)
}
