// Package localnames holds the box's own names and is the CoreDNS plugin
// "localnames" that answers for them: the box and its services under the local
// domain (home.arpa by default, RFC 8375), the LAN devices the DHCP room leased
// addresses to, names other rooms add (team devices from the tailnet), and reverse
// lookups for the LAN prefix. It answers authoritatively inside those zones
// (NXDOMAIN for a name it does not hold) and passes every other name on.
//
// The names live in a Zone: an immutable table swapped whole on every change, so a
// query never takes a lock. The dns room builds the Zone and passes it to the
// rooms that add names (the DHCP room through its HostNames interface); nothing else
// imports this package.
package localnames

import (
	"cmp"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
)

// Sources of names. Box names always win; then DHCP leases; then other sources
// in alphabetical order. A name already taken by an earlier source is not
// answered for a later one.
const (
	SourceBox  = "box"
	SourceDHCP = "dhcp"
)

// Bounds on what other rooms may add.
const (
	MaxNamesPerSource = 1024
	MaxAddrsPerName   = 32
	// DefaultTTL is the TTL of local answers.
	DefaultTTL = 60
	// NegativeTTL is how long a client may remember that a local name does not
	// exist (the SOA's minimum): short, since a device's name appears with its
	// lease.
	NegativeTTL = 10
)

// Config describes the box's own names.
type Config struct {
	// Domain is the local domain, such as "home.arpa".
	Domain string
	// Box is the box's name in it ("redoubt" gives redoubt.home.arpa).
	Box string
	// Aliases are more names for the box: its services ("setup").
	Aliases []string
	// Addr is the box's LAN address; Prefix the LAN, whose reverse lookups the
	// zone answers.
	Addr   netip.Addr
	Prefix netip.Prefix
	// TTL of answers, in seconds (default DefaultTTL).
	TTL uint32
}

// Validate names the first bad field.
func (c Config) Validate() error {
	if err := CheckName(c.Domain); err != nil {
		return fmt.Errorf("domain %q: %v", c.Domain, err)
	}
	if err := CheckLabel(c.Box); err != nil {
		return fmt.Errorf("name %q: %v", c.Box, err)
	}
	for _, a := range c.Aliases {
		if err := CheckLabel(a); err != nil {
			return fmt.Errorf("alias %q: %v", a, err)
		}
		if strings.EqualFold(a, c.Box) {
			return fmt.Errorf("alias %q: it is already the box's name", a)
		}
	}
	if !c.Addr.Is4() {
		return fmt.Errorf("address %v: want the box's IPv4 LAN address", c.Addr)
	}
	if !c.Prefix.IsValid() || !c.Prefix.Addr().Is4() || !c.Prefix.Contains(c.Addr) {
		return fmt.Errorf("prefix %v: want the IPv4 LAN prefix holding %v", c.Prefix, c.Addr)
	}
	return nil
}

// CheckLabel accepts one DNS label of letters, digits and hyphens (RFC 952/1123),
// at most 63 characters, not starting or ending with a hyphen.
func CheckLabel(s string) error {
	if s == "" {
		return errors.New("empty")
	}
	if len(s) > 63 {
		return errors.New("a label is at most 63 characters")
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		case c == '-' && i > 0 && i < len(s)-1:
		default:
			return fmt.Errorf("use letters, digits and inner hyphens only (found %q)", c)
		}
	}
	return nil
}

// CheckName accepts a relative name of one or more labels.
func CheckName(s string) error {
	if s == "" {
		return errors.New("empty")
	}
	if len(s) > 200 {
		return errors.New("too long")
	}
	for _, l := range strings.Split(s, ".") {
		if err := CheckLabel(l); err != nil {
			return err
		}
	}
	return nil
}

// Zone is the box's local names. It is safe for concurrent use: queries read an
// immutable table, changes build a new one.
type Zone struct {
	log  *slog.Logger
	snap atomic.Pointer[table]

	mu      sync.Mutex // serialises changes
	cfg     Config
	leases  map[netip.Addr]string              // DHCP: address → label
	sources map[string]map[string][]netip.Addr // other sources: source → relative name → addresses
	serial  uint32                             // the SOA serial: counts the zone's versions
}

// New returns a Zone with the box's names.
func New(cfg Config, log *slog.Logger) (*Zone, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	z := &Zone{
		log:     log,
		leases:  make(map[netip.Addr]string),
		sources: make(map[string]map[string][]netip.Addr),
	}
	if err := z.Reconfig(cfg); err != nil {
		return nil, err
	}
	return z, nil
}

// Reconfig applies a new config: the domain, the box's names and addresses.
// Names other rooms added are kept (under the new domain).
func (z *Zone) Reconfig(cfg Config) error {
	if cfg.TTL == 0 {
		cfg.TTL = DefaultTTL
	}
	if err := cfg.Validate(); err != nil {
		return err
	}
	cfg.Domain = strings.ToLower(cfg.Domain)
	cfg.Box = strings.ToLower(cfg.Box)
	cfg.Aliases = slices.Clone(cfg.Aliases)
	for i := range cfg.Aliases {
		cfg.Aliases[i] = strings.ToLower(cfg.Aliases[i])
	}
	z.mu.Lock()
	defer z.mu.Unlock()
	z.cfg = cfg
	z.rebuild()
	return nil
}

// SetHost names a LAN device after its DHCP lease: name is a single label ("" to
// remove the address's name). A name held by another address moves to this one:
// the newest lease wins. Names that are not valid labels, that are the box's own,
// or addresses outside the LAN are ignored (and logged). It implements the DHCP
// room's HostNames interface.
func (z *Zone) SetHost(addr netip.Addr, name string) {
	name = strings.ToLower(name)
	z.mu.Lock()
	defer z.mu.Unlock()
	if !addr.Is4() || !z.cfg.Prefix.Contains(addr) || addr == z.cfg.Addr {
		z.log.Debug("lease name ignored: address is not a device on the LAN", "addr", addr, "name", name)
		return
	}
	if name == "" {
		if _, ok := z.leases[addr]; ok {
			delete(z.leases, addr)
			z.rebuild()
		}
		return
	}
	if err := CheckLabel(name); err != nil {
		z.log.Debug("lease name ignored", "addr", addr, "name", name, "err", err)
		return
	}
	if z.isBoxName(name) {
		z.log.Info("lease name ignored: it is one of the box's own names", "addr", addr, "name", name)
		return
	}
	if z.leases[addr] == name {
		return
	}
	if _, ok := z.leases[addr]; !ok && len(z.leases) >= MaxNamesPerSource {
		z.log.Warn("lease name ignored: too many leased names", "addr", addr, "name", name, "max", MaxNamesPerSource)
		return
	}
	for a, n := range z.leases {
		if n == name {
			delete(z.leases, a)
		}
	}
	z.leases[addr] = name
	z.rebuild()
}

// Set gives name (relative to the local domain: "alice-laptop.team" is
// alice-laptop.team.home.arpa) the addresses addrs on behalf of source, such as
// "tailnet"; no addresses removes the name. Each source manages its own names;
// "box" and "dhcp" are reserved.
func (z *Zone) Set(source, name string, addrs []netip.Addr) error {
	if err := CheckLabel(source); err != nil {
		return fmt.Errorf("localnames: source %q: %v", source, err)
	}
	source = strings.ToLower(source)
	if source == SourceBox || source == SourceDHCP {
		return fmt.Errorf("localnames: source %q is reserved", source)
	}
	if err := CheckName(name); err != nil {
		return fmt.Errorf("localnames: name %q: %v", name, err)
	}
	name = strings.ToLower(name)
	if len(addrs) > MaxAddrsPerName {
		return fmt.Errorf("localnames: name %q: %d addresses, at most %d", name, len(addrs), MaxAddrsPerName)
	}
	var clean []netip.Addr
	for _, a := range addrs {
		if !a.IsValid() {
			return fmt.Errorf("localnames: name %q: invalid address", name)
		}
		clean = append(clean, a.Unmap())
	}
	slices.SortFunc(clean, netip.Addr.Compare)
	clean = slices.Compact(clean)

	z.mu.Lock()
	defer z.mu.Unlock()
	names := z.sources[source]
	if len(clean) == 0 {
		if _, ok := names[name]; ok {
			delete(names, name)
			if len(names) == 0 {
				delete(z.sources, source)
			}
			z.rebuild()
		}
		return nil
	}
	if names == nil {
		names = make(map[string][]netip.Addr)
		z.sources[source] = names
	}
	if _, ok := names[name]; !ok && len(names) >= MaxNamesPerSource {
		return fmt.Errorf("localnames: source %q already has %d names", source, MaxNamesPerSource)
	}
	if slices.Equal(names[name], clean) {
		return nil
	}
	names[name] = clean
	z.rebuild()
	return nil
}

// Clear removes every name source added.
func (z *Zone) Clear(source string) {
	source = strings.ToLower(source)
	z.mu.Lock()
	defer z.mu.Unlock()
	if source == SourceDHCP {
		clear(z.leases)
	} else {
		delete(z.sources, source)
	}
	z.rebuild()
}

// Record is one name the zone answers for.
type Record struct {
	Name   string       `json:"name"` // fully qualified, without the final dot
	Addrs  []netip.Addr `json:"addrs"`
	Source string       `json:"source"`
}

// Records lists the names the zone answers for, sorted.
func (z *Zone) Records() []Record {
	t := z.snap.Load()
	var out []Record
	for name, n := range t.nodes {
		out = append(out, Record{Name: strings.TrimSuffix(name, "."), Addrs: slices.Concat(n.v4, n.v6), Source: n.source})
	}
	slices.SortFunc(out, func(a, b Record) int { return cmp.Compare(a.Name, b.Name) })
	return out
}

// Domain returns the local domain, without the final dot.
func (z *Zone) Domain() string { return strings.TrimSuffix(z.snap.Load().origin, ".") }

func (z *Zone) isBoxName(label string) bool {
	return label == z.cfg.Box || slices.Contains(z.cfg.Aliases, label)
}

// rebuild builds the table from the current state and swaps it in. z.mu is held.
func (z *Zone) rebuild() {
	z.serial++
	b := newBuilder(z.cfg, z.serial)
	for _, l := range append([]string{z.cfg.Box}, z.cfg.Aliases...) {
		b.add(l, SourceBox, []netip.Addr{z.cfg.Addr})
	}
	b.ptr(z.cfg.Addr, z.cfg.Box)
	addrs := slices.SortedFunc(maps.Keys(z.leases), netip.Addr.Compare)
	for _, a := range addrs {
		if b.add(z.leases[a], SourceDHCP, []netip.Addr{a}) {
			b.ptr(a, z.leases[a])
		}
	}
	for _, src := range slices.Sorted(maps.Keys(z.sources)) {
		names := z.sources[src]
		for _, name := range slices.Sorted(maps.Keys(names)) {
			if !b.add(name, src, names[name]) {
				z.log.Debug("name not answered: an earlier source holds it", "name", name, "source", src)
				continue
			}
			for _, a := range names[name] {
				b.ptr(a, name)
			}
		}
	}
	z.snap.Store(b.t)
}
