package egress

import (
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
)

// The vet-style check: outside the rooms allowed to touch the network directly, no
// code opens a kernel socket, resolves a name with the system resolver, or makes
// an HTTP client that dials with the kernel. Such code would send the box's own
// traffic past the VPN. Use a Dialer from this package instead.
//
// Allowed everywhere: Unix sockets (a literal "unix", "unixgram" or "unixpacket"
// network). Allowed in some places, with the reason:
var (
	// allowedDirs may open sockets of their own.
	allowedDirs = map[string]string{
		"vpn":         "the egress room: the tunnel's own UDP socket, the WAN's DHCP client, the firewall",
		"lab":         "the lab runs its peers in network namespaces of its own",
		"integration": "lab tests run programs and servers in the lab's namespaces",
	}
	// allowedFiles may use a particular construct, for the reason given.
	allowedFiles = map[string]string{
		"ui/localapi/client.go":           "a net.Dialer for the local API's Unix socket",
		"datapath/lan/open_linux.go":      "an AF_INET socket used only for interface ioctls, never bound or connected",
		"datapath/link/endpoint_linux.go": "the LAN port's AF_PACKET socket, owned by the datapath",
		"cmd/redoubt/audit.go":            "`redoubt audit verify URL` runs on a member's device, reaching the box over the member's own tailnet, not from the box",
		"cmd/redoubt/peerstore.go":        "`redoubt peer-store serve` runs on a teammate's machine, behind its tailscaled, not on the box",
		"ui/selftest/probe.go":            "the laptop's side of the leak self-test (redoubt selftest, run on the laptop, never on the box): probes sent on purpose, for the box to stop",
		"board/update/api.go":             "a net.Dialer for the local API's Unix socket",
		"board/initd/mount.go":            "an AF_INET socket used only to set the loopback interface up (an ioctl), never bound or connected",
	}
)

// forbidden names, by package import path: functions and variables whose use sends
// or resolves with the kernel.
var forbidden = map[string]map[string]string{
	"net": {
		"Dial": "dial", "DialTimeout": "dial", "DialTCP": "dial", "DialUDP": "dial", "DialIP": "dial",
		"Listen": "listen", "ListenPacket": "listen", "ListenTCP": "listen", "ListenUDP": "listen",
		"ListenIP": "listen", "ListenMulticastUDP": "listen",
		"LookupHost": "resolve", "LookupIP": "resolve", "LookupAddr": "resolve", "LookupCNAME": "resolve",
		"LookupMX": "resolve", "LookupNS": "resolve", "LookupTXT": "resolve", "LookupSRV": "resolve",
		"LookupNetIP": "resolve", "ResolveTCPAddr": "resolve", "ResolveUDPAddr": "resolve", "ResolveIPAddr": "resolve",
		"DefaultResolver": "resolve", "Dialer": "dial", "ListenConfig": "listen", "Resolver": "resolve",
	},
	"net/http": {
		"Get": "http", "Post": "http", "Head": "http", "PostForm": "http",
		"DefaultClient": "http", "DefaultTransport": "http",
	},
	"crypto/tls":            {"Dial": "dial", "DialWithDialer": "dial", "Dialer": "dial"},
	"golang.org/x/sys/unix": {"Socket": "socket", "Socketpair": ""},
	"syscall":               {"Socket": "socket"},
	"github.com/miekg/dns":  {"Exchange": "resolve", "ExchangeContext": "resolve", "Dial": "dial", "DialTimeout": "dial", "Client": "resolve"},
}

func TestNoDirectSockets(t *testing.T) {
	root := moduleRoot(t)
	var problems []string
	fset := token.NewFileSet()
	err := filepath.WalkDir(root, func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, path)
		rel = filepath.ToSlash(rel)
		if d.IsDir() {
			if rel != "." && (strings.HasPrefix(d.Name(), ".") || d.Name() == "testdata" || d.Name() == "out" || d.Name() == "bin") {
				return filepath.SkipDir
			}
			if _, ok := allowedDirs[strings.SplitN(rel, "/", 2)[0]]; ok {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		f, err := parser.ParseFile(fset, path, nil, parser.SkipObjectResolution)
		if err != nil {
			return fmt.Errorf("parsing %s: %w", rel, err)
		}
		for _, p := range checkFile(fset, f) {
			if _, ok := allowedFiles[rel]; ok {
				continue
			}
			problems = append(problems, rel+":"+p)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(problems)
	for _, p := range problems {
		t.Errorf("%s\n\tthe box's own connections go through the VPN: use an egress.Dialer (vpn/egress), or a net.Listener from the datapath for the LAN", p)
	}
}

// checkFile returns "line: what" for each forbidden use in f.
func checkFile(fset *token.FileSet, f *ast.File) []string {
	imports := map[string]string{} // local name → import path
	for _, imp := range f.Imports {
		path, _ := strconv.Unquote(imp.Path.Value)
		name := path[strings.LastIndex(path, "/")+1:]
		if imp.Name != nil {
			name = imp.Name.Name
		}
		if path == "github.com/miekg/dns" && imp.Name == nil {
			name = "dns"
		}
		imports[name] = path
	}
	var out []string
	report := func(n ast.Node, format string, args ...any) {
		out = append(out, fmt.Sprintf("%d: %s", fset.Position(n.Pos()).Line, fmt.Sprintf(format, args...)))
	}
	// Calls with a literal Unix network are fine: find them first.
	unixCalls := map[*ast.SelectorExpr]bool{}
	ast.Inspect(f, func(n ast.Node) bool {
		call, ok := n.(*ast.CallExpr)
		if !ok {
			return true
		}
		sel, ok := call.Fun.(*ast.SelectorExpr)
		if !ok || len(call.Args) == 0 {
			return true
		}
		if lit, ok := call.Args[0].(*ast.BasicLit); ok && lit.Kind == token.STRING {
			if s, _ := strconv.Unquote(lit.Value); strings.HasPrefix(s, "unix") {
				unixCalls[sel] = true
			}
		}
		return true
	})
	ast.Inspect(f, func(n ast.Node) bool {
		switch x := n.(type) {
		case *ast.SelectorExpr:
			id, ok := x.X.(*ast.Ident)
			if !ok {
				return true
			}
			names, ok := forbidden[imports[id.Name]]
			if !ok {
				return true
			}
			if kind, bad := names[x.Sel.Name]; bad && !unixCalls[x] {
				if kind == "" {
					kind = "socket"
				}
				report(x, "%s.%s (%s outside the VPN)", id.Name, x.Sel.Name, kind)
			}
		case *ast.CompositeLit:
			sel, ok := x.Type.(*ast.SelectorExpr)
			if !ok {
				return true
			}
			id, ok := sel.X.(*ast.Ident)
			if !ok || imports[id.Name] != "net/http" {
				return true
			}
			switch sel.Sel.Name {
			case "Client":
				if !hasField(x, "Transport") {
					report(x, "an http.Client without a Transport dials with the kernel: use egress.HTTPClient")
				}
			case "Transport":
				if !hasField(x, "DialContext") && !hasField(x, "DialTLSContext") {
					report(x, "an http.Transport without DialContext dials with the kernel: use egress.Transport")
				}
			}
		}
		return true
	})
	return out
}

func hasField(lit *ast.CompositeLit, name string) bool {
	for _, e := range lit.Elts {
		if kv, ok := e.(*ast.KeyValueExpr); ok {
			if id, ok := kv.Key.(*ast.Ident); ok && id.Name == name {
				return true
			}
		}
	}
	return false
}

func moduleRoot(t *testing.T) string {
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("no go.mod above the test's directory")
		}
		dir = parent
	}
}

// TestCheckFinds makes sure the check sees what it must, in the forms code
// takes: renamed imports, type uses, clients without transports.
func TestCheckFinds(t *testing.T) {
	src := `package x
import (
	stdnet "net"
	"net/http"
	"crypto/tls"
	"golang.org/x/sys/unix"
)
func f() {
	stdnet.Dial("tcp", "example.com:80")
	stdnet.Dial("unix", "/run/x.sock")
	var d stdnet.Dialer
	_ = d
	http.Get("http://example.com/")
	_ = &http.Client{}
	_ = &http.Client{Transport: &http.Transport{}}
	_ = &http.Client{Transport: &http.Transport{DialContext: nil}}
	tls.Dial("tcp", "example.com:443", nil)
	unix.Socket(0, 0, 0)
	stdnet.LookupHost("example.com")
	_ = stdnet.JoinHostPort("a", "1")
}
`
	fset := token.NewFileSet()
	f, err := parser.ParseFile(fset, "x.go", src, 0)
	if err != nil {
		t.Fatal(err)
	}
	got := strings.Join(checkFile(fset, f), "\n")
	for _, want := range []string{
		"9: stdnet.Dial", "11: stdnet.Dialer", "13: http.Get", "14: an http.Client without a Transport",
		"15: an http.Transport without DialContext", "17: tls.Dial", "18: unix.Socket", "19: stdnet.LookupHost",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("the check missed %q; it found:\n%s", want, got)
		}
	}
	for _, notWant := range []string{"10:", "16:", "20:"} {
		if strings.Contains(got, "\n"+notWant) || strings.HasPrefix(got, notWant) {
			t.Errorf("the check flagged line %s, which is allowed:\n%s", notWant, got)
		}
	}
}
