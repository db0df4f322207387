// Package dns is the box's resolver, the laptop's only one: CoreDNS embedded as a
// library, serving DNS over UDP and TCP on port 53 of the LAN port. It answers the
// box's own names (the box and its services under the local domain, the LAN's
// leased devices, names other rooms add, reverse lookups of the LAN) and gives every
// other name one fixed answer, NXDOMAIN, without ever sending a query anywhere —
// while recording who asked for what in the query log.
//
// Redoubt's logic is a chain of CoreDNS plugins, one package each:
//
//	querylog → guard → bufsize → captive → localnames → sinkhole
//
// querylog records every query; guard refuses zone transfers and frees the query's
// admission slot; bufsize (CoreDNS's own) caps the EDNS buffer at 1232 bytes;
// captive answers captive-portal probes while setup is unfinished; localnames
// answers the box's zones; sinkhole answers NXDOMAIN to the rest. Below the chain,
// the guard bounds what clients can make the server hold.
//
// The daemon builds a Server from the [dns] config section, gives it the LAN's
// packet conn and listener for port 53 (the room never sees gVisor types), hands
// Names to the DHCP room and the query log to the local API. Only the daemon
// imports this package.
package dns

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/coredns/coredns/core/dnsserver"
	"github.com/coredns/coredns/plugin"
	"github.com/coredns/coredns/plugin/bufsize"
	"github.com/miekg/dns"

	"github.com/redoubt/redoubt/dns/plugin/captive"
	"github.com/redoubt/redoubt/dns/plugin/guard"
	"github.com/redoubt/redoubt/dns/plugin/localnames"
	qlplugin "github.com/redoubt/redoubt/dns/plugin/querylog"
	"github.com/redoubt/redoubt/dns/plugin/sinkhole"
	"github.com/redoubt/redoubt/dns/querylog"
	"github.com/redoubt/redoubt/internal/ratelimit"
)

// Port is where the box serves DNS, over UDP and TCP.
const Port = 53

// Defaults for the [dns] section.
const (
	DefaultDomain = "home.arpa"
	DefaultName   = "redoubt"
)

// DefaultAliases are the box's other names by default: setup.home.arpa leads to
// the setup page.
var DefaultAliases = []string{"setup"}

// Config is the [dns] section of the config file.
type Config struct {
	// Domain is the local domain: the box, its services and the LAN's devices
	// are named under it. Default home.arpa (RFC 8375, meant for exactly this).
	Domain string `toml:"domain"`
	// Name is the box's own name in the domain (default redoubt:
	// redoubt.home.arpa).
	Name string `toml:"name"`
	// Aliases are more names for the box (default ["setup"]).
	Aliases []string `toml:"aliases"`
	// QueryLog is how many (device, name) entries the query log keeps (default
	// 2048; from 64 to 65536). Changes need a restart.
	QueryLog int `toml:"query_log"`
}

// WithDefaults fills unset fields.
func (c Config) WithDefaults() Config {
	if c.Domain == "" {
		c.Domain = DefaultDomain
	}
	if c.Name == "" {
		c.Name = DefaultName
	}
	if c.Aliases == nil {
		c.Aliases = slices.Clone(DefaultAliases)
	}
	if c.QueryLog == 0 {
		c.QueryLog = querylog.DefaultEntries
	}
	return c
}

// Validate names the first bad field, its value and what is accepted.
func (c Config) Validate() error {
	d := strings.ToLower(strings.TrimSuffix(c.Domain, "."))
	switch {
	case d == "local" || strings.HasSuffix(d, ".local"):
		return fmt.Errorf("dns.domain %q: .local belongs to multicast DNS and laptops never ask a DNS server for it; use home.arpa", c.Domain)
	case d == "arpa" || strings.HasSuffix(d, "in-addr.arpa") || strings.HasSuffix(d, "ip6.arpa"):
		return fmt.Errorf("dns.domain %q: reverse-lookup zones cannot be the local domain; use home.arpa", c.Domain)
	}
	if err := localnames.CheckName(d); err != nil {
		return fmt.Errorf("dns.domain %q: %v; want a domain such as home.arpa", c.Domain, err)
	}
	if err := localnames.CheckLabel(c.Name); err != nil {
		return fmt.Errorf("dns.name %q: %v; want one label such as redoubt", c.Name, err)
	}
	if len(c.Aliases) > 16 {
		return fmt.Errorf("dns.aliases: %d names, at most 16", len(c.Aliases))
	}
	for i, a := range c.Aliases {
		if err := localnames.CheckLabel(a); err != nil {
			return fmt.Errorf("dns.aliases %q: %v; want one label such as setup", a, err)
		}
		if strings.EqualFold(a, c.Name) {
			return fmt.Errorf("dns.aliases %q: it is already dns.name", a)
		}
		if slices.ContainsFunc(c.Aliases[:i], func(s string) bool { return strings.EqualFold(s, a) }) {
			return fmt.Errorf("dns.aliases %q: listed twice", a)
		}
	}
	if c.QueryLog < 64 || c.QueryLog > 65536 {
		return fmt.Errorf("dns.query_log %d: want from 64 to 65536 entries", c.QueryLog)
	}
	return nil
}

// Deps are what the resolver needs from the rest of the box.
type Deps struct {
	Logger *slog.Logger
	// LAN is the box's LAN address with the LAN's prefix.
	LAN netip.Prefix
	// SetupPending reports whether the owner has yet to finish setup: while it
	// does, captive-portal probes are answered with the box's address.
	SetupPending func() bool
	// Queries is the query log the server records into.
	Queries *querylog.Log
	// MACOf, if set, returns the hardware address a LAN client last used (zero
	// if unknown), for the query log.
	MACOf func(netip.Addr) [6]byte
}

// Server is the running resolver.
type Server struct {
	log     *slog.Logger
	lan     netip.Prefix
	zone    *localnames.Zone
	queries *querylog.Log
	guard   *guard.Guard
	srv     *dnsserver.Server
	logRate ratelimit.Limiter

	mu     sync.Mutex
	cfg    Config
	closed bool
	pc     net.PacketConn
	ln     net.Listener
}

// New builds the resolver; Serve runs it.
func New(cfg Config, deps Deps) (*Server, error) {
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if deps.Queries == nil {
		return nil, errors.New("dns: Deps.Queries is required")
	}
	if deps.SetupPending == nil {
		return nil, errors.New("dns: Deps.SetupPending is required")
	}
	if deps.Logger == nil {
		deps.Logger = slog.Default()
	}
	if !deps.LAN.Addr().Is4() {
		return nil, fmt.Errorf("dns: the LAN address %v is not IPv4", deps.LAN)
	}
	s := &Server{
		cfg:     cfg,
		log:     deps.Logger,
		lan:     deps.LAN,
		queries: deps.Queries,
		logRate: ratelimit.Limiter{Rate: 5, Burst: 20},
	}
	var err error
	if s.zone, err = localnames.New(s.zoneConfig(cfg), deps.Logger); err != nil {
		return nil, fmt.Errorf("dns: %w", err)
	}
	s.guard = guard.New(guard.Config{
		OnShed:      deps.Queries.CountDropped,
		OnMalformed: deps.Queries.CountMalformed,
		Logger:      deps.Logger,
	})
	maxTCP := 256
	sc := &dnsserver.Config{
		Zone:          ".",
		Transport:     "dns",
		Port:          fmt.Sprint(Port),
		ListenHosts:   []string{""},
		ReadTimeout:   2 * time.Second,
		WriteTimeout:  2 * time.Second,
		IdleTimeout:   5 * time.Second,
		MaxTCPQueries: &maxTCP,
	}
	for _, p := range s.chain(deps) {
		sc.AddPlugin(p)
	}
	s.srv, err = dnsserver.NewServer(fmt.Sprintf("dns://:%d", Port), []*dnsserver.Config{sc})
	if err != nil {
		return nil, fmt.Errorf("dns: building the server: %w", err)
	}
	return s, nil
}

// chain is the plugin chain, first to last.
func (s *Server) chain(deps Deps) []plugin.Plugin {
	return []plugin.Plugin{
		func(next plugin.Handler) plugin.Handler {
			return &qlplugin.Plugin{Next: next, Log: deps.Queries, MACOf: deps.MACOf, OnFresh: s.logFresh}
		},
		func(next plugin.Handler) plugin.Handler { return &guard.Plugin{Next: next} },
		func(next plugin.Handler) plugin.Handler { return bufsize.Bufsize{Next: next, Size: 1232} },
		func(next plugin.Handler) plugin.Handler {
			return &captive.Plugin{Next: next, Pending: deps.SetupPending, Addr: deps.LAN.Addr()}
		},
		func(next plugin.Handler) plugin.Handler { return &localnames.Plugin{Next: next, Zone: s.zone} },
		func(plugin.Handler) plugin.Handler { return &sinkhole.Plugin{Rcode: dns.RcodeNameError} },
	}
}

func (s *Server) zoneConfig(cfg Config) localnames.Config {
	return localnames.Config{
		Domain:  cfg.Domain,
		Box:     cfg.Name,
		Aliases: cfg.Aliases,
		Addr:    s.lan.Addr(),
		Prefix:  s.lan.Masked(),
	}
}

// logFresh logs a name a device looked up for the first time (as far as the
// query log remembers), when it was stopped; rate-limited.
func (s *Server) logFresh(q querylog.Query) {
	if q.Outcome != querylog.Stopped {
		return
	}
	if ok, n := s.logRate.Allow(time.Now()); ok {
		s.log.Info("stopped a lookup", "client", q.Client, "name", querylog.Normalize(q.Name),
			"type", dns.TypeToString[q.Type], "class", querylog.Classify(querylog.Normalize(q.Name)).String(),
			"suppressed", n)
	}
}

// Serve answers queries on pc (UDP) and ln (TCP), both on port 53 of the LAN
// address, until Close. It returns the first error that stopped either, or nil
// after Close. The Server owns pc and ln from then on.
func (s *Server) Serve(pc net.PacketConn, ln net.Listener) error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		pc.Close()
		ln.Close()
		return nil
	}
	s.pc, s.ln = pc, ln
	s.mu.Unlock()

	errc := make(chan error, 2)
	go func() { errc <- s.serveUDP(pc) }()
	go func() { errc <- s.srv.Serve(s.guard.Listener(ln)) }()
	var first error
	for range 2 {
		err := <-errc
		if err != nil && first == nil && !s.isClosed() {
			first = err
			// One transport failed: stop the other too.
			s.Close()
		}
	}
	if first != nil {
		return fmt.Errorf("dns: %w", first)
	}
	return nil
}

func (s *Server) isClosed() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closed
}

// Close stops the server and closes its sockets.
func (s *Server) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	pc, ln := s.pc, s.ln
	s.mu.Unlock()
	s.srv.Stop()
	// Stop does nothing for a transport whose serve loop has not started yet.
	if pc != nil {
		pc.Close()
	}
	if ln != nil {
		ln.Close()
	}
	return nil
}

// Reconfig applies a new [dns] section: the domain and the box's names change at
// once; the query log's size needs a restart.
func (s *Server) Reconfig(cfg Config) error {
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if cfg.QueryLog != s.cfg.QueryLog {
		return fmt.Errorf("dns.query_log changes only with a restart (%d → %d)", s.cfg.QueryLog, cfg.QueryLog)
	}
	if err := s.zone.Reconfig(s.zoneConfig(cfg)); err != nil {
		return fmt.Errorf("dns: %w", err)
	}
	s.cfg = cfg
	return nil
}

// Names is the box's local names, for the rooms that add some: the DHCP room
// (SetHost), the tailnet (Set).
func (s *Server) Names() *localnames.Zone { return s.zone }

// Stats are the resolver's own counters (the query log has the rest).
type Stats struct {
	Domain string      `json:"domain"`
	Names  int         `json:"names"`
	Guard  guard.Stats `json:"guard"`
}

// Stats returns the counters.
func (s *Server) Stats() Stats {
	return Stats{Domain: s.zone.Domain(), Names: len(s.zone.Records()), Guard: s.guard.Stats()}
}
