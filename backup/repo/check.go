package repo

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sort"
	"time"
)

// CheckOptions say how deep a check goes.
type CheckOptions struct {
	// ReadPacks is the share of packs (0 to 1) downloaded and checked blob
	// by blob; the rest are checked by size.
	ReadPacks float64
	// SampleFiles restores this many files chosen at random (from the
	// latest snapshot) into memory and checks their size: the restore drill.
	SampleFiles int
}

// CheckResult is what a check found.
type CheckResult struct {
	Snapshots, Packs, PacksRead, Blobs int
	FilesRestored                      int
	BytesRestored                      int64
	Problems                           []string
	Duration                           time.Duration
}

// OK says whether nothing was wrong.
func (c CheckResult) OK() bool { return len(c.Problems) == 0 }

// Check verifies the repository: every pack the index names exists with its
// size, every snapshot's trees read and name only blobs the index has, a
// share of the packs checked byte by byte, and a sample of files restored.
func (r *Repo) Check(ctx context.Context, opts CheckOptions) (CheckResult, error) {
	start := time.Now()
	var res CheckResult
	problem := func(f string, a ...any) {
		if len(res.Problems) < 50 {
			res.Problems = append(res.Problems, fmt.Sprintf(f, a...))
		}
	}
	ix, err := r.LoadIndex(ctx)
	if err != nil {
		return res, err
	}
	res.Blobs = ix.Blobs()
	objs, err := r.store.List(ctx, packPrefix)
	if err != nil {
		return res, err
	}
	sizes := map[string]int64{}
	for _, o := range objs {
		sizes[o.Name] = o.Size
	}
	var names []string
	for name, size := range ix.packs {
		names = append(names, name)
		got, ok := sizes[name]
		switch {
		case !ok:
			problem("pack %s is missing", shortPack(name))
		case got != size:
			problem("pack %s has %d bytes, the index says %d", shortPack(name), got, size)
		}
	}
	sort.Strings(names)
	res.Packs = len(names)
	// A share of the packs, read whole.
	for _, name := range names {
		if opts.ReadPacks <= 0 || rand.Float64() >= opts.ReadPacks {
			continue
		}
		if _, ok := sizes[name]; !ok {
			continue
		}
		data, err := r.store.Get(ctx, name)
		if err != nil {
			problem("pack %s does not read: %v", shortPack(name), err)
			continue
		}
		if _, _, err := r.checkPack(name, data); err != nil {
			problem("%v", err)
		}
		res.PacksRead++
	}
	snaps, err := r.Snapshots(ctx)
	if err != nil {
		return res, err
	}
	res.Snapshots = len(snaps)
	seen := map[ID]bool{}
	var files []Node
	for i, s := range snaps {
		latest := i == len(snaps)-1
		var walk func(id ID, depth int)
		walk = func(id ID, depth int) {
			if seen[id] && !latest || depth > 256 {
				return
			}
			seen[id] = true
			t, err := r.loadTree(ctx, ix, id, nil)
			if err != nil {
				problem("snapshot %s: %v", s.ID(), err)
				return
			}
			for _, n := range t.Nodes {
				for _, c := range n.Content {
					if !ix.Has(c) {
						problem("snapshot %s: %s needs blob %s, which no pack holds", s.ID(), n.Name, c.Short())
					}
				}
				if n.Type == "file" && latest {
					files = append(files, n)
				}
				if n.Subtree != nil {
					walk(*n.Subtree, depth+1)
				}
			}
		}
		walk(s.Tree, 0)
	}
	// The drill: files restored in memory.
	if opts.SampleFiles > 0 && len(files) > 0 {
		rd := &Reader{r: r, ix: ix, cache: newPackCache(r.store, 2)}
		rand.Shuffle(len(files), func(i, j int) { files[i], files[j] = files[j], files[i] })
		for _, n := range files[:min(opts.SampleFiles, len(files))] {
			m, err := rd.WriteFile(ctx, n, discard{})
			if err != nil {
				problem("restoring %s: %v", n.Name, err)
				continue
			}
			res.FilesRestored++
			res.BytesRestored += m
		}
	}
	res.Duration = time.Since(start)
	return res, nil
}

type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }
