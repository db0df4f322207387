// Package update applies signed updates to the inactive root slot and runs
// their trial: it verifies a bundle (board/bundle) against the update key built
// into the running image, refuses other boards and anything older than the
// last version that passed a trial, writes the slot and its boot files,
// stages a one-try boot entry (board/bootloader), and asks init to restart.
// At the next start, init asks it whether this boot is a trial, keeps the slot
// once the health check passes (board/health) or restarts into the previous
// one, and records every step in the update history and the audit log. The
// daemon builds it (uploads, fetches through the VPN's egress); board/initd
// drives the trial. Only those and cmd/redoubt import it.
package update

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"golang.org/x/mod/sumdb/note"

	"github.com/redoubt/redoubt/board/bootloader"
	"github.com/redoubt/redoubt/board/bundle"
	"github.com/redoubt/redoubt/board/datapart"
	"github.com/redoubt/redoubt/board/layout"
)

// Config is the [update] section of the config file.
type Config struct {
	// URL is where the box looks for updates, through the VPN only: it
	// fetches URL itself, a bundle for its board ("" to fetch only when
	// asked with a URL).
	URL string `toml:"url"`
	// TrialSystem bounds how long a trial boot has to bring the box up:
	// the local API, the LAN's services, the owner's pages and DNS
	// answering, the vault readable (default 3m).
	TrialSystem time.Duration `toml:"trial_system"`
	// TrialUnlock is how long a trial waits for the owner to unlock the
	// box when it has a vault; without an unlock in that time the previous
	// version comes back (default 30m).
	TrialUnlock time.Duration `toml:"trial_unlock"`
	// TrialMesh is how long after the unlock the team mesh's node has to
	// reconnect, when the team mesh is set up (default 2m).
	TrialMesh time.Duration `toml:"trial_mesh"`
}

// WithDefaults fills unset fields.
func (c Config) WithDefaults() Config {
	if c.TrialSystem == 0 {
		c.TrialSystem = 3 * time.Minute
	}
	if c.TrialUnlock == 0 {
		c.TrialUnlock = 30 * time.Minute
	}
	if c.TrialMesh == 0 {
		c.TrialMesh = 2 * time.Minute
	}
	return c
}

// Validate names the wrong field.
func (c Config) Validate() error {
	if c.URL != "" && !strings.HasPrefix(c.URL, "https://") {
		return fmt.Errorf("update.url %q: want an https:// URL", c.URL)
	}
	for _, d := range []struct {
		name string
		v    time.Duration
		min  time.Duration
	}{{"trial_system", c.TrialSystem, 10 * time.Second}, {"trial_unlock", c.TrialUnlock, 10 * time.Second}, {"trial_mesh", c.TrialMesh, 10 * time.Second}} {
		if d.v != 0 && (d.v < d.min || d.v > 24*time.Hour) {
			return fmt.Errorf("update.%s %s: want %s to 24h", d.name, d.v, d.min)
		}
	}
	return nil
}

// Image is the running system.
type Image struct {
	Board   layout.Board `json:"board"`
	Version string       `json:"version"`
	Commit  string       `json:"commit"`
	Slot    layout.Slot  `json:"slot"`
}

// ReadImage reads the running image's identity from root's image.json and
// the slot from the kernel command line.
func ReadImage(root, cmdline string) (Image, error) {
	var im Image
	b, err := os.ReadFile(filepath.Join(root, layout.ImageInfo))
	if err != nil {
		return im, fmt.Errorf("reading the image's identity: %w", err)
	}
	if err := json.Unmarshal(b, &im); err != nil {
		return im, fmt.Errorf("reading %s: %w", layout.ImageInfo, err)
	}
	if im.Slot, err = layout.SlotFromCmdline(cmdline); err != nil {
		return im, err
	}
	return im, nil
}

// ReadVerifier reads the update key built into the image.
func ReadVerifier(root string) (note.Verifier, error) {
	b, err := os.ReadFile(filepath.Join(root, layout.UpdateKey))
	if err != nil {
		return nil, fmt.Errorf("reading the update key: %w", err)
	}
	v, err := note.NewVerifier(strings.TrimSpace(string(b)))
	if err != nil {
		return nil, fmt.Errorf("the image's update key: %w", err)
	}
	return v, nil
}

// AuditFunc records an update event in the box's audit log: action is
// "update " and the outcome (refused, staged, kept, failed, rolled-back),
// subject the version, detail the manifest's SHA-256 and what happened (at
// most 1 KiB). Staged and refused follow the owner's upload; kept, failed and
// rolled-back are the box's own doing.
type AuditFunc func(action, subject, detail string)

// Deps are what the updater works on.
type Deps struct {
	Running  Image
	Verifier note.Verifier
	Disk     datapart.Disk
	Loader   bootloader.Loader
	Store    Store
	// Fetch is the HTTP client whose connections go through the VPN
	// (egress.HTTPClient); nil when the box has no VPN yet.
	Fetch func() *http.Client
	// Audit records events (nil: none).
	Audit AuditFunc
	// Restart asks init to restart into the staged slot.
	Restart func() error
	Logger  *slog.Logger
	Now     func() time.Time
}

// Updater applies updates. Methods are safe for concurrent use; one update
// is applied at a time.
type Updater struct {
	cfg  Config
	deps Deps
	log  *slog.Logger
	mu   sync.Mutex // one apply at a time; guards the state file
	busy bool
}

// New returns an updater.
func New(cfg Config, d Deps) *Updater {
	if d.Now == nil {
		d.Now = time.Now
	}
	if d.Logger == nil {
		d.Logger = slog.New(slog.DiscardHandler)
	}
	if d.Audit == nil {
		d.Audit = func(string, string, string) {}
	}
	return &Updater{cfg: cfg.WithDefaults(), deps: d, log: d.Logger}
}

// Errors a caller may tell apart.
var (
	ErrBusy      = errors.New("an update is already being applied")
	ErrOnTrial   = errors.New("the running version is itself on trial: finish that first")
	ErrDowngrade = errors.New("downgrade refused")
	ErrBoard     = errors.New("the update is for another board")
)

// Apply verifies and writes the update read from r to the inactive slot and
// stages its trial. It does not restart: call Restart (the owner's pages say
// so first). source says where it came from ("upload", a URL).
func (u *Updater) Apply(ctx context.Context, r io.Reader, source string) (bundle.Manifest, error) {
	u.mu.Lock()
	if u.busy {
		u.mu.Unlock()
		return bundle.Manifest{}, ErrBusy
	}
	u.busy = true
	u.mu.Unlock()
	defer func() { u.mu.Lock(); u.busy = false; u.mu.Unlock() }()

	m, err := u.apply(ctx, r, source)
	if err != nil {
		ev := Event{At: u.deps.Now(), Outcome: OutcomeRefused, Version: m.Version, Source: source, Detail: err.Error()}
		if m.Version != "" {
			ev.Hash = m.Hash()
		}
		u.record(ev)
		return m, err
	}
	return m, nil
}

func (u *Updater) apply(ctx context.Context, r io.Reader, source string) (bundle.Manifest, error) {
	st, err := u.deps.Store.Load()
	if err != nil {
		return bundle.Manifest{}, err
	}
	if st.Staged != nil && st.Staged.Slot == u.deps.Running.Slot && st.Staged.Failed == "" {
		return bundle.Manifest{}, ErrOnTrial
	}
	br, err := bundle.Open(r, u.deps.Verifier)
	if err != nil {
		return bundle.Manifest{}, err
	}
	m := br.Manifest
	if m.Board != u.deps.Running.Board {
		return m, fmt.Errorf("%w: %s, this box is %s", ErrBoard, m.Board, u.deps.Running.Board)
	}
	floor := st.LastGood
	if floor == "" || bundle.Compare(u.deps.Running.Version, floor) > 0 {
		floor = u.deps.Running.Version
	}
	if bundle.Compare(m.Version, floor) <= 0 {
		return m, fmt.Errorf("%w: %s is not newer than %s, the last good version", ErrDowngrade, m.Version, floor)
	}
	target := u.deps.Running.Slot.Other()
	log := u.log.With("version", m.Version, "slot", target)
	log.Info("applying update", "source", source, "manifest", m.Hash())
	start := u.deps.Now()
	// Forget the target slot first: from here until Stage, nothing boots it.
	if st.Staged != nil {
		st.Staged = nil
		if err := u.deps.Store.Save(st); err != nil {
			return m, err
		}
	}
	if err := u.deps.Loader.Discard(target); err != nil {
		return m, err
	}
	bootDir := u.deps.Loader.SlotDir(target)
	var written []string
	for {
		p, pr, err := br.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return m, err
		}
		if err := ctx.Err(); err != nil {
			return m, err
		}
		if p.Name == "root" {
			err = u.writeSlot(target, pr)
		} else {
			name := strings.TrimPrefix(p.Name, "boot/")
			err = writeChecked(filepath.Join(bootDir, filepath.FromSlash(path.Clean(name))), pr)
			written = append(written, name)
		}
		if err != nil {
			u.deps.Loader.Discard(target)
			return m, err
		}
	}
	uuid, err := u.deps.Disk.PartUUID(target.Part())
	if err != nil {
		u.deps.Loader.Discard(target)
		return m, err
	}
	if err := u.deps.Loader.Stage(target, m.Version, layout.Cmdline(m.Board, target, uuid)); err != nil {
		u.deps.Loader.Discard(target)
		return m, err
	}
	st.Staged = &Staged{Slot: target, Version: m.Version, Hash: m.Hash(), At: u.deps.Now()}
	st.add(Event{At: u.deps.Now(), Outcome: OutcomeStaged, Version: m.Version, Hash: m.Hash(), Slot: target, Source: source,
		Detail: fmt.Sprintf("written to slot %s in %.1fs (root and %d boot files)", target, u.deps.Now().Sub(start).Seconds(), len(written))})
	if err := u.deps.Store.Save(st); err != nil {
		u.deps.Loader.Discard(target)
		return m, err
	}
	u.flushAudit()
	log.Info("update staged: the next start is its trial", "took", u.deps.Now().Sub(start))
	return m, nil
}

// writeSlot writes the root file system to the slot's partition, then checks
// the hash; a mismatch leaves the slot unbootable (its entry was discarded).
func (u *Updater) writeSlot(s layout.Slot, pr *bundle.PartReader) error {
	if s == u.deps.Running.Slot {
		return errors.New("refusing to write the running slot")
	}
	f, err := os.OpenFile(u.deps.Disk.SlotPath(s), os.O_WRONLY, 0)
	if err != nil {
		return fmt.Errorf("opening slot %s: %w", s, err)
	}
	defer f.Close()
	if _, err := io.Copy(f, pr); err != nil {
		return fmt.Errorf("writing slot %s: %w", s, err)
	}
	if err := pr.Check(); err != nil {
		return err
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("writing slot %s: %w", s, err)
	}
	return nil
}

// writeChecked writes a boot file under a temporary name and renames it
// only once its hash matched.
func writeChecked(p string, pr *bundle.PartReader) error {
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return err
	}
	tmp := p + ".partial"
	f, err := os.Create(tmp)
	if err != nil {
		return err
	}
	_, err = io.Copy(f, pr)
	if err == nil {
		err = pr.Check()
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(tmp)
		return err
	}
	return os.Rename(tmp, p)
}

// Fetch downloads an update through the VPN and applies it. url "" is
// update.url.
func (u *Updater) Fetch(ctx context.Context, url string) (bundle.Manifest, error) {
	if url == "" {
		url = u.cfg.URL
	}
	if !strings.HasPrefix(url, "https://") && !strings.HasPrefix(url, "http://") {
		return bundle.Manifest{}, fmt.Errorf("update URL %q: want http:// or https:// (the file is signed either way)", url)
	}
	if u.deps.Fetch == nil {
		return bundle.Manifest{}, errors.New("the box has no VPN to fetch through")
	}
	c := u.deps.Fetch()
	if c == nil {
		return bundle.Manifest{}, errors.New("the VPN is not up: nothing leaves the box without it")
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return bundle.Manifest{}, err
	}
	resp, err := c.Do(req)
	if err != nil {
		return bundle.Manifest{}, fmt.Errorf("fetching the update through the VPN: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return bundle.Manifest{}, fmt.Errorf("fetching the update: %s answered %s", url, resp.Status)
	}
	return u.Apply(ctx, resp.Body, url)
}

// Restart asks init to restart into the staged slot.
func (u *Updater) Restart() error {
	st, err := u.deps.Store.Load()
	if err != nil {
		return err
	}
	if st.Staged == nil || st.Staged.Slot == u.deps.Running.Slot {
		return errors.New("no update is staged")
	}
	if u.deps.Restart == nil {
		return errors.New("this box cannot restart itself")
	}
	return u.deps.Restart()
}

// Status is what the owner sees.
type Status struct {
	Running  Image   `json:"running"`
	LastGood string  `json:"last_good"`
	Staged   *Staged `json:"staged,omitempty"`
	// OnTrial: the running version is on trial, not yet kept.
	OnTrial bool    `json:"on_trial"`
	URL     string  `json:"url,omitempty"`
	History []Event `json:"history"`
}

// Status reports the running image, the staged update and the history.
func (u *Updater) Status() (Status, error) {
	u.mu.Lock()
	defer u.mu.Unlock()
	st, err := u.deps.Store.Load()
	if err != nil {
		return Status{}, err
	}
	s := Status{Running: u.deps.Running, LastGood: st.LastGood, Staged: st.Staged, URL: u.cfg.URL, History: st.History}
	s.OnTrial = st.Staged != nil && st.Staged.Slot == u.deps.Running.Slot && st.Staged.Failed == ""
	return s, nil
}

func (u *Updater) record(e Event) {
	u.mu.Lock()
	defer u.mu.Unlock()
	st, err := u.deps.Store.Load()
	if err != nil {
		u.log.Warn("update history not written", "err", err)
		return
	}
	st.add(e)
	if err := u.deps.Store.Save(st); err != nil {
		u.log.Warn("update history not written", "err", err)
	}
	u.flushAuditLocked()
}

// FlushAudit sends history events not yet audited (those init wrote while
// the daemon was not running: kept, failed, rolled back) to the audit log.
func (u *Updater) flushAudit() {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.flushAuditLocked()
}

// FlushAudit is flushAudit for the daemon's start.
func (u *Updater) FlushAudit() { u.flushAudit() }

func (u *Updater) flushAuditLocked() {
	st, err := u.deps.Store.Load()
	if err != nil {
		return
	}
	changed := false
	for i := range st.History {
		e := &st.History[i]
		if e.Audited {
			continue
		}
		detail := e.Detail
		if e.Hash != "" {
			detail = strings.TrimSpace("manifest sha256 " + e.Hash + "; " + detail)
		}
		if len(detail) > 1024 {
			detail = detail[:1024]
		}
		u.deps.Audit("update "+e.Outcome, e.Version, detail)
		e.Audited, changed = true, true
	}
	if changed {
		u.deps.Store.Save(st)
	}
}
