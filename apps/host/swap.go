package host

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"strconv"
	"sync"
	"time"

	"github.com/redoubt/redoubt/apps"
)

// extraKey checks an app's request for one of its extra listeners (not its
// web origin) of proto on network, and names it.
func extraKey(in *instance, name, proto string, network apps.Network) (swapKey, error) {
	l, ok := in.m.Listener(name)
	if !ok || l.Name == "web" || l.Proto != proto {
		return swapKey{}, fmt.Errorf("%s's manifest declares no %s listener %q besides its web origin", in.m.ID, proto, name)
	}
	if network != apps.LAN && network != apps.Tailnet {
		return swapKey{}, fmt.Errorf("listener %q: apps listen on the LAN or the tailnet, not %q", name, network)
	}
	if !in.m.Exposed(network) {
		return swapKey{}, fmt.Errorf("listener %q on %s: %w (its exposure is %v)", name, network, apps.ErrNotPublished, in.m.Exposure)
	}
	return swapKey{in.m.ID, name, network}, nil
}

// appListener returns the listener an app asked for (Env.Listen): it stays
// the app's across the network's re-mounts.
func (n *networks) appListener(r *run, name string, network apps.Network) (net.Listener, error) {
	k, err := extraKey(r.in, name, "tcp", network)
	if err != nil {
		return nil, err
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if s, ok := n.listens[k]; ok {
		return s, nil
	}
	s := newSwapListener()
	n.listens[k] = s
	n.mountExtra(k, r.in, r, s, nil)
	return s, nil
}

// appPacketConn returns the UDP socket an app asked for (Env.ListenPacket).
func (n *networks) appPacketConn(r *run, name string, network apps.Network) (net.PacketConn, error) {
	k, err := extraKey(r.in, name, "udp", network)
	if err != nil {
		return nil, err
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if p, ok := n.packets[k]; ok {
		return p, nil
	}
	p := newSwapPacketConn()
	n.packets[k] = p
	n.mountExtra(k, r.in, r, nil, p)
	return p, nil
}

// mountExtra opens or closes the socket under an app's listener on one
// network, as the app's state, its options and the network allow. Called
// with n.mu held; s or p is the listener.
func (n *networks) mountExtra(k swapKey, in *instance, r *run, s *swapListener, p *swapPacketConn) {
	l, _ := in.m.Listener(k.name)
	var extra map[swapKey]io.Closer
	switch k.network {
	case apps.LAN:
		if n.lan != nil {
			extra = n.lan.extra
		}
	case apps.Tailnet:
		if n.tail != nil {
			extra = n.tail.extra
		}
	}
	want := extra != nil && allowed(in, r, k.network)
	cur, have := extra[k]
	if !want {
		if have {
			cur.Close()
			delete(extra, k)
		}
		if s != nil {
			s.set(nil)
		} else {
			p.set(nil)
		}
		return
	}
	if have {
		return
	}
	var err error
	switch {
	case k.network == apps.LAN && s != nil:
		var ln net.Listener
		if ln, err = n.lan.lan.ListenTCP(l.Port); err == nil {
			s.set(ln)
			extra[k] = ln
		}
	case k.network == apps.LAN:
		var pc net.PacketConn
		if pc, err = n.lan.lan.ListenUDP(l.Port); err == nil {
			p.set(pc)
			extra[k] = pc
		}
	case s != nil:
		var ln net.Listener
		if ln, err = n.tail.node.Listen("tcp", ":"+strconv.Itoa(int(l.Port))); err == nil {
			s.set(ln)
			extra[k] = ln
		}
	default:
		var self netip.Addr
		for _, a := range n.tail.node.Status().Addrs {
			if a.Is4() {
				self = a
			}
		}
		if !self.IsValid() {
			err = errors.New("the node has no tailnet address yet")
			break
		}
		var pc net.PacketConn
		if pc, err = n.tail.node.ListenPacket("udp", netip.AddrPortFrom(self, l.Port).String()); err == nil {
			p.set(pc)
			extra[k] = pc
		}
	}
	if err != nil {
		in.log.Warn("opening a listener", "listener", k.name, "network", k.network, "err", err)
	}
}

// swapListener is an app's TCP listener: connections come from whatever
// socket is under it now, which the host replaces when the network is
// mounted again. Accept waits while there is none.
type swapListener struct {
	conns chan net.Conn
	done  chan struct{}
	once  sync.Once

	mu  sync.Mutex
	cur net.Listener
}

func newSwapListener() *swapListener {
	return &swapListener{conns: make(chan net.Conn), done: make(chan struct{})}
}

func (s *swapListener) set(l net.Listener) {
	s.mu.Lock()
	s.cur = l
	s.mu.Unlock()
	if l == nil {
		return
	}
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			select {
			case s.conns <- c:
			case <-s.done:
				c.Close()
				return
			}
		}
	}()
}

func (s *swapListener) Accept() (net.Conn, error) {
	select {
	case c := <-s.conns:
		return c, nil
	case <-s.done:
		return nil, net.ErrClosed
	}
}

func (s *swapListener) Close() error {
	s.once.Do(func() { close(s.done) })
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cur != nil {
		s.cur.Close()
	}
	return nil
}

func (s *swapListener) Addr() net.Addr {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cur != nil {
		return s.cur.Addr()
	}
	return &net.TCPAddr{}
}

// swapPacketConn is an app's UDP socket: reads and writes go to whatever
// socket is under it now; reads wait while there is none, writes fail.
type swapPacketConn struct {
	done chan struct{}
	once sync.Once

	mu       sync.Mutex
	cur      net.PacketConn
	ready    chan struct{} // closed when a socket is set
	deadline time.Time     // read deadline
	wdl      time.Time     // write deadline
}

func newSwapPacketConn() *swapPacketConn {
	return &swapPacketConn{done: make(chan struct{}), ready: make(chan struct{})}
}

func (s *swapPacketConn) set(pc net.PacketConn) {
	s.mu.Lock()
	defer s.mu.Unlock()
	old := s.cur
	s.cur = pc
	if old != nil && old != pc {
		old.Close()
	}
	if pc != nil {
		pc.SetReadDeadline(s.deadline)
		pc.SetWriteDeadline(s.wdl)
		close(s.ready)
		s.ready = make(chan struct{})
	}
}

// errTimeout is what a read past its deadline returns.
type errTimeout struct{}

func (errTimeout) Error() string   { return "i/o timeout" }
func (errTimeout) Timeout() bool   { return true }
func (errTimeout) Temporary() bool { return true }

func (s *swapPacketConn) ReadFrom(p []byte) (int, net.Addr, error) {
	for {
		s.mu.Lock()
		pc, ready, dl := s.cur, s.ready, s.deadline
		s.mu.Unlock()
		if pc == nil {
			var timer <-chan time.Time
			if !dl.IsZero() {
				t := time.NewTimer(time.Until(dl))
				defer t.Stop()
				timer = t.C
			}
			select {
			case <-ready:
				continue
			case <-s.done:
				return 0, nil, net.ErrClosed
			case <-timer:
				return 0, nil, &net.OpError{Op: "read", Net: "udp", Err: errTimeout{}}
			}
		}
		n, addr, err := pc.ReadFrom(p)
		if err != nil {
			select {
			case <-s.done:
				return n, addr, net.ErrClosed
			default:
			}
			// The socket went away under the app (the LAN port closed for
			// a move, the node stopped): wait for the next one.
			s.mu.Lock()
			swapped := s.cur != pc
			if !swapped && errors.Is(err, net.ErrClosed) {
				s.cur, swapped = nil, true
			}
			s.mu.Unlock()
			if swapped {
				continue
			}
		}
		return n, addr, err
	}
}

func (s *swapPacketConn) WriteTo(p []byte, addr net.Addr) (int, error) {
	s.mu.Lock()
	pc := s.cur
	s.mu.Unlock()
	if pc == nil {
		return 0, &net.OpError{Op: "write", Net: "udp", Err: apps.ErrNotPublished}
	}
	return pc.WriteTo(p, addr)
}

func (s *swapPacketConn) Close() error {
	s.once.Do(func() { close(s.done) })
	s.set(nil)
	return nil
}

func (s *swapPacketConn) LocalAddr() net.Addr {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cur != nil {
		return s.cur.LocalAddr()
	}
	return &net.UDPAddr{}
}

func (s *swapPacketConn) SetDeadline(t time.Time) error {
	s.SetReadDeadline(t)
	return s.SetWriteDeadline(t)
}

func (s *swapPacketConn) SetReadDeadline(t time.Time) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.deadline = t
	if s.cur != nil {
		return s.cur.SetReadDeadline(t)
	}
	return nil
}

func (s *swapPacketConn) SetWriteDeadline(t time.Time) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.wdl = t
	if s.cur != nil {
		return s.cur.SetWriteDeadline(t)
	}
	return nil
}
