package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/redoubt/redoubt/board/update"
)

func cmdUpdate(args []string) error {
	fs := flags("update", "update FILE | fetch [URL] | status | restart  [--no-restart] [--socket PATH]")
	socket, asJSON := apiFlags(fs)
	noRestart := fs.Bool("no-restart", false, "write the update but do not restart into it yet")
	if err := fs.Parse(args); err != nil {
		return err
	}
	c := update.Client{Socket: *socket}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	rest := fs.Args()
	if len(rest) == 0 {
		fs.Usage()
		return errors.New("update: say which file, or fetch, status, restart")
	}
	switch rest[0] {
	case "status":
		st, err := c.Status(ctx)
		if err != nil {
			return err
		}
		if *asJSON {
			return printJSON(st)
		}
		fmt.Printf("running %s on %s, slot %s", st.Running.Version, st.Running.Board, st.Running.Slot)
		if st.OnTrial {
			fmt.Print(" (on trial)")
		}
		fmt.Printf("\nlast good %s\n", st.LastGood)
		if st.Staged != nil {
			fmt.Printf("staged %s in slot %s\n", st.Staged.Version, st.Staged.Slot)
		}
		for _, e := range st.History {
			fmt.Printf("%s  %-11s %-10s %s\n", e.At.Format(time.DateTime), e.Outcome, e.Version, e.Detail)
		}
		return nil
	case "restart":
		return c.Restart(ctx)
	case "fetch":
		url := ""
		if len(rest) > 1 {
			url = rest[1]
		}
		a, err := c.Fetch(ctx, url, !*noRestart)
		if err != nil {
			return err
		}
		return reportApplied(a)
	}
	f, err := os.Open(rest[0])
	if err != nil {
		return err
	}
	defer f.Close()
	a, err := c.Upload(ctx, f, !*noRestart)
	if err != nil {
		return err
	}
	return reportApplied(a)
}

func reportApplied(a update.Applied) error {
	fmt.Printf("update %s written (manifest %s)\n", a.Version, a.Hash)
	if a.Restarting {
		fmt.Println("the box restarts into it now, on trial; it comes back on the current version by itself if the update is not healthy")
	} else {
		fmt.Println("restart into it with: redoubt update restart")
	}
	return nil
}
