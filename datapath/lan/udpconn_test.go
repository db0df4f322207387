package lan

import (
	"bytes"
	"context"
	"errors"
	"net"
	"net/netip"
	"os"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
	"gvisor.dev/gvisor/pkg/buffer"
	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/adapters/gonet"
	"gvisor.dev/gvisor/pkg/tcpip/header"
	"gvisor.dev/gvisor/pkg/tcpip/network/ipv4"

	"github.com/redoubt/redoubt/datapath/leaklog"
	"github.com/redoubt/redoubt/datapath/link"
)

var boxIP = DefaultAddress.Addr()

// laptopUDP opens a UDP socket on the laptop's netstack, connected to the box's
// port. The laptop's netstack verifies the checksums of what it receives.
func (r *rig) laptopUDP(t testing.TB, port uint16) *gonet.UDPConn {
	t.Helper()
	c, err := gonet.DialUDP(r.laptop, nil, &tcpip.FullAddress{NIC: 1, Addr: tcpip.AddrFrom4(boxIP.As4()), Port: port}, ipv4.ProtocolNumber)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func (r *rig) listenUDP(t testing.TB, port uint16) net.PacketConn {
	t.Helper()
	pc, err := r.lan.ListenUDP(port)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close() })
	return pc
}

func (r *rig) send(t testing.TB, frame []byte) {
	t.Helper()
	if _, err := unix.Write(r.wire, frame); err != nil {
		t.Fatal(err)
	}
}

// udpFrameTo is a frame from the laptop's address and port 40000 to dst:port.
func udpFrameTo(dst netip.Addr, port uint16, payload []byte) []byte {
	f := make([]byte, udpFrameOverhead+len(payload))
	copy(f[udpFrameOverhead:], payload)
	putUDP4(f, udpFrame{dstMAC: [6]byte(boxMAC), srcMAC: [6]byte(laptopMAC), src: laptopIP.As4(), dst: dst.As4(),
		srcPort: 40000, dstPort: port, id: 7})
	return f
}

func readWithin(t testing.TB, pc net.PacketConn, d time.Duration) ([]byte, net.Addr, error) {
	t.Helper()
	pc.SetReadDeadline(time.Now().Add(d))
	buf := make([]byte, 2048)
	n, from, err := pc.ReadFrom(buf)
	return buf[:n], from, err
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

func TestUDPRoundTrip(t *testing.T) {
	r := newRig(t)
	pc := r.listenUDP(t, 53)
	if got := pc.LocalAddr().String(); got != "10.201.86.1:53" {
		t.Errorf("LocalAddr %s", got)
	}
	laptop := r.laptopUDP(t, 53)
	var before Stats
	for i, size := range []int{1, 1, 512, 1472} { // up to what fits an MTU-sized frame
		if i == 1 {
			before = r.lan.Stats() // after the laptop's ARP for the box, which the netstack answers
		}
		q := bytes.Repeat([]byte{byte('a' + i)}, size)
		if _, err := laptop.Write(q); err != nil {
			t.Fatal(err)
		}
		got, from, err := readWithin(t, pc, 5*time.Second)
		if err != nil {
			t.Fatalf("%d bytes: reading on the box: %v (stats %+v)", size, err, r.lan.Stats())
		}
		if !bytes.Equal(got, q) {
			t.Fatalf("box read %d bytes, not the %d sent", len(got), size)
		}
		ua := from.(*net.UDPAddr)
		if ua.AddrPort().Addr().Unmap() != laptopIP || ua.Port != int(laptop.LocalAddr().(*net.UDPAddr).Port) {
			t.Fatalf("from %v, want the laptop's socket %v", from, laptop.LocalAddr())
		}
		answer := append([]byte("answer:"), q...)[:size]
		if n, err := pc.WriteTo(answer, from); err != nil || n != size {
			t.Fatalf("WriteTo: %d, %v", n, err)
		}
		laptop.SetReadDeadline(time.Now().Add(5 * time.Second))
		buf := make([]byte, 2048)
		n, err := laptop.Read(buf)
		if err != nil {
			t.Fatalf("%d bytes: the laptop got no answer: %v (stats %+v)", size, err, r.lan.Stats())
		}
		if !bytes.Equal(buf[:n], answer) {
			t.Fatalf("laptop read %q, want %q", buf[:n], answer)
		}
	}
	st := r.lan.Stats()
	if st.UDP.Delivered != 4 || st.UDP.Sent != 4 || st.UDP.QueueFull != 0 || st.UDP.Malformed != 0 {
		t.Errorf("UDP counters %+v", st.UDP)
	}
	if st.Link.RxDelivered != before.Link.RxDelivered {
		t.Errorf("the netstack got %d frames: the datagrams should bypass it", st.Link.RxDelivered-before.Link.RxDelivered)
	}
	if got := r.laptop.Stats().UDP.ChecksumErrors.Value(); got != 0 {
		t.Errorf("the laptop counted %d UDP checksum errors", got)
	}
	if _, err := pc.WriteTo(make([]byte, 1473), laptopAddr(laptop)); !errors.Is(err, syscall.EMSGSIZE) {
		t.Errorf("a datagram larger than the link's MTU: %v", err)
	}
}

func laptopAddr(c *gonet.UDPConn) net.Addr {
	a := c.LocalAddr().(*net.UDPAddr)
	return &net.UDPAddr{IP: laptopIP.AsSlice(), Port: a.Port}
}

// TestUDPFrameHeaders checks what putUDP4 builds against gVisor's own header code.
func TestUDPFrameHeaders(t *testing.T) {
	payload := []byte("an answer of odd length")
	f := make([]byte, udpFrameOverhead+len(payload))
	copy(f[udpFrameOverhead:], payload)
	putUDP4(f, udpFrame{dstMAC: [6]byte(laptopMAC), srcMAC: [6]byte(boxMAC), src: boxIP.As4(), dst: laptopIP.As4(),
		srcPort: 53, dstPort: 40000, id: 0xbeef})
	eth := header.Ethernet(f)
	if eth.SourceAddress() != tcpip.LinkAddress(boxMAC) || eth.DestinationAddress() != tcpip.LinkAddress(laptopMAC) || eth.Type() != header.IPv4ProtocolNumber {
		t.Errorf("ethernet %v → %v type %#x", eth.SourceAddress(), eth.DestinationAddress(), eth.Type())
	}
	ip := header.IPv4(f[ethHeaderLen:])
	if !ip.IsValid(len(f)-ethHeaderLen) || !ip.IsChecksumValid() {
		t.Fatal("invalid IPv4 header or checksum")
	}
	if ip.TTL() != 64 || ip.Flags() != 0 || ip.FragmentOffset() != 0 || ip.ID() != 0xbeef || ip.HeaderLength() != 20 ||
		ip.TransportProtocol() != header.UDPProtocolNumber || f[ethHeaderLen+1] != 0 {
		t.Errorf("ttl %d flags %d id %#x hlen %d proto %d", ip.TTL(), ip.Flags(), ip.ID(), ip.HeaderLength(), ip.TransportProtocol())
	}
	u := header.UDP(ip.Payload())
	if u.SourcePort() != 53 || u.DestinationPort() != 40000 || int(u.Length()) != udpHeaderLen+len(payload) {
		t.Errorf("udp %d → %d length %d", u.SourcePort(), u.DestinationPort(), u.Length())
	}
	if !u.IsChecksumValid(ip.SourceAddress(), ip.DestinationAddress(), checksumOf(u.Payload())) {
		t.Error("invalid UDP checksum")
	}
	d, ok := parseUDP4(f, false)
	if !ok || !bytes.Equal(d.payload, payload) || d.srcPort != 53 || d.dstPort != 40000 || d.src != boxIP.As4() || d.dst != laptopIP.As4() {
		t.Errorf("parse of the built frame: %+v %v", d, ok)
	}
}

func checksumOf(b []byte) uint16 {
	var sum uint32
	for i := 0; i+1 < len(b); i += 2 {
		sum += uint32(b[i])<<8 | uint32(b[i+1])
	}
	if len(b)%2 == 1 {
		sum += uint32(b[len(b)-1]) << 8
	}
	for sum > 0xffff {
		sum = sum>>16 + sum&0xffff
	}
	return uint16(sum)
}

func TestUDPChecksums(t *testing.T) {
	r := newRig(t)
	pc := r.listenUDP(t, 53)

	bad := udpFrameTo(boxIP, 53, []byte("bad checksum"))
	bad[len(bad)-1] = '!' // "bad checksu!"
	r.send(t, bad)
	if _, _, err := readWithin(t, pc, 200*time.Millisecond); !isTimeout(err) {
		t.Fatalf("a datagram with a bad checksum was read (err %v)", err)
	}
	if st := r.lan.Stats().UDP; st.Malformed != 1 || st.Delivered != 0 {
		t.Errorf("counters after a bad checksum: %+v", st)
	}
	if _, ok := findEntry(r.leaks, func(e leaklog.Entry) bool { return e.Kind == "malformed" && e.DstPort == 53 }); !ok {
		t.Errorf("the bad datagram is not in the leak log: %+v", r.leaks.Entries())
	}

	none := udpFrameTo(boxIP, 53, []byte("no checksum"))
	none[udpFrameOverhead-2], none[udpFrameOverhead-1] = 0, 0
	r.send(t, none)
	if got, _, err := readWithin(t, pc, 5*time.Second); err != nil || string(got) != "no checksum" {
		t.Fatalf("a datagram without a checksum (allowed over IPv4): %q, %v", got, err)
	}

	// A frame the kernel vouched for carries a partial checksum: not checked.
	if r.lan.Inbound(link.NewFrame(bad, link.Meta{ChecksumOK: true})) {
		t.Fatal("handed to the netstack")
	}
	if got, _, err := readWithin(t, pc, 5*time.Second); err != nil || string(got) != "bad checksu!" {
		t.Fatalf("a datagram the kernel vouched for: %q, %v", got, err)
	}

	// A bad IPv4 header checksum is the filter's to drop.
	badIP := udpFrameTo(boxIP, 53, []byte("bad header"))
	badIP[ethHeaderLen+10] ^= 0xff
	// And a UDP length shorter than the IP payload is not served.
	short := udpFrameTo(boxIP, 53, []byte("short udp length"))
	short[ethHeaderLen+ipv4HeaderLen+5] -= 4
	for _, f := range [][]byte{badIP, short} {
		if r.lan.Inbound(link.NewFrame(f, link.Meta{ChecksumOK: true})) {
			t.Fatal("handed to the netstack")
		}
	}
	if _, _, err := readWithin(t, pc, 100*time.Millisecond); !isTimeout(err) {
		t.Fatalf("a malformed datagram was read (err %v)", err)
	}
	if st := r.lan.Stats().UDP; st.Malformed != 2 || st.Delivered != 2 {
		t.Errorf("counters: %+v", st)
	}
}

func TestUDPQueueFull(t *testing.T) {
	r := newRig(t)
	pc := r.listenUDP(t, 53)
	f := link.NewFrame(udpFrameTo(boxIP, 53, []byte("query")), link.Meta{})
	const extra = 10
	for range udpQueueLen + extra {
		if r.lan.Inbound(f) {
			t.Fatal("handed to the netstack")
		}
	}
	st := r.lan.Stats().UDP
	if st.Delivered != udpQueueLen || st.QueueFull != extra {
		t.Fatalf("counters %+v, want %d delivered and %d dropped", st, udpQueueLen, extra)
	}
	for i := range udpQueueLen {
		if got, _, err := readWithin(t, pc, time.Second); err != nil || string(got) != "query" {
			t.Fatalf("datagram %d: %q, %v", i, got, err)
		}
	}
	if _, _, err := readWithin(t, pc, 50*time.Millisecond); !isTimeout(err) {
		t.Fatalf("more datagrams than were queued: %v", err)
	}
	// Room again.
	r.lan.Inbound(f)
	if _, _, err := readWithin(t, pc, time.Second); err != nil {
		t.Fatal(err)
	}

	// Bytes bound the queue too.
	big := link.NewFrame(udpFrameTo(boxIP, 53, make([]byte, 1400)), link.Meta{})
	n := 0
	for r.lan.Inbound(big); r.lan.Stats().UDP.QueueFull == extra; r.lan.Inbound(big) {
		n++
	}
	if want := udpQueueBytes / 1400; n != want {
		t.Errorf("%d datagrams of 1400 bytes queued, want %d", n, want)
	}
}

func TestUDPDeadlines(t *testing.T) {
	r := newRig(t)
	pc := r.listenUDP(t, 53)

	start := time.Now()
	if _, _, err := readWithin(t, pc, 100*time.Millisecond); !isTimeout(err) || !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("read past its deadline: %v", err)
	}
	if d := time.Since(start); d < 90*time.Millisecond || d > 3*time.Second {
		t.Errorf("the read timed out after %v, want about 100ms", d)
	}
	// A deadline in the past fails at once, even with a datagram queued.
	r.lan.Inbound(link.NewFrame(udpFrameTo(boxIP, 53, []byte("q")), link.Meta{}))
	pc.SetReadDeadline(time.Now().Add(-time.Second))
	if _, _, err := pc.ReadFrom(make([]byte, 10)); !isTimeout(err) {
		t.Fatalf("read with a past deadline: %v", err)
	}
	// Cleared, the read gets the datagram.
	pc.SetReadDeadline(time.Time{})
	if _, _, err := pc.ReadFrom(make([]byte, 10)); err != nil {
		t.Fatal(err)
	}
	// A deadline moved later while a read waits is the one that counts.
	pc.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
	done := make(chan error, 1)
	go func() {
		_, _, err := pc.ReadFrom(make([]byte, 10))
		done <- err
	}()
	pc.SetReadDeadline(time.Now().Add(time.Hour))
	time.Sleep(150 * time.Millisecond)
	r.lan.Inbound(link.NewFrame(udpFrameTo(boxIP, 53, []byte("late")), link.Meta{}))
	if err := <-done; err != nil {
		t.Fatalf("the read should have waited for the later deadline: %v", err)
	}
	// A write past its deadline fails.
	pc.SetWriteDeadline(time.Now().Add(-time.Second))
	if _, err := pc.WriteTo([]byte("a"), &net.UDPAddr{IP: laptopIP.AsSlice(), Port: 40000}); !isTimeout(err) {
		t.Fatalf("write past its deadline: %v", err)
	}
}

func TestUDPCloseWhileReading(t *testing.T) {
	r := newRig(t)
	pc, err := r.lan.ListenUDP(53)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 2)
	for range 2 {
		go func() {
			_, _, err := pc.ReadFrom(make([]byte, 512))
			done <- err
		}()
	}
	time.Sleep(50 * time.Millisecond)
	if err := pc.Close(); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		select {
		case err := <-done:
			if !errors.Is(err, net.ErrClosed) {
				t.Fatalf("a read ended by Close returned %v, want net.ErrClosed", err)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("Close did not wake a waiting reader")
		}
	}
	if _, _, err := pc.ReadFrom(make([]byte, 512)); !errors.Is(err, net.ErrClosed) {
		t.Errorf("read after Close: %v", err)
	}
	if _, err := pc.WriteTo([]byte("a"), &net.UDPAddr{IP: laptopIP.AsSlice(), Port: 40000}); !errors.Is(err, net.ErrClosed) {
		t.Errorf("write after Close: %v", err)
	}
	if err := pc.Close(); !errors.Is(err, net.ErrClosed) {
		t.Errorf("second Close: %v", err)
	}
	if got := r.lan.Services(); len(got) != 0 {
		t.Errorf("services after Close: %v", got)
	}
	// The port is closed: a datagram is a closed-port drop, and it can open again.
	r.send(t, udpFrameTo(boxIP, 53, []byte("after close")))
	waitFor(t, "the closed-port drop", func() bool { return r.leaks.Counters().ByKind["closed-port"] > 0 })
	pc2 := r.listenUDP(t, 53)
	r.send(t, udpFrameTo(boxIP, 53, []byte("reopened")))
	if got, _, err := readWithin(t, pc2, 5*time.Second); err != nil || string(got) != "reopened" {
		t.Fatalf("after reopening: %q, %v", got, err)
	}
}

func TestUDPLANCloseClosesServices(t *testing.T) {
	r := newRig(t)
	pc := r.listenUDP(t, 53)
	done := make(chan error, 1)
	go func() {
		_, _, err := pc.ReadFrom(make([]byte, 512))
		done <- err
	}()
	r.lan.Close()
	select {
	case err := <-done:
		if !errors.Is(err, net.ErrClosed) {
			t.Fatalf("read ended by the LAN's Close: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the LAN's Close left a reader waiting")
	}
	if _, err := r.lan.ListenUDP(54); !errors.Is(err, net.ErrClosed) {
		t.Errorf("ListenUDP on a closed LAN: %v", err)
	}
}

func TestUDPPortConflicts(t *testing.T) {
	r := newRig(t)
	r.listenUDP(t, 53)
	if _, err := r.lan.ListenUDP(53); !errors.Is(err, syscall.EADDRINUSE) {
		t.Errorf("a second ListenUDP(53): %v", err)
	}
	if _, err := r.lan.ListenUDPBroadcast(53); !errors.Is(err, syscall.EADDRINUSE) {
		t.Errorf("ListenUDPBroadcast(53) beside ListenUDP(53): %v", err)
	}
	bc, err := r.lan.ListenUDPBroadcast(67)
	if err != nil {
		t.Fatal(err)
	}
	defer bc.Close()
	if _, err := r.lan.ListenUDP(67); !errors.Is(err, syscall.EADDRINUSE) {
		t.Errorf("ListenUDP(67) beside ListenUDPBroadcast(67): %v", err)
	}
	if _, err := r.lan.ListenUDP(0); err == nil {
		t.Error("ListenUDP(0) accepted")
	}
	if got := len(r.lan.Services()); got != 2 {
		t.Errorf("services %v, want udp/53 and udp/67", r.lan.Services())
	}
}

// TestUDPOtherAddressToLeakLog: with the box's DNS served without the netstack,
// a query to another resolver is still egress, recorded with the name it asked.
func TestUDPOtherAddressToLeakLog(t *testing.T) {
	r := newRig(t)
	pc := r.listenUDP(t, 53)
	query := []byte{0x12, 0x34, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0, 7, 't', 'r', 'a', 'c', 'k', 'e', 'r', 7, 'e', 'x', 'a', 'm', 'p', 'l', 'e', 0, 0, 1, 0, 1}
	r.send(t, udpFrameTo(netip.MustParseAddr("8.8.8.8"), 53, query))
	waitFor(t, "the query in the leak log", func() bool {
		_, ok := findEntry(r.leaks, func(e leaklog.Entry) bool {
			return e.Kind == "egress" && e.Dst == "8.8.8.8" && e.Name == "tracker.example"
		})
		return ok
	})
	if _, _, err := readWithin(t, pc, 50*time.Millisecond); !isTimeout(err) {
		t.Fatalf("the box's service read a query for another address (err %v)", err)
	}
	if st := r.lan.Stats().UDP; st.Delivered != 0 {
		t.Errorf("counters %+v", st)
	}
}

// TestUDPTripwire: what the service may send is bounded twice: WriteTo refuses
// addresses that are not devices on the LAN, and the link's outbound gate
// refuses any frame the LAN port must never send, whoever built it.
func TestUDPTripwire(t *testing.T) {
	r := newRig(t)
	pc := r.listenUDP(t, 53)
	for _, a := range []string{"8.8.8.8", "10.201.86.1", "10.201.86.255", "10.201.86.0", "255.255.255.255"} {
		if _, err := pc.WriteTo([]byte("x"), &net.UDPAddr{IP: net.ParseIP(a), Port: 40000}); !errors.Is(err, syscall.ENETUNREACH) {
			t.Errorf("WriteTo %s: %v", a, err)
		}
	}
	// A device the port never heard from has no known hardware address.
	if _, err := pc.WriteTo([]byte("x"), &net.UDPAddr{IP: net.ParseIP("10.201.86.77"), Port: 40000}); !errors.Is(err, syscall.EHOSTUNREACH) {
		t.Errorf("WriteTo a device never seen: %v", err)
	}
	if _, err := pc.WriteTo([]byte("x"), &net.TCPAddr{IP: laptopIP.AsSlice(), Port: 40000}); err == nil {
		t.Error("WriteTo a TCP address accepted")
	}
	if st := r.lan.Stats().UDP; st.Unsent != 6 || st.Sent != 0 {
		t.Errorf("counters %+v", st)
	}

	// Frames the link is handed whole pass the same gate as the netstack's.
	refused := r.lan.Stats().Link.TxRefused
	for _, f := range [][]byte{
		udpFrameTo(netip.MustParseAddr("8.8.8.8"), 53, []byte("to the internet")), // laptop's MAC as source: not the box's
		func() []byte { // from the box, to the internet
			f := make([]byte, udpFrameOverhead+4)
			putUDP4(f, udpFrame{dstMAC: [6]byte(laptopMAC), srcMAC: [6]byte(boxMAC), src: boxIP.As4(), dst: [4]byte{8, 8, 8, 8}, srcPort: 53, dstPort: 53})
			return f
		}(),
	} {
		r.lan.ep.WriteFrame(buffer.NewViewWithData(f))
	}
	if got := r.lan.Stats().Link.TxRefused - refused; got != 2 {
		t.Errorf("the outbound gate refused %d frames, want 2", got)
	}
}

// TestUDPRevealUnaffected: the reveal responder still answers TCP beyond
// the box while the box's UDP service bypasses the netstack.
func TestUDPRevealUnaffected(t *testing.T) {
	r := newRig(t)
	r.listenUDP(t, 53)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	conn, err := r.dial(ctx, netip.MustParseAddrPort("203.0.113.10:80"))
	if err != nil {
		t.Fatalf("the reveal responder should complete the handshake: %v", err)
	}
	conn.Write([]byte("GET / HTTP/1.1\r\nHost: pixel.example\r\n\r\n"))
	conn.Close()
	waitFor(t, "the revealed name", func() bool {
		_, ok := findEntry(r.leaks, func(e leaklog.Entry) bool { return e.Name == "pixel.example" })
		return ok
	})
}

// BenchmarkUDPService is the box's side of one query through a UDP service:
// the gate takes the datagram off the link, the service reads it and writes an
// answer of the same size into the link's queue (and the wire).
func BenchmarkUDPService(b *testing.B) {
	r := newRig(b)
	pc := r.listenUDP(b, 53)
	f := link.NewFrame(udpFrameTo(boxIP, 53, make([]byte, 40)), link.Meta{})
	r.lan.Inbound(f) // learn the laptop's hardware address
	buf := make([]byte, 2048)
	pc.ReadFrom(buf)
	b.ReportAllocs()
	for b.Loop() {
		r.lan.Inbound(f)
		n, from, err := pc.ReadFrom(buf)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := pc.WriteTo(buf[:n], from); err != nil {
			b.Fatal(err)
		}
	}
}
