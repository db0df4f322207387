package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/redoubt/redoubt/ui/localapi"
)

const teamUsage = `Usage: redoubt team <command> [--json] [--socket PATH]

The team's members, as on the Team page (the box must be unlocked):
  list                          the team mesh's state, the members and their devices
  add NAME [--note TEXT] [--out DIR]
                                add a member and write their invitation to DIR
                                (default: here): join-NAME.sh (Linux, macOS),
                                join-NAME.ps1 (Windows), NAME-qr.png (phones)
  reissue NAME [--out DIR]      a new invitation; the old one stops working
  rename NAME NEW               rename a member
  remove NAME --yes             remove a member: their devices lose the box at once
  pending                       devices (phones) waiting for your approval
  pending LINK [--device NAME]  hand the box the registration link a phone showed
  approve ID MEMBER             approve a waiting device as one of MEMBER's
  approve ID --reject           refuse it
  test                          try the team's Headscale now

The team's Headscale server and API key: redoubt settings set team.server=URL team.api_key=-
`

// parseInterleaved parses args whose flags may come after the positional
// arguments (redoubt team add alice --note "…"), returning the positional ones.
func parseInterleaved(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		if fs.NArg() == 0 {
			return pos, nil
		}
		pos = append(pos, fs.Arg(0))
		args = fs.Args()[1:]
	}
}

func cmdTeam(args []string) error {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		fmt.Print(teamUsage)
		return nil
	}
	sub, args := args[0], args[1:]
	fs := flags("team "+sub, "team "+sub+" [flags]")
	fs.Usage = func() { fmt.Fprint(fs.Output(), teamUsage) }
	socket, asJSON := apiFlags(fs)
	note := fs.String("note", "", "add: a note on the member (who they are)")
	out := fs.String("out", ".", "add, reissue: the `directory` to write the invitation to")
	yes := fs.Bool("yes", false, "remove: really remove")
	device := fs.String("device", "", "pending LINK: a name for the device")
	reject := fs.Bool("reject", false, "approve: refuse the device instead")
	pos, err := parseInterleaved(fs, args)
	if err != nil {
		return err
	}
	want := func(n int, usage string) error {
		if len(pos) != n {
			return fmt.Errorf("usage: redoubt team %s", usage)
		}
		return nil
	}
	c := localapi.NewClient(*socket)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, 90*time.Second)
	defer cancel()
	done := func(v any, msg string) error {
		if *asJSON {
			return printJSON(v)
		}
		fmt.Println(msg)
		return nil
	}
	switch sub {
	case "list":
		if err := want(0, "list"); err != nil {
			return err
		}
		t, err := c.Team(ctx)
		if err != nil {
			return teamErr(err)
		}
		if *asJSON {
			return printJSON(t)
		}
		return printTeam(t)
	case "add":
		if err := want(1, "add NAME [--note TEXT] [--out DIR]"); err != nil {
			return err
		}
		inv, err := c.AddMember(ctx, pos[0], *note)
		if err != nil {
			return teamErr(err)
		}
		if *asJSON {
			return printJSON(inv)
		}
		return writeInvitation(inv, *out)
	case "reissue":
		if err := want(1, "reissue NAME [--out DIR]"); err != nil {
			return err
		}
		inv, err := c.Reissue(ctx, pos[0])
		if err != nil {
			return teamErr(err)
		}
		if *asJSON {
			return printJSON(inv)
		}
		return writeInvitation(inv, *out)
	case "rename":
		if err := want(2, "rename NAME NEW"); err != nil {
			return err
		}
		if err := c.RenameMember(ctx, pos[0], pos[1]); err != nil {
			return teamErr(err)
		}
		return done(map[string]string{"renamed": pos[0], "to": pos[1]}, pos[0]+" is now called "+pos[1]+".")
	case "remove":
		if err := want(1, "remove NAME --yes"); err != nil {
			return err
		}
		if !*yes {
			return fmt.Errorf("removing %s cuts their devices off at once: add --yes to do it", pos[0])
		}
		if err := c.RemoveMember(ctx, pos[0]); err != nil {
			return teamErr(err)
		}
		return done(map[string]string{"removed": pos[0]}, pos[0]+" is no longer in the team: their devices lost the box.")
	case "pending":
		if len(pos) == 1 {
			if err := c.AddPending(ctx, pos[0], *device); err != nil {
				return teamErr(err)
			}
			if *asJSON {
				p, err := c.Pending(ctx)
				if err != nil {
					return teamErr(err)
				}
				return printJSON(p)
			}
			fmt.Println("The device waits for your approval: redoubt team pending lists it, redoubt team approve ID MEMBER approves it.")
			return nil
		}
		if err := want(0, "pending [LINK [--device NAME]]"); err != nil {
			return err
		}
		p, err := c.Pending(ctx)
		if err != nil {
			return teamErr(err)
		}
		if *asJSON {
			return printJSON(p)
		}
		if len(p) == 0 {
			fmt.Println("No device is waiting.")
			return nil
		}
		w := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(w, "ID\tDEVICE\tASKED")
		for _, d := range p {
			fmt.Fprintf(w, "%s\t%s\t%s\n", d.ID, dash(d.Name), d.Requested.Local().Format("2 Jan 15:04 MST"))
		}
		return w.Flush()
	case "approve":
		if *reject {
			if err := want(1, "approve ID --reject"); err != nil {
				return err
			}
			if err := c.Reject(ctx, pos[0]); err != nil {
				return teamErr(err)
			}
			return done(map[string]string{"rejected": pos[0]}, "The device was refused.")
		}
		if err := want(2, "approve ID MEMBER"); err != nil {
			return err
		}
		if err := c.Approve(ctx, pos[0], pos[1]); err != nil {
			return teamErr(err)
		}
		return done(map[string]string{"approved": pos[0], "member": pos[1]}, "The device is "+pos[1]+"'s now, and joins the team.")
	case "test":
		if err := want(0, "test"); err != nil {
			return err
		}
		msg, err := c.TestMesh(ctx)
		if err != nil {
			return teamErr(err)
		}
		return done(map[string]string{"result": msg}, msg)
	}
	return fmt.Errorf("unknown team command %q\n\n%s", sub, teamUsage)
}

// teamErr says which value was wrong, when the box named one.
func teamErr(err error) error {
	var fe *localapi.FieldError
	if errors.As(err, &fe) && fe.Field != "" {
		return fmt.Errorf("%s: %s", fe.Field, fe.Message)
	}
	return err
}

func printTeam(t localapi.Team) error {
	st := t.Status
	switch {
	case !st.Configured:
		fmt.Println("The team mesh is not set up: redoubt settings set team.server=URL team.api_key=-")
		return nil
	case st.Reachable:
		fmt.Printf("Team mesh: Headscale %s answers. %s\n", st.LoginServer, st.Detail)
	default:
		fmt.Printf("Team mesh: Headscale %s: %s\n", st.LoginServer, st.Detail)
	}
	if st.ReachEachOther {
		fmt.Println("Members may reach each other's devices.")
	}
	if len(t.Members) == 0 {
		fmt.Println("No members yet: redoubt team add NAME")
		return nil
	}
	fmt.Println()
	w := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "MEMBER\tDEVICE\tADDRESSES\tSYSTEM\tSEEN")
	for _, m := range t.Members {
		name := m.Name
		if m.Note != "" {
			name += " (" + m.Note + ")"
		}
		if len(m.Devices) == 0 {
			fmt.Fprintf(w, "%s\t-\t-\t-\tno device yet\n", name)
		}
		for i, d := range m.Devices {
			if i > 0 {
				name = ""
			}
			seen := "online"
			if !d.Online {
				seen = "last " + d.LastSeen.Local().Format("2 Jan 15:04 MST")
				if d.LastSeen.IsZero() {
					seen = "never"
				}
			}
			fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\n", name, d.Name, strings.Join(d.Addrs, " "), dash(d.OS), seen)
		}
	}
	return w.Flush()
}

// writeInvitation writes a member's scripts and QR code to dir. The scripts hold
// a key that lets whoever runs them join as the member: they are written for
// their owner alone (0600).
func writeInvitation(inv localapi.Invitation, dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("making %s: %w", dir, err)
	}
	files := []struct {
		name string
		data []byte
	}{
		{"join-" + inv.Member + ".sh", []byte(inv.Shell)},
		{"join-" + inv.Member + ".ps1", []byte(inv.PowerShell)},
		{inv.Member + "-qr.png", inv.QR},
	}
	var written []string
	for _, f := range files {
		p := filepath.Join(dir, f.name)
		if err := os.WriteFile(p, f.data, 0o600); err != nil {
			return fmt.Errorf("writing %s: %w", p, err)
		}
		written = append(written, p)
	}
	fmt.Printf("%s's invitation works once, until %s:\n", inv.Member, inv.Expires.Local().Format("2 Jan 15:04 MST"))
	for _, p := range written {
		fmt.Println("  " + p)
	}
	fmt.Printf("\nSend them over a channel you trust. Linux and macOS: sh join-%s.sh; Windows: powershell -ExecutionPolicy Bypass -File join-%s.ps1.\n", inv.Member, inv.Member)
	fmt.Printf("Phones: the Tailscale app with the server %s (the QR code), then redoubt team pending LINK.\n", inv.LoginServer)
	if inv.CAFingerprint != "" {
		fmt.Printf("The box's certificate, which the scripts install, has the fingerprint %s.\n", inv.CAFingerprint)
	}
	return nil
}
