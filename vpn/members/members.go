// Package members is the team's membership, as the box's owner manages it:
// adding a member (a Headscale user and a single-use, short-lived pre-auth key,
// handed over as an enrollment bundle), re-issuing a member's key, renaming and
// removing members (their devices expired and deleted, their keys and user
// deleted, their app sessions ended through a hook), approving or rejecting
// devices that registered interactively (phones), the tailnet's policy (who
// reaches whom), the coordination server's status, and an audit trail of every
// change.
//
// It talks to Headscale through vpn/headscale (the daemon builds that client
// over the VPN's egress) and keeps its own records — members, policy choices,
// pending devices, the audit trail — in the sealed vault. Headscale stays the
// authority on users, keys and devices; the box's records say which users are
// its members and what the owner noted about them.
//
// Only the daemon imports this package (and the UI and local API, for its
// types).
package members

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/redoubt/redoubt/vault"
	"github.com/redoubt/redoubt/vpn/headscale"
)

// Member is a member of the team, with the devices Headscale knows for them.
type Member struct {
	// ID is the member's stable identifier on this box: it survives a rename
	// and is never given to another member (apps key their data by it).
	ID      string
	Name    string
	Note    string
	Created time.Time
	Devices []Device
	// Problem is set when the member's Headscale user is gone (deleted on the
	// server by hand): Remove cleans up the box's record.
	Problem string
}

// Device is one of a member's devices in the tailnet.
type Device struct {
	ID       string // Headscale's node id
	Name     string // its name in the tailnet (MagicDNS)
	Addrs    []netip.Addr
	Online   bool
	LastSeen time.Time
	// OS comes from the tailnet's peer list (Deps.DeviceOS): Headscale's API
	// does not carry it. "" when unknown.
	OS string
	// Hostname is what the device calls itself.
	Hostname string
}

// Pending is a device that started an interactive registration (a phone's
// Tailscale app) and waits for the owner.
type Pending struct {
	// ID is Headscale's auth ID, "hskey-authreq-…": the end of the link the
	// device showed.
	ID string
	// Name is what the owner (or the member) called the device when adding
	// the request; Headscale shows nothing about a device before it is
	// registered.
	Name string
	// OS is unknown until the device is registered (kept for the UI's shape).
	OS        string
	Requested time.Time
}

// Event is one change to the team, for the audit log.
type Event struct {
	Time   time.Time
	Actor  string // who: "owner" unless the caller said otherwise (WithActor)
	Action string // what: "add member", "remove member", …
	Member string
	Detail string
}

// Status is the coordination server as the box last saw it.
type Status struct {
	// Configured is false until the box has Headscale's URL and an API key.
	Configured bool
	Reachable  bool
	// Detail says what is wrong, in plain words, or what the box checked.
	Detail string
	// KeyRejected: Headscale answered but refused the API key.
	KeyRejected      bool
	LastOK, LastTry  time.Time
	NextTry          time.Time
	ConsecutiveFails int
}

// Errors callers tell apart.
var (
	ErrExists     = errors.New("already exists")
	ErrNoMember   = errors.New("no such member")
	ErrNoRequest  = errors.New("no such device request")
	ErrNotReady   = errors.New("the team mesh is not set up: give the box its Headscale URL and an API key")
	ErrBadRequest = errors.New("not a device's registration link or code")
)

// Headscale is the part of Headscale's API the members need
// (*headscale.Client).
type Headscale interface {
	Health(ctx context.Context) error
	ListUsers(ctx context.Context) ([]headscale.User, error)
	CreateUser(ctx context.Context, name, displayName string) (headscale.User, error)
	RenameUser(ctx context.Context, id uint64, newName string) (headscale.User, error)
	DeleteUser(ctx context.Context, id uint64) error
	CreatePreAuthKey(ctx context.Context, r headscale.KeyRequest) (headscale.PreAuthKey, error)
	ListPreAuthKeys(ctx context.Context) ([]headscale.PreAuthKey, error)
	ExpirePreAuthKey(ctx context.Context, id uint64) error
	DeletePreAuthKey(ctx context.Context, id uint64) error
	ListNodes(ctx context.Context, user string) ([]headscale.Node, error)
	ExpireNode(ctx context.Context, id uint64) (headscale.Node, error)
	DeleteNode(ctx context.Context, id uint64) error
	RegisterNode(ctx context.Context, user, authID string) (headscale.Node, error)
	RejectAuth(ctx context.Context, authID string) error
	SetPolicy(ctx context.Context, text string) (headscale.Policy, error)
	CheckPolicy(ctx context.Context, text string) error
}

// Config is the members' configuration.
type Config struct {
	// LoginServer is the coordination server's URL as clients use it
	// (Headscale's server_url), https.
	LoginServer string
	// BoxName is the box's name, shown in the enrollment scripts and the
	// policy's header.
	BoxName string
	// KeyLifetime is how long a new member's key works if unused (default
	// 24h; 10 minutes to 7 days). Keys work once either way.
	KeyLifetime time.Duration
	// AuditLimit is how many events the audit trail keeps (default 1000).
	AuditLimit int
}

// Defaults.
const (
	DefaultKeyLifetime = 24 * time.Hour
	DefaultAuditLimit  = 1000
	// BoxKeyLifetime is how long the box's own node key works if unused.
	BoxKeyLifetime = time.Hour
	// PendingFor is how long Headscale (v0.29, tuning.register_cache_expiration)
	// keeps an interactive registration waiting.
	PendingFor = 15 * time.Minute
	// MaxNoteLen bounds a member's note.
	MaxNoteLen = 200
)

// Validate names the bad field.
func (c Config) Validate() error {
	if c.LoginServer == "" {
		return errors.New("members: the login server (Headscale's URL) is not set")
	}
	if err := checkLoginServer("members: the login server", c.LoginServer); err != nil {
		return err
	}
	if c.KeyLifetime != 0 && (c.KeyLifetime < 10*time.Minute || c.KeyLifetime > 7*24*time.Hour) {
		return fmt.Errorf("members: key lifetime %v: want 10m to 168h", c.KeyLifetime)
	}
	if c.AuditLimit < 0 || c.AuditLimit > 100000 {
		return fmt.Errorf("members: audit limit %d: want 0 (the default, %d) to 100000", c.AuditLimit, DefaultAuditLimit)
	}
	return nil
}

func (c Config) withDefaults() Config {
	if c.KeyLifetime == 0 {
		c.KeyLifetime = DefaultKeyLifetime
	}
	if c.AuditLimit == 0 {
		c.AuditLimit = DefaultAuditLimit
	}
	return c
}

// Deps are what the members need from the rest of the box.
type Deps struct {
	// Headscale is the API client (nil until the owner gives the key:
	// SetHeadscale later).
	Headscale Headscale
	// Store is the sealed vault, for the box's records.
	Store  vault.Store
	Logger *slog.Logger
	// Now returns the time (default time.Now).
	Now func() time.Time
	// CACert returns the box's CA certificate (PEM), which the scripts install.
	CACert func() ([]byte, error)
	// AppsURL returns the URL of the box's apps page on the tailnet ("":
	// the scripts open nothing).
	AppsURL func() string
	// OnRemoved is called after a member is removed, with the member and the
	// devices they had: the box ends their app sessions. Optional.
	OnRemoved func(Member)
	// DeviceOS returns a device's operating system by its node key
	// ("nodekey:…") from the box's tailnet peer list. Optional.
	DeviceOS func(nodeKey string) string

	timing *timing // tests
}

// timing is the status checks' schedule.
type timing struct {
	every      time.Duration // between checks while all is well
	retryFirst time.Duration // the first retry after a failure; doubles
	retryMax   time.Duration
	// expireGrace is how long Remove leaves between expiring a member's
	// devices and deleting them.
	expireGrace time.Duration
}

func defaultTiming() timing {
	return timing{every: 30 * time.Second, retryFirst: 2 * time.Second, retryMax: 2 * time.Minute, expireGrace: 1500 * time.Millisecond}
}

// Manager manages the team's members.
type Manager struct {
	log  *slog.Logger
	deps Deps
	now  func() time.Time
	tm   timing

	mu  sync.Mutex // one change at a time; guards cfg, hs, audit
	cfg Config
	hs  Headscale
	// audit is the trail in memory, loaded from the vault on first use.
	audit       []Event
	auditLoaded bool

	st     statusState
	wake   chan struct{}
	cancel context.CancelFunc
	done   chan struct{}
}

// New makes a Manager. cfg may be the zero Config while the mesh is not set up
// (every change then fails with ErrNotReady); Reconfig sets it later.
func New(cfg Config, deps Deps) (*Manager, error) {
	if cfg != (Config{}) {
		if err := cfg.Validate(); err != nil {
			return nil, err
		}
	}
	if deps.Store == nil {
		return nil, errors.New("members: a vault is required")
	}
	if deps.Logger == nil {
		deps.Logger = slog.New(slog.DiscardHandler)
	}
	if deps.Now == nil {
		deps.Now = time.Now
	}
	if deps.CACert == nil {
		return nil, errors.New("members: the box's CA certificate (Deps.CACert) is required")
	}
	tm := defaultTiming()
	if deps.timing != nil {
		tm = *deps.timing
	}
	m := &Manager{log: deps.Logger, deps: deps, now: deps.Now, tm: tm, cfg: cfg.withDefaults(), hs: deps.Headscale,
		wake: make(chan struct{}, 1)}
	m.st.Configured = deps.Headscale != nil
	if !m.st.Configured {
		m.st.Detail = ErrNotReady.Error()
	}
	return m, nil
}

// Reconfig applies a new configuration whole.
func (m *Manager) Reconfig(cfg Config) error {
	if err := cfg.Validate(); err != nil {
		return err
	}
	m.mu.Lock()
	m.cfg = cfg.withDefaults()
	m.mu.Unlock()
	return nil
}

// SetHeadscale replaces the API client (a new URL or API key); nil: the mesh
// is not set up. The status is checked again at once.
func (m *Manager) SetHeadscale(h Headscale) {
	m.mu.Lock()
	m.hs = h
	m.mu.Unlock()
	m.resetStatus(h != nil)
	m.poke()
}

// actorKey carries who makes a change.
type actorKey struct{}

// WithActor says who makes the changes done with ctx, for the audit trail
// (default "owner").
func WithActor(ctx context.Context, actor string) context.Context {
	return context.WithValue(ctx, actorKey{}, actor)
}

func actorOf(ctx context.Context) string {
	if a, ok := ctx.Value(actorKey{}).(string); ok && a != "" {
		return a
	}
	return "owner"
}

// client returns the Headscale client and config, or ErrNotReady.
func (m *Manager) client() (Headscale, Config, error) {
	if m.hs == nil || m.cfg.LoginServer == "" {
		return nil, m.cfg, ErrNotReady
	}
	return m.hs, m.cfg, nil
}

// observe feeds an API call's outcome to the status.
func (m *Manager) observe(err error) error {
	switch {
	case err == nil:
		m.statusOK("")
	case errors.Is(err, headscale.ErrUnauthorized), errors.Is(err, headscale.ErrUnreachable):
		m.statusFailed(err)
	}
	return err
}

// Members returns the members with their devices, by name.
func (m *Manager) Members(ctx context.Context) ([]Member, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	hs, _, err := m.client()
	if err != nil {
		return nil, err
	}
	recs, err := m.records()
	if err != nil {
		return nil, err
	}
	users, err := hs.ListUsers(ctx)
	if m.observe(err) != nil {
		return nil, fmt.Errorf("listing members: %w", err)
	}
	nodes, err := hs.ListNodes(ctx, "")
	if m.observe(err) != nil {
		return nil, fmt.Errorf("listing members' devices: %w", err)
	}
	byID := map[uint64]headscale.User{}
	for _, u := range users {
		byID[u.ID] = u
	}
	out := make([]Member, 0, len(recs))
	for _, r := range recs {
		mem := Member{ID: r.id(), Name: r.Name, Note: r.Note, Created: r.Created}
		u, ok := byID[r.UserID]
		if !ok {
			mem.Problem = "not found on the coordination server (deleted there?): remove the member, or remove and add again"
		} else if u.Name != r.Name {
			mem.Problem = fmt.Sprintf("renamed to %q on the coordination server by hand", u.Name)
		}
		for _, n := range nodes {
			if ok && n.User.ID == u.ID && len(n.Tags) == 0 {
				mem.Devices = append(mem.Devices, m.device(n))
			}
		}
		out = append(out, mem)
	}
	return out, nil
}

func (m *Manager) device(n headscale.Node) Device {
	d := Device{ID: strconv.FormatUint(n.ID, 10), Name: n.GivenName, Hostname: n.Hostname, Addrs: n.Addrs,
		Online: n.Online, LastSeen: n.LastSeen}
	if d.Name == "" {
		d.Name = n.Hostname
	}
	if m.deps.DeviceOS != nil && n.NodeKey != "" {
		d.OS = m.deps.DeviceOS(n.NodeKey)
	}
	return d
}

// Add makes name a member: a Headscale user, the policy updated to let it
// reach the box, and a single-use pre-auth key valid for KeyLifetime, in the
// enrollment bundle. Any failure undoes what was done.
func (m *Manager) Add(ctx context.Context, name, note string) (Bundle, error) {
	if err := ValidateName(name); err != nil {
		return Bundle{}, err
	}
	note, err := cleanNote(note)
	if err != nil {
		return Bundle{}, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	hs, cfg, err := m.client()
	if err != nil {
		return Bundle{}, err
	}
	recs, err := m.records()
	if err != nil {
		return Bundle{}, err
	}
	if findRecord(recs, name) != nil {
		return Bundle{}, fmt.Errorf("member %q: %w", name, ErrExists)
	}
	users, err := hs.ListUsers(ctx)
	if m.observe(err) != nil {
		return Bundle{}, fmt.Errorf("adding member %q: %w", name, err)
	}
	for _, u := range users {
		if u.Name == name {
			return Bundle{}, fmt.Errorf("adding member %q: the coordination server already has a user called that, which this box did not add: %w", name, ErrExists)
		}
	}
	in, err := m.scriptBase(cfg, name)
	if err != nil {
		return Bundle{}, fmt.Errorf("adding member %q: %w", name, err)
	}
	u, err := hs.CreateUser(ctx, name, "")
	if m.observe(err) != nil {
		return Bundle{}, fmt.Errorf("adding member %q: %w", name, err)
	}
	undoUser := func() {
		uctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 15*time.Second)
		defer cancel()
		if err := hs.DeleteUser(uctx, u.ID); err != nil {
			m.log.Warn("undoing a member's user after a failed add", "member", name, "err", err)
		}
	}
	if err := m.applyPolicy(ctx, hs, cfg, append(names(recs), name)); err != nil {
		undoUser()
		return Bundle{}, fmt.Errorf("adding member %q: %w", name, err)
	}
	key, err := m.newKey(ctx, hs, cfg, u.ID)
	if err != nil {
		m.applyPolicy(context.WithoutCancel(ctx), hs, cfg, names(recs))
		undoUser()
		return Bundle{}, fmt.Errorf("adding member %q: %w", name, err)
	}
	rec := record{Name: name, Note: note, Created: m.now().UTC(), UserID: u.ID}
	if err := m.putRecord(rec); err != nil {
		m.revokeKeys(context.WithoutCancel(ctx), hs, u.ID)
		m.applyPolicy(context.WithoutCancel(ctx), hs, cfg, names(recs))
		undoUser()
		return Bundle{}, fmt.Errorf("adding member %q: keeping the record: %w", name, err)
	}
	in.Key, in.Expires = key.Key, key.Expiration
	b, err := makeBundle(in)
	if err != nil {
		return Bundle{}, fmt.Errorf("adding member %q: %w", name, err)
	}
	detail := "key valid until " + key.Expiration.UTC().Format(time.RFC3339)
	if note != "" {
		detail += "; note: " + note
	}
	m.record(ctx, "add member", name, detail)
	m.log.Info("member added", "member", name, "key_expires", key.Expiration)
	return b, nil
}

// Reissue revokes name's unused keys, then makes a new one and its bundle:
// for a lost bundle, an expired key, or another device.
func (m *Manager) Reissue(ctx context.Context, name string) (Bundle, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	hs, cfg, err := m.client()
	if err != nil {
		return Bundle{}, err
	}
	rec, err := m.getRecord(name)
	if err != nil {
		return Bundle{}, err
	}
	in, err := m.scriptBase(cfg, name)
	if err != nil {
		return Bundle{}, fmt.Errorf("re-issuing %q's key: %w", name, err)
	}
	revoked, err := m.revokeKeys(ctx, hs, rec.UserID)
	if err != nil {
		return Bundle{}, fmt.Errorf("re-issuing %q's key: %w", name, err)
	}
	key, err := m.newKey(ctx, hs, cfg, rec.UserID)
	if err != nil {
		return Bundle{}, fmt.Errorf("re-issuing %q's key: %w", name, err)
	}
	in.Key, in.Expires = key.Key, key.Expiration
	b, err := makeBundle(in)
	if err != nil {
		return Bundle{}, err
	}
	m.record(ctx, "reissue key", name, fmt.Sprintf("%d unused key(s) revoked; new key valid until %s", revoked, key.Expiration.UTC().Format(time.RFC3339)))
	return b, nil
}

// Rename renames a member, in Headscale and in the policy.
func (m *Manager) Rename(ctx context.Context, old, new string) error {
	if err := ValidateName(new); err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	hs, cfg, err := m.client()
	if err != nil {
		return err
	}
	recs, err := m.records()
	if err != nil {
		return err
	}
	rec := findRecord(recs, old)
	if rec == nil {
		return fmt.Errorf("member %q: %w", old, ErrNoMember)
	}
	if old == new {
		return nil
	}
	if findRecord(recs, new) != nil {
		return fmt.Errorf("renaming %q: member %q: %w", old, new, ErrExists)
	}
	if _, err := hs.RenameUser(ctx, rec.UserID, new); m.observe(err) != nil {
		return fmt.Errorf("renaming member %q: %w", old, err)
	}
	after := slices.DeleteFunc(names(recs), func(s string) bool { return s == old })
	if err := m.applyPolicy(ctx, hs, cfg, append(after, new)); err != nil {
		if _, uerr := hs.RenameUser(context.WithoutCancel(ctx), rec.UserID, old); uerr != nil {
			m.log.Warn("undoing a rename", "member", old, "err", uerr)
		}
		return fmt.Errorf("renaming member %q: %w", old, err)
	}
	nrec := *rec
	nrec.Name = new
	if err := m.putRecord(nrec); err != nil {
		return fmt.Errorf("renaming member %q: keeping the record: %w", old, err)
	}
	if err := m.deps.Store.Delete(bucket, recordKey(old)); err != nil {
		return fmt.Errorf("renaming member %q: %w", old, err)
	}
	m.record(ctx, "rename member", new, "was "+old)
	return nil
}

// Remove takes a member out of the team: the policy stops letting them reach
// anything first, then their devices are expired and deleted, their keys
// expired, their user deleted, and OnRemoved ends their app sessions.
func (m *Manager) Remove(ctx context.Context, name string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	hs, cfg, err := m.client()
	if err != nil {
		return err
	}
	recs, err := m.records()
	if err != nil {
		return err
	}
	rec := findRecord(recs, name)
	if rec == nil {
		return fmt.Errorf("member %q: %w", name, ErrNoMember)
	}
	rest := slices.DeleteFunc(names(recs), func(s string) bool { return s == name })
	if err := m.applyPolicy(ctx, hs, cfg, rest); err != nil {
		return fmt.Errorf("removing member %q: %w", name, err)
	}
	gone := Member{ID: rec.id(), Name: rec.Name, Note: rec.Note, Created: rec.Created}
	nodes, err := hs.ListNodes(ctx, "")
	if m.observe(err) != nil {
		return fmt.Errorf("removing member %q: %w", name, err)
	}
	var ids []uint64
	for _, n := range nodes {
		if n.User.ID != rec.UserID || len(n.Tags) > 0 {
			continue
		}
		gone.Devices = append(gone.Devices, m.device(n))
		ids = append(ids, n.ID)
		if _, err := hs.ExpireNode(ctx, n.ID); err != nil && !errors.Is(err, headscale.ErrNotFound) {
			return fmt.Errorf("removing member %q: %w", name, m.observe(err))
		}
	}
	if len(ids) > 0 {
		// Let Headscale tell the devices they are logged out (it batches
		// changes for 800 ms) before deleting them ends their sessions.
		select {
		case <-time.After(m.tm.expireGrace):
		case <-ctx.Done():
		}
	}
	for _, id := range ids {
		if err := hs.DeleteNode(ctx, id); err != nil && !errors.Is(err, headscale.ErrNotFound) {
			return fmt.Errorf("removing member %q: %w", name, m.observe(err))
		}
	}
	if _, err := m.revokeKeys(ctx, hs, rec.UserID); err != nil {
		return fmt.Errorf("removing member %q: %w", name, err)
	}
	if err := hs.DeleteUser(ctx, rec.UserID); err != nil && !errors.Is(err, headscale.ErrNotFound) {
		return fmt.Errorf("removing member %q: %w", name, m.observe(err))
	}
	if err := m.deps.Store.Delete(bucket, recordKey(name)); err != nil {
		return fmt.Errorf("removing member %q: %w", name, err)
	}
	m.record(ctx, "remove member", name, fmt.Sprintf("%d device(s) expired and deleted", len(gone.Devices)))
	m.log.Info("member removed", "member", name, "devices", len(gone.Devices))
	if m.deps.OnRemoved != nil {
		m.deps.OnRemoved(gone)
	}
	return nil
}

// Pending returns the devices waiting for the owner, oldest first. Requests
// older than PendingFor are dropped (Headscale has forgotten them).
func (m *Manager) Pending(ctx context.Context) ([]Pending, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.pending()
}

// AddPending records a device's interactive registration: link is what the
// device's Tailscale app showed (https://<login server>/register/hskey-authreq-…)
// or the code alone; name is what to call the device until it is approved.
// Headscale v0.29 cannot list waiting devices, so a request reaches the box
// this way: the member sends the link, the owner pastes it.
func (m *Manager) AddPending(ctx context.Context, link, name string) (Pending, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	_, cfg, err := m.client()
	if err != nil {
		return Pending{}, err
	}
	id, err := parseAuthLink(link, cfg.LoginServer)
	if err != nil {
		return Pending{}, err
	}
	name, err = cleanNote(name)
	if err != nil {
		return Pending{}, err
	}
	if m.isRejected(id) {
		return Pending{}, fmt.Errorf("device request %s was rejected: the device must log in again for a new one", id)
	}
	p := Pending{ID: id, Name: name, Requested: m.now().UTC()}
	if old, err := m.getPending(id); err == nil {
		return old, nil
	}
	if err := m.putJSON(pendingKey(id), p); err != nil {
		return Pending{}, err
	}
	m.record(ctx, "device request", "", fmt.Sprintf("%s (%s)", id, orDash(name)))
	return p, nil
}

// Approve registers the waiting device id as a device of member.
func (m *Manager) Approve(ctx context.Context, id, member string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	hs, _, err := m.client()
	if err != nil {
		return err
	}
	p, err := m.getPending(id)
	if err != nil {
		return err
	}
	if _, err := m.getRecord(member); err != nil {
		return err
	}
	node, err := hs.RegisterNode(ctx, member, p.ID)
	if errors.Is(err, headscale.ErrNotFound) {
		m.deps.Store.Delete(bucket, pendingKey(p.ID))
		return fmt.Errorf("approving device request %s: the coordination server no longer has it (it waits %v, or it was handled elsewhere): ask the member to log in again and send the new link: %w", p.ID, PendingFor, ErrNoRequest)
	}
	if m.observe(err) != nil {
		return fmt.Errorf("approving device request %s for %q: %w", p.ID, member, err)
	}
	if err := m.deps.Store.Delete(bucket, pendingKey(p.ID)); err != nil {
		return err
	}
	m.record(ctx, "approve device", member, fmt.Sprintf("%s as %s (node %d)", p.ID, node.GivenName, node.ID))
	return nil
}

// Reject turns the waiting device id away. The box remembers the refusal for
// as long as Headscale could still register the request.
func (m *Manager) Reject(ctx context.Context, id string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	hs, _, err := m.client()
	if err != nil {
		return err
	}
	p, err := m.getPending(id)
	if err != nil {
		return err
	}
	if err := hs.RejectAuth(ctx, p.ID); err != nil && !errors.Is(err, headscale.ErrNotFound) {
		return fmt.Errorf("rejecting device request %s: %w", p.ID, m.observe(err))
	}
	if err := m.addRejected(p.ID); err != nil {
		return err
	}
	if err := m.deps.Store.Delete(bucket, pendingKey(p.ID)); err != nil {
		return err
	}
	m.record(ctx, "reject device", "", fmt.Sprintf("%s (%s)", p.ID, orDash(p.Name)))
	return nil
}

// Policy returns the owner's current choices (the defaults until SetPolicy).
func (m *Manager) Policy() (Policy, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.policy()
}

// SetPolicy validates p, renders it with the current members, has Headscale
// check it, applies it, and keeps it.
func (m *Manager) SetPolicy(ctx context.Context, p Policy) error {
	if err := p.Validate(); err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	hs, cfg, err := m.client()
	if err != nil {
		return err
	}
	recs, err := m.records()
	if err != nil {
		return err
	}
	p = p.withDefaults()
	if err := m.setPolicy(ctx, hs, cfg, p, names(recs)); err != nil {
		return err
	}
	if err := m.putJSON(policyKey, p); err != nil {
		return err
	}
	m.record(ctx, "set policy", "", fmt.Sprintf("box tag %s; members reach each other: %v", p.BoxTag, p.MembersReachEachOther))
	return nil
}

// BoxKey makes a single-use pre-auth key, valid for BoxKeyLifetime, for the
// box's own tailnet node: it carries the policy's box tag, so the node is
// owned by no member and the policy can name it. The policy is applied first
// (the tag must exist in it).
func (m *Manager) BoxKey(ctx context.Context) (key string, expires time.Time, err error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	hs, cfg, err := m.client()
	if err != nil {
		return "", time.Time{}, err
	}
	recs, err := m.records()
	if err != nil {
		return "", time.Time{}, err
	}
	p, err := m.policy()
	if err != nil {
		return "", time.Time{}, err
	}
	if err := m.setPolicy(ctx, hs, cfg, p, names(recs)); err != nil {
		return "", time.Time{}, err
	}
	k, err := hs.CreatePreAuthKey(ctx, headscale.KeyRequest{Tags: []string{p.BoxTag}, Expiration: m.now().Add(BoxKeyLifetime)})
	if m.observe(err) != nil {
		return "", time.Time{}, fmt.Errorf("making the box's node key: %w", err)
	}
	m.record(ctx, "issue box key", "", "for the box's own node, tagged "+p.BoxTag)
	return k.Key, k.Expiration, nil
}

// Audit returns the trail of changes, oldest first.
func (m *Manager) Audit() []Event {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.loadAudit()
	return slices.Clone(m.audit)
}

// --- helpers (m.mu held) ---

func (m *Manager) policy() (Policy, error) {
	var p Policy
	err := m.getJSON(policyKey, &p)
	if err != nil && !errors.Is(err, vault.ErrNotFound) {
		return Policy{}, err
	}
	return p.withDefaults(), nil
}

// applyPolicy writes the stored policy for members.
func (m *Manager) applyPolicy(ctx context.Context, hs Headscale, cfg Config, members []string) error {
	p, err := m.policy()
	if err != nil {
		return err
	}
	return m.setPolicy(ctx, hs, cfg, p, members)
}

func (m *Manager) setPolicy(ctx context.Context, hs Headscale, cfg Config, p Policy, members []string) error {
	sort.Strings(members)
	text := Render(p, cfg.BoxName, members)
	if err := hs.CheckPolicy(ctx, text); m.observe(err) != nil {
		return fmt.Errorf("the coordination server refused the policy: %w", err)
	}
	if _, err := hs.SetPolicy(ctx, text); m.observe(err) != nil {
		if strings.Contains(err.Error(), "update is disabled") || strings.Contains(err.Error(), "policy.mode") {
			return fmt.Errorf("setting the policy: Headscale keeps its policy in a file; set policy.mode to \"database\" in its config so the box can manage access: %w", err)
		}
		return fmt.Errorf("setting the policy: %w", err)
	}
	return nil
}

// newKey makes a member's single-use key.
func (m *Manager) newKey(ctx context.Context, hs Headscale, cfg Config, uid uint64) (headscale.PreAuthKey, error) {
	k, err := hs.CreatePreAuthKey(ctx, headscale.KeyRequest{User: uid, Expiration: m.now().Add(cfg.KeyLifetime)})
	if m.observe(err) != nil {
		return headscale.PreAuthKey{}, err
	}
	return k, nil
}

// revokeKeys expires and deletes user uid's keys that could still register a
// device; it returns how many.
func (m *Manager) revokeKeys(ctx context.Context, hs Headscale, uid uint64) (int, error) {
	keys, err := hs.ListPreAuthKeys(ctx)
	if m.observe(err) != nil {
		return 0, err
	}
	n := 0
	for _, k := range keys {
		if k.User == nil || k.User.ID != uid || !k.Usable(m.now()) {
			continue
		}
		if err := hs.ExpirePreAuthKey(ctx, k.ID); err != nil && !errors.Is(err, headscale.ErrNotFound) {
			return n, m.observe(err)
		}
		if err := hs.DeletePreAuthKey(ctx, k.ID); err != nil && !errors.Is(err, headscale.ErrNotFound) {
			m.log.Warn("deleting an expired key", "key_id", k.ID, "err", err)
		}
		n++
	}
	return n, nil
}

// scriptBase is a bundle's input without the key.
func (m *Manager) scriptBase(cfg Config, name string) (scriptInput, error) {
	caPEM, err := m.deps.CACert()
	if err != nil {
		return scriptInput{}, fmt.Errorf("reading the box's CA certificate: %w", err)
	}
	pemText, file, print, err := caInfo(caPEM)
	if err != nil {
		return scriptInput{}, err
	}
	apps := ""
	if m.deps.AppsURL != nil {
		apps = m.deps.AppsURL()
	}
	return scriptInput{Member: name, BoxName: cfg.BoxName, LoginServer: cfg.LoginServer, AppsURL: apps,
		CAPEM: pemText, CAFile: file, CAPrint: print}, nil
}

func cleanNote(s string) (string, error) {
	s = strings.TrimSpace(s)
	if !utf8.ValidString(s) {
		return "", errors.New("the note is not valid text (UTF-8)")
	}
	if utf8.RuneCountInString(s) > MaxNoteLen {
		return "", fmt.Errorf("the note is %d characters long: at most %d", utf8.RuneCountInString(s), MaxNoteLen)
	}
	return strings.Map(func(r rune) rune {
		if r < ' ' || r == 0x7f {
			return ' '
		}
		return r
	}, s), nil
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func names(recs []record) []string {
	out := make([]string, 0, len(recs))
	for _, r := range recs {
		out = append(out, r.Name)
	}
	return out
}

func findRecord(recs []record, name string) *record {
	for i := range recs {
		if recs[i].Name == name {
			return &recs[i]
		}
	}
	return nil
}
