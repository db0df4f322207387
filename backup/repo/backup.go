package repo

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"sync"
	"syscall"
	"time"
)

// Node is one entry of a tree.
type Node struct {
	Name  string      `json:"name"`
	Type  string      `json:"type"` // "file", "dir", "symlink"
	Mode  fs.FileMode `json:"mode"`
	MTime time.Time   `json:"mtime"`
	Size  int64       `json:"size,omitempty"`
	// Inode and Dev detect a file replaced by another of the same size and
	// time (not restored).
	Inode   uint64 `json:"inode,omitempty"`
	Content []ID   `json:"content,omitempty"`
	Subtree *ID    `json:"subtree,omitempty"`
	Target  string `json:"target,omitempty"`
}

// Tree is a directory's listing, sorted by name.
type Tree struct {
	Nodes []Node `json:"nodes"`
}

// Item is one thing a backup takes: a directory (or file) on disk, or bytes
// made at backup time (Data), under Name at the snapshot's root.
type Item struct {
	Name string
	// Path is a directory or a file.
	Path string
	// Exclude leaves out entries of Path (rel is slash-separated, relative
	// to Path).
	Exclude func(rel string) bool
	// Data, instead of Path, gives the item's bytes (a file).
	Data func() ([]byte, error)
}

// Options shape a backup.
type Options struct {
	Host string
	Tags []string
	// Parent is the snapshot to compare with: files unchanged since (same
	// size, modification time and inode) are not read again. nil: the
	// latest snapshot, if any.
	Parent *Snapshot
	// NoParent reads every file.
	NoParent bool
	// Verify reads every new pack back from the store and checks it.
	Verify bool
	// Workers compress and encrypt (default: the number of CPUs).
	Workers int
	// Progress is told what was done so far, now and then.
	Progress func(Stats)
	// Now is the time the snapshot carries (the box's synced clock).
	Now func() time.Time
}

// uploaders write (and read back) packs at once.
const uploaders = 3

// job is a chunk to seal.
type job struct {
	t    BlobType
	id   ID
	data []byte
}

type sealedBlob struct {
	t      BlobType
	id     ID
	raw    int
	sealed []byte
}

// run is one backup in progress.
type run struct {
	r      *Repo
	ctx    context.Context
	opts   Options
	ix     *Index
	parent *Tree // the parent's root tree

	mu      sync.Mutex // guards pending and stats
	pending map[ID]bool
	stats   Stats

	jobs   chan job
	sealed chan sealedBlob
	packs  chan packed
	errMu  sync.Mutex
	err    error
	cancel context.CancelFunc
	wrote  []indexPack
	buf    []byte
	last   time.Time
}

type packed struct {
	name  string
	data  []byte
	blobs []blobRef
}

func (rn *run) fail(err error) {
	rn.errMu.Lock()
	if rn.err == nil {
		rn.err = err
		rn.cancel()
	}
	rn.errMu.Unlock()
}

func (rn *run) failed() error {
	rn.errMu.Lock()
	defer rn.errMu.Unlock()
	return rn.err
}

// Backup takes a snapshot of items. Packs are written as they fill; the
// index and then the snapshot are written last, so an interrupted backup
// leaves the repository as it was (plus packs the next backup reuses).
func (r *Repo) Backup(ctx context.Context, items []Item, opts Options) (*Snapshot, error) {
	start := time.Now()
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Workers <= 0 {
		opts.Workers = runtime.GOMAXPROCS(0)
	}
	ix, err := r.LoadIndex(ctx)
	if err != nil {
		return nil, err
	}
	if _, err := r.salvage(ctx, ix); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	rn := &run{r: r, ctx: ctx, opts: opts, ix: ix, pending: map[ID]bool{}, cancel: cancel,
		jobs: make(chan job, opts.Workers*2), sealed: make(chan sealedBlob, opts.Workers*2), packs: make(chan packed, 1)}
	parent := opts.Parent
	if parent == nil && !opts.NoParent {
		snaps, err := r.Snapshots(ctx)
		if err != nil {
			return nil, err
		}
		for i := len(snaps) - 1; i >= 0 && parent == nil; i-- {
			if snaps[i].Host == opts.Host {
				parent = snaps[i]
			}
		}
	}
	if parent != nil && !opts.NoParent {
		if t, err := r.loadTree(ctx, ix, parent.Tree, nil); err == nil {
			rn.parent = t
		}
	}

	var workers, packerWG, uploading sync.WaitGroup
	for i := 0; i < opts.Workers; i++ {
		workers.Add(1)
		go func() { defer workers.Done(); rn.sealer() }()
	}
	packerWG.Add(1)
	go func() { defer packerWG.Done(); rn.packer() }()
	for i := 0; i < uploaders; i++ {
		uploading.Add(1)
		go func() { defer uploading.Done(); rn.uploader() }()
	}

	root, walkErr := rn.root(items)
	close(rn.jobs)
	workers.Wait()
	close(rn.sealed)
	packerWG.Wait()
	uploading.Wait()
	if walkErr != nil {
		rn.fail(walkErr)
	}
	if err := rn.failed(); err != nil {
		return nil, err
	}
	rn.stats.Verified = opts.Verify // every new pack was read back as it was written
	if _, err := r.writeIndex(ctx, rn.wrote); err != nil {
		return nil, err
	}
	rn.stats.Packs = len(rn.wrote)
	rn.stats.Duration = time.Since(start)
	snap := &Snapshot{Time: opts.Now().UTC(), Host: opts.Host, Tree: root, Tags: opts.Tags, Stats: rn.stats}
	if parent != nil {
		snap.Parent = parent.Name
	}
	b, _ := json.Marshal(snap)
	snap.Name = randomName("snapshots/")
	if err := r.putSealed(ctx, snap.Name, b); err != nil {
		return nil, err
	}
	return snap, nil
}

// root backs up every item and returns the root tree's ID.
func (rn *run) root(items []Item) (ID, error) {
	var t Tree
	for _, it := range items {
		var prev *Node
		if rn.parent != nil {
			prev = find(rn.parent, it.Name)
		}
		var n Node
		var err error
		switch {
		case it.Data != nil:
			var data []byte
			if data, err = it.Data(); err != nil {
				return ID{}, fmt.Errorf("backing up %s: %w", it.Name, err)
			}
			n = Node{Name: it.Name, Type: "file", Mode: 0o600, MTime: rn.opts.Now().UTC(), Size: int64(len(data))}
			n.Content, err = rn.chunks(&memReader{b: data})
			clear(data)
		default:
			n, err = rn.path(it.Path, it.Name, "", it.Exclude, prev)
		}
		if err != nil {
			return ID{}, err
		}
		t.Nodes = append(t.Nodes, n)
	}
	return rn.tree(t)
}

type memReader struct {
	b []byte
	i int
}

func (m *memReader) Read(p []byte) (int, error) {
	if m.i >= len(m.b) {
		return 0, io.EOF
	}
	n := copy(p, m.b[m.i:])
	m.i += n
	return n, nil
}

// path backs up a file or directory on disk.
func (rn *run) path(p, name, rel string, exclude func(string) bool, prev *Node) (Node, error) {
	if err := rn.ctx.Err(); err != nil {
		return Node{}, err
	}
	fi, err := os.Lstat(p)
	if err != nil {
		return Node{}, fmt.Errorf("backing up %s: %w", p, err)
	}
	n := Node{Name: name, Mode: fi.Mode(), MTime: fi.ModTime().UTC()}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		n.Inode = st.Ino
	}
	switch {
	case fi.Mode().IsRegular():
		n.Type, n.Size = "file", fi.Size()
		rn.mu.Lock()
		rn.stats.Files++
		rn.stats.Bytes += n.Size
		rn.mu.Unlock()
		if prev != nil && prev.Type == "file" && prev.Size == n.Size && prev.MTime.Equal(n.MTime) && prev.Inode == n.Inode && rn.allKnown(prev.Content) {
			n.Content = prev.Content
			rn.mu.Lock()
			rn.stats.Unchanged++
			rn.mu.Unlock()
			return n, nil
		}
		f, err := os.Open(p)
		if err != nil {
			return Node{}, fmt.Errorf("backing up %s: %w", p, err)
		}
		defer f.Close()
		n.Content, err = rn.chunks(f)
		if err != nil {
			return Node{}, fmt.Errorf("backing up %s: %w", p, err)
		}
	case fi.IsDir():
		n.Type = "dir"
		rn.mu.Lock()
		rn.stats.Dirs++
		rn.mu.Unlock()
		entries, err := os.ReadDir(p)
		if err != nil {
			return Node{}, fmt.Errorf("backing up %s: %w", p, err)
		}
		var prevTree *Tree
		if prev != nil && prev.Type == "dir" && prev.Subtree != nil {
			prevTree, _ = rn.r.loadTree(rn.ctx, rn.ix, *prev.Subtree, nil)
		}
		var t Tree
		for _, e := range entries {
			childRel := e.Name()
			if rel != "" {
				childRel = rel + "/" + e.Name()
			}
			if exclude != nil && exclude(childRel) {
				continue
			}
			var pc *Node
			if prevTree != nil {
				pc = find(prevTree, e.Name())
			}
			c, err := rn.path(filepath.Join(p, e.Name()), e.Name(), childRel, exclude, pc)
			if err != nil {
				if errors.Is(err, fs.ErrNotExist) {
					continue // removed while the backup ran
				}
				return Node{}, err
			}
			t.Nodes = append(t.Nodes, c)
		}
		id, err := rn.tree(t)
		if err != nil {
			return Node{}, err
		}
		n.Subtree = &id
	case fi.Mode()&fs.ModeSymlink != 0:
		n.Type = "symlink"
		n.Target, err = os.Readlink(p)
		if err != nil {
			return Node{}, fmt.Errorf("backing up %s: %w", p, err)
		}
	default:
		return Node{}, fmt.Errorf("backing up %s: %w", p, fs.ErrNotExist) // sockets, devices: skipped
	}
	return n, nil
}

func find(t *Tree, name string) *Node {
	i := sort.Search(len(t.Nodes), func(i int) bool { return t.Nodes[i].Name >= name })
	if i < len(t.Nodes) && t.Nodes[i].Name == name {
		return &t.Nodes[i]
	}
	return nil
}

func (rn *run) allKnown(ids []ID) bool {
	for _, id := range ids {
		if !rn.ix.Has(id) {
			return false
		}
	}
	return true
}

// chunks cuts r into chunks and queues the new ones.
func (rn *run) chunks(r io.Reader) ([]ID, error) {
	c := newChunker(r, &rn.r.keys.gear, rn.buf)
	rn.buf = c.buf
	var ids []ID
	for {
		chunk, err := c.Next()
		if errors.Is(err, io.EOF) {
			return ids, nil
		}
		if err != nil {
			return nil, err
		}
		id := rn.r.keys.id(chunk)
		ids = append(ids, id)
		if err := rn.queue(DataBlob, id, chunk); err != nil {
			return nil, err
		}
	}
}

// queue sends a blob the repository does not have to the sealers.
func (rn *run) queue(t BlobType, id ID, data []byte) error {
	rn.mu.Lock()
	known := rn.ix.Has(id) || rn.pending[id]
	if !known {
		rn.pending[id] = true
		rn.stats.NewBlobs++
		rn.stats.NewBytes += int64(len(data))
	}
	rn.mu.Unlock()
	if known {
		return nil
	}
	select {
	case rn.jobs <- job{t: t, id: id, data: append([]byte(nil), data...)}:
		return nil
	case <-rn.ctx.Done():
		if err := rn.failed(); err != nil {
			return err
		}
		return rn.ctx.Err()
	}
}

// tree stores a directory's listing.
func (rn *run) tree(t Tree) (ID, error) {
	sort.Slice(t.Nodes, func(i, j int) bool { return t.Nodes[i].Name < t.Nodes[j].Name })
	if t.Nodes == nil {
		t.Nodes = []Node{}
	}
	b, _ := json.Marshal(t)
	id := rn.r.keys.id(b)
	return id, rn.queue(TreeBlob, id, b)
}

func (rn *run) sealer() {
	for j := range rn.jobs {
		if rn.failed() != nil {
			continue
		}
		s, err := rn.r.keys.seal(j.data, blobAD(j.t, j.id), true)
		if err != nil {
			rn.fail(err)
			continue
		}
		select {
		case rn.sealed <- sealedBlob{t: j.t, id: j.id, raw: len(j.data), sealed: s}:
		case <-rn.ctx.Done():
		}
	}
}

func (rn *run) packer() {
	defer close(rn.packs)
	p := &packer{}
	flush := func() {
		if len(p.blobs) == 0 {
			return
		}
		name, data, blobs, err := p.finish(rn.r.keys)
		if err != nil {
			rn.fail(err)
			return
		}
		select {
		case rn.packs <- packed{name: name, data: data, blobs: blobs}:
		case <-rn.ctx.Done():
		}
		p = &packer{}
	}
	for s := range rn.sealed {
		if rn.failed() != nil {
			continue
		}
		p.add(s.t, s.id, s.raw, s.sealed)
		if p.buf.Len() >= PackSize {
			flush()
		}
	}
	if rn.failed() == nil {
		flush()
	}
}

func (rn *run) uploader() {
	for p := range rn.packs {
		if rn.failed() != nil {
			continue
		}
		if err := rn.r.store.Put(rn.ctx, p.name, p.data); err != nil {
			rn.fail(fmt.Errorf("writing pack %s to %s: %w", shortPack(p.name), rn.r.store, err))
			continue
		}
		if rn.opts.Verify {
			// Read back what the store kept, and check it blob by blob.
			data, err := rn.r.store.Get(rn.ctx, p.name)
			if err == nil {
				_, _, err = rn.r.checkPack(p.name, data)
			}
			if err != nil {
				rn.fail(fmt.Errorf("verifying pack %s in %s: %w", shortPack(p.name), rn.r.store, err))
				continue
			}
		}
		rn.mu.Lock()
		rn.wrote = append(rn.wrote, indexPack{Name: p.name, Size: int64(len(p.data)), Blobs: p.blobs})
		rn.stats.Stored += int64(len(p.data))
		if rn.opts.Progress != nil && time.Since(rn.last) > time.Second {
			rn.last = time.Now()
			st := rn.stats
			rn.mu.Unlock()
			rn.opts.Progress(st)
			continue
		}
		rn.mu.Unlock()
	}
}

// loadTree reads a tree blob (through cache, if given).
func (r *Repo) loadTree(ctx context.Context, ix *Index, id ID, cache *packCache) (*Tree, error) {
	b, err := r.readBlob(ctx, ix, id, cache)
	if err != nil {
		return nil, err
	}
	var t Tree
	if err := json.Unmarshal(b, &t); err != nil {
		return nil, fmt.Errorf("tree %s: %w", id.Short(), ErrDamaged)
	}
	return &t, nil
}

// readBlob reads and checks one blob.
func (r *Repo) readBlob(ctx context.Context, ix *Index, id ID, cache *packCache) ([]byte, error) {
	loc, ok := ix.blobs[id]
	if !ok {
		return nil, fmt.Errorf("blob %s is in no pack: %w", id.Short(), ErrDamaged)
	}
	var sealed []byte
	if cache != nil {
		pack, err := cache.get(ctx, loc.Pack)
		if err != nil {
			return nil, fmt.Errorf("reading pack %s: %w", shortPack(loc.Pack), err)
		}
		end := int(loc.Offset) + int(loc.Length)
		if end > len(pack) {
			return nil, fmt.Errorf("pack %s is shorter than its index says: %w", shortPack(loc.Pack), ErrDamaged)
		}
		sealed = pack[loc.Offset:end]
	} else {
		var err error
		sealed, err = r.store.GetRange(ctx, loc.Pack, int64(loc.Offset), int64(loc.Length))
		if err != nil {
			return nil, fmt.Errorf("reading pack %s: %w", shortPack(loc.Pack), err)
		}
	}
	plain, err := r.keys.open(sealed, blobAD(loc.Type, id), maxChunk*2)
	if err != nil {
		return nil, fmt.Errorf("blob %s in pack %s: %w", id.Short(), shortPack(loc.Pack), err)
	}
	if r.keys.id(plain) != id {
		return nil, fmt.Errorf("blob %s in pack %s holds other content: %w", id.Short(), shortPack(loc.Pack), ErrDamaged)
	}
	return plain, nil
}
