// Package sinkhole is the CoreDNS plugin "sinkhole", the end of Redoubt's plugin
// chain: every question that reaches it gets the same fixed answer, NXDOMAIN, and
// is never sent anywhere. It is the box's answer for every name that is not its own.
//
// Why NXDOMAIN rather than REFUSED: NXDOMAIN is a final answer. A stub resolver
// that gets it stops there; REFUSED tells it to try its next server, and makes
// systemd-resolved, Windows and browsers call the resolver broken and fall back
// (to another configured server, or to their built-in DNS over HTTPS) — the very
// traffic the box exists to stop, and retried. The browsers' DNS-over-HTTPS canary
// (use-application-dns.net) must get NXDOMAIN to turn DoH off, whatever the answer
// for other names (RFC 8484 deployments; Firefox's documented check).
//
// The dns room puts it last in its chain; nothing else imports this package.
package sinkhole

import (
	"context"
	"strings"

	"github.com/coredns/coredns/plugin"
	"github.com/miekg/dns"

	"github.com/redoubt/redoubt/dns/querylog"
)

// Canary is the name browsers look up to learn whether the network allows DNS
// over HTTPS; NXDOMAIN means it does not.
const Canary = "use-application-dns.net."

// Plugin is the "sinkhole" plugin. It has no next plugin.
type Plugin struct {
	// Rcode is the answer for every name: dns.RcodeNameError (NXDOMAIN, what
	// Redoubt uses) or dns.RcodeRefused. The canary always gets NXDOMAIN.
	Rcode int
}

// Name implements plugin.Handler.
func (p *Plugin) Name() string { return "sinkhole" }

// ServeDNS implements plugin.Handler.
func (p *Plugin) ServeDNS(ctx context.Context, w dns.ResponseWriter, r *dns.Msg) (int, error) {
	rc := p.Rcode
	if rc == 0 || strings.EqualFold(r.Question[0].Name, Canary) {
		rc = dns.RcodeNameError
	}
	m := new(dns.Msg)
	m.SetRcode(r, rc)
	m.RecursionAvailable = true
	querylog.Mark(ctx, querylog.Stopped, querylog.Unknown)
	if err := w.WriteMsg(m); err != nil {
		return dns.RcodeServerFailure, plugin.Error(p.Name(), err)
	}
	return rc, nil
}
