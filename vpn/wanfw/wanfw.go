// Package wanfw is the box's kernel firewall for its own traffic: an nftables table
// ("inet redoubt") that drops every packet the box's kernel would send or forward,
// on any interface but loopback, except the external VPN's encrypted flow — UDP
// from a socket carrying the VPN's mark to the VPN endpoint's address and port —
// and that drops everything arriving except replies to that flow.
//
// One more way out may be opened, and only while the VPN's is: the team mesh's
// direct paths (DirectPaths), UDP from the one socket that carries a given mark
// and is bound to a given port, to any address, and UDP arriving at that port.
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
	// Direct lets the team mesh's WireGuard take direct paths over the WAN
	// ([mesh] strict = false). Zero: none. Only with Endpoint: without a VPN
	// nothing leaves, direct paths included.
	Direct DirectPaths
}

// DirectPaths is the allowance for a peer-to-peer protocol's one UDP socket —
// the tailnet node's magicsock, which tailscale marks and binds to the mesh's
// port:
//
//   - out: UDP whose socket mark is Mark and whose source port is Port, to any
//     address and port. Both must match, so tailscale's other marked sockets
//     (its DNS lookups and probes, on ephemeral ports) and other programs'
//     sockets on Port stay blocked; so does TCP.
//   - in: UDP to Port from anywhere, besides the replies that pass anyway.
//     Unsolicited datagrams are accepted because NAT traversal needs them when
//     the peer's NAT gives each destination its own port (the datagram then
//     comes from a port the box never sent to) and when the box's address is
//     reachable from outside; tailscale's own Linux firewall accepts its port
//     the same way. What arrives there meets WireGuard and disco, which answer
//     nothing that is not authenticated by a peer's key, and a closed port
//     answers nothing either (the output chain drops the kernel's ICMP errors),
//     so a scan cannot tell the port is open.
//   - prerouting: datagrams to Port get Mark as their packet mark, so that the
//     kernel's reverse-path filter (rp_filter, which Debian's systemd turns on)
//     looks their source up with the mark and finds the route vpn/wan installs
//     for the marked socket; without it a box whose main table has no default
//     route would drop every peer's packet. vpn/wan sets src_valid_mark on the
//     WAN port for this (as wg-quick does for the same reason).
type DirectPaths struct {
	Mark uint32 `json:"mark"`
	Port uint16 `json:"port"`
}

// On reports whether d allows anything.
func (d DirectPaths) On() bool { return d != DirectPaths{} }

// Validate names the first bad field.
func (d DirectPaths) Validate() error {
	if d.On() && (d.Mark == 0 || d.Port == 0) {
		return fmt.Errorf("firewall: direct paths need both a socket mark and a UDP port (mark 0x%x, port %d); zero for both turns them off", d.Mark, d.Port)
	}
	return nil
}

// String describes the allowance in nft's language.
func (d DirectPaths) String() string {
	if !d.On() {
		return "none"
	}
	return fmt.Sprintf("out: meta mark 0x%x udp sport %d; in: udp dport %d", d.Mark, d.Port, d.Port)
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
	if err := r.Direct.Validate(); err != nil {
		return err
	}
	if r.Direct.On() {
		if !r.Endpoint.IsValid() {
			return fmt.Errorf("firewall: direct paths (mark 0x%x, port %d) need the VPN: with no VPN endpoint nothing leaves", r.Direct.Mark, r.Direct.Port)
		}
		if r.Direct.Mark == r.Mark {
			return fmt.Errorf("firewall: direct paths' mark 0x%x is the VPN's own: give the direct socket a mark of its own", r.Direct.Mark)
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
	if !r.Direct.On() {
		return fmt.Sprintf("accept out: meta mark 0x%x %s daddr %s udp dport %d; accept in: replies; drop the rest",
			r.Mark, fam, r.Endpoint.Addr(), r.Endpoint.Port())
	}
	return fmt.Sprintf("accept out: meta mark 0x%x %s daddr %s udp dport %d, meta mark 0x%x udp sport %d (the team's direct paths); accept in: replies, udp dport %d (the team's direct paths); drop the rest",
		r.Mark, fam, r.Endpoint.Addr(), r.Endpoint.Port(), r.Direct.Mark, r.Direct.Port, r.Direct.Port)
}

// Counters are the packets the table dropped since it was installed.
type Counters struct {
	OutDropped     uint64 `json:"out_dropped"`     // the box's own packets refused
	InDropped      uint64 `json:"in_dropped"`      // unsolicited packets from outside
	ForwardDropped uint64 `json:"forward_dropped"` // packets the kernel would have routed
}
