package egress

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"
)

// pipeDialer "dials" by handing out one end of a pipe whose other end answers
// every HTTP request with 200, and records what it was asked.
type pipeDialer struct{ dialed []string }

func (p *pipeDialer) DialContext(_ context.Context, network, address string) (net.Conn, error) {
	p.dialed = append(p.dialed, network+" "+address)
	c, s := net.Pipe()
	go func() {
		buf := make([]byte, 4096)
		s.Read(buf)
		s.Write([]byte("HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok"))
		s.Close()
	}()
	return c, nil
}
func (p *pipeDialer) ListenPacket(context.Context, string, string) (net.PacketConn, error) {
	return nil, errors.New("no")
}
func (p *pipeDialer) LookupNetIP(context.Context, string) ([]netip.Addr, error) {
	return []netip.Addr{netip.MustParseAddr("192.0.2.1")}, nil
}

func TestSwitchFailsClosed(t *testing.T) {
	s := NewSwitch("no VPN is configured")
	ctx := context.Background()
	if _, err := s.DialContext(ctx, "tcp", "example.com:443"); !errors.Is(err, ErrNoEgress) || !strings.Contains(err.Error(), "no VPN is configured") {
		t.Errorf("dial with no tunnel: %v", err)
	}
	if _, err := s.ListenPacket(ctx, "udp", ":0"); !errors.Is(err, ErrNoEgress) {
		t.Errorf("listen with no tunnel: %v", err)
	}
	if _, err := s.LookupNetIP(ctx, "example.com"); err == nil || !strings.Contains(err.Error(), "not allowed out") {
		t.Errorf("lookup with no tunnel: %v", err)
	}
	p := &pipeDialer{}
	s.Set(p, "")
	c := HTTPClient(s, 5*time.Second)
	resp, err := c.Get("http://example.com/x")
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("through the switch: %v", err)
	}
	resp.Body.Close()
	if len(p.dialed) != 1 || p.dialed[0] != "tcp example.com:80" {
		t.Errorf("dialed %v", p.dialed)
	}
	s.Set(nil, "the VPN is down")
	if _, err := c.Get("http://example.com/y"); err == nil || !strings.Contains(err.Error(), "the VPN is down") {
		t.Errorf("after the tunnel went away: %v", err)
	}
	if tr := Transport(s); tr.Proxy != nil {
		t.Error("the transport takes proxies from the environment")
	}
}
