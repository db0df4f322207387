package captive

import (
	"net/netip"

	"github.com/coredns/caddy"
	"github.com/coredns/coredns/core/dnsserver"
	"github.com/coredns/coredns/plugin"
)

func init() { plugin.Register("captive", setup) }

// setup parses
//
//	captive ADDRESS [pending|done]
//
// where ADDRESS is the portal's IPv4 address and the state is fixed ("pending",
// the default, answers the probes). Redoubt builds the plugin in Go instead, with
// the state read from its config at every query.
func setup(c *caddy.Controller) error {
	c.Next()
	args := c.RemainingArgs()
	if len(args) < 1 || len(args) > 2 {
		return plugin.Error("captive", c.ArgErr())
	}
	addr, err := netip.ParseAddr(args[0])
	if err != nil || !addr.Is4() {
		return plugin.Error("captive", c.Errf("address %q: want the box's IPv4 address", args[0]))
	}
	pending := true
	if len(args) == 2 {
		switch args[1] {
		case "pending":
		case "done":
			pending = false
		default:
			return plugin.Error("captive", c.Errf("state %q: want pending or done", args[1]))
		}
	}
	if c.Next() {
		return plugin.Error("captive", c.Err("captive takes no block and appears once"))
	}
	dnsserver.GetConfig(c).AddPlugin(func(next plugin.Handler) plugin.Handler {
		return &Plugin{Next: next, Addr: addr, Pending: func() bool { return pending }}
	})
	return nil
}
