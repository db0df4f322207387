package lan

import (
	"encoding/binary"

	"gvisor.dev/gvisor/pkg/tcpip/checksum"
)

// Reading a UDP datagram out of a received frame, and building the frame of one
// to send, for the UDP services served without the netstack (udpconn.go).

const (
	ethHeaderLen  = 14
	ipv4HeaderLen = 20 // without options
	udpHeaderLen  = 8
	// udpFrameOverhead is what an answer's frame adds to its payload: Ethernet,
	// IPv4 without options, UDP.
	udpFrameOverhead = ethHeaderLen + ipv4HeaderLen + udpHeaderLen
	protoUDP         = 17
	// answerTTL is the IPv4 time to live of the box's answers, as the netstack
	// and Linux send.
	answerTTL = 64
)

// udp4 is an IPv4 UDP datagram read from a frame.
type udp4 struct {
	src, dst         [4]byte
	srcPort, dstPort uint16
	payload          []byte // within the frame
}

// parseUDP4 reads an IPv4 UDP datagram out of an Ethernet frame. It accepts only
// a datagram whose headers agree: IPv4 with a correct header checksum (options
// are skipped), not a fragment, the UDP length exactly the IP payload's, and a
// correct UDP checksum — unless the sender sent none (zero, allowed over IPv4) or
// csumOK says the kernel vouches for it (a partial checksum from a stack on this
// machine, or one the hardware verified). Bytes after the IP packet (Ethernet
// padding) are ignored. frame is only read; the payload points into it.
func parseUDP4(frame []byte, csumOK bool) (d udp4, ok bool) {
	if len(frame) < ethHeaderLen+ipv4HeaderLen+udpHeaderLen || binary.BigEndian.Uint16(frame[12:14]) != 0x0800 {
		return d, false
	}
	ip := frame[ethHeaderLen:]
	ihl := int(ip[0]&0x0f) * 4
	total := int(binary.BigEndian.Uint16(ip[2:4]))
	if ip[0]>>4 != 4 || ihl < ipv4HeaderLen || total < ihl+udpHeaderLen || total > len(ip) {
		return d, false
	}
	if ip[9] != protoUDP || binary.BigEndian.Uint16(ip[6:8])&0x3fff != 0 { // more fragments, or an offset
		return d, false
	}
	if checksum.Checksum(ip[:ihl], 0) != 0xffff {
		return d, false
	}
	u := ip[ihl:total]
	if int(binary.BigEndian.Uint16(u[4:6])) != len(u) {
		return d, false
	}
	copy(d.src[:], ip[12:16])
	copy(d.dst[:], ip[16:20])
	if !csumOK && (u[6] != 0 || u[7] != 0) {
		if checksum.Checksum(u, pseudoHeaderSum(d.src, d.dst, len(u))) != 0xffff {
			return d, false
		}
	}
	d.srcPort = binary.BigEndian.Uint16(u[0:2])
	d.dstPort = binary.BigEndian.Uint16(u[2:4])
	d.payload = u[udpHeaderLen:]
	return d, true
}

// pseudoHeaderSum is the checksum of UDP's IPv4 pseudo-header.
func pseudoHeaderSum(src, dst [4]byte, udpLen int) uint16 {
	var p [12]byte
	copy(p[0:4], src[:])
	copy(p[4:8], dst[:])
	p[9] = protoUDP
	binary.BigEndian.PutUint16(p[10:12], uint16(udpLen))
	return checksum.Checksum(p[:], 0)
}

// udpFrame is what putUDP4 needs to know of a datagram to send.
type udpFrame struct {
	dstMAC, srcMAC   [6]byte
	src, dst         [4]byte
	srcPort, dstPort uint16
	id               uint16 // the IPv4 identification
}

// putUDP4 writes the Ethernet, IPv4 and UDP headers into frame[:udpFrameOverhead],
// for the payload already in frame[udpFrameOverhead:], with both checksums: an
// IPv4 header without options, don't-fragment clear (as Linux sends UDP that
// needs no path MTU discovery), TTL 64.
func putUDP4(frame []byte, h udpFrame) {
	copy(frame[0:6], h.dstMAC[:])
	copy(frame[6:12], h.srcMAC[:])
	binary.BigEndian.PutUint16(frame[12:14], 0x0800)

	ip := frame[ethHeaderLen : ethHeaderLen+ipv4HeaderLen]
	ip[0], ip[1] = 0x45, 0 // version 4, 20-byte header; no TOS
	binary.BigEndian.PutUint16(ip[2:4], uint16(len(frame)-ethHeaderLen))
	binary.BigEndian.PutUint16(ip[4:6], h.id)
	ip[6], ip[7] = 0, 0 // no flags, no fragment offset
	ip[8], ip[9] = answerTTL, protoUDP
	ip[10], ip[11] = 0, 0
	copy(ip[12:16], h.src[:])
	copy(ip[16:20], h.dst[:])
	binary.BigEndian.PutUint16(ip[10:12], ^checksum.Checksum(ip, 0))

	u := frame[ethHeaderLen+ipv4HeaderLen:]
	binary.BigEndian.PutUint16(u[0:2], h.srcPort)
	binary.BigEndian.PutUint16(u[2:4], h.dstPort)
	binary.BigEndian.PutUint16(u[4:6], uint16(len(u)))
	u[6], u[7] = 0, 0
	sum := ^checksum.Checksum(u, pseudoHeaderSum(h.src, h.dst, len(u)))
	if sum == 0 {
		sum = 0xffff // zero would say "no checksum"
	}
	binary.BigEndian.PutUint16(u[6:8], sum)
}
