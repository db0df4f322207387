// Package build checks that `make build` is reproducible: the same source built
// in two different directories gives the same bytes, so anyone can rebuild the
// version a box's audit log says it runs and compare the SHA-256.
package build

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

func TestReproducibleBuild(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary twice: not in -short")
	}
	for _, tool := range []string{"make", "git", "go"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s is not installed", tool)
		}
	}
	top, err := exec.Command("git", "rev-parse", "--show-toplevel").Output()
	if err != nil {
		t.Skipf("not in a git checkout: %v", err)
	}
	repo := strings.TrimSpace(string(top))
	dirty, _ := exec.Command("git", "-C", repo, "status", "--porcelain").Output()

	var bins [2][]byte
	for i, name := range []string{"a", "second/checkout"} {
		dir := filepath.Join(t.TempDir(), name, "redoubt")
		if len(bytes.TrimSpace(dirty)) == 0 {
			// A clean tree: clone it, as someone rebuilding a release would.
			run(t, repo, "git", "clone", "-q", "--no-hardlinks", repo, dir)
		} else {
			// Work in progress: the tracked files as they are now.
			t.Logf("the work tree has changes: building copies of its tracked files")
			copyTracked(t, repo, dir)
		}
		run(t, dir, "make", "build")
		b, err := os.ReadFile(filepath.Join(dir, "bin", "redoubt"))
		if err != nil {
			t.Fatal(err)
		}
		bins[i] = b
	}
	a, b := sha256.Sum256(bins[0]), sha256.Sum256(bins[1])
	t.Logf("sha256 %x (%d bytes) and %x (%d bytes)", a, len(bins[0]), b, len(bins[1]))
	if a != b {
		t.Fatalf("two builds of the same source differ: %x and %x", a, b)
	}
}

func run(t *testing.T, dir string, name string, args ...string) {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%s %v in %s: %v\n%s", name, args, dir, err, out)
	}
}

func copyTracked(t *testing.T, repo, dir string) {
	t.Helper()
	out, err := exec.Command("git", "-C", repo, "ls-files", "-z").Output()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range strings.Split(strings.TrimRight(string(out), "\x00"), "\x00") {
		src := filepath.Join(repo, f)
		fi, err := os.Lstat(src)
		if err != nil || !fi.Mode().IsRegular() {
			continue // deleted in the work tree, or a link
		}
		b, err := os.ReadFile(src)
		if err != nil {
			t.Fatal(err)
		}
		dst := filepath.Join(dir, f)
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(dst, b, fi.Mode().Perm()); err != nil {
			t.Fatal(fmt.Errorf("copying %s: %w", f, err))
		}
	}
}
