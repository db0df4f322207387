package repo

import (
	"context"
	"fmt"
	"time"
)

// Keep says which snapshots to keep: the Last newest, the latest of each of
// the last Daily days, Weekly weeks and Monthly months (by the snapshots'
// UTC times), and always the newest.
type Keep struct {
	Last    int `json:"last"`
	Daily   int `json:"daily"`
	Weekly  int `json:"weekly"`
	Monthly int `json:"monthly"`
}

// Forget deletes the snapshots Keep does not keep, and returns how many.
func (r *Repo) Forget(ctx context.Context, keep Keep) (int, error) {
	snaps, err := r.Snapshots(ctx)
	if err != nil {
		return 0, err
	}
	kept := map[string]bool{}
	buckets := []struct {
		n   int
		key func(time.Time) string
	}{
		{keep.Daily, func(t time.Time) string { return t.Format(time.DateOnly) }},
		{keep.Weekly, func(t time.Time) string { y, w := t.ISOWeek(); return fmt.Sprint(y, w) }},
		{keep.Monthly, func(t time.Time) string { return t.Format("2006-01") }},
	}
	for _, b := range buckets {
		seen := map[string]bool{}
		for i := len(snaps) - 1; i >= 0 && len(seen) < b.n; i-- {
			k := b.key(snaps[i].Time.UTC())
			if !seen[k] {
				seen[k] = true
				kept[snaps[i].Name] = true
			}
		}
	}
	for i := len(snaps) - 1; i >= 0 && i >= len(snaps)-max(1, keep.Last); i-- {
		kept[snaps[i].Name] = true
	}
	n := 0
	for _, s := range snaps {
		if !kept[s.Name] {
			if err := r.store.Delete(ctx, s.Name); err != nil {
				return n, fmt.Errorf("forgetting snapshot %s: %w", s.ID(), err)
			}
			n++
		}
	}
	return n, nil
}

// PruneStats say what Prune freed.
type PruneStats struct {
	PacksDeleted, PacksRewritten int
	BytesFreed                   int64
}

// Prune removes what no snapshot needs: packs holding nothing used are
// deleted, packs holding less than half are rewritten with what is used. A
// new index replaces the old ones before anything is deleted, so an
// interruption leaves only unreferenced packs behind.
func (r *Repo) Prune(ctx context.Context) (PruneStats, error) {
	var st PruneStats
	ix, err := r.LoadIndex(ctx)
	if err != nil {
		return st, err
	}
	if _, err := r.salvage(ctx, ix); err != nil {
		return st, err
	}
	snaps, err := r.Snapshots(ctx)
	if err != nil {
		return st, err
	}
	used := map[ID]bool{}
	var walk func(id ID) error
	walk = func(id ID) error {
		if used[id] {
			return nil
		}
		used[id] = true
		t, err := r.loadTree(ctx, ix, id, nil)
		if err != nil {
			return err
		}
		for _, n := range t.Nodes {
			for _, c := range n.Content {
				used[c] = true
			}
			if n.Subtree != nil {
				if err := walk(*n.Subtree); err != nil {
					return err
				}
			}
		}
		return nil
	}
	for _, s := range snaps {
		if err := walk(s.Tree); err != nil {
			return st, fmt.Errorf("pruning: snapshot %s does not read, nothing was removed: %w", s.ID(), err)
		}
	}
	// Per pack: used and unused bytes.
	type usage struct {
		used, total int64
		blobs, all  []blobRef // used ones, all
	}
	packs := map[string]*usage{}
	for id, loc := range ix.blobs {
		u := packs[loc.Pack]
		if u == nil {
			u = &usage{}
			packs[loc.Pack] = u
		}
		u.total += int64(loc.Length)
		u.all = append(u.all, loc.blobRef)
		if used[id] {
			u.used += int64(loc.Length)
			u.blobs = append(u.blobs, loc.blobRef)
		}
	}
	var keep []indexPack
	var drop []string
	p := &packer{}
	var rewritten []indexPack
	flush := func() error {
		if len(p.blobs) == 0 {
			return nil
		}
		name, data, blobs, err := p.finish(r.keys)
		if err != nil {
			return err
		}
		if err := r.store.Put(ctx, name, data); err != nil {
			return fmt.Errorf("pruning: writing pack %s: %w", shortPack(name), err)
		}
		rewritten = append(rewritten, indexPack{Name: name, Size: int64(len(data)), Blobs: blobs})
		p = &packer{}
		return nil
	}
	for name, size := range ix.packs {
		u := packs[name]
		switch {
		case u == nil || u.used == 0:
			drop = append(drop, name)
			st.BytesFreed += size
		case u.used*2 >= u.total:
			keep = append(keep, indexPack{Name: name, Size: size, Blobs: u.all})
		default:
			data, err := r.store.Get(ctx, name)
			if err != nil {
				return st, fmt.Errorf("pruning: reading pack %s: %w", shortPack(name), err)
			}
			for _, b := range u.blobs {
				end := int(b.Offset) + int(b.Length)
				if end > len(data) {
					return st, fmt.Errorf("pruning: pack %s: %w", shortPack(name), ErrDamaged)
				}
				p.add(b.Type, b.ID, int(b.Raw), data[b.Offset:end])
				if p.buf.Len() >= PackSize {
					if err := flush(); err != nil {
						return st, err
					}
				}
			}
			drop = append(drop, name)
			st.PacksRewritten++
			st.BytesFreed += size - u.used
		}
	}
	if err := flush(); err != nil {
		return st, err
	}
	if len(drop) == 0 {
		return st, nil
	}
	keep = append(keep, rewritten...)
	if _, err := r.writeIndex(ctx, keep); err != nil {
		return st, err
	}
	for _, f := range ix.files {
		if err := r.store.Delete(ctx, f); err != nil {
			return st, fmt.Errorf("pruning: removing the old index %s: %w", f, err)
		}
	}
	for _, name := range drop {
		if err := r.store.Delete(ctx, name); err != nil {
			return st, fmt.Errorf("pruning: removing pack %s: %w", shortPack(name), err)
		}
		st.PacksDeleted++
	}
	return st, nil
}
