package localnames

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/coredns/caddy"
	"github.com/coredns/coredns/plugin"
	"github.com/coredns/coredns/plugin/pkg/dnstest"
	"github.com/coredns/coredns/plugin/test"
	"github.com/miekg/dns"
)

var (
	boxAddr = netip.MustParseAddr("10.201.86.1")
	lan     = netip.MustParsePrefix("10.201.86.0/24")
)

func newZone(t *testing.T) *Zone {
	t.Helper()
	z, err := New(Config{Domain: "home.arpa", Box: "redoubt", Aliases: []string{"setup"}, Addr: boxAddr, Prefix: lan}, nil)
	if err != nil {
		t.Fatal(err)
	}
	return z
}

func TestConfigValidate(t *testing.T) {
	good := Config{Domain: "home.arpa", Box: "redoubt", Aliases: []string{"setup"}, Addr: boxAddr, Prefix: lan}
	if err := good.Validate(); err != nil {
		t.Fatalf("good config refused: %v", err)
	}
	for _, tc := range []struct {
		name string
		mod  func(*Config)
		want string
	}{
		{"empty domain", func(c *Config) { c.Domain = "" }, `domain ""`},
		{"underscore", func(c *Config) { c.Domain = "my_home.arpa" }, `domain "my_home.arpa"`},
		{"empty label", func(c *Config) { c.Domain = "home..arpa" }, `domain "home..arpa"`},
		{"dotted box", func(c *Config) { c.Box = "a.b" }, `name "a.b"`},
		{"leading hyphen", func(c *Config) { c.Box = "-box" }, `name "-box"`},
		{"long label", func(c *Config) { c.Box = strings.Repeat("a", 64) }, "at most 63"},
		{"alias is name", func(c *Config) { c.Aliases = []string{"Redoubt"} }, "already the box's name"},
		{"bad alias", func(c *Config) { c.Aliases = []string{"se tup"} }, `alias "se tup"`},
		{"ipv6 box", func(c *Config) { c.Addr = netip.MustParseAddr("fd00::1") }, "address fd00::1"},
		{"outside prefix", func(c *Config) { c.Prefix = netip.MustParsePrefix("10.0.0.0/24") }, "prefix 10.0.0.0/24"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := good
			c.Aliases = slices.Clone(good.Aliases)
			tc.mod(&c)
			err := c.Validate()
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Validate() = %v, want an error containing %q", err, tc.want)
			}
		})
	}
}

// answer is a lookup's result as text.
type answer struct {
	rcode  int
	answer []string
	soa    string // owner of the SOA in the authority section, "" if none
}

func lookup(z *Zone, name string, qtype uint16) (answer, bool) {
	res, ok := z.snap.Load().lookup(name, qtype)
	if !ok {
		return answer{}, false
	}
	a := answer{rcode: res.rcode}
	for _, rr := range res.answer {
		a.answer = append(a.answer, strings.ReplaceAll(rr.String(), "\t", " "))
	}
	if len(res.ns) > 0 {
		a.soa = res.ns[0].Header().Name
	}
	return a, true
}

func TestLookup(t *testing.T) {
	z := newZone(t)
	z.SetHost(netip.MustParseAddr("10.201.86.100"), "Laptop")
	if err := z.Set("tailnet", "alice.team", []netip.Addr{netip.MustParseAddr("100.64.0.7"), netip.MustParseAddr("fd7a:115c:a1e0::7")}); err != nil {
		t.Fatal(err)
	}
	const (
		ok  = dns.RcodeSuccess
		nx  = dns.RcodeNameError
		fwd = "home.arpa."
		rev = "86.201.10.in-addr.arpa."
	)
	for _, tc := range []struct {
		name   string
		qtype  uint16
		rcode  int
		answer []string
		soa    string
	}{
		{"redoubt.home.arpa.", dns.TypeA, ok, []string{"redoubt.home.arpa. 60 IN A 10.201.86.1"}, ""},
		{"setup.home.arpa.", dns.TypeA, ok, []string{"setup.home.arpa. 60 IN A 10.201.86.1"}, ""},
		{"redoubt.home.arpa.", dns.TypeAAAA, ok, nil, fwd},
		{"redoubt.home.arpa.", dns.TypeHTTPS, ok, nil, fwd},
		{"redoubt.home.arpa.", dns.TypeMX, ok, nil, fwd},
		{"redoubt.home.arpa.", dns.TypeANY, ok, []string{"redoubt.home.arpa. 60 IN A 10.201.86.1"}, ""},
		{"laptop.home.arpa.", dns.TypeA, ok, []string{"laptop.home.arpa. 60 IN A 10.201.86.100"}, ""},
		{"alice.team.home.arpa.", dns.TypeAAAA, ok, []string{"alice.team.home.arpa. 60 IN AAAA fd7a:115c:a1e0::7"}, ""},
		{"alice.team.home.arpa.", dns.TypeANY, ok, []string{"alice.team.home.arpa. 60 IN A 100.64.0.7", "alice.team.home.arpa. 60 IN AAAA fd7a:115c:a1e0::7"}, ""},
		{"team.home.arpa.", dns.TypeA, ok, nil, fwd}, // an empty non-terminal exists
		{"bob.team.home.arpa.", dns.TypeA, nx, nil, fwd},
		{"x.redoubt.home.arpa.", dns.TypeA, nx, nil, fwd},
		{"printer.home.arpa.", dns.TypeA, nx, nil, fwd},
		{"home.arpa.", dns.TypeSOA, ok, []string{"home.arpa. 10 IN SOA redoubt.home.arpa. hostmaster.home.arpa. 3 3600 600 86400 10"}, ""},
		{"home.arpa.", dns.TypeNS, ok, []string{"home.arpa. 60 IN NS redoubt.home.arpa."}, ""},
		{"home.arpa.", dns.TypeA, ok, nil, fwd},
		{"home.arpa.", dns.TypeDS, ok, nil, fwd},
		{"1.86.201.10.in-addr.arpa.", dns.TypePTR, ok, []string{"1.86.201.10.in-addr.arpa. 60 IN PTR redoubt.home.arpa."}, ""},
		{"100.86.201.10.in-addr.arpa.", dns.TypePTR, ok, []string{"100.86.201.10.in-addr.arpa. 60 IN PTR laptop.home.arpa."}, ""},
		{"100.86.201.10.in-addr.arpa.", dns.TypeA, ok, nil, rev},
		{"7.86.201.10.in-addr.arpa.", dns.TypePTR, nx, nil, rev},
		{"007.86.201.10.in-addr.arpa.", dns.TypePTR, nx, nil, rev},
		{"256.86.201.10.in-addr.arpa.", dns.TypePTR, nx, nil, rev},
		{"x.1.86.201.10.in-addr.arpa.", dns.TypePTR, nx, nil, rev},
		{"86.201.10.in-addr.arpa.", dns.TypeSOA, ok, []string{"86.201.10.in-addr.arpa. 10 IN SOA redoubt.home.arpa. hostmaster.home.arpa. 3 3600 600 86400 10"}, ""},
	} {
		t.Run(fmt.Sprintf("%s/%s", tc.name, dns.TypeToString[tc.qtype]), func(t *testing.T) {
			got, ok := lookup(z, tc.name, tc.qtype)
			if !ok {
				t.Fatal("not in the zone")
			}
			if got.rcode != tc.rcode || !slices.Equal(got.answer, tc.answer) || got.soa != tc.soa {
				t.Errorf("got %s %q soa %q, want %s %q soa %q", dns.RcodeToString[got.rcode], got.answer, got.soa,
					dns.RcodeToString[tc.rcode], tc.answer, tc.soa)
			}
		})
	}
	for _, name := range []string{"example.com.", "arpa.", "home.arpa.example.", "xhome.arpa.", "1.0.0.127.in-addr.arpa.", "."} {
		if _, ok := lookup(z, name, dns.TypeA); ok {
			t.Errorf("%s: answered, want it passed on", name)
		}
	}
}

func TestReverseZoneOfShortPrefix(t *testing.T) {
	z, err := New(Config{Domain: "home.arpa", Box: "redoubt", Addr: netip.MustParseAddr("10.201.86.1"), Prefix: netip.MustParsePrefix("10.201.80.0/20")}, nil)
	if err != nil {
		t.Fatal(err)
	}
	z.SetHost(netip.MustParseAddr("10.201.90.5"), "far")
	for _, tc := range []struct {
		name  string
		rcode int
		n     int
	}{
		{"5.90.201.10.in-addr.arpa.", dns.RcodeSuccess, 1},
		{"90.201.10.in-addr.arpa.", dns.RcodeSuccess, 0}, // inside the LAN: exists
		{"70.201.10.in-addr.arpa.", dns.RcodeNameError, 0},
		{"5.70.201.10.in-addr.arpa.", dns.RcodeNameError, 0},
	} {
		got, ok := lookup(z, tc.name, dns.TypePTR)
		if !ok || got.rcode != tc.rcode || len(got.answer) != tc.n {
			t.Errorf("%s: got %v %v, want %s with %d answers", tc.name, ok, got, dns.RcodeToString[tc.rcode], tc.n)
		}
	}
}

func names(z *Zone) []string {
	var out []string
	for _, r := range z.Records() {
		out = append(out, fmt.Sprintf("%s=%v/%s", r.Name, r.Addrs, r.Source))
	}
	return out
}

func TestSetHost(t *testing.T) {
	z := newZone(t)
	a := netip.MustParseAddr("10.201.86.100")
	b := netip.MustParseAddr("10.201.86.101")
	box := []string{"redoubt.home.arpa=[10.201.86.1]/box", "setup.home.arpa=[10.201.86.1]/box"}
	steps := []struct {
		do   func()
		want []string
	}{
		{func() { z.SetHost(a, "laptop") }, []string{"laptop.home.arpa=[10.201.86.100]/dhcp"}},
		{func() { z.SetHost(a, "LAPTOP") }, []string{"laptop.home.arpa=[10.201.86.100]/dhcp"}},
		{func() { z.SetHost(a, "notebook") }, []string{"notebook.home.arpa=[10.201.86.100]/dhcp"}},
		// The newest lease of a name wins.
		{func() { z.SetHost(b, "notebook") }, []string{"notebook.home.arpa=[10.201.86.101]/dhcp"}},
		{func() { z.SetHost(a, "phone") }, []string{"notebook.home.arpa=[10.201.86.101]/dhcp", "phone.home.arpa=[10.201.86.100]/dhcp"}},
		// Ignored: the box's names, bad labels, addresses off the LAN or the box's own.
		{func() { z.SetHost(a, "redoubt") }, []string{"notebook.home.arpa=[10.201.86.101]/dhcp", "phone.home.arpa=[10.201.86.100]/dhcp"}},
		{func() { z.SetHost(a, "setup") }, []string{"notebook.home.arpa=[10.201.86.101]/dhcp", "phone.home.arpa=[10.201.86.100]/dhcp"}},
		{func() { z.SetHost(a, "a.b") }, []string{"notebook.home.arpa=[10.201.86.101]/dhcp", "phone.home.arpa=[10.201.86.100]/dhcp"}},
		{func() { z.SetHost(a, "bad_name") }, []string{"notebook.home.arpa=[10.201.86.101]/dhcp", "phone.home.arpa=[10.201.86.100]/dhcp"}},
		{func() { z.SetHost(netip.MustParseAddr("192.168.1.5"), "stray") }, []string{"notebook.home.arpa=[10.201.86.101]/dhcp", "phone.home.arpa=[10.201.86.100]/dhcp"}},
		{func() { z.SetHost(boxAddr, "stray") }, []string{"notebook.home.arpa=[10.201.86.101]/dhcp", "phone.home.arpa=[10.201.86.100]/dhcp"}},
		{func() { z.SetHost(b, "") }, []string{"phone.home.arpa=[10.201.86.100]/dhcp"}},
		{func() { z.Clear(SourceDHCP) }, nil},
	}
	for i, s := range steps {
		s.do()
		want := append(slices.Clone(box), s.want...)
		slices.Sort(want)
		if got := names(z); !slices.Equal(got, want) {
			t.Errorf("step %d: names %q, want %q", i, got, want)
		}
	}
	// The reverse lookup follows the lease.
	z.SetHost(a, "laptop")
	z.SetHost(a, "renamed")
	got, _ := lookup(z, "100.86.201.10.in-addr.arpa.", dns.TypePTR)
	if len(got.answer) != 1 || !strings.HasSuffix(got.answer[0], "renamed.home.arpa.") {
		t.Errorf("PTR after a rename: %q", got.answer)
	}
}

func TestSetSources(t *testing.T) {
	z := newZone(t)
	one := []netip.Addr{netip.MustParseAddr("100.64.0.7")}
	z.SetHost(netip.MustParseAddr("10.201.86.100"), "laptop")
	for _, tc := range []struct {
		source, name string
		addrs        []netip.Addr
		want         string // error substring, "" for none
	}{
		{"box", "x", one, "reserved"},
		{"dhcp", "x", one, "reserved"},
		{"bad source", "x", one, `source "bad source"`},
		{"tailnet", "", one, `name ""`},
		{"tailnet", "a..b", one, `name "a..b"`},
		{"tailnet", "x", make([]netip.Addr, MaxAddrsPerName+1), "at most"},
		{"tailnet", "x", []netip.Addr{{}}, "invalid address"},
		{"tailnet", "alice.team", one, ""},
		{"tailnet", "laptop", one, ""}, // held by DHCP: accepted, not answered
		{"apps", "files", []netip.Addr{boxAddr}, ""},
		{"apps", "redoubt", one, ""}, // the box's name: accepted, not answered
	} {
		err := z.Set(tc.source, tc.name, tc.addrs)
		if (err == nil) != (tc.want == "") || (err != nil && !strings.Contains(err.Error(), tc.want)) {
			t.Errorf("Set(%q, %q) = %v, want %q", tc.source, tc.name, err, tc.want)
		}
	}
	want := []string{
		"alice.team.home.arpa=[100.64.0.7]/tailnet",
		"files.home.arpa=[10.201.86.1]/apps",
		"laptop.home.arpa=[10.201.86.100]/dhcp",
		"redoubt.home.arpa=[10.201.86.1]/box",
		"setup.home.arpa=[10.201.86.1]/box",
	}
	if got := names(z); !slices.Equal(got, want) {
		t.Errorf("names %q, want %q", got, want)
	}
	// The box's address keeps its own PTR even though "files" has it too.
	got, _ := lookup(z, "1.86.201.10.in-addr.arpa.", dns.TypePTR)
	if len(got.answer) != 1 || !strings.HasSuffix(got.answer[0], "redoubt.home.arpa.") {
		t.Errorf("box PTR: %q", got.answer)
	}
	// Removing DHCP's laptop lets the tailnet's laptop through.
	z.SetHost(netip.MustParseAddr("10.201.86.100"), "")
	if got, _ := lookup(z, "laptop.home.arpa.", dns.TypeA); len(got.answer) != 1 || !strings.HasSuffix(got.answer[0], "100.64.0.7") {
		t.Errorf("laptop after the lease went: %q", got.answer)
	}
	if err := z.Set("tailnet", "alice.team", nil); err != nil {
		t.Fatal(err)
	}
	z.Clear("apps")
	z.Clear("tailnet")
	if got := names(z); len(got) != 2 {
		t.Errorf("after clearing: %q", got)
	}
	for i := range MaxNamesPerSource {
		if err := z.Set("many", fmt.Sprintf("n%d", i), one); err != nil {
			t.Fatal(err)
		}
	}
	if err := z.Set("many", "onemore", one); err == nil {
		t.Errorf("source beyond %d names accepted", MaxNamesPerSource)
	}
}

func TestReconfigKeepsNames(t *testing.T) {
	z := newZone(t)
	z.SetHost(netip.MustParseAddr("10.201.86.100"), "laptop")
	if err := z.Reconfig(Config{Domain: "lan.example", Box: "box", Addr: boxAddr, Prefix: lan}); err != nil {
		t.Fatal(err)
	}
	if z.Domain() != "lan.example" {
		t.Errorf("domain %q", z.Domain())
	}
	for _, name := range []string{"box.lan.example.", "laptop.lan.example."} {
		if got, ok := lookup(z, name, dns.TypeA); !ok || len(got.answer) != 1 {
			t.Errorf("%s after reconfig: %v %v", name, ok, got)
		}
	}
	if _, ok := lookup(z, "redoubt.home.arpa.", dns.TypeA); ok {
		t.Error("the old domain is still answered")
	}
	if err := z.Reconfig(Config{Domain: "", Box: "box", Addr: boxAddr, Prefix: lan}); err == nil {
		t.Error("bad config accepted")
	}
}

// TestConcurrent changes names while queries read them (run with -race).
func TestConcurrent(t *testing.T) {
	z := newZone(t)
	p := &Plugin{Zone: z, Next: test.NextHandler(dns.RcodeNameError, nil)}
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for i := range 4 {
		wg.Go(func() {
			for n := 0; ; n++ {
				select {
				case <-stop:
					return
				default:
				}
				m := new(dns.Msg)
				m.SetQuestion(fmt.Sprintf("h%d.home.arpa.", (n+i)%50), dns.TypeA)
				rec := dnstest.NewRecorder(&test.ResponseWriter{})
				if _, err := p.ServeDNS(context.Background(), rec, m); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	for n := range 2000 {
		z.SetHost(netip.AddrFrom4([4]byte{10, 201, 86, byte(2 + n%200)}), fmt.Sprintf("h%d", n%50))
	}
	close(stop)
	wg.Wait()
}

func TestPlugin(t *testing.T) {
	z := newZone(t)
	next := test.NextHandler(dns.RcodeNameError, nil)
	p := &Plugin{Zone: z, Next: next}
	for _, tc := range []struct {
		name  string
		qtype uint16
		rcode int
		aa    bool
		n     int
	}{
		{"Redoubt.Home.Arpa.", dns.TypeA, dns.RcodeSuccess, true, 1},
		{"nothere.home.arpa.", dns.TypeA, dns.RcodeNameError, true, 0},
		{"example.org.", dns.TypeA, dns.RcodeNameError, false, 0}, // from next
	} {
		m := new(dns.Msg)
		m.SetQuestion(tc.name, tc.qtype)
		rec := dnstest.NewRecorder(&test.ResponseWriter{})
		rc, err := p.ServeDNS(context.Background(), rec, m)
		if err != nil {
			t.Fatal(err)
		}
		if rc != tc.rcode {
			t.Errorf("%s: rcode %d, want %d", tc.name, rc, tc.rcode)
		}
		if !tc.aa {
			if rec.Msg != nil {
				t.Errorf("%s: answered, want it passed on", tc.name)
			}
			continue
		}
		if rec.Msg == nil || rec.Msg.Rcode != tc.rcode || !rec.Msg.Authoritative || !rec.Msg.RecursionAvailable || len(rec.Msg.Answer) != tc.n {
			t.Errorf("%s: answer %v", tc.name, rec.Msg)
		}
	}
}

func TestSetup(t *testing.T) {
	for _, tc := range []struct {
		input string
		want  string // error substring, "" for none
	}{
		{"localnames home.arpa {\n box redoubt 10.201.86.1/24\n}", ""},
		{"localnames home.arpa {\n box redoubt 10.201.86.1/24\n alias setup files\n host laptop 10.201.86.100\n name tailnet a.team 100.64.0.1\n ttl 30\n}", ""},
		{"localnames", "Wrong argument count"},
		{"localnames a b {\n box redoubt 10.201.86.1/24\n}", "Wrong argument count"},
		{"localnames home.arpa", "box: missing"},
		{"localnames home.arpa {\n box redoubt 10.201.86.1\n}", "want ADDRESS/PREFIX"},
		{"localnames home.arpa {\n box redoubt 10.201.86.1/24\n ttl 0\n}", "ttl"},
		{"localnames home.arpa {\n box redoubt 10.201.86.1/24\n colour blue\n}", "unknown property"},
		{"localnames home.arpa {\n box redoubt 10.201.86.1/24\n host bad_name 10.201.86.100\n}", `host "bad_name"`},
		{"localnames home.arpa {\n box redoubt 10.201.86.1/24\n name box x 10.201.86.9\n}", "reserved"},
		{"localnames home.arpa {\n box redoubt 10.201.86.1/24\n}\nlocalnames other {\n}", "only once"},
	} {
		c := caddy.NewTestController("dns", tc.input)
		err := setup(c)
		if (err == nil) != (tc.want == "") || (err != nil && !strings.Contains(err.Error(), tc.want)) {
			t.Errorf("%q: setup() = %v, want %q", tc.input, err, tc.want)
		}
	}
}

var _ plugin.Handler = (*Plugin)(nil)
