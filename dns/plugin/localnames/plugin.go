package localnames

import (
	"context"
	"strings"

	"github.com/coredns/coredns/plugin"
	"github.com/miekg/dns"

	"github.com/redoubt/redoubt/dns/querylog"
)

// Plugin is the CoreDNS plugin "localnames": it answers, authoritatively, every
// question inside the local domain and the LAN's reverse zone from its Zone, and
// passes every other question to the next plugin.
type Plugin struct {
	Next plugin.Handler
	Zone *Zone
}

// Name implements plugin.Handler.
func (p *Plugin) Name() string { return "localnames" }

// ServeDNS implements plugin.Handler.
func (p *Plugin) ServeDNS(ctx context.Context, w dns.ResponseWriter, r *dns.Msg) (int, error) {
	q := r.Question[0]
	res, ok := p.Zone.snap.Load().lookup(strings.ToLower(q.Name), q.Qtype)
	if !ok {
		return plugin.NextOrFailure(p.Name(), p.Next, ctx, w, r)
	}
	m := new(dns.Msg)
	m.SetReply(r)
	m.Authoritative = true
	m.RecursionAvailable = true
	m.Rcode = res.rcode
	m.Answer = res.answer
	m.Ns = res.ns
	querylog.Mark(ctx, querylog.Local, querylog.LocalName)
	if err := w.WriteMsg(m); err != nil {
		return dns.RcodeServerFailure, plugin.Error(p.Name(), err)
	}
	return res.rcode, nil
}
