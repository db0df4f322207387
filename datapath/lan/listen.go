package lan

import (
	"fmt"
	"net"
	"slices"
	"sync"
	"syscall"

	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/adapters/gonet"
	"gvisor.dev/gvisor/pkg/tcpip/network/ipv4"
	"gvisor.dev/gvisor/pkg/tcpip/transport/udp"
	"gvisor.dev/gvisor/pkg/waiter"

	"github.com/redoubt/redoubt/datapath/filter"
)

// ListenTCP opens a TCP service on the box's LAN address. Closing the listener
// closes the port in the ruleset again.
func (l *LAN) ListenTCP(port uint16) (net.Listener, error) {
	ln, err := gonet.ListenTCP(l.stack, l.fullAddr(port), ipv4.ProtocolNumber)
	if err != nil {
		return nil, fmt.Errorf("listening on LAN tcp/%d: %w", port, err)
	}
	svc := filter.Service{Proto: filter.TCP, Port: port}
	if err := l.open(svc); err != nil {
		ln.Close()
		return nil, err
	}
	return &listener{Listener: ln, release: l.releaser(svc)}, nil
}

// ListenUDPBroadcast opens a UDP service that also takes datagrams sent to the
// limited and subnet broadcast addresses and from clients without an address
// (0.0.0.0), and may send to the broadcast address: what a DHCP server needs.
// Replies go out from the box's address. To unicast to a client that cannot answer
// ARP yet, pin its address first with SetNeighbor.
func (l *LAN) ListenUDPBroadcast(port uint16) (net.PacketConn, error) {
	var wq waiter.Queue
	ep, terr := l.stack.NewEndpoint(udp.ProtocolNumber, ipv4.ProtocolNumber, &wq)
	if terr != nil {
		return nil, fmt.Errorf("listening on LAN udp/%d: %s", port, terr)
	}
	ep.SocketOptions().SetBroadcast(true)
	if terr := ep.SocketOptions().SetBindToDevice(nicID); terr != nil {
		ep.Close()
		return nil, fmt.Errorf("binding udp/%d to the LAN port: %s", port, terr)
	}
	if terr := ep.Bind(tcpip.FullAddress{NIC: nicID, Port: port}); terr != nil {
		ep.Close()
		return nil, fmt.Errorf("listening on LAN udp/%d: %s", port, terr)
	}
	svc := filter.Service{Proto: filter.UDP, Port: port, Broadcast: true}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.udpConnFor(port) != nil {
		ep.Close()
		return nil, fmt.Errorf("listening on LAN udp/%d: %w", port, syscall.EADDRINUSE)
	}
	if err := l.openLocked(svc); err != nil {
		ep.Close()
		return nil, err
	}
	return &packetConn{UDPConn: gonet.NewUDPConn(&wq, ep), release: l.releaser(svc)}, nil
}

func (l *LAN) fullAddr(port uint16) tcpip.FullAddress {
	return tcpip.FullAddress{NIC: nicID, Addr: tcpip.AddrFrom4(l.cfg.Address.Addr().As4()), Port: port}
}

// open counts a listener on svc and opens the port when it is the first.
func (l *LAN) open(svc filter.Service) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.openLocked(svc)
}

// openLocked is open with mu held.
func (l *LAN) openLocked(svc filter.Service) error {
	l.services[svc]++
	if l.services[svc] > 1 {
		return nil
	}
	err := l.swapRules(func(c *filter.Config) { c.Services = append(c.Services, svc) })
	if err != nil {
		delete(l.services, svc)
	}
	return err
}

// releaser returns a function that, once, drops a listener's count on svc and
// closes the port when it was the last.
func (l *LAN) releaser(svc filter.Service) func() {
	var once sync.Once
	return func() {
		once.Do(func() {
			l.mu.Lock()
			defer l.mu.Unlock()
			l.services[svc]--
			if l.services[svc] > 0 {
				return
			}
			delete(l.services, svc)
			_ = l.swapRules(func(c *filter.Config) {
				c.Services = slices.DeleteFunc(c.Services, func(s filter.Service) bool { return s == svc })
			})
		})
	}
}

// Services lists the ports open on the box's LAN address.
func (l *LAN) Services() []filter.Service {
	return l.rules.Load().Config().Services
}

type listener struct {
	net.Listener
	release func()
}

func (ln *listener) Close() error {
	err := ln.Listener.Close()
	ln.release()
	return err
}

type packetConn struct {
	*gonet.UDPConn
	release func()
}

func (c *packetConn) Close() error {
	err := c.UDPConn.Close()
	c.release()
	return err
}
