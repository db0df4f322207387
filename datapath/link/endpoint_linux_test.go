package link

import (
	"encoding/binary"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"
	"gvisor.dev/gvisor/pkg/buffer"
	"gvisor.dev/gvisor/pkg/tcpip/header"
	"gvisor.dev/gvisor/pkg/tcpip/stack"
)

// cmsg builds one control message as the kernel lays it out.
func cmsg(level, typ int32, data []byte) []byte {
	b := make([]byte, unix.CmsgSpace(len(data)))
	h := (*unix.Cmsghdr)(unsafe.Pointer(&b[0]))
	h.Level, h.Type = level, typ
	h.SetLen(unix.CmsgLen(len(data)))
	copy(b[unix.CmsgLen(0):], data)
	return b
}

func auxdata(status uint32, tci uint16) []byte {
	var a unix.TpacketAuxdata
	a.Status, a.Vlan_tci = status, tci
	return unsafe.Slice((*byte)(unsafe.Pointer(&a)), unsafe.Sizeof(a))
}

func TestAuxVLAN(t *testing.T) {
	other := cmsg(unix.SOL_SOCKET, unix.SCM_TIMESTAMP, make([]byte, 16))
	tests := []struct {
		name string
		ctrl []byte
		want bool
	}{
		{"none", nil, false},
		{"untagged", cmsg(unix.SOL_PACKET, unix.PACKET_AUXDATA, auxdata(0, 0)), false},
		{"tag valid", cmsg(unix.SOL_PACKET, unix.PACKET_AUXDATA, auxdata(unix.TP_STATUS_VLAN_VALID, 7)), true},
		{"vlan 0 priority-tagged", cmsg(unix.SOL_PACKET, unix.PACKET_AUXDATA, auxdata(unix.TP_STATUS_VLAN_VALID, 0)), true},
		{"after another message", append(other, cmsg(unix.SOL_PACKET, unix.PACKET_AUXDATA, auxdata(unix.TP_STATUS_VLAN_VALID, 9))...), true},
		{"truncated", cmsg(unix.SOL_PACKET, unix.PACKET_AUXDATA, auxdata(unix.TP_STATUS_VLAN_VALID, 7))[:unix.SizeofCmsghdr+4], false},
		{"garbage length", []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f, 0, 0, 0, 0, 0, 0, 0, 0}, false},
	}
	for _, tt := range tests {
		if got := auxVLAN(tt.ctrl); got != tt.want {
			t.Errorf("%s: auxVLAN = %v, want %v", tt.name, got, tt.want)
		}
	}
}

func TestFillVnet(t *testing.T) {
	e := &Endpoint{vnet: true}
	pkt := stack.NewPacketBuffer(stack.PacketBufferOptions{
		ReserveHeaderBytes: header.EthernetMinimumSize + header.IPv4MinimumSize + header.TCPMinimumSize,
		Payload:            buffer.MakeWithData(make([]byte, 20000)),
	})
	defer pkt.DecRef()
	pkt.TransportHeader().Push(header.TCPMinimumSize)
	pkt.NetworkHeader().Push(header.IPv4MinimumSize)
	pkt.LinkHeader().Push(header.EthernetMinimumSize)
	pkt.GSOOptions = stack.GSO{Type: stack.GSOTCPv4, NeedsCsum: true, CsumOffset: 16, MSS: 1448, L3HdrLen: header.IPv4MinimumSize}
	var h [vnetHdrLen]byte
	e.fillVnet(&h, pkt)
	if h[0] != vnetFNeedsCsum || h[1] != vnetGSOTCPv4 {
		t.Fatalf("flags %d gso type %d", h[0], h[1])
	}
	if got := binary.NativeEndian.Uint16(h[2:]); got != 54 {
		t.Errorf("hdr_len %d, want 54", got)
	}
	if got := binary.NativeEndian.Uint16(h[4:]); got != 1448 {
		t.Errorf("gso_size %d, want 1448", got)
	}
	if got := binary.NativeEndian.Uint16(h[6:]); got != 34 {
		t.Errorf("csum_start %d, want 34", got)
	}
	if got := binary.NativeEndian.Uint16(h[8:]); got != 16 {
		t.Errorf("csum_offset %d, want 16", got)
	}

	small := stack.NewPacketBuffer(stack.PacketBufferOptions{Payload: buffer.MakeWithData(make([]byte, 100))})
	defer small.DecRef()
	e.fillVnet(&h, small)
	if h != [vnetHdrLen]byte{} {
		t.Errorf("a packet without GSO got a non-zero header %v", h)
	}
}
