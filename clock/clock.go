// Package clock is the box's time. A board has no real-time clock: until it
// has asked time servers, its clock may be years off, and what depends on the
// time (the audit log's records and signatures, backups and their S3
// signatures, TLS certificates' validity) must wait. The clock asks NTP servers
// (SNTP, RFC 4330) through the external VPN only — the egress dialer — and says
// when it is synced, how far off the system clock was, and why it waits.
//
// Now gives the system time corrected by the measured offset (the system clock
// is set only when Config.SetSystem says so, as on a board). On a machine whose
// own clock is kept by its operating system, Config.Source = "system" trusts it
// at once.
//
// The daemon builds the clock and hands it (as an interface) to the rooms that
// wait for it.
package clock

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"sync"
	"time"

	"github.com/redoubt/redoubt/vpn/egress"
)

// Config is the [clock] section of the config file.
type Config struct {
	// Source is "ntp" (default: time servers through the VPN) or "system"
	// (the operating system keeps the time; trust it).
	Source string `toml:"source"`
	// Servers are NTP servers, "host" or "host:port" (default
	// time.cloudflare.com, ntp.ripe.net, time.nist.gov). The box asks all of
	// them and takes the median offset.
	Servers []string `toml:"servers"`
	// Every is how often the time is checked again once synced (default 1h;
	// 1m to 24h).
	Every Duration `toml:"every"`
	// SetSystem sets the operating system's clock from the servers (a board
	// with no real-time clock). Off by default.
	SetSystem bool `toml:"set_system"`
}

// Duration is a time.Duration written as "1h30m" in the config file.
type Duration struct{ time.Duration }

// UnmarshalText reads "1h30m".
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	if err != nil {
		return fmt.Errorf("%q: want a duration such as 1h or 30m", b)
	}
	d.Duration = v
	return nil
}

// MarshalText writes the duration.
func (d Duration) MarshalText() ([]byte, error) { return []byte(d.String()), nil }

// DefaultServers are asked when the config names none.
var DefaultServers = []string{"time.cloudflare.com", "ntp.ripe.net", "time.nist.gov"}

// WithDefaults fills unset fields.
func (c Config) WithDefaults() Config {
	if c.Source == "" {
		c.Source = "ntp"
	}
	if len(c.Servers) == 0 {
		c.Servers = DefaultServers
	}
	if c.Every.Duration == 0 {
		c.Every.Duration = time.Hour
	}
	return c
}

// Validate names the bad field.
func (c Config) Validate() error {
	if c.Source != "ntp" && c.Source != "system" {
		return fmt.Errorf("clock.source %q: want ntp or system", c.Source)
	}
	if c.Source == "ntp" && len(c.Servers) == 0 {
		return errors.New("clock.servers: name at least one NTP server")
	}
	if len(c.Servers) > 8 {
		return fmt.Errorf("clock.servers: %d servers: at most 8", len(c.Servers))
	}
	for _, s := range c.Servers {
		host, port, err := net.SplitHostPort(s)
		if err != nil {
			host, port = s, "123"
		}
		if host == "" || port == "" || len(s) > 253 {
			return fmt.Errorf("clock.servers: %q: want a host name or address, with :port if not 123", s)
		}
	}
	if c.Every.Duration < time.Minute || c.Every.Duration > 24*time.Hour {
		return fmt.Errorf("clock.every %s: want 1m to 24h", c.Every.Duration)
	}
	return nil
}

// Deps are what the clock needs.
type Deps struct {
	// Dialer reaches the servers: the VPN's egress dialer. Required for
	// Source "ntp".
	Dialer egress.Dialer
	Logger *slog.Logger
	// SetSystemTime sets the OS clock (SetSystem); tests replace it.
	SetSystemTime func(time.Time) error
}

// Status is what the clock says about itself.
type Status struct {
	Source string        `json:"source"`
	Synced bool          `json:"synced"`
	Offset time.Duration `json:"offset_ns"`
	// Server answered last; LastSync is when (the clock's own time).
	Server   string    `json:"server,omitempty"`
	LastSync time.Time `json:"last_sync,omitzero"`
	// Waiting says why the clock is not synced, or what failed last.
	Waiting string `json:"waiting,omitempty"`
}

// Clock is the box's time.
type Clock struct {
	cfg  Config
	deps Deps
	log  *slog.Logger

	mu       sync.Mutex
	offset   time.Duration
	synced   bool
	server   string
	lastSync time.Time
	lastErr  string
	syncedCh chan struct{} // closed once synced
	kick     chan struct{}
}

// New makes the clock. With Source "system" it is synced at once.
func New(cfg Config, deps Deps) (*Clock, error) {
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if deps.Logger == nil {
		deps.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Source == "ntp" && deps.Dialer == nil {
		return nil, errors.New("clock: no egress dialer for NTP")
	}
	c := &Clock{cfg: cfg, deps: deps, log: deps.Logger, syncedCh: make(chan struct{}), kick: make(chan struct{}, 1)}
	if cfg.Source == "system" {
		c.synced = true
		close(c.syncedCh)
	}
	return c, nil
}

// Now is the box's best idea of the time.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return time.Now().Add(c.offset)
}

// Synced says whether Now can be trusted.
func (c *Clock) Synced() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.synced
}

// ErrNotSynced is what waiting work says.
var ErrNotSynced = errors.New("waiting for the clock: the time is not yet synced through the VPN")

// Wait returns when the clock is synced, or ctx's error joined with
// ErrNotSynced.
func (c *Clock) Wait(ctx context.Context) error {
	c.mu.Lock()
	ch := c.syncedCh
	c.mu.Unlock()
	select {
	case <-ch:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("%w: %w", ErrNotSynced, ctx.Err())
	}
}

// Status reports the clock's state.
func (c *Clock) Status() Status {
	c.mu.Lock()
	defer c.mu.Unlock()
	st := Status{Source: c.cfg.Source, Synced: c.synced, Offset: c.offset, Server: c.server, LastSync: c.lastSync, Waiting: c.lastErr}
	if !c.synced && st.Waiting == "" {
		st.Waiting = ErrNotSynced.Error()
	}
	return st
}

// Kick asks for a sync now (the VPN just came up).
func (c *Clock) Kick() {
	select {
	case c.kick <- struct{}{}:
	default:
	}
}

// Run keeps the clock synced until ctx ends: at once, then every
// Config.Every; after a failure again in 5 s, doubling up to 5 minutes.
func (c *Clock) Run(ctx context.Context) {
	if c.cfg.Source != "ntp" {
		return
	}
	retry := 5 * time.Second
	for {
		wait := c.cfg.Every.Duration
		if err := c.Sync(ctx); err != nil {
			if ctx.Err() != nil {
				return
			}
			c.log.Info("the clock is not synced yet", "err", err, "next_try", retry)
			wait, retry = retry, min(retry*2, 5*time.Minute)
		} else {
			retry = 5 * time.Second
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-c.kick:
			t.Stop()
		case <-t.C:
		}
	}
}

// Sync asks every server once and applies the median offset.
func (c *Clock) Sync(ctx context.Context) error {
	type answer struct {
		server string
		offset time.Duration
	}
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		got  []answer
		errs []error
	)
	for _, s := range c.cfg.Servers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			qctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			defer cancel()
			off, err := Query(qctx, c.deps.Dialer, s)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				errs = append(errs, err)
				return
			}
			got = append(got, answer{s, off})
		}()
	}
	wg.Wait()
	if len(got) == 0 {
		err := fmt.Errorf("no time server answered through the VPN: %w", errors.Join(errs...))
		c.mu.Lock()
		c.lastErr = err.Error()
		c.mu.Unlock()
		return err
	}
	slices.SortFunc(got, func(a, b answer) int { return int(a.offset - b.offset) })
	med := got[len(got)/2]
	off := med.offset
	if c.cfg.SetSystem && c.deps.SetSystemTime != nil && (off > time.Second || off < -time.Second) {
		if err := c.deps.SetSystemTime(time.Now().Add(off)); err != nil {
			c.log.Warn("setting the system clock", "err", err)
		} else {
			off = 0
		}
	}
	c.mu.Lock()
	first := !c.synced
	c.offset, c.server, c.lastErr = off, med.server, ""
	c.lastSync = time.Now().Add(off)
	if first {
		c.synced = true
		close(c.syncedCh)
	}
	c.mu.Unlock()
	if first {
		c.log.Info("the clock is synced through the VPN", "server", med.server, "offset", med.offset.Round(time.Millisecond), "answers", len(got))
	}
	return nil
}

// NTP's epoch (1900) to Unix's (1970).
const ntpEpochOffset = 2208988800

// Query asks one NTP server for the offset of the local clock (add it to
// time.Now to get the server's time), through d.
func Query(ctx context.Context, d egress.Dialer, server string) (time.Duration, error) {
	addr := server
	if _, _, err := net.SplitHostPort(server); err != nil {
		addr = net.JoinHostPort(server, "123")
	}
	conn, err := d.DialContext(ctx, "udp", addr)
	if err != nil {
		return 0, fmt.Errorf("ntp %s: %w", server, err)
	}
	defer conn.Close()
	if dl, ok := ctx.Deadline(); ok {
		conn.SetDeadline(dl)
	}
	req := make([]byte, 48)
	req[0] = 0<<6 | 4<<3 | 3 // no leap warning, version 4, client
	// The transmit timestamp is random: the answer must echo it, so an
	// off-path forger cannot answer, and it reveals nothing of our clock.
	rand.Read(req[40:48])
	t1 := time.Now()
	if _, err := conn.Write(req); err != nil {
		return 0, fmt.Errorf("ntp %s: %w", server, err)
	}
	buf := make([]byte, 128)
	for {
		n, err := conn.Read(buf)
		if err != nil {
			return 0, fmt.Errorf("ntp %s: no answer: %w", server, err)
		}
		t4 := t1.Add(time.Since(t1)) // monotonic
		off, err := parseAnswer(buf[:n], req[40:48], t1, t4)
		if err != nil {
			if errors.Is(err, errNotOurs) {
				continue
			}
			return 0, fmt.Errorf("ntp %s: %w", server, err)
		}
		return off, nil
	}
}

var errNotOurs = errors.New("an answer to another request")

// parseAnswer checks an NTP server's answer to our request (whose transmit
// timestamp was nonce) and returns the clock offset.
func parseAnswer(b, nonce []byte, t1, t4 time.Time) (time.Duration, error) {
	if len(b) < 48 {
		return 0, fmt.Errorf("answer of %d bytes: want at least 48", len(b))
	}
	leap, version, mode := b[0]>>6, (b[0]>>3)&7, b[0]&7
	if mode != 4 {
		return 0, fmt.Errorf("answer in mode %d: want 4 (server)", mode)
	}
	if version < 3 || version > 4 {
		return 0, fmt.Errorf("answer of NTP version %d", version)
	}
	if string(b[24:32]) != string(nonce) {
		return 0, errNotOurs
	}
	stratum := b[1]
	if stratum == 0 {
		return 0, fmt.Errorf("the server sent a kiss-o'-death (%q)", b[12:16])
	}
	if leap == 3 || stratum > 15 {
		return 0, errors.New("the server's clock is not synchronized")
	}
	t2, t3 := ntpTime(b[32:40]), ntpTime(b[40:48])
	if t3.IsZero() || t2.IsZero() {
		return 0, errors.New("the answer has no timestamps")
	}
	offset := (t2.Sub(t1) + t3.Sub(t4)) / 2
	return offset, nil
}

// ntpTime reads a 64-bit NTP timestamp, in the era nearest 2036's rollover
// rules (seconds with the top bit clear are after 2036).
func ntpTime(b []byte) time.Time {
	secs := uint64(binary.BigEndian.Uint32(b))
	frac := uint64(binary.BigEndian.Uint32(b[4:]))
	if secs == 0 && frac == 0 {
		return time.Time{}
	}
	if secs < 0x80000000 {
		secs += 1 << 32
	}
	nanos := (frac * 1e9) >> 32
	return time.Unix(int64(secs)-ntpEpochOffset, int64(nanos)).UTC()
}

// NTPTime writes t as a 64-bit NTP timestamp (for servers: the lab's).
func NTPTime(t time.Time) []byte {
	secs := uint64(t.Unix()+ntpEpochOffset) & 0xffffffff
	frac := (uint64(t.Nanosecond()) << 32) / 1e9
	b := binary.BigEndian.AppendUint32(nil, uint32(secs))
	return binary.BigEndian.AppendUint32(b, uint32(frac))
}

// Answer builds a server's answer to an NTP request received at rx, sent at
// now: what the lab's internet serves. It returns nil for what is not a
// client request.
func Answer(req []byte, rx, now time.Time) []byte {
	if len(req) < 48 || req[0]&7 != 3 {
		return nil
	}
	resp := make([]byte, 48)
	resp[0] = 0<<6 | 4<<3 | 4
	resp[1] = 2    // stratum
	resp[2] = 6    // poll
	resp[3] = 0xec // precision ~ 2^-20 s
	copy(resp[12:16], "LAB\x00")
	copy(resp[16:24], NTPTime(now.Add(-time.Minute)))
	copy(resp[24:32], req[40:48])
	copy(resp[32:40], NTPTime(rx))
	copy(resp[40:48], NTPTime(now))
	return resp
}
