package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/redoubt/redoubt/backup/peerstore"
)

const peerStoreUsage = `Usage: redoubt peer-store <command> --dir DIR [flags]

A store for teammates' backups, run on its own (a Redoubt box serves one on its
tailnet address by itself): on a machine of the team's network, behind its
tailscaled.

  serve --listen ADDR    serve the store (tailscaled delivers the tailnet's
                         connections to ADDR, such as 127.0.0.1:8443)
  add NAME SIZE          keep NAME's backups, up to SIZE (20GB); prints the
                         invitation code to give them
  list                   the stores and what they use
  remove NAME            delete NAME's store and its content
`

func cmdPeerStore(args []string) error {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		fmt.Print(peerStoreUsage)
		return nil
	}
	sub, args := args[0], args[1:]
	fs := flags("peer-store "+sub, "peer-store "+sub+" --dir DIR [flags]")
	dir := fs.String("dir", "", "where the stores live (required)")
	listen := fs.String("listen", "127.0.0.1:8443", "serve: the address to listen on")
	if err := fs.Parse(reorderPeerStore(args)); err != nil {
		return err
	}
	if *dir == "" {
		return errors.New("--dir is required")
	}
	if err := os.MkdirAll(*dir, 0o700); err != nil {
		return err
	}
	log := slog.New(slog.DiscardHandler)
	if sub == "serve" {
		log = slog.New(slog.NewTextHandler(os.Stderr, nil)).With("room", "peer-store")
	}
	s, err := peerstore.New(filepath.Join(*dir, "stores"), peerstore.FilePersist{Path: filepath.Join(*dir, "peers.json")}, log)
	if err != nil {
		return err
	}
	switch sub {
	case "serve":
		ln, err := net.Listen("tcp", *listen)
		if err != nil {
			return err
		}
		srv := &http.Server{Handler: s.Handler(), ReadHeaderTimeout: 10 * time.Second, ReadTimeout: 10 * time.Minute, WriteTimeout: 10 * time.Minute}
		ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
		defer stop()
		go func() { <-ctx.Done(); srv.Close() }()
		log.Info("serving teammates' backups", "listen", ln.Addr().String())
		if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
			return err
		}
		return nil
	case "add":
		if fs.NArg() != 2 {
			return errors.New("peer-store add NAME SIZE")
		}
		q, err := peerstore.ParseSize(fs.Arg(1))
		if err != nil {
			return err
		}
		code, err := s.Add(fs.Arg(0), q)
		if err != nil {
			return err
		}
		fmt.Println(code)
		return nil
	case "list":
		return printJSON(s.Peers())
	case "remove":
		return s.Remove(fs.Arg(0))
	}
	return fmt.Errorf("unknown peer-store command %q\n\n%s", sub, peerStoreUsage)
}

func reorderPeerStore(args []string) []string {
	var fl, rest []string
	for i := 0; i < len(args); i++ {
		if a := args[i]; len(a) > 1 && a[0] == '-' {
			fl = append(fl, a)
			if (a == "--dir" || a == "-dir" || a == "--listen" || a == "-listen") && i+1 < len(args) {
				fl = append(fl, args[i+1])
				i++
			}
			continue
		}
		rest = append(rest, args[i])
	}
	return append(fl, rest...)
}
