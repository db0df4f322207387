// Package captive is the CoreDNS plugin "captive": while the box's setup is
// unfinished it answers the names operating systems and browsers probe to detect a
// captive portal with the box's own address, so their probe fetches the box's page
// instead of the expected answer and the laptop opens its portal window on the
// setup page. Once setup is done it answers nothing and the names fall through to
// the next plugin (the sinkhole's NXDOMAIN), like every other name.
//
// The probe names are a fixed table (probes.go, documented in README.md). The dns
// room puts the plugin in its chain; nothing else imports this package.
package captive

import (
	"context"
	"net"
	"net/netip"
	"strings"

	"github.com/coredns/coredns/plugin"
	"github.com/miekg/dns"

	"github.com/redoubt/redoubt/dns/querylog"
)

// Plugin is the "captive" plugin.
type Plugin struct {
	Next plugin.Handler
	// Pending reports whether setup is unfinished: only then are probes answered.
	Pending func() bool
	// Addr is the box's LAN address, where the probes are sent.
	Addr netip.Addr
}

// Name implements plugin.Handler.
func (p *Plugin) Name() string { return "captive" }

// ServeDNS implements plugin.Handler.
func (p *Plugin) ServeDNS(ctx context.Context, w dns.ResponseWriter, r *dns.Msg) (int, error) {
	q := r.Question[0]
	if _, ok := byName[strings.ToLower(q.Name)]; !ok {
		return plugin.NextOrFailure(p.Name(), p.Next, ctx, w, r)
	}
	if !p.Pending() {
		querylog.MarkClass(ctx, querylog.CaptiveProbe)
		return plugin.NextOrFailure(p.Name(), p.Next, ctx, w, r)
	}
	m := new(dns.Msg)
	m.SetReply(r)
	m.RecursionAvailable = true
	if q.Qtype == dns.TypeA || q.Qtype == dns.TypeANY {
		// TTL 0: once setup is done, the next probe must not find this cached.
		m.Answer = []dns.RR{&dns.A{
			Hdr: dns.RR_Header{Name: q.Name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 0},
			A:   net.IP(p.Addr.AsSlice()),
		}}
	}
	// Anything else (AAAA, HTTPS, …) gets an empty answer: the box has no IPv6,
	// and the probe must go over plain HTTP to the box's address.
	querylog.Mark(ctx, querylog.Captive, querylog.CaptiveProbe)
	if err := w.WriteMsg(m); err != nil {
		return dns.RcodeServerFailure, plugin.Error(p.Name(), err)
	}
	return dns.RcodeSuccess, nil
}

// IsProbe reports whether name (any case, with or without the final dot) is a
// captive-portal probe name the plugin answers.
func IsProbe(name string) bool {
	_, ok := byName[dns.Fqdn(strings.ToLower(name))]
	return ok
}
