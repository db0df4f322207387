package sinkhole

import (
	"github.com/coredns/caddy"
	"github.com/coredns/coredns/core/dnsserver"
	"github.com/coredns/coredns/plugin"
	"github.com/miekg/dns"
)

func init() { plugin.Register("sinkhole", setup) }

// setup parses
//
//	sinkhole [nxdomain|refused]
func setup(c *caddy.Controller) error {
	c.Next()
	p := &Plugin{Rcode: dns.RcodeNameError}
	args := c.RemainingArgs()
	switch {
	case len(args) == 0:
	case len(args) == 1 && args[0] == "nxdomain":
	case len(args) == 1 && args[0] == "refused":
		p.Rcode = dns.RcodeRefused
	default:
		return plugin.Error("sinkhole", c.Errf("want nxdomain or refused, got %q", args))
	}
	if c.Next() {
		return plugin.Error("sinkhole", c.Err("sinkhole takes no block and appears once"))
	}
	dnsserver.GetConfig(c).AddPlugin(func(plugin.Handler) plugin.Handler { return p })
	return nil
}
