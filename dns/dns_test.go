package dns

import (
	"context"
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"runtime"
	"slices"
	"strings"
	"sync"
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
	addr    string // host:port for UDP and TCP, on loopback
	done    chan error
}

// startServer runs a Server on loopback sockets (UDP and TCP on one port), as the
// daemon runs it on the LAN port's.
func startServer(t *testing.T, cfg Config) *testServer {
	t.Helper()
	pc, ln := loopbackPair(t)
	ts := &testServer{queries: querylog.New(querylog.Config{}), pending: new(atomic.Bool), addr: ln.Addr().String(), done: make(chan error, 1)}
	ts.pending.Store(true)
	s, err := New(cfg, Deps{
		Logger:       testLogger(t),
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

func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(tWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type tWriter struct{ t *testing.T }

func (w tWriter) Write(b []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(b)))
	return len(b), nil
}

func (ts *testServer) exchange(t *testing.T, network string, m *dns.Msg) *dns.Msg {
	t.Helper()
	c := &dns.Client{Net: network, Timeout: 3 * time.Second}
	r, _, err := c.ExchangeContext(context.Background(), m, ts.addr)
	if err != nil {
		t.Fatalf("%s %v: %v", network, m.Question, err)
	}
	if r.Id != m.Id {
		t.Fatalf("answer id %d, want %d", r.Id, m.Id)
	}
	return r
}

func query(name string, qtype uint16) *dns.Msg {
	m := new(dns.Msg)
	m.SetQuestion(name, qtype)
	return m
}

func rrStrings(rrs []dns.RR) []string {
	var out []string
	for _, rr := range rrs {
		out = append(out, strings.ReplaceAll(rr.String(), "\t", " "))
	}
	return out
}

func TestServe(t *testing.T) {
	ts := startServer(t, Config{})
	if err := ts.Names().Set("tailnet", "many.team", manyV6(32)); err != nil {
		t.Fatal(err)
	}
	type want struct {
		rcode  int
		aa     bool
		answer []string
		ns     int
	}
	for _, tc := range []struct {
		name  string
		qtype uint16
		want  want
	}{
		{"redoubt.home.arpa.", dns.TypeA, want{dns.RcodeSuccess, true, []string{"redoubt.home.arpa. 60 IN A 10.201.86.1"}, 0}},
		{"setup.home.arpa.", dns.TypeA, want{dns.RcodeSuccess, true, []string{"setup.home.arpa. 60 IN A 10.201.86.1"}, 0}},
		{"redoubt.home.arpa.", dns.TypeAAAA, want{dns.RcodeSuccess, true, nil, 1}},
		{"1.86.201.10.in-addr.arpa.", dns.TypePTR, want{dns.RcodeSuccess, true, []string{"1.86.201.10.in-addr.arpa. 60 IN PTR redoubt.home.arpa."}, 0}},
		{"nothing.home.arpa.", dns.TypeA, want{dns.RcodeNameError, true, nil, 1}},
		{"tracker.example.", dns.TypeA, want{dns.RcodeNameError, false, nil, 0}},
		{"use-application-dns.net.", dns.TypeA, want{dns.RcodeNameError, false, nil, 0}},
		{"use-application-dns.net.", dns.TypeAAAA, want{dns.RcodeNameError, false, nil, 0}},
		{"mask.icloud.com.", dns.TypeA, want{dns.RcodeNameError, false, nil, 0}},
		{"captive.apple.com.", dns.TypeA, want{dns.RcodeSuccess, false, []string{"captive.apple.com. 0 IN A 10.201.86.1"}, 0}},
		{"captive.apple.com.", dns.TypeAAAA, want{dns.RcodeSuccess, false, nil, 0}},
		{".", dns.TypeNS, want{dns.RcodeNameError, false, nil, 0}},
	} {
		for _, network := range []string{"udp", "tcp"} {
			r := ts.exchange(t, network, query(tc.name, tc.qtype))
			got := want{r.Rcode, r.Authoritative, rrStrings(r.Answer), len(r.Ns)}
			if got.rcode != tc.want.rcode || got.aa != tc.want.aa || !slices.Equal(got.answer, tc.want.answer) || got.ns != tc.want.ns || !r.RecursionAvailable {
				t.Errorf("%s %s %s: got %+v ra=%v, want %+v", network, tc.name, dns.TypeToString[tc.qtype], got, r.RecursionAvailable, tc.want)
			}
		}
	}

	// After setup, the captive probes are stopped like any other name, at once.
	ts.pending.Store(false)
	if r := ts.exchange(t, "udp", query("captive.apple.com.", dns.TypeA)); r.Rcode != dns.RcodeNameError {
		t.Errorf("captive probe after setup: %s", dns.RcodeToString[r.Rcode])
	}

	// EDNS: the OPT record comes back with DO as asked, the buffer capped at
	// 1232; the box signs nothing, so AD is never set.
	m := query("redoubt.home.arpa.", dns.TypeA)
	m.SetEdns0(4096, true)
	m.AuthenticatedData = true
	r := ts.exchange(t, "udp", m)
	if o := r.IsEdns0(); o == nil || !o.Do() || o.UDPSize() != 1232 || r.AuthenticatedData || len(r.Answer) != 1 {
		t.Errorf("EDNS answer: %v", r)
	}
	// A bad EDNS version gets BADVERS.
	m = query("redoubt.home.arpa.", dns.TypeA)
	m.SetEdns0(1232, false)
	m.IsEdns0().SetVersion(1)
	if r := ts.exchange(t, "udp", m); r.Rcode != dns.RcodeBadVers {
		t.Errorf("EDNS version 1: %s", dns.RcodeToString[r.Rcode])
	}

	// An answer too big for 512 bytes is truncated over UDP, whole over TCP and
	// with a large enough EDNS buffer.
	m = query("many.team.home.arpa.", dns.TypeAAAA)
	r = ts.exchange(t, "udp", m)
	if !r.Truncated || len(r.Answer) >= 32 {
		t.Errorf("UDP without EDNS: truncated %v, %d answers", r.Truncated, len(r.Answer))
	}
	if r = ts.exchange(t, "tcp", m); r.Truncated || len(r.Answer) != 32 {
		t.Errorf("TCP: truncated %v, %d answers", r.Truncated, len(r.Answer))
	}
	m.SetEdns0(1232, false)
	if r = ts.exchange(t, "udp", m); r.Truncated || len(r.Answer) != 32 {
		t.Errorf("UDP with EDNS 1232: truncated %v, %d answers", r.Truncated, len(r.Answer))
	}
	m = query("many.team.home.arpa.", dns.TypeAAAA)
	m.SetEdns0(600, false)
	r = ts.exchange(t, "udp", m)
	r.Compress = true
	if wire, _ := r.Pack(); !r.Truncated || len(wire) > 600 {
		t.Errorf("UDP with EDNS 600: truncated %v, %d bytes", r.Truncated, len(wire))
	}

	// What the box never serves.
	for _, tc := range []struct {
		network string
		m       *dns.Msg
		rcode   int
	}{
		{"tcp", query("home.arpa.", dns.TypeAXFR), dns.RcodeRefused},
		{"udp", query("home.arpa.", dns.TypeIXFR), dns.RcodeRefused},
		{"udp", func() *dns.Msg {
			m := query("version.bind.", dns.TypeTXT)
			m.Question[0].Qclass = dns.ClassCHAOS
			return m
		}(), dns.RcodeRefused},
		{"udp", func() *dns.Msg { m := query("home.arpa.", dns.TypeSOA); m.Opcode = dns.OpcodeNotify; return m }(), dns.RcodeNotImplemented},
		{"udp", func() *dns.Msg { m := query("home.arpa.", dns.TypeSOA); m.Opcode = dns.OpcodeUpdate; return m }(), dns.RcodeNotImplemented},
		{"tcp", func() *dns.Msg { m := query("home.arpa.", dns.TypeSOA); m.Opcode = dns.OpcodeUpdate; return m }(), dns.RcodeNotImplemented},
		{"udp", func() *dns.Msg {
			m := query("a.example.", dns.TypeA)
			m.Question = append(m.Question, dns.Question{Name: "b.example.", Qtype: dns.TypeA, Qclass: dns.ClassINET})
			return m
		}(), dns.RcodeFormatError},
	} {
		if r := ts.exchange(t, tc.network, tc.m); r.Rcode != tc.rcode {
			t.Errorf("%s %v opcode %d: %s, want %s", tc.network, tc.m.Question, tc.m.Opcode, dns.RcodeToString[r.Rcode], dns.RcodeToString[tc.rcode])
		}
	}

	// The query log has seen all of it, per name.
	byName := map[string]querylog.Entry{}
	for _, e := range ts.queries.Entries() {
		if e.Client != "127.0.0.1" {
			t.Errorf("entry from %s", e.Client)
		}
		byName[e.Name] = e
	}
	for name, want := range map[string]string{
		"redoubt.home.arpa":       "local/local",
		"tracker.example":         "stopped/unknown",
		"use-application-dns.net": "stopped/browser",
		"captive.apple.com":       "stopped/captive-probe", // the latest answer: after setup
		"home.arpa":               "refused/unknown",       // AXFR, IXFR, NOTIFY: never answered
		"nothing.home.arpa":       "local/local",
	} {
		e, ok := byName[name]
		if !ok {
			t.Errorf("%s is not in the query log", name)
			continue
		}
		if got := e.Answer + "/" + e.Class; got != want {
			t.Errorf("%s: %s, want %s", name, got, want)
		}
	}
	if e := byName["tracker.example"]; e.Count != 2 {
		t.Errorf("tracker.example counted %d times, want 2 (UDP and TCP)", e.Count)
	}
	c := ts.queries.Counters()
	if c.ByAnswer["malformed"] != 1 { // the two-question query, answered FORMERR before the chain
		t.Errorf("counters %+v", c)
	}
}

func manyV6(n int) []netip.Addr {
	var out []netip.Addr
	for i := range n {
		out = append(out, netip.AddrFrom16([16]byte{0xfd, 0x7a, 0x11, 0x5c, 0xa1, 0xe0, 15: byte(i + 1)}))
	}
	return out
}

// rawUDP sends b to the server and returns what comes back within wait, or nil.
func (ts *testServer) rawUDP(t *testing.T, b []byte, wait time.Duration) []byte {
	t.Helper()
	c, err := net.Dial("udp", ts.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Write(b); err != nil {
		t.Fatal(err)
	}
	c.SetReadDeadline(time.Now().Add(wait))
	buf := make([]byte, 65535)
	n, err := c.Read(buf)
	if err != nil {
		return nil
	}
	return buf[:n]
}

func TestMalformed(t *testing.T) {
	ts := startServer(t, Config{})
	header := func(id uint16, flags uint16, qd, an, ns, ar uint16) []byte {
		b := make([]byte, 12)
		for i, v := range []uint16{id, flags, qd, an, ns, ar} {
			binary.BigEndian.PutUint16(b[2*i:], v)
		}
		return b
	}
	loop := append(header(0x1234, 0x0100, 1, 0, 0, 0), 0xc0, 12, 0, 1, 0, 1) // a name pointing at itself
	for _, tc := range []struct {
		name string
		b    []byte
		want string // "formerr", "none"
	}{
		{"compression loop", loop, "formerr"},
		{"question cut short", append(header(0x1235, 0x0100, 1, 0, 0, 0), 7, 'e', 'x'), "formerr"},
		{"counts beyond the data", header(0x1236, 0x0100, 3, 9, 9, 9), "formerr"},
		{"label too long", append(append(header(0x1237, 0x0100, 1, 0, 0, 0), 64), make([]byte, 70)...), "formerr"},
		{"too short", []byte{1, 2, 3, 4, 5}, "none"},
		{"empty", nil, "none"},
		{"a response", header(0x1238, 0x8180, 0, 0, 0, 0), "none"},
	} {
		r := ts.rawUDP(t, tc.b, 300*time.Millisecond)
		switch tc.want {
		case "none":
			if r != nil {
				t.Errorf("%s: answered %x, want silence", tc.name, r)
			}
		case "formerr":
			if len(r) != 12 || r[0] != tc.b[0] || r[1] != tc.b[1] || r[2]&0x80 == 0 || r[3]&0x0f != dns.RcodeFormatError {
				t.Errorf("%s: answer %x, want a 12-byte FORMERR header with the query's id", tc.name, r)
			}
			if len(r) > len(tc.b) {
				t.Errorf("%s: answer larger than the query", tc.name)
			}
		}
	}
	// Still serving.
	if r := ts.exchange(t, "udp", query("redoubt.home.arpa.", dns.TypeA)); len(r.Answer) != 1 {
		t.Errorf("after the garbage: %v", r)
	}
	st := ts.Stats().Guard
	dev := ts.queries.Counters().Devices
	if st.Malformed != 4 || st.NotQuery != 3 || len(dev) != 1 || dev[0].Malformed != 7 {
		t.Errorf("guard %+v, devices %+v", st, dev)
	}
}

func TestTCPAbuse(t *testing.T) {
	if testing.Short() {
		t.Skip("waits for the server's TCP timeouts")
	}
	ts := startServer(t, Config{})
	dial := func() net.Conn {
		c, err := net.Dial("tcp", ts.addr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	// closedWithin reports whether the server closes c within d.
	closedWithin := func(c net.Conn, d time.Duration) bool {
		c.SetReadDeadline(time.Now().Add(d))
		_, err := io.ReadAll(c)
		return err == nil // EOF: closed by the server
	}
	// Eight slow clients from one address hold every connection it may have…
	var slow []net.Conn
	for range 8 {
		c := dial()
		c.Write([]byte{0}) // half a length, then nothing (slowloris)
		slow = append(slow, c)
	}
	time.Sleep(100 * time.Millisecond)
	// …so a ninth is closed at once.
	if !closedWithin(dial(), time.Second) {
		t.Error("a ninth connection from one client was kept")
	}
	// Another client is still served over TCP meanwhile.
	other, err := (&net.Dialer{LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 2)}}).Dial("tcp", ts.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	oc := &dns.Conn{Conn: other}
	oc.WriteMsg(query("redoubt.home.arpa.", dns.TypeA))
	other.SetReadDeadline(time.Now().Add(3 * time.Second))
	if r, err := oc.ReadMsg(); err != nil || len(r.Answer) != 1 {
		t.Errorf("another client over TCP: %v %v", r, err)
	}
	// The slow ones are closed by the read timeout (2 s).
	for i, c := range slow {
		if !closedWithin(c, 4*time.Second) {
			t.Errorf("slow connection %d still open", i)
		}
	}
	// A huge frame announced and never sent: closed too, holding nothing.
	c := dial()
	c.Write([]byte{0xff, 0xff, 1, 2, 3})
	if !closedWithin(c, 4*time.Second) {
		t.Error("connection with a 64 KiB frame announced was kept")
	}
	// A frame whose message does not parse: FORMERR, counted.
	c = dial()
	msg := []byte{0xab, 0xcd, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0, 0xc0, 12, 0, 1, 0, 1}
	c.Write(append([]byte{0, byte(len(msg))}, msg...))
	dc := &dns.Conn{Conn: c}
	c.SetReadDeadline(time.Now().Add(3 * time.Second))
	if r, err := dc.ReadMsg(); err != nil || r.Rcode != dns.RcodeFormatError {
		t.Errorf("malformed message over TCP: %v %v", r, err)
	}
	st := ts.Stats().Guard
	if st.TCPRefused < 1 || st.Malformed != 1 {
		t.Errorf("guard %+v", st)
	}
}

// TestFlood: one client floods the server over UDP; another is still answered.
func TestFlood(t *testing.T) {
	ts := startServer(t, Config{})
	flooder, err := net.Dial("udp", ts.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer flooder.Close()
	var sent atomic.Uint64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for i := range 2 {
		wg.Go(func() {
			for n := 0; ; n++ {
				select {
				case <-stop:
					return
				default:
				}
				m := query(fmt.Sprintf("f%d-%d.flood.example.", i, n), dns.TypeA)
				b, _ := m.Pack()
				flooder.Write(b)
				sent.Add(1)
			}
		})
	}
	// Drain the flooder's answers so its socket does not push back.
	go io.Copy(io.Discard, flooder)
	time.Sleep(200 * time.Millisecond)
	// The neighbour asks as a stub resolver does: up to three tries.
	c := &dns.Client{Net: "udp", Timeout: 500 * time.Millisecond, Dialer: &net.Dialer{LocalAddr: &net.UDPAddr{IP: net.IPv4(127, 0, 0, 2)}}}
	var ok, maxG int
	for range 50 {
		for try := 0; try < 3; try++ {
			r, _, err := c.Exchange(query("redoubt.home.arpa.", dns.TypeA), ts.addr)
			if err == nil && len(r.Answer) == 1 {
				ok++
				break
			}
		}
		if q := ts.Stats().Guard.Queued; q > 1024 {
			t.Errorf("queue at %d, beyond its bound", q)
		}
		maxG = max(maxG, runtime.NumGoroutine())
	}
	close(stop)
	wg.Wait()
	t.Logf("flood: %d datagrams sent; neighbour answered %d/50; at most %d goroutines; guard %+v",
		sent.Load(), ok, maxG, ts.Stats().Guard)
	// Starved, the neighbour would get next to nothing. Its questions that go
	// unanswered are lost with the flood in the kernel's full socket buffer,
	// before the guard sees them: how many depends on how busy the machine is
	// (usually 1 to 10 in 50).
	if ok < 25 {
		t.Errorf("the neighbour got %d/50 answers during the flood", ok)
	}
	if maxG > 100 {
		t.Errorf("%d goroutines during the flood", maxG)
	}
	// Still serving afterwards, once the flood's backlog is worked off.
	c.Timeout = time.Second
	var r *dns.Msg
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); {
		if r, _, err = c.Exchange(query("redoubt.home.arpa.", dns.TypeA), ts.addr); err == nil {
			break
		}
	}
	if err != nil || len(r.Answer) != 1 {
		t.Errorf("after the flood: %v %v", r, err)
	}
	// The log stayed bounded.
	if n := len(ts.queries.Entries()); n > querylog.DefaultEntries {
		t.Errorf("%d query-log entries", n)
	}
}

func TestConfig(t *testing.T) {
	def := Config{}.WithDefaults()
	if def.Domain != "home.arpa" || def.Name != "redoubt" || !slices.Equal(def.Aliases, []string{"setup"}) || def.QueryLog != 2048 {
		t.Errorf("defaults %+v", def)
	}
	if err := def.Validate(); err != nil {
		t.Errorf("defaults invalid: %v", err)
	}
	if got := (Config{Aliases: []string{}}).WithDefaults(); len(got.Aliases) != 0 {
		t.Errorf("an explicit empty alias list became %q", got.Aliases)
	}
	for _, tc := range []struct {
		mod  func(*Config)
		want string
	}{
		{func(c *Config) { c.Domain = "local" }, `dns.domain "local": .local belongs to multicast DNS`},
		{func(c *Config) { c.Domain = "box.local." }, `dns.domain "box.local.": .local`},
		{func(c *Config) { c.Domain = "86.201.10.in-addr.arpa" }, "reverse-lookup"},
		{func(c *Config) { c.Domain = "my home" }, `dns.domain "my home"`},
		{func(c *Config) { c.Name = "re.doubt" }, `dns.name "re.doubt"`},
		{func(c *Config) { c.Aliases = []string{"ok", "not ok"} }, `dns.aliases "not ok"`},
		{func(c *Config) { c.Aliases = []string{"Redoubt"} }, "already dns.name"},
		{func(c *Config) { c.Aliases = []string{"a", "A"} }, "listed twice"},
		{func(c *Config) { c.Aliases = make([]string, 17) }, "at most 16"},
		{func(c *Config) { c.QueryLog = 10 }, "dns.query_log 10: want from 64 to 65536"},
	} {
		c := Config{}.WithDefaults()
		tc.mod(&c)
		err := c.Validate()
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: Validate() = %v, want %q", c, err, tc.want)
		}
	}
}

func TestReconfig(t *testing.T) {
	ts := startServer(t, Config{})
	if err := ts.Reconfig(Config{Domain: "lan.example", Name: "box"}); err != nil {
		t.Fatal(err)
	}
	if r := ts.exchange(t, "udp", query("box.lan.example.", dns.TypeA)); len(r.Answer) != 1 {
		t.Errorf("new name: %v", r)
	}
	if r := ts.exchange(t, "udp", query("redoubt.home.arpa.", dns.TypeA)); r.Rcode != dns.RcodeNameError {
		t.Errorf("old name: %v", r)
	}
	if err := ts.Reconfig(Config{QueryLog: 100}); err == nil || !strings.Contains(err.Error(), "restart") {
		t.Errorf("query_log change: %v", err)
	}
	if err := ts.Reconfig(Config{Domain: "local"}); err == nil {
		t.Error("bad config applied")
	}
}

func TestNewNeeds(t *testing.T) {
	q := querylog.New(querylog.Config{})
	for _, tc := range []struct {
		deps Deps
		want string
	}{
		{Deps{LAN: lanPrefix, SetupPending: func() bool { return false }}, "Queries"},
		{Deps{LAN: lanPrefix, Queries: q}, "SetupPending"},
		{Deps{LAN: netip.MustParsePrefix("fd00::1/64"), Queries: q, SetupPending: func() bool { return false }}, "not IPv4"},
	} {
		if _, err := New(Config{}, tc.deps); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("New(%+v) = %v, want %q", tc.deps, err, tc.want)
		}
	}
}

// TestCloseStopsEverything: Serve returns after Close, leaving no goroutines, and
// Close before Serve is fine.
func TestCloseStopsEverything(t *testing.T) {
	before := runtime.NumGoroutine()
	q := querylog.New(querylog.Config{})
	deps := Deps{Logger: testLogger(t), LAN: lanPrefix, SetupPending: func() bool { return false }, Queries: q}
	for range 3 {
		s, err := New(Config{}, deps)
		if err != nil {
			t.Fatal(err)
		}
		pc, ln := loopbackPair(t)
		done := make(chan error)
		go func() { done <- s.Serve(pc, ln) }()
		c := &dns.Client{Net: "tcp", Timeout: 2 * time.Second}
		if _, _, err := c.Exchange(query("redoubt.home.arpa.", dns.TypeA), ln.Addr().String()); err != nil {
			t.Fatal(err)
		}
		s.Close()
		if err := <-done; err != nil {
			t.Errorf("Serve after Close: %v", err)
		}
		if _, err := net.ListenPacket("udp", pc.LocalAddr().String()); err != nil {
			t.Errorf("UDP socket not closed: %v", err)
		}
	}
	s, err := New(Config{}, deps)
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	pc, ln := loopbackPair(t)
	if err := s.Serve(pc, ln); err != nil {
		t.Errorf("Serve after Close: %v", err)
	}
	if _, err := ln.Accept(); !errors.Is(err, net.ErrClosed) {
		t.Errorf("listener open after Serve on a closed server: %v", err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > before && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	if n := runtime.NumGoroutine(); n > before {
		buf := make([]byte, 1<<20)
		t.Errorf("%d goroutines left (had %d):\n%s", n, before, buf[:runtime.Stack(buf, true)])
	}
}

// TestNoGlobalFlags: embedding CoreDNS must not put its command-line flags on the
// process's flag set (coremain does; Redoubt never imports it), or they would show
// up for users.
func TestNoGlobalFlags(t *testing.T) {
	for _, name := range []string{"conf", "dns.port", "p", "pidfile", "plugins", "version", "quiet"} {
		if flag.Lookup(name) != nil {
			t.Errorf("the flag -%s is registered on the global flag set", name)
		}
	}
}
