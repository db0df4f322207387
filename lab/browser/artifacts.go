package browser

import (
	"bufio"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// module is the path go.mod names at the repository root.
const module = "github.com/redoubt/redoubt"

// ArtifactsDir returns (and makes) the directory where a browser named name
// keeps its screenshots and Chromium's log: $REDOUBT_ARTIFACTS/screenshots/<name>
// when that variable is set, else out/test/screenshots/<name> under the
// repository root (found from the working directory, as `go test` runs in the
// package's directory). A test's name with subtests becomes nested directories;
// other characters outside [A-Za-z0-9._-] become "_".
func ArtifactsDir(name string) (string, error) {
	root := os.Getenv("REDOUBT_ARTIFACTS")
	if root == "" {
		repo, err := repoRoot()
		if err != nil {
			return "", err
		}
		root = filepath.Join(repo, "out", "test")
	}
	parts := strings.Split(name, "/")
	for i, p := range parts {
		parts[i] = sanitize(p)
	}
	dir := filepath.Join(append([]string{root, "screenshots"}, parts...)...)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("making the artifacts directory: %w", err)
	}
	return dir, nil
}

// repoRoot walks up from the working directory to this module's go.mod.
func repoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if f, err := os.Open(filepath.Join(dir, "go.mod")); err == nil {
			sc := bufio.NewScanner(f)
			sc.Scan()
			f.Close()
			if strings.TrimSpace(strings.TrimPrefix(sc.Text(), "module")) == module {
				return dir, nil
			}
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("not inside the redoubt repository; set REDOUBT_ARTIFACTS to keep browser artifacts elsewhere")
		}
		dir = parent
	}
}

// sanitize makes s one safe path element.
func sanitize(s string) string {
	b := []byte(s)
	for i, c := range b {
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '.', c == '-', c == '_':
		default:
			b[i] = '_'
		}
	}
	s = strings.Trim(string(b), ".")
	if s == "" {
		return "_"
	}
	return s
}

// splitPEM returns each CERTIFICATE block of data, re-encoded on its own.
func splitPEM(data []byte) ([][]byte, error) {
	var out [][]byte
	for {
		var blk *pem.Block
		blk, data = pem.Decode(data)
		if blk == nil {
			break
		}
		if blk.Type == "CERTIFICATE" {
			out = append(out, pem.EncodeToMemory(blk))
		}
	}
	if len(out) == 0 {
		return nil, errors.New("no PEM CERTIFICATE block in Options.TrustCA")
	}
	return out, nil
}
