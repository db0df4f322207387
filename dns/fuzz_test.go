package dns

import (
	"context"
	"encoding/binary"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/coredns/coredns/core/dnsserver"
	"github.com/miekg/dns"

	"github.com/redoubt/redoubt/dns/plugin/guard"
	"github.com/redoubt/redoubt/dns/querylog"
)

// captureConn records what is written to it; nothing is ever read.
type captureConn struct {
	mu  sync.Mutex
	out [][]byte
}

func (c *captureConn) ReadFrom([]byte) (int, net.Addr, error) { return 0, nil, net.ErrClosed }
func (c *captureConn) WriteTo(b []byte, _ net.Addr) (int, error) {
	c.mu.Lock()
	c.out = append(c.out, append([]byte(nil), b...))
	c.mu.Unlock()
	return len(b), nil
}
func (c *captureConn) Close() error { return nil }
func (c *captureConn) LocalAddr() net.Addr {
	return &net.UDPAddr{IP: net.IPv4(10, 201, 86, 1), Port: 53}
}
func (c *captureConn) SetDeadline(time.Time) error      { return nil }
func (c *captureConn) SetReadDeadline(time.Time) error  { return nil }
func (c *captureConn) SetWriteDeadline(time.Time) error { return nil }

func (c *captureConn) take() [][]byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := c.out
	c.out = nil
	return out
}

// FuzzQuery feeds arbitrary datagrams to the UDP query path — parsing, the
// server's checks, the whole plugin chain — as the guard's workers do. Whatever
// arrives: no panic; at most one answer; an answer is a well-formed response to the
// datagram's id, never larger than the client allows (512 bytes, or its EDNS
// buffer up to 1232), and never larger than the query when the query did not parse.
func FuzzQuery(f *testing.F) {
	for _, m := range []*dns.Msg{
		query("redoubt.home.arpa.", dns.TypeA),
		query("1.86.201.10.in-addr.arpa.", dns.TypePTR),
		query("captive.apple.com.", dns.TypeA),
		query("tracker.example.", dns.TypeHTTPS),
		query("home.arpa.", dns.TypeAXFR),
		func() *dns.Msg { m := query("many.team.home.arpa.", dns.TypeANY); m.SetEdns0(1232, true); return m }(),
		func() *dns.Msg { m := query("home.arpa.", dns.TypeSOA); m.Opcode = dns.OpcodeNotify; return m }(),
	} {
		b, err := m.Pack()
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte{0x12, 0x34, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0xc0, 12, 0, 1, 0, 1}) // a compression loop
	f.Add(make([]byte, 12))

	s, err := New(Config{}, Deps{
		Logger:       slog.New(slog.DiscardHandler),
		LAN:          lanPrefix,
		SetupPending: func() bool { return true },
		Queries:      querylog.New(querylog.Config{MaxEntries: 64}),
	})
	if err != nil {
		f.Fatal(err)
	}
	if err := s.Names().Set("tailnet", "many.team", manyV6(32)); err != nil {
		f.Fatal(err)
	}
	ctx := context.WithValue(context.Background(), dnsserver.Key{}, s.srv)
	ctx = context.WithValue(ctx, dnsserver.LoopKey{}, 0)
	pc := &captureConn{}
	from := &net.UDPAddr{IP: net.IPv4(10, 201, 86, 100), Port: 5353}

	f.Fuzz(func(t *testing.T, b []byte) {
		if len(b) < 12 || b[2]&0x80 != 0 {
			return // the guard drops these before any parsing (tested there)
		}
		s.answerUDP(ctx, pc, pc.LocalAddr(), &guard.Packet{Data: b, From: from, Client: netip.MustParseAddr("10.201.86.100")})
		out := pc.take()
		if len(out) > 1 {
			t.Fatalf("%d answers to one datagram", len(out))
		}
		if len(out) == 0 {
			return
		}
		r := out[0]
		if len(r) < 12 || binary.BigEndian.Uint16(r) != binary.BigEndian.Uint16(b) || r[2]&0x80 == 0 {
			t.Fatalf("answer %x is not a response to id %x", r, b[:2])
		}
		var q dns.Msg
		limit := 512
		if q.Unpack(b) == nil {
			if o := q.IsEdns0(); o != nil {
				limit = min(max(int(o.UDPSize()), 512), 1232)
			}
		} else if len(r) > len(b) {
			t.Fatalf("answer of %d bytes to an unparsable query of %d", len(r), len(b))
		}
		if len(r) > limit {
			t.Fatalf("answer of %d bytes, the client allows %d", len(r), limit)
		}
		var m dns.Msg
		if err := m.Unpack(r); err != nil {
			t.Fatalf("answer does not parse: %v\n%x", err, r)
		}
	})
}

// BenchmarkQuery is the UDP query path without the network: parse, the plugin
// chain, pack, for a local name and for a stopped one.
func BenchmarkQuery(b *testing.B) {
	s, err := New(Config{}, Deps{
		Logger:       slog.New(slog.DiscardHandler),
		LAN:          lanPrefix,
		SetupPending: func() bool { return false },
		Queries:      querylog.New(querylog.Config{}),
	})
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.WithValue(context.Background(), dnsserver.Key{}, s.srv)
	ctx = context.WithValue(ctx, dnsserver.LoopKey{}, 0)
	pc := &captureConn{}
	from := &net.UDPAddr{IP: net.IPv4(10, 201, 86, 100), Port: 5353}
	for _, name := range []string{"redoubt.home.arpa.", "tracker.example."} {
		q, _ := query(name, dns.TypeA).Pack()
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			for range b.N {
				s.answerUDP(ctx, pc, pc.LocalAddr(), &guard.Packet{Data: q, From: from, Client: netip.MustParseAddr("10.201.86.100")})
				pc.take()
			}
		})
	}
}
