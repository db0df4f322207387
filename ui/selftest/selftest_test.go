package selftest

import (
	"context"
	"crypto/tls"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"
	"time"
)

func TestNewPlan(t *testing.T) {
	now := time.Now()
	for _, bad := range []struct {
		id, by string
		extra  []netip.Addr
	}{
		{"short", ByBrowser, nil},
		{"has spaces in it", ByBrowser, nil},
		{"abcdef0123456789", "someone", nil},
		{"abcdef0123456789", ByCommand, make([]netip.Addr, MaxExtraResolvers+1)},
	} {
		if _, err := NewPlan(bad.id, now, bad.by, bad.extra); err == nil {
			t.Errorf("NewPlan(%q, %q, %d extra) was accepted", bad.id, bad.by, len(bad.extra))
		}
	}
	b, err := NewPlan("abcdef0123456789", now, ByBrowser, nil)
	if err != nil {
		t.Fatal(err)
	}
	c, err := NewPlan("abcdef0123456789", now, ByCommand, []netip.Addr{netip.MustParseAddr("203.0.113.53"), netip.MustParseAddr("8.8.8.8")})
	if err != nil {
		t.Fatal(err)
	}
	ids := func(p Plan) string {
		var out []string
		for _, pr := range p.Probes {
			out = append(out, pr.ID)
			if pr.Way == "" || pr.How == "" || pr.Why == "" {
				t.Errorf("probe %s is not explained", pr.ID)
			}
		}
		return strings.Join(out, " ")
	}
	if got := ids(b); got != "http https doh-ip doh-name name stun ipv6" {
		t.Errorf("the browser's probes: %s", got)
	}
	if got := ids(c); got != "http https doh-ip name stun ipv6 dns-udp-8.8.8.8 dns-udp-9.9.9.9 dns-udp-203.0.113.53" {
		t.Errorf("the command's probes: %s", got)
	}
	if pr, _ := b.Probe("name"); pr.Name != "rdt-abcdef0123456789.example.com" || !strings.Contains(pr.URL, pr.Name) {
		t.Errorf("the name probe: %+v", pr)
	}
	if pr, _ := c.Probe("dns-udp-8.8.8.8"); pr.Question != QueryName("abcdef0123456789") || pr.Name != "" {
		t.Errorf("a DNS probe asks for the run's name, and is matched by address: %+v", pr)
	}
}

func TestMatch(t *testing.T) {
	start := time.Now()
	p, _ := NewPlan("abcdef0123456789", start, ByCommand, nil)
	laptop := netip.MustParseAddr("10.201.86.254")
	at := start.Add(time.Second)
	records := []Record{
		{Source: "leak log", Kind: "egress", Client: "10.201.86.254", Proto: "tcp", Addr: "1.1.1.1:80", Count: 1, Last: at},
		{Source: "leak log", Kind: "egress", MAC: "02:52:44:00:00:64", Proto: "udp", Addr: "8.8.8.8:53", Count: 1, Last: at},
		{Source: "query log", Kind: "name refused", Client: "10.201.86.254", Name: QueryName("abcdef0123456789"), Count: 1, Last: at},
		// Before the run, from another device, or elsewhere: not evidence.
		{Source: "leak log", Kind: "egress", Client: "10.201.86.254", Proto: "tcp", Addr: "1.1.1.1:443", Count: 1, Last: start.Add(-time.Hour)},
		{Source: "leak log", Kind: "egress", Client: "10.201.86.7", Proto: "udp", Addr: "9.9.9.9:53", Count: 1, Last: at},
		{Source: "leak log", Kind: "egress", Client: "10.201.86.254", Proto: "udp", Addr: "74.125.250.129:443", Count: 1, Last: at},
	}
	outcomes := []Outcome{
		{Probe: "http", Sent: true, Detail: "reset"},
		{Probe: "https", Sent: true, Detail: "no answer"},
		{Probe: "doh-ip", Sent: true, Answered: true, Detail: "a TLS server answered"},
		{Probe: "name", Sent: true, Detail: "NXDOMAIN"},
		{Probe: "ipv6", Sent: false, Detail: "no route"},
		{Probe: "dns-udp-8.8.8.8", Sent: true, Detail: "no answer"},
		{Probe: "dns-udp-9.9.9.9", Sent: true, Detail: "no answer"},
	}
	want := map[string]string{
		"http": Stopped, "https": Unclear, "doh-ip": GotOut, "name": Stopped, "stun": Waiting,
		"ipv6": StoppedNoSend, "dns-udp-8.8.8.8": Stopped, "dns-udp-9.9.9.9": Unclear,
	}
	res := Match(p, laptop, "02:52:44:00:00:64", outcomes, records)
	for _, r := range res {
		if r.Verdict != want[r.Probe.ID] {
			t.Errorf("%s: %s (%s), want %s", r.Probe.ID, r.Verdict, r.Says, want[r.Probe.ID])
		}
	}
	if sum, safe := Summary(res); safe || !strings.Contains(sum, "got through") {
		t.Errorf("summary: %s %v", sum, safe)
	}
	// All stopped: safe.
	var all []Outcome
	for _, pr := range p.Probes {
		all = append(all, Outcome{Probe: pr.ID, Sent: pr.ID != "ipv6"})
		records = append(records, Record{Source: "leak log", Client: "10.201.86.254", Proto: pr.Proto, Addr: pr.Addr, Last: at})
	}
	if sum, safe := Summary(Match(p, laptop, "", all, records)); !safe || !strings.Contains(sum, "nothing got out") {
		t.Errorf("all stopped: %s %v", sum, safe)
	}
}

// TestSend checks the laptop's probes against servers on loopback: an answer
// counts as getting out; a connection the other side closes or resets without
// an answer does not.
func TestSend(t *testing.T) {
	web := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("hi")) }))
	defer web.Close()
	tlsWeb := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	defer tlsWeb.Close()
	// A box-like responder: it completes the handshake, reads, and resets.
	rst, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer rst.Close()
	go func() {
		for {
			c, err := rst.Accept()
			if err != nil {
				return
			}
			c.Read(make([]byte, 4096))
			c.(*net.TCPConn).SetLinger(0)
			c.Close()
		}
	}()
	echo, _ := net.ListenPacket("udp", "127.0.0.1:0")
	defer echo.Close()
	go func() {
		buf := make([]byte, 1500)
		for {
			n, a, err := echo.ReadFrom(buf)
			if err != nil {
				return
			}
			echo.WriteTo(buf[:n], a)
		}
	}()
	silent, _ := net.ListenPacket("udp", "127.0.0.1:0")
	defer silent.Close()
	closed, _ := net.Listen("tcp", "127.0.0.1:0")
	closedAddr := closed.Addr().String()
	closed.Close()

	host := func(u string) string { return strings.TrimPrefix(strings.TrimPrefix(u, "http://"), "https://") }
	probes := []Probe{
		{ID: "http", Proto: "tcp", Addr: host(web.URL), URL: web.URL + "/x"},
		{ID: "https", Proto: "tcp", Addr: host(tlsWeb.URL)},
		{ID: "doh-ip", Proto: "tcp", Addr: rst.Addr().String()},
		{ID: "stun", Proto: "udp", Addr: echo.LocalAddr().String()},
		{ID: "dns-udp-a", Proto: "udp", Addr: silent.LocalAddr().String(), Question: "rdt-x.example.com"},
		{ID: "ipv6", Proto: "tcp", Addr: closedAddr},
	}
	start := time.Now()
	got := map[string]Outcome{}
	for _, o := range Send(context.Background(), probes) {
		got[o.Probe] = o
	}
	if d := time.Since(start); d > probeTimeout+time.Second {
		t.Errorf("Send took %v", d)
	}
	for id, answered := range map[string]bool{"http": true, "https": true, "doh-ip": false, "stun": true, "dns-udp-a": false, "ipv6": true} {
		if o := got[id]; o.Answered != answered || o.Detail == "" {
			t.Errorf("%s: %+v, want answered %v", id, o, answered)
		}
	}
	_ = tls.VersionTLS12
}

func TestGatewayIn(t *testing.T) {
	table := "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n" +
		"eth0\t0056C90A\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n" +
		"eth0\t00000000\t0156C90A\t0003\t0\t0\t0\t00000000\t0\t0\t0\n"
	if a, err := gatewayIn(table); err != nil || a != netip.MustParseAddr("10.201.86.1") {
		t.Errorf("gateway: %v %v", a, err)
	}
	if _, err := gatewayIn(table[:strings.LastIndex(table[:len(table)-1], "\n")+1]); err == nil {
		t.Error("no default route: no error")
	}
}
