package repo

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"time"
)

// indexFile is one index object: the packs one backup (or prune) wrote.
type indexFile struct {
	Packs []indexPack `json:"packs"`
}

type indexPack struct {
	Name  string    `json:"name"`
	Size  int64     `json:"size"`
	Blobs []blobRef `json:"blobs"`
}

// Index is every blob's location.
type Index struct {
	blobs map[ID]Location
	packs map[string]int64 // pack name → size
	files []string         // index objects read
}

func newIndex() *Index { return &Index{blobs: map[ID]Location{}, packs: map[string]int64{}} }

func (ix *Index) addPack(p indexPack) {
	ix.packs[p.Name] = p.Size
	for _, b := range p.Blobs {
		if _, ok := ix.blobs[b.ID]; !ok {
			ix.blobs[b.ID] = Location{Pack: p.Name, blobRef: b}
		}
	}
}

// Has says whether the repository holds a blob.
func (ix *Index) Has(id ID) bool { _, ok := ix.blobs[id]; return ok }

// Blobs and Packs count what the index knows.
func (ix *Index) Blobs() int { return len(ix.blobs) }
func (ix *Index) Packs() int { return len(ix.packs) }

// LoadIndex reads every index object.
func (r *Repo) LoadIndex(ctx context.Context) (*Index, error) {
	objs, err := r.store.List(ctx, "index/")
	if err != nil {
		return nil, fmt.Errorf("listing the index in %s: %w", r.store, err)
	}
	ix := newIndex()
	for _, o := range objs {
		plain, err := r.getSealed(ctx, o.Name)
		if err != nil {
			return nil, err
		}
		var f indexFile
		if err := json.Unmarshal(plain, &f); err != nil {
			return nil, fmt.Errorf("%s: %w", o.Name, ErrDamaged)
		}
		for _, p := range f.Packs {
			ix.addPack(p)
		}
		ix.files = append(ix.files, o.Name)
	}
	return ix, nil
}

// writeIndex writes one index object for packs.
func (r *Repo) writeIndex(ctx context.Context, packs []indexPack) (string, error) {
	if len(packs) == 0 {
		return "", nil
	}
	sort.Slice(packs, func(i, j int) bool { return packs[i].Name < packs[j].Name })
	b, _ := json.Marshal(indexFile{Packs: packs})
	name := randomName("index/")
	return name, r.putSealed(ctx, name, b)
}

// salvage indexes packs that no index names: those an interrupted backup
// uploaded. Their blobs count again, so the next backup does not send them
// twice. Packs whose header does not read are reported and left alone.
func (r *Repo) salvage(ctx context.Context, ix *Index) (int, error) {
	objs, err := r.store.List(ctx, packPrefix)
	if err != nil {
		return 0, fmt.Errorf("listing packs in %s: %w", r.store, err)
	}
	var found []indexPack
	for _, o := range objs {
		if _, ok := ix.packs[o.Name]; ok || !strings.HasPrefix(o.Name, packPrefix) {
			continue
		}
		blobs, err := r.readHeader(ctx, o.Name, o.Size)
		if err != nil {
			continue // a damaged pack no index names: prune removes it
		}
		p := indexPack{Name: o.Name, Size: o.Size, Blobs: blobs}
		found = append(found, p)
		ix.addPack(p)
	}
	if len(found) == 0 {
		return 0, nil
	}
	name, err := r.writeIndex(ctx, found)
	if err != nil {
		return 0, err
	}
	ix.files = append(ix.files, name)
	return len(found), nil
}

// Snapshot is one backup run's record.
type Snapshot struct {
	// Name is the snapshot's object name ("snapshots/…"), not stored in it.
	Name   string    `json:"-"`
	Time   time.Time `json:"time"`
	Host   string    `json:"host"`
	Tree   ID        `json:"tree"`
	Parent string    `json:"parent,omitempty"`
	Tags   []string  `json:"tags,omitempty"`
	Stats  Stats     `json:"stats"`
}

// ID is the snapshot's short name.
func (s *Snapshot) ID() string {
	return strings.TrimPrefix(s.Name, "snapshots/")[:min(8, len(s.Name)-len("snapshots/"))]
}

// Stats say what a backup did.
type Stats struct {
	Files, Dirs int
	// Bytes is the size of everything backed up.
	Bytes int64
	// Unchanged files were not read again (same size, time and inode).
	Unchanged int
	// NewBlobs, NewBytes: chunks the repository did not have (plain size);
	// Stored is what they took once compressed and encrypted.
	NewBlobs int
	NewBytes int64
	Stored   int64
	Packs    int
	// Duration of the run.
	Duration time.Duration
	// Verified: the new packs were read back and checked.
	Verified bool
}

// Snapshots lists the repository's snapshots, oldest first.
func (r *Repo) Snapshots(ctx context.Context) ([]*Snapshot, error) {
	objs, err := r.store.List(ctx, "snapshots/")
	if err != nil {
		return nil, fmt.Errorf("listing snapshots in %s: %w", r.store, err)
	}
	var out []*Snapshot
	for _, o := range objs {
		s, err := r.LoadSnapshot(ctx, o.Name)
		if err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Time.Before(out[j].Time) })
	return out, nil
}

// LoadSnapshot reads one snapshot by its object name or its short ID.
func (r *Repo) LoadSnapshot(ctx context.Context, name string) (*Snapshot, error) {
	if !strings.HasPrefix(name, "snapshots/") {
		objs, err := r.store.List(ctx, "snapshots/"+name)
		if err != nil {
			return nil, err
		}
		if len(objs) != 1 {
			return nil, fmt.Errorf("snapshot %q: %d match", name, len(objs))
		}
		name = objs[0].Name
	}
	plain, err := r.getSealed(ctx, name)
	if err != nil {
		return nil, err
	}
	var s Snapshot
	if err := json.Unmarshal(plain, &s); err != nil {
		return nil, fmt.Errorf("%s: %w", name, ErrDamaged)
	}
	s.Name = name
	return &s, nil
}
