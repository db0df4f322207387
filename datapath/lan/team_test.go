package lan

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/netip"
	"testing"
	"time"

	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/adapters/gonet"
	"gvisor.dev/gvisor/pkg/tcpip/network/ipv4"
)

// loopbackTeam stands in for the tailnet node: team addresses lead to servers on
// this machine's loopback, so the relay's own work is what is tested.
type loopbackTeam struct {
	tcp, udp map[netip.AddrPort]string // team address → loopback address
}

func (f *loopbackTeam) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	to, ok := f.tcp[netip.MustParseAddrPort(addr)]
	if !ok {
		return nil, fmt.Errorf("no team device at %s", addr)
	}
	var d net.Dialer
	return d.DialContext(ctx, network, to)
}

func (f *loopbackTeam) ListenPacket(network, addr string) (net.PacketConn, error) {
	pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	return &mappedPC{PacketConn: pc, to: f.udp}, nil
}

// mappedPC writes to team addresses by their loopback stand-ins and reports
// replies as coming from the team address.
type mappedPC struct {
	net.PacketConn
	to map[netip.AddrPort]string
}

func (m *mappedPC) WriteTo(b []byte, addr net.Addr) (int, error) {
	to, ok := m.to[addr.(*net.UDPAddr).AddrPort()]
	if !ok {
		return 0, fmt.Errorf("no team device at %v", addr)
	}
	ua, _ := net.ResolveUDPAddr("udp4", to)
	return m.PacketConn.WriteTo(b, ua)
}

func (m *mappedPC) ReadFrom(b []byte) (int, net.Addr, error) {
	n, from, err := m.PacketConn.ReadFrom(b)
	if err != nil {
		return n, from, err
	}
	for team, lo := range m.to {
		if lo == from.String() {
			return n, net.UDPAddrFromAddrPort(team), nil
		}
	}
	return n, from, nil
}

func TestTeamRelay(t *testing.T) {
	r := newRig(t)
	// A team device's TCP echo and UDP echo, stood in for on loopback.
	tl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer tl.Close()
	go func() {
		for {
			c, err := tl.Accept()
			if err != nil {
				return
			}
			go func() { io.Copy(c, c); c.Close() }()
		}
	}()
	ul, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ul.Close()
	go func() {
		buf := make([]byte, 2048)
		for {
			n, from, err := ul.ReadFrom(buf)
			if err != nil {
				return
			}
			ul.WriteTo(append([]byte("echo "), buf[:n]...), from)
		}
	}()
	device := netip.MustParseAddr("100.64.0.7")
	team := &loopbackTeam{
		tcp: map[netip.AddrPort]string{netip.AddrPortFrom(device, 8080): tl.Addr().String()},
		udp: map[netip.AddrPort]string{netip.AddrPortFrom(device, 5000): ul.LocalAddr().String()},
	}
	if err := r.lan.SetTeam(team, netip.MustParseAddr("100.64.0.1"), []netip.Addr{device}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	// TCP from the laptop to the team device.
	c, err := r.dial(ctx, netip.AddrPortFrom(device, 8080))
	if err != nil {
		t.Fatalf("the laptop cannot reach the team device: %v", err)
	}
	c.SetDeadline(time.Now().Add(5 * time.Second))
	fmt.Fprint(c, "hello team")
	buf := make([]byte, 10)
	if _, err := io.ReadFull(c, buf); err != nil || string(buf) != "hello team" {
		t.Fatalf("relayed TCP: %q %v", buf, err)
	}
	c.Close()

	// UDP from the laptop to the team device, and its answer.
	laddr := tcpip.FullAddress{NIC: 1, Addr: tcpip.AddrFrom4(laptopIP.As4()), Port: 40001}
	raddr := tcpip.FullAddress{NIC: 1, Addr: tcpip.AddrFrom4(device.As4()), Port: 5000}
	uc, err := gonet.DialUDP(r.laptop, &laddr, &raddr, ipv4.ProtocolNumber)
	if err != nil {
		t.Fatal(err)
	}
	defer uc.Close()
	uc.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := uc.Write([]byte("ping")); err != nil {
		t.Fatal(err)
	}
	ubuf := make([]byte, 64)
	n, err := uc.Read(ubuf)
	if err != nil || string(ubuf[:n]) != "echo ping" {
		t.Fatalf("relayed UDP: %q %v", ubuf[:n], err)
	}

	// Another tailnet address is not the team's: stopped like anything else.
	if c, err := r.dial(ctx, netip.MustParseAddrPort("100.64.0.8:8080")); err == nil {
		c.SetDeadline(time.Now().Add(2 * time.Second))
		if _, err := c.Read(make([]byte, 1)); err == nil {
			t.Error("a non-team tailnet address was reached")
		}
		c.Close()
	}

	// The team leaves: the way closes.
	if err := r.lan.SetTeam(nil, netip.Addr{}, nil); err != nil {
		t.Fatal(err)
	}
	if c, err := r.dial(ctx, netip.AddrPortFrom(device, 8080)); err == nil {
		c.SetDeadline(time.Now().Add(2 * time.Second))
		fmt.Fprint(c, "x")
		if _, err := c.Read(make([]byte, 1)); err == nil {
			t.Error("the team device was reached after the team was closed")
		}
		c.Close()
	}
}
