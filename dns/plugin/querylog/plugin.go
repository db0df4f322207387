// Package querylog is the CoreDNS plugin "querylog": it records every query that
// reaches the plugin chain, after the rest of the chain has answered it, into a
// dns/querylog Log — who asked, for which name and type, and how it was answered
// (as the answering plugin marked it, or from the response code). It goes first
// in the chain. The dns room builds it; nothing else imports this package.
package querylog

import (
	"context"
	"net"
	"net/netip"

	"github.com/coredns/coredns/plugin"
	"github.com/miekg/dns"

	ql "github.com/redoubt/redoubt/dns/querylog"
)

// Plugin is the "querylog" plugin.
type Plugin struct {
	Next plugin.Handler
	Log  *ql.Log
	// MACOf, if set, returns the hardware address a LAN client last used (zero if
	// unknown).
	MACOf func(netip.Addr) [6]byte
	// OnFresh, if set, is called with a query whose client and name the log did
	// not hold yet, after it is recorded (the dns room logs those, rate-limited).
	OnFresh func(ql.Query)
}

// Name implements plugin.Handler.
func (p *Plugin) Name() string { return "querylog" }

// ServeDNS implements plugin.Handler.
func (p *Plugin) ServeDNS(ctx context.Context, w dns.ResponseWriter, r *dns.Msg) (int, error) {
	var n ql.Note
	rc, err := plugin.NextOrFailure(p.Name(), p.Next, ql.NewContext(ctx, &n), w, r)
	if len(r.Question) == 0 {
		return rc, err
	}
	q := ql.Query{
		Client: ClientIP(w.RemoteAddr()),
		Name:   r.Question[0].Name,
		Type:   r.Question[0].Qtype,
		Class:  n.Class(),
	}
	var marked bool
	if q.Outcome, marked = n.Outcome(); !marked {
		q.Outcome = fromRcode(rc)
	}
	if p.MACOf != nil && q.Client.IsValid() {
		q.MAC = p.MACOf(q.Client)
	}
	if p.Log.Record(q) && p.OnFresh != nil {
		p.OnFresh(q)
	}
	return rc, err
}

// fromRcode is the outcome of a query no plugin marked.
func fromRcode(rc int) ql.Outcome {
	switch rc {
	case dns.RcodeSuccess:
		return ql.Local
	case dns.RcodeNameError:
		return ql.Stopped
	case dns.RcodeRefused, dns.RcodeNotImplemented:
		return ql.Refused
	case dns.RcodeFormatError:
		return ql.Malformed
	}
	return ql.Failed
}

// ClientIP returns the IP address of a DNS client from its net.Addr: a UDP or TCP
// address, or an address that wraps one (with an Unwrap method).
func ClientIP(a net.Addr) netip.Addr {
	for a != nil {
		switch x := a.(type) {
		case *net.UDPAddr:
			ip, _ := netip.AddrFromSlice(x.IP)
			return ip.Unmap()
		case *net.TCPAddr:
			ip, _ := netip.AddrFromSlice(x.IP)
			return ip.Unmap()
		case interface{ Unwrap() net.Addr }:
			a = x.Unwrap()
			continue
		}
		break
	}
	if a == nil {
		return netip.Addr{}
	}
	ap, err := netip.ParseAddrPort(a.String())
	if err != nil {
		return netip.Addr{}
	}
	return ap.Addr().Unmap()
}
