// Package leaklog keeps what the LAN port stopped: counters per kind and per device,
// a bounded log of attempts in which identical repeats are aggregated (count, first
// and last seen), the most recent dropped frames for export as a pcap file, and a
// live feed of changes.
//
// Memory is bounded whatever the laptop sends: a flood of distinct attempts evicts
// the least recently seen entries, and attempts that revealed a name are kept apart
// from those that did not, so a port scan cannot flush the names. A Log is safe for
// concurrent use. datapath/lan records into it; cmd builds it and hands it to the
// rooms that show it.
package leaklog

import (
	"cmp"
	"net"
	"net/netip"
	"slices"
	"sync"
	"time"

	"github.com/redoubt/redoubt/datapath/filter"
	"github.com/redoubt/redoubt/internal/timeseries"
)

// Attempt is one stopped packet or connection, as recorded.
type Attempt struct {
	Kind    filter.Kind
	MAC     [6]byte    // source hardware address: the device
	Src     netip.Addr // source address as sent (may be spoofed: see Kind)
	Dst     netip.Addr // destination address, invalid for non-IP frames
	Proto   string     // "tcp", "udp", "icmp", "arp", … ("" for non-IP)
	DstPort uint16
	App     string // application protocol recognised ("dns", "tls", "http", "quic", …)
	Name    string // the name it revealed, "" if none
}

// Entry is an aggregated Attempt: identical attempts share one Entry.
type Entry struct {
	Kind    string    `json:"kind"`
	MAC     string    `json:"mac"`
	Src     string    `json:"src,omitempty"`
	Dst     string    `json:"dst,omitempty"`
	Proto   string    `json:"proto,omitempty"`
	DstPort uint16    `json:"port,omitempty"`
	App     string    `json:"app,omitempty"`
	Name    string    `json:"name,omitempty"`
	Count   uint64    `json:"count"`
	First   time.Time `json:"first"`
	Last    time.Time `json:"last"`
}

// Counters are totals since the box started.
type Counters struct {
	Total   uint64            `json:"total"`
	ByKind  map[string]uint64 `json:"by_kind"`
	Devices []DeviceCounters  `json:"devices"`
	// Evicted counts log entries pushed out by newer ones (their counts stay in
	// the totals above).
	Evicted uint64 `json:"evicted"`
}

// DeviceCounters are the totals for one device on the LAN.
type DeviceCounters struct {
	MAC    string            `json:"mac"` // "other" collects devices beyond the limit
	IP     string            `json:"ip,omitempty"`
	Total  uint64            `json:"total"`
	ByKind map[string]uint64 `json:"by_kind"`
	Last   time.Time         `json:"last"`
}

// Config sizes a Log. Zero fields take the defaults.
type Config struct {
	// MaxEntries bounds the aggregated log (default 2048, half of it reserved for
	// attempts that revealed a name).
	MaxEntries int
	// MaxDevices bounds per-device counters (default 256); later devices are
	// counted together as "other".
	MaxDevices int
	// Frames is how many recent dropped frames are kept for pcap export
	// (default 1024), each cut to SnapLen bytes (default 2048).
	Frames  int
	SnapLen int
	// Now returns the time; tests set it.
	Now func() time.Time
}

func (c Config) withDefaults() Config {
	if c.MaxEntries <= 0 {
		c.MaxEntries = 2048
	}
	if c.MaxEntries < 2 {
		c.MaxEntries = 2
	}
	if c.MaxDevices <= 0 {
		c.MaxDevices = 256
	}
	if c.Frames <= 0 {
		c.Frames = 1024
	}
	if c.SnapLen <= 0 {
		c.SnapLen = 2048
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	return c
}

type key struct {
	kind    filter.Kind
	mac     [6]byte
	src     netip.Addr
	dst     netip.Addr
	proto   string
	dstPort uint16
	app     string
	name    string
}

type node struct {
	key         key
	count       uint64
	first, last time.Time
	prev, next  *node
	named       bool
}

// lru is an intrusive list, most recently seen at the front.
type lru struct {
	head, tail *node
	n          int
}

func (l *lru) pushFront(n *node) {
	n.prev, n.next = nil, l.head
	if l.head != nil {
		l.head.prev = n
	}
	l.head = n
	if l.tail == nil {
		l.tail = n
	}
	l.n++
}

func (l *lru) remove(n *node) {
	if n.prev != nil {
		n.prev.next = n.next
	} else {
		l.head = n.next
	}
	if n.next != nil {
		n.next.prev = n.prev
	} else {
		l.tail = n.prev
	}
	n.prev, n.next = nil, nil
	l.n--
}

type device struct {
	ip     netip.Addr
	total  uint64
	byKind [filter.NumKinds]uint64
	last   time.Time
}

type frame struct {
	at   time.Time
	size int // original length
	data []byte
}

// Log is the leak log. The zero value is not usable; call New.
type Log struct {
	cfg Config

	mu      sync.Mutex
	entries map[key]*node
	named   lru
	unnamed lru
	total   uint64
	byKind  [filter.NumKinds]uint64
	evicted uint64
	devices map[[6]byte]*device
	other   device
	frames  []frame
	next    int // next frame slot
	subs    map[*subscriber]struct{}
	series  *timeseries.Series
}

// New makes a Log.
func New(cfg Config) *Log {
	cfg = cfg.withDefaults()
	return &Log{
		cfg:     cfg,
		entries: make(map[key]*node),
		devices: make(map[[6]byte]*device),
		frames:  make([]frame, cfg.Frames),
		subs:    make(map[*subscriber]struct{}),
		series:  timeseries.New(kindNames(), 24*60),
	}
}

func kindNames() []string {
	names := make([]string, filter.NumKinds)
	for k := range names {
		names[k] = filter.Kind(k).String()
	}
	return names
}

// Reset forgets every entry, counter and frame (a factory reset: a new owner does
// not see the old one's history). Subscribers stay subscribed.
func (l *Log) Reset() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.entries = make(map[key]*node)
	l.named, l.unnamed = lru{}, lru{}
	l.total, l.evicted = 0, 0
	l.byKind = [filter.NumKinds]uint64{}
	l.devices = make(map[[6]byte]*device)
	l.other = device{}
	for i := range l.frames {
		l.frames[i] = frame{}
	}
	l.next = 0
	l.series.Reset()
}

// Series returns the attempts per kind over the last window (at most a day), in
// buckets of step.
func (l *Log) Series(window, step time.Duration) timeseries.Snapshot {
	return l.series.Snapshot(l.cfg.Now(), window, step)
}

// Record adds an attempt. raw, if not nil, is the dropped frame; a copy of its first
// SnapLen bytes is kept for pcap export.
func (l *Log) Record(a Attempt, raw []byte) {
	now := l.cfg.Now()
	k := key{a.Kind, a.MAC, a.Src, a.Dst, a.Proto, a.DstPort, a.App, a.Name}

	l.series.Add(now, int(a.Kind))
	l.mu.Lock()
	l.total++
	l.byKind[a.Kind]++
	l.countDevice(a, now)
	if raw != nil {
		l.keepFrame(raw, now)
	}
	n := l.entries[k]
	fresh := n == nil
	if fresh {
		n = &node{key: k, first: now, named: a.Name != ""}
		l.entries[k] = n
		l.insert(n)
	} else {
		l.list(n).remove(n)
		l.list(n).pushFront(n)
	}
	n.count++
	n.last = now
	var e Entry
	if len(l.subs) > 0 {
		e = n.entry()
		for s := range l.subs {
			s.offer(e)
		}
	}
	l.mu.Unlock()
}

func (l *Log) list(n *node) *lru {
	if n.named {
		return &l.named
	}
	return &l.unnamed
}

// insert adds a new node, evicting the least recently seen one of its half when
// the log is full.
func (l *Log) insert(n *node) {
	half := l.cfg.MaxEntries / 2
	lst := l.list(n)
	if lst.n >= half {
		old := lst.tail
		lst.remove(old)
		delete(l.entries, old.key)
		l.evicted++
	}
	lst.pushFront(n)
}

func (l *Log) countDevice(a Attempt, now time.Time) {
	d := l.devices[a.MAC]
	if d == nil {
		if len(l.devices) >= l.cfg.MaxDevices {
			d = &l.other
		} else {
			d = &device{}
			l.devices[a.MAC] = d
		}
	}
	d.total++
	d.byKind[a.Kind]++
	d.last = now
	if a.Kind != filter.Spoofed && a.Src.Is4() && !a.Src.IsUnspecified() && d != &l.other {
		d.ip = a.Src
	}
}

func (l *Log) keepFrame(raw []byte, now time.Time) {
	f := &l.frames[l.next]
	l.next = (l.next + 1) % len(l.frames)
	n := min(len(raw), l.cfg.SnapLen)
	if cap(f.data) < n {
		f.data = make([]byte, n, l.cfg.SnapLen)
	}
	f.data = f.data[:n]
	copy(f.data, raw)
	f.size = len(raw)
	f.at = now
}

func (n *node) entry() Entry {
	e := Entry{
		Kind:    n.key.kind.String(),
		MAC:     net.HardwareAddr(n.key.mac[:]).String(),
		Proto:   n.key.proto,
		DstPort: n.key.dstPort,
		App:     n.key.app,
		Name:    n.key.name,
		Count:   n.count,
		First:   n.first,
		Last:    n.last,
	}
	if n.key.src.IsValid() {
		e.Src = n.key.src.String()
	}
	if n.key.dst.IsValid() {
		e.Dst = n.key.dst.String()
	}
	return e
}

// Entries returns the aggregated log, most recently seen first.
func (l *Log) Entries() []Entry {
	l.mu.Lock()
	out := make([]Entry, 0, len(l.entries))
	for _, n := range l.entries {
		out = append(out, n.entry())
	}
	l.mu.Unlock()
	slices.SortFunc(out, func(a, b Entry) int {
		if c := b.Last.Compare(a.Last); c != 0 {
			return c
		}
		return cmp.Compare(b.Count, a.Count)
	})
	return out
}

// Counters returns the totals.
func (l *Log) Counters() Counters {
	l.mu.Lock()
	defer l.mu.Unlock()
	c := Counters{Total: l.total, ByKind: kindMap(&l.byKind), Evicted: l.evicted}
	for mac, d := range l.devices {
		c.Devices = append(c.Devices, d.counters(net.HardwareAddr(mac[:]).String()))
	}
	if l.other.total > 0 {
		c.Devices = append(c.Devices, l.other.counters("other"))
	}
	slices.SortFunc(c.Devices, func(a, b DeviceCounters) int { return cmp.Compare(b.Total, a.Total) })
	return c
}

func (d *device) counters(mac string) DeviceCounters {
	dc := DeviceCounters{MAC: mac, Total: d.total, ByKind: kindMap(&d.byKind), Last: d.last}
	if d.ip.IsValid() {
		dc.IP = d.ip.String()
	}
	return dc
}

func kindMap(counts *[filter.NumKinds]uint64) map[string]uint64 {
	m := make(map[string]uint64)
	for k, n := range counts {
		if n > 0 {
			m[filter.Kind(k).String()] = n
		}
	}
	return m
}
