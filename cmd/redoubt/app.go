package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/redoubt/redoubt/apps"
	"github.com/redoubt/redoubt/ui/localapi"
)

const appUsage = `Usage: redoubt app <command> [--socket PATH] [--json]

  list                       the apps: state and where each is published
  info NAME [--details]      what an app is (parsable: one "key: value" per line)
  status NAME                installed, running, published
  enable NAME                start it now (its autostart option decides after a lock)
  disable NAME               stop it now
  get-option NAME OPTION     an option's value
  set-option NAME OPTION VALUE
                             set an option (a size like 20GB, a duration like 7d,
                             true/false…); the app restarts unless the option is live
  password NAME list         the app passwords for native clients on the LAN
  password NAME add LABEL    make one for a device (shown once)
  password NAME revoke LABEL
`

// parseAll parses fs's flags wherever they are among args, and returns the
// other arguments in order.
func parseAll(fs *flag.FlagSet, args []string) ([]string, error) {
	var rest []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		if fs.NArg() == 0 {
			return rest, nil
		}
		rest = append(rest, fs.Arg(0))
		args = fs.Args()[1:]
	}
}

func cmdApp(args []string) error {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		fmt.Print(appUsage)
		return nil
	}
	sub := args[0]
	fs := flags("app "+sub, "app "+sub+" [flags]")
	socket, asJSON := apiFlags(fs)
	details := fs.Bool("details", false, "info: everything the manifest says, with the options and how to connect")
	pos, err := parseAll(fs, args[1:])
	if err != nil {
		return err
	}
	want := func(n int, usage string) error {
		if len(pos) != n {
			return fmt.Errorf("usage: redoubt app %s", usage)
		}
		return nil
	}
	c := localapi.NewClient(*socket)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	out := os.Stdout
	switch sub {
	case "list":
		if err := want(0, "list"); err != nil {
			return err
		}
		list, err := c.Apps(ctx)
		if err != nil {
			return err
		}
		if *asJSON {
			return printJSON(list)
		}
		w := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
		fmt.Fprintln(w, "APP\tNAME\tSTATE\tAUTOSTART\tPUBLISHED")
		for _, a := range list {
			fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\n", a.ID, a.Name, a.State, yesNo(a.Autostart), orDash(origins(a.Published)))
		}
		return w.Flush()
	case "info":
		if err := want(1, "info NAME [--details]"); err != nil {
			return err
		}
		info, err := c.AppInfo(ctx, pos[0])
		if err != nil {
			return err
		}
		if *asJSON {
			return printJSON(info)
		}
		printAppInfo(out, info, *details)
		return nil
	case "status":
		if err := want(1, "status NAME"); err != nil {
			return err
		}
		st, err := c.AppStatus(ctx, pos[0])
		if err != nil {
			return err
		}
		if *asJSON {
			return printJSON(st)
		}
		printAppStatus(out, st)
		return nil
	case "enable", "disable":
		if err := want(1, sub+" NAME"); err != nil {
			return err
		}
		var st apps.Status
		if sub == "enable" {
			st, err = c.EnableApp(ctx, pos[0])
		} else {
			st, err = c.DisableApp(ctx, pos[0])
		}
		if err != nil {
			return err
		}
		if *asJSON {
			return printJSON(st)
		}
		printAppStatus(out, st)
		return nil
	case "get-option":
		if err := want(2, "get-option NAME OPTION"); err != nil {
			return err
		}
		v, err := c.AppOption(ctx, pos[0], pos[1])
		if err != nil {
			return err
		}
		if *asJSON {
			return printJSON(localapi.AppOption{App: pos[0], Name: pos[1], Value: v})
		}
		fmt.Fprintln(out, v)
		return nil
	case "set-option":
		if err := want(3, "set-option NAME OPTION VALUE"); err != nil {
			return err
		}
		v, err := c.SetAppOption(ctx, pos[0], pos[1], pos[2])
		if err != nil {
			return err
		}
		if *asJSON {
			return printJSON(localapi.AppOption{App: pos[0], Name: pos[1], Value: v})
		}
		fmt.Fprintln(out, v)
		return nil
	case "password":
		return appPassword(ctx, c, out, pos, *asJSON)
	}
	return fmt.Errorf("unknown command %q\n\n%s", sub, appUsage)
}

func appPassword(ctx context.Context, c *localapi.Client, out io.Writer, pos []string, asJSON bool) error {
	if len(pos) < 2 {
		return fmt.Errorf("usage: redoubt app password NAME list|add LABEL|revoke LABEL")
	}
	id, op := pos[0], pos[1]
	switch {
	case op == "list" && len(pos) == 2:
		ps, err := c.AppPasswords(ctx, id)
		if err != nil {
			return err
		}
		if asJSON {
			return printJSON(ps)
		}
		w := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
		fmt.Fprintln(w, "LABEL\tCREATED")
		for _, p := range ps {
			fmt.Fprintf(w, "%s\t%s\n", p.Label, p.Created.Local().Format(time.DateTime))
		}
		return w.Flush()
	case op == "add" && len(pos) == 3:
		pw, err := c.AddAppPassword(ctx, id, pos[2])
		if err != nil {
			return err
		}
		if asJSON {
			return printJSON(localapi.AppPassword{Label: pos[2], Password: pw})
		}
		fmt.Fprintf(out, "%s\n\nUse it with any user name, on the app's LAN address (redoubt app info %s --details).\nIt is shown only now; revoke it with: redoubt app password %s revoke %q\n", pw, id, id, pos[2])
		return nil
	case op == "revoke" && len(pos) == 3:
		return c.RevokeAppPassword(ctx, id, pos[2])
	}
	return fmt.Errorf("usage: redoubt app password NAME list|add LABEL|revoke LABEL")
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func origins(os []apps.Origin) string {
	var out []string
	for _, o := range os {
		out = append(out, o.URL)
	}
	return strings.Join(out, " ")
}

// printAppStatus prints Tails Server's three lines, and why when it failed.
func printAppStatus(w io.Writer, st apps.Status) {
	fmt.Fprintf(w, "installed: %s\n", yesNo(st.Installed))
	fmt.Fprintf(w, "running: %s\n", yesNo(st.Running))
	fmt.Fprintf(w, "published: %s\n", yesNo(len(st.Published) > 0))
	for _, o := range st.Published {
		fmt.Fprintf(w, "published-%s: %s\n", o.Network, o.URL)
	}
	fmt.Fprintf(w, "state: %s\n", st.State)
	if st.Problem != "" {
		fmt.Fprintf(w, "problem: %s\n", oneLine(st.Problem))
	}
}

func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }

// printAppInfo prints "key: value" lines: lists joined by ", ", multi-line
// text on one line; with details, the options, listeners, data, egress and
// how to connect, one key each.
func printAppInfo(w io.Writer, info apps.Info, details bool) {
	m := info.Manifest
	var exposure []string
	for _, e := range m.Exposure {
		exposure = append(exposure, string(e))
	}
	fmt.Fprintf(w, "id: %s\n", m.ID)
	fmt.Fprintf(w, "name: %s\n", m.Name)
	fmt.Fprintf(w, "description: %s\n", oneLine(m.Description))
	fmt.Fprintf(w, "version: %s\n", m.Version)
	fmt.Fprintf(w, "kind: %s\n", info.Kind)
	fmt.Fprintf(w, "clients: %s\n", strings.Join(m.Clients, ", "))
	fmt.Fprintf(w, "exposure: %s\n", strings.Join(exposure, ", "))
	fmt.Fprintf(w, "state: %s\n", info.State)
	for _, c := range info.Connect {
		fmt.Fprintf(w, "connect-%s: %s %s\n", c.Network, c.URL, "("+c.Label+")")
	}
	names := make([]string, 0, len(info.Options))
	for n := range info.Options {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(w, "option-%s: %s\n", n, info.Options[n])
	}
	if !details {
		return
	}
	fmt.Fprintf(w, "data: %s\n", strings.Join(m.Data, "; "))
	fmt.Fprintf(w, "egress: %s\n", orDash(strings.Join(m.Egress, ", ")))
	for _, l := range m.Listeners {
		fmt.Fprintf(w, "listener-%s: %s/%d\n", l.Name, l.Proto, l.Port)
	}
	for _, o := range m.Options {
		fmt.Fprintf(w, "option-%s-type: %s\n", o.Name, o.Type)
		fmt.Fprintf(w, "option-%s-default: %s\n", o.Name, o.Default)
		fmt.Fprintf(w, "option-%s-accepts: %s\n", o.Name, o.Accepts())
		fmt.Fprintf(w, "option-%s-description: %s\n", o.Name, oneLine(o.Description))
		if o.Live {
			fmt.Fprintf(w, "option-%s-live: yes\n", o.Name)
		}
	}
	if u := info.Usage; u != nil {
		quota := "none"
		if u.Quota > 0 {
			quota = apps.FormatSize(u.Quota)
		}
		fmt.Fprintf(w, "usage: %d bytes in %d blobs (quota %s, disk free %d bytes)\n", u.Bytes, u.Blobs, quota, u.DiskFree)
	}
	fmt.Fprintf(w, "docs: %s\n", oneLine(m.Docs))
}
