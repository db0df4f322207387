package tunnel

import (
	"fmt"
	"net/netip"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"golang.zx2c4.com/wireguard/tun"
	"gvisor.dev/gvisor/pkg/buffer"
	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/header"
	"gvisor.dev/gvisor/pkg/tcpip/network/ipv4"
	"gvisor.dev/gvisor/pkg/tcpip/network/ipv6"
	"gvisor.dev/gvisor/pkg/tcpip/stack"
	"gvisor.dev/gvisor/pkg/tcpip/stack/gro"
	"gvisor.dev/gvisor/pkg/tcpip/transport/icmp"
	"gvisor.dev/gvisor/pkg/tcpip/transport/tcp"
	"gvisor.dev/gvisor/pkg/tcpip/transport/udp"
)

const (
	nicID = 1
	// outQueue bounds the packets the netstack has built and WireGuard has not
	// yet taken (about 1.4 MiB at the default MTU).
	outQueue = 1024
	// writeWait bounds how long the netstack waits for room in the queue before
	// a packet is dropped: TCP sees backpressure, not loss.
	writeWait = time.Second
	// batchSize is how many packets one Read hands WireGuard at most (the
	// device encrypts and sends them as a batch).
	batchSize = 128
)

// netTUN is the tunnel's inside: a tun.Device (what wireguard-go reads clear
// packets from and writes decrypted packets to) backed by a gVisor netstack that
// holds the box's tunnel addresses. Nothing else is attached to the stack: it
// forwards nothing and serves nothing; it only carries the connections the box's
// own code dials through the egress.
type netTUN struct {
	stack  *stack.Stack
	ep     *linkEP
	mtu    int
	events chan tun.Event
	once   sync.Once
}

// linkEP is the netstack's link layer: no link header, a bounded queue toward
// WireGuard that applies backpressure when full, and generic receive offload on
// the way in (batches of decrypted TCP segments are coalesced before the stack
// sees them).
type linkEP struct {
	mtu    atomic.Uint32
	out    chan *stack.PacketBuffer
	closed chan struct{}
	once   sync.Once

	mu         sync.Mutex // guards dispatcher and onClose
	dispatcher stack.NetworkDispatcher
	onClose    func()

	// rxMu serialises Write and guards gro. It is never held with mu: the
	// stack calls Attach with its own lock held, and delivering a packet takes
	// that lock, so holding mu while delivering would deadlock a closing stack.
	rxMu sync.Mutex
	gro  gro.GRO

	txPackets, txWaits, txDropped, txTooBig      atomic.Uint64
	rxPackets, rxBytes, rxInvalid, rxBadChecksum atomic.Uint64
}

// LinkStats are the tunnel netstack's link counters.
type LinkStats struct {
	TxPackets uint64 `json:"tx_packets"` // packets handed to WireGuard
	TxWaits   uint64 `json:"tx_waits"`   // writes that waited for room (backpressure)
	TxDropped uint64 `json:"tx_dropped"` // packets dropped after waiting, or at close
	TxTooBig  uint64 `json:"tx_too_big"` // packets larger than WireGuard's buffer
	RxPackets uint64 `json:"rx_packets"` // decrypted packets delivered to the stack
	RxBytes   uint64 `json:"rx_bytes"`
	RxInvalid uint64 `json:"rx_invalid"` // not IPv4 or IPv6
	// RxBadChecksum: packets whose IP or transport checksum was wrong (damaged
	// between the far end and the VPN server), dropped.
	RxBadChecksum uint64 `json:"rx_bad_checksum"`
}

func newNetTUN(addrs []netip.Prefix, mtu int) (*netTUN, error) {
	ep := &linkEP{out: make(chan *stack.PacketBuffer, outQueue), closed: make(chan struct{})}
	ep.mtu.Store(uint32(mtu))
	ep.gro.Init(true)
	var has4, has6 bool
	for _, a := range addrs {
		has4 = has4 || a.Addr().Is4()
		has6 = has6 || a.Addr().Is6()
	}
	var netProtos []stack.NetworkProtocolFactory
	var transProtos = []stack.TransportProtocolFactory{tcp.NewProtocol, udp.NewProtocol}
	if has4 {
		netProtos = append(netProtos, ipv4.NewProtocol)
		transProtos = append(transProtos, icmp.NewProtocol4)
	}
	if has6 {
		netProtos = append(netProtos, ipv6.NewProtocol)
		transProtos = append(transProtos, icmp.NewProtocol6)
	}
	s := stack.New(stack.Options{NetworkProtocols: netProtos, TransportProtocols: transProtos})
	if err := tuneTCP(s); err != nil {
		s.Close()
		return nil, err
	}
	if err := s.CreateNICWithOptions(nicID, ep, stack.NICOptions{Name: "vpn"}); err != nil {
		s.Close()
		return nil, fmt.Errorf("creating the tunnel's netstack NIC: %s", err)
	}
	for _, a := range addrs {
		proto := ipv4.ProtocolNumber
		if a.Addr().Is6() {
			proto = ipv6.ProtocolNumber
		}
		pa := tcpip.ProtocolAddress{Protocol: proto, AddressWithPrefix: tcpip.AddrFromSlice(a.Addr().AsSlice()).WithPrefix()}
		if err := s.AddProtocolAddress(nicID, pa, stack.AddressProperties{}); err != nil {
			s.Close()
			return nil, fmt.Errorf("adding tunnel address %s: %s", a, err)
		}
	}
	// Everything goes out through the tunnel: WireGuard's AllowedIPs cover every
	// address (wgconfig refuses configs that do not).
	var routes []tcpip.Route
	if has4 {
		routes = append(routes, tcpip.Route{Destination: header.IPv4EmptySubnet, NIC: nicID})
	}
	if has6 {
		routes = append(routes, tcpip.Route{Destination: header.IPv6EmptySubnet, NIC: nicID})
	}
	s.SetRouteTable(routes)
	t := &netTUN{stack: s, ep: ep, mtu: mtu, events: make(chan tun.Event, 4)}
	t.events <- tun.EventUp
	return t, nil
}

// tuneTCP sets the stack's TCP options explicitly: SACK on, buffers large enough
// for a tunnel with some latency, receive-buffer moderation.
func tuneTCP(s *stack.Stack) error {
	sack := tcpip.TCPSACKEnabled(true)
	rx := tcpip.TCPReceiveBufferSizeRangeOption{Min: 4 << 10, Default: 1 << 20, Max: 8 << 20}
	tx := tcpip.TCPSendBufferSizeRangeOption{Min: 4 << 10, Default: 1 << 20, Max: 6 << 20}
	moderate := tcpip.TCPModerateReceiveBufferOption(true)
	delay := tcpip.TCPDelayEnabled(false)
	for _, o := range []struct {
		name string
		opt  tcpip.SettableTransportProtocolOption
	}{
		{"SACK", &sack}, {"receive buffer", &rx}, {"send buffer", &tx},
		{"receive buffer moderation", &moderate}, {"delay", &delay},
	} {
		if err := s.SetTransportProtocolOption(tcp.ProtocolNumber, o.opt); err != nil {
			return fmt.Errorf("setting the tunnel's TCP %s: %s", o.name, err)
		}
	}
	return nil
}

// File implements tun.Device: there is no file.
func (t *netTUN) File() *os.File { return nil }

// Name implements tun.Device.
func (t *netTUN) Name() (string, error) { return "redoubt-vpn", nil }

// MTU implements tun.Device.
func (t *netTUN) MTU() (int, error) { return t.mtu, nil }

// Events implements tun.Device.
func (t *netTUN) Events() <-chan tun.Event { return t.events }

// BatchSize implements tun.Device.
func (t *netTUN) BatchSize() int { return batchSize }

// Read implements tun.Device: it hands WireGuard the packets the netstack wants
// sent, waiting for the first and taking as many more as are queued.
func (t *netTUN) Read(bufs [][]byte, sizes []int, offset int) (int, error) {
	var pkt *stack.PacketBuffer
	select {
	case pkt = <-t.ep.out:
	case <-t.ep.closed:
		return 0, os.ErrClosed
	}
	n := 0
	for {
		if size, ok := copyPacket(bufs[n][offset:], pkt); ok {
			sizes[n] = size
			n++
		} else {
			t.ep.txTooBig.Add(1)
		}
		pkt.DecRef()
		if n == len(bufs) {
			return n, nil
		}
		select {
		case pkt = <-t.ep.out:
		default:
			if n == 0 {
				// Only oversized packets so far: wait for a usable one.
				select {
				case pkt = <-t.ep.out:
					continue
				case <-t.ep.closed:
					return 0, os.ErrClosed
				}
			}
			return n, nil
		}
	}
}

func copyPacket(dst []byte, pkt *stack.PacketBuffer) (int, bool) {
	if pkt.Size() > len(dst) {
		return 0, false
	}
	n := 0
	for _, s := range pkt.AsSlices() {
		n += copy(dst[n:], s)
	}
	return n, true
}

// Write implements tun.Device: WireGuard hands over a batch of decrypted packets,
// which are coalesced (GRO) and delivered to the netstack.
func (t *netTUN) Write(bufs [][]byte, offset int) (int, error) {
	e := t.ep
	e.mu.Lock()
	d := e.dispatcher
	e.mu.Unlock()
	if d == nil {
		return len(bufs), nil
	}
	e.rxMu.Lock()
	defer e.rxMu.Unlock()
	e.gro.Dispatcher = d
	for _, b := range bufs {
		p := b[offset:]
		if len(p) == 0 {
			continue
		}
		var proto tcpip.NetworkProtocolNumber
		switch p[0] >> 4 {
		case 4:
			proto = header.IPv4ProtocolNumber
		case 6:
			proto = header.IPv6ProtocolNumber
		default:
			e.rxInvalid.Add(1)
			continue
		}
		if !checksumsOK(p) {
			e.rxBadChecksum.Add(1)
			continue
		}
		pkt := stack.NewPacketBuffer(stack.PacketBufferOptions{Payload: buffer.MakeWithData(p)})
		pkt.NetworkProtocolNumber = proto
		pkt.RXChecksumValidated = true
		e.rxPackets.Add(1)
		e.rxBytes.Add(uint64(len(p)))
		e.gro.Enqueue(pkt)
		pkt.DecRef()
	}
	e.gro.Flush()
	return len(bufs), nil
}

// Close implements tun.Device. WireGuard's device calls it when it closes.
func (t *netTUN) Close() error {
	t.once.Do(func() {
		t.ep.shut()
		t.stack.Close()
		t.stack.Wait()
		close(t.events)
	})
	return nil
}

func (e *linkEP) shut() {
	e.once.Do(func() {
		close(e.closed)
		for {
			select {
			case pkt := <-e.out:
				pkt.DecRef()
				e.txDropped.Add(1)
			default:
				return
			}
		}
	})
}

func (e *linkEP) stats() LinkStats {
	return LinkStats{
		TxPackets: e.txPackets.Load(), TxWaits: e.txWaits.Load(), TxDropped: e.txDropped.Load(), TxTooBig: e.txTooBig.Load(),
		RxPackets: e.rxPackets.Load(), RxBytes: e.rxBytes.Load(), RxInvalid: e.rxInvalid.Load(), RxBadChecksum: e.rxBadChecksum.Load(),
	}
}

// WritePackets implements stack.LinkEndpoint: packets join the queue toward
// WireGuard; when it is full the writer waits (up to writeWait) for room.
func (e *linkEP) WritePackets(pkts stack.PacketBufferList) (int, tcpip.Error) {
	n := 0
	var timer *time.Timer
	defer func() {
		if timer != nil {
			timer.Stop()
		}
	}()
	for _, pkt := range pkts.AsSlice() {
		select {
		case <-e.closed:
			return n, &tcpip.ErrClosedForSend{}
		default:
		}
		pkt.IncRef()
		select {
		case e.out <- pkt:
			e.txPackets.Add(1)
			n++
			continue
		default:
		}
		e.txWaits.Add(1)
		if timer == nil {
			timer = time.NewTimer(writeWait)
		} else {
			timer.Reset(writeWait)
		}
		select {
		case e.out <- pkt:
			e.txPackets.Add(1)
			n++
		case <-e.closed:
			pkt.DecRef()
			return n, &tcpip.ErrClosedForSend{}
		case <-timer.C:
			pkt.DecRef()
			e.txDropped.Add(1)
			return n, &tcpip.ErrWouldBlock{}
		}
	}
	return n, nil
}

// MTU implements stack.LinkEndpoint.
func (e *linkEP) MTU() uint32 { return e.mtu.Load() }

// SetMTU implements stack.LinkEndpoint.
func (e *linkEP) SetMTU(mtu uint32) { e.mtu.Store(mtu) }

// MaxHeaderLength implements stack.LinkEndpoint: there is no link header.
func (e *linkEP) MaxHeaderLength() uint16 { return 0 }

// LinkAddress implements stack.LinkEndpoint: a tunnel has none.
func (e *linkEP) LinkAddress() tcpip.LinkAddress { return "" }

// SetLinkAddress implements stack.LinkEndpoint.
func (e *linkEP) SetLinkAddress(tcpip.LinkAddress) {}

// Capabilities implements stack.LinkEndpoint. Write verifies every packet's
// checksums before the stack sees it (checksumsOK), so the stack need not, and
// segments that GRO coalesced are not checked against their old checksums.
func (e *linkEP) Capabilities() stack.LinkEndpointCapabilities {
	return stack.CapabilityRXChecksumOffload
}

// Attach implements stack.LinkEndpoint.
func (e *linkEP) Attach(d stack.NetworkDispatcher) {
	e.mu.Lock()
	e.dispatcher = d
	e.mu.Unlock()
}

// IsAttached implements stack.LinkEndpoint.
func (e *linkEP) IsAttached() bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.dispatcher != nil
}

// Wait implements stack.LinkEndpoint: the endpoint has no goroutines.
func (e *linkEP) Wait() {}

// ARPHardwareType implements stack.LinkEndpoint.
func (e *linkEP) ARPHardwareType() header.ARPHardwareType { return header.ARPHardwareNone }

// AddHeader implements stack.LinkEndpoint: no link header.
func (e *linkEP) AddHeader(*stack.PacketBuffer) {}

// ParseHeader implements stack.LinkEndpoint: no link header.
func (e *linkEP) ParseHeader(*stack.PacketBuffer) bool { return true }

// Close implements stack.LinkEndpoint.
func (e *linkEP) Close() {
	e.shut()
	e.mu.Lock()
	f := e.onClose
	e.onClose = nil
	e.mu.Unlock()
	if f != nil {
		f()
	}
}

// SetOnCloseAction implements stack.LinkEndpoint.
func (e *linkEP) SetOnCloseAction(f func()) {
	e.mu.Lock()
	e.onClose = f
	e.mu.Unlock()
}
