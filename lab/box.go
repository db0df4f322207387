package lab

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/redoubt/redoubt/ui/localapi"
)

// RunningBox is the redoubt daemon the lab runs in the box namespace.
type RunningBox struct {
	*Proc
	Config string // path of its config file
	Socket string // its local API socket
	API    *localapi.Client
}

// BoxConfig returns the config file the lab gives the box: its LAN port on the
// laptop's cable, state and API socket inside the lab's directory. extra is
// appended verbatim (more TOML sections).
func (l *Lab) BoxConfig(extra string) string {
	return fmt.Sprintf(`# written by the lab
[lan]
interface = %q

[state]
dir = %q

[log]
level = "debug"

[api]
socket = %q
%s`, BoxLANIface, filepath.Join(l.Dir, "box-state"), l.BoxSocket(), extra)
}

// BoxSocket is where the lab's box serves its local API.
func (l *Lab) BoxSocket() string { return filepath.Join(l.Dir, "box.sock") }

// StartBox writes the box's config file and starts `redoubt serve` in the box
// namespace, returning once its API answers. Only one box may run at a time: two
// netstacks on one interface corrupt each other's connections.
func (l *Lab) StartBox(ctx context.Context, config string) (*RunningBox, error) {
	l.mu.Lock()
	for _, p := range l.procs {
		if p.Name == "box" {
			if done, _ := p.Exited(); !done {
				l.mu.Unlock()
				return nil, fmt.Errorf("a box is already running in lab %s (pid %d)", l.Prefix, p.Pid())
			}
		}
	}
	l.mu.Unlock()
	cfgPath := filepath.Join(l.Dir, "box.toml")
	if err := os.WriteFile(cfgPath, []byte(config), 0o600); err != nil {
		return nil, err
	}
	var env []string
	if l.Mesh != nil {
		// The lab's Headscale has a certificate from the run's own CA; a real
		// one has a public certificate the system's roots verify.
		env = append(env, "SSL_CERT_FILE="+l.Mesh.CAFile)
	}
	p, err := l.StartEnv(Box, "box", env, l.Binary, "serve", "--config", cfgPath)
	if err != nil {
		return nil, err
	}
	b := &RunningBox{Proc: p, Config: cfgPath, Socket: l.BoxSocket(), API: localapi.NewClient(l.BoxSocket())}
	deadline := time.Now().Add(15 * time.Second)
	for {
		if done, err := p.Exited(); done {
			return nil, fmt.Errorf("the box exited at start (%v):\n%s", err, tail(p.Output(), 20))
		}
		sctx, cancel := context.WithTimeout(ctx, time.Second)
		_, err := b.API.Status(sctx)
		cancel()
		if err == nil {
			return b, nil
		}
		if time.Now().After(deadline) {
			p.Stop(3 * time.Second)
			return nil, fmt.Errorf("the box did not answer on %s within 15s (%v):\n%s", b.Socket, err, tail(p.Output(), 20))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// LaptopStatic gives the laptop a fixed address on the LAN and the box as its
// router, for tests that do not need DHCP.
func (l *Lab) LaptopStatic(ctx context.Context) error {
	for _, c := range [][]string{
		{"ip", "addr", "replace", LaptopStatic.String(), "dev", LaptopIface},
		{"ip", "route", "replace", "default", "via", BoxLAN.String()},
	} {
		if _, err := l.Exec(ctx, Laptop, c...); err != nil {
			return err
		}
	}
	return nil
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
