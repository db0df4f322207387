package main

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"strings"
	"time"

	"golang.org/x/term"

	"github.com/redoubt/redoubt/ui/localapi"
)

func cmdSetupCode(args []string) error {
	fs := flags("setup-code", "setup-code [--socket PATH]")
	socket, asJSON := apiFlags(fs)
	if err := fs.Parse(args); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	code, err := localapi.NewClient(*socket).SetupCode(ctx)
	if err != nil {
		return err
	}
	if *asJSON {
		return printJSON(map[string]string{"code": code})
	}
	fmt.Printf("Setup code: %s\n\nType it in the setup page that opens on the computer plugged into the box.\nIt works once; the box then makes a new one.\n", code)
	return nil
}

// readPassphrase reads the passphrase without echo from the terminal, or the
// first line of standard input when it is not a terminal.
func readPassphrase(prompt string) ([]byte, error) {
	if term.IsTerminal(int(os.Stdin.Fd())) {
		fmt.Fprint(os.Stderr, prompt)
		p, err := term.ReadPassword(int(os.Stdin.Fd()))
		fmt.Fprintln(os.Stderr)
		return p, err
	}
	line, err := bufio.NewReader(os.Stdin).ReadString('\n')
	if err != nil && line == "" {
		return nil, fmt.Errorf("reading the passphrase from standard input: %w", err)
	}
	return []byte(strings.TrimRight(line, "\r\n")), nil
}

func cmdUnlock(args []string) error {
	fs := flags("unlock", "unlock [--socket PATH]   (the passphrase comes from the terminal, or standard input)")
	socket, asJSON := apiFlags(fs)
	if err := fs.Parse(args); err != nil {
		return err
	}
	pass, err := readPassphrase("Passphrase: ")
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	st, err := localapi.NewClient(*socket).Unlock(ctx, pass)
	clear(pass)
	if err != nil {
		return fmt.Errorf("not unlocked: %w", err)
	}
	if *asJSON {
		return printJSON(st)
	}
	fmt.Println("The box is unlocked.")
	return nil
}

func cmdLock(args []string) error {
	fs := flags("lock", "lock [--socket PATH]")
	socket, asJSON := apiFlags(fs)
	if err := fs.Parse(args); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	st, err := localapi.NewClient(*socket).Lock(ctx)
	if err != nil {
		return err
	}
	if *asJSON {
		return printJSON(st)
	}
	fmt.Println("The box is locked: everyone is signed out, and nothing it keeps can be read until it is unlocked.")
	return nil
}
