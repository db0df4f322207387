package main

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"text/tabwriter"
	"time"

	"github.com/redoubt/redoubt/ui/selftest"
)

// cmdSelftest runs the leak self-test from the laptop: the probes with this
// computer's own sockets, and the box's account of each.
func cmdSelftest(args []string) error {
	fs := flags("selftest", "selftest [--box URL] [--resolver ADDRESS]… [--json]   (on the laptop)")
	box := fs.String("box", "", "the box's `URL` (default: http:// and this computer's default gateway)")
	asJSON := fs.Bool("json", false, "print JSON for scripts")
	var resolvers []netip.Addr
	fs.Func("resolver", "also send plain DNS to this `address` (repeatable; at most 4)", func(s string) error {
		a, err := netip.ParseAddr(s)
		if err != nil {
			return fmt.Errorf("not an address: %q", s)
		}
		resolvers = append(resolvers, a)
		return nil
	})
	timeout := fs.Duration("timeout", 60*time.Second, "give up after this long")
	if err := fs.Parse(args); err != nil {
		return err
	}
	base := *box
	if base == "" {
		gw, err := selftest.DefaultGateway()
		if err != nil {
			return err
		}
		base = "http://" + gw.String()
	}
	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	rep, err := selftest.NewClient(base).Run(ctx, resolvers)
	if err != nil {
		return err
	}
	if *asJSON {
		if err := printJSON(rep); err != nil {
			return err
		}
	} else {
		w := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(w, "WAY OUT\tRESULT\tWHAT THIS COMPUTER SAW\tWHAT THE BOX SAW")
		for _, r := range rep.Results {
			saw := "-"
			if r.Outcome != nil {
				saw = r.Outcome.Detail
			}
			box := "nothing"
			if n := len(r.Evidence); n > 0 {
				e := r.Evidence[0]
				box = fmt.Sprintf("%s: %s %s%s", e.Source, e.Kind, e.Addr, e.Name)
				if n > 1 {
					box += fmt.Sprintf(" (+%d)", n-1)
				}
			}
			fmt.Fprintf(w, "%s\t%s\t%s\t%s\n", r.Probe.Way, r.Verdict, saw, box)
		}
		w.Flush()
		fmt.Println()
		fmt.Println(rep.Summary)
	}
	if !rep.Safe {
		return errors.New("something may have got out: see above")
	}
	return nil
}
