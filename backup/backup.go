// Package backup is the box's backups: what is backed up (the vault's sealed
// records, the box's settings and state, the audit log, every app's data
// under state.dir/apps), where (an S3-compatible bucket reached only through
// the VPN; teammates' boxes over the team's tailnet), when (daily or every few
// hours, and on demand), checked after every run, restored from (a file or a
// folder back into the box, or everything onto a fresh box with the recovery
// key or members' shares of it), and a monthly restore drill whose result the
// dashboard shows.
//
// Backups run only while the box is unlocked (the keys are in the vault) and
// once its clock was synced through the VPN (snapshots carry times, S3
// signatures need them); until then the status says which it waits for.
//
// The repository format is backup/repo's; stores are backup/target's. Only the
// daemon builds the engine; the owner's pages, the local API and the setup
// wizard's restore path use its methods and types.
package backup

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/redoubt/redoubt/audit"
	"github.com/redoubt/redoubt/backup/recovery"
	"github.com/redoubt/redoubt/backup/repo"
	"github.com/redoubt/redoubt/backup/target"
	"github.com/redoubt/redoubt/backup/target/peer"
	"github.com/redoubt/redoubt/backup/target/s3"
	"github.com/redoubt/redoubt/vault"
	"github.com/redoubt/redoubt/vpn/egress"
)

// Clock is the box's time (package clock).
type Clock interface {
	Now() time.Time
	Synced() bool
}

// Dial opens a connection over the team's tailnet.
type Dial func(ctx context.Context, network, addr string) (net.Conn, error)

// Deps are what the engine needs from the rest of the box.
type Deps struct {
	// Vault keeps the settings, the keys and members' shares.
	Vault vault.Store
	// VaultSnapshot is the vault's whole content (vault.Vault.Snapshot).
	VaultSnapshot func() ([]byte, error)
	// StateDir is backed up, but for Exclude (top-level names).
	StateDir string
	Exclude  []string
	// Extra are items made at backup time (the audit log's copy).
	Extra []repo.Item
	// AppStores writes consistent copies of the running apps' store
	// databases under dir/<app id>/store.db and says which (apps/host's
	// CopyStores); the backup takes those instead of the live files.
	// Optional.
	AppStores func(dir string) ([]string, error)
	Clock     Clock
	// Egress reaches S3: the VPN's dialer.
	Egress egress.Dialer
	// PeerDial reaches teammates' boxes over the tailnet; nil while the box
	// has no node up.
	PeerDial func() Dial
	Audit    audit.Recorder
	Logger   *slog.Logger
	// Host names the box in snapshots.
	Host func() string
}

// Vault bucket and keys.
const (
	bucket      = "backup"
	keySettings = "settings"
	keyMaster   = "master"
	keyRecovery = "recovery"
	keyShares   = "shares"
	sharePrefix = "share/"
)

// StatusDir is the engine's directory in state.dir (status, restored items);
// the backups leave it out.
const StatusDir = "backup"

// Engine runs the box's backups.
type Engine struct {
	d   Deps
	log *slog.Logger

	runMu sync.Mutex // one run, drill or restore at a time
	kick  chan bool  // true: a backup now

	mu     sync.Mutex
	status Status
}

// TargetStatus is one target's last run.
type TargetStatus struct {
	Name    string     `json:"name"`
	Store   string     `json:"store"`
	Result  string     `json:"result"` // "ok", "failed", "running", ""
	Error   string     `json:"error,omitempty"`
	Started time.Time  `json:"started,omitzero"`
	LastOK  time.Time  `json:"last_ok,omitzero"`
	Stats   repo.Stats `json:"stats"`
	// Snapshots is how many the repository keeps.
	Snapshots int `json:"snapshots"`
}

// DrillStatus is the last restore drill.
type DrillStatus struct {
	Time     time.Time `json:"time,omitzero"`
	Target   string    `json:"target,omitempty"`
	OK       bool      `json:"ok"`
	Files    int       `json:"files"`
	Bytes    int64     `json:"bytes"`
	Packs    int       `json:"packs_read"`
	Problems []string  `json:"problems,omitempty"`
	Next     time.Time `json:"next,omitzero"`
}

// Status is the backups at a glance.
type Status struct {
	Configured bool           `json:"configured"`
	Targets    []TargetStatus `json:"targets"`
	Running    bool           `json:"running"`
	Next       time.Time      `json:"next,omitzero"`
	// Waiting says why no backup runs now (locked, clock, not set up).
	Waiting string      `json:"waiting,omitempty"`
	Drill   DrillStatus `json:"drill"`
	// Shares is how the recovery key is split (0 of 0: not split).
	SharesK       int            `json:"shares_k"`
	SharesN       int            `json:"shares_n"`
	ShareHolders  []ShareHolder  `json:"share_holders,omitempty"`
	RecoverySet   string         `json:"recovery_set,omitempty"`
	LastSettings  time.Time      `json:"last_settings,omitzero"`
	Restored      []RestoredItem `json:"restored,omitempty"`
	PausedByOwner bool           `json:"paused,omitempty"`
}

// ShareHolder is a member holding a share.
type ShareHolder struct {
	Member string `json:"member"`
	Number int    `json:"number"`
	// Saved: the member said they keep it; the box then forgot it.
	Saved bool `json:"saved"`
}

// RestoredItem is a file or folder put back from a backup.
type RestoredItem struct {
	Time time.Time `json:"time"`
	Path string    `json:"path"`
	From string    `json:"from"`
	Into string    `json:"into"`
}

// New makes the engine; it loads its last status from state.dir.
func New(d Deps) *Engine {
	if d.Logger == nil {
		d.Logger = slog.New(slog.DiscardHandler)
	}
	if d.Audit == nil {
		d.Audit = audit.Discard
	}
	if d.Host == nil {
		d.Host = func() string { return "redoubt" }
	}
	e := &Engine{d: d, log: d.Logger, kick: make(chan bool, 1)}
	if b, err := os.ReadFile(e.statusPath()); err == nil {
		json.Unmarshal(b, &e.status)
	}
	e.status.Running = false
	for i := range e.status.Targets {
		if e.status.Targets[i].Result == "running" {
			e.status.Targets[i].Result, e.status.Targets[i].Error = "failed", "interrupted: the box stopped during the backup"
		}
	}
	return e
}

func (e *Engine) statusPath() string { return filepath.Join(e.d.StateDir, StatusDir, "status.json") }

// Status reports the backups' state.
func (e *Engine) Status() Status {
	e.mu.Lock()
	defer e.mu.Unlock()
	st := e.status
	st.Targets = append([]TargetStatus{}, st.Targets...)
	st.Waiting = e.waiting()
	return st
}

// waiting says why backups cannot run now ("" if they can).
func (e *Engine) waiting() string {
	if _, err := e.d.Vault.Get(bucket, keyMaster); errors.Is(err, vault.ErrLocked) {
		return "the box is locked: backups run once it is unlocked"
	} else if errors.Is(err, vault.ErrNotFound) || errors.Is(err, vault.ErrNotInitialized) {
		return ErrNotConfigured.Error()
	}
	if !e.d.Clock.Synced() {
		return "waiting for the clock: backups wait for the time to be synced through the VPN"
	}
	return ""
}

func (e *Engine) saveStatus() {
	e.mu.Lock()
	b, _ := json.MarshalIndent(e.status, "", "  ")
	e.mu.Unlock()
	os.MkdirAll(filepath.Dir(e.statusPath()), 0o700)
	tmp := e.statusPath() + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err == nil {
		os.Rename(tmp, e.statusPath())
	}
}

// Settings returns the owner's settings (defaults if none yet).
func (e *Engine) Settings() (Settings, error) {
	var s Settings
	b, err := e.d.Vault.Get(bucket, keySettings)
	if errors.Is(err, vault.ErrNotFound) {
		return s.WithDefaults(), nil
	}
	if err != nil {
		return s, err
	}
	if err := json.Unmarshal(b, &s); err != nil {
		return s, fmt.Errorf("the backup settings in the vault are damaged: %w", err)
	}
	return s.WithDefaults(), nil
}

// SetSettings checks and keeps new settings. The first time, it makes the
// repository key and the recovery key.
func (e *Engine) SetSettings(s Settings) error {
	s = s.WithDefaults()
	if err := s.Validate(); err != nil {
		return err
	}
	if _, err := e.keys(true); err != nil {
		return err
	}
	b, _ := json.Marshal(s)
	if err := e.d.Vault.Put(bucket, keySettings, b); err != nil {
		return fmt.Errorf("keeping the backup settings: %w", err)
	}
	e.mu.Lock()
	e.status.Configured = len(s.Targets()) > 0
	e.status.PausedByOwner = s.Paused
	e.status.LastSettings = e.d.Clock.Now().UTC()
	e.status.Next = time.Time{}
	e.mu.Unlock()
	e.saveStatus()
	detail := strings.Join(s.Targets(), ", ")
	if detail == "" {
		detail = "no target"
	}
	if s.Paused {
		detail += "; paused"
	}
	e.d.Audit.Record(audit.Event{Kind: audit.KindBackup, Action: "change backup settings", Actor: audit.ActorOwner, Detail: detail})
	e.poke(false)
	return nil
}

// keys returns the repository's master key and the recovery key, making
// them if asked and there are none.
func (e *Engine) keys(create bool) ([2][]byte, error) {
	var out [2][]byte
	m, err := e.d.Vault.Get(bucket, keyMaster)
	if errors.Is(err, vault.ErrNotFound) && create {
		m = make([]byte, repo.MasterKeySize)
		rand.Read(m)
		rk, err := recovery.NewKey()
		if err != nil {
			return out, err
		}
		if err := e.d.Vault.Put(bucket, keyRecovery, rk[:]); err != nil {
			return out, err
		}
		if err := e.d.Vault.Put(bucket, keyMaster, m); err != nil {
			return out, err
		}
		e.mu.Lock()
		e.status.RecoverySet = fmt.Sprintf("%X", rk.SetID())
		e.mu.Unlock()
		e.log.Info("backup keys made: show the recovery key to the owner", "set", fmt.Sprintf("%X", rk.SetID()))
	} else if err != nil {
		return out, err
	}
	r, err := e.d.Vault.Get(bucket, keyRecovery)
	if err != nil {
		return out, err
	}
	out[0], out[1] = m, r
	return out, nil
}

// RecoveryKey is the key that restores the backups onto a fresh box: the
// owner writes it down (or splits it among members).
func (e *Engine) RecoveryKey() (recovery.Key, error) {
	k, err := e.keys(false)
	if err != nil {
		if errors.Is(err, vault.ErrNotFound) {
			return recovery.Key{}, ErrNotConfigured
		}
		return recovery.Key{}, err
	}
	return recovery.Key(k[1]), nil
}

// poke wakes the scheduler; now asks for a backup at once.
func (e *Engine) poke(now bool) {
	select {
	case e.kick <- now:
	default:
		if now {
			// A pending wake-up without "now": replace it.
			select {
			case <-e.kick:
			default:
			}
			select {
			case e.kick <- true:
			default:
			}
		}
	}
}

// BackupNow asks for a backup at once; it runs as soon as the box can.
func (e *Engine) BackupNow() error {
	if w := e.waiting(); w != "" {
		if w == ErrNotConfigured.Error() {
			return ErrNotConfigured
		}
		e.poke(true)
		return fmt.Errorf("the backup will run when it can: %s", w)
	}
	e.poke(true)
	return nil
}

// Run schedules backups and drills until ctx ends.
func (e *Engine) Run(ctx context.Context) {
	for {
		wait := time.Minute
		now := false
		s, err := e.Settings()
		if err == nil && e.waiting() == "" {
			e.mu.Lock()
			next := e.status.Next
			if next.IsZero() {
				last := time.Time{}
				for _, t := range e.status.Targets {
					if t.LastOK.After(last) {
						last = t.LastOK
					}
				}
				base := e.d.Clock.Now()
				if !last.IsZero() && s.next(last).Before(base) {
					next = base // missed while off or locked: catch up now
				} else {
					next = s.next(base)
				}
				e.status.Next = next
			}
			e.mu.Unlock()
			if d := next.Sub(e.d.Clock.Now()); d <= 0 && !s.Paused && len(s.Targets()) > 0 {
				now = true
			} else if d > 0 {
				wait = min(d, time.Minute)
			}
			if !now && e.drillDue() {
				e.Drill(ctx)
			}
		}
		if !now {
			t := time.NewTimer(wait)
			select {
			case <-ctx.Done():
				t.Stop()
				return
			case now = <-e.kick:
				t.Stop()
			case <-t.C:
			}
		}
		if now && e.waiting() == "" {
			e.RunOnce(ctx, "scheduled")
			s, _ := e.Settings()
			e.mu.Lock()
			e.status.Next = s.next(e.d.Clock.Now())
			e.mu.Unlock()
			e.saveStatus()
		}
		if ctx.Err() != nil {
			return
		}
	}
}

// items are what a backup takes, and what to clean up after it.
func (e *Engine) items() ([]repo.Item, func()) {
	excluded := map[string]bool{"vault": true, StatusDir: true, "peer-store": true, "audit": true, "dhcp-leases.db": true, "setup-code.txt": true}
	for _, x := range e.d.Exclude {
		excluded[x] = true
	}
	// The running apps' databases, copied whole at one instant.
	stores := filepath.Join(e.d.StateDir, StatusDir, appStores)
	os.RemoveAll(stores)
	copied := map[string]bool{}
	if e.d.AppStores != nil {
		ids, err := e.d.AppStores(stores)
		if err != nil {
			e.log.Warn("copying the apps' stores", "err", err)
		}
		for _, id := range ids {
			copied[id] = true
		}
	}
	items := []repo.Item{
		{Name: "vault", Data: e.d.VaultSnapshot},
		{Name: "state", Path: e.d.StateDir, Exclude: func(rel string) bool {
			top, _, _ := strings.Cut(rel, "/")
			if top == "apps" {
				parts := strings.Split(rel, "/")
				// An upload in progress is not data yet; a running app's
				// database comes from its copy.
				if len(parts) >= 3 && (parts[2] == "uploads" || parts[2] == "store.db" && copied[parts[1]]) {
					return true
				}
			}
			return excluded[top] || strings.HasSuffix(rel, ".sock") || strings.HasSuffix(rel, ".tmp")
		}},
	}
	if len(copied) > 0 {
		items = append(items, repo.Item{Name: appStores, Path: stores})
	}
	return append(items, e.d.Extra...), func() { os.RemoveAll(stores) }
}

// appStores is where the running apps' databases are copied for a backup,
// and its name in snapshots.
const appStores = "app-stores"

// Target opens a configured target's store.
func (e *Engine) Target(name string) (target.Store, error) {
	s, err := e.Settings()
	if err != nil {
		return nil, err
	}
	return e.store(s, name)
}

func (e *Engine) store(s Settings, name string) (target.Store, error) {
	switch {
	case name == "s3" && s.S3 != nil:
		return s3.New(*s.S3, e.d.Egress, e.d.Clock.Now)
	case strings.HasPrefix(name, "peer:"):
		for _, p := range s.Peers {
			if "peer:"+p.Name == name {
				var dial Dial
				if e.d.PeerDial != nil {
					dial = e.d.PeerDial()
				}
				if dial == nil {
					return nil, errors.New("the team mesh is not up: teammates' boxes are reached over it")
				}
				return peer.New(p.Address, p.Code, dial)
			}
		}
	}
	return nil, fmt.Errorf("no backup target %q (the targets are %s)", name, strings.Join(s.Targets(), ", "))
}

// open opens (or creates) the repository in a target.
func (e *Engine) open(ctx context.Context, st target.Store) (*repo.Repo, error) {
	k, err := e.keys(false)
	if err != nil {
		return nil, err
	}
	r, err := repo.Open(ctx, st, k[0])
	if errors.Is(err, repo.ErrNoRepository) {
		rk := recovery.Key(k[1])
		r, err = repo.Init(ctx, st, k[0], k[1], fmt.Sprintf("%X", rk.SetID()))
		if err == nil {
			e.log.Info("backup repository created", "store", st.String())
		}
	}
	if err != nil {
		return nil, err
	}
	if ps, ok := st.(*peer.Store); ok {
		// So the recovery key alone reads it back onto a fresh box.
		if err := ps.RegisterReadCode(ctx, peer.ReadCode(k[1])); err != nil {
			r.Close()
			return nil, fmt.Errorf("registering the read code with %s: %w", st, err)
		}
	}
	return r, nil
}

// RunOnce backs up to every target now, one after the other.
func (e *Engine) RunOnce(ctx context.Context, why string) error {
	e.runMu.Lock()
	defer e.runMu.Unlock()
	s, err := e.Settings()
	if err != nil {
		return err
	}
	names := s.Targets()
	if len(names) == 0 {
		return ErrNotConfigured
	}
	if w := e.waiting(); w != "" {
		return errors.New(w)
	}
	e.mu.Lock()
	e.status.Running = true
	e.mu.Unlock()
	defer func() {
		e.mu.Lock()
		e.status.Running = false
		e.mu.Unlock()
		e.saveStatus()
	}()
	var errs []error
	for _, name := range names {
		if err := e.runTarget(ctx, s, name, why); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", name, err))
		}
	}
	return errors.Join(errs...)
}

func (e *Engine) setTarget(ts TargetStatus) {
	e.mu.Lock()
	defer e.mu.Unlock()
	for i := range e.status.Targets {
		if e.status.Targets[i].Name == ts.Name {
			e.status.Targets[i] = ts
			return
		}
	}
	e.status.Targets = append(e.status.Targets, ts)
	sort.Slice(e.status.Targets, func(i, j int) bool { return e.status.Targets[i].Name < e.status.Targets[j].Name })
}

func (e *Engine) targetStatus(name string) TargetStatus {
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, t := range e.status.Targets {
		if t.Name == name {
			return t
		}
	}
	return TargetStatus{Name: name}
}

func (e *Engine) runTarget(ctx context.Context, s Settings, name, why string) error {
	ts := e.targetStatus(name)
	ts.Result, ts.Error, ts.Started = "running", "", e.d.Clock.Now().UTC()
	e.setTarget(ts)
	e.saveStatus()
	fail := func(err error) error {
		ts.Result, ts.Error = "failed", err.Error()
		e.setTarget(ts)
		e.log.Warn("backup failed", "target", name, "err", err)
		e.d.Audit.Record(audit.Event{Kind: audit.KindBackup, Action: "backup failed", Actor: audit.ActorBox, Subject: name, Detail: trim(err.Error())})
		return err
	}
	st, err := e.store(s, name)
	if err != nil {
		return fail(err)
	}
	ts.Store = st.String()
	r, err := e.open(ctx, st)
	if err != nil {
		return fail(err)
	}
	defer r.Close()
	items, cleanup := e.items()
	defer cleanup()
	snap, err := r.Backup(ctx, items, repo.Options{Host: e.d.Host(), Verify: true, Now: e.d.Clock.Now, Tags: []string{why}})
	if err != nil {
		return fail(err)
	}
	forgot, err := r.Forget(ctx, s.Keep)
	if err != nil {
		return fail(fmt.Errorf("forgetting old snapshots: %w", err))
	}
	if forgot > 0 {
		if _, err := r.Prune(ctx); err != nil {
			return fail(fmt.Errorf("pruning: %w", err))
		}
	}
	snaps, _ := r.Snapshots(ctx)
	ts.Result, ts.Stats, ts.LastOK, ts.Snapshots = "ok", snap.Stats, snap.Time, len(snaps)
	e.setTarget(ts)
	e.log.Info("backup done", "target", name, "files", snap.Stats.Files, "new", snap.Stats.NewBytes, "stored", snap.Stats.Stored, "took", snap.Stats.Duration.Round(time.Millisecond))
	e.d.Audit.Record(audit.Event{Kind: audit.KindBackup, Action: "backup finished", Actor: audit.ActorBox, Subject: name,
		Detail: fmt.Sprintf("snapshot %s (%s): %d files, %s new, %s stored, verified; %d snapshots kept", snap.ID(), why, snap.Stats.Files, size(snap.Stats.NewBytes), size(snap.Stats.Stored), len(snaps))})
	return nil
}

func trim(s string) string {
	if len(s) > 512 {
		return s[:512] + "…"
	}
	return s
}

func size(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}

// DrillEvery is how often the restore drill runs.
const DrillEvery = 30 * 24 * time.Hour

func (e *Engine) drillDue() bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	has := false
	for _, t := range e.status.Targets {
		has = has || !t.LastOK.IsZero()
	}
	return has && e.d.Clock.Now().Sub(e.status.Drill.Time) >= DrillEvery
}

// Drill restores a sample of the latest backup in memory, from each
// target, checking every byte, and reads a tenth of the packs whole: the
// monthly proof that the backups can be restored.
func (e *Engine) Drill(ctx context.Context) DrillStatus {
	e.runMu.Lock()
	defer e.runMu.Unlock()
	ds := DrillStatus{Time: e.d.Clock.Now().UTC(), OK: true}
	s, err := e.Settings()
	if err == nil && len(s.Targets()) == 0 {
		err = ErrNotConfigured
	}
	if err != nil {
		ds.OK, ds.Problems = false, []string{err.Error()}
	}
	for _, name := range s.Targets() {
		if ts := e.targetStatus(name); ts.LastOK.IsZero() {
			continue
		}
		ds.Target = strings.TrimPrefix(ds.Target+", "+name, ", ")
		st, err := e.store(s, name)
		var r *repo.Repo
		if err == nil {
			r, err = e.open(ctx, st)
		}
		if err != nil {
			ds.OK = false
			ds.Problems = append(ds.Problems, name+": "+err.Error())
			continue
		}
		res, err := r.Check(ctx, repo.CheckOptions{ReadPacks: 0.1, SampleFiles: 20})
		r.Close()
		if err != nil {
			ds.OK = false
			ds.Problems = append(ds.Problems, name+": "+err.Error())
			continue
		}
		ds.Files += res.FilesRestored
		ds.Bytes += res.BytesRestored
		ds.Packs += res.PacksRead
		for _, p := range res.Problems {
			ds.OK = false
			ds.Problems = append(ds.Problems, name+": "+p)
		}
	}
	ds.Next = ds.Time.Add(DrillEvery)
	e.mu.Lock()
	e.status.Drill = ds
	e.mu.Unlock()
	e.saveStatus()
	result := "passed"
	if !ds.OK {
		result = "FAILED: " + strings.Join(ds.Problems, "; ")
	}
	e.d.Audit.Record(audit.Event{Kind: audit.KindBackup, Action: "restore drill", Actor: audit.ActorBox, Subject: ds.Target,
		Detail: trim(fmt.Sprintf("%s: %d files (%s) restored and checked, %d packs read whole", result, ds.Files, size(ds.Bytes), ds.Packs))})
	return ds
}

func auditEvent(action, subject, detail string) audit.Event {
	return audit.Event{Kind: audit.KindBackup, Action: action, Actor: audit.ActorOwner, Subject: subject, Detail: detail}
}

// Unlocked wakes the scheduler: backups that waited for the keys can run.
func (e *Engine) Unlocked() { e.poke(false) }
