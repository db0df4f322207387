package lan

import (
	"bytes"
	"testing"

	"gvisor.dev/gvisor/pkg/tcpip/checksum"
	"gvisor.dev/gvisor/pkg/tcpip/header"
)

// wireCase is a frame and whether parseUDP4 must accept it.
type wireCase struct {
	name   string
	frame  []byte
	csumOK bool
	ok     bool
}

func wireCases() []wireCase {
	valid := udpFrameTo(boxIP, 53, []byte("\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00\x03box\x00\x00\x01\x00\x01"))
	mod := func(fn func(b []byte)) []byte { b := bytes.Clone(valid); fn(b); return b }
	// With four bytes of IP options (no-ops), lengths and checksum fixed.
	opts := append(append(bytes.Clone(valid[:ethHeaderLen+ipv4HeaderLen]), 1, 1, 1, 1), valid[ethHeaderLen+ipv4HeaderLen:]...)
	opts[ethHeaderLen] = 0x46
	opts[ethHeaderLen+3] += 4
	opts[ethHeaderLen+10], opts[ethHeaderLen+11] = 0, 0
	s := ^checksum.Checksum(opts[ethHeaderLen:ethHeaderLen+24], 0)
	opts[ethHeaderLen+10], opts[ethHeaderLen+11] = byte(s>>8), byte(s)
	badSum := mod(func(b []byte) { b[len(b)-1] ^= 1 })
	return []wireCase{
		{"valid", valid, false, true},
		{"ethernet padding", append(bytes.Clone(valid), 0, 0, 0, 0), false, true},
		{"IP options", opts, false, true},
		{"no UDP checksum", mod(func(b []byte) { b[udpFrameOverhead-2], b[udpFrameOverhead-1] = 0, 0 }), false, true},
		{"bad UDP checksum", badSum, false, false},
		{"bad UDP checksum the kernel vouched for", badSum, true, true},
		{"bad IPv4 header checksum", mod(func(b []byte) { b[ethHeaderLen+10] ^= 1 }), true, false},
		{"truncated", valid[:len(valid)-1], false, false},
		{"more fragments", mod(func(b []byte) { b[ethHeaderLen+6] = 0x20 }), true, false},
		{"UDP length short of the IP payload", mod(func(b []byte) { b[ethHeaderLen+ipv4HeaderLen+5]-- }), true, false},
		{"TCP", mod(func(b []byte) { b[ethHeaderLen+9] = 6 }), true, false},
		{"IPv6 ethertype", mod(func(b []byte) { b[12], b[13] = 0x86, 0xdd }), true, false},
		{"header length under 20", mod(func(b []byte) { b[ethHeaderLen] = 0x44 }), true, false},
		{"empty", nil, true, false},
	}
}

func TestParseUDP4(t *testing.T) {
	for _, c := range wireCases() {
		if _, ok := parseUDP4(c.frame, c.csumOK); ok != c.ok {
			t.Errorf("%s: accepted %v, want %v", c.name, ok, c.ok)
		}
	}
}

// FuzzParseUDP4 feeds the parser arbitrary frames: it must not panic, and what it
// accepts must be a datagram gVisor's header code also finds valid, which
// rebuilt by putUDP4 parses back the same.
func FuzzParseUDP4(f *testing.F) {
	for _, c := range wireCases() {
		f.Add(c.frame, c.csumOK)
	}
	f.Fuzz(func(t *testing.T, frame []byte, csumOK bool) {
		if len(frame) > 1<<16 {
			return
		}
		d, ok := parseUDP4(frame, csumOK)
		if !ok {
			return
		}
		ip := header.IPv4(frame[ethHeaderLen:])
		if !ip.IsChecksumValid() || ip.More() || ip.FragmentOffset() != 0 || ip.TransportProtocol() != header.UDPProtocolNumber {
			t.Fatalf("accepted an IPv4 header gVisor finds invalid or fragmented: % x", frame)
		}
		u := header.UDP(frame[ethHeaderLen+int(ip.HeaderLength()) : ethHeaderLen+int(ip.TotalLength())])
		if int(u.Length()) != len(u) || !bytes.Equal(u.Payload(), d.payload) {
			t.Fatalf("payload %q, gVisor reads %q", d.payload, u.Payload())
		}
		if !csumOK && u.Checksum() != 0 && !u.IsChecksumValid(ip.SourceAddress(), ip.DestinationAddress(), checksum.Checksum(u.Payload(), 0)) {
			t.Fatalf("accepted a bad UDP checksum: % x", frame)
		}
		out := make([]byte, udpFrameOverhead+len(d.payload))
		copy(out[udpFrameOverhead:], d.payload)
		putUDP4(out, udpFrame{src: d.src, dst: d.dst, srcPort: d.srcPort, dstPort: d.dstPort, id: 1})
		d2, ok := parseUDP4(out, false)
		if !ok || d2.src != d.src || d2.dst != d.dst || d2.srcPort != d.srcPort || d2.dstPort != d.dstPort || !bytes.Equal(d2.payload, d.payload) {
			t.Fatalf("rebuilt datagram parses as %+v %v, want %+v", d2, ok, d)
		}
	})
}
