// Package apptest gives an app's tests the Env the host would: a real store
// (sealed records, encrypted blobs) in a temporary directory, the manifest's
// options, a member directory the test sets, hooks the test fires, and
// requests carrying the caller the test chooses. It runs no network: lab
// tests (apps/host's, integration/apps) cover the listeners and identity.
// Only tests import it.
package apptest

import (
	"context"
	"crypto/rand"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/redoubt/redoubt/apps"
	"github.com/redoubt/redoubt/apps/store"
	"github.com/redoubt/redoubt/vpn/egress"
)

// Env is an apps.Env for tests.
type Env struct {
	t     testing.TB
	m     apps.Manifest
	store *store.Store
	log   *slog.Logger

	mu      sync.Mutex
	opts    apps.Options
	members []apps.Member
	origins []apps.Origin
	watch   map[int]func(apps.Options)
	removed map[int]func(apps.Member)
	next    int
}

// NewEnv returns an Env for an app with manifest m, its store in a
// temporary directory closed at the end of the test.
func NewEnv(t testing.TB, m apps.Manifest) *Env {
	t.Helper()
	key := make([]byte, store.KeySize)
	rand.Read(key)
	st, err := store.Open(t.TempDir(), key, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	e := &Env{t: t, m: m, store: st, log: slog.New(slog.NewTextHandler(tlog{t}, nil)).With("app", m.ID),
		opts: apps.NewOptions(m, nil), watch: map[int]func(apps.Options){}, removed: map[int]func(apps.Member){}}
	if w, ok := m.Web(); ok {
		e.origins = []apps.Origin{{Network: apps.LAN, URL: "https://" + m.ID + ".kestrel.home.arpa"},
			{Network: apps.Tailnet, URL: "https://kestrel.team.example:" + strconv.Itoa(int(w.Port))}}
	}
	t.Cleanup(func() { st.Close(apps.ErrStopped) })
	return e
}

type tlog struct{ t testing.TB }

func (l tlog) Write(p []byte) (int, error) { l.t.Log(strings.TrimSpace(string(p))); return len(p), nil }

func (e *Env) Manifest() apps.Manifest { return e.m }
func (e *Env) Logger() *slog.Logger    { return e.log }
func (e *Env) Records() apps.Records   { return e.store.Records() }
func (e *Env) Blobs() apps.Blobs       { return e.store.Blobs() }

func (e *Env) Options() apps.Options {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.opts
}

func (e *Env) Members() []apps.Member {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]apps.Member(nil), e.members...)
}

func (e *Env) Origins() []apps.Origin {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]apps.Origin(nil), e.origins...)
}

func (e *Env) WatchOptions(fn func(apps.Options)) func() {
	e.mu.Lock()
	defer e.mu.Unlock()
	i := e.next
	e.next++
	e.watch[i] = fn
	return func() { e.mu.Lock(); delete(e.watch, i); e.mu.Unlock() }
}

func (e *Env) OnMemberRemoved(fn func(apps.Member)) func() {
	e.mu.Lock()
	defer e.mu.Unlock()
	i := e.next
	e.next++
	e.removed[i] = fn
	return func() { e.mu.Lock(); delete(e.removed, i); e.mu.Unlock() }
}

// Listen and ListenPacket give no sockets here: lab tests cover them.
func (e *Env) Listen(string, apps.Network) (net.Listener, error) {
	return nil, errors.New("apptest: no listeners; test them in the lab")
}

func (e *Env) ListenPacket(string, apps.Network) (net.PacketConn, error) {
	return nil, errors.New("apptest: no listeners; test them in the lab")
}

func (e *Env) Egress() egress.Dialer { return egress.Closed{Reason: "apptest"} }

// SetOption changes an option as the owner would, calling the app's
// watchers if it is live.
func (e *Env) SetOption(name, value string) {
	e.t.Helper()
	e.mu.Lock()
	next, err := e.opts.With(name, value)
	if err != nil {
		e.mu.Unlock()
		e.t.Fatal(err)
	}
	e.opts = next
	var fns []func(apps.Options)
	for _, fn := range e.watch {
		fns = append(fns, fn)
	}
	e.mu.Unlock()
	for _, fn := range fns {
		fn(next)
	}
}

// SetMembers sets the team.
func (e *Env) SetMembers(ms ...apps.Member) {
	e.mu.Lock()
	e.members = ms
	e.mu.Unlock()
}

// RemoveMember removes a member and calls the app's hooks, as the host does
// (after closing the member's connections, which here the test does).
func (e *Env) RemoveMember(id string) {
	e.mu.Lock()
	var gone apps.Member
	for i, m := range e.members {
		if m.ID == id {
			gone = m
			e.members = append(e.members[:i], e.members[i+1:]...)
			break
		}
	}
	var fns []func(apps.Member)
	for _, fn := range e.removed {
		fns = append(fns, fn)
	}
	e.mu.Unlock()
	for _, fn := range fns {
		fn(gone)
	}
}

// Lock closes the store as the host does when the box is locked: every
// storage call fails with apps.ErrLocked from now on.
func (e *Env) Lock() { e.store.Close(apps.ErrLocked) }

// Owner and Member are callers for requests.
var Owner = apps.Caller{Owner: true, Network: apps.LAN, Device: "browser"}

// Member is a caller on the tailnet.
func Member(id, name string) apps.Caller {
	return apps.Caller{Member: apps.Member{ID: id, Name: name}, Network: apps.Tailnet, Device: name + "-phone"}
}

// Start starts a with the Env and returns its handler; its context ends
// with the test.
func Start(t testing.TB, a apps.App, e *Env) http.Handler {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	h, err := a.Start(ctx, e)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// Do sends a request to h as caller and returns the response.
func Do(h http.Handler, caller apps.Caller, method, target string, body io.Reader, header ...string) *http.Response {
	req := httptest.NewRequest(method, "https://app.example"+target, body)
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	req = req.WithContext(apps.WithCaller(req.Context(), caller))
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec.Result()
}

var _ apps.Env = (*Env)(nil)
