package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/redoubt/redoubt/audit/auditlog"
	"github.com/redoubt/redoubt/audit/client"
	"github.com/redoubt/redoubt/ui/localapi"
)

const auditUsage = `Usage: redoubt audit <command> [flags] [URL]

The box's tamper-evident log. URL is the log's address on the members' page
(https://<box>.<tailnet domain>/audit/api/); without it, the box's local API
(on the box, as root).

  verify   check the log: the box's signature on its latest checkpoint, that it
           extends the checkpoint saved last time (a consistency proof), with
           --full every record (inclusion proofs), and that it agrees with what
           the witnesses (members' devices) countersigned; then save it
  log      verify, then print every record
  status   the log's size, signed checkpoint, witnesses and forks seen

Flags:
  --state FILE       where the log's key and last checkpoint are kept
                     (default ~/.config/redoubt/audit/<host>.json)
  --checkpoint FILE  a checkpoint saved before (the members' page's
                     "download"), checked against and replaced; needs --key
                     unless --state has it
  --key VKEY         the log's key, as the members' page shows it
  --ca FILE          the box's CA certificate, if this device does not trust it
  --full             fetch and check every record
  --json             print JSON
`

func cmdAudit(args []string) error {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		fmt.Print(auditUsage)
		return nil
	}
	sub, args := args[0], args[1:]
	fs := flags("audit "+sub, "audit "+sub+" [flags] [URL]")
	socket, asJSON := apiFlags(fs)
	statePath := fs.String("state", "", "the `file` keeping the log's key and last checkpoint")
	cpPath := fs.String("checkpoint", "", "a saved checkpoint `file` to check against (and replace)")
	key := fs.String("key", "", "the log's verifier `key`")
	caFile := fs.String("ca", "", "the box's CA certificate `file`")
	full := fs.Bool("full", false, "check every record")
	if err := fs.Parse(reorder(args)); err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()

	cl := &client.Client{}
	where := "local"
	switch fs.NArg() {
	case 0:
		lc := localapi.NewClient(*socket)
		cl.Base, cl.HTTP = localapi.BaseURL+"/v1/audit/", lc.HTTP()
	case 1:
		u := fs.Arg(0)
		if !strings.HasPrefix(u, "https://") && !strings.HasPrefix(u, "http://") {
			return fmt.Errorf("URL %q: want the log's address, https://<box>/audit/api/", u)
		}
		if !strings.HasSuffix(u, "/") {
			u += "/"
		}
		hc, err := httpClient(*caFile)
		if err != nil {
			return err
		}
		cl.Base, cl.HTTP = u, hc
		where = hostOf(u)
	default:
		return errors.New("give at most one URL")
	}

	if sub == "status" {
		var st auditlog.Status
		if err := getJSON(ctx, cl, "status", &st); err != nil {
			return err
		}
		if *asJSON {
			return printJSON(st)
		}
		fmt.Printf("log       %s\nkey       %s\nrecords   %d (signed checkpoint: %d)\n", st.Origin, st.Key, st.Size, st.Signed)
		if st.Waiting != "" {
			fmt.Printf("waiting   %s\n", st.Waiting)
		}
		for _, w := range st.Witnesses {
			fmt.Printf("witness   %s (%s): cosigned size %d at %s\n", w.Member, strings.SplitN(w.Key, "+", 2)[0], w.Size, w.Time.Format(time.RFC3339))
		}
		for _, f := range st.Forks {
			fmt.Printf("FORK      %s\n", f)
		}
		return nil
	}
	if sub != "verify" && sub != "log" {
		return fmt.Errorf("unknown audit command %q\n\n%s", sub, auditUsage)
	}

	st, save, err := loadAuditState(*statePath, *cpPath, *key, where)
	if err != nil {
		return err
	}
	res, err := cl.Verify(ctx, st, client.Options{Full: *full || sub == "log"})
	if err != nil {
		return fmt.Errorf("the log did not verify: %w", err)
	}
	if err := save(st, res); err != nil {
		return err
	}
	if *asJSON {
		return printJSON(struct {
			Size      int64    `json:"size"`
			Previous  int64    `json:"previous"`
			Records   any      `json:"records,omitempty"`
			Witnesses []string `json:"witnesses"`
		}{res.Next.Size, res.Prev.Size, res.Records, res.Witnesses})
	}
	if sub == "log" {
		for i, r := range res.Records {
			fmt.Printf("%5d %s\n", i, r)
		}
	}
	switch {
	case res.First:
		fmt.Printf("verified: %s\nfirst check: the log's key is now pinned: %s\n", res.Next, res.Key)
	default:
		fmt.Printf("verified: %s\nit extends the checkpoint seen before (size %d): nothing was rewritten\n", res.Next, res.Prev.Size)
	}
	if *full || sub == "log" {
		fmt.Printf("every record (%d) is in the signed tree\n", len(res.Records))
	}
	if len(res.Witnesses) > 0 {
		fmt.Printf("agrees with %d witness(es): %s\n", len(res.Witnesses), strings.Join(res.Witnesses, ", "))
	}
	return nil
}

// reorder puts flags before the URL, so "verify URL --full" works too.
func reorder(args []string) []string {
	var flagsFirst, rest []string
	for i := 0; i < len(args); i++ {
		a := args[i]
		if strings.HasPrefix(a, "-") {
			flagsFirst = append(flagsFirst, a)
			if !strings.Contains(a, "=") && i+1 < len(args) && takesValue(a) {
				flagsFirst = append(flagsFirst, args[i+1])
				i++
			}
			continue
		}
		rest = append(rest, a)
	}
	return append(flagsFirst, rest...)
}

func takesValue(flag string) bool {
	switch strings.TrimLeft(flag, "-") {
	case "state", "checkpoint", "key", "ca", "socket":
		return true
	}
	return false
}

func hostOf(u string) string {
	h := strings.TrimPrefix(strings.TrimPrefix(u, "https://"), "http://")
	h, _, _ = strings.Cut(h, "/")
	return h
}

func httpClient(caFile string) (*http.Client, error) {
	if caFile == "" {
		return &http.Client{Timeout: time.Minute, Transport: &http.Transport{Proxy: http.ProxyFromEnvironment}}, nil
	}
	pem, err := os.ReadFile(caFile)
	if err != nil {
		return nil, fmt.Errorf("--ca: %w", err)
	}
	pool, err := x509.SystemCertPool()
	if err != nil || pool == nil {
		pool = x509.NewCertPool()
	}
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("--ca %s: no PEM certificate in it", caFile)
	}
	return &http.Client{Timeout: time.Minute, Transport: &http.Transport{Proxy: http.ProxyFromEnvironment, TLSClientConfig: &tls.Config{RootCAs: pool}}}, nil
}

func getJSON(ctx context.Context, cl *client.Client, path string, v any) error {
	req, err := http.NewRequestWithContext(ctx, "GET", cl.Base+path, nil)
	if err != nil {
		return err
	}
	resp, err := cl.HTTP.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s", resp.Status)
	}
	return json.NewDecoder(resp.Body).Decode(v)
}

// loadAuditState reads what was saved last time and returns how to save the
// next: a state file (JSON: key and checkpoint), or a plain checkpoint file
// with the key given.
func loadAuditState(statePath, cpPath, key, where string) (client.State, func(client.State, client.Result) error, error) {
	if cpPath != "" {
		st := client.State{Key: key}
		if b, err := os.ReadFile(cpPath); err == nil {
			st.Checkpoint = string(b)
		} else if !errors.Is(err, os.ErrNotExist) {
			return st, nil, err
		}
		if st.Key == "" && statePath == "" {
			return st, nil, errors.New("--checkpoint needs the log's key: --key VKEY (shown on the members' page)")
		}
		if statePath != "" && st.Key == "" {
			var saved client.State
			if b, err := os.ReadFile(statePath); err == nil {
				json.Unmarshal(b, &saved)
			}
			st.Key = saved.Key
		}
		return st, func(_ client.State, r client.Result) error {
			return os.WriteFile(cpPath, r.Signed, 0o644)
		}, nil
	}
	if statePath == "" {
		dir, err := os.UserConfigDir()
		if err != nil {
			return client.State{}, nil, fmt.Errorf("no --state given and no config directory: %w", err)
		}
		statePath = filepath.Join(dir, "redoubt", "audit", strings.ReplaceAll(where, ":", "_")+".json")
	}
	var st client.State
	if b, err := os.ReadFile(statePath); err == nil {
		if err := json.Unmarshal(b, &st); err != nil {
			return st, nil, fmt.Errorf("%s: %w", statePath, err)
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		return st, nil, err
	}
	if key != "" {
		if st.Key != "" && st.Key != key {
			return st, nil, fmt.Errorf("--key is not the key pinned in %s (%s)", statePath, st.Key)
		}
		st.Key = key
	}
	return st, func(prev client.State, r client.Result) error {
		next := client.State{Key: prev.Key, Checkpoint: string(r.Signed)}
		if next.Key == "" {
			next.Key = r.Key
		}
		b, _ := json.MarshalIndent(next, "", "  ")
		if err := os.MkdirAll(filepath.Dir(statePath), 0o700); err != nil {
			return err
		}
		return os.WriteFile(statePath, append(b, '\n'), 0o600)
	}, nil
}
