package host

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redoubt/redoubt/apps"
	"github.com/redoubt/redoubt/apps/store"
	"github.com/redoubt/redoubt/vault"
	"github.com/redoubt/redoubt/vpn/egress"
)

// An app's state.
const (
	stateStopped  = "stopped"
	stateStarting = "starting"
	stateRunning  = "running"
	stateFailed   = "failed"
)

// stopGrace is how long a stopping app's requests may take to finish before
// their connections are closed.
const stopGrace = 3 * time.Second

// instance is one app the host knows.
type instance struct {
	h        *Host
	m        apps.Manifest
	builtin  apps.App
	external *external
	log      *slog.Logger

	optMu sync.Mutex // one option change at a time
	runMu sync.Mutex // one start or stop at a time

	mu      sync.Mutex // guards what follows
	state   string
	problem string
	run     *run
}

// run is one run of an app, from its start to its stop.
type run struct {
	in      *instance
	ctx     context.Context
	cancel  context.CancelFunc
	store   *store.Store
	dir     string
	handler http.Handler
	opts    atomic.Pointer[apps.Options]
	started time.Time

	mu       sync.Mutex
	stopping bool
	inflight sync.WaitGroup
	watchers map[int]func(apps.Options)
	removed  map[int]func(apps.Member)
	next     int
}

func (in *instance) current() *run {
	in.mu.Lock()
	defer in.mu.Unlock()
	return in.run
}

func (in *instance) setState(state, problem string) {
	in.mu.Lock()
	in.state, in.problem = state, problem
	in.mu.Unlock()
}

// options reads the owner's values from the vault.
func (in *instance) options() (apps.Options, error) {
	raw, err := in.h.d.Vault.Get(vaultBucket, optionsName(in.m.ID))
	switch {
	case errors.Is(err, vault.ErrNotFound):
		return apps.NewOptions(in.m, nil), nil
	case errors.Is(err, vault.ErrLocked):
		return apps.Options{}, errLocked
	case err != nil:
		return apps.Options{}, fmt.Errorf("reading %s's options: %w", in.m.ID, err)
	}
	var set map[string]string
	if err := json.Unmarshal(raw, &set); err != nil {
		return apps.Options{}, fmt.Errorf("%s's options in the vault are damaged: %w", in.m.ID, err)
	}
	return apps.NewOptions(in.m, set), nil
}

// storeKey is the app's key for its kept data, made on first use.
func (in *instance) storeKey() ([]byte, error) {
	k, err := in.h.d.Vault.Get(vaultBucket, keyName(in.m.ID))
	if errors.Is(err, vault.ErrNotFound) {
		k = newKey()
		if err := in.h.d.Vault.Put(vaultBucket, keyName(in.m.ID), k); err != nil {
			return nil, fmt.Errorf("keeping %s's key: %w", in.m.ID, err)
		}
		return k, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading %s's key: %w", in.m.ID, err)
	}
	return k, nil
}

// start runs the app, unless it runs already.
func (in *instance) start() error {
	in.runMu.Lock()
	defer in.runMu.Unlock()
	if in.current() != nil {
		return nil
	}
	h := in.h
	if !h.isUnlocked() {
		return errLocked
	}
	opts, err := in.options()
	if err != nil {
		return err
	}
	in.setState(stateStarting, "")
	r, err := in.open(opts)
	if err != nil {
		in.setState(stateFailed, err.Error())
		return err
	}
	env := &env{r: r}
	var handler http.Handler
	if in.builtin != nil {
		handler, err = in.builtin.Start(r.ctx, env)
	} else {
		handler, err = in.external.start(r.ctx, env)
	}
	if err == nil && handler == nil {
		if _, ok := in.m.Web(); ok {
			err = errors.New("the app has a web listener but gave no handler")
		}
	}
	if err != nil {
		r.cancel()
		r.store.Close(apps.ErrStopped)
		in.wipeEphemeral(r)
		err = fmt.Errorf("starting %s: %w", in.m.ID, err)
		in.setState(stateFailed, err.Error())
		return err
	}
	r.handler = handler
	in.mu.Lock()
	in.run, in.state, in.problem = r, stateRunning, ""
	in.mu.Unlock()
	h.net.publish(in)
	in.log.Info("app started", "persistence", opts.Bool(apps.OptPersistence), "published", originURLs(h.net.origins(in)))
	return nil
}

// open opens the app's store: its kept data, or fresh data that lives only
// for this run when persistence is off.
func (in *instance) open(opts apps.Options) (*run, error) {
	h, id := in.h, in.m.ID
	var key []byte
	var dir string
	if opts.Bool(apps.OptPersistence) {
		k, err := in.storeKey()
		if err != nil {
			return nil, err
		}
		key, dir = k, h.dataDir(id)
	} else {
		// Kept data from when persistence was on is erased, with its key.
		if _, err := os.Stat(h.dataDir(id)); err == nil {
			in.log.Info("persistence is off: erasing the app's kept data")
			if err := removeAll(h.dataDir(id)); err != nil {
				return nil, err
			}
		}
		if err := h.d.Vault.Delete(vaultBucket, keyName(id)); err != nil {
			return nil, fmt.Errorf("forgetting %s's key: %w", id, err)
		}
		key, dir = newKey(), h.ephemeralDir(id)
		if err := removeAll(dir); err != nil {
			return nil, err
		}
	}
	st, err := store.Open(dir, key, store.Options{Quota: opts.Size(apps.OptQuota), Logger: in.log, Now: h.d.Now})
	clear(key)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &run{in: in, ctx: ctx, cancel: cancel, store: st, dir: dir, started: h.d.Now(),
		watchers: map[int]func(apps.Options){}, removed: map[int]func(apps.Member){}}
	r.opts.Store(&opts)
	return r, nil
}

func (in *instance) wipeEphemeral(r *run) {
	if r.dir == in.h.ephemeralDir(in.m.ID) {
		if err := removeAll(r.dir); err != nil {
			in.log.Warn("erasing the app's data", "err", err)
		}
	}
}

// stop ends the app's run: no new requests, its context cancelled, a few
// seconds for what is in flight, then its connections closed and its store
// closed with reason.
func (in *instance) stop(reason error, why string) {
	in.runMu.Lock()
	defer in.runMu.Unlock()
	r := in.current()
	if r == nil {
		return
	}
	h := in.h
	r.mu.Lock()
	r.stopping = true
	r.mu.Unlock()
	h.net.unpublish(in)
	r.cancel()
	done := make(chan struct{})
	go func() { r.inflight.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(stopGrace):
		in.log.Info("closing the connections of requests that did not finish")
	}
	h.net.closeConns(func(c *connInfo) bool { return c.app() == in })
	select {
	case <-done:
	case <-time.After(stopGrace):
		in.log.Warn("requests still running after their connections closed: the app ignores its context")
	}
	if in.external != nil {
		in.external.wait()
	}
	r.store.Close(reason)
	in.wipeEphemeral(r)
	in.mu.Lock()
	in.run, in.state, in.problem = nil, stateStopped, ""
	in.mu.Unlock()
	in.log.Info("app stopped", "why", why)
}

// enter counts a request into the run, unless it is stopping.
func (r *run) enter() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.stopping {
		return false
	}
	r.inflight.Add(1)
	return true
}

// optionsChanged applies new option values: live ones to the running app,
// anything else by restarting it.
func (in *instance) optionsChanged(cur, next apps.Options) {
	r := in.current()
	if r == nil {
		return
	}
	changed := cur.Changed(next)
	live := true
	for _, name := range changed {
		if o, _ := in.m.Option(name); !o.Live {
			live = false
		}
	}
	if !live {
		go func() {
			in.stop(apps.ErrStopped, "restarting with new options")
			if err := in.start(); err != nil {
				in.log.Warn("the app did not start again", "err", err)
			}
		}()
		return
	}
	r.opts.Store(&next)
	if slices.Contains(changed, apps.OptQuota) {
		r.store.SetQuota(next.Size(apps.OptQuota))
	}
	if slices.Contains(changed, apps.OptAllowLAN) || slices.Contains(changed, apps.OptAllowTailnet) {
		in.h.net.publish(in)
	}
	r.mu.Lock()
	fns := make([]func(apps.Options), 0, len(r.watchers))
	for _, fn := range r.watchers {
		fns = append(fns, fn)
	}
	r.mu.Unlock()
	for _, fn := range fns {
		fn(next)
	}
}

// memberRemoved tells the running app a member is gone.
func (in *instance) memberRemoved(m apps.Member) {
	r := in.current()
	if r == nil {
		return
	}
	r.mu.Lock()
	fns := make([]func(apps.Member), 0, len(r.removed))
	for _, fn := range r.removed {
		fns = append(fns, fn)
	}
	r.mu.Unlock()
	for _, fn := range fns {
		fn(m)
	}
}

// env implements apps.Env for one run.
type env struct{ r *run }

func (e *env) Manifest() apps.Manifest { return e.r.in.m }
func (e *env) Logger() *slog.Logger    { return e.r.in.log }
func (e *env) Options() apps.Options   { return *e.r.opts.Load() }
func (e *env) Records() apps.Records   { return e.r.store.Records() }
func (e *env) Blobs() apps.Blobs       { return e.r.store.Blobs() }
func (e *env) Members() []apps.Member  { return e.r.in.h.memberList() }
func (e *env) Origins() []apps.Origin  { return e.r.in.h.net.origins(e.r.in) }

func (e *env) WatchOptions(fn func(apps.Options)) func() {
	return e.r.hook(func(r *run, i int) { r.watchers[i] = fn }, func(r *run, i int) { delete(r.watchers, i) })
}

func (e *env) OnMemberRemoved(fn func(apps.Member)) func() {
	return e.r.hook(func(r *run, i int) { r.removed[i] = fn }, func(r *run, i int) { delete(r.removed, i) })
}

func (r *run) hook(add, del func(*run, int)) func() {
	r.mu.Lock()
	i := r.next
	r.next++
	add(r, i)
	r.mu.Unlock()
	return func() {
		r.mu.Lock()
		del(r, i)
		r.mu.Unlock()
	}
}

func (e *env) Listen(name string, network apps.Network) (net.Listener, error) {
	return e.r.in.h.net.appListener(e.r, name, network)
}

func (e *env) ListenPacket(name string, network apps.Network) (net.PacketConn, error) {
	return e.r.in.h.net.appPacketConn(e.r, name, network)
}

func (e *env) Egress() egress.Dialer {
	return &appEgress{d: e.r.in.h.d.Egress, allowed: e.r.in.m.Egress, on: func() bool {
		return e.Options().Bool(apps.OptAllowEgress)
	}}
}

func originURLs(os []apps.Origin) []string {
	out := make([]string, len(os))
	for i, o := range os {
		out[i] = o.URL
	}
	return out
}
