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
	"runtime/pprof"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/redoubt/redoubt/apps/host"
	"github.com/redoubt/redoubt/audit/auditlog"
	"github.com/redoubt/redoubt/backup"
	"github.com/redoubt/redoubt/backup/peerstore"
	"github.com/redoubt/redoubt/board/update"
	"github.com/redoubt/redoubt/clock"
	"github.com/redoubt/redoubt/datapath/lan"
	"github.com/redoubt/redoubt/datapath/leaklog"
	"github.com/redoubt/redoubt/dhcp"
	"github.com/redoubt/redoubt/dns"
	"github.com/redoubt/redoubt/dns/querylog"
	"github.com/redoubt/redoubt/internal/version"
	"github.com/redoubt/redoubt/ui"
	"github.com/redoubt/redoubt/ui/localapi"
	"github.com/redoubt/redoubt/ui/setup"
	"github.com/redoubt/redoubt/vault"
	"github.com/redoubt/redoubt/vpn/external"
	"github.com/redoubt/redoubt/vpn/mesh"
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

// Options are how `redoubt serve` was started, beyond the config file.
type Options struct {
	// UIDir serves the owner's pages from this directory instead of the
	// embedded copy, re-read on every request: for working on the pages.
	UIDir string
}

// Serve runs the box from the config file at path until SIGTERM or SIGINT. SIGHUP
// re-reads the file and applies what can change while running.
func Serve(path string, opts Options) error {
	cfg, err := LoadConfig(path)
	if err != nil {
		return err
	}
	cfg.dev = opts
	log := NewLogger(cfg.Log, os.Stderr)
	if path := os.Getenv("REDOUBT_CPUPROFILE"); path != "" {
		// For finding where the box's time goes (bench/*.sh): a CPU profile of
		// the whole run, written when the daemon stops.
		if f, err := os.Create(path); err == nil {
			pprof.StartCPUProfile(f)
			defer func() { pprof.StopCPUProfile(); f.Close() }()
		}
	}
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
			if o, err := applyOverrides(next); err == nil {
				next = o
			}
			if err := b.Reconfig(next); err != nil {
				log.Error("config not applied", "err", err)
				continue
			}
			log.Info("config reloaded")
		case err := <-b.errc:
			b.Close()
			return err
		case <-b.restart:
			b.Close()
			return reexec()
		}
	}
}

// reexec replaces the daemon with a fresh copy of itself: a restart that keeps
// the process under its supervisor, and comes back locked like a power cycle.
func reexec() error {
	exe, err := os.Executable()
	if err != nil {
		return fmt.Errorf("restarting: %w", err)
	}
	return syscall.Exec(exe, os.Args, os.Environ())
}

// Box is the running appliance: every room, wired together.
type Box struct {
	mu      sync.Mutex // guards cfg and boxName
	cfg     Config
	boxName string // the owner's name for the box, over dns.name; "" for none
	log     *slog.Logger
	started time.Time
	leaks   *leaklog.Log
	queries *querylog.Log
	// The LAN side: the port and the services on it. Moving the box to another
	// LAN address replaces them all while the rest runs on (move.go); readers
	// load them, and moveMu keeps a move and Close apart.
	lan    atomic.Pointer[lan.LAN]
	dns    atomic.Pointer[dns.Server]
	dhcp   atomic.Pointer[dhcp.Server]
	moveMu sync.Mutex
	web    *http.Server // guarded by moveMu
	webTLS *http.Server // guarded by moveMu
	api    *http.Server
	setup  *setup.Setup
	vault  *vault.Vault
	ui     *ui.UI
	vpn    *external.VPN
	mesh   *mesh.Mesh
	apps   *host.Host
	clock  *clock.Clock
	audit  *auditlog.Log
	backup *backup.Engine
	peers  *peerstore.Server // the space kept for teammates' backups
	// peersSrv serves them on the box's tailnet node.
	peersSrv peersServer
	// life tells the rooms that run on the vault's keys (the VPN, the team
	// mesh, the apps, the audit log, the backups) when the box is unlocked
	// and locked.
	life    *vault.Lifecycle
	bg      background      // the daemon's own loops
	updater *update.Updater // nil unless started from a Redoubt image
	sealing atomic.Bool     // sealHeadless is running
	errc    chan error
	restart chan struct{}
}

// Start builds and starts every room.
func Start(cfg Config, log *slog.Logger) (*Box, error) {
	b := &Box{cfg: cfg, log: log, started: time.Now(), errc: make(chan error, 4), restart: make(chan struct{}, 1),
		life: vault.NewLifecycle(log.With("room", "lifecycle"))}
	b.bg.ctx, b.bg.cancel = context.WithCancel(context.Background())
	if err := os.MkdirAll(cfg.State.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("state.dir %s: %w", cfg.State.Dir, err)
	}
	if next, err := applyOverrides(cfg); err != nil {
		log.Warn("owner's settings not applied", "err", err)
	} else {
		cfg = next
		b.cfg = cfg
	}
	b.leaks = leaklog.New(leaklog.Config{})
	b.queries = querylog.New(querylog.Config{MaxEntries: cfg.DNS.QueryLog})
	l, err := lan.Open(cfg.LAN, lan.Deps{Logger: log.With("room", "datapath"), Leaks: b.leaks})
	if err != nil {
		return nil, err
	}
	b.lan.Store(l)

	if err := b.openOwner(cfg); err != nil {
		b.Close()
		return nil, err
	}
	if b.setup.Done() {
		b.boxName = b.setup.BoxName()
	}
	if err := b.startVPN(cfg); err != nil {
		b.Close()
		return nil, err
	}
	if err := b.startClockAndAudit(cfg); err != nil {
		b.Close()
		return nil, err
	}
	if err := b.startBackup(cfg); err != nil {
		b.Close()
		return nil, err
	}
	if err := b.startBoard(cfg); err != nil {
		b.Close()
		return nil, err
	}
	if err := b.startLANServices(cfg, l); err != nil {
		b.Close()
		return nil, err
	}
	if err := b.startMesh(cfg); err != nil {
		b.Close()
		return nil, err
	}
	if err := b.startApps(cfg); err != nil {
		b.Close()
		return nil, err
	}
	if err := b.startUI(cfg); err != nil {
		b.Close()
		return nil, err
	}
	if err := b.serveUI(l); err != nil {
		b.Close()
		return nil, err
	}

	apiLn, err := localapi.Listen(cfg.API.Socket)
	if err != nil {
		b.Close()
		return nil, err
	}
	apiLog := log.With("room", "api")
	b.api = &http.Server{
		Handler: localapi.Handler(localapi.Deps{Status: b.status, Leaks: b.leaks, Queries: b.queries, Devices: b.devices, Owner: (*consoleOwner)(b), VPN: b.vpnAPI(),
			Team: (*consoleTeam)(b), Settings: (*consoleSettings)(b), Apps: b.apps, Board: b.boardAPI(cfg), Audit: b.audit.Handler(nil),
			Backup: b.backup.Handler(b.peers), Restore: b.restoreAPI(), Logger: apiLog}),
		ReadHeaderTimeout: 10 * time.Second,
	}
	b.serve("api", b.api, apiLn)
	info := version.Get()
	log.Info("redoubt running", "version", info.Version, "commit", info.Commit, "lan", cfg.LAN.Interface,
		"address", l.Addr().String(), "api", cfg.API.Socket)
	return b, nil
}

// startLANServices runs the resolver and the DHCP server on the LAN port l.
func (b *Box) startLANServices(cfg Config, l *lan.LAN) error {
	d, err := b.startDNS(cfg, l)
	if err != nil {
		return err
	}
	b.dns.Store(d)
	srv, err := b.startDHCP(cfg, l, d)
	if err != nil {
		return err
	}
	b.dhcp.Store(srv)
	return nil
}

// startDNS runs the resolver on udp/53 and tcp/53 of the LAN address.
func (b *Box) startDNS(cfg Config, l *lan.LAN) (*dns.Server, error) {
	srv, err := dns.New(b.dnsConfig(cfg), dns.Deps{
		Logger:       b.log.With("room", "dns"),
		LAN:          l.Prefix(),
		SetupPending: func() bool { return b.captiveURL() != "" },
		Queries:      b.queries,
		MACOf:        l.NeighborMAC,
	})
	if err != nil {
		return nil, err
	}
	pc, err := l.ListenUDP(dns.Port)
	if err != nil {
		return nil, err
	}
	ln, err := l.ListenTCP(dns.Port)
	if err != nil {
		pc.Close()
		return nil, err
	}
	go func() {
		if err := srv.Serve(pc, ln); err != nil {
			b.errc <- err
		}
	}()
	return srv, nil
}

// startDHCP runs the DHCP server on udp/67 of the LAN port. Its lease file lives
// in state.dir, unencrypted, so addresses are served while the box is locked.
func (b *Box) startDHCP(cfg Config, l *lan.LAN, d *dns.Server) (*dhcp.Server, error) {
	conn, err := l.ListenUDPBroadcast(dhcp.ServerPort)
	if err != nil {
		return nil, err
	}
	srv, err := dhcp.New(cfg.DHCP, dhcp.Deps{
		Conn:       conn,
		Neighbors:  l,
		LAN:        l.Prefix(),
		StateDir:   cfg.State.Dir,
		HostNames:  d.Names(),
		CaptiveURL: b.captiveURL,
		Logger:     b.log.With("room", "dhcp"),
	})
	if err != nil {
		conn.Close()
		return nil, err
	}
	go func() {
		if err := srv.Serve(); err != nil {
			b.errc <- fmt.Errorf("dhcp server: %w", err)
		}
	}()
	return srv, nil
}

// dhcpStats are the DHCP server's counters, for the status.
func (b *Box) dhcpStats() dhcp.Stats {
	if b.dhcp.Load() == nil {
		return dhcp.Stats{}
	}
	return b.dhcp.Load().Stats()
}

// devices lists the DHCP leases for the admin API.
func (b *Box) devices() localapi.Devices {
	if b.dhcp.Load() == nil {
		return localapi.Devices{Leases: []dhcp.Lease{}}
	}
	return localapi.Devices{Leases: b.dhcp.Load().Leases(), Counters: b.dhcp.Load().Stats()}
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
	if cfg.LAN.Interface != old.LAN.Interface || cfg.LAN.Address != old.LAN.Address {
		if err := b.reconfigVPN(old, cfg); err != nil {
			return err
		}
		return b.moveLAN(cfg)
	}
	if err := b.lan.Load().Reconfig(cfg.LAN); err != nil {
		return err
	}
	if err := b.dns.Load().Reconfig(b.dnsConfig(cfg)); err != nil {
		return err
	}
	if err := b.dhcp.Load().Reconfig(cfg.DHCP); err != nil {
		return err
	}
	if err := b.reconfigVPN(old, cfg); err != nil {
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
	if b.config().Setup.Done || (b.setup != nil && b.setup.Done()) {
		return ""
	}
	return "http://" + b.lan.Load().Addr().String() + "/captive-portal/api"
}

// config returns the config in force.
func (b *Box) config() Config {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.cfg
}

func (b *Box) status() localapi.Status {
	cfg := b.config()
	st := b.lan.Load().Stats()
	c := b.leaks.Counters()
	var svcs []string
	for _, s := range b.lan.Load().Services() {
		svcs = append(svcs, fmt.Sprintf("%s/%d", s.Proto, s.Port))
	}
	return localapi.Status{
		Version: version.Get().Version,
		Started: b.started,
		Owner:   (*consoleOwner)(b).State(),
		LAN: localapi.LANStatus{
			Interface:     cfg.LAN.Interface,
			Address:       cfg.LAN.Address.String(),
			MAC:           b.lan.Load().MAC().String(),
			Services:      svcs,
			Reveal:        cfg.LAN.RevealOn(),
			Dropped:       c.Total,
			Link:          st.Link,
			UDP:           st.UDP,
			StackDropped:  st.StackDropped,
			StackCounters: b.lan.Load().StackCounters(),
		},
		DNS:    b.dnsStatus(),
		DHCP:   b.dhcpStats(),
		VPN:    b.vpnStatus(),
		Mesh:   b.meshStatus(),
		Apps:   b.apps.List(),
		Clock:  b.clockStatus(),
		Audit:  b.auditStatus(),
		Backup: b.backupStatus(),
	}
}

func (b *Box) dnsStatus() localapi.DNSStatus {
	ds := b.dns.Load().Stats()
	qc := b.queries.Counters()
	return localapi.DNSStatus{
		Domain:     ds.Domain,
		Names:      ds.Names,
		Queries:    qc.Queries,
		Stopped:    qc.ByAnswer[querylog.Stopped.String()],
		Dropped:    qc.Dropped,
		Malformed:  qc.ByAnswer[querylog.Malformed.String()],
		TCPRefused: ds.Guard.TCPRefused,
	}
}

// Close stops every room, the servers first so clients see a clean end.
func (b *Box) Close() error {
	b.moveMu.Lock()
	defer b.moveMu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	for _, srv := range []*http.Server{b.web, b.webTLS, b.api} {
		if srv != nil {
			// Live feeds never end by themselves: after a moment, cut them.
			if srv.Shutdown(ctx) != nil {
				srv.Close()
			}
		}
	}
	b.life.Locked()
	if b.apps != nil {
		b.apps.Close()
	}
	if b.mesh != nil {
		b.mesh.Close()
	}
	b.servePeers(nil)
	b.bg.stop()
	if b.audit != nil {
		b.audit.Close()
	}
	if b.vpn != nil {
		b.vpn.Close()
	}
	if b.vault != nil {
		b.vault.Close()
	}
	if b.api != nil {
		os.Remove(b.config().API.Socket)
	}
	if d := b.dhcp.Load(); d != nil {
		d.Close()
	}
	if d := b.dns.Load(); d != nil {
		d.Close()
	}
	if l := b.lan.Load(); l != nil {
		l.Close()
	}
	return nil
}
