// Package dhcp is the box's DHCPv4 server: it gives the owner's laptop (and any
// device on the LAN port) its address, router, DNS server, domain and the setup
// page's captive-portal URL, and remembers every lease across restarts and crashes.
//
// It serves on a net.PacketConn that the LAN room opens for it
// (datapath/lan ListenUDPBroadcast(67)) and reaches the datapath only through the
// Neighbors interface, to pin a device's hardware address before unicasting to an
// address the device cannot answer ARP for yet. Names devices send (option 12)
// go to the DNS room through HostNames. Packets are encoded and decoded with
// github.com/insomniacslk/dhcp; the lease rules live in dhcp/leases and the lease
// file in dhcp/leasedb.
//
// Only the daemon builds a Server; ui/localapi and cmd use its Lease and Stats types.
package dhcp

import (
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redoubt/redoubt/dhcp/leasedb"
	"github.com/redoubt/redoubt/dhcp/leases"
	"github.com/redoubt/redoubt/internal/ratelimit"
)

// Neighbors pins the hardware address of a LAN address, so the box can unicast to
// a device that cannot answer ARP yet. *lan.LAN implements it.
type Neighbors interface {
	SetNeighbor(addr netip.Addr, mac net.HardwareAddr) error
}

// HostNames receives the names devices give themselves (option 12), each reduced
// to a single DNS label; an empty name removes addr's. The DNS room implements it
// so a laptop's name resolves. Calls never overlap and must not block; a name is
// published before the ACK that grants its address is sent.
type HostNames interface {
	SetHost(addr netip.Addr, name string)
}

// Deps are what a Server needs from the rest of the box.
type Deps struct {
	// Conn receives and sends DHCP on the LAN port: lan.ListenUDPBroadcast(67).
	// The Server closes it.
	Conn net.PacketConn
	// Neighbors pins hardware addresses before unicast replies (the *lan.LAN).
	Neighbors Neighbors
	// LAN is the box's address with the LAN prefix (lan.address).
	LAN netip.Prefix
	// StateDir holds the lease file (state.dir).
	StateDir string
	// HostNames receives device names; nil drops them.
	HostNames HostNames
	// CaptiveURL returns the RFC 8908 captive-portal API URL to send in option
	// 114, or "" to send none (setup finished). nil sends none.
	CaptiveURL func() string
	Logger     *slog.Logger
	// Now returns the time; tests set it. Default time.Now.
	Now func() time.Time
}

// Lease is one device's lease, as the admin API and the UI show it.
type Lease struct {
	MAC         string     `json:"mac"`
	Address     netip.Addr `json:"address"`
	Hostname    string     `json:"hostname,omitempty"`
	ClientID    string     `json:"client_id,omitempty"` // option 61, hex
	VendorClass string     `json:"vendor_class,omitempty"`
	Expiry      time.Time  `json:"expiry"`
	FirstSeen   time.Time  `json:"first_seen"`
	// State is "bound" (live), "expired" (lapsed or released; the device gets
	// the address back if it returns) or "declined" (reported in use; out of
	// use until Expiry).
	State string `json:"state"`
	// Reserved: the address is the device's by a [[dhcp.reservation]].
	Reserved bool `json:"reserved,omitempty"`
	// Owner: the first device the box bound; its address is kept for it.
	Owner bool `json:"owner,omitempty"`
}

// Server is the running DHCP server.
type Server struct {
	deps Deps
	log  *slog.Logger
	now  func() time.Time
	conn net.PacketConn
	box  [4]byte

	opts atomic.Pointer[replyOptions]
	cfg  atomic.Pointer[Config]

	mu    sync.Mutex // guards table
	table *leases.Table
	db    *leasedb.DB

	// Used only by the worker goroutine.
	perMAC  map[[6]byte]*ratelimit.Limiter
	scratch []reply

	// What the worker has decided and the committer has not yet written: the
	// latest record of each changed address (nil: removed), and the ACKs that
	// wait for it.
	pendMu   sync.Mutex
	pend     map[netip.Addr]*leases.Lease
	pendAcks []reply
	kick     chan struct{} // wakes the committer

	pubMu     sync.Mutex
	published map[netip.Addr]string

	stats    counters
	logRate  ratelimit.Limiter // packet-path log lines
	warnRate ratelimit.Limiter // pool exhaustion, store errors

	// Packets wait for the worker in two queues: requests that continue an
	// exchange (REQUEST, RELEASE, DECLINE, INFORM) before DISCOVERs that start
	// one, so an overloaded server finishes what it began instead of offering
	// addresses nobody gets to request.
	in, inNew chan packet
	bufs      sync.Pool
	started   bool // guarded by mu
	closed    atomic.Bool
	done      chan struct{}
	closeOnce sync.Once
}

// queueLen bounds packets waiting in each queue; beyond it they are dropped and
// counted (overload), so a flood costs bounded memory.
const queueLen = 1024

// maxBatch bounds the packets the worker decides before handing their lease
// changes to the committer.
const maxBatch = 256

// sweepEvery is how often lapsed offers and declines are forgotten and names of
// expired leases withdrawn.
const sweepEvery = 5 * time.Second

// New opens the lease file in deps.StateDir, loads the leases and publishes the
// names of live ones. Serve then answers on deps.Conn.
func New(cfg Config, deps Deps) (*Server, error) {
	if deps.Conn == nil || deps.Neighbors == nil {
		return nil, errors.New("dhcp: Deps.Conn and Deps.Neighbors are required")
	}
	if !deps.LAN.IsValid() || !deps.LAN.Addr().Is4() {
		return nil, fmt.Errorf("dhcp: Deps.LAN %v: want the box's IPv4 address with the LAN prefix", deps.LAN)
	}
	if deps.StateDir == "" {
		return nil, errors.New("dhcp: Deps.StateDir is required")
	}
	if deps.Logger == nil {
		deps.Logger = slog.Default()
	}
	if deps.Now == nil {
		deps.Now = time.Now
	}
	cfg = cfg.WithDefaults(deps.LAN)
	if err := cfg.Validate(deps.LAN); err != nil {
		return nil, err
	}
	table, err := leases.New(cfg.tableConfig(deps.LAN))
	if err != nil {
		return nil, err
	}
	s := &Server{
		deps:      deps,
		log:       deps.Logger,
		now:       deps.Now,
		conn:      deps.Conn,
		box:       deps.LAN.Addr().As4(),
		table:     table,
		published: make(map[netip.Addr]string),
		perMAC:    make(map[[6]byte]*ratelimit.Limiter),
		logRate:   ratelimit.Limiter{Rate: 5, Burst: 20},
		warnRate:  ratelimit.Limiter{Rate: 0.1, Burst: 2},
		in:        make(chan packet, queueLen),
		inNew:     make(chan packet, queueLen),
		pend:      make(map[netip.Addr]*leases.Lease),
		kick:      make(chan struct{}, 1),
		done:      make(chan struct{}),
	}
	s.bufs.New = func() any { b := make([]byte, bufSize); return &b }
	s.cfg.Store(&cfg)
	s.opts.Store(compileOptions(cfg, deps.LAN))

	path := filepath.Join(deps.StateDir, leasedb.FileName)
	db, note, err := leasedb.Open(path)
	if err != nil {
		return nil, err
	}
	if note != "" {
		s.log.Error("lease file replaced", "path", path, "why", note)
	}
	s.db = db
	ls, bad, err := db.Load()
	if err != nil {
		db.Close()
		return nil, err
	}
	skipped := table.Load(ls)
	now := s.now()
	c := table.Counts(now)
	s.log.Info("DHCP leases loaded", "path", path, "records", c.Records, "active", c.Active,
		"unreadable", bad, "off_lan", len(skipped), "pool", fmt.Sprintf("%v-%v", cfg.PoolStart, cfg.PoolEnd))
	for _, l := range table.Leases() {
		s.reconcileName(l.Addr, &l, now)
	}
	return s, nil
}

// Reconfig applies a new [dhcp] section while serving: pool, lease time,
// options and reservations. Leases outside a new pool stay until their device
// next asks, and get a NAK then.
func (s *Server) Reconfig(cfg Config) error {
	cfg = cfg.WithDefaults(s.deps.LAN)
	if err := cfg.Validate(s.deps.LAN); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.table.SetConfig(cfg.tableConfig(s.deps.LAN)); err != nil {
		return err
	}
	s.cfg.Store(&cfg)
	s.opts.Store(compileOptions(cfg, s.deps.LAN))
	return nil
}

// Config returns the config in force, defaults filled.
func (s *Server) Config() Config { return *s.cfg.Load() }

// Leases lists every lease record, live, lapsed and declined, by address.
func (s *Server) Leases() []Lease {
	s.mu.Lock()
	ls := s.table.Leases()
	res := make([]bool, len(ls))
	for i := range ls {
		res[i] = s.table.Reserved(ls[i].Addr, ls[i].MAC)
	}
	s.mu.Unlock()
	now := s.now()
	out := make([]Lease, len(ls))
	for i, l := range ls {
		state := "bound"
		switch {
		case l.Declined:
			state = "declined"
		case !l.Active(now):
			state = "expired"
		}
		out[i] = Lease{
			MAC: net.HardwareAddr(l.MAC[:]).String(), Address: l.Addr, Hostname: l.Hostname,
			ClientID: hex.EncodeToString(l.ClientID), VendorClass: l.VendorClass,
			Expiry: l.Expiry, FirstSeen: l.FirstSeen, State: state, Reserved: res[i], Owner: l.Owner,
		}
	}
	return out
}

// Serve answers DHCP until Close. It returns nil after Close, or the error that
// stopped it reading.
func (s *Server) Serve() error {
	s.mu.Lock()
	if s.started || s.closed.Load() {
		s.mu.Unlock()
		return errors.New("dhcp: Serve called twice or after Close")
	}
	s.started = true
	s.mu.Unlock()
	defer close(s.done)
	workerDone, committerDone := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(workerDone)
		s.work()
	}()
	go func() {
		defer close(committerDone)
		s.commitLoop(workerDone)
	}()
	err := s.read()
	close(s.in)
	close(s.inNew)
	<-workerDone
	<-committerDone
	if s.closed.Load() {
		return nil
	}
	return err
}

// Close stops serving, closes the connection and the lease file.
func (s *Server) Close() error {
	var err error
	s.closeOnce.Do(func() {
		s.closed.Store(true)
		s.conn.Close()
		s.mu.Lock()
		started := s.started
		s.mu.Unlock()
		if started {
			<-s.done
		}
		err = s.db.Close()
	})
	return err
}

// bufSize holds any UDP payload the LAN link delivers (1472 bytes at MTU 1500)
// with room to see that a datagram was larger.
const bufSize = 2048

// maxPacket is the largest DHCP message accepted: a full Ethernet frame's worth.
const maxPacket = 1472

type packet struct {
	buf  *[]byte
	n    int
	from netip.AddrPort
}

// read takes datagrams off the connection and queues them for the worker.
func (s *Server) read() error {
	for {
		bp := s.bufs.Get().(*[]byte)
		n, from, err := s.conn.ReadFrom(*bp)
		if err != nil {
			s.bufs.Put(bp)
			if s.closed.Load() || errors.Is(err, net.ErrClosed) {
				return nil
			}
			return fmt.Errorf("reading DHCP packets: %w", err)
		}
		s.stats.received.Add(1)
		var ap netip.AddrPort
		if u, ok := from.(*net.UDPAddr); ok {
			ap = u.AddrPort()
		}
		q := s.inNew
		if continues((*bp)[:n]) {
			q = s.in
		}
		select {
		case q <- packet{buf: bp, n: n, from: ap}:
		default:
			s.drop(dropOverload, nil, ap, "queue full")
			s.bufs.Put(bp)
		}
	}
}

// continues reports whether a datagram carries a DHCP message that continues an
// exchange (anything but a DISCOVER), looking only for option 53. Anything it
// cannot read goes with the DISCOVERs, and the worker drops it.
func continues(b []byte) bool {
	if len(b) < 240 || b[236] != 99 || b[237] != 130 || b[238] != 83 || b[239] != 99 {
		return false
	}
	for i := 240; i < len(b); {
		switch b[i] {
		case 0:
			i++
			continue
		case 255:
			return false
		}
		if i+1 >= len(b) || i+2+int(b[i+1]) > len(b) {
			return false
		}
		if b[i] == optMessageType && b[i+1] == 1 {
			return b[i+2] != 1
		}
		i += 2 + int(b[i+1])
	}
	return false
}

// work decides queued packets in batches, exchanges in progress first. Replies
// that grant nothing (OFFER, NAK, INFORM's ACK) go out at once; lease changes
// and the ACKs that grant them go to the committer.
func (s *Server) work() {
	tick := time.NewTicker(sweepEvery)
	defer tick.Stop()
	batch := make([]packet, 0, maxBatch)
	in, inNew := s.in, s.inNew
	for in != nil || inNew != nil {
		batch = batch[:0]
		select {
		case p, ok := <-in:
			if !ok {
				in = nil
				continue
			}
			batch = append(batch, p)
		default:
			select {
			case p, ok := <-in:
				if !ok {
					in = nil
					continue
				}
				batch = append(batch, p)
			case p, ok := <-inNew:
				if !ok {
					inNew = nil
					continue
				}
				batch = append(batch, p)
			case <-tick.C:
				s.sweep()
				continue
			}
		}
		batch = fill(batch, in)
		batch = fill(batch, inNew)
		s.process(batch)
	}
}

// fill adds what q holds now to batch, up to maxBatch.
func fill(batch []packet, q chan packet) []packet {
	for len(batch) < maxBatch {
		select {
		case p, ok := <-q:
			if !ok {
				return batch
			}
			batch = append(batch, p)
		default:
			return batch
		}
	}
	return batch
}

func (s *Server) process(batch []packet) {
	bc := batchCtx{opts: s.opts.Load()}
	if s.deps.CaptiveURL != nil {
		bc.captive = s.deps.CaptiveURL()
	}
	bc.prepare()
	s.mu.Lock()
	now := s.now()
	replies := s.scratch[:0]
	for _, p := range batch {
		if r, ok := s.handle((*p.buf)[:p.n], p.from, now, &bc); ok {
			replies = append(replies, r)
		}
		s.bufs.Put(p.buf)
	}
	var grants []reply
	for i := range replies {
		if replies[i].grant {
			grants = append(grants, replies[i])
		}
	}
	s.queueCommit(grants)
	s.mu.Unlock()
	for i := range replies {
		if !replies[i].grant {
			s.send(&replies[i])
		}
		replies[i] = reply{}
	}
	s.scratch = replies[:0]
}

// queueCommit hands the table's changes, and the ACKs that wait for them, to the
// committer; s.mu is held.
func (s *Server) queueCommit(grants []reply) {
	if !s.table.Dirty() && len(grants) == 0 {
		return
	}
	put, del := s.table.Changes()
	s.table.MarkClean()
	s.pendMu.Lock()
	for i := range put {
		s.pend[put[i].Addr] = &put[i]
	}
	for _, a := range del {
		s.pend[a] = nil
	}
	s.pendAcks = append(s.pendAcks, grants...)
	s.pendMu.Unlock()
	select {
	case s.kick <- struct{}{}:
	default:
	}
}

// commitLoop writes queued lease changes to the lease file, as many as have
// gathered since the last commit in one transaction, and sends the ACKs that
// waited for them only once it is durable: no ACK ever goes out for a lease a
// crash could lose, and the worker goes on deciding packets while the disk works.
// It ends, after a last commit, when the worker has.
func (s *Server) commitLoop(workerDone <-chan struct{}) {
	for {
		select {
		case <-s.kick:
		case <-workerDone:
			s.commitPending()
			return
		}
		s.commitPending()
	}
}

func (s *Server) commitPending() {
	s.pendMu.Lock()
	pend, acks := s.pend, s.pendAcks
	if len(pend) == 0 && len(acks) == 0 {
		s.pendMu.Unlock()
		return
	}
	s.pend, s.pendAcks = make(map[netip.Addr]*leases.Lease, len(pend)), nil
	s.pendMu.Unlock()

	put := make([]leases.Lease, 0, len(pend))
	var del []netip.Addr
	for a, l := range pend {
		if l == nil {
			del = append(del, a)
		} else {
			put = append(put, *l)
		}
	}
	now := s.now()
	if err := s.db.Commit(put, del); err != nil {
		s.stats.storeErrors.Add(1)
		if ok, n := s.warnRate.Allow(now); ok {
			s.log.Error("lease file not written; holding ACKs until it is", "err", err, "suppressed", n)
		}
		// Keep the changes (newer ones win) for the next commit; drop the
		// ACKs: their clients retry and are answered after a commit that holds.
		s.pendMu.Lock()
		for a, l := range pend {
			if _, newer := s.pend[a]; !newer {
				s.pend[a] = l
			}
		}
		s.pendMu.Unlock()
		time.Sleep(100 * time.Millisecond)
		select {
		case s.kick <- struct{}{}:
		default:
		}
		return
	}
	// Names first: a laptop's name resolves by the time it has its address.
	for i := range put {
		s.reconcileName(put[i].Addr, &put[i], now)
	}
	for _, a := range del {
		s.reconcileName(a, nil, now)
	}
	for i := range acks {
		s.send(&acks[i])
	}
}

// sweep forgets lapsed offers and declines and withdraws names of expired leases.
func (s *Server) sweep() {
	s.mu.Lock()
	now := s.now()
	s.table.Sweep(now)
	s.queueCommit(nil)
	s.pubMu.Lock()
	var lapsed []netip.Addr
	for a := range s.published {
		if l, ok := s.table.Lookup(a); !ok || !l.Active(now) {
			lapsed = append(lapsed, a)
		}
	}
	s.pubMu.Unlock()
	// Still under s.mu: a binding decided after this sweep is published by the
	// committer after this withdrawal, never before it.
	for _, a := range lapsed {
		s.reconcileName(a, nil, now)
	}
	s.mu.Unlock()
	if len(s.perMAC) > 0 {
		clear(s.perMAC)
	}
}

// reconcileName publishes or withdraws the device name for a.
func (s *Server) reconcileName(a netip.Addr, l *leases.Lease, now time.Time) {
	if s.deps.HostNames == nil {
		return
	}
	want := ""
	if l != nil && l.Active(now) {
		want = l.Hostname
	}
	s.pubMu.Lock()
	defer s.pubMu.Unlock()
	if s.published[a] == want {
		return
	}
	s.deps.HostNames.SetHost(a, want)
	if want == "" {
		delete(s.published, a)
	} else {
		s.published[a] = want
	}
}

// Stats are the server's counters and the pool's state.
type Stats struct {
	Received uint64 `json:"received"`
	// Malformed counts packets that are not usable DHCP requests (undecodable,
	// wrong op, hardware type or length, no message type, oversized, a
	// REQUEST naming no address); Dropped counts every packet not answered,
	// by reason, malformed ones included.
	Malformed uint64            `json:"malformed"`
	Dropped   map[string]uint64 `json:"dropped"`
	Discovers uint64            `json:"discovers"`
	Requests  uint64            `json:"requests"`
	Releases  uint64            `json:"releases"`
	Declines  uint64            `json:"declines"`
	Informs   uint64            `json:"informs"`
	Offers    uint64            `json:"offers"`
	Acks      uint64            `json:"acks"`
	Naks      uint64            `json:"naks"`
	// PoolExhausted counts DISCOVERs that got no offer: no address was left.
	PoolExhausted uint64 `json:"pool_exhausted"`
	SendErrors    uint64 `json:"send_errors"`
	StoreErrors   uint64 `json:"store_errors"`

	PoolSize     uint32 `json:"pool_size"`
	PoolFree     uint32 `json:"pool_free"`
	ActiveLeases int    `json:"active_leases"`
	PendingOffer int    `json:"pending_offers"`
}

// Stats returns the counters and the pool's state.
func (s *Server) Stats() Stats {
	s.mu.Lock()
	c := s.table.Counts(s.now())
	s.mu.Unlock()
	st := Stats{
		Received:      s.stats.received.Load(),
		Dropped:       map[string]uint64{},
		Discovers:     s.stats.byType[1].Load(),
		Requests:      s.stats.byType[3].Load(),
		Declines:      s.stats.byType[4].Load(),
		Releases:      s.stats.byType[7].Load(),
		Informs:       s.stats.byType[8].Load(),
		Offers:        s.stats.offers.Load(),
		Acks:          s.stats.acks.Load(),
		Naks:          s.stats.naks.Load(),
		PoolExhausted: s.stats.exhausted.Load(),
		SendErrors:    s.stats.sendErrors.Load(),
		StoreErrors:   s.stats.storeErrors.Load(),
		PoolSize:      c.PoolSize,
		PoolFree:      c.Free,
		ActiveLeases:  c.Active,
		PendingOffer:  c.Offers,
	}
	for r := range numDrops {
		n := s.stats.dropped[r].Load()
		if n == 0 {
			continue
		}
		st.Dropped[r.String()] = n
		if r.malformed() {
			st.Malformed += n
		}
	}
	return st
}

type counters struct {
	received, offers, acks, naks, exhausted, sendErrors, storeErrors atomic.Uint64
	byType                                                           [9]atomic.Uint64
	dropped                                                          [numDrops]atomic.Uint64
}

// dropReason says why a packet got no answer.
type dropReason int

const (
	dropUndecodable dropReason = iota
	dropOversized
	dropWrongOp
	dropHardware
	dropNoType
	dropBadRequest
	dropRateLimited
	dropOverload
	dropForeignRelay
	dropOtherServer
	dropUnexpected
	dropNotYours
	numDrops
)

var dropNames = [numDrops]string{
	dropUndecodable:  "undecodable",
	dropOversized:    "oversized",
	dropWrongOp:      "wrong-op",
	dropHardware:     "hardware",
	dropNoType:       "no-message-type",
	dropBadRequest:   "bad-request",
	dropRateLimited:  "rate-limited",
	dropOverload:     "overload",
	dropForeignRelay: "foreign-relay",
	dropOtherServer:  "other-server",
	dropUnexpected:   "unexpected-type",
	dropNotYours:     "not-yours",
}

func (r dropReason) String() string { return dropNames[r] }

func (r dropReason) malformed() bool { return r <= dropBadRequest }
