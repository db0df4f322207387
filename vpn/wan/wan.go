// Package wan is the box's WAN port: the interface toward the network the box is
// plugged into (a home router, a hotel, an office). It gives the port its IPv4
// address — from that network's DHCP server, or a static address — and routes
// exactly one destination through it: the external VPN's endpoint. There is no
// default route: the kernel cannot send anywhere else even before the firewall
// is asked. The one exception, asked for with SetDirect when the team mesh is
// not strict, is the tailnet's own socket: an ip rule sends its UDP (by socket
// mark and port) to a table of its own whose default route is via the gateway;
// the main table never gets one.
//
// The DHCP client sends no host name, vendor class or any other detail about the
// box; it uses a packet socket only for the moment of an exchange (not between
// them, so that the VPN's traffic is never copied to it). IPv6 is turned off on the
// port: its neighbour discovery and router solicitations would be chatter the
// network could see.
//
// With addressing "system" the box leaves the port to the operating system (a
// board's network manager) and only reports it. Only the vpn room imports this
// package.
package wan

import (
	"errors"
	"fmt"
	"net/netip"
	"time"
)

// Addressing modes.
const (
	DHCP   = "dhcp"
	Static = "static"
	System = "system"
)

// Config is the [wan] section of the daemon's config file.
type Config struct {
	// Interface is the WAN port, such as "eth0". Empty: the box manages no WAN
	// port (addressing is left to the operating system).
	Interface string `toml:"interface"`
	// Addressing is "dhcp" (the default when Interface is set), "static"
	// (Address and Gateway), or "system" (the operating system configures the
	// port; the box only reports it).
	Addressing string `toml:"addressing"`
	// Address is the port's static IPv4 address with prefix length.
	Address netip.Prefix `toml:"address"`
	// Gateway is the static next hop toward the VPN endpoint.
	Gateway netip.Addr `toml:"gateway"`
	// Firewall installs the kernel firewall that lets only the VPN's packets
	// out (default true). Turn off only on a development machine.
	Firewall *bool `toml:"firewall"`
}

// FirewallOn reports the effective Firewall setting.
func (c Config) FirewallOn() bool { return c.Firewall == nil || *c.Firewall }

// WithDefaults fills unset fields.
func (c Config) WithDefaults() Config {
	if c.Addressing == "" {
		c.Addressing = System
		if c.Interface != "" {
			c.Addressing = DHCP
		}
	}
	return c
}

// Validate names the first bad field, its value and what is accepted.
func (c Config) Validate() error {
	if len(c.Interface) > 15 {
		return fmt.Errorf("wan.interface %q: interface names are at most 15 characters", c.Interface)
	}
	switch c.Addressing {
	case DHCP, Static:
		if c.Interface == "" {
			return fmt.Errorf(`wan.addressing %q needs wan.interface: name the WAN port, such as "eth0"`, c.Addressing)
		}
	case System:
	default:
		return fmt.Errorf(`wan.addressing %q: want "dhcp", "static" or "system"`, c.Addressing)
	}
	if c.Addressing == Static {
		a := c.Address
		if !a.IsValid() || !a.Addr().Is4() || a.Bits() < 8 || a.Bits() > 31 {
			return fmt.Errorf("wan.address %q: static addressing wants an IPv4 address with prefix length between /8 and /31, such as 192.168.1.2/24", a)
		}
		if a.Addr() == a.Masked().Addr() && a.Bits() < 31 {
			return fmt.Errorf("wan.address %v: that is the network's own address; want a host address such as %v", a, a.Masked().Addr().Next())
		}
		g := c.Gateway
		if !g.IsValid() || !g.Is4() || !a.Contains(g) || g == a.Addr() {
			return fmt.Errorf("wan.gateway %q: static addressing wants the router's IPv4 address inside %v, such as %v", g, a.Masked(), a.Masked().Addr().Next())
		}
	} else {
		if c.Address.IsValid() {
			return fmt.Errorf("wan.address %v: only static addressing takes an address (wan.addressing is %q)", c.Address, c.Addressing)
		}
		if c.Gateway.IsValid() {
			return fmt.Errorf("wan.gateway %v: only static addressing takes a gateway (wan.addressing is %q)", c.Gateway, c.Addressing)
		}
	}
	return nil
}

// State is what the WAN port has now.
type State struct {
	Interface  string       `json:"interface,omitempty"`
	Addressing string       `json:"addressing"`
	Carrier    bool         `json:"carrier"`
	Address    netip.Prefix `json:"address,omitzero"`
	Gateway    netip.Addr   `json:"gateway,omitzero"`
	// Server is the DHCP server that gave the lease; DNS are the resolvers it
	// offered, which the box never uses (its lookups go through the VPN).
	Server       netip.Addr   `json:"dhcp_server,omitzero"`
	DNS          []netip.Addr `json:"offered_dns,omitempty"`
	LeaseExpires time.Time    `json:"lease_expires,omitzero"`
	// DirectRoute describes the route for the team mesh's direct paths
	// (SetDirect): the rule and the default route in DirectTable, or why there
	// is none. Empty: no direct paths asked for, or no VPN.
	DirectRoute string `json:"direct_route,omitempty"`
	// Ready: the port has an address and a way to the VPN endpoint.
	Ready bool `json:"ready"`
	// Problem says why the port is not ready, in plain words.
	Problem string `json:"problem,omitempty"`
}

// ErrNotManaged is returned by operations on a port the box does not manage.
var ErrNotManaged = errors.New("the WAN port is left to the operating system")
