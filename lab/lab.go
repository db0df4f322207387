// Package lab builds Redoubt's world on one machine out of network namespaces: a
// laptop plugged into the box's LAN port, the box, a home router doing NAT beyond
// its WAN port, the internet, and (on request) a VPN provider on the internet and
// a team mesh (a Headscale coordination server, a team member behind a NAT of
// its own), with real programs in each. Tests and `make demo` run in it; traffic never
// leaves the namespaces it made.
//
// Every namespace is named with a per-run prefix ("rdt" and six hex digits), and
// the lab's state (namespaces, processes, owner) lives under /run/redoubt-lab, so
// whatever a crashed run left behind is found and removed by Sweep and by
// `redoubt lab down`. The topology is a list of nodes and links, so later rooms add
// a home router, a VPN provider, a coordination server and a team member by adding
// entries. Only tests, cmd/redoubt and lab's own subpackages import it.
package lab

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// StateRoot is where labs keep their run directories.
const StateRoot = "/run/redoubt-lab"

// Node names.
const (
	Laptop     = "laptop"
	Box        = "box"
	HomeRouter = "homerouter"
	Internet   = "internet"
	VPN        = "vpn"
)

// The lab's addressing plan.
var (
	// LAN: the box's default LAN prefix; the laptop's static address until it
	// has a DHCP lease.
	LANPrefix    = netip.MustParsePrefix("10.201.86.0/24")
	BoxLAN       = netip.MustParseAddr("10.201.86.1")
	LaptopStatic = netip.MustParsePrefix("10.201.86.100/24")
	LaptopMAC    = "02:52:44:00:00:64"
	BoxLANMAC    = "02:52:44:00:00:01"
	BoxWAN       = netip.MustParsePrefix("192.168.1.2/24")
	BoxWANMAC    = "02:52:44:00:01:02"
	// Upstream is the box's next hop on its WAN: the home router's LAN side.
	Upstream = netip.MustParsePrefix("192.168.1.1/24")
	// The home router's public side, and the internet's address facing it.
	HomeWAN      = netip.MustParsePrefix("198.51.100.2/24")
	ISP          = netip.MustParsePrefix("198.51.100.1/24")
	HomeLANIface = "lan0"
	HomeWANIface = "wan0"
	Tracker      = netip.MustParseAddr("203.0.113.10")
	Resolver     = netip.MustParseAddr("203.0.113.53")
	TrackerName  = "tracker.example"
	LaptopIface  = "eth0"
	BoxLANIface  = "lan0"
	BoxWANIface  = "wan0"
	// InternetIface is the internet's link to the home router: what it
	// receives there came from the home network (after NAT).
	InternetIface  = "wan0"
	internetHosts  = []netip.Addr{Tracker, Resolver}
	defaultTimeout = 20 * time.Second
)

// Options configure Up.
type Options struct {
	// Binary is the redoubt executable the box and the lab's services run.
	Binary string
	// Prefix names this run's namespaces; default "rdt" + six random hex digits.
	Prefix string
	// Persistent leaves the lab running after this process exits (make demo);
	// `redoubt lab down` removes it.
	Persistent bool
	// Logf receives progress lines; default discards them.
	Logf func(format string, args ...any)
	// VPN adds the VPN provider (a wireguard-go server in the "vpn" namespace,
	// NAT to the internet) and a DHCP server on the home router for the box's
	// WAN; VPNBoxConfig then configures the box to use them. Off by default:
	// only the tests that need the VPN pay for it.
	VPN bool
	// Mesh adds the team mesh (mesh.go): a real Headscale in the "coord"
	// namespace beside the internet (Lab.Mesh has its URL, API key and CA),
	// and a teammate running tailscaled behind the "teamrouter" NAT. The box
	// reaches Headscale only through its VPN, so tests of the box in the mesh
	// turn VPN on too (labtest.SharedMesh does).
	Mesh bool
}

// State is what a lab records about itself under StateRoot, so that another
// process can find and remove it.
type State struct {
	Prefix     string   `json:"prefix"`
	Owner      int      `json:"owner"`
	Persistent bool     `json:"persistent"`
	Namespaces []string `json:"namespaces"`
	Pids       []int    `json:"pids"`
	Created    string   `json:"created"`
}

// Lab is a running lab.
type Lab struct {
	Prefix string
	Dir    string
	Binary string
	logf   func(string, ...any)
	// VPN is the VPN provider, when Options.VPN asked for one.
	VPN *VPNServer
	// Mesh is the team mesh, when Options.Mesh asked for it.
	Mesh *Mesh
	opts Options

	mu    sync.Mutex
	state State
	procs []*Proc
	down  bool
}

// Supported reports why the lab cannot run here, or nil.
func Supported() error {
	if runtime.GOOS != "linux" {
		return errors.New("the lab needs Linux network namespaces")
	}
	if os.Geteuid() != 0 {
		return errors.New("the lab needs root (network namespaces, veth pairs, raw sockets)")
	}
	for _, tool := range []string{"ip", "nft"} {
		if _, err := exec.LookPath(tool); err != nil {
			return fmt.Errorf("the lab needs %q (run scripts/deps.sh)", tool)
		}
	}
	return nil
}

// Up creates the lab: namespaces, links, addresses, routes, and the internet's
// services. On failure it removes what it made.
func Up(ctx context.Context, opts Options) (*Lab, error) {
	if err := Supported(); err != nil {
		return nil, err
	}
	if opts.Binary == "" {
		return nil, errors.New("lab: Options.Binary (the redoubt executable) is required")
	}
	bin, err := filepath.Abs(opts.Binary)
	if err != nil {
		return nil, err
	}
	if opts.Prefix == "" {
		var b [3]byte
		rand.Read(b[:])
		opts.Prefix = "rdt" + hex.EncodeToString(b[:])
	}
	if opts.Logf == nil {
		opts.Logf = func(string, ...any) {}
	}
	l := &Lab{
		Prefix: opts.Prefix,
		Dir:    filepath.Join(StateRoot, opts.Prefix),
		Binary: bin,
		logf:   opts.Logf,
		opts:   opts,
		state: State{
			Prefix:     opts.Prefix,
			Owner:      os.Getpid(),
			Persistent: opts.Persistent,
			Created:    time.Now().UTC().Format(time.RFC3339),
		},
	}
	if err := os.MkdirAll(l.Dir, 0o755); err != nil {
		return nil, fmt.Errorf("making lab directory: %w", err)
	}
	if err := l.build(ctx); err != nil {
		l.Down()
		return nil, err
	}
	return l, nil
}

// NS is the namespace name of a node.
func (l *Lab) NS(node string) string { return l.Prefix + "-" + node }

func (l *Lab) build(ctx context.Context) error {
	l.logf("lab %s: creating namespaces", l.Prefix)
	for _, n := range []string{Laptop, Box, HomeRouter, Internet} {
		if err := l.AddNode(ctx, n, n == Laptop); err != nil {
			return err
		}
	}
	// The laptop's cable to the box's LAN port.
	if err := l.AddLink(ctx, Laptop, LaptopIface, LaptopMAC, Box, BoxLANIface, BoxLANMAC); err != nil {
		return err
	}
	// The box's WAN port to the home router, and the home router to the internet.
	if err := l.AddLink(ctx, Box, BoxWANIface, BoxWANMAC, HomeRouter, HomeLANIface, ""); err != nil {
		return err
	}
	if err := l.AddLink(ctx, HomeRouter, HomeWANIface, "", Internet, InternetIface, ""); err != nil {
		return err
	}
	steps := [][]string{
		{HomeRouter, "ip", "addr", "add", Upstream.String(), "dev", HomeLANIface},
		{HomeRouter, "ip", "addr", "add", HomeWAN.String(), "dev", HomeWANIface},
		{HomeRouter, "ip", "route", "add", "default", "via", ISP.Addr().String()},
		{HomeRouter, "sysctl", "-q", "-w", "net.ipv4.ip_forward=1"},
		{Internet, "ip", "addr", "add", ISP.String(), "dev", InternetIface},
		// The internet routes between the home network and the VPN provider.
		{Internet, "sysctl", "-q", "-w", "net.ipv4.ip_forward=1"},
	}
	if !l.opts.VPN {
		// Without the VPN the box's WAN is addressed statically; with it, the
		// box's own DHCP client asks the home router.
		steps = append(steps,
			[]string{Box, "ip", "addr", "add", BoxWAN.String(), "dev", BoxWANIface},
			[]string{Box, "ip", "route", "add", "default", "via", Upstream.Addr().String()})
	}
	for _, h := range internetHosts {
		steps = append(steps, []string{Internet, "ip", "addr", "add", h.String() + "/32", "dev", "lo"})
	}
	for _, s := range steps {
		if _, err := l.Exec(ctx, s[0], s[1:]...); err != nil {
			return err
		}
	}
	// A home router: everything from the home network leaves from its address.
	if err := l.nft(ctx, HomeRouter, routerNAT(HomeWANIface)); err != nil {
		return err
	}
	// What arrives from the box's WAN port, and what reaches the internet.
	if err := l.countIngress(ctx, HomeRouter, HomeLANIface); err != nil {
		return err
	}
	if err := l.countIngress(ctx, Internet, InternetIface); err != nil {
		return err
	}
	if err := l.startInternet(ctx); err != nil {
		return err
	}
	if l.opts.VPN {
		if err := l.addVPN(ctx); err != nil {
			return err
		}
	}
	if l.opts.Mesh {
		return l.addMesh(ctx)
	}
	return nil
}

// nft loads a ruleset into node's nftables.
func (l *Lab) nft(ctx context.Context, node, rules string) error {
	cmd := l.Cmd(ctx, node, "nft", "-f", "-")
	cmd.Stdin = strings.NewReader(rules)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("nft in %s: %v: %s", node, err, out)
	}
	return nil
}

// AddNode creates a node's namespace with loopback up. IPv6 stays on only where
// ipv6 is true: elsewhere the kernel's own IPv6 chatter would blur what tests see.
func (l *Lab) AddNode(ctx context.Context, node string, ipv6 bool) error {
	ns := l.NS(node)
	if _, err := run(ctx, "ip", "netns", "add", ns); err != nil {
		return err
	}
	l.mu.Lock()
	l.state.Namespaces = append(l.state.Namespaces, ns)
	l.mu.Unlock()
	if err := l.saveState(); err != nil {
		return err
	}
	// Per-namespace files for `ip netns exec` (resolv.conf a DHCP client rewrites).
	etc := filepath.Join("/etc/netns", ns)
	if err := os.MkdirAll(etc, 0o755); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(etc, "resolv.conf"), []byte("# written by the lab; the DHCP client replaces it\n"), 0o644); err != nil {
		return err
	}
	cmds := [][]string{{"ip", "link", "set", "lo", "up"}}
	v6 := "1"
	if ipv6 {
		v6 = "0"
	}
	cmds = append(cmds,
		[]string{"sysctl", "-q", "-w", "net.ipv6.conf.all.disable_ipv6=" + v6},
		[]string{"sysctl", "-q", "-w", "net.ipv6.conf.default.disable_ipv6=" + v6},
	)
	for _, c := range cmds {
		if _, err := l.Exec(ctx, node, c...); err != nil {
			return err
		}
	}
	return nil
}

// AddLink connects two nodes with a veth pair and brings both ends up. Empty MACs
// are left to the kernel.
func (l *Lab) AddLink(ctx context.Context, a, aIf, aMAC, b, bIf, bMAC string) error {
	args := []string{"-n", l.NS(a), "link", "add", aIf}
	if aMAC != "" {
		args = append(args, "address", aMAC)
	}
	args = append(args, "type", "veth", "peer", "name", bIf, "netns", l.NS(b))
	if bMAC != "" {
		args = append(args, "address", bMAC)
	}
	if _, err := run(ctx, "ip", args...); err != nil {
		return err
	}
	for _, e := range [][2]string{{a, aIf}, {b, bIf}} {
		if _, err := l.Exec(ctx, e[0], "ip", "link", "set", e[1], "up"); err != nil {
			return err
		}
	}
	return nil
}

// countIngress counts every frame arriving on a node's interface, with nftables
// counters read by Ingress: all of them; those from the laptop's MAC or the LAN
// prefix; and, apart, ARP, DHCP, the VPN's flow (UDP to or from the VPN
// endpoint's port), and everything else.
func (l *Lab) countIngress(ctx context.Context, node, iface string) error {
	return l.nft(ctx, node, fmt.Sprintf(`table netdev redoubt_lab {
	counter all_in {}
	counter from_lan {}
	counter from_laptop_mac {}
	counter arp_in {}
	counter dhcp_in {}
	counter vpn_in {}
	counter other_in {}
	chain ingress_%[1]s {
		type filter hook ingress device %[1]q priority 0; policy accept;
		counter name all_in
		ether saddr %[2]s counter name from_laptop_mac
		ip saddr %[3]s counter name from_lan
		meta protocol arp counter name arp_in return
		udp sport 68 udp dport 67 counter name dhcp_in return
		ip daddr %[4]s udp dport %[5]d counter name vpn_in return
		ip saddr %[4]s udp sport %[5]d counter name vpn_in return
		counter name other_in
	}
}
`, iface, LaptopMAC, LANPrefix, VPNEndpoint.Addr(), VPNEndpoint.Port()))
}

// IngressCounts are packets that arrived at a node from the box's side.
type IngressCounts struct {
	All, FromLAN, FromLaptopMAC uint64
	// ARP, DHCP (client to server) and VPN (UDP with the VPN endpoint's
	// address and port) are counted apart from Other, everything else.
	ARP, DHCP, VPN, Other uint64
}

// Ingress reads the counters countIngress installed on node.
func (l *Lab) Ingress(ctx context.Context, node string) (IngressCounts, error) {
	var c IngressCounts
	for name, dst := range map[string]*uint64{"all_in": &c.All, "from_lan": &c.FromLAN, "from_laptop_mac": &c.FromLaptopMAC,
		"arp_in": &c.ARP, "dhcp_in": &c.DHCP, "vpn_in": &c.VPN, "other_in": &c.Other} {
		out, err := l.Exec(ctx, node, "nft", "list", "counter", "netdev", "redoubt_lab", name)
		if err != nil {
			return c, err
		}
		f := strings.Fields(out)
		for i := range f {
			if f[i] == "packets" && i+1 < len(f) {
				fmt.Sscan(f[i+1], dst)
			}
		}
	}
	return c, nil
}

// ResetIngress zeroes the counters.
func (l *Lab) ResetIngress(ctx context.Context, node string) error {
	_, err := l.Exec(ctx, node, "nft", "reset", "counters", "table", "netdev", "redoubt_lab")
	return err
}

// Cmd returns a command that runs argv in node's namespace.
func (l *Lab) Cmd(ctx context.Context, node string, argv ...string) *exec.Cmd {
	args := append([]string{"netns", "exec", l.NS(node)}, argv...)
	cmd := exec.CommandContext(ctx, "ip", args...)
	cmd.Env = append(os.Environ(), "LC_ALL=C")
	cmd.WaitDelay = 2 * time.Second
	return cmd
}

// Exec runs argv in node's namespace and returns its combined output; a failure
// carries the output.
func (l *Lab) Exec(ctx context.Context, node string, argv ...string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, defaultTimeout)
	defer cancel()
	out, err := l.Cmd(ctx, node, argv...).CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("%s: %s: %v: %s", node, strings.Join(argv, " "), err, bytes.TrimSpace(out))
	}
	return string(out), nil
}

// Do runs fn on an OS thread that has entered node's namespace. Sockets fn opens
// belong to that namespace for their whole life, whichever goroutine uses them.
func (l *Lab) Do(node string, fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		home, err := os.Open("/proc/thread-self/ns/net")
		if err != nil {
			errc <- err
			return // the thread stays locked and ends with the goroutine
		}
		defer home.Close()
		f, err := os.Open(filepath.Join("/run/netns", l.NS(node)))
		if err != nil {
			runtime.UnlockOSThread()
			errc <- err
			return
		}
		defer f.Close()
		if err := unix.Setns(int(f.Fd()), unix.CLONE_NEWNET); err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("entering %s: %w", node, err)
			return
		}
		errc <- fn()
		// Back home before the thread serves other goroutines. Should that
		// fail, the thread stays locked and ends with this goroutine — unless
		// it is the main thread, which Go keeps: hence going home first.
		if unix.Setns(int(home.Fd()), unix.CLONE_NEWNET) == nil {
			runtime.UnlockOSThread()
		}
	}()
	return <-errc
}

// Proc is a process the lab started in a node.
type Proc struct {
	Name, Node, Log string
	cmd             *exec.Cmd
	done            chan struct{}
	err             error
}

// Start runs argv in node's namespace in the background, its output going to
// <Dir>/<name>.log.
func (l *Lab) Start(node, name string, argv ...string) (*Proc, error) {
	return l.StartEnv(node, name, nil, argv...)
}

// StartEnv is Start with env ("KEY=value") added to the process's environment.
func (l *Lab) StartEnv(node, name string, env []string, argv ...string) (*Proc, error) {
	logPath := filepath.Join(l.Dir, name+".log")
	f, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	args := append([]string{"netns", "exec", l.NS(node)}, argv...)
	cmd := exec.Command("ip", args...)
	cmd.Stdout, cmd.Stderr = f, f
	cmd.Env = append(append(os.Environ(), "LC_ALL=C"), env...)
	// Its own session: a Ctrl-C in the terminal reaches the lab's cleanup, not
	// every process at once; and a persistent lab's processes outlive us.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		f.Close()
		return nil, fmt.Errorf("starting %s in %s: %w", name, node, err)
	}
	p := &Proc{Name: name, Node: node, Log: logPath, cmd: cmd, done: make(chan struct{})}
	l.mu.Lock()
	l.procs = append(l.procs, p)
	l.state.Pids = append(l.state.Pids, cmd.Process.Pid)
	l.mu.Unlock()
	go func() {
		p.err = cmd.Wait()
		f.Close()
		close(p.done)
		l.forget(cmd.Process.Pid)
	}()
	return p, l.saveState()
}

// forget drops an exited process's pid from the lab's record: once reaped, the pid
// may be reused by any process on the machine, which removing the lab must not
// signal.
func (l *Lab) forget(pid int) {
	l.mu.Lock()
	l.state.Pids = slices.DeleteFunc(l.state.Pids, func(p int) bool { return p == pid })
	down := l.down
	l.mu.Unlock()
	if !down {
		l.saveState()
	}
}

// Pid is the process id.
func (p *Proc) Pid() int { return p.cmd.Process.Pid }

// Exited reports whether the process has ended, and how.
func (p *Proc) Exited() (bool, error) {
	select {
	case <-p.done:
		return true, p.err
	default:
		return false, nil
	}
}

// Wait waits for the process to end, up to timeout.
func (p *Proc) Wait(timeout time.Duration) error {
	select {
	case <-p.done:
		return p.err
	case <-time.After(timeout):
		return fmt.Errorf("%s did not exit within %v", p.Name, timeout)
	}
}

// Signal sends sig to the process.
func (p *Proc) Signal(sig syscall.Signal) error { return p.cmd.Process.Signal(sig) }

// Stop asks the process to end (SIGTERM) and kills it after grace.
func (p *Proc) Stop(grace time.Duration) error {
	if done, err := p.Exited(); done {
		return err
	}
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
		return p.err
	case <-time.After(grace):
		p.cmd.Process.Kill()
		<-p.done
		return fmt.Errorf("%s ignored SIGTERM for %v and was killed", p.Name, grace)
	}
}

// Output returns what the process has written so far.
func (p *Proc) Output() string {
	b, _ := os.ReadFile(p.Log)
	return string(b)
}

func (l *Lab) saveState() error {
	l.mu.Lock()
	defer l.mu.Unlock() // one writer of lab.json.tmp at a time
	b, err := json.MarshalIndent(l.state, "", "  ")
	if err != nil {
		return err
	}
	tmp := filepath.Join(l.Dir, "lab.json.tmp")
	if err := os.WriteFile(tmp, b, 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, filepath.Join(l.Dir, "lab.json"))
}

// Down stops the lab's processes and removes its namespaces and files. It is safe
// to call more than once.
func (l *Lab) Down() error {
	l.mu.Lock()
	if l.down {
		l.mu.Unlock()
		return nil
	}
	l.down = true
	procs := l.procs
	l.mu.Unlock()
	for _, p := range procs {
		p.Stop(3 * time.Second)
	}
	return remove(l.Dir, l.logf)
}

func run(ctx context.Context, name string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, defaultTimeout)
	defer cancel()
	out, err := exec.CommandContext(ctx, name, args...).CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("%s %s: %v: %s", name, strings.Join(args, " "), err, bytes.TrimSpace(out))
	}
	return string(out), nil
}

// routerNAT is the nftables ruleset of a lab NAT router whose WAN side is wan:
// everything leaves from the router's address, and, like a home router's
// firewall, nothing unsolicited from outside reaches the router itself. (Left
// in, such packets would leave conntrack entries that make the NAT move a
// device's port, which real routers do not do.)
func routerNAT(wan string) string {
	return fmt.Sprintf(`table ip redoubt_lab_nat {
	chain postrouting {
		type nat hook postrouting priority srcnat; policy accept;
		oifname %[1]q masquerade
	}
	chain input {
		type filter hook input priority filter; policy accept;
		iifname %[1]q ct state established,related accept
		iifname %[1]q drop
	}
}
`, wan)
}
