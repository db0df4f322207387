package main

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"os/signal"
	"syscall"

	"github.com/redoubt/redoubt/lab"
	"github.com/redoubt/redoubt/lab/internet"
)

const labUsage = `Usage: redoubt lab <command>

  up [--vpn] [--mesh]
                  build the lab (--vpn: with the VPN provider; --mesh: also Headscale and a teammate),
                  run the box in it, and wait; Ctrl-C removes it all
  demo            build the lab, show the box working, and leave it running
  shell NODE      open a shell in a node of the running lab (laptop, box, homerouter, internet, vpn,
                  coord, teamrouter, teammate)
  forward         open the box's pages to this machine's browser, as the laptop sees them
  down            stop and remove the demo's lab and any a crashed run left (--all: every lab)
  list            list the labs on this machine
`

func cmdLab(args []string) error {
	if len(args) == 0 {
		fmt.Print(labUsage)
		return nil
	}
	switch args[0] {
	case "up":
		return labUp(args[1:])
	case "demo":
		return labDemo(args[1:])
	case "shell":
		return labShell(args[1:])
	case "down":
		return labDown(args[1:])
	case "list":
		return labList(args[1:])
	case "internet":
		return labInternet(args[1:])
	case "forward":
		return labForward(args[1:])
	case "-h", "--help", "help":
		fmt.Print(labUsage)
		return nil
	}
	return fmt.Errorf("unknown lab command %q\n\n%s", args[0], labUsage)
}

func self() (string, error) {
	p, err := os.Executable()
	if err != nil {
		return "", fmt.Errorf("finding the redoubt executable: %w", err)
	}
	return p, nil
}

func labLogf(format string, args ...any) { fmt.Fprintf(os.Stderr, format+"\n", args...) }

// labUp builds a lab with the box running and the laptop addressed, then waits for
// Ctrl-C and removes everything.
func labUp(args []string) error {
	fs := flags("lab up", "lab up [--vpn] [--mesh]")
	withVPN := fs.Bool("vpn", false, "add the VPN provider and give the box its WAN by DHCP and the VPN")
	withMesh := fs.Bool("mesh", false, "add the team mesh (Headscale, a teammate behind its own NAT; scripts/tools.sh builds them) and the VPN")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *withMesh {
		*withVPN = true // the box reaches Headscale only through its VPN
	}
	bin, err := self()
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	l, err := lab.Up(ctx, lab.Options{Binary: bin, Logf: labLogf, VPN: *withVPN, Mesh: *withMesh})
	if err != nil {
		return err
	}
	defer l.Down()
	if _, err := l.StartBox(ctx, l.BoxConfig(l.VPNBoxConfig())); err != nil {
		return err
	}
	if err := l.LaptopStatic(ctx); err != nil {
		return err
	}
	fmt.Printf("lab %s is up; the box's log is %s/box.log\n", l.Prefix, l.Dir)
	fmt.Printf("  a shell in the laptop:  %s lab shell laptop\n", bin)
	fmt.Printf("  the leak log:           %s leaks --socket %s\n", bin, l.BoxSocket())
	if *withVPN {
		fmt.Printf("  the box's VPN:          %s vpn status --socket %s\n", bin, l.BoxSocket())
	}
	if m := l.Mesh; m != nil {
		fmt.Printf("  Headscale:              %s (CA %s; API key in %s/api-key)\n", m.URL, m.CAFile, m.Dir)
		fmt.Printf("  a shell in the teammate: %s lab shell teammate (tailscale --socket=%s status)\n", bin, m.TeammateSocket)
	}
	fmt.Println("Ctrl-C removes the lab.")
	<-ctx.Done()
	return nil
}

func labShell(args []string) error {
	fs := flags("lab shell", "lab shell NODE")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return fmt.Errorf("name the node: laptop, box, homerouter, internet (or vpn, in a lab with the VPN; coord, teamrouter, teammate in one with the mesh)")
	}
	st, err := lab.Find()
	if err != nil {
		return err
	}
	ns := st.Prefix + "-" + fs.Arg(0)
	if _, err := os.Stat("/run/netns/" + ns); err != nil {
		return fmt.Errorf("lab %s has no node %q", st.Prefix, fs.Arg(0))
	}
	shell := os.Getenv("SHELL")
	if shell == "" {
		shell = "/bin/sh"
	}
	fmt.Fprintf(os.Stderr, "entering %s (lab %s); exit to leave\n", fs.Arg(0), st.Prefix)
	cmd := exec.Command("ip", "netns", "exec", ns, shell)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	cmd.Env = append(os.Environ(),
		"REDOUBT_SOCKET="+lab.StateRoot+"/"+st.Prefix+"/box.sock",
		"PS1="+fs.Arg(0)+"# ")
	return cmd.Run()
}

func labDown(args []string) error {
	fs := flags("lab down", "lab down [--all]")
	all := fs.Bool("all", false, "also remove labs that running tests are using")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if err := lab.Supported(); err != nil {
		return err
	}
	if *all {
		return lab.Sweep(true, labLogf)
	}
	return lab.Down(labLogf)
}

func labList(args []string) error {
	labs, err := lab.List()
	if err != nil {
		return err
	}
	for _, s := range labs {
		kind := "owned by pid " + fmt.Sprint(s.Owner)
		if s.Persistent {
			kind = "persistent"
		}
		fmt.Printf("%s  created %s  %s  %v\n", s.Prefix, s.Created, kind, s.Namespaces)
	}
	return nil
}

// labInternet runs the internet's services; the lab starts it in its internet node.
func labInternet(args []string) error {
	fs := flags("lab internet", "lab internet --tracker ADDR --name NAME")
	tracker := fs.String("tracker", lab.Tracker.String(), "the address every name resolves to")
	name := fs.String("name", lab.TrackerName, "the tracker's name (for its certificate)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	addr, err := netip.ParseAddr(*tracker)
	if err != nil {
		return fmt.Errorf("--tracker %q: %w", *tracker, err)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return internet.Serve(ctx, internet.Options{Tracker: addr, Log: os.Stdout, Names: []string{*name}})
}

// labForward carries localhost:8080 and :8443 to the box's ports 80 and 443, as
// connections from the lab's laptop, until Ctrl-C.
func labForward(args []string) error {
	fs := flags("lab forward", "lab forward [--http ADDR] [--https ADDR]")
	httpAddr := fs.String("http", "127.0.0.1:8080", "where to listen for the box's port 80")
	httpsAddr := fs.String("https", "127.0.0.1:8443", "where to listen for the box's port 443")
	if err := fs.Parse(args); err != nil {
		return err
	}
	st, err := lab.Find()
	if err != nil {
		return err
	}
	l := lab.Attach(st)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	fmt.Printf("the box's pages as the laptop of lab %s sees them:\n  http://%s/   https://%s/\nCtrl-C stops.\n", st.Prefix, *httpAddr, *httpsAddr)
	errc := make(chan error, 2)
	go func() { errc <- l.Forward(ctx, *httpAddr, lab.Laptop, lab.BoxLAN.String()+":80") }()
	go func() { errc <- l.Forward(ctx, *httpsAddr, lab.Laptop, lab.BoxLAN.String()+":443") }()
	if err := <-errc; err != nil {
		return err
	}
	return <-errc
}
