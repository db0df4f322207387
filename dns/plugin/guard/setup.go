package guard

import (
	"github.com/coredns/caddy"
	"github.com/coredns/coredns/core/dnsserver"
	"github.com/coredns/coredns/plugin"
)

func init() { plugin.Register("guard", setup) }

// setup parses
//
//	guard
//
// The admission control below the chain needs the server's packet conn and
// listener wrapped (Guard.PacketConn, Guard.Listener), which only a program
// embedding CoreDNS, like Redoubt, can do; from a Corefile the plugin refuses what
// it refuses and nothing more.
func setup(c *caddy.Controller) error {
	c.Next()
	if c.NextArg() || c.Next() {
		return plugin.Error("guard", c.Err("guard takes no arguments and appears once"))
	}
	dnsserver.GetConfig(c).AddPlugin(func(next plugin.Handler) plugin.Handler {
		return &Plugin{Next: next}
	})
	return nil
}
