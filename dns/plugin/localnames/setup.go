package localnames

import (
	"net/netip"
	"strconv"

	"github.com/coredns/caddy"
	"github.com/coredns/coredns/core/dnsserver"
	"github.com/coredns/coredns/plugin"
)

func init() { plugin.Register("localnames", setup) }

// setup parses
//
//	localnames DOMAIN {
//	    box NAME ADDRESS/PREFIX
//	    alias NAME...
//	    host NAME ADDRESS
//	    name SOURCE NAME ADDRESS...
//	    ttl SECONDS
//	}
//
// (Redoubt builds the Zone in Go instead, from its config file.)
func setup(c *caddy.Controller) error {
	z, err := parse(c)
	if err != nil {
		return plugin.Error("localnames", err)
	}
	dnsserver.GetConfig(c).AddPlugin(func(next plugin.Handler) plugin.Handler {
		return &Plugin{Next: next, Zone: z}
	})
	return nil
}

func parse(c *caddy.Controller) (*Zone, error) {
	var (
		cfg   Config
		hosts [][2]string
		names [][]string
	)
	c.Next() // the directive
	args := c.RemainingArgs()
	if len(args) != 1 {
		return nil, c.ArgErr()
	}
	cfg.Domain = args[0]
	for c.NextBlock() {
		prop := c.Val()
		args := c.RemainingArgs()
		switch prop {
		case "box":
			if len(args) != 2 {
				return nil, c.ArgErr()
			}
			p, err := netip.ParsePrefix(args[1])
			if err != nil {
				return nil, c.Errf("box address %q: want ADDRESS/PREFIX, such as 10.201.86.1/24", args[1])
			}
			cfg.Box, cfg.Addr, cfg.Prefix = args[0], p.Addr(), p.Masked()
		case "alias":
			if len(args) == 0 {
				return nil, c.ArgErr()
			}
			cfg.Aliases = append(cfg.Aliases, args...)
		case "host":
			if len(args) != 2 {
				return nil, c.ArgErr()
			}
			hosts = append(hosts, [2]string{args[0], args[1]})
		case "name":
			if len(args) < 3 {
				return nil, c.ArgErr()
			}
			names = append(names, args)
		case "ttl":
			if len(args) != 1 {
				return nil, c.ArgErr()
			}
			n, err := strconv.ParseUint(args[0], 10, 32)
			if err != nil || n == 0 || n > 86400 {
				return nil, c.Errf("ttl %q: want seconds from 1 to 86400", args[0])
			}
			cfg.TTL = uint32(n)
		default:
			return nil, c.Errf("unknown property %q", prop)
		}
	}
	if c.Next() {
		return nil, c.Err("localnames may appear only once")
	}
	if cfg.Box == "" {
		return nil, c.Err("box: missing; want box NAME ADDRESS/PREFIX in the block")
	}
	z, err := New(cfg, nil)
	if err != nil {
		return nil, c.Err(err.Error())
	}
	for _, h := range hosts {
		a, err := netip.ParseAddr(h[1])
		if err != nil {
			return nil, c.Errf("host %s address %q: %v", h[0], h[1], err)
		}
		if err := CheckLabel(h[0]); err != nil {
			return nil, c.Errf("host %q: %v", h[0], err)
		}
		z.SetHost(a, h[0])
	}
	for _, n := range names {
		var addrs []netip.Addr
		for _, s := range n[2:] {
			a, err := netip.ParseAddr(s)
			if err != nil {
				return nil, c.Errf("name %s address %q: %v", n[1], s, err)
			}
			addrs = append(addrs, a)
		}
		if err := z.Set(n[0], n[1], addrs); err != nil {
			return nil, c.Err(err.Error())
		}
	}
	return z, nil
}
