package lan

import (
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"

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
	// last* are touched only by the link's reader goroutine: the common case
	// of one laptop costs a comparison per frame. gen changes whenever the
	// table does, so a pin from elsewhere is not hidden by the shortcut.
	lastIP  uint32
	lastMAC [6]byte
	lastGen uint64
	gen     atomic.Uint64

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
	if ip == 0 || (ip == n.lastIP && mac == n.lastMAC && n.lastGen == n.gen.Load()) {
		return
	}
	l.pin(netip.AddrFrom4([4]byte(src)), mac)
	n.lastIP, n.lastMAC, n.lastGen = ip, mac, n.gen.Load()
}

// SetNeighbor pins the hardware address of a LAN address, so the box can send to
// a device that cannot answer ARP yet (a DHCP client being offered an address).
func (l *LAN) SetNeighbor(addr netip.Addr, mac net.HardwareAddr) error {
	if !addr.Is4() || !l.cfg.Address.Contains(addr) || addr == l.cfg.Address.Addr() {
		return fmt.Errorf("lan: SetNeighbor %v: not a device address on the LAN %v", addr, l.cfg.Address.Masked())
	}
	if len(mac) != 6 || mac[0]&1 != 0 {
		return fmt.Errorf("lan: SetNeighbor %v: %v is not a unicast Ethernet address", addr, mac)
	}
	l.pin(addr, [6]byte(mac))
	return nil
}

// pin records addr → mac and installs it as a static neighbour.
func (l *LAN) pin(addr netip.Addr, mac [6]byte) {
	n := &l.neigh
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
	n.gen.Add(1)
	l.stack.AddStaticNeighbor(nicID, ipv4.ProtocolNumber, tcpip.AddrFrom4(addr.As4()), tcpip.LinkAddress(mac[:]))
}

// NeighborMAC returns the hardware address a LAN device last used with addr (zero
// if the LAN has seen none), for rooms that show devices by it: the DNS query log.
func (l *LAN) NeighborMAC(addr netip.Addr) [6]byte { return l.macOf(addr) }

// macOf returns the hardware address a LAN device last used with addr.
func (l *LAN) macOf(addr netip.Addr) [6]byte {
	l.neigh.mu.Lock()
	defer l.neigh.mu.Unlock()
	return l.neigh.known[addr]
}
