package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/redoubt/redoubt/apps/web"
	"github.com/redoubt/redoubt/daemon"
	"github.com/redoubt/redoubt/datapath/leaklog"
	"github.com/redoubt/redoubt/dns/querylog"
	"github.com/redoubt/redoubt/internal/version"
	"github.com/redoubt/redoubt/ui/localapi"
)

const usage = `Usage: redoubt <command> [flags]

The box:
  serve     run the box (redoubt serve --config /etc/redoubt/redoubt.toml)
  status    what the box is doing
  leaks     what the box stopped the laptop from sending (--follow, --pcap FILE)
  queries   the names the LAN's devices looked up, and how the box answered (--follow)
  devices   the LAN's devices and their DHCP leases
  vpn       the external VPN: status, set FILE, clear, fetch URL
  audit     the tamper-evident log: verify [URL], log, status
  backup    backups: status, now, s3, peer, schedule, key, split, snapshots, ls,
            get, restore-item, drill, keep, restore (onto a fresh box)
  peer-store  a store for teammates' backups, run on its own (serve, add, list, remove)
  vpn       the external VPN: status, set FILE, clear, test, fetch URL
  team      the team's members: list, add, reissue, rename, remove, pending, approve
  settings  the owner's settings: show, set KEY=VALUE…
  app       the apps: list, info, status, enable, disable, get-option, set-option, password
  setup-code  print the code the setup page asks for
  unlock    unlock the box (the passphrase from the terminal or standard input)
  lock      lock the box: sign everyone out, keep nothing readable
  update    install a signed update: update FILE, fetch [URL] (through the VPN), status, restart
  version   print the version

On the laptop:
  selftest  try the ways software gets out, and show the box stopped each

The lab (network namespaces on this machine, as root):
  lab up      build the lab and run the box in it until Ctrl-C
  lab demo    build the lab, show the box working, and leave it running
  lab shell   open a shell in a lab node (laptop, box, homerouter, internet, vpn)
  lab down    stop and remove every lab

Run 'redoubt <command> -h' for a command's flags.
`

type command struct {
	run  func(args []string) error
	help string
}

func commands() map[string]command {
	return map[string]command{
		"serve":      {cmdServe, "run the box"},
		"version":    {cmdVersion, "print the version"},
		"status":     {cmdStatus, "what the box is doing"},
		"leaks":      {cmdLeaks, "what the box stopped"},
		"queries":    {cmdQueries, "the names devices looked up"},
		"devices":    {cmdDevices, "the LAN's devices and their leases"},
		"lab":        {cmdLab, "the lab"},
		"setup-code": {cmdSetupCode, "print the setup code"},
		"unlock":     {cmdUnlock, "unlock the box"},
		"lock":       {cmdLock, "lock the box"},
		"vpn":        {cmdVPN, "the external VPN"},
		"audit":      {cmdAudit, "the tamper-evident log"},
		"backup":     {cmdBackup, "backups, the recovery key, restores"},
		"peer-store": {cmdPeerStore, "a store for teammates' backups, on its own"},
		"team":       {cmdTeam, "the team's members"},
		"settings":   {cmdSettings, "the owner's settings"},
		"selftest":   {cmdSelftest, "the leak self-test, from the laptop"},
		"app":        {cmdApp, "the apps"},
		"update":     {cmdUpdate, "install a signed update"},
	}
}

func run(args []string) error {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		fmt.Print(usage)
		return nil
	}
	c, ok := commands()[args[0]]
	if !ok {
		return fmt.Errorf("unknown command %q\n\n%s", args[0], usage)
	}
	err := c.run(args[1:])
	if errors.Is(err, flag.ErrHelp) {
		return nil
	}
	return err
}

// flags returns a FlagSet of its own, so nothing a library registers on the global
// set ever shows up for users.
func flags(name, synopsis string) *flag.FlagSet {
	fs := flag.NewFlagSet("redoubt "+name, flag.ContinueOnError)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: redoubt %s\n\n", synopsis)
		fs.PrintDefaults()
	}
	return fs
}

func cmdServe(args []string) error {
	fs := flags("serve", "serve [--config FILE]")
	cfg := fs.String("config", daemon.DefaultConfig, "the config file (see daemon/redoubt.example.toml)")
	example := fs.Bool("example-config", false, "print a documented example config file and exit")
	uiDir := fs.String("ui-dir", "", "serve the owner's pages from this `directory` (ui/assets), re-read on every request, instead of the embedded copy")
	appsDir := fs.String("apps-dir", "", "serve the built-in apps' pages from this `directory` (the source tree's apps/), re-read on every request")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *appsDir != "" {
		abs, err := filepath.Abs(*appsDir)
		if err != nil {
			return err
		}
		os.Setenv(web.DevEnv, abs)
	}
	if *example {
		fmt.Print(daemon.Example)
		return nil
	}
	return daemon.Serve(*cfg, daemon.Options{UIDir: *uiDir})
}

func cmdVersion(args []string) error {
	fs := flags("version", "version [--json]")
	asJSON := fs.Bool("json", false, "print JSON")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *asJSON {
		return printJSON(version.Get())
	}
	fmt.Println(version.Get())
	return nil
}

func apiFlags(fs *flag.FlagSet) (socket *string, asJSON *bool) {
	def := os.Getenv("REDOUBT_SOCKET")
	if def == "" {
		def = daemon.DefaultSocket
	}
	return fs.String("socket", def, "the daemon's API socket ($REDOUBT_SOCKET)"),
		fs.Bool("json", false, "print JSON for scripts")
}

func cmdStatus(args []string) error {
	fs := flags("status", "status [--json] [--socket PATH]")
	socket, asJSON := apiFlags(fs)
	if err := fs.Parse(args); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	st, err := localapi.NewClient(*socket).Status(ctx)
	if err != nil {
		return err
	}
	if *asJSON {
		return printJSON(st)
	}
	w := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintf(w, "version\t%s\n", st.Version)
	fmt.Fprintf(w, "up since\t%s (%s)\n", st.Started.Local().Format(time.DateTime), time.Since(st.Started).Round(time.Second))
	fmt.Fprintf(w, "LAN port\t%s %s (%s)\n", st.LAN.Interface, st.LAN.Address, st.LAN.MAC)
	fmt.Fprintf(w, "services\t%s\n", strings.Join(st.LAN.Services, " "))
	fmt.Fprintf(w, "stopped\t%d packets and connections\n", st.LAN.Dropped)
	fmt.Fprintf(w, "frames\t%d in, %d out\n", st.LAN.Link.RxFrames, st.LAN.Link.TxFrames)
	if u := st.LAN.UDP; u.Delivered+u.Sent > 0 {
		fmt.Fprintf(w, "UDP services\t%d datagrams in, %d out; dropped: %d queue full, %d malformed; %d unsendable\n",
			u.Delivered, u.Sent, u.QueueFull, u.Malformed, u.Unsent)
	}
	fmt.Fprintf(w, "DNS\t%s: %d names; %d queries, %d stopped, %d malformed, %d dropped\n", st.DNS.Domain,
		st.DNS.Names, st.DNS.Queries, st.DNS.Stopped, st.DNS.Malformed, st.DNS.Dropped)
	fmt.Fprintf(w, "DHCP\t%d leases bound; pool %d free of %d; %d ACKs, %d NAKs, %d malformed, %d exhausted\n",
		st.DHCP.ActiveLeases, st.DHCP.PoolFree, st.DHCP.PoolSize, st.DHCP.Acks, st.DHCP.Naks, st.DHCP.Malformed, st.DHCP.PoolExhausted)
	if v := st.VPN; v != nil {
		line := v.State
		if v.Reason != "" {
			line += ": " + v.Reason
		}
		fmt.Fprintf(w, "VPN\t%s\n", line)
	}
	if m := st.Mesh; m != nil {
		line := "not set up"
		switch {
		case !m.Configured && m.NodeDetail != "":
			line = m.NodeDetail
		case m.Configured:
			line = "Headscale " + m.Headscale
			if m.Headscale != "reachable" && m.HeadscaleDetail != "" {
				line += " (" + m.HeadscaleDetail + ")"
			}
			line += "; the box's node " + m.Node
			if m.Node == "up" {
				line += fmt.Sprintf(" as %s %s, %d team device(s)", m.Name, strings.Join(m.Addrs, " "), m.Peers)
			} else if m.NodeDetail != "" {
				line += ": " + m.NodeDetail
			}
		}
		mode := "strict: all through the VPN"
		if !m.Strict {
			mode = "direct paths allowed"
		}
		fmt.Fprintf(w, "team mesh\t%s (%s)\n", line, mode)
	}
	for _, a := range st.Apps {
		where := ""
		for _, o := range a.Published {
			where += " " + string(o.Network)
		}
		if where != "" {
			where = ", published on" + where
		}
		fmt.Fprintf(w, "app %s\t%s%s\n", a.ID, a.State, where)
	}
	return w.Flush()
}

func cmdLeaks(args []string) error {
	fs := flags("leaks", "leaks [--follow] [--pcap FILE] [--json] [--socket PATH]")
	socket, asJSON := apiFlags(fs)
	followF := fs.Bool("follow", false, "keep printing attempts as they happen, until Ctrl-C")
	pcap := fs.String("pcap", "", "write the most recent dropped frames to `FILE` as pcap ('-' for standard output)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	c := localapi.NewClient(*socket)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	switch {
	case *pcap != "":
		var w io.Writer = os.Stdout
		if *pcap != "-" {
			f, err := os.Create(*pcap)
			if err != nil {
				return err
			}
			defer f.Close()
			w = f
		}
		return c.Pcap(ctx, w)
	case *followF:
		tw := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
		if !*asJSON {
			leakHeader(tw)
			tw.Flush()
		}
		return c.FollowLeaks(ctx, func(raw json.RawMessage) error {
			if *asJSON {
				_, err := fmt.Printf("%s\n", raw)
				return err
			}
			var e leaklog.Entry
			if err := json.Unmarshal(raw, &e); err != nil {
				return err
			}
			leakRow(tw, e)
			return tw.Flush()
		})
	}
	rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	l, err := c.Leaks(rctx)
	if err != nil {
		return err
	}
	if *asJSON {
		return printJSON(l)
	}
	fmt.Printf("%d stopped in all", l.Counters.Total)
	kinds := make([]string, 0, len(l.Counters.ByKind))
	for k, n := range l.Counters.ByKind {
		kinds = append(kinds, fmt.Sprintf("%s %d", k, n))
	}
	sort.Strings(kinds)
	if len(kinds) > 0 {
		fmt.Printf(": %s", strings.Join(kinds, ", "))
	}
	fmt.Println()
	tw := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
	leakHeader(tw)
	for _, e := range l.Entries {
		leakRow(tw, e)
	}
	return tw.Flush()
}

func leakHeader(w io.Writer) {
	fmt.Fprintln(w, "LAST SEEN\tCOUNT\tKIND\tDEVICE\tPROTO\tDESTINATION\tNAME")
}

func leakRow(w io.Writer, e leaklog.Entry) {
	dst := e.Dst
	if e.DstPort != 0 {
		dst = net.JoinHostPort(e.Dst, fmt.Sprint(e.DstPort))
	}
	proto := e.Proto
	if e.App != "" {
		proto += "/" + e.App
	}
	device := e.MAC
	if e.Src != "" {
		device += " " + e.Src
	}
	fmt.Fprintf(w, "%s\t%d\t%s\t%s\t%s\t%s\t%s\n", e.Last.Local().Format(time.TimeOnly), e.Count, e.Kind,
		device, dash(proto), dash(dst), dash(e.Name))
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func printJSON(v any) error {
	enc := json.NewEncoder(os.Stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func cmdQueries(args []string) error {
	fs := flags("queries", "queries [--follow] [--json] [--socket PATH]")
	socket, asJSON := apiFlags(fs)
	followF := fs.Bool("follow", false, "keep printing lookups as they happen, until Ctrl-C")
	if err := fs.Parse(args); err != nil {
		return err
	}
	c := localapi.NewClient(*socket)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if *followF {
		tw := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
		if !*asJSON {
			queryHeader(tw)
			tw.Flush()
		}
		return c.FollowQueries(ctx, func(raw json.RawMessage) error {
			if *asJSON {
				_, err := fmt.Printf("%s\n", raw)
				return err
			}
			var e querylog.Entry
			if err := json.Unmarshal(raw, &e); err != nil {
				return err
			}
			queryRow(tw, e)
			return tw.Flush()
		})
	}
	rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	q, err := c.Queries(rctx)
	if err != nil {
		return err
	}
	if *asJSON {
		return printJSON(q)
	}
	fmt.Printf("%d queries", q.Counters.Queries)
	answers := make([]string, 0, len(q.Counters.ByAnswer))
	for k, n := range q.Counters.ByAnswer {
		answers = append(answers, fmt.Sprintf("%s %d", k, n))
	}
	sort.Strings(answers)
	if len(answers) > 0 {
		fmt.Printf(": %s", strings.Join(answers, ", "))
	}
	if q.Counters.Dropped > 0 {
		fmt.Printf("; %d dropped (flood)", q.Counters.Dropped)
	}
	fmt.Println()
	tw := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
	queryHeader(tw)
	for _, e := range q.Entries {
		queryRow(tw, e)
	}
	return tw.Flush()
}

func queryHeader(w io.Writer) {
	fmt.Fprintln(w, "LAST SEEN\tCOUNT\tDEVICE\tNAME\tTYPES\tANSWER\tCLASS")
}

func queryRow(w io.Writer, e querylog.Entry) {
	device := e.Client
	if e.MAC != "" {
		device = e.MAC + " " + e.Client
	}
	fmt.Fprintf(w, "%s\t%d\t%s\t%s\t%s\t%s\t%s\n", e.Last.Local().Format(time.TimeOnly), e.Count, device,
		e.Name, dash(strings.Join(e.Types, ",")), e.Answer, e.Class)
}

func cmdDevices(args []string) error {
	fs := flags("devices", "devices [--json] [--socket PATH]")
	socket, asJSON := apiFlags(fs)
	if err := fs.Parse(args); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	d, err := localapi.NewClient(*socket).Devices(ctx)
	if err != nil {
		return err
	}
	if *asJSON {
		return printJSON(d)
	}
	w := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "ADDRESS\tMAC\tHOSTNAME\tSTATE\tEXPIRES\tFIRST SEEN\tVENDOR CLASS\tCLIENT ID")
	for _, l := range d.Leases {
		state := l.State
		if l.Owner {
			state += " (owner)"
		}
		if l.Reserved {
			state += " (reserved)"
		}
		expires := l.Expiry.Local().Format(time.DateTime)
		if l.State == "bound" {
			expires = "in " + time.Until(l.Expiry).Round(time.Second).String()
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", l.Address, l.MAC, dash(l.Hostname), state, expires,
			l.FirstSeen.Local().Format(time.DateTime), dash(l.VendorClass), dash(l.ClientID))
	}
	if err := w.Flush(); err != nil {
		return err
	}
	c := d.Counters
	fmt.Printf("\n%d bound; pool %d free of %d; %d offers, %d ACKs, %d NAKs; %d malformed, %d exhausted\n",
		c.ActiveLeases, c.PoolFree, c.PoolSize, c.Offers, c.Acks, c.Naks, c.Malformed, c.PoolExhausted)
	return nil
}
