package querylog

import (
	"context"
	"net"
	"net/netip"
	"strings"
	"testing"

	"github.com/coredns/caddy"
	"github.com/coredns/coredns/plugin"
	"github.com/coredns/coredns/plugin/pkg/dnstest"
	"github.com/coredns/coredns/plugin/test"
	"github.com/miekg/dns"

	ql "github.com/redoubt/redoubt/dns/querylog"
)

// answering returns a plugin that marks the query as o (if set) and answers rc.
func answering(o *ql.Outcome, class ql.Class, rc int) plugin.Handler {
	return plugin.HandlerFunc(func(ctx context.Context, w dns.ResponseWriter, r *dns.Msg) (int, error) {
		if o != nil {
			ql.Mark(ctx, *o, class)
		}
		if plugin.ClientWrite(rc) {
			m := new(dns.Msg)
			m.SetRcode(r, rc)
			w.WriteMsg(m)
		}
		return rc, nil
	})
}

func TestPlugin(t *testing.T) {
	local, captive := ql.Local, ql.Captive
	mac := [6]byte{2, 0x52, 0x44, 0, 0, 0x64}
	for _, tc := range []struct {
		name    string
		next    plugin.Handler
		outcome string
		class   string
	}{
		{"redoubt.home.arpa.", answering(&local, ql.LocalName, dns.RcodeSuccess), "local", "local"},
		{"captive.apple.com.", answering(&captive, ql.CaptiveProbe, dns.RcodeSuccess), "captive", "captive-probe"},
		// Unmarked: from the response code, the class from the table.
		{"safebrowsing.googleapis.com.", answering(nil, ql.Unknown, dns.RcodeNameError), "stopped", "browser"},
		{"x.example.", answering(nil, ql.Unknown, dns.RcodeRefused), "refused", "unknown"},
		{"x.example.", answering(nil, ql.Unknown, dns.RcodeFormatError), "malformed", "unknown"},
		{"y.example.", answering(nil, ql.Unknown, dns.RcodeServerFailure), "failed", "unknown"},
		{"z.example.", answering(nil, ql.Unknown, dns.RcodeSuccess), "local", "unknown"},
	} {
		log := ql.New(ql.Config{})
		var fresh []ql.Query
		p := &Plugin{Next: tc.next, Log: log, MACOf: func(netip.Addr) [6]byte { return mac }, OnFresh: func(q ql.Query) { fresh = append(fresh, q) }}
		m := new(dns.Msg)
		m.SetQuestion(tc.name, dns.TypeA)
		for range 2 {
			if _, err := p.ServeDNS(context.Background(), dnstest.NewRecorder(&test.ResponseWriter{}), m); err != nil {
				t.Fatal(err)
			}
		}
		e := log.Entries()
		if len(e) != 1 || e[0].Answer != tc.outcome || e[0].Class != tc.class || e[0].Count != 2 ||
			e[0].Client != "10.240.0.1" || e[0].MAC != "02:52:44:00:00:64" || e[0].Name != strings.TrimSuffix(tc.name, ".") {
			t.Errorf("%s: entries %+v, want %s/%s ×2 from 10.240.0.1", tc.name, e, tc.outcome, tc.class)
		}
		if len(fresh) != 1 {
			t.Errorf("%s: OnFresh called %d times, want once", tc.name, len(fresh))
		}
	}
}

type wrapped struct{ net.Addr }

func (w wrapped) Unwrap() net.Addr { return w.Addr }

type strAddr string

func (s strAddr) Network() string { return "udp" }
func (s strAddr) String() string  { return string(s) }

func TestClientIP(t *testing.T) {
	for _, tc := range []struct {
		addr net.Addr
		want string
	}{
		{&net.UDPAddr{IP: net.ParseIP("10.201.86.100"), Port: 5353}, "10.201.86.100"},
		{&net.TCPAddr{IP: net.ParseIP("10.201.86.101"), Port: 1}, "10.201.86.101"},
		{wrapped{&net.UDPAddr{IP: net.IPv4(10, 0, 0, 9), Port: 2}}, "10.0.0.9"},
		{strAddr("192.0.2.1:53"), "192.0.2.1"},
		{strAddr("nonsense"), "invalid IP"},
		{nil, "invalid IP"},
	} {
		if got := ClientIP(tc.addr).String(); got != tc.want {
			t.Errorf("ClientIP(%v) = %s, want %s", tc.addr, got, tc.want)
		}
	}
}

func TestSetup(t *testing.T) {
	for _, tc := range []struct {
		input string
		want  string
	}{
		{"querylog", ""},
		{"querylog 100", ""},
		{"querylog 1", "from 2"},
		{"querylog many", "from 2"},
		{"querylog 1 2", "Wrong argument count"},
		{"querylog {\n}", "no block"},
	} {
		err := setup(caddy.NewTestController("dns", tc.input))
		if (err == nil) != (tc.want == "") || (err != nil && !strings.Contains(err.Error(), tc.want)) {
			t.Errorf("%q: setup() = %v, want %q", tc.input, err, tc.want)
		}
	}
}
