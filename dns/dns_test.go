package dns

import (
	"context"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/redoubt/redoubt/dns/querylog"
)

var lanPrefix = netip.MustParsePrefix("10.201.86.1/24")

type testServer struct {
	*Server
	queries *querylog.Log
	pending *atomic.Bool
	addr    string // host:port for UDP and TCP
	done    chan error
}

// startServer runs a Server on loopback sockets (UDP and TCP on one port).
func startServer(t *testing.T, cfg Config) *testServer {
	t.Helper()
	var pc net.PacketConn
	var ln net.Listener
	for range 10 {
		var err error
		if ln, err = net.Listen("tcp", "127.0.0.1:0"); err != nil {
			t.Fatal(err)
		}
		if pc, err = net.ListenPacket("udp", ln.Addr().String()); err == nil {
			break
		}
		ln.Close()
	}
	if pc == nil {
		t.Fatal("no free port for both UDP and TCP")
	}
	ts := &testServer{queries: querylog.New(querylog.Config{}), pending: new(atomic.Bool), addr: ln.Addr().String(), done: make(chan error, 1)}
	ts.pending.Store(true)
	s, err := New(cfg, Deps{
		Logger:       slog.New(slog.NewTextHandler(tWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug})),
		LAN:          lanPrefix,
		SetupPending: ts.pending.Load,
		Queries:      ts.queries,
	})
	if err != nil {
		t.Fatal(err)
	}
	ts.Server = s
	go func() { ts.done <- s.Serve(pc, ln) }()
	t.Cleanup(func() {
		s.Close()
		select {
		case err := <-ts.done:
			if err != nil {
				t.Errorf("Serve: %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Error("Serve did not return after Close")
		}
	})
	return ts
}

type tWriter struct{ t *testing.T }

func (w tWriter) Write(b []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(b)))
	return len(b), nil
}

func (ts *testServer) exchange(t *testing.T, network string, m *dns.Msg) *dns.Msg {
	t.Helper()
	c := &dns.Client{Net: network, Timeout: 3 * time.Second, UDPSize: 4096}
	r, _, err := c.ExchangeContext(context.Background(), m, ts.addr)
	if err != nil {
		t.Fatalf("%s %v: %v", network, m.Question, err)
	}
	return r
}

func TestSmoke(t *testing.T) {
	ts := startServer(t, Config{})
	m := new(dns.Msg)
	m.SetQuestion("redoubt.home.arpa.", dns.TypeA)
	r := ts.exchange(t, "udp", m)
	t.Log(r)
	m.SetQuestion("tracker.example.", dns.TypeA)
	r = ts.exchange(t, "tcp", m)
	t.Log(r)
	t.Log(ts.queries.Entries())
}
