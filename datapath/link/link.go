// Package link is the box's own link layer for the LAN port: a gVisor
// stack.LinkEndpoint over a packet file descriptor — an AF_PACKET socket bound to the
// owner's interface in production, a socketpair in tests.
//
// Every received frame passes a Gate before the netstack sees it, and every frame
// the box sends (the netstack's, and whole frames given to WriteFrame) passes the
// Gate again before it reaches the wire. Writes block
// (up to a bound) when the socket is full instead of dropping, so TCP sees
// backpressure rather than loss. Segmentation offload travels in virtio-net headers
// both ways. Only the datapath room imports this package.
package link

import (
	"net"
	"sync/atomic"
)

// Gate sees every frame crossing the link.
type Gate interface {
	// Inbound decides whether a received frame goes to the netstack. The frame
	// is only valid during the call; the gate copies what it keeps. A gate
	// records its own drops, and may serve a frame itself (copying what it
	// needs) and report false. The netstack does not verify transport
	// checksums: the gate must, for frames whose Meta.ChecksumOK is false.
	Inbound(f *Frame) bool
	// Outbound decides whether a frame the box built may be sent. hdr holds
	// the Ethernet header followed by (up to 28 bytes of) the network header.
	Outbound(hdr []byte) bool
}

// HeadLen is how many of a frame's first bytes Frame.Head holds (all of them for
// a shorter frame): room for every header the gate reads.
const HeadLen = 256

// Frame is a received frame as the gate sees it. Its bytes sit in the buffers the
// netstack will take over if the gate accepts it, so nothing is copied on the way
// in; Bytes joins them only when the gate needs the whole frame at once.
type Frame struct {
	// Head is the frame's beginning: all of it, or its first HeadLen bytes.
	Head []byte
	// Len is the frame's length on the wire.
	Len int
	Meta

	parts   [][]byte // the frame's bytes, in order, across the receive buffers
	scratch []byte   // where Bytes joins them
}

// Bytes returns the whole frame in one slice, valid during the Inbound call.
func (f *Frame) Bytes() []byte {
	if len(f.Head) == f.Len {
		return f.Head
	}
	out := f.scratch[:0]
	for _, p := range f.parts {
		out = append(out, p...)
	}
	return out[:f.Len]
}

// NewFrame makes a Frame of b, for gates tested without a link.
func NewFrame(b []byte, m Meta) *Frame {
	return &Frame{Head: b[:min(len(b), HeadLen)], Len: len(b), Meta: m, parts: [][]byte{b}, scratch: make([]byte, 0, len(b))}
}

// Meta is what the kernel said about a received frame besides its bytes.
type Meta struct {
	// GSO: the frame is a segmentation-offload super-packet of TCP segments,
	// possibly larger than the MTU.
	GSO bool
	// VLAN: the kernel stripped an 802.1Q/802.1ad tag from the frame.
	VLAN bool
	// ChecksumOK: the kernel vouches for the transport checksum (the frame came
	// from a local stack with a partial checksum, or hardware verified it).
	ChecksumOK bool
	// Truncated: the frame was larger than the receive buffer and was cut.
	Truncated bool
}

// Options configure an Endpoint made with New.
type Options struct {
	// MAC is the link address the netstack uses as its own.
	MAC net.HardwareAddr
	// MTU of the link, without the Ethernet header.
	MTU uint32
	// VnetHdr: every frame on the fd is preceded by a virtio_net_hdr
	// (an AF_PACKET socket with PACKET_VNET_HDR set). Enables GSO both ways.
	VnetHdr bool
	// AuxData: the fd delivers PACKET_AUXDATA control messages (VLAN tags).
	AuxData bool
	// Gate is consulted for every frame. Required.
	Gate Gate
	// WriteTimeout bounds how long a write waits for room in the socket before
	// the frame is dropped (and counted). Zero means one second.
	WriteTimeout int64 // milliseconds
}

// Stats are the link's counters since it was made.
type Stats struct {
	RxFrames, RxBytes uint64 // frames read from the wire
	RxDelivered       uint64 // frames the gate let through to the netstack
	RxTruncated       uint64 // frames cut because they were larger than the buffer
	RxErrors          uint64 // failed reads
	TxFrames, TxBytes uint64 // frames written to the wire
	TxCalls           uint64 // system calls that wrote them (TxFrames/TxCalls is the batch size)
	TxRefused         uint64 // frames the gate refused to send
	TxWaits           uint64 // times a write waited for room (backpressure)
	TxDropped         uint64 // frames dropped after waiting too long or on error
}

type counters struct {
	rxFrames, rxBytes, rxDelivered, rxTruncated, rxErrors atomic.Uint64
	txFrames, txBytes, txRefused, txWaits, txDropped      atomic.Uint64
	txCalls                                               atomic.Uint64
}

func (c *counters) snapshot() Stats {
	return Stats{
		RxFrames: c.rxFrames.Load(), RxBytes: c.rxBytes.Load(), RxDelivered: c.rxDelivered.Load(),
		RxTruncated: c.rxTruncated.Load(), RxErrors: c.rxErrors.Load(),
		TxFrames: c.txFrames.Load(), TxBytes: c.txBytes.Load(), TxCalls: c.txCalls.Load(), TxRefused: c.txRefused.Load(),
		TxWaits: c.txWaits.Load(), TxDropped: c.txDropped.Load(),
	}
}
