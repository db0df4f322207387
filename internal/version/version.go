// Package version says which build of Redoubt is running: the version and commit
// the Makefile stamps in with -ldflags, and the Go toolchain from the build info.
// Any package may import it.
package version

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"runtime"
	"runtime/debug"
)

// Set by the Makefile: -X github.com/redoubt/redoubt/internal/version.version=…
var (
	version = "dev"
	commit  = ""
)

// Info is the build's identity.
type Info struct {
	Version string `json:"version"`
	Commit  string `json:"commit"`
	Go      string `json:"go"`
	OS      string `json:"os"`
	Arch    string `json:"arch"`
}

// Get returns the running build's identity. A commit not stamped by the Makefile
// comes from the VCS build info when the binary has it.
func Get() Info {
	i := Info{Version: version, Commit: commit, Go: runtime.Version(), OS: runtime.GOOS, Arch: runtime.GOARCH}
	if bi, ok := debug.ReadBuildInfo(); ok {
		i.Go = bi.GoVersion
		if i.Commit == "" {
			for _, s := range bi.Settings {
				if s.Key == "vcs.revision" {
					i.Commit = s.Value
				}
			}
		}
	}
	if i.Commit == "" {
		i.Commit = "unknown"
	}
	return i
}

// String is the one-line form `redoubt version` prints.
func (i Info) String() string {
	return fmt.Sprintf("redoubt %s (commit %s, %s, %s/%s)", i.Version, i.Commit, i.Go, i.OS, i.Arch)
}

// BinaryHash is the SHA-256 of the running program's file, in hex: what a
// reproducible build of the same source gives (`make build`, then
// `sha256sum bin/redoubt`).
func BinaryHash() (string, error) {
	exe, err := os.Executable()
	if err != nil {
		return "", fmt.Errorf("finding the running binary: %w", err)
	}
	f, err := os.Open(exe)
	if err != nil {
		return "", fmt.Errorf("hashing the running binary: %w", err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", fmt.Errorf("hashing the running binary %s: %w", exe, err)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}
