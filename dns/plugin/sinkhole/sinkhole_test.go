package sinkhole

import (
	"context"
	"strings"
	"testing"

	"github.com/coredns/caddy"
	"github.com/coredns/coredns/plugin/pkg/dnstest"
	"github.com/coredns/coredns/plugin/test"
	"github.com/miekg/dns"

	"github.com/redoubt/redoubt/dns/querylog"
)

func TestPlugin(t *testing.T) {
	for _, tc := range []struct {
		rcode int // the plugin's setting
		name  string
		qtype uint16
		want  int
	}{
		{dns.RcodeNameError, "tracker.example.", dns.TypeA, dns.RcodeNameError},
		{dns.RcodeNameError, "tracker.example.", dns.TypeHTTPS, dns.RcodeNameError},
		{dns.RcodeNameError, ".", dns.TypeNS, dns.RcodeNameError},
		{dns.RcodeNameError, "use-application-dns.net.", dns.TypeA, dns.RcodeNameError},
		{0, "tracker.example.", dns.TypeA, dns.RcodeNameError},
		{dns.RcodeRefused, "tracker.example.", dns.TypeA, dns.RcodeRefused},
		{dns.RcodeRefused, "Use-Application-DNS.net.", dns.TypeAAAA, dns.RcodeNameError},
	} {
		p := &Plugin{Rcode: tc.rcode}
		m := new(dns.Msg)
		m.SetQuestion(tc.name, tc.qtype)
		m.RecursionDesired = true
		var note querylog.Note
		rec := dnstest.NewRecorder(&test.ResponseWriter{})
		rc, err := p.ServeDNS(querylog.NewContext(context.Background(), &note), rec, m)
		if err != nil {
			t.Fatal(err)
		}
		r := rec.Msg
		if rc != tc.want || r == nil || r.Rcode != tc.want || !r.Response || !r.RecursionAvailable || !r.RecursionDesired ||
			r.Authoritative || len(r.Answer)+len(r.Ns)+len(r.Extra) != 0 || r.Id != m.Id || r.Question[0] != m.Question[0] {
			t.Errorf("%s %s (rcode %d): got %d %v, want %s", tc.name, dns.TypeToString[tc.qtype], tc.rcode, rc, r, dns.RcodeToString[tc.want])
		}
		if o, ok := note.Outcome(); !ok || o != querylog.Stopped {
			t.Errorf("%s: outcome %v %v, want stopped", tc.name, o, ok)
		}
	}
}

func TestSetup(t *testing.T) {
	for _, tc := range []struct {
		input string
		want  string
	}{
		{"sinkhole", ""},
		{"sinkhole nxdomain", ""},
		{"sinkhole refused", ""},
		{"sinkhole servfail", "want nxdomain or refused"},
		{"sinkhole nxdomain refused", "want nxdomain or refused"},
		{"sinkhole {\n}", "no block"},
	} {
		err := setup(caddy.NewTestController("dns", tc.input))
		if (err == nil) != (tc.want == "") || (err != nil && !strings.Contains(err.Error(), tc.want)) {
			t.Errorf("%q: setup() = %v, want %q", tc.input, err, tc.want)
		}
	}
}
