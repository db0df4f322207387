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

// ServeDNS implements plugin.Handler. The query is recorded as its answer is
// written — so the log holds it before the client can see the answer — or, when
// the chain leaves the writing to the server (REFUSED, NOTIMP), once the chain
// returns.
func (p *Plugin) ServeDNS(ctx context.Context, w dns.ResponseWriter, r *dns.Msg) (int, error) {
	rec := &recorder{ResponseWriter: w, p: p, r: r}
	rc, err := plugin.NextOrFailure(p.Name(), p.Next, ql.NewContext(ctx, &rec.note), rec, r)
	if !rec.done {
		rec.record(rc)
	}
	return rc, err
}

// recorder records its query when the answer is written.
type recorder struct {
	dns.ResponseWriter
	p    *Plugin
	r    *dns.Msg
	note ql.Note
	done bool
}

func (w *recorder) WriteMsg(m *dns.Msg) error {
	if !w.done {
		w.record(m.Rcode)
	}
	return w.ResponseWriter.WriteMsg(m)
}

func (w *recorder) record(rc int) {
	w.done = true
	if len(w.r.Question) == 0 {
		return
	}
	q := ql.Query{
		Client: ClientIP(w.RemoteAddr()),
		Name:   w.r.Question[0].Name,
		Type:   w.r.Question[0].Qtype,
		Class:  w.note.Class(),
	}
	var marked bool
	if q.Outcome, marked = w.note.Outcome(); !marked {
		q.Outcome = fromRcode(rc)
	}
	if w.p.MACOf != nil && q.Client.IsValid() {
		q.MAC = w.p.MACOf(q.Client)
	}
	if w.p.Log.Record(q) && w.p.OnFresh != nil {
		w.p.OnFresh(q)
	}
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
