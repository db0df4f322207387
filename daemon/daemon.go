package daemon

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"

	"github.com/redoubt/redoubt/datapath/lan"
	"github.com/redoubt/redoubt/datapath/leaklog"
	"github.com/redoubt/redoubt/internal/version"
	"github.com/redoubt/redoubt/ui"
	"github.com/redoubt/redoubt/ui/localapi"
)

// NewLogger returns the daemon's logger, writing to w as the config says.
func NewLogger(cfg LogConfig, w io.Writer) *slog.Logger {
	level, err := parseLevel(cfg.Level)
	if err != nil {
		level = slog.LevelInfo
	}
	opts := &slog.HandlerOptions{Level: level}
	if cfg.Format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

// Serve runs the box from the config file at path until SIGTERM or SIGINT. SIGHUP
// re-reads the file and applies what can change while running.
func Serve(path string) error {
	cfg, err := LoadConfig(path)
	if err != nil {
		return err
	}
	log := NewLogger(cfg.Log, os.Stderr)
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)

	b, err := Start(cfg, log)
	if err != nil {
		return err
	}
	for {
		select {
		case <-ctx.Done():
			log.Info("stopping")
			return b.Close()
		case <-hup:
			next, err := LoadConfig(path)
			if err != nil {
				log.Error("config not reloaded", "err", err)
				continue
			}
			if err := b.Reconfig(next); err != nil {
				log.Error("config not applied", "err", err)
				continue
			}
			log.Info("config reloaded")
		case err := <-b.errc:
			b.Close()
			return err
		}
	}
}

// Box is the running appliance: every room, wired together.
type Box struct {
	mu      sync.Mutex // guards cfg
	cfg     Config
	log     *slog.Logger
	started time.Time
	leaks   *leaklog.Log
	lan     *lan.LAN
	web     *http.Server
	api     *http.Server
	errc    chan error
}

// Start builds and starts every room.
func Start(cfg Config, log *slog.Logger) (*Box, error) {
	b := &Box{cfg: cfg, log: log, started: time.Now(), errc: make(chan error, 4)}
	if err := os.MkdirAll(cfg.State.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("state.dir %s: %w", cfg.State.Dir, err)
	}
	b.leaks = leaklog.New(leaklog.Config{})
	l, err := lan.Open(cfg.LAN, lan.Deps{Logger: log.With("room", "datapath"), Leaks: b.leaks})
	if err != nil {
		return nil, err
	}
	b.lan = l

	webLn, err := l.ListenTCP(80)
	if err != nil {
		b.Close()
		return nil, err
	}
	info := version.Get()
	webLog := log.With("room", "ui")
	b.web = ui.Server(ui.Handler(ui.Info{Version: info.Version, Address: l.Addr().String()}, webLog), webLog)
	b.serve("web", b.web, webLn)

	// More services on the LAN port join here, each from its room's constructor.

	apiLn, err := localapi.Listen(cfg.API.Socket)
	if err != nil {
		b.Close()
		return nil, err
	}
	apiLog := log.With("room", "api")
	b.api = &http.Server{
		Handler:           localapi.Handler(localapi.Deps{Status: b.status, Leaks: b.leaks, Logger: apiLog}),
		ReadHeaderTimeout: 10 * time.Second,
	}
	b.serve("api", b.api, apiLn)
	log.Info("redoubt running", "version", info.Version, "commit", info.Commit, "lan", cfg.LAN.Interface,
		"address", l.Addr().String(), "api", cfg.API.Socket)
	return b, nil
}

// serve runs srv on ln until Close; a server that fails stops the daemon.
func (b *Box) serve(name string, srv *http.Server, ln net.Listener) {
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			b.errc <- fmt.Errorf("%s server: %w", name, err)
		}
	}()
}

// Reconfig applies a new config while running. What cannot change without a
// restart is refused with the reason.
func (b *Box) Reconfig(cfg Config) error {
	old := b.config()
	if cfg.State != old.State || cfg.API != old.API {
		return errors.New("state.dir and api.socket change only with a restart")
	}
	if err := b.lan.Reconfig(cfg.LAN); err != nil {
		return err
	}
	b.mu.Lock()
	b.cfg = cfg
	b.mu.Unlock()
	return nil
}

// captiveURL is where a laptop finds the box's captive-portal API (RFC 8908)
// while setup is unfinished, and "" afterwards.
func (b *Box) captiveURL() string {
	if b.config().Setup.Done {
		return ""
	}
	return "http://" + b.lan.Addr().String() + "/captive-portal/api"
}

// config returns the config in force.
func (b *Box) config() Config {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.cfg
}

func (b *Box) status() localapi.Status {
	cfg := b.config()
	st := b.lan.Stats()
	c := b.leaks.Counters()
	var svcs []string
	for _, s := range b.lan.Services() {
		svcs = append(svcs, fmt.Sprintf("%s/%d", s.Proto, s.Port))
	}
	return localapi.Status{
		Version: version.Get().Version,
		Started: b.started,
		LAN: localapi.LANStatus{
			Interface:     cfg.LAN.Interface,
			Address:       cfg.LAN.Address.String(),
			MAC:           b.lan.MAC().String(),
			Services:      svcs,
			Reveal:        cfg.LAN.RevealOn(),
			Dropped:       c.Total,
			Link:          st.Link,
			StackDropped:  st.StackDropped,
			StackCounters: b.lan.StackCounters(),
		},
	}
}

// Close stops every room, the servers first so clients see a clean end.
func (b *Box) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for _, srv := range []*http.Server{b.web, b.api} {
		if srv != nil {
			srv.Shutdown(ctx)
		}
	}
	if b.api != nil {
		os.Remove(b.config().API.Socket)
	}
	if b.lan != nil {
		b.lan.Close()
	}
	return nil
}
