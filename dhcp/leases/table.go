// Package leases is the DHCP lease table: which LAN address belongs to which device
// and until when, and how an address is chosen for a device, offered, bound,
// renewed, released, declined and reclaimed. It does no I/O and reads no clock:
// callers pass the time, and persist what Changes reports. Only the dhcp room
// imports it.
//
// The rules, in the order they apply when a device asks for an address:
//
//  1. a reservation for the device's MAC;
//  2. the device's own lease, live or expired (a device gets its address back
//     after expiry and after a restart, as long as nobody else took it);
//  3. the address it asks for, when free;
//  4. a free address, probed from a hash of the MAC, so that a device tends to get
//     the same address even if the table was lost;
//  5. when no address was ever free, the longest-expired lease of another device,
//     then the oldest offer made to another device.
//
// A live lease is never taken from its device, reserved addresses go only to their
// MAC, and the first device the box ever binds (the owner's laptop) keeps its
// address even after its lease expires. Offers are promises, not grants: a
// REQUEST for an address only offered to someone else wins, so a flood of
// DISCOVERs cannot keep a device from binding.
package leases

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/fnv"
	"math/bits"
	"net/netip"
	"slices"
	"time"
)

// Lease is a device's claim on an address, as remembered across restarts.
type Lease struct {
	Addr netip.Addr
	MAC  [6]byte
	// ClientID is DHCP option 61 as the device sent it; nil when it sent none.
	ClientID []byte
	// Hostname is the device's name (option 12), already reduced to one DNS label.
	Hostname string
	// VendorClass is option 60 ("MSFT 5.0", "android-dhcp-14", "udhcp 1.35.0").
	VendorClass string
	Expiry      time.Time
	// FirstSeen is when the box first bound an address to this device.
	FirstSeen time.Time
	// Declined marks an address the device reported in use by someone else
	// (DHCPDECLINE): nobody gets it until Expiry.
	Declined bool
	// Owner marks the first device the box ever bound: its address is kept for
	// it, never given to another device, even after its lease expires.
	Owner bool
}

// Active reports whether the lease binds its address to its device at now.
func (l *Lease) Active(now time.Time) bool { return !l.Declined && now.Before(l.Expiry) }

// Client is a device asking for an address.
type Client struct {
	MAC         [6]byte
	ClientID    []byte
	Hostname    string
	VendorClass string
}

// key identifies a client: its client identifier when it sends one (RFC 2131
// §4.2), its hardware address otherwise.
func (c *Client) key() string {
	if len(c.ClientID) > 0 {
		return "id:" + string(c.ClientID)
	}
	return "hw:" + string(c.MAC[:])
}

func leaseKey(l *Lease) string {
	c := Client{MAC: l.MAC, ClientID: l.ClientID}
	return c.key()
}

// Defaults for Config fields left zero.
const (
	DefaultOfferHold   = 30 * time.Second
	DefaultDeclineHold = 10 * time.Minute
)

// Config shapes a Table.
type Config struct {
	// LAN is the box's address with the LAN prefix length.
	LAN netip.Prefix
	// Start and End bound the pool, inclusive, inside LAN.
	Start, End netip.Addr
	// LeaseTime is how long a binding lasts.
	LeaseTime time.Duration
	// Reservations give a MAC its own address, inside LAN (in the pool or not).
	Reservations map[[6]byte]netip.Addr
	// OfferHold is how long an offered address waits for the device's REQUEST
	// before another device may be offered it (default 30s).
	OfferHold time.Duration
	// DeclineHold is how long a declined address stays out of use (default 10m).
	DeclineHold time.Duration
}

// Errors Request returns: each means the box answers with a DHCPNAK.
var (
	ErrNotOnLAN  = errors.New("address is not a device address on the LAN")
	ErrNotInPool = errors.New("address is outside the pool")
	ErrReserved  = errors.New("address is kept for another device")
	ErrTaken     = errors.New("address is leased to another device")
	ErrDeclined  = errors.New("address was declined as in use")
	// ErrExhausted is Offer's: no address can be offered.
	ErrExhausted = errors.New("no free address in the pool")
)

// entry is what the table knows about one address.
type entry struct {
	lease  Lease
	leased bool   // lease is a record (bound, expired or declined)
	key    string // the lease's client key, when leased and not declined
	// An offer made to a client that has not requested it yet.
	offerKey   string
	offerUntil time.Time
}

// Table is the lease table. It is not safe for concurrent use.
type Table struct {
	cfg                 Config
	network, bcast, box uint32
	start, size         uint32 // the pool: size addresses from start
	reservedFor         map[netip.Addr][6]byte

	byAddr  map[netip.Addr]*entry
	byKey   map[string]*entry // a client's lease (bound or expired)
	byMAC   map[[6]byte]*entry
	offerOf map[string]netip.Addr // a client's outstanding offer

	// occupied has a bit for each pool address that has an entry; free
	// addresses are found by scanning it.
	occupied []uint64
	used     uint32

	ownerKey string
	dirty    map[netip.Addr]struct{}
}

// New returns an empty table.
func New(cfg Config) (*Table, error) {
	t := &Table{
		byAddr:  make(map[netip.Addr]*entry),
		byKey:   make(map[string]*entry),
		byMAC:   make(map[[6]byte]*entry),
		offerOf: make(map[string]netip.Addr),
		dirty:   make(map[netip.Addr]struct{}),
	}
	if err := t.SetConfig(cfg); err != nil {
		return nil, err
	}
	return t, nil
}

func u32(a netip.Addr) uint32 { b := a.As4(); return binary.BigEndian.Uint32(b[:]) }

func addrOf(v uint32) netip.Addr {
	var b [4]byte
	binary.BigEndian.PutUint32(b[:], v)
	return netip.AddrFrom4(b)
}

// SetConfig applies cfg. Leases that fall outside a new pool stay until their
// device next asks for them, and are refused then.
func (t *Table) SetConfig(cfg Config) error {
	if cfg.OfferHold <= 0 {
		cfg.OfferHold = DefaultOfferHold
	}
	if cfg.DeclineHold <= 0 {
		cfg.DeclineHold = DefaultDeclineHold
	}
	p := cfg.LAN
	if !p.IsValid() || !p.Addr().Is4() || p.Bits() < 16 || p.Bits() > 30 {
		return fmt.Errorf("leases: LAN %v: want an IPv4 prefix between /16 and /30", p)
	}
	if cfg.LeaseTime <= 0 {
		return fmt.Errorf("leases: LeaseTime %v: must be positive", cfg.LeaseTime)
	}
	mask := ^uint32(0) << (32 - p.Bits())
	box := u32(p.Addr())
	network := box & mask
	bcast := network | ^mask
	in := func(a netip.Addr) bool {
		v := u32(a)
		return a.Is4() && v&mask == network && v != network && v != bcast && v != box
	}
	if !cfg.Start.IsValid() || !cfg.End.IsValid() || !in(cfg.Start) || !in(cfg.End) || u32(cfg.End) < u32(cfg.Start) {
		return fmt.Errorf("leases: pool %v-%v: want two device addresses of %v, start first", cfg.Start, cfg.End, p.Masked())
	}
	reservedFor := make(map[netip.Addr][6]byte, len(cfg.Reservations))
	for mac, a := range cfg.Reservations {
		if !in(a) {
			return fmt.Errorf("leases: reservation %v for %x: not a device address on %v", a, mac, p.Masked())
		}
		if other, dup := reservedFor[a]; dup {
			return fmt.Errorf("leases: reservation %v: reserved for both %x and %x", a, other, mac)
		}
		reservedFor[a] = mac
	}
	t.cfg = cfg
	t.network, t.bcast, t.box = network, bcast, box
	t.start, t.size = u32(cfg.Start), u32(cfg.End)-u32(cfg.Start)+1
	t.reservedFor = reservedFor
	t.occupied = make([]uint64, (t.size+63)/64)
	t.used = 0
	for a := range t.byAddr {
		t.occupy(a, true)
	}
	return nil
}

// Config returns the config in force.
func (t *Table) Config() Config { return t.cfg }

func (t *Table) onLAN(a netip.Addr) bool {
	if !a.Is4() {
		return false
	}
	v := u32(a)
	return v&^(t.bcast^t.network) == t.network && v != t.network && v != t.bcast && v != t.box
}

func (t *Table) inPool(a netip.Addr) bool {
	v := u32(a)
	return a.Is4() && v >= t.start && v-t.start < t.size
}

// occupy sets or clears a pool address's bit.
func (t *Table) occupy(a netip.Addr, on bool) {
	if !t.inPool(a) || a == addrOf(t.box) {
		return
	}
	i := u32(a) - t.start
	w, b := i/64, uint64(1)<<(i%64)
	switch {
	case on && t.occupied[w]&b == 0:
		t.occupied[w] |= b
		t.used++
	case !on && t.occupied[w]&b != 0:
		t.occupied[w] &^= b
		t.used--
	}
}

func (t *Table) entry(a netip.Addr) *entry {
	e := t.byAddr[a]
	if e == nil {
		e = &entry{}
		t.byAddr[a] = e
		t.occupy(a, true)
	}
	return e
}

// forget removes an entry that holds neither a lease nor an offer.
func (t *Table) forget(a netip.Addr, e *entry) {
	if e.leased || e.offerKey != "" {
		return
	}
	delete(t.byAddr, a)
	t.occupy(a, false)
}

func (t *Table) markDirty(a netip.Addr) { t.dirty[a] = struct{}{} }

// Load fills an empty table with leases read back from disk. Leases that are not
// on the LAN any more are skipped and returned.
func (t *Table) Load(ls []Lease) (skipped []Lease) {
	for _, l := range ls {
		if !t.onLAN(l.Addr) {
			skipped = append(skipped, l)
			continue
		}
		if old := t.byAddr[l.Addr]; old != nil && old.leased {
			t.unindex(old)
		}
		e := t.entry(l.Addr)
		e.lease, e.leased = l, true
		if !l.Declined {
			k := leaseKey(&l)
			if prev := t.byKey[k]; prev != nil && prev != e {
				// Two records for one device (never written, but be
				// safe): keep the one that lasts longer.
				if !prev.lease.Expiry.Before(l.Expiry) {
					e.leased = false
					t.forget(l.Addr, e)
					skipped = append(skipped, l)
					continue
				}
				t.dropLease(prev)
			}
			t.index(e)
			if l.Owner {
				t.ownerKey = k
			}
		}
	}
	return skipped
}

func (t *Table) index(e *entry) {
	e.key = leaseKey(&e.lease)
	t.byKey[e.key] = e
	t.byMAC[e.lease.MAC] = e
}

func (t *Table) unindex(e *entry) {
	if e.key == "" {
		return
	}
	if t.byKey[e.key] == e {
		delete(t.byKey, e.key)
	}
	if t.byMAC[e.lease.MAC] == e {
		delete(t.byMAC, e.lease.MAC)
	}
	e.key = ""
}

// dropLease removes an entry's lease record (its device moved to another address
// or another device takes the address).
func (t *Table) dropLease(e *entry) {
	a := e.lease.Addr
	t.unindex(e)
	e.lease, e.leased = Lease{}, false
	t.markDirty(a)
	t.forget(a, e)
}

// find returns the entry holding c's lease. A device is known by its client
// identifier; when the record or the request has none, by its MAC, so a laptop
// keeps its address when it changes DHCP client.
func (t *Table) find(c *Client) *entry {
	if e := t.byKey[c.key()]; e != nil {
		return e
	}
	if e := t.byMAC[c.MAC]; e != nil && (len(e.lease.ClientID) == 0 || len(c.ClientID) == 0) {
		return e
	}
	return nil
}

// owns reports whether e's lease is c's.
func (t *Table) owns(e *entry, c *Client) bool {
	if !e.leased || e.lease.Declined {
		return false
	}
	if e.key == c.key() {
		return true
	}
	return e.lease.MAC == c.MAC && (len(e.lease.ClientID) == 0 || len(c.ClientID) == 0)
}

// check says whether a may be bound to c at now. An offer to another device does
// not stand in the way (a REQUEST wins over an offer).
func (t *Table) check(a netip.Addr, c *Client, now time.Time) error {
	if !t.onLAN(a) {
		return ErrNotOnLAN
	}
	mac, reserved := t.reservedFor[a]
	if reserved && mac != c.MAC {
		return ErrReserved
	}
	if !reserved && !t.inPool(a) {
		return ErrNotInPool
	}
	e := t.byAddr[a]
	if e == nil || !e.leased || t.owns(e, c) {
		return nil
	}
	switch {
	case e.lease.Declined && now.Before(e.lease.Expiry):
		return ErrDeclined
	case e.lease.Active(now):
		return ErrTaken
	case e.lease.Owner && !reserved:
		return ErrReserved
	}
	return nil // another device's lapsed lease: reclaimable
}

// offerable says whether a may be offered to c without taking it from anyone:
// allowed, and neither leased nor offered to another device.
func (t *Table) offerable(a netip.Addr, c *Client, now time.Time) bool {
	if t.check(a, c, now) != nil {
		return false
	}
	e := t.byAddr[a]
	if e == nil {
		return true
	}
	if e.leased && !t.owns(e, c) && !e.lease.Declined {
		return false // another device's lapsed lease: only when nothing else is left
	}
	return e.offerKey == "" || e.offerKey == c.key() || !now.Before(e.offerUntil)
}

// Offer chooses an address for c (DHCPDISCOVER) and holds it for OfferHold.
// requested is the address c asked for, or the zero Addr.
func (t *Table) Offer(c Client, requested netip.Addr, now time.Time) (netip.Addr, error) {
	a, ok := t.choose(&c, requested, now)
	if !ok {
		return netip.Addr{}, ErrExhausted
	}
	t.setOffer(&c, a, now)
	return a, nil
}

func (t *Table) choose(c *Client, requested netip.Addr, now time.Time) (netip.Addr, bool) {
	if a, ok := t.cfg.Reservations[c.MAC]; ok && t.offerable(a, c, now) {
		return a, true
	}
	if e := t.find(c); e != nil && t.offerable(e.lease.Addr, c, now) {
		return e.lease.Addr, true
	}
	if a, ok := t.offerOf[c.key()]; ok && t.offerable(a, c, now) {
		return a, true
	}
	if requested.IsValid() && t.offerable(requested, c, now) {
		return requested, true
	}
	if a, ok := t.probe(c); ok {
		return a, true
	}
	return t.reclaim(c, now)
}

// probe looks for a pool address nobody holds, starting from a hash of the MAC.
func (t *Table) probe(c *Client) (netip.Addr, bool) {
	if t.used >= t.size {
		return netip.Addr{}, false
	}
	h := fnv.New32a()
	h.Write(c.MAC[:])
	first := h.Sum32() % t.size
	if a, ok := t.scan(first, t.size); ok {
		return a, true
	}
	return t.scan(0, first)
}

// scan returns the first pool address with index in [from, to) that has no entry
// and is neither reserved nor the box's.
func (t *Table) scan(from, to uint32) (netip.Addr, bool) {
	for i := from; i < to; {
		word := (i/64 + 1) * 64
		// The first clear bit at or after i in its word; shifted-in zeros
		// make it the next word's start when the rest of the word is set.
		j := i + uint32(bits.TrailingZeros64(^(t.occupied[i/64] >> (i % 64))))
		if j >= word {
			i = word
			continue
		}
		if j >= to {
			break
		}
		a := addrOf(t.start + j)
		if _, res := t.reservedFor[a]; res || u32(a) == t.box {
			i = j + 1
			continue
		}
		return a, true
	}
	return netip.Addr{}, false
}

// reclaim finds, when no address was ever free, one held only by another
// device's lapsed lease (the longest lapsed first) or by an offer to another
// device (the oldest first), or one whose decline or offer hold has passed.
func (t *Table) reclaim(c *Client, now time.Time) (netip.Addr, bool) {
	var best netip.Addr
	rank, bestTime := 3, time.Time{}
	for a, e := range t.byAddr {
		if !t.inPool(a) {
			continue
		}
		if _, res := t.reservedFor[a]; res {
			continue
		}
		r, when := 3, time.Time{}
		switch {
		case e.leased && e.lease.Declined:
			if now.Before(e.lease.Expiry) {
				continue
			}
			r, when = 0, e.lease.Expiry
		case e.leased && (e.lease.Active(now) || e.lease.Owner):
			continue
		case e.offerKey != "" && e.offerKey != c.key() && now.Before(e.offerUntil):
			if e.leased {
				continue // a lapsed lease being offered back to someone
			}
			r, when = 2, e.offerUntil
		case e.leased:
			r, when = 1, e.lease.Expiry
		default:
			r, when = 0, e.offerUntil // a stale offer
		}
		if r < rank || (r == rank && when.Before(bestTime)) || (r == rank && when.Equal(bestTime) && a.Less(best)) {
			best, rank, bestTime = a, r, when
		}
	}
	return best, rank < 3
}

func (t *Table) setOffer(c *Client, a netip.Addr, now time.Time) {
	k := c.key()
	if prev, ok := t.offerOf[k]; ok && prev != a {
		t.clearOffer(prev)
	}
	e := t.entry(a)
	if e.offerKey != "" && e.offerKey != k {
		delete(t.offerOf, e.offerKey) // an offer taken back
	}
	e.offerKey, e.offerUntil = k, now.Add(t.cfg.OfferHold)
	t.offerOf[k] = a
}

func (t *Table) clearOffer(a netip.Addr) {
	e := t.byAddr[a]
	if e == nil || e.offerKey == "" {
		return
	}
	if t.offerOf[e.offerKey] == a {
		delete(t.offerOf, e.offerKey)
	}
	e.offerKey, e.offerUntil = "", time.Time{}
	t.forget(a, e)
}

// CancelOffer withdraws an offer made to c (it chose another server).
func (t *Table) CancelOffer(c Client) {
	if a, ok := t.offerOf[c.key()]; ok {
		t.clearOffer(a)
	}
}

// Request binds a to c for LeaseTime (DHCPREQUEST in any state), or says why not.
func (t *Table) Request(c Client, a netip.Addr, now time.Time) (Lease, error) {
	if err := t.check(a, &c, now); err != nil {
		return Lease{}, err
	}
	old := t.find(&c)
	e := t.entry(a)
	if e.leased && !t.owns(e, &c) {
		t.dropLease(e) // another device's lapsed lease or a passed decline
		e = t.entry(a)
	}
	l := Lease{
		Addr: a, MAC: c.MAC, ClientID: slices.Clone(c.ClientID), Hostname: c.Hostname,
		VendorClass: c.VendorClass, Expiry: now.Add(t.cfg.LeaseTime), FirstSeen: now,
	}
	if old != nil {
		l.FirstSeen, l.Owner = old.lease.FirstSeen, old.lease.Owner
		if l.Hostname == "" {
			l.Hostname = old.lease.Hostname
		}
		if l.VendorClass == "" {
			l.VendorClass = old.lease.VendorClass
		}
		if old != e {
			t.dropLease(old) // the device moves: one record per device
		}
	}
	k := c.key()
	if t.ownerKey == "" || t.ownerKey == k {
		l.Owner = true
	}
	if l.Owner {
		t.ownerKey = k
	}
	if e.leased && e.key != "" {
		t.unindex(e)
	}
	e.lease, e.leased = l, true
	t.index(e)
	if e.offerKey != "" {
		delete(t.offerOf, e.offerKey)
		e.offerKey, e.offerUntil = "", time.Time{}
	}
	if prev, ok := t.offerOf[k]; ok {
		t.clearOffer(prev)
	}
	t.markDirty(a)
	return l, nil
}

// Release ends c's lease on a now (DHCPRELEASE). The record stays, so c gets the
// same address back later unless the pool runs out. It reports the lease ended.
func (t *Table) Release(c Client, a netip.Addr, now time.Time) (Lease, bool) {
	e := t.byAddr[a]
	if e == nil || !t.owns(e, &c) || !e.lease.Active(now) {
		return Lease{}, false
	}
	e.lease.Expiry = now
	t.markDirty(a)
	return e.lease, true
}

// Decline takes a out of use for DeclineHold because c found it in use
// (DHCPDECLINE). Only the device the address was offered or bound to may decline
// it. It reports the lease record that was replaced, if any.
func (t *Table) Decline(c Client, a netip.Addr, now time.Time) (old Lease, ok bool) {
	e := t.byAddr[a]
	if e == nil {
		return Lease{}, false
	}
	owned := t.owns(e, &c)
	if !owned && e.offerKey != c.key() {
		return Lease{}, false
	}
	if owned {
		old = e.lease
		t.unindex(e)
	}
	t.clearOffer(a)
	e = t.entry(a)
	e.lease = Lease{Addr: a, MAC: c.MAC, Declined: true, Expiry: now.Add(t.cfg.DeclineHold), FirstSeen: now}
	e.leased = true
	t.markDirty(a)
	return old, true
}

// Sweep forgets offers and declines whose hold has passed, and lapsed leases
// left outside the pool by a new config. Call it every few seconds.
func (t *Table) Sweep(now time.Time) {
	for a, e := range t.byAddr {
		if e.offerKey != "" && !now.Before(e.offerUntil) {
			t.clearOffer(a)
			if t.byAddr[a] == nil {
				continue
			}
		}
		if !e.leased {
			continue
		}
		_, reserved := t.reservedFor[a]
		switch {
		case e.lease.Declined && !now.Before(e.lease.Expiry):
			t.dropLease(e)
		case !e.lease.Active(now) && !t.inPool(a) && !reserved:
			t.dropLease(e)
		}
	}
}

// Lookup returns the record for a.
func (t *Table) Lookup(a netip.Addr) (Lease, bool) {
	e := t.byAddr[a]
	if e == nil || !e.leased {
		return Lease{}, false
	}
	return e.lease, true
}

// LeaseOf returns c's lease record, live or lapsed.
func (t *Table) LeaseOf(c Client) (Lease, bool) {
	e := t.find(&c)
	if e == nil {
		return Lease{}, false
	}
	return e.lease, true
}

// Leases returns every record, ordered by address.
func (t *Table) Leases() []Lease {
	out := make([]Lease, 0, len(t.byAddr))
	for _, e := range t.byAddr {
		if e.leased {
			out = append(out, e.lease)
		}
	}
	slices.SortFunc(out, func(a, b Lease) int { return a.Addr.Compare(b.Addr) })
	return out
}

// Reserved reports whether a is reserved for mac in the config.
func (t *Table) Reserved(a netip.Addr, mac [6]byte) bool {
	m, ok := t.reservedFor[a]
	return ok && m == mac
}

// Counts are the table's sizes.
type Counts struct {
	PoolSize uint32 // addresses in the pool
	Free     uint32 // pool addresses nobody holds or is offered
	Active   int    // live leases
	Offers   int    // outstanding offers
	Records  int    // lease records, live, lapsed and declined
}

// Counts returns the table's sizes at now.
func (t *Table) Counts(now time.Time) Counts {
	c := Counts{PoolSize: t.size, Offers: len(t.offerOf)}
	if t.inPool(addrOf(t.box)) {
		c.PoolSize--
	}
	c.Free = c.PoolSize - t.used
	for _, e := range t.byAddr {
		if e.leased {
			c.Records++
			if e.lease.Active(now) {
				c.Active++
			}
		}
	}
	return c
}

// Changes returns what changed since the last MarkClean: records to write and
// addresses whose record is gone.
func (t *Table) Changes() (put []Lease, del []netip.Addr) {
	for a := range t.dirty {
		if e := t.byAddr[a]; e != nil && e.leased {
			put = append(put, e.lease)
		} else {
			del = append(del, a)
		}
	}
	return put, del
}

// Dirty reports whether anything changed since the last MarkClean.
func (t *Table) Dirty() bool { return len(t.dirty) > 0 }

// MarkClean records that Changes were persisted.
func (t *Table) MarkClean() { clear(t.dirty) }

// Equal reports whether two leases are the same record.
func Equal(a, b Lease) bool {
	return a.Addr == b.Addr && a.MAC == b.MAC && bytes.Equal(a.ClientID, b.ClientID) &&
		a.Hostname == b.Hostname && a.VendorClass == b.VendorClass && a.Expiry.Equal(b.Expiry) &&
		a.FirstSeen.Equal(b.FirstSeen) && a.Declined == b.Declined && a.Owner == b.Owner
}
