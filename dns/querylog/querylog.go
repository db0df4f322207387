// Package querylog keeps the names the LAN's devices looked up: one aggregated entry
// per device and name (how often, first and last seen, the query types asked, how
// the box answered, and a class from a small documented table), counters per device,
// and a live feed of changes. The CoreDNS plugin that records into it is
// dns/plugin/querylog; the plugins that answer say how through Mark.
//
// Memory is bounded whatever the devices send: a flood of distinct names evicts the
// least recently seen entries, and names the table classifies are kept apart from
// unclassified ones, so random names (a DGA, a scan) cannot flush what was known.
// A Log is safe for concurrent use. The dns room's plugins record into it; the
// daemon builds it and hands it to the rooms that show it; ui/localapi and
// cmd/redoubt use its types. It imports nothing of Redoubt's but
// internal/timeseries.
package querylog

import (
	"cmp"
	"context"
	"net"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/redoubt/redoubt/internal/timeseries"
)

// Outcome is how the box answered a query.
type Outcome uint8

// Outcomes, with their stable strings.
const (
	// Stopped: the name is not one of the box's; it was answered NXDOMAIN and
	// never sent anywhere.
	Stopped Outcome = iota
	// Local: one of the box's own names (its services, leased devices, team
	// devices, reverse lookups of the LAN).
	Local
	// Captive: a captive-portal probe answered with the box's address while
	// setup is unfinished.
	Captive
	// Refused: a query the box does not serve (zone transfer, NOTIFY, …).
	Refused
	// Malformed: answered FORMERR or dropped because it could not be parsed.
	Malformed
	// Failed: the server failed to answer (SERVFAIL); a bug if it is ever seen.
	Failed
	numOutcomes
)

var outcomeNames = [numOutcomes]string{"stopped", "local", "captive", "refused", "malformed", "failed"}

func (o Outcome) String() string {
	if o < numOutcomes {
		return outcomeNames[o]
	}
	return "unknown"
}

// Class says what kind of software a name belongs to.
type Class uint8

// Classes, with their stable strings. The table in classify.go maps names to the
// last four; LocalName and CaptiveProbe are set by the plugins that know them.
const (
	Unknown Class = iota
	LocalName
	CaptiveProbe
	OSTelemetry
	Browser
	AppUpdate
	numClasses
)

var classNames = [numClasses]string{"unknown", "local", "captive-probe", "os-telemetry", "browser", "app-update"}

func (c Class) String() string {
	if c < numClasses {
		return classNames[c]
	}
	return "unknown"
}

// Query is one query as recorded.
type Query struct {
	Client  netip.Addr // who asked
	MAC     [6]byte    // the client's hardware address, zero if unknown
	Name    string     // the question's name, as asked (case and a final dot are normalised)
	Type    uint16     // the question's type
	Outcome Outcome
	// Class, if not Unknown, overrides the table (set by the plugin that
	// answered: local names, captive probes).
	Class Class
}

// Entry is an aggregated Query: every query from one device for one name.
type Entry struct {
	Client string    `json:"client"`
	MAC    string    `json:"mac,omitempty"`
	Name   string    `json:"name"`
	Class  string    `json:"class"`
	Answer string    `json:"answer"` // the outcome of the most recent query
	Types  []string  `json:"types"`  // query types asked (A, AAAA, HTTPS, …)
	Count  uint64    `json:"count"`
	First  time.Time `json:"first"`
	Last   time.Time `json:"last"`
}

// Counters are totals since the box started.
type Counters struct {
	Queries  uint64            `json:"queries"`
	ByAnswer map[string]uint64 `json:"by_answer"`
	// Dropped counts queries shed before they were parsed (a client flooding
	// the box while it was saturated), per client in Devices.
	Dropped uint64           `json:"dropped"`
	Devices []DeviceCounters `json:"devices"`
	// Evicted counts entries pushed out of the log by newer ones (their counts
	// stay in the totals above).
	Evicted uint64 `json:"evicted"`
}

// DeviceCounters are the totals for one client.
type DeviceCounters struct {
	Client    string    `json:"client"` // "other" collects clients beyond the limit
	MAC       string    `json:"mac,omitempty"`
	Queries   uint64    `json:"queries"`
	Stopped   uint64    `json:"stopped"`
	Malformed uint64    `json:"malformed"`
	Dropped   uint64    `json:"dropped"`
	Last      time.Time `json:"last"`
}

// Config sizes a Log. Zero fields take the defaults.
type Config struct {
	// MaxEntries bounds the aggregated log (default 2048, half of it reserved
	// for names the table classifies).
	MaxEntries int
	// MaxDevices bounds per-client counters (default 256); later clients are
	// counted together as "other".
	MaxDevices int
	// Now returns the time; tests set it.
	Now func() time.Time
}

// DefaultEntries is the default size of the log.
const DefaultEntries = 2048

func (c Config) withDefaults() Config {
	if c.MaxEntries <= 0 {
		c.MaxEntries = DefaultEntries
	}
	c.MaxEntries = max(c.MaxEntries, 2)
	if c.MaxDevices <= 0 {
		c.MaxDevices = 256
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	return c
}

type key struct {
	client netip.Addr
	name   string
}

type node struct {
	key         key
	mac         [6]byte
	class       Class
	last        Outcome
	types       typeSet
	count       uint64
	first, seen time.Time
	prev, next  *node
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
	mac                                  [6]byte
	queries, stopped, malformed, dropped uint64
	last                                 time.Time
}

// Log is the query log. The zero value is not usable; call New.
type Log struct {
	cfg Config

	mu         sync.Mutex
	entries    map[key]*node
	classified lru
	unknown    lru
	queries    uint64
	byOutcome  [numOutcomes]uint64
	dropped    uint64
	evicted    uint64
	devices    map[netip.Addr]*device
	other      device
	subs       map[*subscriber]struct{}
	series     *timeseries.Series // stopped queries per class per minute
}

// New makes a Log.
func New(cfg Config) *Log {
	return &Log{
		cfg:     cfg.withDefaults(),
		entries: make(map[key]*node),
		devices: make(map[netip.Addr]*device),
		subs:    make(map[*subscriber]struct{}),
		series:  timeseries.New(classNames[:], 24*60),
	}
}

// Normalize returns a question name as the log keeps it: lower case, without the
// final dot ("." for the root).
func Normalize(name string) string {
	name = strings.ToLower(name)
	if len(name) > 1 {
		name = strings.TrimSuffix(name, ".")
	}
	return name
}

// Record adds a query. It reports whether it was the first from that client for
// that name the log holds (so a caller can log new names only).
func (l *Log) Record(q Query) (fresh bool) {
	now := l.cfg.Now()
	name := Normalize(q.Name)
	class := q.Class
	if class == Unknown {
		class = Classify(name)
	}
	k := key{q.Client, name}

	if q.Outcome == Stopped {
		l.series.Add(now, int(class))
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.queries++
	l.byOutcome[min(q.Outcome, numOutcomes-1)]++
	d := l.device(q.Client, q.MAC)
	d.queries++
	if q.Outcome == Stopped {
		d.stopped++
	}
	if q.Outcome == Malformed {
		d.malformed++
	}
	d.last = now

	n := l.entries[k]
	fresh = n == nil
	if fresh {
		n = &node{key: k, first: now, class: class}
		l.entries[k] = n
		l.insert(n)
	} else {
		l.list(n).remove(n)
		if n.class == Unknown && class != Unknown {
			// Recognised now (the first query was refused before any plugin
			// could say): it moves to the classified half.
			n.class = class
			l.insert(n)
		} else {
			l.list(n).pushFront(n)
		}
	}
	if d.mac != ([6]byte{}) {
		n.mac = d.mac // the device's latest hardware address, if ever known
	}
	n.count++
	n.seen = now
	n.last = q.Outcome
	n.types.add(q.Type)
	if len(l.subs) > 0 {
		e := n.entry()
		for s := range l.subs {
			s.offer(e)
		}
	}
	return fresh
}

// CountMalformed counts a query from client that could not be parsed, so it has
// no name to log.
func (l *Log) CountMalformed(client netip.Addr) {
	now := l.cfg.Now()
	l.mu.Lock()
	defer l.mu.Unlock()
	l.queries++
	l.byOutcome[Malformed]++
	d := l.device(client, [6]byte{})
	d.queries++
	d.malformed++
	d.last = now
}

// CountDropped counts a datagram from client shed before it was parsed.
func (l *Log) CountDropped(client netip.Addr) {
	now := l.cfg.Now()
	l.mu.Lock()
	defer l.mu.Unlock()
	l.dropped++
	d := l.device(client, [6]byte{})
	d.dropped++
	d.last = now
}

// device returns the counters of client, or "other" beyond MaxDevices. l.mu is held.
func (l *Log) device(client netip.Addr, mac [6]byte) *device {
	d := l.devices[client]
	if d == nil {
		if len(l.devices) >= l.cfg.MaxDevices {
			return &l.other
		}
		d = &device{}
		l.devices[client] = d
	}
	if mac != ([6]byte{}) && d != &l.other {
		d.mac = mac
	}
	return d
}

func (l *Log) list(n *node) *lru {
	if n.class != Unknown {
		return &l.classified
	}
	return &l.unknown
}

// insert adds a new node, evicting the least recently seen one of its half when
// that half is full.
func (l *Log) insert(n *node) {
	lst := l.list(n)
	if lst.n >= l.cfg.MaxEntries/2 {
		old := lst.tail
		lst.remove(old)
		delete(l.entries, old.key)
		l.evicted++
	}
	lst.pushFront(n)
}

func (n *node) entry() Entry {
	e := Entry{
		Client: n.key.client.String(),
		Name:   n.key.name,
		Class:  n.class.String(),
		Answer: n.last.String(),
		Types:  n.types.list(),
		Count:  n.count,
		First:  n.first,
		Last:   n.seen,
	}
	if n.mac != ([6]byte{}) {
		e.MAC = net.HardwareAddr(n.mac[:]).String()
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
		if c := cmp.Compare(b.Count, a.Count); c != 0 {
			return c
		}
		return cmp.Or(strings.Compare(a.Client, b.Client), strings.Compare(a.Name, b.Name))
	})
	return out
}

// Counters returns the totals.
func (l *Log) Counters() Counters {
	l.mu.Lock()
	defer l.mu.Unlock()
	c := Counters{Queries: l.queries, ByAnswer: make(map[string]uint64), Dropped: l.dropped, Evicted: l.evicted}
	for o, n := range l.byOutcome {
		if n > 0 {
			c.ByAnswer[Outcome(o).String()] = n
		}
	}
	for ip, d := range l.devices {
		c.Devices = append(c.Devices, d.counters(ip.String()))
	}
	if l.other.queries+l.other.dropped > 0 {
		c.Devices = append(c.Devices, l.other.counters("other"))
	}
	slices.SortFunc(c.Devices, func(a, b DeviceCounters) int {
		return cmp.Or(cmp.Compare(b.Queries, a.Queries), strings.Compare(a.Client, b.Client))
	})
	return c
}

func (d *device) counters(client string) DeviceCounters {
	dc := DeviceCounters{Client: client, Queries: d.queries, Stopped: d.stopped, Malformed: d.malformed,
		Dropped: d.dropped, Last: d.last}
	if d.mac != ([6]byte{}) {
		dc.MAC = net.HardwareAddr(d.mac[:]).String()
	}
	return dc
}

// subscriber is one live-feed reader.
type subscriber struct {
	ch chan Entry
}

// offer sends without blocking: a slow reader misses updates (it can re-read
// Entries) rather than slowing the server.
func (s *subscriber) offer(e Entry) {
	select {
	case s.ch <- e:
	default:
	}
}

// Subscribe returns a channel that receives each entry as it is created or
// updated, and a function that ends the subscription and closes the channel. buf
// is the channel's capacity; updates beyond it are skipped.
func (l *Log) Subscribe(buf int) (<-chan Entry, func()) {
	s := &subscriber{ch: make(chan Entry, max(buf, 1))}
	l.mu.Lock()
	l.subs[s] = struct{}{}
	l.mu.Unlock()
	var once sync.Once
	return s.ch, func() {
		once.Do(func() {
			l.mu.Lock()
			delete(l.subs, s)
			close(s.ch)
			l.mu.Unlock()
		})
	}
}

// typeSet is the set of query types an entry has seen: the common ones by bit,
// everything else as "other".
type typeSet uint16

// commonTypes are the query types an entry names, with their numbers (RFC 1035,
// 3596, 9460, …).
var commonTypes = [...]struct {
	num  uint16
	name string
}{
	{1, "A"}, {28, "AAAA"}, {65, "HTTPS"}, {64, "SVCB"}, {12, "PTR"}, {16, "TXT"}, {33, "SRV"},
	{15, "MX"}, {5, "CNAME"}, {2, "NS"}, {6, "SOA"}, {255, "ANY"}, {43, "DS"}, {48, "DNSKEY"},
}

const otherType = typeSet(1) << len(commonTypes)

func (s *typeSet) add(t uint16) {
	for i, c := range commonTypes {
		if c.num == t {
			*s |= 1 << i
			return
		}
	}
	*s |= otherType
}

func (s typeSet) list() []string {
	var out []string
	for i, c := range commonTypes {
		if s&(1<<i) != 0 {
			out = append(out, c.name)
		}
	}
	if s&otherType != 0 {
		out = append(out, "other")
	}
	return out
}

// Note collects what the plugins that answer a query say about it.
type Note struct {
	outcome Outcome
	class   Class
	set     bool
}

// Outcome returns the outcome a plugin marked, and whether one did.
func (n *Note) Outcome() (Outcome, bool) { return n.outcome, n.set }

// Class returns the class a plugin marked, or Unknown.
func (n *Note) Class() Class { return n.class }

type noteKey struct{}

// NewContext returns ctx carrying n, for Mark and MarkClass to fill in.
func NewContext(ctx context.Context, n *Note) context.Context {
	return context.WithValue(ctx, noteKey{}, n)
}

// Mark says, through the Note in ctx if there is one, how the query was answered
// and, if the answering plugin knows, the name's class. Plugins that answer call
// it; without a Note it does nothing.
func Mark(ctx context.Context, o Outcome, c Class) {
	if n, ok := ctx.Value(noteKey{}).(*Note); ok {
		n.outcome, n.set = o, true
		if c != Unknown {
			n.class = c
		}
	}
}

// MarkClass records the name's class without saying how it was answered: a
// plugin that recognises a name but lets the next one answer.
func MarkClass(ctx context.Context, c Class) {
	if n, ok := ctx.Value(noteKey{}).(*Note); ok {
		n.class = c
	}
}
