package lan

import (
	"context"
	"errors"
	"io"
	"net"
	"net/netip"
	"sync/atomic"
	"time"

	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/adapters/gonet"
	"gvisor.dev/gvisor/pkg/tcpip/stack"
	"gvisor.dev/gvisor/pkg/tcpip/transport/tcp"
	"gvisor.dev/gvisor/pkg/tcpip/transport/udp"
	"gvisor.dev/gvisor/pkg/waiter"

	"github.com/redoubt/redoubt/datapath/filter"
)

// Team is how the LAN port reaches the team's devices: the box's tailnet node.
type Team interface {
	DialContext(ctx context.Context, network, addr string) (net.Conn, error)
	// ListenPacket opens a UDP socket on the box's own tailnet address
	// ("100.x.y.z:0").
	ListenPacket(network, addr string) (net.PacketConn, error)
}

// team is the relay's current target: the tailnet node and the box's address in
// the tailnet.
type team struct {
	dialer Team
	local  netip.Addr
}

const (
	// maxRelayed bounds the laptop's connections and datagram flows to the team
	// at once; beyond it new ones are refused.
	maxRelayed = 256
	// relayDialWait bounds how long the laptop waits for a team device.
	relayDialWait = 10 * time.Second
	// udpIdle ends a datagram flow nobody used for this long.
	udpIdle = 60 * time.Second
)

// SetTeam lets the laptop reach the team's devices at devices (their tailnet
// IPv4 addresses) through t, the box's tailnet node, whose own tailnet address is
// local. TCP and UDP to those addresses is relayed; everything else beyond the box
// is still stopped. A nil t, or no devices, closes the way.
func (l *LAN) SetTeam(t Team, local netip.Addr, devices []netip.Addr) error {
	if t == nil || !local.Is4() {
		devices = nil
	}
	var v4 []netip.Addr
	for _, a := range devices {
		if a.Is4() {
			v4 = append(v4, a)
		}
	}
	if len(v4) > 0 {
		l.team.Store(&team{dialer: t, local: local})
		l.setPromiscuous(true)
	}
	if err := l.swapRules(func(c *filter.Config) { c.Team = v4 }); err != nil {
		return err
	}
	if len(v4) == 0 {
		l.team.Store(nil)
		l.setPromiscuous(l.rules.Load().Config().Reveal)
	}
	return nil
}

// isTeam reports whether a is a team device the laptop may reach now.
func (l *LAN) isTeam(a tcpip.Address) bool {
	addr := toAddr(a)
	for _, t := range l.rules.Load().Config().Team {
		if t == addr {
			return l.team.Load() != nil
		}
	}
	return false
}

// relayTCP carries a connection the laptop opened to a team device: it dials the
// device through the tailnet first, so a device that does not answer gets the
// laptop a reset rather than a false connection.
func (l *LAN) relayTCP(r *tcp.ForwarderRequest) {
	id := r.ID()
	t := l.team.Load()
	if t == nil || !l.takeRelay() {
		r.Complete(true)
		return
	}
	dst := netip.AddrPortFrom(toAddr(id.LocalAddress), id.LocalPort)
	ctx, cancel := context.WithTimeout(context.Background(), relayDialWait)
	up, err := t.dialer.DialContext(ctx, "tcp", dst.String())
	cancel()
	if err != nil {
		l.releaseRelay()
		r.Complete(true)
		l.log.Debug("team relay: no connection", "to", dst.String(), "err", err)
		return
	}
	var wq waiter.Queue
	ep, terr := r.CreateEndpoint(&wq)
	if terr != nil {
		l.releaseRelay()
		up.Close()
		r.Complete(true)
		return
	}
	r.Complete(false)
	down := gonet.NewTCPConn(&wq, ep)
	if !l.spawn(func() {
		defer l.releaseRelay()
		splice(down, up, l.closing)
	}) {
		l.releaseRelay()
		down.Close()
		up.Close()
	}
}

// splice copies both ways until both sides are done or the LAN closes.
func splice(a, b net.Conn, closing <-chan struct{}) {
	done := make(chan struct{}, 2)
	cp := func(dst, src net.Conn) {
		io.Copy(dst, src)
		if cw, ok := dst.(interface{ CloseWrite() error }); ok {
			cw.CloseWrite()
		} else {
			dst.Close()
		}
		done <- struct{}{}
	}
	go cp(a, b)
	go cp(b, a)
	select {
	case <-done:
		select {
		case <-done:
		case <-closing:
		}
	case <-closing:
	}
	a.Close()
	b.Close()
	// After both are closed the copies end; wait so nothing outlives the LAN.
	for len(done) < 2 {
		select {
		case <-done:
		case <-time.After(time.Second):
			return
		}
	}
}

// relayUDP carries a datagram flow from the laptop to a team device: a socket on
// the box's tailnet address per flow, ended after a minute unused.
func (l *LAN) relayUDP(r *udp.ForwarderRequest) bool {
	id := r.ID()
	t := l.team.Load()
	if t == nil || !l.isTeam(id.LocalAddress) || !l.takeRelay() {
		return false
	}
	pc, err := t.dialer.ListenPacket("udp4", netip.AddrPortFrom(t.local, 0).String())
	if err != nil {
		l.releaseRelay()
		l.log.Debug("team relay: no UDP socket", "err", err)
		return false
	}
	var wq waiter.Queue
	ep, terr := r.CreateEndpoint(&wq)
	if terr != nil {
		l.releaseRelay()
		pc.Close()
		return false
	}
	down := gonet.NewUDPConn(&wq, ep)
	dst := net.UDPAddrFromAddrPort(netip.AddrPortFrom(toAddr(id.LocalAddress), id.LocalPort))
	started := l.spawn(func() {
		defer l.releaseRelay()
		defer down.Close()
		defer pc.Close()
		var last atomic.Int64
		touch := func() { last.Store(time.Now().UnixNano()) }
		touch()
		stop := make(chan struct{})
		go func() { // team → laptop
			buf := make([]byte, 64<<10)
			for {
				pc.SetReadDeadline(time.Now().Add(udpIdle))
				n, from, err := pc.ReadFrom(buf)
				if err != nil {
					break
				}
				if ua, ok := from.(*net.UDPAddr); !ok || !ua.IP.Equal(dst.IP) || ua.Port != dst.Port {
					continue // only the device the laptop wrote to answers
				}
				touch()
				down.Write(buf[:n])
			}
			close(stop)
		}()
		buf := make([]byte, 64<<10)
		for { // laptop → team
			down.SetReadDeadline(time.Now().Add(udpIdle))
			n, err := down.Read(buf)
			if err != nil {
				var ne net.Error
				if errors.As(err, &ne) && ne.Timeout() && time.Since(time.Unix(0, last.Load())) < udpIdle {
					continue
				}
				break
			}
			touch()
			pc.WriteTo(buf[:n], dst)
			select {
			case <-stop:
				return
			case <-l.closing:
				return
			default:
			}
		}
	})
	if !started {
		l.releaseRelay()
		down.Close()
		pc.Close()
	}
	return true
}

func (l *LAN) takeRelay() bool {
	select {
	case l.relaySlots <- struct{}{}:
		return true
	default:
		return false
	}
}

func (l *LAN) releaseRelay() { <-l.relaySlots }

// udpHandler installs the team relay for datagrams without a local endpoint.
func (l *LAN) udpHandler(s *stack.Stack) {
	fwd := udp.NewForwarder(s, l.relayUDP)
	s.SetTransportProtocolHandler(udp.ProtocolNumber, fwd.HandlePacket)
}
