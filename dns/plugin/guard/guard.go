// Package guard protects the DNS server from its clients, below and inside CoreDNS:
//
//   - UDP: one reader drains the socket into a queue per client; a few workers
//     answer the queues in turn, one datagram from each client per round. While
//     the queue has room a client may use all of it, so one client alone gets the
//     whole server; when it is full, the datagram dropped is from the client with
//     the longest queue. A flood from one device therefore costs it its own
//     queries, not its neighbours'. Datagrams that cannot be a query (shorter than
//     a DNS header, or a response) are dropped unanswered: answering garbage only
//     helps reflection. Long-lived workers also spare every query a new goroutine.
//   - TCP: at most MaxConns connections, MaxConnsPerClient from one client; more are
//     closed at once. Slow clients are bounded by the server's read and idle
//     timeouts, huge frames by the 64 KiB DNS message limit.
//   - In the chain, the CoreDNS plugin "guard" refuses what the box never serves
//     (zone transfers, NOTIFY) and tells the TCP accounting which answers came from
//     the chain.
//
// Everything it keeps is bounded by MaxQueued and MaxConns. The dns room serves
// UDP through a Guard, wraps its TCP listener with one and puts the plugin in its
// chain; nothing else imports this package.
package guard

import (
	"log/slog"
	"net"
	"net/netip"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/miekg/dns"

	"github.com/redoubt/redoubt/internal/ratelimit"
)

// Config sizes a Guard. Zero fields take the defaults.
type Config struct {
	// MaxQueued bounds UDP datagrams waiting to be answered (default 1024).
	MaxQueued int
	// Workers answer UDP queries (default twice GOMAXPROCS, at least 4).
	Workers int
	// MaxConns bounds TCP connections (default 64), MaxConnsPerClient those of one
	// client (default 8).
	MaxConns          int
	MaxConnsPerClient int
	// OnShed is called for each datagram dropped because the queue was full and
	// its client had the longest queue; OnMalformed for each datagram or message
	// that could not be a query (see Guard.Malformed). Both may be nil; both must
	// be fast.
	OnShed      func(client netip.Addr)
	OnMalformed func(client netip.Addr)
	Logger      *slog.Logger
}

func (c Config) withDefaults() Config {
	if c.MaxQueued <= 0 {
		c.MaxQueued = 1024
	}
	if c.Workers <= 0 {
		c.Workers = max(4, 2*runtime.GOMAXPROCS(0))
	}
	if c.MaxConns <= 0 {
		c.MaxConns = 64
	}
	if c.MaxConnsPerClient <= 0 {
		c.MaxConnsPerClient = 8
	}
	c.MaxConnsPerClient = min(c.MaxConnsPerClient, c.MaxConns)
	if c.OnShed == nil {
		c.OnShed = func(netip.Addr) {}
	}
	if c.OnMalformed == nil {
		c.OnMalformed = func(netip.Addr) {}
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return c
}

// Stats are a Guard's counters.
type Stats struct {
	Queued int `json:"queued"` // UDP datagrams waiting now
	// Shed: datagrams dropped from the longest queue of a full server.
	Shed uint64 `json:"shed"`
	// NotQuery: datagrams dropped unanswered (too short, or a response).
	NotQuery uint64 `json:"not_query"`
	// Malformed: queries answered FORMERR because they could not be parsed.
	Malformed uint64 `json:"malformed"`
	// TCPConns: connections open now; TCPRefused: connections closed at once
	// because of the limits.
	TCPConns   int    `json:"tcp_conns"`
	TCPRefused uint64 `json:"tcp_refused"`
}

// Guard holds the admission state shared by a server's UDP workers, TCP listener
// and plugin.
type Guard struct {
	cfg     Config
	logRate ratelimit.Limiter
	q       fairQueue

	mu       sync.Mutex // guards the TCP accounting
	conns    int
	connsPer map[netip.Addr]int

	shed, notQuery, malformed, tcpRefused atomic.Uint64
}

// New returns a Guard.
func New(cfg Config) *Guard {
	g := &Guard{
		cfg:      cfg.withDefaults(),
		logRate:  ratelimit.Limiter{Rate: 1, Burst: 5},
		connsPer: make(map[netip.Addr]int),
	}
	g.q.init(g.cfg.MaxQueued)
	return g
}

// Stats returns the counters.
func (g *Guard) Stats() Stats {
	g.mu.Lock()
	conns := g.conns
	g.mu.Unlock()
	return Stats{
		Queued:     g.q.len(),
		Shed:       g.shed.Load(),
		NotQuery:   g.notQuery.Load(),
		Malformed:  g.malformed.Load(),
		TCPConns:   conns,
		TCPRefused: g.tcpRefused.Load(),
	}
}

func (g *Guard) dropShed(client netip.Addr) {
	g.shed.Add(1)
	g.cfg.OnShed(client)
	if ok, n := g.logRate.Allow(time.Now()); ok {
		g.cfg.Logger.Warn("dropping DNS queries: the server is saturated and this client has the longest queue",
			"client", client, "suppressed", n)
	}
}

// Malformed counts a query from client that could not be parsed and was answered
// FORMERR (the dns room's UDP path calls it; TCP is counted here).
func (g *Guard) Malformed(client netip.Addr) {
	g.malformed.Add(1)
	g.cfg.OnMalformed(client)
}

func (g *Guard) dropNotQuery(client netip.Addr) {
	g.notQuery.Add(1)
	g.cfg.OnMalformed(client)
}

// admitConn takes a TCP connection slot for client.
func (g *Guard) admitConn(client netip.Addr) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.conns >= g.cfg.MaxConns || g.connsPer[client] >= g.cfg.MaxConnsPerClient {
		g.tcpRefused.Add(1)
		return false
	}
	g.conns++
	g.connsPer[client]++
	return true
}

func (g *Guard) releaseConn(client netip.Addr) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.conns--
	if n := g.connsPer[client] - 1; n > 0 {
		g.connsPer[client] = n
	} else {
		delete(g.connsPer, client)
	}
}

// Addr is the remote address of a TCP connection the guard admitted. It wraps
// the transport's address (Unwrap), so CoreDNS still sees TCP.
type Addr struct {
	net.Addr
	ip netip.Addr
	g  *Guard
	// seen: the plugin chain saw the current query, so a FORMERR written for
	// it is the chain's answer, not a parse failure.
	seen atomic.Bool
}

// Unwrap returns the transport's address.
func (a *Addr) Unwrap() net.Addr { return a.Addr }

// IP returns the client's IP address.
func (a *Addr) IP() netip.Addr { return a.ip }

// wrote notes an answer for the current query: msg is the DNS message.
func (a *Addr) wrote(msg []byte) {
	seen := a.seen.Swap(false)
	if !seen && len(msg) >= 4 && int(msg[3]&0x0f) == dns.RcodeFormatError {
		a.g.Malformed(a.ip)
	}
}

func ipOf(a net.Addr) netip.Addr {
	switch x := a.(type) {
	case *net.UDPAddr:
		ip, _ := netip.AddrFromSlice(x.IP)
		return ip.Unmap()
	case *net.TCPAddr:
		ip, _ := netip.AddrFromSlice(x.IP)
		return ip.Unmap()
	case nil:
		return netip.Addr{}
	}
	ap, _ := netip.ParseAddrPort(a.String())
	return ap.Addr().Unmap()
}
