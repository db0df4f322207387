package lan

import (
	"net/netip"
	"time"

	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/adapters/gonet"
	"gvisor.dev/gvisor/pkg/tcpip/header"
	"gvisor.dev/gvisor/pkg/tcpip/stack"
	"gvisor.dev/gvisor/pkg/tcpip/transport/tcp"
	"gvisor.dev/gvisor/pkg/waiter"

	"github.com/redoubt/redoubt/datapath/filter"
	"github.com/redoubt/redoubt/datapath/leaklog"
	"github.com/redoubt/redoubt/datapath/reveal"
)

// acceptTCP takes a connection the laptop opened toward an address beyond the box:
// a team device's is relayed, any other is revealed and reset.
func (l *LAN) acceptTCP(r *tcp.ForwarderRequest) {
	if l.isTeam(r.ID().LocalAddress) {
		l.relayTCP(r)
		return
	}
	l.revealTCP(r)
}

// revealTCP answers a connection the laptop opened toward an address beyond the
// box: it completes the handshake as if it were that address, reads the first
// bytes (a TLS ClientHello, an HTTP request, a DNS query), records what they reveal
// and resets the connection. Nothing reaches the real address.
func (l *LAN) revealTCP(r *tcp.ForwarderRequest) {
	id := r.ID()
	a := leaklog.Attempt{
		Kind:    filter.Egress,
		Src:     toAddr(id.RemoteAddress),
		Dst:     toAddr(id.LocalAddress),
		Proto:   "tcp",
		DstPort: id.LocalPort,
	}
	a.MAC = l.neighborMAC(id.RemoteAddress)
	if a.Dst == l.cfg.Address.Addr() {
		// A listener on the box closed between the filter and the stack.
		r.Complete(true)
		a.Kind = filter.ClosedPort
		l.record(a, nil)
		return
	}
	select {
	case l.revealSlots <- struct{}{}:
	default:
		r.Complete(true)
		l.record(a, nil)
		return
	}
	var wq waiter.Queue
	ep, err := r.CreateEndpoint(&wq)
	if err != nil {
		<-l.revealSlots
		r.Complete(true)
		l.record(a, nil)
		return
	}
	r.Complete(false)
	started := l.spawn(func() {
		defer func() { <-l.revealSlots }()
		conn := gonet.NewTCPConn(&wq, ep)
		a.App, a.Name = l.readReveal(conn, id.LocalPort)
		ep.Abort() // reset: the laptop learns at once that nothing is there
		conn.Close()
		a.MAC = l.neighborMAC(id.RemoteAddress)
		l.record(a, nil)
	})
	if !started {
		ep.Abort()
		<-l.revealSlots
	}
}

// isSYN reports whether a TCP segment opens a connection.
func isSYN(pkt *stack.PacketBuffer) bool {
	h := header.TCP(pkt.TransportHeader().Slice())
	return len(h) >= header.TCPMinimumSize && h.Flags()&(header.TCPFlagSyn|header.TCPFlagAck) == header.TCPFlagSyn
}

// recordStray records a TCP segment toward an address beyond the box that belongs
// to no connection the responder holds.
func (l *LAN) recordStray(id stack.TransportEndpointID) {
	if toAddr(id.LocalAddress) == l.cfg.Address.Addr() || l.isTeam(id.LocalAddress) {
		return // the box itself (a closed port, counted by the filter), or a team device
	}
	l.record(leaklog.Attempt{
		Kind:    filter.Egress,
		MAC:     l.neighborMAC(id.RemoteAddress),
		Src:     toAddr(id.RemoteAddress),
		Dst:     toAddr(id.LocalAddress),
		Proto:   "tcp",
		DstPort: id.LocalPort,
	}, nil)
}

// readReveal reads until the first message is recognised, the budget is spent or
// the laptop stops sending. Once a name is found it keeps reading until the laptop
// pauses, so the reset does not cut a message in half and leave its tail to be
// logged as a separate attempt.
func (l *LAN) readReveal(conn *gonet.TCPConn, port uint16) (app, name string) {
	conn.SetReadDeadline(time.Now().Add(revealWait))
	buf := make([]byte, 0, revealBytes)
	found := false
	for len(buf) < cap(buf) {
		select {
		case <-l.closing:
			return reveal.Stream(buf, port)
		default:
		}
		n, err := conn.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if err != nil {
			break
		}
		if !found {
			if _, nm := reveal.Stream(buf, port); nm != "" {
				found = true
				conn.SetReadDeadline(time.Now().Add(revealQuiet))
			}
		} else {
			conn.SetReadDeadline(time.Now().Add(revealQuiet))
		}
	}
	return reveal.Stream(buf, port)
}

// neighborMAC is the hardware address a LAN device last used with a.
func (l *LAN) neighborMAC(a tcpip.Address) [6]byte { return l.macOf(toAddr(a)) }

func toAddr(a tcpip.Address) netip.Addr {
	ip, _ := netip.AddrFromSlice(a.AsSlice())
	return ip
}
