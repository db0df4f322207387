package daemon

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/redoubt/redoubt/apps/home"
	"github.com/redoubt/redoubt/audit"
	"github.com/redoubt/redoubt/backup"
	"github.com/redoubt/redoubt/backup/peerstore"
	"github.com/redoubt/redoubt/backup/repo"
	"github.com/redoubt/redoubt/backup/target"
	"github.com/redoubt/redoubt/backup/target/peer"
	"github.com/redoubt/redoubt/backup/target/s3"
	"github.com/redoubt/redoubt/ui"
	"github.com/redoubt/redoubt/vault"
	"github.com/redoubt/redoubt/vpn/tailnet"
)

// startBackup builds the backup engine and the store this box keeps for
// teammates' backups, and runs the schedule.
func (b *Box) startBackup(cfg Config) error {
	ps, err := peerstore.New(filepath.Join(cfg.State.Dir, "peer-store"), vaultPeers{b.vault}, b.log.With("room", "backup"))
	if err != nil {
		return err
	}
	b.peers = ps
	b.backup = backup.New(backup.Deps{
		Vault:         b.vault,
		VaultSnapshot: b.vault.Snapshot,
		StateDir:      cfg.State.Dir,
		Extra:         []repo.Item{{Name: "audit.db", Data: b.audit.Copy}},
		AppStores: func(dir string) ([]string, error) {
			if b.apps == nil {
				return nil, nil
			}
			return b.apps.CopyStores(dir)
		},
		Clock:  b.clock,
		Egress: b.egress(),
		PeerDial: func() backup.Dial {
			if n := b.meshNode(); n != nil {
				return n.DialContext
			}
			return nil
		},
		Audit:  b.recorder(),
		Logger: b.log.With("room", "backup"),
		Host: func() string {
			if n := b.setup.BoxName(); n != "" {
				return n
			}
			return "redoubt"
		},
	})
	b.bg.Go(b.backup.Run)
	b.life.Register("backup", sealedBackup{b})
	// Restored from a backup before this start: say so in the (restored) log.
	marker := filepath.Join(cfg.State.Dir, backup.StatusDir, restoredMarker)
	if raw, err := os.ReadFile(marker); err == nil {
		var ev audit.Event
		if json.Unmarshal(raw, &ev) == nil {
			b.record(ev)
		}
		os.Remove(marker)
	}
	return nil
}

// restoredMarker carries a restore's audit record across the restart.
const restoredMarker = "restored-onto-this-box.json"

// vaultPeers keeps the peer store's list in the vault.
type vaultPeers struct{ v *vault.Vault }

const peersBucket, peersKey = "backup-peers", "peers"

func (p vaultPeers) Load() ([]peerstore.Peer, error) {
	raw, err := p.v.Get(peersBucket, peersKey)
	if errors.Is(err, vault.ErrNotFound) || errors.Is(err, vault.ErrLocked) || errors.Is(err, vault.ErrNotInitialized) {
		return nil, nil // none yet, or read again at the unlock
	}
	if err != nil {
		return nil, err
	}
	var out []peerstore.Peer
	return out, json.Unmarshal(raw, &out)
}

func (p vaultPeers) Save(peers []peerstore.Peer) error {
	raw, _ := json.Marshal(peers)
	return p.v.Put(peersBucket, peersKey, raw)
}

// sealedBackup is the backups as a sealed room: their keys are in the vault.
type sealedBackup struct{ b *Box }

func (s sealedBackup) Unlocked() { s.b.backupUnlocked() }
func (s sealedBackup) Locked()   {}

// backupUnlocked: the keys are readable again.
func (b *Box) backupUnlocked() {
	if b.peers != nil {
		if err := b.peers.Reload(); err != nil {
			b.log.Warn("the teammates' backup stores", "err", err)
		}
	}
	if b.backup != nil {
		b.backup.Unlocked()
	}
}

// backupStatus is the backups at a glance.
func (b *Box) backupStatus() *backup.Status {
	if b.backup == nil {
		return nil
	}
	st := b.backup.Status()
	return &st
}

// restoreFresh restores a backup onto this box, which must be fresh (setup
// not finished): the state, the audit log, and the vault under a new
// passphrase. The box restarts afterwards, locked, with the restored
// settings.
func (b *Box) restoreFresh(ctx context.Context, req backup.RestoreRequest) (backup.FreshRestore, error) {
	var out backup.FreshRestore
	if b.setup.Done() {
		return out, errors.New("this box is set up: a restore replaces everything it keeps; erase it first (factory reset)")
	}
	if len(req.Passphrase) < 8 {
		return out, &backup.FieldError{Field: "passphrase", Message: "Choose a passphrase of at least 8 characters for the restored box."}
	}
	key, err := backup.KeyFromInput(req.Key, req.Shares)
	if err != nil {
		field := "shares"
		if strings.TrimSpace(req.Key) != "" {
			field = "key"
		}
		return out, &backup.FieldError{Field: field, Message: err.Error()}
	}
	var st target.Store
	switch {
	case req.S3 != nil:
		if err := req.S3.Validate(); err != nil {
			return out, &backup.FieldError{Field: "s3", Message: err.Error()}
		}
		wctx, cancel := context.WithTimeout(ctx, 20*time.Second)
		err := b.clock.Wait(wctx)
		cancel()
		if err != nil {
			return out, &backup.FieldError{Field: "s3", Message: "The box's clock is not synced through the VPN yet, and S3 needs it: check the VPN is up, and try again in a minute."}
		}
		if st, err = s3.New(*req.S3, b.egress(), b.clock.Now); err != nil {
			return out, &backup.FieldError{Field: "s3", Message: err.Error()}
		}
	case req.Peer != "":
		n := b.meshNode()
		if n == nil {
			return out, &backup.FieldError{Field: "peer", Message: "The team mesh is not up: give the box your Headscale's address and an API key first, so it reaches your teammate's box."}
		}
		if st, err = peer.New(req.Peer, peer.ReadCode(key[:]), n.DialContext); err != nil {
			return out, &backup.FieldError{Field: "peer", Message: err.Error()}
		}
	default:
		return out, &backup.FieldError{Field: "s3", Message: "Say where the backup is: an S3 bucket, or a teammate's box."}
	}
	b.log.Warn("restoring a backup onto this box", "from", st.String())
	out, err = backup.Restore(ctx, st, key, req.Snapshot, b.config().State.Dir)
	if err != nil {
		field := "s3"
		if req.Peer != "" {
			field = "peer"
		}
		if errors.Is(err, repo.ErrWrongKey) {
			field = "key"
			if len(req.Shares) > 0 {
				field = "shares"
			}
		}
		return out, &backup.FieldError{Field: field, Message: err.Error()}
	}
	// The vault: the wizard may have made one already; the restored one
	// replaces it, under the passphrase given now.
	if b.vault.Initialized() {
		if err := b.vault.Wipe(); err != nil {
			return out, fmt.Errorf("replacing this box's vault: %w", err)
		}
	}
	if err := b.vault.RestoreSnapshot([]byte(req.Passphrase), vault.Calibrate(750*time.Millisecond), out.Vault); err != nil {
		return out, fmt.Errorf("restoring the vault: %w", err)
	}
	clear(out.Vault)
	out.Vault = nil
	// The restored audit log takes over at the restart: the record of this
	// restore goes into it then.
	ev := audit.Event{Kind: audit.KindBackup, Action: "restore onto a fresh box", Actor: audit.ActorOwner, Subject: st.String(),
		Detail: fmt.Sprintf("snapshot %s of %s (%s), %d files", out.Snapshot.ID, out.Snapshot.Host, out.Snapshot.Time.Format(time.RFC3339), out.Files)}
	if raw, err := json.Marshal(ev); err == nil {
		os.WriteFile(filepath.Join(b.config().State.Dir, backup.StatusDir, restoredMarker), raw, 0o600)
	}
	b.log.Warn("restored: restarting with the restored state", "snapshot", out.Snapshot.ID, "files", out.Files)
	go func() {
		time.Sleep(500 * time.Millisecond) // the answer leaves first
		select {
		case b.restart <- struct{}{}:
		default:
		}
	}()
	return out, nil
}

// restoreAPI serves POST /v1/restore on the local API.
func (b *Box) restoreAPI() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var req backup.RestoreRequest
		if err := json.NewDecoder(io.LimitReader(r.Body, 64<<10)).Decode(&req); err != nil {
			http.Error(w, `{"error":"the request does not read"}`, http.StatusBadRequest)
			return
		}
		ctx, cancel := context.WithTimeout(r.Context(), 2*time.Hour)
		defer cancel()
		res, err := b.restoreFresh(ctx, req)
		w.Header().Set("Content-Type", "application/json")
		if err != nil {
			var fe *backup.FieldError
			status := http.StatusInternalServerError
			if errors.As(err, &fe) || strings.Contains(err.Error(), "set up") {
				status = http.StatusBadRequest
			}
			w.WriteHeader(status)
			json.NewEncoder(w).Encode(map[string]string{"error": err.Error()})
			return
		}
		json.NewEncoder(w).Encode(res)
	})
}

// ownerBackups is the backups as the owner's pages see them.
type ownerBackups struct {
	*backup.Engine
	b *Box
}

func (o ownerBackups) Kept() []peerstore.PeerStatus { return o.b.peers.Peers() }

func (o ownerBackups) Keep(name string, quota int64) (string, error) {
	code, err := o.b.peers.Add(name, quota)
	if err == nil {
		o.b.owner(audit.KindBackup, "keep a teammate's backups", name, fmt.Sprintf("quota %d bytes", quota))
	}
	return code, err
}

func (o ownerBackups) Unkeep(name string) error {
	err := o.b.peers.Remove(name)
	if err == nil {
		o.b.owner(audit.KindBackup, "remove a teammate's backups", name, "")
	}
	return err
}

// Members are the team's members, for splitting the recovery key.
func (o ownerBackups) Members() []string {
	if o.b.mesh == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ms, err := o.b.mesh.Members().Members(ctx)
	if err != nil {
		return nil
	}
	var out []string
	for _, m := range ms {
		out = append(out, m.Name)
	}
	return out
}

func (o ownerBackups) RestoreFresh(ctx context.Context, req backup.RestoreRequest) (backup.FreshRestore, error) {
	return o.b.restoreFresh(ctx, req)
}

// uiBackups is nil on a box without backups (an interface holding a nil
// pointer would not be).
func (b *Box) uiBackups() ui.Backups {
	if b.backup == nil {
		return nil
	}
	return ownerBackups{b.backup, b}
}

// homeInfo is the members' page's: the log, and members' shares.
func (b *Box) homeInfo() home.Info {
	info := home.Info{BoxName: b.teamBoxName, Apps: b.membersApps}
	if b.audit != nil {
		info.Audit = b.audit.Handler(home.Member)
	}
	if b.backup != nil {
		info.Share = func(m string) (home.Share, bool) {
			sh, ok, err := b.backup.ShareFor(m)
			if err != nil || !ok {
				return home.Share{}, false
			}
			return home.Share{Share: sh.Share, Number: sh.Number, K: sh.K, N: sh.N, Set: sh.Set, Saved: sh.Saved}, true
		}
		info.ShareSaved = b.backup.ShareSaved
	}
	return info
}

// peersServer serves the stores kept for teammates' backups on the box's
// tailnet node.
type peersServer struct {
	mu  sync.Mutex
	srv *http.Server
}

// servePeers serves the teammates' stores on the node's tcp/8443, or stops
// (nil: the node stopped).
func (b *Box) servePeers(n *tailnet.Node) {
	ps := &b.peersSrv
	ps.mu.Lock()
	defer ps.mu.Unlock()
	if ps.srv != nil {
		ps.srv.Close()
		ps.srv = nil
	}
	if n == nil || b.peers == nil {
		return
	}
	ln, err := n.Listen("tcp", fmt.Sprintf(":%d", peer.Port))
	if err != nil {
		b.log.Warn("the teammates' backup stores are not served", "err", err)
		return
	}
	srv := ui.Server(b.peers.Handler(), b.log.With("room", "backup"))
	srv.WriteTimeout, srv.ReadTimeout = 10*time.Minute, 10*time.Minute
	ps.srv = srv
	go srv.Serve(ln)
}
