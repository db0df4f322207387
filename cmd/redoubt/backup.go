package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/redoubt/redoubt/backup"
	"github.com/redoubt/redoubt/backup/target/s3"
	"github.com/redoubt/redoubt/ui/localapi"
)

const backupUsage = `Usage: redoubt backup <command> [flags]

  status                 the targets, their last runs, the next, the restore drill
  now [--wait]           back up now (when the box is unlocked and its clock synced)
  settings               the backup settings (secrets left out)
  s3 --endpoint URL --bucket NAME [--prefix P] [--region R] --access-key K
                         back up to an S3-compatible bucket (the secret key from
                         the terminal or standard input; --ca FILE for a
                         self-hosted server)
  peer NAME ADDRESS      back up to a teammate's box at its tailnet ADDRESS (the
                         invitation code from the terminal or standard input)
  unpeer NAME            stop backing up to a teammate's box
  schedule [--at HH:MM | --every DURATION] [--keep-last N --keep-daily N
           --keep-weekly N --keep-monthly N] [--pause | --resume]
  key                    print the recovery key (write it down; keep it away from the box)
  split K MEMBER…        split the recovery key: any K of these members rebuild it
  snapshots [--target T] the snapshots kept (T: s3 or peer:NAME)
  ls [--target T] [--snapshot ID] [PATH]   what a snapshot holds (PATH: state/apps/…)
  get [--target T] [--snapshot ID] PATH    write a file of a snapshot to standard output
  restore-item [--target T] [--snapshot ID] PATH
                         put a file or folder back (beside the current one)
  drill                  the restore drill now
  keep NAME SIZE         keep a teammate's backups here, up to SIZE (20GB); prints
                         the invitation code to give them
  kept                   the teammates' backups kept here
  unkeep NAME            delete a teammate's backups kept here
  restore (--s3-endpoint URL --bucket NAME [--prefix P] --access-key K | --peer ADDRESS)
          (--key | --shares)
                         restore a backup onto this fresh box: the recovery key (or
                         one member's share per line) and the new passphrase are
                         read from the terminal or standard input
`

func cmdBackup(args []string) error {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		fmt.Print(backupUsage)
		return nil
	}
	sub, args := args[0], args[1:]
	fs := flags("backup "+sub, "backup "+sub+" [flags]")
	socket, asJSON := apiFlags(fs)
	tgt := fs.String("target", "", "the target: s3 or peer:NAME (default: the first)")
	snap := fs.String("snapshot", "latest", "the snapshot's `id`")
	wait := fs.Bool("wait", false, "now: wait for the backup to finish")
	endpoint := fs.String("endpoint", "", "s3: the service's `URL`")
	bucket := fs.String("bucket", "", "s3: the bucket")
	prefix := fs.String("prefix", "", "s3: a folder in the bucket")
	region := fs.String("region", "", "s3: the region (default us-east-1)")
	access := fs.String("access-key", "", "s3: the access key")
	caFile := fs.String("ca", "", "s3: a CA certificate `file` to trust")
	at := fs.String("at", "", "schedule: daily at `HH:MM` UTC")
	every := fs.Duration("every", 0, "schedule: every `duration` instead (1h to 168h)")
	keepLast := fs.Int("keep-last", -1, "schedule: keep the N newest snapshots")
	keepDaily := fs.Int("keep-daily", -1, "schedule: keep one a day for N days")
	keepWeekly := fs.Int("keep-weekly", -1, "schedule: keep one a week for N weeks")
	keepMonthly := fs.Int("keep-monthly", -1, "schedule: keep one a month for N months")
	pause := fs.Bool("pause", false, "schedule: pause scheduled backups")
	resume := fs.Bool("resume", false, "schedule: resume scheduled backups")
	s3Endpoint := fs.String("s3-endpoint", "", "restore: the S3 service's `URL`")
	peerAddr := fs.String("peer", "", "restore: the teammate's box's tailnet `address`")
	useKey := fs.Bool("key", false, "restore: with the recovery key")
	useShares := fs.Bool("shares", false, "restore: with members' shares, one per line")
	if err := fs.Parse(reorderBackup(args)); err != nil {
		return err
	}
	c := localapi.NewClient(*socket)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	api := func(method, path string, body, out any) error {
		return c.Call(ctx, method, "/v1/backup/"+path, body, out)
	}
	settings := func() (backup.Settings, error) {
		var s backup.Settings
		return s, api("GET", "settings", nil, &s)
	}
	target := func() (string, error) {
		if *tgt != "" {
			return *tgt, nil
		}
		s, err := settings()
		if err != nil {
			return "", err
		}
		if t := s.Targets(); len(t) > 0 {
			return t[0], nil
		}
		return "", backup.ErrNotConfigured
	}
	q := func(kv ...string) string {
		v := url.Values{}
		for i := 0; i+1 < len(kv); i += 2 {
			v.Set(kv[i], kv[i+1])
		}
		return v.Encode()
	}

	switch sub {
	case "status":
		var st backup.Status
		if err := api("GET", "status", nil, &st); err != nil {
			return err
		}
		if *asJSON {
			return printJSON(st)
		}
		printBackupStatus(os.Stdout, st)
		return nil
	case "now":
		var r map[string]string
		if err := api("POST", "run", nil, &r); err != nil {
			return err
		}
		fmt.Println("backup:", r["status"])
		if !*wait {
			return nil
		}
		start := time.Now()
		for {
			time.Sleep(250 * time.Millisecond)
			var st backup.Status
			if err := api("GET", "status", nil, &st); err != nil {
				return err
			}
			done := !st.Running && len(st.Targets) > 0
			for _, t := range st.Targets {
				done = done && t.Started.After(start.Add(-2*time.Second)) && t.Result != "running"
			}
			if done {
				printBackupStatus(os.Stdout, st)
				for _, t := range st.Targets {
					if t.Result != "ok" {
						return fmt.Errorf("the backup to %s failed: %s", t.Name, t.Error)
					}
				}
				return nil
			}
			if ctx.Err() != nil {
				return ctx.Err()
			}
		}
	case "settings":
		s, err := settings()
		if err != nil {
			return err
		}
		return printJSON(s)
	case "s3":
		s, err := settings()
		if err != nil {
			return err
		}
		cfg := s3.Config{Endpoint: *endpoint, Bucket: *bucket, Prefix: *prefix, Region: *region, AccessKey: *access}
		if *caFile != "" {
			b, err := os.ReadFile(*caFile)
			if err != nil {
				return err
			}
			cfg.CA = string(b)
		}
		secret, err := readPassphrase("S3 secret key: ")
		if err != nil {
			return err
		}
		cfg.SecretKey = string(secret)
		s.S3 = &cfg
		if err := api("PUT", "settings", s, nil); err != nil {
			return err
		}
		fmt.Println("backups go to", cfg.Endpoint+"/"+cfg.Bucket+"/"+cfg.Prefix, "through the VPN")
		return nil
	case "peer", "unpeer":
		s, err := settings()
		if err != nil {
			return err
		}
		name := fs.Arg(0)
		var peers []backup.PeerTarget
		for _, p := range s.Peers {
			if p.Name != name {
				peers = append(peers, p)
			}
		}
		if sub == "peer" {
			if fs.NArg() != 2 {
				return errors.New("backup peer NAME ADDRESS")
			}
			code, err := readPassphrase("Invitation code: ")
			if err != nil {
				return err
			}
			peers = append(peers, backup.PeerTarget{Name: name, Address: fs.Arg(1), Code: strings.TrimSpace(string(code))})
		}
		s.Peers = peers
		return api("PUT", "settings", s, nil)
	case "schedule":
		s, err := settings()
		if err != nil {
			return err
		}
		if *at != "" {
			s.At, s.Every = *at, 0
		}
		if *every != 0 {
			s.At, s.Every = "", *every
		}
		for _, k := range []struct {
			v   int
			dst *int
		}{{*keepLast, &s.Keep.Last}, {*keepDaily, &s.Keep.Daily}, {*keepWeekly, &s.Keep.Weekly}, {*keepMonthly, &s.Keep.Monthly}} {
			if k.v >= 0 {
				*k.dst = k.v
			}
		}
		if *pause {
			s.Paused = true
		}
		if *resume {
			s.Paused = false
		}
		return api("PUT", "settings", s, nil)
	case "key":
		var raw []byte
		if err := api("GET", "key", nil, &raw); err != nil {
			return err
		}
		fmt.Print(string(raw))
		return nil
	case "split":
		if fs.NArg() < 3 {
			return errors.New("backup split K MEMBER MEMBER…")
		}
		var k int
		if _, err := fmt.Sscan(fs.Arg(0), &k); err != nil {
			return fmt.Errorf("K %q: want a number", fs.Arg(0))
		}
		var hs []backup.ShareHolder
		if err := api("POST", "split", map[string]any{"k": k, "members": fs.Args()[1:]}, &hs); err != nil {
			return err
		}
		fmt.Printf("the recovery key is split: any %d of %d members rebuild it; each finds their share on the members' page\n", k, len(hs))
		return nil
	case "snapshots":
		t, err := target()
		if err != nil {
			return err
		}
		var out []backup.SnapshotInfo
		if err := api("GET", "snapshots?"+q("target", t), nil, &out); err != nil {
			return err
		}
		if *asJSON {
			return printJSON(out)
		}
		w := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(w, "ID\tTIME\tFILES\tSIZE\tNEW")
		for _, s := range out {
			fmt.Fprintf(w, "%s\t%s\t%d\t%s\t%s\n", s.ID, s.Time.Local().Format("2006-01-02 15:04"), s.Stats.Files, human(s.Stats.Bytes), human(s.Stats.NewBytes))
		}
		return w.Flush()
	case "ls":
		t, err := target()
		if err != nil {
			return err
		}
		var out []backup.Entry
		if err := api("GET", "browse?"+q("target", t, "snapshot", *snap, "path", fs.Arg(0)), nil, &out); err != nil {
			return err
		}
		if *asJSON {
			return printJSON(out)
		}
		for _, e := range out {
			kind := ""
			if e.Type == "dir" {
				kind = "/"
			}
			fmt.Printf("%10s  %s  %s%s\n", human(e.Size), e.MTime.Local().Format("2006-01-02 15:04"), e.Path, kind)
		}
		return nil
	case "get":
		t, err := target()
		if err != nil {
			return err
		}
		req, _ := http.NewRequestWithContext(ctx, "GET", localapi.BaseURL+"/v1/backup/file?"+q("target", t, "snapshot", *snap, "path", fs.Arg(0)), nil)
		resp, err := c.HTTP().Do(req)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		if resp.StatusCode != 200 {
			b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
			return fmt.Errorf("%s: %s", resp.Status, b)
		}
		_, err = io.Copy(os.Stdout, resp.Body)
		return err
	case "restore-item":
		t, err := target()
		if err != nil {
			return err
		}
		var item backup.RestoredItem
		if err := api("POST", "restore-item", map[string]string{"target": t, "snapshot": *snap, "path": fs.Arg(0)}, &item); err != nil {
			return err
		}
		fmt.Printf("%s is back, at %s\n", item.Path, item.Into)
		return nil
	case "drill":
		var ds backup.DrillStatus
		if err := api("POST", "drill", nil, &ds); err != nil {
			return err
		}
		if *asJSON {
			return printJSON(ds)
		}
		fmt.Printf("restore drill %s: %d files (%s) restored and checked, %d packs read whole\n", map[bool]string{true: "passed", false: "FAILED"}[ds.OK], ds.Files, human(ds.Bytes), ds.Packs)
		for _, p := range ds.Problems {
			fmt.Println("  ", p)
		}
		if !ds.OK {
			return errors.New("the restore drill failed")
		}
		return nil
	case "keep":
		if fs.NArg() != 2 {
			return errors.New("backup keep NAME SIZE")
		}
		var r map[string]string
		if err := api("POST", "peers", map[string]string{"name": fs.Arg(0), "quota": fs.Arg(1)}, &r); err != nil {
			return err
		}
		fmt.Printf("this box keeps %s's backups, up to %s. Give them this invitation code (shown once):\n\n%s\n", fs.Arg(0), fs.Arg(1), r["code"])
		return nil
	case "kept":
		var out []map[string]any
		if err := api("GET", "peers", nil, &out); err != nil {
			return err
		}
		return printJSON(out)
	case "unkeep":
		return api("DELETE", "peers/"+url.PathEscape(fs.Arg(0)), nil, nil)
	case "restore":
		return cmdRestore(ctx, c, restoreFlags{endpoint: *s3Endpoint, bucket: *bucket, prefix: *prefix, region: *region, access: *access, caFile: *caFile,
			peer: *peerAddr, key: *useKey, shares: *useShares, snapshot: *snap})
	}
	return fmt.Errorf("unknown backup command %q\n\n%s", sub, backupUsage)
}

type restoreFlags struct {
	endpoint, bucket, prefix, region, access, caFile, peer, snapshot string
	key, shares                                                      bool
}

func cmdRestore(ctx context.Context, c *localapi.Client, f restoreFlags) error {
	req := backup.RestoreRequest{Peer: f.peer, Snapshot: f.snapshot}
	if f.endpoint != "" {
		cfg := s3.Config{Endpoint: f.endpoint, Bucket: f.bucket, Prefix: f.prefix, Region: f.region, AccessKey: f.access}
		if f.caFile != "" {
			b, err := os.ReadFile(f.caFile)
			if err != nil {
				return err
			}
			cfg.CA = string(b)
		}
		secret, err := readPassphrase("S3 secret key: ")
		if err != nil {
			return err
		}
		cfg.SecretKey = string(secret)
		req.S3 = &cfg
	}
	switch {
	case f.key == f.shares:
		return errors.New("say how: --key (the recovery key) or --shares (members' shares)")
	case f.key:
		k, err := readPassphrase("Recovery key: ")
		if err != nil {
			return err
		}
		req.Key = string(k)
	default:
		fmt.Fprintln(os.Stderr, "Members' shares, one per line, then an empty line:")
		for {
			line, err := readPassphrase("")
			if err != nil || strings.TrimSpace(string(line)) == "" {
				break
			}
			req.Shares = append(req.Shares, string(line))
		}
	}
	pass, err := readPassphrase("The restored box's new passphrase: ")
	if err != nil {
		return err
	}
	req.Passphrase = string(pass)
	var res backup.FreshRestore
	if err := c.Call(ctx, "POST", "/v1/restore", req, &res); err != nil {
		return fmt.Errorf("restore: %w", err)
	}
	fmt.Printf("restored snapshot %s of %s (%s): %d files; the box restarts, locked: unlock it with the new passphrase\n",
		res.Snapshot.ID, res.Snapshot.Host, res.Snapshot.Time.Local().Format("2006-01-02 15:04"), res.Files)
	return nil
}

// reorderBackup lets flags follow the arguments.
func reorderBackup(args []string) []string {
	var fl, rest []string
	valued := map[string]bool{"socket": true, "target": true, "snapshot": true, "endpoint": true, "bucket": true, "prefix": true, "region": true,
		"access-key": true, "ca": true, "at": true, "every": true, "keep-last": true, "keep-daily": true, "keep-weekly": true, "keep-monthly": true,
		"s3-endpoint": true, "peer": true}
	for i := 0; i < len(args); i++ {
		a := args[i]
		if strings.HasPrefix(a, "-") && a != "-" {
			fl = append(fl, a)
			if n := strings.TrimLeft(a, "-"); valued[n] && i+1 < len(args) {
				fl = append(fl, args[i+1])
				i++
			}
			continue
		}
		rest = append(rest, a)
	}
	return append(fl, rest...)
}

func human(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}

func printBackupStatus(w io.Writer, st backup.Status) {
	if !st.Configured {
		fmt.Fprintln(w, "backups   not set up (redoubt backup s3 …, or redoubt backup peer …)")
	}
	for _, t := range st.Targets {
		line := fmt.Sprintf("%-9s %s", t.Name, t.Result)
		if !t.LastOK.IsZero() {
			line += fmt.Sprintf(", last good %s (%d files, %s new, %s stored, %d snapshots)", t.LastOK.Local().Format("2006-01-02 15:04"),
				t.Stats.Files, human(t.Stats.NewBytes), human(t.Stats.Stored), t.Snapshots)
		}
		if t.Error != "" {
			line += ": " + t.Error
		}
		fmt.Fprintln(w, line)
	}
	if st.Running {
		fmt.Fprintln(w, "running   now")
	}
	if !st.Next.IsZero() {
		fmt.Fprintf(w, "next      %s\n", st.Next.Local().Format("2006-01-02 15:04"))
	}
	if st.Waiting != "" {
		fmt.Fprintf(w, "waiting   %s\n", st.Waiting)
	}
	if !st.Drill.Time.IsZero() {
		res := "passed"
		if !st.Drill.OK {
			res = "FAILED: " + strings.Join(st.Drill.Problems, "; ")
		}
		fmt.Fprintf(w, "drill     %s on %s (%d files restored and checked)\n", res, st.Drill.Time.Local().Format("2006-01-02"), st.Drill.Files)
	}
	if st.SharesN > 0 {
		saved := 0
		for _, h := range st.ShareHolders {
			if h.Saved {
				saved++
			}
		}
		fmt.Fprintf(w, "key       split %d of %d (%d members saved their share)\n", st.SharesK, st.SharesN, saved)
	}
}
