package guard

import (
	"context"

	"github.com/coredns/coredns/plugin"
	"github.com/miekg/dns"

	"github.com/redoubt/redoubt/dns/querylog"
)

// Plugin is the CoreDNS plugin "guard". It refuses what the box never serves —
// opcodes other than QUERY (NOTIMP), zone transfers (REFUSED) — and, on a TCP
// connection a Guard admitted, notes that the chain saw the query (so the answer is
// not counted as a parse failure). It goes near the front of the chain (after
// querylog, which records what it refuses).
type Plugin struct {
	Next plugin.Handler
}

// Name implements plugin.Handler.
func (p *Plugin) Name() string { return "guard" }

// ServeDNS implements plugin.Handler.
func (p *Plugin) ServeDNS(ctx context.Context, w dns.ResponseWriter, r *dns.Msg) (int, error) {
	if a, ok := w.RemoteAddr().(*Addr); ok {
		a.seen.Store(true)
	}
	if r.Opcode != dns.OpcodeQuery {
		querylog.Mark(ctx, querylog.Refused, querylog.Unknown)
		return dns.RcodeNotImplemented, nil
	}
	switch r.Question[0].Qtype {
	case dns.TypeAXFR, dns.TypeIXFR:
		querylog.Mark(ctx, querylog.Refused, querylog.Unknown)
		return dns.RcodeRefused, nil
	}
	return plugin.NextOrFailure(p.Name(), p.Next, ctx, w, r)
}
