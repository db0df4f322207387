package dns

import (
	"context"
	"net"

	"github.com/coredns/coredns/core/dnsserver"
	"github.com/miekg/dns"

	"github.com/redoubt/redoubt/dns/plugin/guard"
)

// UDP is served by the guard's long-lived workers calling CoreDNS's
// dnsserver.Server.ServeDNS (the zone multiplexer, EDNS checks, truncation and the
// plugin chain), not by dnsserver.ServePacket: that runs miekg/dns's server, which
// starts a goroutine for every datagram, and on the netstack's deep write path each
// of those grows its stack by copying — a quarter of the CPU per query, measured
// (see bench/RESULTS.md). TCP keeps dnsserver.Serve: one goroutine per connection
// costs nothing that matters.

// serveUDP answers queries on pc until it is closed.
func (s *Server) serveUDP(pc net.PacketConn) error {
	ctx := context.WithValue(context.Background(), dnsserver.Key{}, s.srv)
	ctx = context.WithValue(ctx, dnsserver.LoopKey{}, 0)
	local := pc.LocalAddr()
	return s.guard.ServePacket(pc, func(p *guard.Packet) { s.answerUDP(ctx, pc, local, p) })
}

func (s *Server) answerUDP(ctx context.Context, pc net.PacketConn, local net.Addr, p *guard.Packet) {
	w := &udpWriter{pc: pc, local: local, remote: p.From}
	m := new(dns.Msg)
	if err := m.Unpack(p.Data); err != nil {
		// Bad lengths, compression loops, names too long…: FORMERR with the
		// query's header only, never larger than what was sent.
		s.guard.Malformed(p.Client)
		w.Write(formErr(p.Data))
		return
	}
	if rc := reject(m); rc != dns.RcodeSuccess {
		if rc == dns.RcodeFormatError {
			s.guard.Malformed(p.Client)
		}
		r := new(dns.Msg)
		r.SetRcode(m, rc)
		r.Opcode = m.Opcode
		r.Answer, r.Ns, r.Extra = nil, nil, nil
		w.WriteMsg(r)
		return
	}
	s.srv.ServeDNS(ctx, w, m)
}

// reject says what a DNS server answers, without looking further, to a message
// that is not one plain query (the same rules as miekg/dns's server): NOTIMP for
// opcodes other than QUERY and NOTIFY, FORMERR for anything but one question or for
// records no query carries.
func reject(m *dns.Msg) int {
	switch {
	case m.Opcode != dns.OpcodeQuery && m.Opcode != dns.OpcodeNotify:
		return dns.RcodeNotImplemented
	case len(m.Question) != 1, len(m.Answer) > 1, len(m.Ns) > 1, len(m.Extra) > 2:
		return dns.RcodeFormatError
	}
	return dns.RcodeSuccess
}

// formErr answers a datagram that could not be parsed: its header, marked as a
// response with FORMERR, and no records.
func formErr(q []byte) []byte {
	r := make([]byte, 12)
	copy(r, q[:12])
	r[2] = 0x80 | (q[2] & 0x79) // QR, the opcode and RD as asked
	r[3] = 0x80 | dns.RcodeFormatError
	return r
}

// udpWriter answers one UDP query.
type udpWriter struct {
	pc            net.PacketConn
	local, remote net.Addr
}

func (w *udpWriter) LocalAddr() net.Addr  { return w.local }
func (w *udpWriter) RemoteAddr() net.Addr { return w.remote }

func (w *udpWriter) WriteMsg(m *dns.Msg) error {
	b, err := m.Pack()
	if err != nil {
		return err
	}
	_, err = w.Write(b)
	return err
}

func (w *udpWriter) Write(b []byte) (int, error) { return w.pc.WriteTo(b, w.remote) }
func (w *udpWriter) Close() error                { return nil }
func (w *udpWriter) TsigStatus() error           { return nil }
func (w *udpWriter) TsigTimersOnly(bool)         {}
func (w *udpWriter) Hijack()                     {}
