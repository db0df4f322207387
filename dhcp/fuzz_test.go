package dhcp

import (
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
)

// fakeConn is a PacketConn that counts what the server sends; reads block until
// Close.
type fakeConn struct {
	check     bool // decode every reply
	sent      atomic.Int64
	mu        sync.Mutex
	last      []byte
	closed    chan struct{}
	closeOnce sync.Once
}

func newFakeConn() *fakeConn { return &fakeConn{closed: make(chan struct{}), check: true} }

// yiaddr returns the address in the last reply sent.
func (c *fakeConn) yiaddr() net.IP {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.last) < 20 {
		return nil
	}
	return net.IP(append([]byte(nil), c.last[16:20]...))
}

func discardLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }

func (c *fakeConn) ReadFrom([]byte) (int, net.Addr, error) {
	<-c.closed
	return 0, nil, net.ErrClosed
}

func (c *fakeConn) WriteTo(b []byte, _ net.Addr) (int, error) {
	if c.check {
		if _, err := dhcpv4.FromBytes(b); err != nil {
			panic("the server sent an undecodable reply: " + err.Error())
		}
	}
	c.mu.Lock()
	c.last = append(c.last[:0], b...)
	c.mu.Unlock()
	c.sent.Add(1)
	return len(b), nil
}

func (c *fakeConn) Close() error                     { c.closeOnce.Do(func() { close(c.closed) }); return nil }
func (c *fakeConn) LocalAddr() net.Addr              { return &net.UDPAddr{Port: 67} }
func (c *fakeConn) SetDeadline(time.Time) error      { return nil }
func (c *fakeConn) SetReadDeadline(time.Time) error  { return nil }
func (c *fakeConn) SetWriteDeadline(time.Time) error { return nil }

type nopNeighbors struct{}

func (nopNeighbors) SetNeighbor(netip.Addr, net.HardwareAddr) error { return nil }

// newBareServer is a Server whose packets are fed to it directly (feed: the
// worker's and the committer's work, one packet at a time), with its lease file on
// tmpfs.
func newBareServer(t testing.TB, lanP netip.Prefix, cfg Config) (*Server, *fakeConn) {
	t.Helper()
	conn := newFakeConn()
	s, err := New(cfg, Deps{
		Conn: conn, Neighbors: nopNeighbors{}, LAN: lanP, StateDir: stateDir(t), HostNames: &names{},
		CaptiveURL: func() string { return "http://10.201.86.1/captive-portal/api" },
		Logger:     discardLogger(),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s, conn
}

func (s *Server) feed(b []byte) {
	buf := make([]byte, bufSize)
	n := copy(buf, b)
	if len(b) > bufSize {
		n = bufSize
	}
	s.process([]packet{{buf: &buf, n: n, from: netip.MustParseAddrPort("0.0.0.0:68")}})
	s.commitPending() // what the committer goroutine does when serving
}

// FuzzHandle feeds arbitrary bytes to the packet handler of one long-lived server:
// it must never panic, never send an undecodable reply, and never lease an
// address outside the pool or two addresses to one device.
func FuzzHandle(f *testing.F) {
	c := &client{mac: laptopMAC}
	id := dhcpv4.WithOption(dhcpv4.OptClientIdentifier([]byte{1, 2, 0x52, 0x44, 0, 0, 0x64}))
	host := dhcpv4.WithOption(dhcpv4.OptHostName("Laptop"))
	req := dhcpv4.WithOption(dhcpv4.OptRequestedIPAddress(net.IP{10, 201, 86, 12}))
	sid := dhcpv4.WithOption(dhcpv4.OptServerIdentifier(net.IP{10, 201, 86, 1}))
	for _, m := range []*dhcpv4.DHCPv4{
		c.msg(dhcpv4.MessageTypeDiscover, host),
		c.msg(dhcpv4.MessageTypeDiscover, id, req),
		c.msg(dhcpv4.MessageTypeRequest, req, sid, host),
		c.msg(dhcpv4.MessageTypeRequest, req),
		c.msg(dhcpv4.MessageTypeRequest, dhcpv4.WithClientIP(net.IP{10, 201, 86, 12})),
		c.msg(dhcpv4.MessageTypeRelease, dhcpv4.WithClientIP(net.IP{10, 201, 86, 12}), sid),
		c.msg(dhcpv4.MessageTypeDecline, req, sid),
		c.msg(dhcpv4.MessageTypeInform, dhcpv4.WithClientIP(net.IP{10, 201, 86, 77})),
		c.msg(dhcpv4.MessageTypeDiscover, dhcpv4.WithGatewayIP(net.IP{10, 201, 86, 100})),
	} {
		f.Add(m.ToBytes())
	}
	f.Add([]byte{1, 1, 6, 0})
	s, _ := newBareServer(f, boxLAN, Config{PoolStart: netip.MustParseAddr("10.201.86.10"), PoolEnd: netip.MustParseAddr("10.201.86.20")})
	f.Fuzz(func(t *testing.T, b []byte) {
		continues(b) // the reader's classifier must not panic either
		s.feed(b)
		s.mu.Lock()
		defer s.mu.Unlock()
		seen := map[[6]byte]netip.Addr{}
		for _, l := range s.table.Leases() {
			if l.Declined {
				continue
			}
			if l.Addr.Compare(netip.MustParseAddr("10.201.86.10")) < 0 || l.Addr.Compare(netip.MustParseAddr("10.201.86.20")) > 0 {
				t.Fatalf("lease outside the pool: %+v", l)
			}
			if prev, dup := seen[l.MAC]; dup && l.ClientID == nil {
				t.Fatalf("device %x holds %v and %v", l.MAC, prev, l.Addr)
			}
			seen[l.MAC] = l.Addr
		}
	})
}

// BenchmarkDORA is the server's cost for one new device's whole exchange
// (DISCOVER, OFFER, REQUEST, ACK): decoding, the lease table, one lease-file
// commit (on tmpfs) and encoding, without the netstack.
func BenchmarkDORA(b *testing.B) {
	lanP := netip.MustParsePrefix("10.201.0.1/16")
	s, conn := newBareServer(b, lanP, Config{})
	sid := dhcpv4.WithOption(dhcpv4.OptServerIdentifier(lanP.Addr().AsSlice()))
	conn.check = false
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		i++
		if i%60000 == 0 { // a fresh server before the /16 fills
			b.StopTimer()
			s.Close()
			s, conn = newBareServer(b, lanP, Config{})
			conn.check = false
			b.StartTimer()
		}
		c := &client{mac: net.HardwareAddr{2, 0, 0, byte(i >> 16), byte(i >> 8), byte(i)}}
		s.feed(c.msg(dhcpv4.MessageTypeDiscover).ToBytes())
		yi := conn.yiaddr()
		s.feed(c.msg(dhcpv4.MessageTypeRequest, dhcpv4.WithOption(dhcpv4.OptRequestedIPAddress(yi)), sid).ToBytes())
	}
	b.StopTimer()
	if st := s.Stats(); st.Acks == 0 || st.Naks != 0 {
		b.Fatalf("stats %+v", st)
	}
}
