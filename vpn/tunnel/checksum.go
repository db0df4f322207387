package tunnel

import (
	"encoding/binary"

	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/checksum"
	"gvisor.dev/gvisor/pkg/tcpip/header"
)

// checksumsOK verifies a decrypted packet's IP header and transport checksums.
//
// The link endpoint tells gVisor that checksums are verified (so that GRO's
// coalesced segments are not checked again against their original checksums);
// this is where that promise is kept. WireGuard authenticates the packet only
// from the VPN server on: the path from the far end to the server is open.
// Transport checksums of IP fragments are left to nobody: gVisor would check them
// after reassembly only without the promise; fragments inside the tunnel are rare
// (the inner MTU is below the path's) and their IP header is still verified.
func checksumsOK(p []byte) bool {
	if len(p) == 0 {
		return false
	}
	switch p[0] >> 4 {
	case 4:
		if len(p) < header.IPv4MinimumSize {
			return false
		}
		ihl := int(p[0]&0x0f) * 4
		total := int(binary.BigEndian.Uint16(p[2:]))
		if ihl < header.IPv4MinimumSize || total < ihl || total > len(p) {
			return false
		}
		p = p[:total]
		if checksum.Checksum(p[:ihl], 0) != 0xffff {
			return false
		}
		if binary.BigEndian.Uint16(p[6:])&0x3fff != 0 { // more fragments, or an offset
			return true
		}
		src, dst := tcpip.AddrFrom4Slice(p[12:16]), tcpip.AddrFrom4Slice(p[16:20])
		return transportOK(tcpip.TransportProtocolNumber(p[9]), p[ihl:], src, dst, false)
	case 6:
		if len(p) < header.IPv6MinimumSize {
			return false
		}
		plen := int(binary.BigEndian.Uint16(p[4:]))
		if header.IPv6MinimumSize+plen > len(p) {
			return false
		}
		p = p[:header.IPv6MinimumSize+plen]
		src, dst := tcpip.AddrFrom16Slice(p[8:24]), tcpip.AddrFrom16Slice(p[24:40])
		return transportOK(tcpip.TransportProtocolNumber(p[6]), p[header.IPv6MinimumSize:], src, dst, true)
	}
	return false
}

func transportOK(proto tcpip.TransportProtocolNumber, seg []byte, src, dst tcpip.Address, v6 bool) bool {
	switch proto {
	case header.TCPProtocolNumber:
		if len(seg) < header.TCPMinimumSize {
			return false
		}
	case header.UDPProtocolNumber:
		if len(seg) < header.UDPMinimumSize {
			return false
		}
		if !v6 && binary.BigEndian.Uint16(seg[6:]) == 0 {
			return true // IPv4 UDP without a checksum
		}
	case header.ICMPv4ProtocolNumber:
		if v6 {
			return true
		}
		return len(seg) >= header.ICMPv4MinimumSize && checksum.Checksum(seg, 0) == 0xffff
	case header.ICMPv6ProtocolNumber:
		if !v6 {
			return true
		}
		if len(seg) < header.ICMPv6MinimumSize {
			return false
		}
	default:
		// Other protocols (and IPv6 extension headers) are not for the box's
		// sockets; the stack drops what it cannot deliver.
		return true
	}
	if len(seg) > 0xffff {
		return false
	}
	pseudo := header.PseudoHeaderChecksum(proto, src, dst, uint16(len(seg)))
	return checksum.Checksum(seg, pseudo) == 0xffff
}
