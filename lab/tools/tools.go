// Package tools finds the lab's peer programs that scripts/tools.sh builds
// from the Go module proxy at pinned versions: Headscale (the coordination
// server), tailscaled/tailscale (a team member's client) and versitygw (an
// S3-compatible server, for backups). Tests that need
// them skip, saying how to build them, when they are missing. Only tests, the
// lab and its subpackages import it.
package tools

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// The versions scripts/tools.sh builds.
const (
	HeadscaleVersion = "v0.29.2"
	TailscaleVersion = "v1.102.5"
	VersityVersion   = "v1.8.0"
)

// Dir is where scripts/tools.sh keeps what it built: $REDOUBT_TOOLS, else
// $XDG_CACHE_HOME/redoubt/tools, else ~/.cache/redoubt/tools.
func Dir() string {
	if d := os.Getenv("REDOUBT_TOOLS"); d != "" {
		return d
	}
	if d := os.Getenv("XDG_CACHE_HOME"); d != "" {
		return filepath.Join(d, "redoubt", "tools")
	}
	home, err := os.UserHomeDir()
	if err != nil {
		home = "/root"
	}
	return filepath.Join(home, ".cache", "redoubt", "tools")
}

// Paths of the programs.
type Paths struct {
	Headscale, Tailscaled, Tailscale string
}

// Find returns the programs' paths, or an error that says how to build them.
func Find() (Paths, error) {
	d := Dir()
	p := Paths{
		Headscale:  filepath.Join(d, "headscale-"+HeadscaleVersion),
		Tailscaled: filepath.Join(d, "tailscale-"+TailscaleVersion, "tailscaled"),
		Tailscale:  filepath.Join(d, "tailscale-"+TailscaleVersion, "tailscale"),
	}
	var missing []error
	for _, f := range []string{p.Headscale, p.Tailscaled, p.Tailscale} {
		if st, err := os.Stat(f); err != nil || st.Mode()&0o111 == 0 {
			missing = append(missing, fmt.Errorf("%s is missing", f))
		}
	}
	if len(missing) > 0 {
		return p, fmt.Errorf("%w (build them once with scripts/tools.sh; make test does)", errors.Join(missing...))
	}
	return p, nil
}

// S3Server returns versitygw's path, or an error that says how to build it.
func S3Server() (string, error) {
	p := filepath.Join(Dir(), "versitygw-"+VersityVersion)
	if st, err := os.Stat(p); err != nil || st.Mode()&0o111 == 0 {
		return p, fmt.Errorf("%s is missing (build it once with scripts/tools.sh; make test does)", p)
	}
	return p, nil
}
