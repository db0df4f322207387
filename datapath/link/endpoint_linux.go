package link

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
	"gvisor.dev/gvisor/pkg/buffer"
	"gvisor.dev/gvisor/pkg/rawfile"
	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/header"
	"gvisor.dev/gvisor/pkg/tcpip/stack"
)

// virtio_net_hdr, as AF_PACKET reads and writes it with PACKET_VNET_HDR
// (include/uapi/linux/virtio_net.h), in host byte order.
const (
	vnetHdrLen       = 10
	vnetFNeedsCsum   = 1
	vnetFDataValid   = 2
	vnetGSONone      = 0
	vnetGSOTCPv4     = 1
	vnetGSOTCPv6     = 4
	vnetGSOECN       = 0x80
	maxFrame         = 65536 + header.EthernetMinimumSize
	rxBatch          = 16
	txBatch          = 64
	gsoMaxSize       = 65536
	auxSpace         = 64
	defaultWriteWait = time.Second
)

// Endpoint is a stack.LinkEndpoint over a packet fd. Its reads and writes wait in
// Go's netpoller, not in a blocking system call: a goroutine the reader wakes
// (a service answering) runs at once, and a full socket parks the writer.
type Endpoint struct {
	file     *os.File
	raw      syscall.RawConn
	mac      tcpip.LinkAddress
	vnet     bool
	aux      bool
	gate     Gate
	writeMax time.Duration
	stats    counters

	mtu atomic.Uint32

	mu         sync.Mutex
	dispatcher stack.NetworkDispatcher
	running    bool
	onClose    func()
	closed     bool
	wg         sync.WaitGroup

	// The transmit queue: concurrent writers hand their packets to whichever of
	// them is writing, which sends them all in as few system calls as it can.
	txMu      sync.Mutex
	txCond    *sync.Cond
	txPending []txItem
	txSpare   []txItem
	txWriting bool

	// Scratch for the one writer at a time (on the heap once, rather than on
	// every batch: the gate and the write callback would make them escape).
	txHdr   [txBatch][vnetHdrLen]byte
	txMsg   [txBatch]rawfile.MMsgHdr
	txIov   []unix.Iovec
	txSizes [txBatch]int
	txGate  [header.EthernetMinimumSize + 28]byte
}

var _ stack.LinkEndpoint = (*Endpoint)(nil)
var _ stack.GSOEndpoint = (*Endpoint)(nil)

// Open attaches to the named interface through an AF_PACKET socket that sees every
// frame on it (ETH_P_ALL), with virtio-net headers for segmentation offload,
// PACKET_AUXDATA for stripped VLAN tags, and the socket's own transmissions
// ignored. The endpoint owns the socket.
func Open(ifname string, gate Gate) (*Endpoint, error) {
	ifi, err := net.InterfaceByName(ifname)
	if err != nil {
		return nil, fmt.Errorf("finding LAN interface %q: %w", ifname, err)
	}
	if len(ifi.HardwareAddr) != 6 {
		return nil, fmt.Errorf("LAN interface %q has no Ethernet address (%v)", ifname, ifi.HardwareAddr)
	}
	proto := htons(unix.ETH_P_ALL)
	fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, int(proto))
	if err != nil {
		return nil, fmt.Errorf("opening packet socket on %s: %w", ifname, err)
	}
	for _, o := range []struct {
		name       string
		level, opt int
	}{
		{"PACKET_VNET_HDR", unix.SOL_PACKET, unix.PACKET_VNET_HDR},
		{"PACKET_AUXDATA", unix.SOL_PACKET, unix.PACKET_AUXDATA},
		{"PACKET_IGNORE_OUTGOING", unix.SOL_PACKET, unix.PACKET_IGNORE_OUTGOING},
		// Frames go straight to the driver: the LAN port's queue discipline
		// would only add a lock and a copy of the queue's work per frame.
		{"PACKET_QDISC_BYPASS", unix.SOL_PACKET, unix.PACKET_QDISC_BYPASS},
	} {
		if err := unix.SetsockoptInt(fd, o.level, o.opt, 1); err != nil {
			unix.Close(fd)
			return nil, fmt.Errorf("setting %s on %s: %w", o.name, ifname, err)
		}
	}
	// Deep buffers absorb bursts from the laptop; FORCE needs CAP_NET_ADMIN,
	// which the daemon has, and falls back to the sysctl-capped size otherwise.
	const sockBuf = 4 << 20
	if unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, sockBuf) != nil {
		_ = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUF, sockBuf)
	}
	if unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_SNDBUFFORCE, sockBuf) != nil {
		_ = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_SNDBUF, sockBuf)
	}
	if err := unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: proto, Ifindex: ifi.Index}); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("binding packet socket to %s: %w", ifname, err)
	}
	e, err := New(fd, Options{
		MAC:     ifi.HardwareAddr,
		MTU:     uint32(ifi.MTU),
		VnetHdr: true,
		AuxData: true,
		Gate:    gate,
	})
	unix.Close(fd) // the endpoint has its own copy
	return e, err
}

// New makes an Endpoint over fd, which must deliver one frame per read. The
// endpoint works on a duplicate of fd: the caller keeps fd and closes it.
func New(fd int, opts Options) (*Endpoint, error) {
	if opts.Gate == nil {
		return nil, errors.New("link: Options.Gate is required")
	}
	if len(opts.MAC) != 6 {
		return nil, fmt.Errorf("link: Options.MAC %v: want a 6-byte Ethernet address", opts.MAC)
	}
	if opts.MTU < 576 || opts.MTU > 65535 {
		return nil, fmt.Errorf("link: Options.MTU %d: want 576..65535", opts.MTU)
	}
	dup, err := unix.FcntlInt(uintptr(fd), unix.F_DUPFD_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("link: duplicating the packet fd: %w", err)
	}
	if err := unix.SetNonblock(dup, true); err != nil {
		unix.Close(dup)
		return nil, fmt.Errorf("link: making fd non-blocking: %w", err)
	}
	// A non-blocking fd given to os.NewFile is registered with the netpoller.
	file := os.NewFile(uintptr(dup), "link")
	raw, err := file.SyscallConn()
	if err != nil {
		file.Close()
		return nil, fmt.Errorf("link: %w", err)
	}
	e := &Endpoint{
		file:     file,
		raw:      raw,
		mac:      tcpip.LinkAddress(opts.MAC),
		vnet:     opts.VnetHdr,
		aux:      opts.AuxData,
		gate:     opts.Gate,
		writeMax: defaultWriteWait,
	}
	if opts.WriteTimeout > 0 {
		e.writeMax = time.Duration(opts.WriteTimeout) * time.Millisecond
	}
	e.mtu.Store(opts.MTU)
	e.txCond = sync.NewCond(&e.txMu)
	return e, nil
}

// Stats returns the link's counters.
func (e *Endpoint) Stats() Stats { return e.stats.snapshot() }

// MTU implements stack.LinkEndpoint.
func (e *Endpoint) MTU() uint32 { return e.mtu.Load() }

// SetMTU implements stack.LinkEndpoint.
func (e *Endpoint) SetMTU(mtu uint32) { e.mtu.Store(mtu) }

// MaxHeaderLength implements stack.LinkEndpoint.
func (e *Endpoint) MaxHeaderLength() uint16 { return header.EthernetMinimumSize }

// LinkAddress implements stack.LinkEndpoint.
func (e *Endpoint) LinkAddress() tcpip.LinkAddress { return e.mac }

// SetLinkAddress implements stack.LinkEndpoint. The box's LAN hardware address is
// the interface's; it does not change.
func (e *Endpoint) SetLinkAddress(tcpip.LinkAddress) {}

// Capabilities implements stack.LinkEndpoint. The netstack skips receive
// checksums: the kernel vouches for most frames (Meta.ChecksumOK) and the Gate
// must verify the rest before letting them in.
func (e *Endpoint) Capabilities() stack.LinkEndpointCapabilities {
	return stack.CapabilityResolutionRequired | stack.CapabilityRXChecksumOffload
}

// GSOMaxSize implements stack.GSOEndpoint.
func (e *Endpoint) GSOMaxSize() uint32 {
	if e.vnet {
		return gsoMaxSize
	}
	return 0
}

// SupportedGSO implements stack.GSOEndpoint.
func (e *Endpoint) SupportedGSO() stack.SupportedGSO {
	if e.vnet {
		return stack.HostGSOSupported
	}
	return stack.GSONotSupported
}

// ARPHardwareType implements stack.LinkEndpoint.
func (e *Endpoint) ARPHardwareType() header.ARPHardwareType { return header.ARPHardwareEther }

// AddHeader implements stack.LinkEndpoint.
func (e *Endpoint) AddHeader(pkt *stack.PacketBuffer) {
	eth := header.Ethernet(pkt.LinkHeader().Push(header.EthernetMinimumSize))
	src := pkt.EgressRoute.LocalLinkAddress
	if src == "" {
		src = e.mac
	}
	eth.Encode(&header.EthernetFields{
		SrcAddr: src,
		DstAddr: pkt.EgressRoute.RemoteLinkAddress,
		Type:    pkt.NetworkProtocolNumber,
	})
}

// ParseHeader implements stack.LinkEndpoint.
func (e *Endpoint) ParseHeader(pkt *stack.PacketBuffer) bool {
	hdr, ok := pkt.LinkHeader().Consume(header.EthernetMinimumSize)
	if !ok {
		return false
	}
	pkt.NetworkProtocolNumber = header.Ethernet(hdr).Type()
	return true
}

// Attach implements stack.LinkEndpoint: a non-nil dispatcher starts the reader.
func (e *Endpoint) Attach(d stack.NetworkDispatcher) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.dispatcher = d
	if d != nil && !e.running && !e.closed {
		e.running = true
		e.wg.Add(1)
		go e.readLoop()
	}
}

// IsAttached implements stack.LinkEndpoint.
func (e *Endpoint) IsAttached() bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.dispatcher != nil
}

// Wait implements stack.LinkEndpoint: it waits for the reader to stop.
func (e *Endpoint) Wait() { e.wg.Wait() }

// SetOnCloseAction implements stack.LinkEndpoint.
func (e *Endpoint) SetOnCloseAction(f func()) {
	e.mu.Lock()
	e.onClose = f
	e.mu.Unlock()
}

// Close implements stack.LinkEndpoint: it stops the reader and, for an endpoint
// made by Open, closes the socket.
func (e *Endpoint) Close() {
	e.mu.Lock()
	if e.closed {
		e.mu.Unlock()
		return
	}
	e.closed = true
	onClose := e.onClose
	e.mu.Unlock()

	// Closing the file wakes the reader and any writer waiting in the
	// netpoller; the fd itself is released when the last of them returns.
	e.file.Close()
	e.txMu.Lock()
	e.txCond.Broadcast()
	e.txMu.Unlock()
	e.wg.Wait()
	if onClose != nil {
		onClose()
	}
}

// rxSizes are the buffers one received frame is read into: the head (headers),
// then room for the rest of an MTU-sized frame, then room for a GSO super-packet.
// They come from gVisor's buffer pools and go to the netstack as they are when the
// gate accepts the frame, so a frame is never copied on the way in, and a frame
// small enough not to reach a buffer leaves it in place for the next.
var rxSizes = [3]int{HeadLen, 2048, maxFrame - HeadLen - 2048}

// rxSlot is one frame's worth of receive buffers.
type rxSlot struct {
	views [len(rxSizes)]*buffer.View
	vnet  [vnetHdrLen]byte
	aux   [auxSpace]byte
	iov   [1 + len(rxSizes)]unix.Iovec
	parts [len(rxSizes)][]byte
}

// prepare fills the slot's empty buffers and points msg at them.
func (s *rxSlot) prepare(msg *rawfile.MMsgHdr, vnet, aux bool) {
	n := 0
	if vnet {
		s.iov[n] = rawfile.IovecFromBytes(s.vnet[:])
		n++
	}
	for i := range s.views {
		if s.views[i] == nil {
			s.views[i] = buffer.NewViewSize(rxSizes[i])
		}
		s.iov[n] = rawfile.IovecFromBytes(s.views[i].AsSlice())
		n++
	}
	*msg = rawfile.MMsgHdr{}
	msg.Msg.Iov = &s.iov[0]
	msg.Msg.SetIovlen(n)
	if aux {
		msg.Msg.Control = &s.aux[0]
		msg.Msg.SetControllen(auxSpace)
	}
}

// frame describes the size bytes the slot received.
func (s *rxSlot) frame(f *Frame, size int) {
	off := 0
	f.parts = f.parts[:0]
	for i, v := range s.views {
		n := min(max(size-off, 0), rxSizes[i])
		s.parts[i] = v.AsSlice()[:n]
		if n > 0 {
			f.parts = append(f.parts, s.parts[i])
		}
		off += rxSizes[i]
	}
	f.Head, f.Len = s.parts[0], size
}

// take hands the filled buffers over as one gVisor buffer; the slot gets fresh
// ones at its next prepare.
func (s *rxSlot) take() buffer.Buffer {
	var b buffer.Buffer
	for i, p := range s.parts {
		if len(p) == 0 {
			break
		}
		s.views[i].CapLength(len(p))
		if i == 0 {
			b = buffer.MakeWithView(s.views[i])
		} else {
			b.Append(s.views[i])
		}
		s.views[i] = nil
	}
	return b
}

func (s *rxSlot) release() {
	for i, v := range s.views {
		if v != nil {
			v.Release()
			s.views[i] = nil
		}
	}
}

func (e *Endpoint) readLoop() {
	defer e.wg.Done()
	var (
		slots [rxBatch]rxSlot
		msgs  [rxBatch]rawfile.MMsgHdr
		f     = Frame{scratch: make([]byte, 0, maxFrame), parts: make([][]byte, 0, len(rxSizes))}
	)
	defer func() {
		for i := range slots {
			slots[i].release()
		}
	}()
	for {
		for i := range msgs {
			slots[i].prepare(&msgs[i], e.vnet, e.aux)
		}
		var n int
		var errno unix.Errno
		err := e.raw.Read(func(fd uintptr) bool {
			r, _, en := unix.RawSyscall6(unix.SYS_RECVMMSG, fd, uintptr(unsafe.Pointer(&msgs[0])), uintptr(len(msgs)), unix.MSG_DONTWAIT, 0, 0)
			n, errno = int(r), en
			return en != unix.EAGAIN && en != unix.EINTR
		})
		if err != nil {
			return // the endpoint closed
		}
		if errno != 0 {
			e.stats.rxErrors.Add(1)
			if e.isClosed() {
				return
			}
			// A link going down (cable out) fails reads for a moment; keep going.
			time.Sleep(50 * time.Millisecond)
			continue
		}
		e.mu.Lock()
		d := e.dispatcher
		e.mu.Unlock()
		for i := 0; i < n; i++ {
			s := &slots[i]
			size := int(msgs[i].Len)
			f.Meta = Meta{}
			if e.vnet {
				if size < vnetHdrLen {
					continue
				}
				size -= vnetHdrLen
				f.ChecksumOK = s.vnet[0]&(vnetFNeedsCsum|vnetFDataValid) != 0
				f.GSO = s.vnet[1]&^vnetGSOECN != vnetGSONone
			}
			if msgs[i].Msg.Flags&unix.MSG_TRUNC != 0 || size > maxFrame {
				f.Truncated = true
				size = min(size, maxFrame)
				e.stats.rxTruncated.Add(1)
			}
			if e.aux {
				f.VLAN = auxVLAN(s.aux[:msgs[i].Msg.Controllen])
			}
			s.frame(&f, size)
			e.stats.rxFrames.Add(1)
			e.stats.rxBytes.Add(uint64(size))
			if !e.gate.Inbound(&f) || f.Truncated || d == nil {
				continue
			}
			e.deliver(d, s.take())
		}
	}
}

func (e *Endpoint) deliver(d stack.NetworkDispatcher, payload buffer.Buffer) {
	pkt := stack.NewPacketBuffer(stack.PacketBufferOptions{Payload: payload})
	defer pkt.DecRef()
	if !e.ParseHeader(pkt) {
		return
	}
	e.stats.rxDelivered.Add(1)
	d.DeliverNetworkPacket(pkt.NetworkProtocolNumber, pkt)
}

func (e *Endpoint) isClosed() bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.closed
}

// auxVLAN reports whether the PACKET_AUXDATA control message says the kernel
// stripped a VLAN tag.
func auxVLAN(ctrl []byte) bool {
	for len(ctrl) >= unix.SizeofCmsghdr {
		h := (*unix.Cmsghdr)(unsafe.Pointer(&ctrl[0]))
		l := int(h.Len)
		if l < unix.SizeofCmsghdr || l > len(ctrl) {
			return false
		}
		if h.Level == unix.SOL_PACKET && h.Type == unix.PACKET_AUXDATA && l >= unix.CmsgLen(int(unsafe.Sizeof(unix.TpacketAuxdata{}))) {
			aux := (*unix.TpacketAuxdata)(unsafe.Pointer(&ctrl[unix.CmsgLen(0)]))
			return aux.Status&unix.TP_STATUS_VLAN_VALID != 0 || aux.Vlan_tci != 0
		}
		next := unix.CmsgSpace(l - unix.CmsgLen(0))
		if next > len(ctrl) {
			return false
		}
		ctrl = ctrl[next:]
	}
	return false
}

// txQueueMax is how many packets may wait to be written before writers wait:
// backpressure toward TCP rather than loss.
const txQueueMax = 1024

// txItem is one frame waiting to be written: a packet the netstack built, or a
// whole frame built outside it (WriteFrame).
type txItem struct {
	pkt   *stack.PacketBuffer
	frame *buffer.View
}

func (it txItem) release() {
	if it.pkt != nil {
		it.pkt.DecRef()
	} else {
		it.frame.Release()
	}
}

// WritePackets implements stack.LinkEndpoint. A writer that finds another writing
// leaves its packets to it and returns; the one writing sends everything queued,
// in batches, until the queue is empty. Under load that is one system call for
// many packets (say, DNS answers from several workers); when the socket is full
// it waits in the netpoller for room, up to the write timeout, instead of
// dropping.
func (e *Endpoint) WritePackets(pkts stack.PacketBufferList) (int, tcpip.Error) {
	list := pkts.AsSlice()
	e.txMu.Lock()
	e.waitForRoom()
	for _, p := range list {
		p.IncRef()
		e.txPending = append(e.txPending, txItem{pkt: p})
	}
	e.flush()
	return len(list), nil
}

// WriteFrame sends a whole Ethernet frame built outside the netstack (a UDP
// service's answer; see datapath/lan) through the same queue, gate and batched
// writes as the netstack's packets, without offloads: its checksums must be
// complete. The endpoint takes frame and releases it once it is sent, refused
// or dropped.
func (e *Endpoint) WriteFrame(frame *buffer.View) {
	e.txMu.Lock()
	e.waitForRoom()
	e.txPending = append(e.txPending, txItem{frame: frame})
	e.flush()
}

// waitForRoom waits, with txMu held, while the queue is full and another writer
// is draining it.
func (e *Endpoint) waitForRoom() {
	for len(e.txPending) >= txQueueMax && e.txWriting && !e.isClosed() {
		e.txCond.Wait()
	}
}

// flush, called with txMu held, returns at once if another writer is draining
// the queue; otherwise it drains it, and returns with txMu released.
func (e *Endpoint) flush() {
	if e.txWriting {
		e.txMu.Unlock()
		return
	}
	e.txWriting = true
	for {
		batch := e.txPending
		if len(batch) == 0 {
			e.txWriting = false
			e.txMu.Unlock()
			return
		}
		e.txPending, e.txSpare = e.txSpare[:0], batch
		e.txMu.Unlock()
		for done := 0; done < len(batch); {
			n := e.sendBatch(batch[done:min(done+txBatch, len(batch))])
			done += n
		}
		for i, it := range batch {
			it.release()
			batch[i] = txItem{}
		}
		e.txMu.Lock()
		e.txCond.Broadcast()
	}
}

// sendBatch writes items (at most txBatch), returning how many it consumed: sent,
// refused by the gate, or dropped because the socket stayed full or the link is
// gone.
func (e *Endpoint) sendBatch(items []txItem) int {
	// Gate each frame and lay out its iovecs: [vnet header] + views.
	need := 0
	for _, it := range items {
		if it.pkt != nil {
			need += 1 + len(it.pkt.AsSlices())
		} else {
			need += 2
		}
	}
	if cap(e.txIov) < need {
		e.txIov = make([]unix.Iovec, 0, need*2)
	}
	iov := e.txIov[:0]
	msgs := e.txMsg[:0]
	sizes := &e.txSizes
	for i, it := range items {
		var hdr []byte
		if p := it.pkt; p != nil {
			hb := &e.txGate
			n := copy(hb[:], p.LinkHeader().Slice())
			n += copy(hb[n:], p.NetworkHeader().Slice())
			hdr = hb[:n]
		} else {
			b := it.frame.AsSlice()
			hdr = b[:min(len(b), len(e.txGate))]
		}
		if !e.gate.Outbound(hdr) {
			e.stats.txRefused.Add(1)
			continue
		}
		start := len(iov)
		if e.vnet {
			if it.pkt != nil {
				e.fillVnet(&e.txHdr[i], it.pkt)
			} else {
				e.txHdr[i] = [vnetHdrLen]byte{}
			}
			iov = append(iov, rawfile.IovecFromBytes(e.txHdr[i][:]))
		}
		if p := it.pkt; p != nil {
			for _, v := range p.AsSlices() {
				if len(v) > 0 {
					iov = append(iov, rawfile.IovecFromBytes(v))
				}
			}
			sizes[len(msgs)] = p.Size()
		} else {
			iov = append(iov, rawfile.IovecFromBytes(it.frame.AsSlice()))
			sizes[len(msgs)] = it.frame.Size()
		}
		var m rawfile.MMsgHdr
		m.Msg.Iov = &iov[start]
		m.Msg.SetIovlen(len(iov) - start)
		msgs = append(msgs, m)
	}
	if len(msgs) == 0 {
		return len(items)
	}
	sent := 0
	e.file.SetWriteDeadline(time.Now().Add(e.writeMax))
	err := e.raw.Write(func(fd uintptr) bool {
		for sent < len(msgs) {
			r, _, errno := unix.RawSyscall6(unix.SYS_SENDMMSG, fd, uintptr(unsafe.Pointer(&msgs[sent])), uintptr(len(msgs)-sent), unix.MSG_DONTWAIT, 0, 0)
			e.stats.txCalls.Add(1)
			switch {
			case errno == 0:
				for _, s := range sizes[sent : sent+int(r)] {
					e.stats.txFrames.Add(1)
					e.stats.txBytes.Add(uint64(s))
				}
				sent += int(r)
			case errno == unix.EAGAIN || errno == unix.ENOBUFS:
				e.stats.txWaits.Add(1)
				return false // wait in the netpoller for room
			case errno == unix.EINTR:
			default:
				// This frame cannot be sent (link down, bad frame): skip it.
				e.stats.txDropped.Add(1)
				sent++
			}
		}
		return true
	})
	if err != nil {
		// Timed out waiting for room, or the endpoint closed.
		e.stats.txDropped.Add(uint64(len(msgs) - sent))
	}
	return len(items)
}

func (e *Endpoint) fillVnet(h *[vnetHdrLen]byte, p *stack.PacketBuffer) {
	*h = [vnetHdrLen]byte{}
	g := p.GSOOptions
	if g.Type == stack.GSONone {
		return
	}
	hdrLen := uint16(p.HeaderSize())
	var flags, gsoType uint8
	var csumStart, csumOffset, gsoSize uint16
	if g.NeedsCsum {
		flags = vnetFNeedsCsum
		csumStart = header.EthernetMinimumSize + g.L3HdrLen
		csumOffset = g.CsumOffset
	}
	if uint16(p.Data().Size()) > g.MSS {
		switch g.Type {
		case stack.GSOTCPv4:
			gsoType = vnetGSOTCPv4
		case stack.GSOTCPv6:
			gsoType = vnetGSOTCPv6
		}
		gsoSize = g.MSS
	}
	h[0] = flags
	h[1] = gsoType
	binary.NativeEndian.PutUint16(h[2:], hdrLen)
	binary.NativeEndian.PutUint16(h[4:], gsoSize)
	binary.NativeEndian.PutUint16(h[6:], csumStart)
	binary.NativeEndian.PutUint16(h[8:], csumOffset)
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }
