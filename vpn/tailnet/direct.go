package tailnet

import "tailscale.com/tsconst"

// SocketMark is the mark tailscale puts on the node's kernel sockets on Linux
// when it runs as root (net/netns sets SO_MARK tsconst.LinuxBypassMarkNum): the
// magicsock's UDP sockets on the node's port among them, and also its DNS
// lookups, probes and pings, from ephemeral ports. Checked by
// TestMagicsockSocketMark. Without root (or with TS_FORCE_LINUX_BIND_TO_DEVICE)
// tailscale binds its sockets to an interface instead and marks nothing; the
// direct paths then stay shut.
const SocketMark uint32 = tsconst.LinuxBypassMarkNum

// DirectPath names the socket that may take direct paths over the WAN: the mark
// on tailscale's sockets and the node's WireGuard port. (0, 0) in strict mode,
// where every tailnet packet goes over DERP inside the VPN. The daemon hands it
// to the external VPN: vpn.SetDirect(node.DirectPath()).
//
// If the port is taken when the node starts, magicsock binds another one and
// the direct paths stay shut (the node still reaches its peers over DERP).
func (n *Node) DirectPath() (mark uint32, port uint16) {
	if n.cfg.StrictOn() {
		return 0, 0
	}
	return SocketMark, n.cfg.Port
}
