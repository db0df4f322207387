package dns

import (
	"bufio"
	"bytes"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"text/tabwriter"
	"time"

	"github.com/coredns/caddy"
	"github.com/coredns/coredns/core/dnsserver"
	"github.com/coredns/coredns/plugin"
	"github.com/miekg/dns"

	qlplugin "github.com/redoubt/redoubt/dns/plugin/querylog"
)

// TestREADMEExamples runs the examples in every plugin's README.md: each
// "corefile" block starts a CoreDNS server with that configuration (the plugins
// set up from the Corefile, in the order written), each "dns" block is a list of
// queries ($ dig …) with the answers they must get, and a "querylog" block is what
// the server's query log must then hold.
func TestREADMEExamples(t *testing.T) {
	files, err := filepath.Glob("plugin/*/README.md")
	if err != nil || len(files) == 0 {
		t.Fatalf("no plugin READMEs found: %v", err)
	}
	for _, f := range files {
		t.Run(filepath.Base(filepath.Dir(f)), func(t *testing.T) {
			blocks := readBlocks(t, f)
			var srv *readmeServer
			examples := 0
			for _, b := range blocks {
				switch b.lang {
				case "corefile":
					if srv != nil {
						srv.close()
					}
					srv = startCorefile(t, b.text)
				case "dns":
					if srv == nil {
						t.Fatalf("%s:%d: a dns block before any corefile block", f, b.line)
					}
					examples += srv.runTranscript(t, f, b)
				case "querylog":
					if srv == nil {
						t.Fatalf("%s:%d: a querylog block before any corefile block", f, b.line)
					}
					srv.checkQueryLog(t, f, b)
					examples++
				}
			}
			if srv != nil {
				srv.close()
			}
			if examples == 0 {
				t.Errorf("%s has no examples", f)
			}
		})
	}
}

type block struct {
	lang string
	text string
	line int
}

// readBlocks returns the fenced (~~~ lang) blocks of a Markdown file.
func readBlocks(t *testing.T, path string) []block {
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var out []block
	var cur *block
	sc := bufio.NewScanner(bytes.NewReader(data))
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		switch {
		case cur == nil && strings.HasPrefix(line, "~~~"):
			cur = &block{lang: strings.TrimSpace(strings.TrimPrefix(line, "~~~")), line: n + 1}
		case cur != nil && strings.TrimSpace(line) == "~~~":
			out = append(out, *cur)
			cur = nil
		case cur != nil:
			cur.text += line + "\n"
		}
	}
	return out
}

type readmeServer struct {
	srv  *dnsserver.Server
	cfg  *dnsserver.Config
	addr string
	pc   net.PacketConn
	ln   net.Listener
	done chan struct{}
}

// startCorefile serves one server block ("ZONE { directives }") on loopback.
func startCorefile(t *testing.T, corefile string) *readmeServer {
	t.Helper()
	lines := strings.Split(strings.TrimSpace(corefile), "\n")
	head := strings.Fields(lines[0])
	if len(head) != 2 || head[1] != "{" || strings.TrimSpace(lines[len(lines)-1]) != "}" {
		t.Fatalf("corefile: want one server block, \"ZONE {\" … \"}\":\n%s", corefile)
	}
	cfg := &dnsserver.Config{Zone: dns.Fqdn(head[0]), Transport: "dns", ListenHosts: []string{""}, Port: "0"}
	// One directive per line, with its block if it has one.
	var chunk []string
	depth := 0
	for _, l := range lines[1 : len(lines)-1] {
		if strings.TrimSpace(l) == "" && depth == 0 {
			continue
		}
		chunk = append(chunk, l)
		depth += strings.Count(l, "{") - strings.Count(l, "}")
		if depth > 0 {
			continue
		}
		text := strings.Join(chunk, "\n")
		chunk = nil
		name := strings.Fields(text)[0]
		setup, err := caddy.DirectiveAction("dns", name)
		if err != nil {
			t.Fatalf("corefile: %v", err)
		}
		c := caddy.NewTestController("dns", text)
		if err := setup(c); err != nil {
			t.Fatalf("corefile: %s: %v", name, err)
		}
		cfg.Plugin = append(cfg.Plugin, dnsserver.GetConfig(c).Plugin...)
	}
	srv, err := dnsserver.NewServer("dns://127.0.0.1:0", []*dnsserver.Config{cfg})
	if err != nil {
		t.Fatal(err)
	}
	pc, ln := loopbackPair(t)
	rs := &readmeServer{srv: srv, cfg: cfg, addr: ln.Addr().String(), pc: pc, ln: ln, done: make(chan struct{})}
	go func() { srv.ServePacket(pc); rs.done <- struct{}{} }()
	go func() { srv.Serve(ln); rs.done <- struct{}{} }()
	return rs
}

func (s *readmeServer) close() {
	s.srv.Stop()
	// Stop closes only what ServePacket and Serve have registered so far:
	// closing the sockets ends them even if they had not yet started.
	s.pc.Close()
	s.ln.Close()
	<-s.done
	<-s.done
}

// loopbackPair listens on UDP and TCP on the same loopback port.
func loopbackPair(t *testing.T) (net.PacketConn, net.Listener) {
	t.Helper()
	for range 20 {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		pc, err := net.ListenPacket("udp", ln.Addr().String())
		if err == nil {
			return pc, ln
		}
		ln.Close()
	}
	t.Fatal("no loopback port free for both UDP and TCP")
	return nil, nil
}

// runTranscript checks each "$ dig [+opts] NAME [TYPE]" of a dns block against
// the lines that follow it.
func (s *readmeServer) runTranscript(t *testing.T, file string, b block) int {
	t.Helper()
	type step struct {
		cmd  string
		line int
		want []string
	}
	var steps []*step
	for i, l := range strings.Split(b.text, "\n") {
		switch {
		case strings.HasPrefix(l, "$ "):
			steps = append(steps, &step{cmd: strings.TrimPrefix(l, "$ "), line: b.line + i})
		case strings.TrimSpace(l) == "":
		case len(steps) == 0:
			t.Fatalf("%s:%d: output before any command", file, b.line+i)
		default:
			st := steps[len(steps)-1]
			st.want = append(st.want, l)
		}
	}
	for _, st := range steps {
		got := s.dig(t, fmt.Sprintf("%s:%d", file, st.line), st.cmd)
		if g, w := strings.Join(got, "\n"), strings.Join(st.want, "\n"); g != w {
			t.Errorf("%s:%d: $ %s\ngot:\n%s\nwant:\n%s", file, st.line, st.cmd, g, w)
		}
	}
	return len(steps)
}

// dig sends the query a dig command line describes and renders the answer: the
// status and flags, the answer section, the authority section, the OPT record.
func (s *readmeServer) dig(t *testing.T, where, cmd string) []string {
	t.Helper()
	f := strings.Fields(cmd)
	if len(f) < 2 || f[0] != "dig" {
		t.Fatalf("%s: want \"dig [+options] NAME [TYPE]\", got %q", where, cmd)
	}
	m := new(dns.Msg)
	network := "udp"
	var args []string
	var do bool
	bufsize := 0
	for _, a := range f[1:] {
		switch {
		case a == "+tcp":
			network = "tcp"
		case a == "+dnssec":
			do = true
		case strings.HasPrefix(a, "+bufsize="):
			bufsize, _ = strconv.Atoi(strings.TrimPrefix(a, "+bufsize="))
		case a == "+opcode=notify":
			m.Opcode = dns.OpcodeNotify
		case strings.HasPrefix(a, "+"):
			t.Fatalf("%s: unknown option %s", where, a)
		default:
			args = append(args, a)
		}
	}
	qtype := dns.TypeA
	if len(args) == 2 {
		var ok bool
		if qtype, ok = dns.StringToType[strings.ToUpper(args[1])]; !ok {
			t.Fatalf("%s: unknown type %s", where, args[1])
		}
	}
	m.Id = dns.Id()
	m.RecursionDesired = true
	m.Question = []dns.Question{{Name: dns.Fqdn(args[0]), Qtype: qtype, Qclass: dns.ClassINET}}
	if do || bufsize > 0 {
		m.SetEdns0(uint16(max(bufsize, 512)), do)
	}
	c := &dns.Client{Net: network, Timeout: 2 * time.Second}
	r, _, err := c.Exchange(m, s.addr)
	if err != nil {
		t.Fatalf("%s: %s: %v", where, cmd, err)
	}
	return render(r)
}

func render(r *dns.Msg) []string {
	var flags []string
	for _, f := range []struct {
		on   bool
		name string
	}{{r.Response, "qr"}, {r.Authoritative, "aa"}, {r.Truncated, "tc"}, {r.RecursionDesired, "rd"},
		{r.RecursionAvailable, "ra"}, {r.AuthenticatedData, "ad"}, {r.CheckingDisabled, "cd"}} {
		if f.on {
			flags = append(flags, f.name)
		}
	}
	out := []string{fmt.Sprintf(";; status: %s, flags: %s", dns.RcodeToString[r.Rcode], strings.Join(flags, " "))}
	for _, rr := range r.Answer {
		out = append(out, rr.String())
	}
	if len(r.Ns) > 0 {
		out = append(out, ";; authority:")
		for _, rr := range r.Ns {
			out = append(out, rr.String())
		}
	}
	if o := r.IsEdns0(); o != nil {
		do := ""
		if o.Do() {
			do = " do"
		}
		out = append(out, fmt.Sprintf(";; edns: version %d, udp %d,%s", o.Version(), o.UDPSize(), do))
	}
	return out
}

// checkQueryLog compares the server's query log with a querylog block (a table of
// CLIENT NAME TYPES ANSWER CLASS COUNT, most recent first; spacing is free).
func (s *readmeServer) checkQueryLog(t *testing.T, file string, b block) {
	t.Helper()
	h := s.cfg.Handler("querylog")
	p, ok := h.(*qlplugin.Plugin)
	if !ok {
		t.Fatalf("%s:%d: the server has no querylog plugin", file, b.line)
	}
	var buf bytes.Buffer
	tw := tabwriter.NewWriter(&buf, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "CLIENT\tNAME\tTYPES\tANSWER\tCLASS\tCOUNT")
	for _, e := range p.Log.Entries() {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%d\n", e.Client, e.Name, strings.Join(e.Types, ","), e.Answer, e.Class, e.Count)
	}
	tw.Flush()
	norm := func(s string) string {
		var lines []string
		for _, l := range strings.Split(strings.TrimSpace(s), "\n") {
			lines = append(lines, strings.Join(strings.Fields(l), " "))
		}
		return strings.Join(lines, "\n")
	}
	if got, want := norm(buf.String()), norm(b.text); got != want {
		t.Errorf("%s:%d: query log\ngot:\n%s\nwant:\n%s", file, b.line, buf.String(), b.text)
	}
}

var _ plugin.Handler = (*qlplugin.Plugin)(nil)
