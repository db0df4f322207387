package guard

import (
	"bytes"
	"errors"
	"net"
	"net/netip"
	"sync"
)

// Packet is one UDP datagram to answer.
type Packet struct {
	Data   []byte   // the datagram, the handler's to keep
	From   net.Addr // where it came from (to answer to)
	Client netip.Addr
}

// headerSize is the size of a DNS message header.
const headerSize = 12

// ServePacket reads datagrams from pc and has handle answer each admitted one, on
// one of the Guard's worker goroutines, until reading fails (pc is closed); then it
// waits for the workers and returns the read error. handle is called
// concurrently, from a few long-lived goroutines.
func (g *Guard) ServePacket(pc net.PacketConn, handle func(*Packet)) error {
	var wg sync.WaitGroup
	for range g.cfg.Workers {
		wg.Go(func() {
			for {
				p := g.q.pop()
				if p == nil {
					return
				}
				g.handle(handle, p)
			}
		})
	}
	buf := make([]byte, 1<<16)
	var err error
	for {
		n, from, rerr := pc.ReadFrom(buf)
		if rerr != nil {
			var ne net.Error
			if errors.As(rerr, &ne) && ne.Timeout() {
				continue
			}
			err = rerr
			break
		}
		client := ipOf(from)
		if n < headerSize || buf[2]&0x80 != 0 {
			// Too short to be a query, or a response: never answered.
			g.dropNotQuery(client)
			continue
		}
		p := &Packet{Data: bytes.Clone(buf[:n]), From: from, Client: client}
		if victim, dropped := g.q.push(p); dropped {
			g.dropShed(victim)
		}
	}
	g.q.close()
	wg.Wait()
	return err
}

// handle runs one answer; a panic in it costs that query, not the worker.
func (g *Guard) handle(handle func(*Packet), p *Packet) {
	defer func() {
		if r := recover(); r != nil {
			g.cfg.Logger.Error("DNS query handler panicked", "client", p.Client, "panic", r)
		}
	}()
	handle(p)
}

// flow is one client's queued datagrams.
type flow struct {
	client     netip.Addr
	pkts       []*Packet
	prev, next *flow // in the round-robin ring of flows with datagrams
}

// fairQueue holds datagrams per client and hands them out one client at a time,
// round-robin. It is bounded by max datagrams in all.
type fairQueue struct {
	mu     sync.Mutex
	cond   sync.Cond
	max    int
	n      int
	flows  map[netip.Addr]*flow // only clients with datagrams queued
	head   *flow                // next to serve; the ring is head … tail
	tail   *flow
	closed bool
}

func (q *fairQueue) init(max int) {
	q.max = max
	q.flows = make(map[netip.Addr]*flow)
	q.cond.L = &q.mu
}

func (q *fairQueue) len() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.n
}

// push queues p. When the queue is full it drops one datagram from the client with
// the longest queue — p itself if that is p's client — and reports whose it was.
func (q *fairQueue) push(p *Packet) (victim netip.Addr, dropped bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	f := q.flows[p.Client]
	if q.n >= q.max {
		fat, mine := q.fattest(), 0
		if f != nil {
			mine = len(f.pkts)
		}
		if fat == nil || mine >= len(fat.pkts) {
			return p.Client, true
		}
		// Drop the oldest of the longest queue: the likeliest to have been
		// given up on by its client already.
		victim = fat.pkts[0].Client
		fat.pkts[0] = nil
		fat.pkts = fat.pkts[1:]
		q.n--
		dropped = true
		if len(fat.pkts) == 0 {
			q.remove(fat)
		}
	}
	if f == nil {
		f = &flow{client: p.Client}
		q.flows[p.Client] = f
		q.append(f)
	}
	f.pkts = append(f.pkts, p)
	q.n++
	q.cond.Signal()
	return victim, dropped
}

// pop returns the next datagram, waiting for one, or nil once the queue is closed
// and empty.
func (q *fairQueue) pop() *Packet {
	q.mu.Lock()
	defer q.mu.Unlock()
	for q.head == nil {
		if q.closed {
			return nil
		}
		q.cond.Wait()
	}
	f := q.head
	p := f.pkts[0]
	f.pkts[0] = nil
	f.pkts = f.pkts[1:]
	q.n--
	q.remove(f)
	if len(f.pkts) > 0 {
		// Its turn is over: to the back of the ring.
		q.flows[f.client] = f
		q.append(f)
	}
	return p
}

func (q *fairQueue) close() {
	q.mu.Lock()
	q.closed = true
	q.cond.Broadcast()
	q.mu.Unlock()
}

func (q *fairQueue) fattest() *flow {
	var fat *flow
	for f := q.head; f != nil; f = f.next {
		if fat == nil || len(f.pkts) > len(fat.pkts) {
			fat = f
		}
	}
	return fat
}

func (q *fairQueue) append(f *flow) {
	f.prev, f.next = q.tail, nil
	if q.tail != nil {
		q.tail.next = f
	} else {
		q.head = f
	}
	q.tail = f
}

// remove takes f out of the ring and the index.
func (q *fairQueue) remove(f *flow) {
	if f.prev != nil {
		f.prev.next = f.next
	} else {
		q.head = f.next
	}
	if f.next != nil {
		f.next.prev = f.prev
	} else {
		q.tail = f.prev
	}
	f.prev, f.next = nil, nil
	delete(q.flows, f.client)
}
