package localnames

import (
	"net"
	"net/netip"
	"slices"
	"strconv"
	"strings"

	"github.com/miekg/dns"
)

// table is one immutable version of the zone. Its resource records are built once
// and shared by every answer: nothing may modify them, and their slices are
// clipped so that appending copies.
type table struct {
	origin string // the local domain, "home.arpa."
	rev    string // the reverse zone holding the LAN prefix, "86.201.10.in-addr.arpa."
	prefix netip.Prefix
	ttl    uint32

	nodes map[string]*rrset       // owner name → addresses
	ents  map[string]struct{}     // names with nothing of their own but names below them
	ptrs  map[netip.Addr][]dns.RR // LAN address → its PTR record
	apex  map[string]apexRRs      // origin → its SOA and NS
}

type rrset struct {
	v4, v6  []netip.Addr
	a, aaaa []dns.RR
	source  string
}

type apexRRs struct {
	soa, ns []dns.RR
	any     []dns.RR // SOA and NS
}

type builder struct {
	t   *table
	box string // the box's fully qualified name
}

func newBuilder(cfg Config, serial uint32) *builder {
	t := &table{
		origin: dns.Fqdn(cfg.Domain),
		rev:    reverseZone(cfg.Prefix),
		prefix: cfg.Prefix.Masked(),
		ttl:    cfg.TTL,
		nodes:  make(map[string]*rrset),
		ents:   make(map[string]struct{}),
		ptrs:   make(map[netip.Addr][]dns.RR),
		apex:   make(map[string]apexRRs),
	}
	b := &builder{t: t, box: cfg.Box + "." + t.origin}
	for _, origin := range []string{t.origin, t.rev} {
		soa := &dns.SOA{
			Hdr:     dns.RR_Header{Name: origin, Rrtype: dns.TypeSOA, Class: dns.ClassINET, Ttl: NegativeTTL},
			Ns:      b.box,
			Mbox:    "hostmaster." + t.origin,
			Serial:  serial,
			Refresh: 3600,
			Retry:   600,
			Expire:  86400,
			Minttl:  NegativeTTL,
		}
		ns := &dns.NS{Hdr: dns.RR_Header{Name: origin, Rrtype: dns.TypeNS, Class: dns.ClassINET, Ttl: cfg.TTL}, Ns: b.box}
		t.apex[origin] = apexRRs{soa: []dns.RR{soa}, ns: []dns.RR{ns}, any: []dns.RR{soa, ns}}
	}
	return b
}

// reverseZone is the in-addr.arpa zone of the whole octets of p: a /24 gives three
// labels, a /16 to /23 two.
func reverseZone(p netip.Prefix) string {
	a := p.Addr().As4()
	n := p.Bits() / 8
	var labels []string
	for i := n - 1; i >= 0; i-- {
		labels = append(labels, strconv.Itoa(int(a[i])))
	}
	return strings.Join(append(labels, "in-addr.arpa."), ".")
}

// add gives name (relative to the domain) addrs unless an earlier source took it.
func (b *builder) add(name, source string, addrs []netip.Addr) bool {
	t := b.t
	owner := name + "." + t.origin
	if _, taken := t.nodes[owner]; taken {
		return false
	}
	n := &rrset{source: source}
	for _, a := range addrs {
		hdr := dns.RR_Header{Name: owner, Class: dns.ClassINET, Ttl: t.ttl}
		if a.Is4() {
			hdr.Rrtype = dns.TypeA
			n.v4 = append(n.v4, a)
			n.a = append(n.a, &dns.A{Hdr: hdr, A: net.IP(a.AsSlice())})
		} else {
			hdr.Rrtype = dns.TypeAAAA
			n.v6 = append(n.v6, a)
			n.aaaa = append(n.aaaa, &dns.AAAA{Hdr: hdr, AAAA: net.IP(a.AsSlice())})
		}
	}
	n.a, n.aaaa = slices.Clip(n.a), slices.Clip(n.aaaa)
	t.nodes[owner] = n
	delete(t.ents, owner)
	// Every name between it and the domain exists, even with nothing of its own.
	for p := owner; ; {
		i := strings.IndexByte(p, '.')
		p = p[i+1:]
		if p == t.origin || i < 0 {
			break
		}
		if _, ok := t.nodes[p]; !ok {
			t.ents[p] = struct{}{}
		}
	}
	return true
}

// ptr gives a LAN address the name (relative to the domain) for reverse lookups,
// unless it has one.
func (b *builder) ptr(a netip.Addr, name string) {
	t := b.t
	if !a.Is4() || !t.prefix.Contains(a) {
		return
	}
	if _, ok := t.ptrs[a]; ok {
		return
	}
	rr := &dns.PTR{
		Hdr: dns.RR_Header{Name: reverseName(a), Rrtype: dns.TypePTR, Class: dns.ClassINET, Ttl: t.ttl},
		Ptr: name + "." + t.origin,
	}
	t.ptrs[a] = []dns.RR{rr}
}

func reverseName(a netip.Addr) string {
	b := a.As4()
	return strconv.Itoa(int(b[3])) + "." + strconv.Itoa(int(b[2])) + "." + strconv.Itoa(int(b[1])) + "." +
		strconv.Itoa(int(b[0])) + ".in-addr.arpa."
}

// result is the zone's answer to one question.
type result struct {
	rcode  int
	answer []dns.RR
	ns     []dns.RR
}

// lookup answers qname (lower case, fully qualified) and qtype, or reports that
// the name is outside the zone.
func (t *table) lookup(qname string, qtype uint16) (result, bool) {
	switch {
	case within(qname, t.origin):
		return t.forward(qname, qtype), true
	case within(qname, t.rev):
		return t.reverse(qname, qtype), true
	}
	return result{}, false
}

func within(name, origin string) bool {
	return name == origin || (strings.HasSuffix(name, origin) && name[len(name)-len(origin)-1] == '.')
}

func (t *table) forward(qname string, qtype uint16) result {
	if qname == t.origin {
		return t.atApex(t.origin, qtype)
	}
	n, ok := t.nodes[qname]
	if !ok {
		if _, ent := t.ents[qname]; ent {
			return t.nodata(t.origin)
		}
		return t.nxdomain(t.origin)
	}
	var ans []dns.RR
	switch qtype {
	case dns.TypeA:
		ans = n.a
	case dns.TypeAAAA:
		ans = n.aaaa
	case dns.TypeANY:
		// RFC 8482 allows a subset; the addresses are the whole of it.
		ans = slices.Concat(n.a, n.aaaa)
	}
	if len(ans) == 0 {
		return t.nodata(t.origin)
	}
	return result{rcode: dns.RcodeSuccess, answer: ans}
}

func (t *table) atApex(origin string, qtype uint16) result {
	ap := t.apex[origin]
	switch qtype {
	case dns.TypeSOA:
		return result{rcode: dns.RcodeSuccess, answer: ap.soa}
	case dns.TypeNS:
		return result{rcode: dns.RcodeSuccess, answer: ap.ns}
	case dns.TypeANY:
		return result{rcode: dns.RcodeSuccess, answer: ap.any}
	}
	return t.nodata(origin)
}

func (t *table) reverse(qname string, qtype uint16) result {
	if qname == t.rev {
		return t.atApex(t.rev, qtype)
	}
	// Up to four decimal labels in front of in-addr.arpa.
	labels := strings.Split(strings.TrimSuffix(qname, ".in-addr.arpa."), ".")
	if len(labels) > 4 {
		return t.nxdomain(t.rev)
	}
	var oct [4]byte
	for i, l := range labels {
		v, err := strconv.Atoi(l)
		if err != nil || v < 0 || v > 255 || len(l) > 3 || (len(l) > 1 && l[0] == '0') {
			return t.nxdomain(t.rev)
		}
		oct[len(labels)-1-i] = byte(v)
	}
	a := netip.AddrFrom4(oct)
	if len(labels) < 4 {
		// A name between the zone and the addresses: it exists if the LAN
		// overlaps the addresses it stands for.
		p := netip.PrefixFrom(a, 8*len(labels))
		if p.Overlaps(t.prefix) {
			return t.nodata(t.rev)
		}
		return t.nxdomain(t.rev)
	}
	ptr, ok := t.ptrs[a]
	if !ok {
		return t.nxdomain(t.rev)
	}
	if qtype == dns.TypePTR || qtype == dns.TypeANY {
		return result{rcode: dns.RcodeSuccess, answer: ptr}
	}
	return t.nodata(t.rev)
}

func (t *table) nodata(origin string) result {
	return result{rcode: dns.RcodeSuccess, ns: t.apex[origin].soa}
}

func (t *table) nxdomain(origin string) result {
	return result{rcode: dns.RcodeNameError, ns: t.apex[origin].soa}
}
