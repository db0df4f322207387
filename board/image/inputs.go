package image

// The kernels and the Pi's firmware are Go modules (gokrazy's), required here
// so that go.mod and go.sum pin their versions and hashes: `go mod download`
// fetches them and `go list -m -f {{.Dir}}` finds them (ModuleDir).
import (
	"fmt"
	"os/exec"
	"strings"

	_ "github.com/gokrazy/firmware"
	_ "github.com/gokrazy/kernel.amd64"
	_ "github.com/gokrazy/kernel.rpi"
)

// Module paths of the pinned inputs.
const (
	KernelPC  = "github.com/gokrazy/kernel.amd64"
	KernelRPi = "github.com/gokrazy/kernel.rpi"
	Firmware  = "github.com/gokrazy/firmware"
)

// ModuleDir is where the go command keeps a required module.
func ModuleDir(module string) (string, error) {
	out, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", module).Output()
	if err != nil {
		return "", fmt.Errorf("finding module %s (go mod download fetches it): %w", module, err)
	}
	dir := strings.TrimSpace(string(out))
	if dir == "" {
		return "", fmt.Errorf("module %s is not downloaded: run go mod download", module)
	}
	return dir, nil
}
