package daemon

import (
	"context"
	"fmt"
	"maps"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/redoubt/redoubt/audit"
	"github.com/redoubt/redoubt/audit/auditlog"
	"github.com/redoubt/redoubt/clock"
	"github.com/redoubt/redoubt/internal/version"
	"github.com/redoubt/redoubt/ui"
	"github.com/redoubt/redoubt/ui/localapi"
	"github.com/redoubt/redoubt/vault"
	"github.com/redoubt/redoubt/vpn/wgconfig"
)

// background runs the daemon's own loops (the clock, the daily digest) until
// Close.
type background struct {
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

func (bg *background) Go(f func(ctx context.Context)) {
	bg.wg.Add(1)
	go func() { defer bg.wg.Done(); f(bg.ctx) }()
}

func (bg *background) stop() {
	bg.cancel()
	bg.wg.Wait()
}

// startClockAndAudit builds the box's clock (NTP through the VPN) and opens the
// audit log, recording the start with the running binary's hash.
func (b *Box) startClockAndAudit(cfg Config) error {
	c, err := clock.New(cfg.Clock, clock.Deps{Dialer: b.egress(), Logger: b.log.With("room", "clock"), SetSystemTime: setSystemTime})
	if err != nil {
		return err
	}
	b.clock = c
	b.bg.Go(c.Run)
	l, err := auditlog.Open(filepath.Join(cfg.State.Dir, "audit"), auditlog.Deps{Vault: b.vault, Clock: c, Logger: b.log.With("room", "audit")})
	if err != nil {
		return err
	}
	b.audit = l
	b.life.Register("audit", sealedAudit{b})
	info := version.Get()
	hash, err := version.BinaryHash()
	if err != nil {
		b.log.Warn("the start's audit record has no binary hash", "err", err)
		hash = "unknown"
	}
	b.record(audit.Event{Kind: audit.KindStart, Action: "start", Actor: audit.ActorBox, Subject: info.Version,
		Detail: fmt.Sprintf("sha256 %s; commit %s; %s %s/%s", hash, info.Commit, info.Go, info.OS, info.Arch)})
	b.bg.Go(b.egressDigests)
	return nil
}

// record adds an event to the audit log.
func (b *Box) record(e audit.Event) {
	if b.audit != nil {
		b.audit.Record(e)
	}
}

// recorder is what rooms are given to record into the audit log.
func (b *Box) recorder() audit.Recorder { return audit.RecorderFunc(b.record) }

// owner records something the owner did.
func (b *Box) owner(kind audit.Kind, action, subject, detail string) {
	b.record(audit.Event{Kind: kind, Action: action, Actor: audit.ActorOwner, Subject: subject, Detail: detail})
}

// egressDigests records, once a day, what the box stopped since the last
// digest: counts only (what the laptop tried to reach is the owner's).
func (b *Box) egressDigests(ctx context.Context) {
	var lastLeaks map[string]uint64
	var lastQueries map[string]uint64
	var lastTotal, lastQ uint64
	for {
		// The next midnight by the box's clock, once it is synced.
		if err := b.clock.Wait(ctx); err != nil {
			return
		}
		now := b.clock.Now().UTC()
		next := time.Date(now.Year(), now.Month(), now.Day()+1, 0, 0, 0, 0, time.UTC)
		t := time.NewTimer(next.Sub(now))
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		lc := b.leaks.Counters()
		qc := b.queries.Counters()
		b.record(audit.Event{Kind: audit.KindEgress, Action: "daily digest", Actor: audit.ActorBox,
			Subject: now.Format(time.DateOnly), Detail: digest(lc.Total-lastTotal, delta(lc.ByKind, lastLeaks), qc.Queries-lastQ, delta(qc.ByAnswer, lastQueries))})
		lastLeaks, lastQueries, lastTotal, lastQ = maps.Clone(lc.ByKind), maps.Clone(qc.ByAnswer), lc.Total, qc.Queries
	}
}

func delta(now, before map[string]uint64) map[string]uint64 {
	out := map[string]uint64{}
	for k, v := range now {
		if d := v - before[k]; d > 0 && v >= before[k] {
			out[k] = d
		}
	}
	return out
}

// digest writes the day's counts in one line.
func digest(frames uint64, byKind map[string]uint64, queries uint64, byAnswer map[string]uint64) string {
	part := func(m map[string]uint64) string {
		var s []string
		for _, k := range slices.Sorted(maps.Keys(m)) {
			s = append(s, fmt.Sprintf("%s %d", k, m[k]))
		}
		if len(s) == 0 {
			return "none"
		}
		return strings.Join(s, ", ")
	}
	return fmt.Sprintf("stopped %d frames from the LAN (%s); answered %d DNS queries (%s)", frames, part(byKind), queries, part(byAnswer))
}

// auditVault is the vault as the owner's pages use it, recording what the
// owner does with it.
type auditVault struct {
	ui.Vault
	b *Box
}

func (v auditVault) Init(passphrase []byte, p vault.Params) error {
	err := v.Vault.Init(passphrase, p)
	if err == nil {
		v.b.owner(audit.KindAdmin, "set the owner's passphrase", "", "setup")
	}
	return err
}

func (v auditVault) Unlock(passphrase []byte) error {
	err := v.Vault.Unlock(passphrase)
	if err != nil {
		v.b.record(audit.Event{Kind: audit.KindLock, Action: "unlock refused", Actor: audit.ActorOwner, Detail: err.Error()})
	}
	return err
}

func (v auditVault) ChangePassphrase(old, next []byte, p vault.Params) error {
	err := v.Vault.ChangePassphrase(old, next, p)
	if err == nil {
		v.b.owner(audit.KindAdmin, "change the owner's passphrase", "", "")
	}
	return err
}

// auditVPN is the console's VPN control, recording changes.
type auditVPN struct {
	localapi.VPN
	b *Box
}

func (v auditVPN) Set(text []byte) (*wgconfig.Config, error) {
	c, err := v.VPN.Set(text)
	if err == nil {
		v.b.owner(audit.KindVPN, "set the VPN", vpnEndpoint(c), "from the console")
	}
	return c, err
}

func (v auditVPN) Clear() error {
	err := v.VPN.Clear()
	if err == nil {
		v.b.owner(audit.KindVPN, "remove the VPN", "", "from the console")
	}
	return err
}

func vpnEndpoint(c *wgconfig.Config) string {
	if c == nil {
		return ""
	}
	return c.Peer.Endpoint.String()
}

func (b *Box) clockStatus() *clock.Status {
	if b.clock == nil {
		return nil
	}
	st := b.clock.Status()
	return &st
}

func (b *Box) auditStatus() *auditlog.Status {
	if b.audit == nil {
		return nil
	}
	st := b.audit.Status()
	return &st
}

// sealedAudit is the audit log as a sealed room: its keys are in the vault.
type sealedAudit struct{ b *Box }

func (s sealedAudit) Unlocked() {
	if err := s.b.audit.Unlocked(); err != nil {
		s.b.log.Error("the audit log cannot sign", "err", err)
	}
}

func (s sealedAudit) Locked() { s.b.audit.Locked() }

// trimAction keeps an action within what a record holds.
func trimAction(s string) string {
	if len(s) > audit.MaxAction {
		return s[:audit.MaxAction]
	}
	return s
}
