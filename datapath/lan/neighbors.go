package lan

import (
	"encoding/binary"
	"net/netip"
	"sync"

	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/network/ipv4"
)

// maxNeighbors bounds the devices the LAN pins; a /16 LAN has room for more
// addresses than one laptop ever uses.
const maxNeighbors = 1024

// neighbors pins, as static neighbour entries in the netstack, the hardware
// address each LAN device last used with an address the filter accepted. The
// netstack then never has to ARP for a device — which matters for the reveal
// responder, whose replies come from addresses the box does not own and whose ARP
// requests would have to claim them.
type neighbors struct {
	// last is touched only by the link's reader goroutine: the common case of
	// one laptop costs a comparison per frame.
	lastIP  uint32
	lastMAC [6]byte

	mu    sync.Mutex
	known map[netip.Addr][6]byte
}

// learn notes the source of a frame the filter let in (IPv4 or ARP) and pins it
// when it is new or has changed.
func (l *LAN) learn(frame []byte) {
	var src []byte
	switch binary.BigEndian.Uint16(frame[12:14]) {
	case 0x0800: // IPv4 source address
		src = frame[26:30]
	case 0x0806: // ARP sender protocol address
		src = frame[28:32]
	default:
		return
	}
	ip := binary.BigEndian.Uint32(src)
	mac := [6]byte(frame[6:12])
	n := &l.neigh
	if ip == 0 || (ip == n.lastIP && mac == n.lastMAC) {
		return
	}
	n.lastIP, n.lastMAC = ip, mac
	addr := netip.AddrFrom4([4]byte(src))
	n.mu.Lock()
	defer n.mu.Unlock()
	if old, ok := n.known[addr]; ok && old == mac {
		return
	}
	if n.known == nil {
		n.known = make(map[netip.Addr][6]byte)
	}
	if _, ok := n.known[addr]; !ok && len(n.known) >= maxNeighbors {
		for a := range n.known { // evict one, any one
			l.stack.RemoveNeighbor(nicID, ipv4.ProtocolNumber, tcpip.AddrFrom4(a.As4()))
			delete(n.known, a)
			break
		}
	}
	n.known[addr] = mac
	l.stack.AddStaticNeighbor(nicID, ipv4.ProtocolNumber, tcpip.AddrFrom4(addr.As4()), tcpip.LinkAddress(mac[:]))
}

// macOf returns the hardware address a LAN device last used with addr.
func (l *LAN) macOf(addr netip.Addr) [6]byte {
	l.neigh.mu.Lock()
	defer l.neigh.mu.Unlock()
	return l.neigh.known[addr]
}
