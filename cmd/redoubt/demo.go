package main

import (
	"context"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/redoubt/redoubt/datapath/leaklog"
	"github.com/redoubt/redoubt/lab"
)

// The demo's owner: shown on screen, so anyone watching can sign in.
const (
	demoPassphrase = "orbit lantern cactus violin"
	demoName       = "demo"
)

// labDemo builds a persistent lab, shows a newcomer what the box does, and leaves
// it running.
func labDemo(args []string) error {
	fs := flags("lab demo", "lab demo")
	if err := fs.Parse(args); err != nil {
		return err
	}
	bin, err := self()
	if err != nil {
		return err
	}
	if err := lab.Supported(); err != nil {
		return err
	}
	// One demo at a time: remove labs from earlier demos first.
	if err := lab.Down(nil); err != nil {
		return err
	}
	ctx := context.Background()
	say := func(format string, args ...any) { fmt.Printf(format+"\n", args...) }
	step := func(format string, args ...any) { fmt.Printf("\n==> "+format+"\n", args...) }

	step("Building the lab: a laptop, the Redoubt box, and the internet, each in its own network namespace")
	l, err := lab.Up(ctx, lab.Options{Binary: bin, Persistent: true})
	if err != nil {
		return err
	}
	fail := func(err error) error {
		say("\nThe demo failed; removing the lab.")
		l.Down()
		return err
	}
	say("    laptop   %s  (plugged into the box's LAN port)", l.NS(lab.Laptop))
	say("    box      %s  (LAN port %s taken over by Redoubt; WAN port %s)", l.NS(lab.Box), lab.BoxLANIface, lab.BoxWANIface)
	say("    internet %s  (a tracker at %s = %s, a DNS resolver at %s)", l.NS(lab.Internet), lab.TrackerName, lab.Tracker, lab.Resolver)

	step("Starting the box")
	box, err := l.StartBox(ctx, l.BoxConfig(""))
	if err != nil {
		return fail(err)
	}
	say("    redoubt serve is running (pid %d); its log: %s", box.Pid(), box.Log)

	step("The laptop asks the box for an address by DHCP (ISC dhclient, as a Linux laptop would)")
	dc, err := l.StartDHClient(ctx, lab.DHCPOptions{Hostname: "laptop"})
	if err != nil {
		return fail(err)
	}
	wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	lease, _, err := dc.WaitLease(wctx, 0)
	cancel()
	if err != nil {
		return fail(err)
	}
	say("    laptop: %s, router %v, DNS %v, domain %s, lease %v", lease.Addr, lease.Router, lease.DNS, lease.Domain, lease.Lease)
	if lease.Captive != "" {
		say("    and, until setup is done, the setup page as captive portal: %s", lease.Captive)
	}

	step("The laptop's browser is sent to the box's setup page")
	out, err := l.Exec(ctx, lab.Laptop, "curl", "-sSL", "--max-time", "5", "http://"+lab.BoxLAN.String()+"/")
	if err != nil {
		return fail(err)
	}
	say("    curl -L http://%s/ → %q", lab.BoxLAN, firstMatch(out, "<h1>", "</h1>"))

	step("Setting the box up, as its owner would in the browser")
	code, err := box.API.SetupCode(ctx)
	if err != nil {
		return fail(err)
	}
	say("    the setup code, as `redoubt setup-code` prints it on the box: %s", code)
	client := l.HTTPClient(lab.Laptop, nil)
	base := "http://" + lab.BoxLAN.String()
	if err := lab.SetUpBox(ctx, client, base, code, demoPassphrase, demoName); err != nil {
		return fail(err)
	}
	say("    passphrase %q, box name %q: done; the box made its own certificate authority", demoPassphrase, demoName)

	step("The laptop tries to reach the tracker: curl https://%s/ (%s)", lab.TrackerName, lab.Tracker)
	l.ResetIngress(ctx, lab.Internet)
	out, _ = l.Exec(ctx, lab.Laptop, "curl", "-sS", "--max-time", "5",
		"--resolve", lab.TrackerName+":443:"+lab.Tracker.String(), "https://"+lab.TrackerName+"/")
	say("    curl says: %s", strings.TrimSpace(lastLine(out)))

	step("What the box stopped (its leak log)")
	var found *leaklog.Entry
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		leaks, err := box.API.Leaks(ctx)
		if err != nil {
			return fail(err)
		}
		for i, e := range leaks.Entries {
			if e.Name == lab.TrackerName {
				found = &leaks.Entries[i]
			}
		}
		if found != nil {
			break
		}
	}
	if found == nil {
		return fail(fmt.Errorf("the attempt to reach %s is not in the leak log", lab.TrackerName))
	}
	say("    stopped: %s %s/%s from %s to %s port %d, revealing the name %q",
		found.Kind, found.Proto, found.App, found.Src, found.Dst, found.DstPort, found.Name)
	c, err := l.Ingress(ctx, lab.Internet)
	if err != nil {
		return fail(err)
	}
	say("    packets that reached the internet meanwhile: %d", c.All)

	step("The lab is running")
	say("    the box's pages, from this machine's browser: in another terminal run")
	say("        sudo %s lab forward", bin)
	say("      then open https://localhost:8443/ and sign in with %q", demoPassphrase)
	say("      (the browser warns until you trust the box's CA: http://localhost:8080/ca.crt)")
	say("    a shell in the laptop:   sudo %s lab shell laptop", bin)
	say("      (try: curl http://%s/   curl https://example.com/   ping %s)", lab.BoxLAN, lab.Tracker)
	say("    the leak log, live:      sudo %s leaks --follow --socket %s", bin, l.BoxSocket())
	say("    the box's status:        sudo %s status --socket %s", bin, l.BoxSocket())
	say("    the laptop's DHCP lease: sudo %s devices --socket %s", bin, l.BoxSocket())
	say("    dropped frames as pcap:  sudo %s leaks --pcap drops.pcap --socket %s", bin, l.BoxSocket())
	say("    stop and remove it all:  sudo %s lab down   (or: make demo-down)", bin)
	fmt.Fprintln(os.Stdout)
	return nil
}

func firstMatch(s, start, end string) string {
	i := strings.Index(s, start)
	if i < 0 {
		return strings.TrimSpace(lastLine(s))
	}
	s = s[i+len(start):]
	if j := strings.Index(s, end); j >= 0 {
		s = s[:j]
	}
	return strings.TrimSpace(s)
}

func lastLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.LastIndex(s, "\n"); i >= 0 {
		return s[i+1:]
	}
	return s
}
