package lan

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"gvisor.dev/gvisor/pkg/buffer"

	"github.com/redoubt/redoubt/datapath/filter"
	"github.com/redoubt/redoubt/datapath/link"
)

// UDP services on the box's own address (ListenUDP: DNS) are served without the
// netstack. The gate, on the link's reader goroutine, takes each datagram the
// filter accepted for such a port, checks its headers and checksum, copies its
// payload into the service's bounded queue and hands nothing to gVisor; an answer
// is built here as a whole frame to the device's learned hardware address and
// written through the link's queue, where concurrent answers share one sendmmsg
// and the outbound tripwire checks each. gVisor's UDP delivery and its UDP and IPv4
// write path cost about a quarter of the CPU of every DNS query.
//
// What such a port receives that is not one plain datagram is not served: IPv4
// fragments, packets to a broadcast address, from 0.0.0.0, with a VLAN tag or
// GSO are dropped by the filter as for every port; a datagram whose UDP length
// disagrees with the IP packet's, or whose checksum is wrong, is dropped as
// malformed, counted and recorded in the leak log. IP options are skipped.
// Broadcast services (ListenUDPBroadcast: DHCP) stay on the netstack.

const (
	// udpQueueLen and udpQueueBytes bound a service's queue: datagrams beyond
	// either are dropped and counted, and the link's reader never waits.
	udpQueueLen   = 1024
	udpQueueBytes = 1 << 20
	// udpSlotKeep is the largest buffer a queue slot keeps for the next
	// datagram; larger ones go back to the garbage collector.
	udpSlotKeep = 2048
)

// UDPStats count the datagrams of the UDP services served without the netstack
// (ListenUDP).
type UDPStats struct {
	Delivered uint64 // datagrams queued for a service
	QueueFull uint64 // datagrams dropped because the service's queue was full
	Malformed uint64 // datagrams dropped for a bad checksum or length (also in the leak log)
	Sent      uint64 // datagrams the services sent
	Unsent    uint64 // writes refused: not a device on the LAN, no hardware address known, too large
}

type udpCounters struct {
	delivered, queueFull, malformed, sent, unsent atomic.Uint64
}

func (c *udpCounters) snapshot() UDPStats {
	return UDPStats{
		Delivered: c.delivered.Load(), QueueFull: c.queueFull.Load(), Malformed: c.malformed.Load(),
		Sent: c.sent.Load(), Unsent: c.unsent.Load(),
	}
}

// ListenUDP opens a UDP service on the box's LAN address. Its datagrams bypass the
// netstack (see above); the returned net.PacketConn reads and writes IPv4
// datagrams of at most the link's MTU less 28 bytes, and answers only devices
// the LAN port has heard from. Closing it closes the port in the ruleset again.
func (l *LAN) ListenUDP(port uint16) (net.PacketConn, error) {
	if port == 0 {
		return nil, errors.New("listening on LAN udp/0: name a port")
	}
	svc := filter.Service{Proto: filter.UDP, Port: port}
	c := &udpConn{
		l:     l,
		port:  port,
		local: &net.UDPAddr{IP: l.cfg.Address.Addr().AsSlice(), Port: int(port)},
		ring:  make([]udpSlot, udpQueueLen),
		ready: make(chan struct{}, 1),
		done:  make(chan struct{}),
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.udpClosed {
		return nil, fmt.Errorf("listening on LAN udp/%d: %w", port, net.ErrClosed)
	}
	if l.udpConnFor(port) != nil || l.services[filter.Service{Proto: filter.UDP, Port: port, Broadcast: true}] > 0 {
		return nil, fmt.Errorf("listening on LAN udp/%d: %w", port, syscall.EADDRINUSE)
	}
	// The queue is in place before the ruleset lets the port's datagrams in.
	conns := append(slices.Clone(*l.udp.Load()), c)
	l.udp.Store(&conns)
	if err := l.openLocked(svc); err != nil {
		l.removeUDPLocked(c)
		return nil, err
	}
	c.release = l.releaser(svc)
	return c, nil
}

// udpConnFor returns the service listening on port, or nil. It runs on the
// link's reader for every accepted UDP datagram: a short list, no lock.
func (l *LAN) udpConnFor(port uint16) *udpConn {
	for _, c := range *l.udp.Load() {
		if c.port == port {
			return c
		}
	}
	return nil
}

func (l *LAN) removeUDPLocked(c *udpConn) {
	conns := slices.DeleteFunc(slices.Clone(*l.udp.Load()), func(x *udpConn) bool { return x == c })
	l.udp.Store(&conns)
}

// closeUDP closes every UDP service, for Close: their readers see net.ErrClosed,
// and no new one opens.
func (l *LAN) closeUDP() {
	l.mu.Lock()
	l.udpClosed = true
	conns := *l.udp.Load()
	l.mu.Unlock()
	for _, c := range conns {
		c.Close()
	}
}

// udpServiceFor returns the UDP service a frame the filter accepted is for, or
// nil: IPv4 UDP to the box's own address on a port ListenUDP opened.
func (l *LAN) udpServiceFor(head []byte) *udpConn {
	if len(head) < ethHeaderLen+ipv4HeaderLen || head[12] != 0x08 || head[13] != 0x00 || head[ethHeaderLen+9] != protoUDP {
		return nil
	}
	if [4]byte(head[ethHeaderLen+16:ethHeaderLen+20]) != l.box {
		return nil
	}
	off := ethHeaderLen + int(head[ethHeaderLen]&0x0f)*4
	if len(head) < off+udpHeaderLen {
		return nil
	}
	return l.udpConnFor(uint16(head[off+2])<<8 | uint16(head[off+3]))
}

// serveUDP takes a datagram for c off the link: on the reader goroutine, so it
// copies and never waits.
func (l *LAN) serveUDP(c *udpConn, f *link.Frame) {
	frame := f.Bytes()
	d, ok := parseUDP4(frame, f.ChecksumOK)
	if !ok {
		l.udpStats.malformed.Add(1)
		l.recordFrame(frame, filter.Malformed)
		return
	}
	l.learn(f.Head)
	if c.push(netip.AddrPortFrom(netip.AddrFrom4(d.src), d.srcPort), d.payload) {
		l.udpStats.delivered.Add(1)
	} else {
		l.udpStats.queueFull.Add(1)
	}
}

// sendUDP sends payload from the box's address and srcPort to dst, a device on
// the LAN whose hardware address the port has learned.
func (l *LAN) sendUDP(srcPort uint16, dst netip.AddrPort, payload []byte) error {
	a := dst.Addr().Unmap()
	if !a.Is4() || !l.cfg.Address.Contains(a) || a == l.cfg.Address.Addr() || a == l.cfg.Address.Masked().Addr() ||
		a == broadcastOf(l.cfg.Address) || dst.Port() == 0 {
		l.udpStats.unsent.Add(1)
		return fmt.Errorf("%v is not a device's address on the LAN %v: %w", dst, l.cfg.Address.Masked(), syscall.ENETUNREACH)
	}
	if limit := int(l.ep.MTU()) - ipv4HeaderLen - udpHeaderLen; len(payload) > limit {
		l.udpStats.unsent.Add(1)
		return fmt.Errorf("%d bytes to %v: at most %d fit the link: %w", len(payload), dst, limit, syscall.EMSGSIZE)
	}
	mac := l.macOf(a)
	if mac == ([6]byte{}) {
		l.udpStats.unsent.Add(1)
		return fmt.Errorf("no hardware address known for %v: %w", a, syscall.EHOSTUNREACH)
	}
	v := buffer.NewViewSize(udpFrameOverhead + len(payload))
	frame := v.AsSlice()
	copy(frame[udpFrameOverhead:], payload)
	putUDP4(frame, udpFrame{
		dstMAC: mac, srcMAC: l.mac,
		src: l.box, dst: a.As4(),
		srcPort: srcPort, dstPort: dst.Port(),
		id: uint16(l.ipID.Add(1)),
	})
	l.ep.WriteFrame(v)
	l.udpStats.sent.Add(1)
	return nil
}

func broadcastOf(p netip.Prefix) netip.Addr {
	b := p.Masked().Addr().As4()
	for i := p.Bits(); i < 32; i++ {
		b[i/8] |= 0x80 >> (i % 8)
	}
	return netip.AddrFrom4(b)
}

// udpConn is a UDP service's net.PacketConn.
type udpConn struct {
	l       *LAN
	port    uint16
	local   *net.UDPAddr
	release func()

	mu     sync.Mutex
	ring   []udpSlot
	head   int // the oldest datagram
	n      int // datagrams queued
	bytes  int // their payload bytes
	closed bool

	ready     chan struct{} // holds a token while datagrams may be queued
	done      chan struct{} // closed by Close
	closeOnce sync.Once

	rd, wd deadline
}

type udpSlot struct {
	from netip.AddrPort
	b    []byte
}

// push queues a copy of payload from from, reporting false when the queue is
// full (or closed).
func (c *udpConn) push(from netip.AddrPort, payload []byte) bool {
	c.mu.Lock()
	if c.closed || c.n == len(c.ring) || c.bytes+len(payload) > udpQueueBytes {
		c.mu.Unlock()
		return false
	}
	s := &c.ring[(c.head+c.n)%len(c.ring)]
	s.from = from
	s.b = append(s.b[:0], payload...)
	c.n++
	c.bytes += len(payload)
	c.mu.Unlock()
	c.signal()
	return true
}

// signal leaves a token for a reader, unless one is waiting already.
func (c *udpConn) signal() {
	select {
	case c.ready <- struct{}{}:
	default:
	}
}

// ReadFrom implements net.PacketConn. A datagram larger than b is cut to fit.
func (c *udpConn) ReadFrom(b []byte) (int, net.Addr, error) {
	for {
		if c.rd.expired() {
			return 0, nil, c.opError("read", nil, os.ErrDeadlineExceeded)
		}
		c.mu.Lock()
		if c.closed {
			c.mu.Unlock()
			return 0, nil, c.opError("read", nil, net.ErrClosed)
		}
		if c.n > 0 {
			s := &c.ring[c.head]
			n := copy(b, s.b)
			from := s.from
			c.bytes -= len(s.b)
			if cap(s.b) > udpSlotKeep {
				s.b = nil
			}
			c.head = (c.head + 1) % len(c.ring)
			c.n--
			more := c.n > 0
			c.mu.Unlock()
			if more {
				c.signal() // for the next reader
			}
			return n, net.UDPAddrFromAddrPort(from), nil
		}
		c.mu.Unlock()
		select {
		case <-c.ready:
		case <-c.done:
		case <-c.rd.wait():
		}
	}
}

// WriteTo implements net.PacketConn: addr must be a *net.UDPAddr of a device on
// the LAN the port has heard from. The write does not wait for the wire; a frame
// the link cannot send within its write timeout is dropped and counted there.
func (c *udpConn) WriteTo(b []byte, addr net.Addr) (int, error) {
	select {
	case <-c.done:
		return 0, c.opError("write", addr, net.ErrClosed)
	default:
	}
	if c.wd.expired() {
		return 0, c.opError("write", addr, os.ErrDeadlineExceeded)
	}
	ua, ok := addr.(*net.UDPAddr)
	if !ok {
		return 0, c.opError("write", addr, syscall.EINVAL)
	}
	if err := c.l.sendUDP(c.port, ua.AddrPort(), b); err != nil {
		return 0, c.opError("write", addr, err)
	}
	return len(b), nil
}

// Close implements net.PacketConn: it closes the port in the ruleset, then wakes
// every reader, which returns net.ErrClosed.
func (c *udpConn) Close() error {
	first := false
	c.closeOnce.Do(func() {
		first = true
		c.release()
		c.l.mu.Lock()
		c.l.removeUDPLocked(c)
		c.l.mu.Unlock()
		c.mu.Lock()
		c.closed = true
		c.ring, c.n, c.bytes = nil, 0, 0
		c.mu.Unlock()
		close(c.done)
		c.rd.set(time.Time{})
		c.wd.set(time.Time{})
	})
	if !first {
		return c.opError("close", nil, net.ErrClosed)
	}
	return nil
}

// LocalAddr implements net.PacketConn: the box's address and the port.
func (c *udpConn) LocalAddr() net.Addr { return c.local }

// SetDeadline implements net.PacketConn.
func (c *udpConn) SetDeadline(t time.Time) error {
	c.rd.set(t)
	c.wd.set(t)
	return nil
}

// SetReadDeadline implements net.PacketConn.
func (c *udpConn) SetReadDeadline(t time.Time) error { c.rd.set(t); return nil }

// SetWriteDeadline implements net.PacketConn. Writes never wait, so the deadline
// only refuses writes once it has passed.
func (c *udpConn) SetWriteDeadline(t time.Time) error { c.wd.set(t); return nil }

func (c *udpConn) opError(op string, addr net.Addr, err error) error {
	return &net.OpError{Op: op, Net: "udp", Source: c.local, Addr: addr, Err: err}
}

// deadline is a read or write deadline: a channel closed once it passes.
type deadline struct {
	mu    sync.Mutex
	ch    chan struct{}
	timer *time.Timer
}

// set moves the deadline to t (zero: none).
func (d *deadline) set(t time.Time) {
	d.mu.Lock()
	defer d.mu.Unlock()
	switch {
	case d.ch == nil:
		d.ch = make(chan struct{})
	case d.timer != nil:
		if !d.timer.Stop() {
			// It fired, or is about to: that channel is done for.
			d.ch = make(chan struct{})
		}
	case isDone(d.ch):
		d.ch = make(chan struct{})
	}
	d.timer = nil
	if t.IsZero() {
		return
	}
	wait := time.Until(t)
	if wait <= 0 {
		close(d.ch)
		return
	}
	ch := d.ch
	d.timer = time.AfterFunc(wait, func() { close(ch) })
}

// wait returns a channel closed when the deadline passes.
func (d *deadline) wait() <-chan struct{} {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.ch == nil {
		d.ch = make(chan struct{})
	}
	return d.ch
}

func (d *deadline) expired() bool { return isDone(d.wait()) }

func isDone(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}
