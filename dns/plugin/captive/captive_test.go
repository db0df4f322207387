package captive

import (
	"context"
	"net/netip"
	"os"
	"slices"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/coredns/caddy"
	"github.com/coredns/coredns/plugin/pkg/dnstest"
	"github.com/coredns/coredns/plugin/test"
	"github.com/miekg/dns"

	"github.com/redoubt/redoubt/dns/querylog"
)

func TestPlugin(t *testing.T) {
	var pending atomic.Bool
	p := &Plugin{
		Next:    test.NextHandler(dns.RcodeNameError, nil),
		Pending: pending.Load,
		Addr:    netipMust("10.201.86.1"),
	}
	for _, tc := range []struct {
		pending bool
		name    string
		qtype   uint16
		rcode   int    // returned
		answer  string // "" for none; "next" when passed on
		class   querylog.Class
		outcome string
	}{
		{true, "captive.apple.com.", dns.TypeA, dns.RcodeSuccess, "captive.apple.com.\t0\tIN\tA\t10.201.86.1", querylog.CaptiveProbe, "captive"},
		{true, "WWW.MSFTCONNECTTEST.COM.", dns.TypeA, dns.RcodeSuccess, "WWW.MSFTCONNECTTEST.COM.\t0\tIN\tA\t10.201.86.1", querylog.CaptiveProbe, "captive"},
		{true, "connectivitycheck.gstatic.com.", dns.TypeANY, dns.RcodeSuccess, "connectivitycheck.gstatic.com.\t0\tIN\tA\t10.201.86.1", querylog.CaptiveProbe, "captive"},
		{true, "captive.apple.com.", dns.TypeAAAA, dns.RcodeSuccess, "", querylog.CaptiveProbe, "captive"},
		{true, "captive.apple.com.", dns.TypeHTTPS, dns.RcodeSuccess, "", querylog.CaptiveProbe, "captive"},
		{true, "www.apple.com.", dns.TypeA, dns.RcodeNameError, "next", querylog.Unknown, ""},
		{true, "x.captive.apple.com.", dns.TypeA, dns.RcodeNameError, "next", querylog.Unknown, ""},
		{false, "captive.apple.com.", dns.TypeA, dns.RcodeNameError, "next", querylog.CaptiveProbe, ""},
		{false, "detectportal.firefox.com.", dns.TypeA, dns.RcodeNameError, "next", querylog.CaptiveProbe, ""},
	} {
		pending.Store(tc.pending)
		m := new(dns.Msg)
		m.SetQuestion(tc.name, tc.qtype)
		var note querylog.Note
		rec := dnstest.NewRecorder(&test.ResponseWriter{})
		rc, err := p.ServeDNS(querylog.NewContext(context.Background(), &note), rec, m)
		if err != nil {
			t.Fatal(err)
		}
		where := tc.name + "/" + dns.TypeToString[tc.qtype]
		if rc != tc.rcode {
			t.Errorf("%s (pending %v): rcode %d, want %d", where, tc.pending, rc, tc.rcode)
		}
		if note.Class() != tc.class {
			t.Errorf("%s: class %v, want %v", where, note.Class(), tc.class)
		}
		o, marked := note.Outcome()
		if (tc.outcome == "") == marked || (marked && o.String() != tc.outcome) {
			t.Errorf("%s: outcome %v (marked %v), want %q", where, o, marked, tc.outcome)
		}
		if tc.answer == "next" {
			if rec.Msg != nil {
				t.Errorf("%s: answered %v, want it passed on", where, rec.Msg)
			}
			continue
		}
		if rec.Msg == nil || rec.Msg.Rcode != dns.RcodeSuccess || rec.Msg.Authoritative || !rec.Msg.RecursionAvailable {
			t.Fatalf("%s: answer %v", where, rec.Msg)
		}
		var got string
		if len(rec.Msg.Answer) > 0 {
			got = rec.Msg.Answer[0].String()
		}
		if got != tc.answer || len(rec.Msg.Answer) > 1 {
			t.Errorf("%s: answer %q, want %q", where, rec.Msg.Answer, tc.answer)
		}
	}
}

func TestIsProbe(t *testing.T) {
	for name, want := range map[string]bool{
		"captive.apple.com": true, "Captive.Apple.Com.": true, "www.msftncsi.com": true,
		"apple.com": false, "www.google.com": false, "": false,
	} {
		if IsProbe(name) != want {
			t.Errorf("IsProbe(%q) = %v", name, !want)
		}
	}
}

// TestProbesDocumented keeps README.md's table and the probes table the same.
func TestProbesDocumented(t *testing.T) {
	readme, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	var documented, code []string
	for _, line := range strings.Split(string(readme), "\n") {
		f := strings.Split(line, "|")
		if len(f) == 5 && strings.Contains(f[3], "http://") {
			documented = append(documented, strings.Join([]string{strings.TrimSpace(f[1]) + ".", strings.TrimSpace(f[2]), strings.TrimSpace(f[3])}, " | "))
		}
	}
	for _, p := range probes {
		code = append(code, strings.Join([]string{p.Name, p.Who, p.URL}, " | "))
	}
	if !slices.Equal(documented, code) {
		t.Errorf("README.md's probe table differs from probes.go:\nREADME:\n%s\ncode:\n%s", strings.Join(documented, "\n"), strings.Join(code, "\n"))
	}
}

func TestSetup(t *testing.T) {
	for _, tc := range []struct {
		input string
		want  string
	}{
		{"captive 10.201.86.1", ""},
		{"captive 10.201.86.1 pending", ""},
		{"captive 10.201.86.1 done", ""},
		{"captive", "Wrong argument count"},
		{"captive fd00::1", "IPv4"},
		{"captive 10.201.86.1 maybe", "pending or done"},
		{"captive 10.201.86.1 {\n}", "no block"},
	} {
		err := setup(caddy.NewTestController("dns", tc.input))
		if (err == nil) != (tc.want == "") || (err != nil && !strings.Contains(err.Error(), tc.want)) {
			t.Errorf("%q: setup() = %v, want %q", tc.input, err, tc.want)
		}
	}
}

func netipMust(s string) netip.Addr { return netip.MustParseAddr(s) }
