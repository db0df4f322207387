package querylog

import (
	"strconv"

	"github.com/coredns/caddy"
	"github.com/coredns/coredns/core/dnsserver"
	"github.com/coredns/coredns/plugin"

	ql "github.com/redoubt/redoubt/dns/querylog"
)

func init() { plugin.Register("querylog", setup) }

// setup parses
//
//	querylog [ENTRIES]
//
// and adds the plugin with a log of its own (Redoubt builds it in Go instead, with
// the log the daemon shows).
func setup(c *caddy.Controller) error {
	cfg := ql.Config{}
	c.Next()
	args := c.RemainingArgs()
	switch len(args) {
	case 0:
	case 1:
		n, err := strconv.Atoi(args[0])
		if err != nil || n < 2 || n > 1<<20 {
			return plugin.Error("querylog", c.Errf("entries %q: want a number from 2 to 1048576", args[0]))
		}
		cfg.MaxEntries = n
	default:
		return plugin.Error("querylog", c.ArgErr())
	}
	if c.Next() {
		return plugin.Error("querylog", c.Err("querylog takes no block and appears once"))
	}
	log := ql.New(cfg)
	dnsserver.GetConfig(c).AddPlugin(func(next plugin.Handler) plugin.Handler {
		return &Plugin{Next: next, Log: log}
	})
	return nil
}
