package members

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"regexp"
	"strings"
	"time"

	"github.com/redoubt/redoubt/audit"
	"github.com/redoubt/redoubt/vault"
)

// Where the members' records live in the vault: bucket "members", keys
// "member/<name>", "pending/<auth id>", "policy", "rejected", "audit".
const (
	bucket      = "members"
	policyKey   = "policy"
	rejectedKey = "rejected"
	auditKey    = "audit"
)

func recordKey(name string) string { return "member/" + name }
func pendingKey(id string) string  { return "pending/" + id }

// record is what the box keeps about a member.
type record struct {
	Name    string    `json:"name"`
	Note    string    `json:"note,omitempty"`
	Created time.Time `json:"created"`
	UserID  uint64    `json:"user_id"` // Headscale's user id
}

func (m *Manager) getJSON(key string, v any) error {
	b, err := m.deps.Store.Get(bucket, key)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("reading the members' %s from the vault: %w", key, err)
	}
	return nil
}

func (m *Manager) putJSON(key string, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return m.deps.Store.Put(bucket, key, b)
}

// records returns every member record, by name.
func (m *Manager) records() ([]record, error) {
	keys, err := m.deps.Store.List(bucket)
	if err != nil {
		return nil, fmt.Errorf("reading the members: %w", err)
	}
	var out []record
	for _, k := range keys {
		if !strings.HasPrefix(k, "member/") {
			continue
		}
		var r record
		if err := m.getJSON(k, &r); err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, nil
}

func (m *Manager) getRecord(name string) (record, error) {
	var r record
	err := m.getJSON(recordKey(name), &r)
	if errors.Is(err, vault.ErrNotFound) {
		return r, fmt.Errorf("member %q: %w", name, ErrNoMember)
	}
	return r, err
}

func (m *Manager) putRecord(r record) error { return m.putJSON(recordKey(r.Name), r) }

// pending lists the waiting requests, dropping those Headscale forgot.
func (m *Manager) pending() ([]Pending, error) {
	keys, err := m.deps.Store.List(bucket)
	if err != nil {
		return nil, fmt.Errorf("reading the waiting devices: %w", err)
	}
	out := []Pending{}
	for _, k := range keys {
		if !strings.HasPrefix(k, "pending/") {
			continue
		}
		var p Pending
		if err := m.getJSON(k, &p); err != nil {
			return nil, err
		}
		if m.now().Sub(p.Requested) > PendingFor {
			m.deps.Store.Delete(bucket, k)
			continue
		}
		out = append(out, p)
	}
	sortPending(out)
	return out, nil
}

func sortPending(ps []Pending) {
	for i := 1; i < len(ps); i++ {
		for j := i; j > 0 && ps[j].Requested.Before(ps[j-1].Requested); j-- {
			ps[j], ps[j-1] = ps[j-1], ps[j]
		}
	}
}

func (m *Manager) getPending(id string) (Pending, error) {
	var p Pending
	if !authIDPattern.MatchString(id) {
		return p, fmt.Errorf("device request %q: %w", id, ErrNoRequest)
	}
	err := m.getJSON(pendingKey(id), &p)
	if errors.Is(err, vault.ErrNotFound) || (err == nil && m.now().Sub(p.Requested) > PendingFor) {
		return Pending{}, fmt.Errorf("device request %s: %w", id, ErrNoRequest)
	}
	return p, err
}

// rejected are refused requests and when, kept for PendingFor.
type rejected map[string]time.Time

func (m *Manager) loadRejected() rejected {
	r := rejected{}
	if err := m.getJSON(rejectedKey, &r); err != nil {
		return rejected{}
	}
	for id, t := range r {
		if m.now().Sub(t) > PendingFor {
			delete(r, id)
		}
	}
	return r
}

func (m *Manager) isRejected(id string) bool { _, ok := m.loadRejected()[id]; return ok }

func (m *Manager) addRejected(id string) error {
	r := m.loadRejected()
	r[id] = m.now().UTC()
	return m.putJSON(rejectedKey, r)
}

// authIDPattern is Headscale v0.29's auth ID: a prefix and 24 URL-safe
// characters.
var authIDPattern = regexp.MustCompile(`^hskey-authreq-[A-Za-z0-9_-]{24}$`)

// parseAuthLink takes the link a device showed, or its code, and returns the
// auth ID. A link must point at the login server.
func parseAuthLink(link, loginServer string) (string, error) {
	link = strings.TrimSpace(link)
	if authIDPattern.MatchString(link) {
		return link, nil
	}
	u, err := url.Parse(link)
	if err != nil || u.Scheme == "" {
		return "", fmt.Errorf("%.80q: %w: paste the link the device's Tailscale app opened (…/register/hskey-authreq-…) or the code in it", link, ErrBadRequest)
	}
	ls, err := url.Parse(loginServer)
	if err != nil {
		return "", err
	}
	if !strings.EqualFold(u.Host, ls.Host) {
		return "", fmt.Errorf("%.80q: %w: the link points at %s, not at the team's coordination server %s", link, ErrBadRequest, u.Host, ls.Host)
	}
	id, ok := strings.CutPrefix(strings.TrimPrefix(u.Path, strings.TrimSuffix(ls.Path, "/")), "/register/")
	if !ok || !authIDPattern.MatchString(id) {
		return "", fmt.Errorf("%.80q: %w: want …/register/hskey-authreq- and 24 letters, digits, - or _", link, ErrBadRequest)
	}
	return id, nil
}

// loadAudit reads the trail from the vault once.
func (m *Manager) loadAudit() {
	if m.auditLoaded {
		return
	}
	var evs []Event
	if err := m.getJSON(auditKey, &evs); err != nil {
		if !errors.Is(err, vault.ErrNotFound) {
			m.log.Warn("reading the members' audit trail", "err", err)
			return // try again next time (the vault may be locked)
		}
	}
	m.audit = append(evs, m.audit...)
	m.auditLoaded = true
}

// record appends an event to the trail and keeps it in the vault.
func (m *Manager) record(ctx context.Context, action, member, detail string) {
	ev := Event{Time: m.now().UTC(), Actor: actorOf(ctx), Action: action, Member: member, Detail: detail}
	if m.deps.Audit != nil {
		m.deps.Audit.Record(audit.Event{Kind: audit.KindMember, Action: action, Actor: ev.Actor, Subject: member, Detail: detail})
	}
	m.loadAudit()
	m.audit = append(m.audit, ev)
	if over := len(m.audit) - m.cfg.AuditLimit; over > 0 {
		m.audit = append([]Event(nil), m.audit[over:]...)
	}
	if !m.auditLoaded {
		return // kept in memory until the vault can be read
	}
	if err := m.putJSON(auditKey, m.audit); err != nil {
		m.log.Warn("keeping the members' audit trail", "err", err)
	}
	m.log.Info("team change", "actor", ev.Actor, "action", action, "member", member, "detail", detail)
}
