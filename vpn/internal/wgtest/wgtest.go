// Package wgtest is an in-process VPN server for the vpn room's tests: a
// wireguard-go device on a loopback UDP port whose inside is wireguard-go's own
// tun/netstack (an implementation independent of the box's), serving HTTP and DNS
// at 10.66.0.1. It can be stopped and started again on the same port with the
// same key, like a VPN provider's server going away and coming back. Only tests
// in the vpn room import it.
package wgtest

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"sync"
	"testing"
	"time"

	"golang.org/x/net/dns/dnsmessage"
	"golang.zx2c4.com/wireguard/conn"
	"golang.zx2c4.com/wireguard/device"
	"golang.zx2c4.com/wireguard/tun/netstack"

	"github.com/redoubt/redoubt/vpn/wgconfig"
)

// Addresses inside the test tunnel.
var (
	ServerAddr = netip.MustParseAddr("10.66.0.1")
	ClientAddr = netip.MustParseAddr("10.66.0.2")
)

// Server is the in-process VPN server.
type Server struct {
	t         testing.TB
	key       wgconfig.PrivateKey
	clientPub wgconfig.Key
	port      int

	mu   sync.Mutex
	dev  *device.Device
	net  *netstack.Net
	srvs []io.Closer
	// Hits counts HTTP requests by path.
	hits map[string]int
}

// New starts a server for the client whose public key is clientPub.
func New(t testing.TB, clientPub wgconfig.Key) *Server {
	t.Helper()
	key, err := wgconfig.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	s := &Server{t: t, key: key, clientPub: clientPub, hits: map[string]int{}}
	s.Start()
	t.Cleanup(s.Stop)
	return s
}

// ClientConfig is the configuration a client with key priv uses for this server.
func (s *Server) ClientConfig(priv wgconfig.PrivateKey) *wgconfig.Config {
	return &wgconfig.Config{
		PrivateKey: priv,
		Addresses:  []netip.Prefix{netip.PrefixFrom(ClientAddr, 32)},
		DNS:        []netip.Addr{ServerAddr},
		MTU:        1420,
		Peer: wgconfig.Peer{
			PublicKey:  s.key.Public(),
			Endpoint:   s.Endpoint(),
			AllowedIPs: []netip.Prefix{netip.MustParsePrefix("0.0.0.0/0")},
			Keepalive:  25 * time.Second,
		},
	}
}

// Endpoint is the server's UDP address.
func (s *Server) Endpoint() netip.AddrPort {
	return netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), uint16(s.port))
}

// Hits returns how many requests reached path.
func (s *Server) Hits(path string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.hits[path]
}

// Start brings the server up (again, on the same port).
func (s *Server) Start() {
	s.t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.dev != nil {
		return
	}
	tun, tnet, err := netstack.CreateNetTUN([]netip.Addr{ServerAddr}, nil, 1420)
	if err != nil {
		s.t.Fatal(err)
	}
	dev := device.NewDevice(tun, conn.NewStdNetBind(), device.NewLogger(device.LogLevelSilent, ""))
	pk := s.key.Bytes()
	uapi := fmt.Sprintf("private_key=%x\nlisten_port=%d\npublic_key=%x\nallowed_ip=%s/32\n", pk[:], s.port, s.clientPub[:], ClientAddr)
	if err := dev.IpcSet(uapi); err != nil {
		s.t.Fatalf("configuring the test VPN server: %v", err)
	}
	if err := dev.Up(); err != nil {
		s.t.Fatal(err)
	}
	if s.port == 0 {
		get, _ := dev.IpcGet()
		for _, line := range splitLines(get) {
			if v, ok := cut(line, "listen_port="); ok {
				s.port, _ = strconv.Atoi(v)
			}
		}
	}
	s.dev, s.net = dev, tnet
	s.serve()
}

// Stop takes the server down: nothing answers on its port.
func (s *Server) Stop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, c := range s.srvs {
		c.Close()
	}
	s.srvs = nil
	if s.dev != nil {
		s.dev.Close()
		s.dev = nil
	}
}

// serve runs HTTP on port 80 (/ip answers the client's address, /bytes/N sends N
// bytes, anything else "hello") and DNS on port 53 (every name under .test has
// ServerAddr; others are NXDOMAIN; "." NS answers empty).
func (s *Server) serve() {
	ln, err := s.net.ListenTCPAddrPort(netip.AddrPortFrom(ServerAddr, 80))
	if err != nil {
		s.t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		s.hits[r.URL.Path]++
		s.mu.Unlock()
		switch {
		case r.URL.Path == "/ip":
			host, _, _ := net.SplitHostPort(r.RemoteAddr)
			fmt.Fprintf(w, "%s\n", host)
		case len(r.URL.Path) > 7 && r.URL.Path[:7] == "/bytes/":
			n, _ := strconv.ParseInt(r.URL.Path[7:], 10, 64)
			buf := make([]byte, 64<<10)
			for n > 0 {
				m, err := w.Write(buf[:min(int64(len(buf)), n)])
				if err != nil {
					return
				}
				n -= int64(m)
			}
		default:
			io.WriteString(w, "hello from the VPN\n")
		}
	})
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go srv.Serve(ln)
	s.srvs = append(s.srvs, srv)
	pc, err := s.net.ListenUDPAddrPort(netip.AddrPortFrom(ServerAddr, 53))
	if err != nil {
		s.t.Fatal(err)
	}
	s.srvs = append(s.srvs, pc)
	go func() {
		buf := make([]byte, 1500)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			if out := answer(buf[:n]); out != nil {
				pc.WriteTo(out, from)
			}
		}
	}()
}

func answer(q []byte) []byte {
	var m dnsmessage.Message
	if m.Unpack(q) != nil || len(m.Questions) != 1 {
		return nil
	}
	qu := m.Questions[0]
	resp := dnsmessage.Message{Header: dnsmessage.Header{ID: m.ID, Response: true, RecursionAvailable: true}, Questions: m.Questions}
	name := qu.Name.String()
	switch {
	case name == ".":
	case len(name) > 6 && name[len(name)-6:] == ".test." && qu.Type == dnsmessage.TypeA:
		resp.Answers = []dnsmessage.Resource{{
			Header: dnsmessage.ResourceHeader{Name: qu.Name, Type: dnsmessage.TypeA, Class: dnsmessage.ClassINET, TTL: 60},
			Body:   &dnsmessage.AResource{A: ServerAddr.As4()},
		}}
	case len(name) > 6 && name[len(name)-6:] == ".test.":
	default:
		resp.RCode = dnsmessage.RCodeNameError
	}
	out, _ := resp.Pack()
	return out
}

// WaitHandshake waits until the server has a session with the client.
func (s *Server) WaitHandshake(ctx context.Context) error {
	for {
		s.mu.Lock()
		dev := s.dev
		s.mu.Unlock()
		if dev != nil {
			get, _ := dev.IpcGet()
			for _, line := range splitLines(get) {
				if v, ok := cut(line, "last_handshake_time_sec="); ok && v != "0" {
					return nil
				}
			}
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func splitLines(s string) []string {
	var out []string
	start := 0
	for i := 0; i < len(s); i++ {
		if s[i] == '\n' {
			out = append(out, s[start:i])
			start = i + 1
		}
	}
	return append(out, s[start:])
}

func cut(s, prefix string) (string, bool) {
	if len(s) >= len(prefix) && s[:len(prefix)] == prefix {
		return s[len(prefix):], true
	}
	return "", false
}
