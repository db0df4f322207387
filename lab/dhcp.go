package lab

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// DHCP client kinds the laptop can run.
const (
	DHClient = "dhclient" // ISC dhclient, as Debian and many distributions ship it
	UDHCPC   = "udhcpc"   // busybox udhcpc, as embedded systems and containers use
)

// DHCPOptions shape a laptop's DHCP client.
type DHCPOptions struct {
	// Hostname is sent in option 12 ("" sends none).
	Hostname string
	// Broadcast asks the server to broadcast its replies (udhcpc -B; dhclient
	// always asks for unicast).
	Broadcast bool
}

// DHCPClient is a DHCP client running on the laptop's interface, with its files
// (config, lease, pid, events, log) in a directory of its own under the lab's.
// Its script records every event for tests to read, then configures the
// interface: address, default route, and resolv.conf (the laptop namespace's own,
// /etc/netns/<ns>/resolv.conf).
type DHCPClient struct {
	Kind string
	Dir  string
	lab  *Lab
	proc *Proc
	argv []string // how it was started, for Release (dhclient -r)
}

// DHCPEvent is one call of the client's script.
type DHCPEvent struct {
	// Reason is the client's word for the event: dhclient's PREINIT, BOUND,
	// RENEW, REBIND, REBOOT, EXPIRE, FAIL, RELEASE, STOP; udhcpc's deconfig,
	// bound, renew, nak, leasefail.
	Reason string
	Time   time.Time
	Addr   netip.Prefix
	Router []netip.Addr
	DNS    []netip.Addr
	Domain string
	// Search is the search list, space-separated, without trailing dots.
	Search string
	MTU    int
	Lease  time.Duration
	Server netip.Addr
	// Captive is the captive-portal URI of option 114, "" when absent.
	Captive string
	// Env is everything the client passed to its script.
	Env map[string]string
}

// Bound reports whether the event means the client holds a lease.
func (e DHCPEvent) Bound() bool {
	switch e.Reason {
	case "BOUND", "RENEW", "REBIND", "REBOOT", "bound", "renew":
		return true
	}
	return false
}

// dhcpScript is the client script: configure, then record, so a test that sees
// an event finds the laptop configured. $reason is set by dhclient; udhcpc
// passes the event as $1.
const dhcpScript = `#!/bin/sh
# Written by the lab (lab/dhcp.go): configures the laptop's interface, then
# records the DHCP event for tests.
dir=%q
lab_time=$(date +%%s.%%N)
record() {
	n=$(ls "$dir/events" | wc -l)
	f="$dir/events/$(printf %%05d "$n")"
	{ echo "lab_time=$lab_time"; echo "lab_arg=$1"; env; } > "$f.tmp" && mv "$f.tmp" "$f.env"
}

resolv() { # nameservers, search
	{ [ -n "$2" ] && echo "search $2"; for ns in $1; do echo "nameserver $ns"; done; } > /etc/resolv.conf
}
if [ -n "$reason" ]; then
	case "$reason" in
	PREINIT) ip link set dev "$interface" up ;;
	BOUND|RENEW|REBIND|REBOOT)
		if [ -n "$old_ip_address" ] && [ "$old_ip_address" != "$new_ip_address" ]; then
			ip -4 addr flush dev "$interface"
		fi
		ip -4 addr replace "$new_ip_address/$new_subnet_mask" dev "$interface"
		for r in $new_routers; do ip -4 route replace default via "$r" dev "$interface"; break; done
		resolv "$new_domain_name_servers" "${new_domain_search:-$new_domain_name}"
		;;
	EXPIRE|FAIL|RELEASE|STOP) ip -4 addr flush dev "$interface" ;;
	esac
else
	case "$1" in
	deconfig) ip -4 addr flush dev "$interface"; ip link set dev "$interface" up ;;
	bound|renew)
		ip -4 addr replace "$ip/${mask:-$subnet}" dev "$interface"
		for r in $router; do ip -4 route replace default via "$r" dev "$interface"; break; done
		resolv "$dns" "${search:-$domain}"
		;;
	esac
fi
record "$1"
exit 0
`

// dhclientConf asks for what a desktop asks for, and for the captive-portal
// option, which ISC dhclient knows only when told.
const dhclientConf = `# Written by the lab (lab/dhcp.go).
option captive-portal code 114 = text;
%srequest subnet-mask, broadcast-address, routers, domain-name, domain-name-servers,
	domain-search, host-name, interface-mtu, captive-portal;
initial-interval 1;
backoff-cutoff 2;
timeout 30;
retry 5;
`

// StartDHClient runs ISC dhclient on the laptop's interface in the foreground,
// as a lab process, until Stop or Release.
func (l *Lab) StartDHClient(ctx context.Context, opts DHCPOptions) (*DHCPClient, error) {
	c, err := l.newDHCPClient(DHClient)
	if err != nil {
		return nil, err
	}
	send := ""
	if opts.Hostname != "" {
		send = fmt.Sprintf("send host-name %q;\n", opts.Hostname)
	}
	if err := os.WriteFile(c.path("dhclient.conf"), []byte(fmt.Sprintf(dhclientConf, send)), 0o644); err != nil {
		return nil, err
	}
	c.argv = []string{"dhclient", "-4", "-cf", c.path("dhclient.conf"), "-lf", c.path("dhclient.leases"),
		"-pf", c.path("dhclient.pid"), "-sf", c.path("script"), LaptopIface}
	return c, c.start(append([]string{c.argv[0], "-d", "-v"}, c.argv[1:]...))
}

// StartUDHCPC runs busybox udhcpc on the laptop's interface in the foreground, as
// a lab process, until Stop.
func (l *Lab) StartUDHCPC(ctx context.Context, opts DHCPOptions) (*DHCPClient, error) {
	c, err := l.newDHCPClient(UDHCPC)
	if err != nil {
		return nil, err
	}
	c.argv = []string{"busybox", "udhcpc", "-f", "-i", LaptopIface, "-s", c.path("script"), "-p", c.path("udhcpc.pid"),
		"-t", "10", "-T", "1", "-A", "1", "-O", "search", "-O", "mtu", "-O", "114"}
	if opts.Hostname != "" {
		c.argv = append(c.argv, "-x", "hostname:"+opts.Hostname)
	}
	if opts.Broadcast {
		c.argv = append(c.argv, "-B")
	}
	return c, c.start(c.argv)
}

func (l *Lab) newDHCPClient(kind string) (*DHCPClient, error) {
	dir, err := os.MkdirTemp(l.Dir, "dhcp-"+kind+"-")
	if err != nil {
		return nil, err
	}
	c := &DHCPClient{Kind: kind, Dir: dir, lab: l}
	if err := os.MkdirAll(c.path("events"), 0o755); err != nil {
		return nil, err
	}
	if err := os.WriteFile(c.path("script"), []byte(fmt.Sprintf(dhcpScript, dir)), 0o755); err != nil {
		return nil, err
	}
	return c, nil
}

func (c *DHCPClient) path(name string) string { return filepath.Join(c.Dir, name) }

func (c *DHCPClient) start(argv []string) error {
	p, err := c.lab.Start(Laptop, filepath.Base(c.Dir), argv...)
	if err != nil {
		return err
	}
	c.proc = p
	return nil
}

// Log is what the client printed.
func (c *DHCPClient) Log() string { return c.proc.Output() }

// Events returns the client's events so far, oldest first.
func (c *DHCPClient) Events() ([]DHCPEvent, error) {
	files, err := filepath.Glob(c.path("events/*.env"))
	if err != nil {
		return nil, err
	}
	sort.Strings(files)
	out := make([]DHCPEvent, 0, len(files))
	for _, f := range files {
		e, err := readEvent(f)
		if err != nil {
			return nil, err
		}
		out = append(out, e)
	}
	return out, nil
}

func readEvent(path string) (DHCPEvent, error) {
	f, err := os.Open(path)
	if err != nil {
		return DHCPEvent{}, err
	}
	defer f.Close()
	env := map[string]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if k, v, ok := strings.Cut(sc.Text(), "="); ok {
			env[k] = v
		}
	}
	e := DHCPEvent{Env: env}
	if secs, err := strconv.ParseFloat(env["lab_time"], 64); err == nil {
		e.Time = time.Unix(0, int64(secs*1e9))
	}
	get := func(dhclient, udhcpc string) string {
		if env["reason"] != "" {
			return env[dhclient]
		}
		return env[udhcpc]
	}
	e.Reason = env["reason"]
	if e.Reason == "" {
		e.Reason = env["lab_arg"]
	}
	if ip, err := netip.ParseAddr(get("new_ip_address", "ip")); err == nil {
		bits := maskBits(get("new_subnet_mask", "subnet"))
		if m, err := strconv.Atoi(env["mask"]); err == nil && env["reason"] == "" {
			bits = m
		}
		e.Addr = netip.PrefixFrom(ip, bits)
	}
	e.Router = addrs(get("new_routers", "router"))
	e.DNS = addrs(get("new_domain_name_servers", "dns"))
	e.Domain = get("new_domain_name", "domain")
	// dhclient writes the search list as absolute names; udhcpc does not.
	var search []string
	for _, d := range strings.Fields(get("new_domain_search", "search")) {
		search = append(search, strings.TrimSuffix(d, "."))
	}
	e.Search = strings.Join(search, " ")
	e.MTU, _ = strconv.Atoi(get("new_interface_mtu", "mtu"))
	if s, err := strconv.Atoi(get("new_dhcp_lease_time", "lease")); err == nil {
		e.Lease = time.Duration(s) * time.Second
	}
	e.Server, _ = netip.ParseAddr(get("new_dhcp_server_identifier", "serverid"))
	e.Captive = get("new_captive_portal", "opt114")
	if env["reason"] == "" && e.Captive != "" {
		e.Captive = unhex(e.Captive) // udhcpc passes unknown options as hex
	}
	return e, sc.Err()
}

func maskBits(dotted string) int {
	a, err := netip.ParseAddr(dotted)
	if err != nil || !a.Is4() {
		return 32
	}
	b := a.As4()
	n := 0
	for _, x := range b {
		for x&0x80 != 0 {
			n++
			x <<= 1
		}
	}
	return n
}

func addrs(s string) []netip.Addr {
	var out []netip.Addr
	for _, f := range strings.Fields(s) {
		if a, err := netip.ParseAddr(f); err == nil {
			out = append(out, a)
		}
	}
	return out
}

func unhex(s string) string {
	if len(s)%2 != 0 {
		return s
	}
	b := make([]byte, len(s)/2)
	for i := range b {
		v, err := strconv.ParseUint(s[2*i:2*i+2], 16, 8)
		if err != nil {
			return s
		}
		b[i] = byte(v)
	}
	return string(b)
}

// WaitEvent waits until the client has more than after events and one of the new
// ones satisfies ok, and returns it with the number of events seen.
func (c *DHCPClient) WaitEvent(ctx context.Context, after int, ok func(DHCPEvent) bool) (DHCPEvent, int, error) {
	for {
		evs, err := c.Events()
		if err != nil {
			return DHCPEvent{}, 0, err
		}
		for i := after; i < len(evs); i++ {
			if ok(evs[i]) {
				return evs[i], i + 1, nil
			}
		}
		if done, err := c.proc.Exited(); done {
			return DHCPEvent{}, len(evs), fmt.Errorf("%s exited (%v):\n%s", c.Kind, err, tail(c.Log(), 15))
		}
		select {
		case <-ctx.Done():
			return DHCPEvent{}, len(evs), fmt.Errorf("%s: waiting for a DHCP event: %w (events so far: %s)\n%s",
				c.Kind, ctx.Err(), reasons(evs), tail(c.Log(), 15))
		case <-time.After(20 * time.Millisecond):
		}
	}
}

func reasons(evs []DHCPEvent) string {
	var r []string
	for _, e := range evs {
		r = append(r, e.Reason)
	}
	return strings.Join(r, " ")
}

// WaitLease waits for the next event, after the first after events, that means
// the client holds a lease.
func (c *DHCPClient) WaitLease(ctx context.Context, after int) (DHCPEvent, int, error) {
	return c.WaitEvent(ctx, after, DHCPEvent.Bound)
}

// Renew makes the client renew its lease now (RENEWING: a unicast REQUEST from
// its address). Only udhcpc can be told to (SIGUSR1); dhclient renews by itself
// at T1, half the lease time.
func (c *DHCPClient) Renew() error {
	if c.Kind != UDHCPC {
		return errors.New("dhclient has no renew signal: it renews at half the lease time (set a short dhcp.lease_time)")
	}
	return c.proc.Signal(syscall.SIGUSR1)
}

// Release gives the lease back (DHCPRELEASE) and deconfigures the interface.
// udhcpc stays running, idle, until Renew or Stop; dhclient exits.
func (c *DHCPClient) Release(ctx context.Context) error {
	if c.Kind == UDHCPC {
		return c.proc.Signal(syscall.SIGUSR2)
	}
	argv := append([]string{c.argv[0], "-r"}, c.argv[1:]...)
	if _, err := c.lab.Exec(ctx, Laptop, argv...); err != nil {
		return err
	}
	c.proc.Wait(5 * time.Second) // dhclient -r ends it with SIGTERM
	if done, _ := c.proc.Exited(); !done {
		return fmt.Errorf("dhclient -r did not stop the running dhclient (pid %d)", c.proc.Pid())
	}
	return nil
}

// Stop ends the client without releasing its lease (dhclient -x; udhcpc
// SIGTERM), as when a laptop sleeps or its cable is pulled.
func (c *DHCPClient) Stop() error {
	if done, _ := c.proc.Exited(); done {
		return nil
	}
	if c.Kind == DHClient {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		argv := append([]string{c.argv[0], "-x"}, c.argv[1:]...)
		if _, err := c.lab.Exec(ctx, Laptop, argv...); err == nil && c.proc.Wait(3*time.Second) == nil {
			return nil
		}
	}
	c.proc.Stop(3 * time.Second)
	return nil
}

// Pid is the client's process id.
func (c *DHCPClient) Pid() int { return c.proc.Pid() }

// LaptopAddr returns the laptop's IPv4 address on its LAN interface, if it has one.
func (l *Lab) LaptopAddr(ctx context.Context) (netip.Prefix, error) {
	out, err := l.Exec(ctx, Laptop, "ip", "-4", "-o", "addr", "show", "dev", LaptopIface)
	if err != nil {
		return netip.Prefix{}, err
	}
	f := strings.Fields(out)
	for i := range f {
		if f[i] == "inet" && i+1 < len(f) {
			return netip.ParsePrefix(f[i+1])
		}
	}
	return netip.Prefix{}, nil
}

// LaptopDefaultRoute returns the laptop's default router, if it has one.
func (l *Lab) LaptopDefaultRoute(ctx context.Context) (netip.Addr, error) {
	out, err := l.Exec(ctx, Laptop, "ip", "-4", "route", "show", "default")
	if err != nil {
		return netip.Addr{}, err
	}
	f := strings.Fields(out)
	for i := range f {
		if f[i] == "via" && i+1 < len(f) {
			return netip.ParseAddr(f[i+1])
		}
	}
	return netip.Addr{}, nil
}

// LaptopResolvConf returns the laptop's resolv.conf.
func (l *Lab) LaptopResolvConf() (string, error) {
	b, err := os.ReadFile(filepath.Join("/etc/netns", l.NS(Laptop), "resolv.conf"))
	return string(b), err
}

// LaptopUnconfigure removes the laptop's IPv4 addresses and routes and leaves its
// link up, as a laptop is before DHCP.
func (l *Lab) LaptopUnconfigure(ctx context.Context) error {
	for _, c := range [][]string{
		{"ip", "-4", "addr", "flush", "dev", LaptopIface},
		{"ip", "-4", "route", "flush", "dev", LaptopIface},
		{"ip", "link", "set", LaptopIface, "up"},
	} {
		if _, err := l.Exec(ctx, Laptop, c...); err != nil {
			return err
		}
	}
	return nil
}

// TimeToLease measures how long the laptop takes, from the moment its link comes
// up, to hold a lease: the link goes down and its addresses are removed, then it
// comes up and the client starts at once (as a network manager starts one on
// carrier), and the time runs until the client's script sees the lease. The
// client is stopped afterwards.
func (l *Lab) TimeToLease(ctx context.Context, kind string, opts DHCPOptions) (time.Duration, DHCPEvent, error) {
	if err := l.LaptopUnconfigure(ctx); err != nil {
		return 0, DHCPEvent{}, err
	}
	if _, err := l.Exec(ctx, Laptop, "ip", "link", "set", LaptopIface, "down"); err != nil {
		return 0, DHCPEvent{}, err
	}
	start := time.Now()
	if _, err := l.Exec(ctx, Laptop, "ip", "link", "set", LaptopIface, "up"); err != nil {
		return 0, DHCPEvent{}, err
	}
	var c *DHCPClient
	var err error
	if kind == UDHCPC {
		c, err = l.StartUDHCPC(ctx, opts)
	} else {
		c, err = l.StartDHClient(ctx, opts)
	}
	if err != nil {
		return 0, DHCPEvent{}, err
	}
	defer c.Stop()
	e, _, err := c.WaitLease(ctx, 0)
	if err != nil {
		return 0, e, err
	}
	return e.Time.Sub(start), e, nil
}

// RequireDHCPClients reports why the laptop cannot run DHCP clients here, or nil.
func RequireDHCPClients() error {
	for _, t := range []string{"dhclient", "busybox"} {
		if _, err := exec.LookPath(t); err != nil {
			return fmt.Errorf("the lab's laptop needs %s (run scripts/deps.sh)", t)
		}
	}
	return nil
}
