package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/redoubt/redoubt/ui/localapi"
	"github.com/redoubt/redoubt/vpn/external"
	"github.com/redoubt/redoubt/vpn/wgconfig"
)

const vpnUsage = `Usage: redoubt vpn <command> [--socket PATH] [--json]

  status      the VPN's health: up, connecting, down or not configured, and why
  set FILE    use the WireGuard config in FILE ("-" for standard input); the box
              keeps it sealed in its vault (the box must be unlocked)
  clear       remove the config set with "set": nothing of the box's own leaves
  test        check the VPN step by step (config, WAN, handshake, DNS, exit address)
  fetch URL   fetch URL through the VPN and say how it went (a check)
`

func cmdVPN(args []string) error {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		fmt.Print(vpnUsage)
		return nil
	}
	sub, args := args[0], args[1:]
	fs := flags("vpn "+sub, "vpn "+sub+" [flags]")
	socket, asJSON := apiFlags(fs)
	keep := fs.Int("keep", 0, "fetch: print the first `N` bytes of the body")
	timeout := fs.Duration("timeout", 30*time.Second, "fetch: give up after this long")
	if err := fs.Parse(args); err != nil {
		return err
	}
	c := localapi.NewClient(*socket)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, *timeout+10*time.Second)
	defer cancel()
	switch sub {
	case "test":
		res, err := c.TestVPN(ctx)
		if err != nil {
			return err
		}
		if *asJSON {
			return printJSON(res)
		}
		for _, ch := range res.Checks {
			mark := "ok  "
			if !ch.OK {
				mark = "FAIL"
			}
			fmt.Printf("%s  %-9s %s\n", mark, ch.Name, ch.Detail)
		}
		if !res.OK {
			return fmt.Errorf("the VPN test failed")
		}
		return nil
	case "status":
		st, err := c.VPNStatus(ctx)
		if err != nil {
			return err
		}
		if *asJSON {
			return printJSON(st)
		}
		return printVPN(os.Stdout, st)
	case "set":
		if fs.NArg() != 1 {
			return fmt.Errorf("name the WireGuard config file: redoubt vpn set FILE (or - for standard input)")
		}
		var text []byte
		var err error
		if fs.Arg(0) == "-" {
			text, err = io.ReadAll(io.LimitReader(os.Stdin, wgconfig.MaxSize+1))
		} else {
			text, err = readSmall(fs.Arg(0), wgconfig.MaxSize)
		}
		if err != nil {
			return err
		}
		// Check here first, so mistakes are named before anything is sent.
		if _, err := wgconfig.Parse(text); err != nil {
			return fmt.Errorf("%s: %w", fs.Arg(0), err)
		}
		st, err := c.SetVPN(ctx, text)
		if err != nil {
			return err
		}
		if *asJSON {
			return printJSON(st)
		}
		fmt.Println("VPN config set; the box keeps it sealed.")
		return printVPN(os.Stdout, st)
	case "clear":
		st, err := c.ClearVPN(ctx)
		if err != nil {
			return err
		}
		if *asJSON {
			return printJSON(st)
		}
		return printVPN(os.Stdout, st)
	case "fetch":
		if fs.NArg() != 1 {
			return fmt.Errorf("name the URL: redoubt vpn fetch URL")
		}
		res, err := c.FetchVPN(ctx, localapi.FetchRequest{URL: fs.Arg(0), Keep: *keep, TimeoutSeconds: int(timeout.Seconds())})
		if err != nil {
			return err
		}
		if *asJSON {
			return printJSON(res)
		}
		rate := 0.0
		if res.Seconds > 0 {
			rate = float64(res.Bytes) / res.Seconds / 1e6
		}
		fmt.Printf("%s: HTTP %d, %d bytes in %.3fs (%.1f MB/s) through the VPN\n", res.URL, res.Status, res.Bytes, res.Seconds, rate)
		if res.Head != "" {
			fmt.Println(res.Head)
		}
		return nil
	}
	return fmt.Errorf("unknown vpn command %q\n\n%s", sub, vpnUsage)
}

func readSmall(path string, limit int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", path, err)
	}
	return b, nil
}

func printVPN(w io.Writer, st external.Status) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	state := st.State
	if st.Reason != "" {
		state += ": " + st.Reason
	}
	fmt.Fprintf(tw, "VPN\t%s (since %s)\n", state, st.Since.Local().Format(time.DateTime))
	if st.Source != "" {
		fmt.Fprintf(tw, "config\t%s\n", st.Source)
	}
	if st.Config != nil {
		fmt.Fprintf(tw, "endpoint\t%s (server key %s)\n", st.Config.Endpoint, st.Config.PeerPublicKey)
		fmt.Fprintf(tw, "tunnel\t%s, DNS %s, MTU %d\n", strings.Join(st.Config.Addresses, " "), dash(strings.Join(st.Config.DNS, " ")), st.Config.MTU)
		fmt.Fprintf(tw, "box's key\t%s\n", st.Config.PublicKey)
	}
	if st.HandshakeAge >= 0 {
		fmt.Fprintf(tw, "handshake\t%s ago\n", time.Duration(st.HandshakeAge*float64(time.Second)).Round(time.Second))
	} else if st.Config != nil {
		fmt.Fprintf(tw, "handshake\tnone yet\n")
	}
	if st.Config != nil {
		fmt.Fprintf(tw, "traffic\t%d bytes in, %d out; %d reconnects\n", st.RxBytes, st.TxBytes, st.Reconnects)
	}
	if st.Exit != "" {
		fmt.Fprintf(tw, "exit address\t%s\n", st.Exit)
	} else if st.ExitError != "" {
		fmt.Fprintf(tw, "exit address\tunknown: %s\n", st.ExitError)
	}
	wan := st.WAN
	wanLine := wan.Addressing
	if wan.Interface != "" {
		wanLine = wan.Interface + " (" + wan.Addressing + ")"
	}
	if wan.Address.IsValid() {
		wanLine += " " + wan.Address.String()
	}
	if wan.Gateway.IsValid() {
		wanLine += " via " + wan.Gateway.String()
	}
	if wan.Problem != "" {
		wanLine += ": " + wan.Problem
	}
	fmt.Fprintf(tw, "WAN\t%s\n", wanLine)
	fw := "off (wan.firewall = false)"
	switch {
	case st.Firewall.On && st.Firewall.Installed:
		fw = fmt.Sprintf("%s; dropped %d out, %d in, %d forwarded", st.Firewall.Rules, st.Firewall.Dropped.OutDropped, st.Firewall.Dropped.InDropped, st.Firewall.Dropped.ForwardDropped)
	case st.Firewall.On:
		fw = "NOT INSTALLED: " + st.Firewall.Error
	}
	fmt.Fprintf(tw, "firewall\t%s\n", fw)
	if d := st.Firewall.Direct; d.On() {
		// The team mesh without strict mode: its WireGuard may go direct.
		what := fmt.Sprintf("UDP from port %d (socket mark 0x%x) to any address, and to port %d", d.Port, d.Mark, d.Port)
		switch {
		case st.Firewall.DirectOpen:
			what = "open: " + what
		case !st.Firewall.On:
			what = "not filtered (wan.firewall = false): " + what
		case st.Config == nil:
			what = "closed until a VPN is configured (nothing leaves without it)"
		default:
			what = "closed: the firewall could not take them: " + st.Firewall.Error
		}
		if st.WAN.DirectRoute != "" {
			what += "; route: " + st.WAN.DirectRoute
		}
		fmt.Fprintf(tw, "direct paths\t%s\n", what)
	}
	return tw.Flush()
}
