// Package vmtest runs a Redoubt disk image in QEMU for tests: UEFI firmware
// (Debian's OVMF), the image as a virtio disk, two virtio NICs on TAP devices
// given by the caller (the WAN first: eth0, then the LAN: eth1), and the
// serial console as a stream of lines the test can wait on and type into.
// KVM is used when it works here, software emulation otherwise. Only tests
// import it.
package vmtest

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"time"
)

// Firmware paths (Debian's ovmf package).
const (
	OVMFCode = "/usr/share/OVMF/OVMF_CODE_4M.fd"
	OVMFVars = "/usr/share/OVMF/OVMF_VARS_4M.fd"
)

// Require says why QEMU cannot run here, or nil.
func Require() error {
	if _, err := exec.LookPath("qemu-system-x86_64"); err != nil {
		return fmt.Errorf("qemu-system-x86_64 not installed (scripts/deps.sh installs qemu-system-x86)")
	}
	for _, p := range []string{OVMFCode, OVMFVars} {
		if _, err := os.Stat(p); err != nil {
			return fmt.Errorf("%s missing (scripts/deps.sh installs ovmf)", p)
		}
	}
	return nil
}

// NIC is a network card of the VM on a TAP device, or (Tap empty) on QEMU's
// own isolated user network (restrict=on: nothing reaches the host's networks).
type NIC struct {
	Tap string
	MAC string
}

// Config is a VM.
type Config struct {
	Image string // the disk (used in place)
	Dir   string // for the firmware's variables
	NICs  []NIC
	// Wrap runs QEMU through a command prefix (ip netns exec NS).
	Wrap   []string
	Memory int // MiB, default 1024
	Accel  string
	// Arm64 boots a Pi image on QEMU's virt machine (Cortex-A72) with the
	// kernel given directly (there is no Pi firmware in QEMU): Kernel is the
	// image's kernel, Append its command line.
	Arm64          bool
	Kernel, Append string
	Logf           func(string, ...any)
}

// VM is a running VM.
type VM struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser
	mu    sync.Mutex
	lines []string
	wake  chan struct{}
	done  chan error
	logf  func(string, ...any)
}

var ansi = regexp.MustCompile(`\x1b\[[0-9;?=]*[A-Za-z]|\x1b[()][A-Z0-9]|\r`)

// Start boots the VM.
func Start(ctx context.Context, c Config) (*VM, error) {
	vars := filepath.Join(c.Dir, "OVMF_VARS.fd")
	b, err := os.ReadFile(OVMFVars)
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(vars, b, 0o600); err != nil {
		return nil, err
	}
	if c.Memory == 0 {
		c.Memory = 1024
	}
	if c.Accel == "" {
		c.Accel = "tcg"
	}
	args := []string{"qemu-system-x86_64", "-machine", "q35", "-accel", c.Accel, "-m", fmt.Sprint(c.Memory),
		"-display", "none", "-monitor", "none", "-serial", "stdio", "-no-user-config", "-nodefaults",
		"-drive", "if=pflash,format=raw,unit=0,readonly=on,file=" + OVMFCode,
		"-drive", "if=pflash,format=raw,unit=1,file=" + vars,
		"-drive", "file=" + c.Image + ",format=raw,if=virtio,cache=unsafe",
		"-device", "i6300esb", "-action", "watchdog=reset",
	}
	if c.Arm64 {
		args = []string{"qemu-system-aarch64", "-machine", "virt", "-cpu", "cortex-a72", "-smp", "2", "-m", fmt.Sprint(c.Memory),
			"-display", "none", "-monitor", "none", "-serial", "stdio", "-no-user-config", "-nodefaults",
			"-kernel", c.Kernel, "-append", c.Append,
			"-drive", "file=" + c.Image + ",format=raw,if=virtio,cache=unsafe"}
	} else if c.Accel == "tcg" {
		args = append(args, "-cpu", "max")
	} else {
		args = append(args, "-cpu", "host", "-smp", "2")
	}
	for i, n := range c.NICs {
		netdev := fmt.Sprintf("tap,id=n%d,ifname=%s,script=no,downscript=no", i, n.Tap)
		if n.Tap == "" {
			netdev = fmt.Sprintf("user,id=n%d,restrict=on", i)
		}
		args = append(args, "-netdev", netdev, "-device", fmt.Sprintf("virtio-net-pci,netdev=n%d,mac=%s", i, n.MAC))
	}
	args = append(c.Wrap, args...)
	cmd := exec.Command(args[0], args[1:]...)
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	cmd.Stderr = cmd.Stdout
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	v := &VM{cmd: cmd, stdin: stdin, wake: make(chan struct{}), done: make(chan error, 1), logf: c.Logf}
	if v.logf == nil {
		v.logf = func(string, ...any) {}
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting qemu: %w", err)
	}
	go v.read(out)
	go func() { v.done <- cmd.Wait() }()
	return v, nil
}

func (v *VM) read(r io.Reader) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		l := ansi.ReplaceAllString(sc.Text(), "")
		v.logf("console: %s", l)
		v.mu.Lock()
		v.lines = append(v.lines, l)
		close(v.wake)
		v.wake = make(chan struct{})
		v.mu.Unlock()
	}
}

// Mark is a position in the console's output.
func (v *VM) Mark() int {
	v.mu.Lock()
	defer v.mu.Unlock()
	return len(v.lines)
}

// Wait waits for a console line after mark matching re, and returns its
// submatches and the position after it.
func (v *VM) Wait(ctx context.Context, mark int, re string) ([]string, int, error) {
	rx := regexp.MustCompile(re)
	for {
		v.mu.Lock()
		for i := mark; i < len(v.lines); i++ {
			if m := rx.FindStringSubmatch(v.lines[i]); m != nil {
				v.mu.Unlock()
				return m, i + 1, nil
			}
		}
		mark = len(v.lines)
		wake := v.wake
		v.mu.Unlock()
		select {
		case <-wake:
		case err := <-v.done:
			v.done <- err
			return nil, mark, fmt.Errorf("waiting for %q: qemu exited: %v", re, err)
		case <-ctx.Done():
			return nil, mark, fmt.Errorf("waiting for %q on the console: %w\nlast lines:\n%s", re, ctx.Err(), v.Tail(30))
		}
	}
}

// Tail is the console's last n lines.
func (v *VM) Tail(n int) string {
	v.mu.Lock()
	defer v.mu.Unlock()
	l := v.lines
	if len(l) > n {
		l = l[len(l)-n:]
	}
	return strings.Join(l, "\n")
}

// Type sends a line to the console.
func (v *VM) Type(line string) error {
	_, err := io.WriteString(v.stdin, line+"\r")
	return err
}

// Stop ends QEMU.
func (v *VM) Stop() error {
	v.cmd.Process.Kill()
	select {
	case <-v.done:
	case <-time.After(10 * time.Second):
	}
	return nil
}

// Accel picks KVM when a VM with UEFI firmware really runs under it here
// (nested or paravirtual KVM may fail at the firmware's first instructions),
// and software emulation otherwise. REDOUBT_QEMU_ACCEL overrides.
func Accel(dir string) string {
	if a := os.Getenv("REDOUBT_QEMU_ACCEL"); a != "" {
		return a
	}
	if f, err := os.OpenFile("/dev/kvm", os.O_RDWR, 0); err != nil {
		return "tcg"
	} else {
		f.Close()
	}
	vars := filepath.Join(dir, "probe-vars.fd")
	b, _ := os.ReadFile(OVMFVars)
	os.WriteFile(vars, b, 0o600)
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Second)
	defer cancel()
	out, _ := exec.CommandContext(ctx, "qemu-system-x86_64", "-machine", "q35", "-accel", "kvm", "-cpu", "host", "-m", "256",
		"-display", "none", "-monitor", "none", "-serial", "none", "-nodefaults",
		"-drive", "if=pflash,format=raw,unit=0,readonly=on,file="+OVMFCode,
		"-drive", "if=pflash,format=raw,unit=1,file="+vars).CombinedOutput()
	if strings.Contains(string(out), "error") || strings.Contains(string(out), "failure") {
		return "tcg"
	}
	return "kvm"
}
