package backup

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"strings"
	"time"

	"github.com/redoubt/redoubt/audit"
	"github.com/redoubt/redoubt/audit/auditlog"
	"github.com/redoubt/redoubt/backup/recovery"
	"github.com/redoubt/redoubt/backup/repo"
	"github.com/redoubt/redoubt/backup/target"
	"github.com/redoubt/redoubt/backup/target/s3"
)

// SnapshotInfo is a snapshot as the owner's pages list it.
type SnapshotInfo struct {
	ID    string     `json:"id"`
	Time  time.Time  `json:"time"`
	Host  string     `json:"host"`
	Tags  []string   `json:"tags,omitempty"`
	Stats repo.Stats `json:"stats"`
}

// Entry is one file or folder of a snapshot.
type Entry struct {
	Name  string    `json:"name"`
	Path  string    `json:"path"`
	Type  string    `json:"type"`
	Size  int64     `json:"size"`
	MTime time.Time `json:"mtime"`
}

// withRepo opens a target's repository for reading.
func (e *Engine) withRepo(ctx context.Context, targetName string, f func(r *repo.Repo) error) error {
	s, err := e.Settings()
	if err != nil {
		return err
	}
	st, err := e.store(s, targetName)
	if err != nil {
		return err
	}
	k, err := e.keys(false)
	if err != nil {
		return err
	}
	r, err := repo.Open(ctx, st, k[0])
	if err != nil {
		return err
	}
	defer r.Close()
	return f(r)
}

// Snapshots lists a target's snapshots, newest first.
func (e *Engine) Snapshots(ctx context.Context, targetName string) ([]SnapshotInfo, error) {
	var out []SnapshotInfo
	err := e.withRepo(ctx, targetName, func(r *repo.Repo) error {
		snaps, err := r.Snapshots(ctx)
		for i := len(snaps) - 1; i >= 0; i-- {
			s := snaps[i]
			out = append(out, SnapshotInfo{ID: s.ID(), Time: s.Time, Host: s.Host, Tags: s.Tags, Stats: s.Stats})
		}
		return err
	})
	return out, err
}

// cleanPath makes a snapshot path: slash-separated, no "..", under "state/"
// unless it names the root.
func cleanPath(p string) (string, error) {
	p = strings.Trim(path.Clean("/"+p), "/")
	if strings.Contains(p, "..") {
		return "", fmt.Errorf("path %q: want a path inside the backup", p)
	}
	return p, nil
}

// Browse lists a folder of a snapshot ("latest" for the newest).
func (e *Engine) Browse(ctx context.Context, targetName, snapID, dir string) ([]Entry, error) {
	dir, err := cleanPath(dir)
	if err != nil {
		return nil, err
	}
	var out []Entry
	err = e.withRepo(ctx, targetName, func(r *repo.Repo) error {
		rd, err := e.reader(ctx, r, snapID)
		if err != nil {
			return err
		}
		n, err := rd.Lookup(ctx, dir)
		if err != nil {
			return err
		}
		nodes, err := rd.List(ctx, n)
		for _, c := range nodes {
			out = append(out, Entry{Name: c.Name, Path: strings.TrimPrefix(dir+"/"+c.Name, "/"), Type: c.Type, Size: c.Size, MTime: c.MTime})
		}
		return err
	})
	return out, err
}

func (e *Engine) reader(ctx context.Context, r *repo.Repo, snapID string) (*repo.Reader, error) {
	var snap *repo.Snapshot
	if snapID == "" || snapID == "latest" {
		snaps, err := r.Snapshots(ctx)
		if err != nil {
			return nil, err
		}
		if len(snaps) == 0 {
			return nil, errors.New("this target has no snapshot yet")
		}
		snap = snaps[len(snaps)-1]
	} else {
		var err error
		if snap, err = r.LoadSnapshot(ctx, snapID); err != nil {
			return nil, err
		}
	}
	return r.NewReader(ctx, snap)
}

// WriteFile writes a file of a snapshot to w (a download).
func (e *Engine) WriteFile(ctx context.Context, targetName, snapID, p string, w io.Writer) error {
	p, err := cleanPath(p)
	if err != nil {
		return err
	}
	return e.withRepo(ctx, targetName, func(r *repo.Repo) error {
		rd, err := e.reader(ctx, r, snapID)
		if err != nil {
			return err
		}
		n, err := rd.Lookup(ctx, p)
		if err != nil {
			return err
		}
		_, err = rd.WriteFile(ctx, n, w)
		return err
	})
}

// RestoreItem puts a file or folder of the box's state (a path under
// "state/", such as state/apps/files/…) back from a snapshot. It is written
// beside the current one, under state.dir/backup/restored/<time>/, and never
// over it: the app that owns it takes it from there (or the owner moves it).
func (e *Engine) RestoreItem(ctx context.Context, targetName, snapID, p string) (RestoredItem, error) {
	e.runMu.Lock()
	defer e.runMu.Unlock()
	p, err := cleanPath(p)
	if err != nil {
		return RestoredItem{}, err
	}
	if p != "state" && !strings.HasPrefix(p, "state/") {
		return RestoredItem{}, fmt.Errorf("path %q: only the box's state (state/…) is restored item by item; the vault comes back with a whole restore", p)
	}
	now := e.d.Clock.Now().UTC()
	into := filepath.Join(e.d.StateDir, StatusDir, "restored", now.Format("20060102-150405"), filepath.FromSlash(strings.TrimPrefix(p, "state/")))
	var item RestoredItem
	err = e.withRepo(ctx, targetName, func(r *repo.Repo) error {
		rd, err := e.reader(ctx, r, snapID)
		if err != nil {
			return err
		}
		if err := os.MkdirAll(filepath.Dir(into), 0o700); err != nil {
			return err
		}
		if _, err := rd.Restore(ctx, p, into); err != nil {
			return err
		}
		item = RestoredItem{Time: now, Path: p, From: targetName, Into: into}
		return nil
	})
	if err != nil {
		return item, err
	}
	e.mu.Lock()
	e.status.Restored = append(e.status.Restored, item)
	if len(e.status.Restored) > 20 {
		e.status.Restored = e.status.Restored[len(e.status.Restored)-20:]
	}
	e.mu.Unlock()
	e.saveStatus()
	e.d.Audit.Record(audit.Event{Kind: audit.KindBackup, Action: "restore item", Actor: audit.ActorOwner, Subject: p, Detail: "from " + targetName})
	return item, nil
}

// RestoreRequest is a whole restore onto a fresh box: where the backup is,
// the recovery key or members' shares of it, and the new passphrase.
type RestoreRequest struct {
	S3 *s3.Config `json:"s3,omitempty"`
	// Peer is a teammate's box's address in the tailnet (the team mesh must
	// be set up first).
	Peer       string   `json:"peer,omitempty"`
	Key        string   `json:"key,omitempty"`
	Shares     []string `json:"shares,omitempty"`
	Passphrase string   `json:"passphrase"`
	Snapshot   string   `json:"snapshot,omitempty"`
}

// FreshRestore is what a whole restore onto a fresh box brought back.
type FreshRestore struct {
	Snapshot SnapshotInfo
	// Vault is the vault's snapshot: the caller puts it back under the
	// passphrase the owner chose (vault.RestoreSnapshot), then restarts.
	Vault []byte
	Files int
	Bytes int64
}

// KeyFromInput reads what the owner typed in the restore wizard: the
// recovery key, or members' shares (one per line or field).
func KeyFromInput(key string, shares []string) (recovery.Key, error) {
	if strings.TrimSpace(key) != "" {
		return recovery.ParseKey(key)
	}
	return recovery.Combine(shares)
}

// Restore restores the latest snapshot (or snapID) of the repository in st
// onto a fresh box: the state into stateDir (which must hold nothing of an
// owner: a fresh box), the audit log beside the running one (it takes over at
// the next start), and returns the vault's snapshot for the caller, who
// restarts the box afterwards.
func Restore(ctx context.Context, st target.Store, key recovery.Key, snapID, stateDir string) (FreshRestore, error) {
	var out FreshRestore
	master, err := repo.MasterFromRecovery(ctx, st, key[:])
	if err != nil {
		return out, err
	}
	r, err := repo.Open(ctx, st, master)
	if err != nil {
		return out, err
	}
	defer r.Close()
	snaps, err := r.Snapshots(ctx)
	if err != nil {
		return out, err
	}
	if len(snaps) == 0 {
		return out, fmt.Errorf("%s holds no snapshot yet", st)
	}
	snap := snaps[len(snaps)-1]
	if snapID != "" && snapID != "latest" {
		if snap, err = r.LoadSnapshot(ctx, snapID); err != nil {
			return out, err
		}
	}
	rd, err := r.NewReader(ctx, snap)
	if err != nil {
		return out, err
	}
	vn, err := rd.Lookup(ctx, "vault")
	if err != nil {
		return out, fmt.Errorf("the snapshot has no vault: %w", err)
	}
	if out.Vault, err = rd.ReadAll(ctx, vn); err != nil {
		return out, err
	}
	// The state, into a new folder, then each entry moved into place.
	tmp := filepath.Join(stateDir, StatusDir, "incoming")
	os.RemoveAll(tmp)
	if err := os.MkdirAll(filepath.Dir(tmp), 0o700); err != nil {
		return out, err
	}
	rs, err := rd.Restore(ctx, "state", tmp)
	if err != nil {
		return out, fmt.Errorf("restoring the box's state: %w", err)
	}
	entries, err := os.ReadDir(tmp)
	if err != nil {
		return out, err
	}
	for _, en := range entries {
		dst := filepath.Join(stateDir, en.Name())
		if en.Name() == "vault" || en.Name() == StatusDir {
			continue
		}
		os.RemoveAll(dst)
		if err := os.Rename(filepath.Join(tmp, en.Name()), dst); err != nil {
			return out, fmt.Errorf("restoring %s: %w", en.Name(), err)
		}
	}
	os.RemoveAll(tmp)
	// The running apps' databases, taken whole at the backup's instant.
	if _, err := rd.Lookup(ctx, appStores); err == nil {
		if _, err := rd.Restore(ctx, appStores, tmp); err != nil {
			return out, fmt.Errorf("restoring the apps' stores: %w", err)
		}
		ids, _ := os.ReadDir(tmp)
		for _, id := range ids {
			dst := filepath.Join(stateDir, "apps", id.Name(), "store.db")
			if err := os.MkdirAll(filepath.Dir(dst), 0o700); err != nil {
				return out, err
			}
			if err := os.Rename(filepath.Join(tmp, id.Name(), "store.db"), dst); err != nil {
				return out, fmt.Errorf("restoring app %s's store: %w", id.Name(), err)
			}
		}
		os.RemoveAll(tmp)
	}
	if an, err := rd.Lookup(ctx, "audit.db"); err == nil {
		if err := os.MkdirAll(filepath.Join(stateDir, "audit"), 0o700); err != nil {
			return out, err
		}
		// Beside the running log's file: the log takes it at its next start.
		f, err := os.OpenFile(filepath.Join(stateDir, "audit", auditlog.FileName+auditlog.RestoredSuffix), os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
		if err != nil {
			return out, err
		}
		_, err = rd.WriteFile(ctx, an, f)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return out, fmt.Errorf("restoring the audit log: %w", err)
		}
	}
	out.Snapshot = SnapshotInfo{ID: snap.ID(), Time: snap.Time, Host: snap.Host, Tags: snap.Tags, Stats: snap.Stats}
	out.Files, out.Bytes = rs.Files, rs.Bytes
	return out, nil
}
