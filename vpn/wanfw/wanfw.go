// Package wanfw is the box's kernel firewall for its own traffic: an nftables table
// ("inet redoubt") that drops every packet the box's kernel would send or forward,
// on any interface but loopback, except the external VPN's encrypted flow — UDP
// from a socket carrying the VPN's mark to the VPN endpoint's address and port —
// and that drops everything arriving except replies to that flow.
//
// It backs up, in the kernel, what the egress dialer guarantees in the process:
// nothing else on the box (another process, the kernel's own chatter, a bug that
// opens a socket directly) can reach the network the box is plugged into. The
// box's DHCP client on the WAN and its LAN netstack use packet sockets, which
// netfilter's IP hooks do not see; they are not affected.
//
// The table is replaced whole, in one netlink transaction (add, delete, add), so
// there is never a moment without it once it exists; it stays in place when the
// daemon stops (fail closed), and the next start replaces it. Only the vpn room
// imports this package.
package wanfw

import (
	"fmt"
	"net/netip"
)

// Table is the nftables table the box owns, in the inet family.
const Table = "redoubt"

// Rules describe the table.
type Rules struct {
	// Endpoint is the VPN server's address and UDP port: the only destination
	// the box may send to. Zero: nothing leaves (no VPN configured).
	Endpoint netip.AddrPort
	// Mark is the socket mark the VPN's UDP sockets carry; packets to the
	// endpoint without it are dropped like the rest. Required with Endpoint.
	Mark uint32
}

// Validate names the first bad field.
func (r Rules) Validate() error {
	if r.Endpoint.IsValid() {
		if r.Mark == 0 {
			return fmt.Errorf("firewall: an endpoint (%s) needs a socket mark", r.Endpoint)
		}
		if r.Endpoint.Port() == 0 || r.Endpoint.Addr().IsUnspecified() || r.Endpoint.Addr().Zone() != "" {
			return fmt.Errorf("firewall: endpoint %s is not an address and port to allow", r.Endpoint)
		}
	}
	return nil
}

// String describes the rules in nft's language, for logs and the status.
func (r Rules) String() string {
	if !r.Endpoint.IsValid() {
		return "drop everything but loopback"
	}
	fam := "ip"
	if r.Endpoint.Addr().Is6() {
		fam = "ip6"
	}
	return fmt.Sprintf("accept out: meta mark 0x%x %s daddr %s udp dport %d; accept in: replies; drop the rest",
		r.Mark, fam, r.Endpoint.Addr(), r.Endpoint.Port())
}

// Counters are the packets the table dropped since it was installed.
type Counters struct {
	OutDropped     uint64 `json:"out_dropped"`     // the box's own packets refused
	InDropped      uint64 `json:"in_dropped"`      // unsolicited packets from outside
	ForwardDropped uint64 `json:"forward_dropped"` // packets the kernel would have routed
}
