package guard

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coredns/caddy"
	"github.com/coredns/coredns/plugin/pkg/dnstest"
	"github.com/coredns/coredns/plugin/test"
	"github.com/miekg/dns"

	"github.com/redoubt/redoubt/dns/querylog"
)

func addr(i byte) netip.Addr { return netip.AddrFrom4([4]byte{10, 201, 86, i}) }

func pkt(client byte, tag byte) *Packet {
	return &Packet{Data: []byte{tag}, Client: addr(client)}
}

func TestFairQueueRoundRobin(t *testing.T) {
	var q fairQueue
	q.init(100)
	// Client 1 queues five, then clients 2 and 3 one each.
	for i := range 5 {
		q.push(pkt(1, byte(10+i)))
	}
	q.push(pkt(2, 20))
	q.push(pkt(3, 30))
	var got []byte
	for range 7 {
		got = append(got, q.pop().Data[0])
	}
	// One from each client per round.
	if want := []byte{10, 20, 30, 11, 12, 13, 14}; !slices.Equal(got, want) {
		t.Errorf("order %v, want %v", got, want)
	}
	if q.len() != 0 || len(q.flows) != 0 || q.head != nil || q.tail != nil {
		t.Errorf("queue not empty: %d %v", q.len(), q.flows)
	}
}

func TestFairQueueDropsFromTheLongest(t *testing.T) {
	var q fairQueue
	q.init(10)
	for i := range 10 {
		if _, dropped := q.push(pkt(1, byte(i))); dropped {
			t.Fatal("dropped before full")
		}
	}
	// Full: the flooder's own datagram is dropped…
	if v, dropped := q.push(pkt(1, 99)); !dropped || v != addr(1) {
		t.Errorf("flooder's datagram: dropped %v victim %v", dropped, v)
	}
	// …and another client's gets in, at the cost of the flooder's oldest.
	if v, dropped := q.push(pkt(2, 50)); !dropped || v != addr(1) {
		t.Errorf("newcomer: dropped %v victim %v, want the flooder's", dropped, v)
	}
	if q.len() != 10 {
		t.Errorf("len %d", q.len())
	}
	// The newcomer is served within the first round.
	first, second := q.pop(), q.pop()
	if first.Data[0] != 1 || second.Data[0] != 50 {
		t.Errorf("served %d then %d, want the flooder's next (1) then the newcomer (50)", first.Data[0], second.Data[0])
	}
	// Two clients with equal queues: a third one's datagram evicts one of theirs.
	q2 := fairQueue{}
	q2.init(4)
	q2.push(pkt(1, 1))
	q2.push(pkt(1, 2))
	q2.push(pkt(2, 3))
	q2.push(pkt(2, 4))
	if v, dropped := q2.push(pkt(3, 5)); !dropped || v == addr(3) {
		t.Errorf("third client: dropped %v victim %v", dropped, v)
	}
	// A client whose queue is as long as the longest loses its own: client 2
	// still has two queued, client 1 one (its oldest went for client 3's).
	if v, dropped := q2.push(pkt(2, 6)); !dropped || v != addr(2) {
		t.Errorf("tie: victim %v, want client 2 itself", v)
	}
	if v, dropped := q2.push(pkt(1, 7)); !dropped || v != addr(2) {
		t.Errorf("shorter queue: victim %v, want client 2 (the longest)", v)
	}
}

func TestFairQueueClose(t *testing.T) {
	var q fairQueue
	q.init(10)
	q.push(pkt(1, 1))
	done := make(chan []*Packet)
	go func() {
		var got []*Packet
		for p := q.pop(); p != nil; p = q.pop() {
			got = append(got, p)
		}
		done <- got
	}()
	time.Sleep(10 * time.Millisecond)
	q.close()
	if got := <-done; len(got) != 1 {
		t.Errorf("popped %d after close, want the one queued", len(got))
	}
}

// fakeConn is a PacketConn fed from a channel, recording what is written.
type fakeConn struct {
	in     chan fakeDatagram
	mu     sync.Mutex
	out    []fakeDatagram
	closed chan struct{}
	once   sync.Once
}

type fakeDatagram struct {
	b    []byte
	addr net.Addr
}

func newFakeConn() *fakeConn {
	return &fakeConn{in: make(chan fakeDatagram, 1000), closed: make(chan struct{})}
}

func (c *fakeConn) ReadFrom(b []byte) (int, net.Addr, error) {
	select {
	case d := <-c.in:
		return copy(b, d.b), d.addr, nil
	case <-c.closed:
		return 0, nil, net.ErrClosed
	}
}

func (c *fakeConn) WriteTo(b []byte, a net.Addr) (int, error) {
	c.mu.Lock()
	c.out = append(c.out, fakeDatagram{append([]byte(nil), b...), a})
	c.mu.Unlock()
	return len(b), nil
}

func (c *fakeConn) Close() error                     { c.once.Do(func() { close(c.closed) }); return nil }
func (c *fakeConn) LocalAddr() net.Addr              { return &net.UDPAddr{IP: net.IPv4(10, 201, 86, 1), Port: 53} }
func (c *fakeConn) SetDeadline(time.Time) error      { return nil }
func (c *fakeConn) SetReadDeadline(time.Time) error  { return nil }
func (c *fakeConn) SetWriteDeadline(time.Time) error { return nil }

func udpFrom(i byte) net.Addr { return &net.UDPAddr{IP: net.IPv4(10, 201, 86, i), Port: 5000 + int(i)} }

func TestServePacket(t *testing.T) {
	var mu sync.Mutex
	malformed := map[netip.Addr]int{}
	g := New(Config{Workers: 3, OnMalformed: func(a netip.Addr) { mu.Lock(); malformed[a]++; mu.Unlock() }})
	pc := newFakeConn()
	query := func(id uint16) []byte {
		m := new(dns.Msg)
		m.SetQuestion("x.example.", dns.TypeA)
		m.Id = id
		b, _ := m.Pack()
		return b
	}
	response := query(7)
	response[2] |= 0x80
	pc.in <- fakeDatagram{[]byte{1, 2, 3}, udpFrom(9)}          // too short
	pc.in <- fakeDatagram{response, udpFrom(9)}                 // a response
	pc.in <- fakeDatagram{query(1), udpFrom(100)}               // fine
	pc.in <- fakeDatagram{query(2), udpFrom(100)}               // fine
	pc.in <- fakeDatagram{[]byte("panic!!!!!!!!!"), udpFrom(7)} // makes the handler panic
	handled := make(chan *Packet, 10)
	done := make(chan error)
	go func() {
		done <- g.ServePacket(pc, func(p *Packet) {
			if strings.HasPrefix(string(p.Data), "panic") {
				panic("handler bug")
			}
			handled <- p
		})
	}()
	var ids []uint16
	for range 2 {
		select {
		case p := <-handled:
			if p.Client != addr(100) || p.From.String() != "10.201.86.100:5100" {
				t.Errorf("packet from %v %v", p.Client, p.From)
			}
			ids = append(ids, uint16(p.Data[0])<<8|uint16(p.Data[1]))
		case <-time.After(5 * time.Second):
			t.Fatal("queries not handled")
		}
	}
	slices.Sort(ids)
	if !slices.Equal(ids, []uint16{1, 2}) {
		t.Errorf("handled ids %v", ids)
	}
	pc.Close()
	if err := <-done; !errors.Is(err, net.ErrClosed) {
		t.Errorf("ServePacket returned %v, want the read error", err)
	}
	st := g.Stats()
	if st.NotQuery != 2 || st.Queued != 0 || malformed[addr(9)] != 2 {
		t.Errorf("stats %+v, malformed %v", st, malformed)
	}
}

// TestServePacketFlood: a client flooding a slow server does not starve another.
func TestServePacketFlood(t *testing.T) {
	var mu sync.Mutex
	shed := map[netip.Addr]int{}
	g := New(Config{Workers: 2, MaxQueued: 64, OnShed: func(a netip.Addr) { mu.Lock(); shed[a]++; mu.Unlock() }})
	pc := newFakeConn()
	served := make(chan netip.Addr, 10000)
	done := make(chan error)
	go func() {
		done <- g.ServePacket(pc, func(p *Packet) {
			time.Sleep(200 * time.Microsecond) // a slow server
			served <- p.Client
		})
	}()
	q := make([]byte, 12)
	var wg sync.WaitGroup
	stop := make(chan struct{})
	wg.Go(func() { // the flood
		for {
			select {
			case <-stop:
				return
			case pc.in <- fakeDatagram{q, udpFrom(66)}:
			}
		}
	})
	var good int
	for i := range 50 { // the neighbour, one query at a time
		pc.in <- fakeDatagram{q, udpFrom(8)}
		deadline := time.After(2 * time.Second)
	wait:
		for {
			select {
			case c := <-served:
				if c == addr(8) {
					good++
					break wait
				}
			case <-deadline:
				t.Errorf("neighbour's query %d not served within 2s", i)
				break wait
			}
			if g.Stats().Queued > 64 {
				t.Fatalf("queue at %d, bound 64", g.Stats().Queued)
			}
		}
	}
	close(stop)
	wg.Wait()
	pc.Close()
	<-done
	mu.Lock()
	defer mu.Unlock()
	if good != 50 || shed[addr(66)] == 0 || shed[addr(8)] != 0 {
		t.Errorf("neighbour served %d/50; shed %v (want only the flooder)", good, shed)
	}
}

// fakeListener hands out connections from a channel.
type fakeListener struct {
	conns  chan net.Conn
	closed chan struct{}
}

func (l *fakeListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.closed:
		return nil, net.ErrClosed
	}
}
func (l *fakeListener) Close() error   { close(l.closed); return nil }
func (l *fakeListener) Addr() net.Addr { return &net.TCPAddr{IP: net.IPv4(10, 201, 86, 1), Port: 53} }

type fakeTCP struct {
	net.Conn
	remote net.Addr
	closed bool
	wrote  [][]byte
}

func (c *fakeTCP) RemoteAddr() net.Addr        { return c.remote }
func (c *fakeTCP) Close() error                { c.closed = true; return nil }
func (c *fakeTCP) Write(b []byte) (int, error) { c.wrote = append(c.wrote, b); return len(b), nil }

func TestListenerLimits(t *testing.T) {
	var malformed int
	g := New(Config{MaxConns: 4, MaxConnsPerClient: 2, OnMalformed: func(netip.Addr) { malformed++ }})
	fl := &fakeListener{conns: make(chan net.Conn, 20), closed: make(chan struct{})}
	ln := g.Listener(fl)
	dial := func(i byte) *fakeTCP {
		c := &fakeTCP{remote: &net.TCPAddr{IP: net.IPv4(10, 201, 86, i), Port: 40000}}
		fl.conns <- c
		return c
	}
	var accepted []net.Conn
	accept := func() net.Conn {
		c, err := ln.Accept()
		if err != nil {
			t.Fatal(err)
		}
		accepted = append(accepted, c)
		return c
	}
	a1, a2 := dial(1), dial(1)
	accept()
	accept()
	a3 := dial(1) // third from client 1: refused
	b1 := dial(2)
	if c := accept(); c.(*conn).Conn != b1 {
		t.Errorf("accepted %v, want client 2's", c.RemoteAddr())
	}
	if !a3.closed || a1.closed || a2.closed {
		t.Errorf("closed: a1 %v a2 %v a3 %v", a1.closed, a2.closed, a3.closed)
	}
	dial(3)
	accept()
	d1 := dial(4) // fifth in all: refused
	e1 := &fakeTCP{remote: &net.TCPAddr{IP: net.IPv4(10, 201, 86, 4), Port: 40001}}
	go func() {
		time.Sleep(50 * time.Millisecond)
		accepted[0].Close()
		accepted[0].Close() // twice: counted once
		fl.conns <- e1
	}()
	if c := accept(); c.(*conn).Conn != e1 || !d1.closed {
		t.Errorf("after a close: accepted %v; d1 closed %v", c.RemoteAddr(), d1.closed)
	}
	st := g.Stats()
	if st.TCPConns != 4 || st.TCPRefused != 2 {
		t.Errorf("stats %+v", st)
	}
	// The remote address wraps the transport's, and answers are accounted.
	c := accepted[1]
	ra, ok := c.RemoteAddr().(*Addr)
	if !ok || ra.Unwrap().String() != "10.201.86.1:40000" || ra.IP() != addr(1) {
		t.Fatalf("remote address %#v", c.RemoteAddr())
	}
	formerr := []byte{0, 12, 0, 1, 0x80, 0x01, 0, 0, 0, 0, 0, 0, 0, 0}
	c.Write(formerr) // a FORMERR the chain never saw: a parse failure
	ra.seen.Store(true)
	c.Write(formerr) // the chain's own answer
	if malformed != 1 || g.Stats().Malformed != 1 {
		t.Errorf("malformed %d, stats %+v", malformed, g.Stats())
	}
	fl.Close()
	if _, err := ln.Accept(); !errors.Is(err, net.ErrClosed) {
		t.Errorf("Accept after close: %v", err)
	}
}

func TestPlugin(t *testing.T) {
	p := &Plugin{Next: test.NextHandler(dns.RcodeNameError, nil)}
	for _, tc := range []struct {
		opcode  int
		qtype   uint16
		rcode   int
		refused bool
	}{
		{dns.OpcodeQuery, dns.TypeA, dns.RcodeNameError, false},
		{dns.OpcodeQuery, dns.TypeAXFR, dns.RcodeRefused, true},
		{dns.OpcodeQuery, dns.TypeIXFR, dns.RcodeRefused, true},
		{dns.OpcodeNotify, dns.TypeSOA, dns.RcodeNotImplemented, true},
	} {
		m := new(dns.Msg)
		m.SetQuestion("home.arpa.", tc.qtype)
		m.Opcode = tc.opcode
		var note querylog.Note
		a := &Addr{Addr: &net.TCPAddr{IP: net.IPv4(10, 201, 86, 100), Port: 1}, ip: addr(100)}
		rc, err := p.ServeDNS(querylog.NewContext(context.Background(), &note), &addrWriter{dnstest.NewRecorder(&test.ResponseWriter{}), a}, m)
		if err != nil || rc != tc.rcode {
			t.Errorf("%s opcode %d: %d %v, want %d", dns.TypeToString[tc.qtype], tc.opcode, rc, err, tc.rcode)
		}
		if o, ok := note.Outcome(); ok != tc.refused || (ok && o != querylog.Refused) {
			t.Errorf("%s: outcome %v %v", dns.TypeToString[tc.qtype], o, ok)
		}
		if !a.seen.Load() {
			t.Errorf("%s: the TCP address was not marked seen", dns.TypeToString[tc.qtype])
		}
	}
}

type addrWriter struct {
	dns.ResponseWriter
	a net.Addr
}

func (w *addrWriter) RemoteAddr() net.Addr { return w.a }

func TestSetup(t *testing.T) {
	for _, tc := range []struct {
		input string
		want  string
	}{
		{"guard", ""},
		{"guard strict", "no arguments"},
		{"guard {\n}", "no arguments"},
	} {
		err := setup(caddy.NewTestController("dns", tc.input))
		if (err == nil) != (tc.want == "") || (err != nil && !strings.Contains(err.Error(), tc.want)) {
			t.Errorf("%q: setup() = %v, want %q", tc.input, err, tc.want)
		}
	}
}

func TestIPOf(t *testing.T) {
	for _, tc := range []struct {
		a    net.Addr
		want string
	}{
		{&net.UDPAddr{IP: net.ParseIP("::ffff:10.0.0.1"), Port: 1}, "10.0.0.1"},
		{&net.TCPAddr{IP: net.ParseIP("10.0.0.2"), Port: 1}, "10.0.0.2"},
		{nil, "invalid IP"},
	} {
		if got := ipOf(tc.a).String(); got != tc.want {
			t.Errorf("ipOf(%v) = %s", tc.a, got)
		}
	}
}
