// Package board_test boots the x86-64 image in QEMU between the lab's laptop
// and home router: the laptop's lease, the setup page, the leak battery's
// basics, a badly signed update refused, a broken update rolled back by
// itself, and a good update kept. One image build and one VM serve the whole
// sequence.
package board_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"debug/elf"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"net/http/cookiejar"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"

	"github.com/redoubt/redoubt/board/image"
	"github.com/redoubt/redoubt/board/layout"
	vm "github.com/redoubt/redoubt/board/vmtest"
	"github.com/redoubt/redoubt/lab"
	"github.com/redoubt/redoubt/lab/labtest"
)

func TestMain(m *testing.M) { labtest.Main(m) }

const (
	epoch      = 1767225600 // 2026-01-01
	passphrase = "correct horse battery staple vm"
	boxURL     = "http://10.201.86.1"
)

// fixtures are the image and the updates, built once.
type fixtures struct {
	dir                    string
	image                  string
	good, broken, badlySig string
}

func build(t *testing.T) fixtures {
	t.Helper()
	t.Setenv("SOURCE_DATE_EPOCH", fmt.Sprint(epoch))
	bin, err := labtest.Binary()
	if err != nil {
		t.Fatal(err)
	}
	f := fixtures{dir: t.TempDir()}
	if !static(bin) {
		// PID 1 on the image has no C library: the program must be static.
		bin = filepath.Join(f.dir, "redoubt")
		cmd := exec.Command("go", "build", "-trimpath", "-o", bin, "github.com/redoubt/redoubt/cmd/redoubt")
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("building a static redoubt: %v\n%s", err, out)
		}
	}
	broken := filepath.Join(f.dir, "brokenfw")
	cmd := exec.Command("go", "build", "-trimpath", "-o", broken, "./testdata/brokenfw")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("building the broken firmware: %v\n%s", err, out)
	}
	kernel, err := image.ModuleDir(image.KernelPC)
	if err != nil {
		t.Fatal(err)
	}
	skey, vkey, err := note.GenerateKey(rand.Reader, "redoubt-test-updates")
	if err != nil {
		t.Fatal(err)
	}
	otherKey, _, _ := note.GenerateKey(rand.Reader, "redoubt-test-updates")
	keyFile := filepath.Join(f.dir, "update.pub")
	os.WriteFile(keyFile, []byte(vkey+"\n"), 0o644)
	in := image.Inputs{Board: layout.PC, Binary: bin, Kernel: kernel, BootLoader: image.SystemdBootPath, UpdateKey: keyFile,
		Version: "v0.1.0", Commit: "test", Epoch: time.Unix(epoch, 0).UTC()}
	f.image = filepath.Join(f.dir, "pc.img")
	start := time.Now()
	res, err := image.Build(in, f.image)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("image built in %s: %d bytes, root %d bytes", time.Since(start).Round(time.Millisecond), res.Size, res.RootSize)
	sign := func(k string) note.Signer {
		s, err := note.NewSigner(k)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	for _, u := range []struct {
		out     *string
		version string
		binary  string
		key     string
	}{{&f.broken, "v0.2.0", broken, skey}, {&f.good, "v0.3.0", bin, skey}, {&f.badlySig, "v0.4.0", bin, otherKey}} {
		in := in
		in.Version, in.Binary = u.version, u.binary
		*u.out = filepath.Join(f.dir, u.version+".rdu")
		if _, err := image.BuildUpdate(in, sign(u.key), *u.out); err != nil {
			t.Fatal(err)
		}
	}
	// The owner's settings, on the card before the first start.
	cfg := `[lan]
interface = "eth1"

[wan]
interface = "eth0"
addressing = "static"
address = "192.168.1.2/24"
gateway = "192.168.1.1"

[update]
trial_system = "25s"
trial_unlock = "5m"
`
	if err := image.PutBootFile(f.image, layout.HeadlessConfig, []byte(cfg)); err != nil {
		t.Fatal(err)
	}
	// A bigger card than the image: the data partition grows into it.
	if err := os.Truncate(f.image, 2<<30); err != nil {
		t.Fatal(err)
	}
	return f
}

// static says whether the program needs no dynamic loader.
func static(p string) bool {
	f, err := elf.Open(p)
	if err != nil {
		return false
	}
	defer f.Close()
	for _, prog := range f.Progs {
		if prog.Type == elf.PT_INTERP {
			return false
		}
	}
	return true
}

// cable joins the VM's NICs to the lab: in the box namespace, a TAP device
// for each NIC bridged with the veth the lab's box would have used.
func cable(t *testing.T, l *lab.Lab) []vm.NIC {
	t.Helper()
	ctx := context.Background()
	steps := [][]string{
		{"ip", "addr", "flush", "dev", lab.BoxWANIface},
		{"ip", "route", "flush", "table", "main"},
	}
	nics := []vm.NIC{{Tap: "tapwan", MAC: lab.BoxWANMAC}, {Tap: "taplan", MAC: "02:52:44:00:00:02"}}
	for i, veth := range []string{lab.BoxWANIface, lab.BoxLANIface} {
		br := "br" + veth
		steps = append(steps,
			[]string{"ip", "tuntap", "add", "dev", nics[i].Tap, "mode", "tap"},
			[]string{"ip", "link", "add", br, "type", "bridge"},
			[]string{"sysctl", "-q", "-w", "net.ipv6.conf." + br + ".disable_ipv6=1"},
			[]string{"ip", "link", "set", nics[i].Tap, "master", br},
			[]string{"ip", "link", "set", veth, "master", br},
			[]string{"ip", "link", "set", nics[i].Tap, "up"},
			[]string{"ip", "link", "set", br, "up"},
		)
	}
	for _, s := range steps {
		if out, err := l.Exec(ctx, lab.Box, s...); err != nil {
			t.Fatalf("%v: %v %s", s, err, out)
		}
	}
	return nics
}

func laptopClient(t *testing.T, l *lab.Lab, caPEM []byte) *http.Client {
	c := l.HTTPClient(lab.Laptop, caPEM)
	jar, _ := cookiejar.New(nil)
	c.Jar = jar
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	// Generous: under software emulation on a busy machine the box's first
	// passphrase (Argon2id, 64 MiB, calibrated on the box) takes minutes.
	c.Timeout = 5 * time.Minute
	c.Transport.(*http.Transport).ResponseHeaderTimeout = 5 * time.Minute
	return c
}

// upload posts an update file as the update page's form does.
func upload(ctx context.Context, c *http.Client, csrf, path string) (int, string, error) {
	var body bytes.Buffer
	mw := multipart.NewWriter(&body)
	fw, _ := mw.CreateFormFile("file", filepath.Base(path))
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, "", err
	}
	fw.Write(b)
	mw.Close()
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, "https://10.201.86.1/update?csrf="+csrf, &body)
	req.Header.Set("Content-Type", mw.FormDataContentType())
	resp, err := c.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	rb, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(rb), nil
}

func TestImageInQEMU(t *testing.T) {
	labtest.Require(t)
	if err := vm.Require(); err != nil {
		t.Skipf("QEMU test skipped: %v", err)
	}
	if _, err := os.Stat(image.SystemdBootPath); err != nil {
		t.Skipf("QEMU test skipped: %v (scripts/deps.sh installs systemd-boot-efi)", err)
	}
	env := labtest.SharedLab(t)
	l := env.Lab
	f := build(t)
	nics := cable(t, l)
	accel := vm.Accel(f.dir)
	ctx, cancel := context.WithTimeout(context.Background(), 18*time.Minute)
	defer cancel()
	start := time.Now()
	box, err := vm.Start(ctx, vm.Config{Image: f.image, Dir: f.dir, NICs: nics, Wrap: []string{"ip", "netns", "exec", l.NS(lab.Box)},
		Accel: accel, Logf: t.Logf})
	if err != nil {
		t.Fatal(err)
	}
	defer box.Stop()
	t.Logf("QEMU with %s", accel)
	m, mark, err := box.Wait(ctx, 0, `redoubt: setup code: (\S+)`)
	if err != nil {
		t.Fatal(err)
	}
	code := m[1]
	t.Logf("waiting for setup %s after power-on", time.Since(start).Round(time.Millisecond))

	t.Run("lease", func(t *testing.T) {
		dc, err := l.StartDHClient(ctx, lab.DHCPOptions{})
		if err != nil {
			t.Fatal(err)
		}
		ev, _, err := dc.WaitLease(ctx, 0)
		if err != nil {
			t.Fatalf("no lease from the booted box: %v\n%s", err, dc.Log())
		}
		t.Logf("lease %s %s after power-on", ev.Addr, time.Since(start).Round(time.Millisecond))
	})
	memory := func(t *testing.T, when string) {
		time.Sleep(5 * time.Second)
		mark := box.Mark()
		box.Type("status")
		m, _, err := box.Wait(ctx, mark, `redoubt: memory: init (\d+) KiB, daemon (\d+) KiB resident; (\d+) KiB available`)
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("idle resident memory (%s): init %s KiB, daemon %s KiB; %s KiB available of 1 GiB", when, m[1], m[2], m[3])
	}
	t.Run("idle memory before setup", func(t *testing.T) { memory(t, "waiting for setup, one laptop leased") })
	plain := laptopClient(t, l, nil)
	t.Run("setup page", func(t *testing.T) {
		resp, err := plain.Get(boxURL + "/setup")
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || !strings.Contains(string(b), "setup code") {
			t.Fatalf("setup page: %d\n%.400s", resp.StatusCode, b)
		}
	})
	t.Run("leaks", func(t *testing.T) {
		if err := l.ResetIngress(ctx, lab.HomeRouter); err != nil {
			t.Fatal(err)
		}
		out, _ := l.Exec(ctx, lab.Laptop, "dig", "+time=2", "+tries=1", "@10.201.86.1", "tracker.example.com", "A")
		if !strings.Contains(out, "NXDOMAIN") {
			t.Errorf("a foreign name through the box: want NXDOMAIN\n%s", out)
		}
		if out, err := l.Exec(ctx, lab.Laptop, "curl", "-sS", "-m", "3", "http://203.0.113.10/"); err == nil {
			t.Errorf("the laptop reached the lab's tracker through the box:\n%s", out)
		}
		l.Exec(ctx, lab.Laptop, "dig", "+time=1", "+tries=1", "@203.0.113.53", "direct.example.com")
		l.Exec(ctx, lab.Laptop, "ping", "-c", "2", "-W", "1", "203.0.113.10")
		c, err := l.Ingress(ctx, lab.HomeRouter)
		if err != nil {
			t.Fatal(err)
		}
		if c.FromLaptopMAC != 0 || c.FromLAN != 0 {
			t.Errorf("the home network saw the laptop's traffic: %+v", c)
		}
	})
	t.Run("setup", func(t *testing.T) {
		if err := lab.SetUpBox(ctx, plain, boxURL, code, passphrase, "vmbox"); err != nil {
			t.Fatal(err)
		}
	})
	resp, err := plain.Get(boxURL + "/ca.crt")
	if err != nil {
		t.Fatal(err)
	}
	caPEM, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	signIn := func(t *testing.T) (*http.Client, string) {
		t.Helper()
		c := laptopClient(t, l, caPEM)
		c.Transport.(*http.Transport).TLSClientConfig.MinVersion = tls.VersionTLS12
		var csrf string
		var err error
		for i := 0; i < 30; i++ {
			if csrf, err = lab.SignIn(ctx, c, "https://10.201.86.1", passphrase); err == nil {
				return c, csrf
			}
			time.Sleep(2 * time.Second)
		}
		t.Fatalf("signing in: %v", err)
		return nil, ""
	}
	t.Run("badly signed update refused", func(t *testing.T) {
		c, csrf := signIn(t)
		code, body, err := upload(ctx, c, csrf, f.badlySig)
		if err != nil {
			t.Fatal(err)
		}
		if code != http.StatusForbidden || !strings.Contains(body, "not signed by this box") {
			t.Fatalf("a badly signed update: %d\n%.600s", code, body)
		}
	})
	t.Run("broken update rolls back", func(t *testing.T) {
		c, csrf := signIn(t)
		mark = box.Mark()
		code, body, err := upload(ctx, c, csrf, f.broken)
		if err != nil || code != http.StatusOK {
			t.Fatalf("uploading the broken update: %d %v\n%.600s", code, err, body)
		}
		var m []string
		if _, mark, err = box.Wait(ctx, mark, `redoubt: booting pc v0.2.0 \(slot b\)`); err != nil {
			t.Fatal(err)
		}
		if m, mark, err = box.Wait(ctx, mark, `update v0.2.0 failed its trial: (.*)`); err != nil {
			t.Fatal(err)
		}
		t.Logf("trial failed: %s", m[1])
		if _, mark, err = box.Wait(ctx, mark, `redoubt: booting pc v0.1.0 \(slot a\)`); err != nil {
			t.Fatal(err)
		}
		if _, mark, err = box.Wait(ctx, mark, `did not pass its trial: back on v0.1.0`); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("good update kept", func(t *testing.T) {
		c, csrf := signIn(t)
		mark = box.Mark()
		applyStart := time.Now()
		code, body, err := upload(ctx, c, csrf, f.good)
		if err != nil || code != http.StatusOK {
			t.Fatalf("uploading the update: %d %v\n%.600s", code, err, body)
		}
		if _, mark, err = box.Wait(ctx, mark, `redoubt: booting pc v0.3.0 \(slot b\)`); err != nil {
			t.Fatal(err)
		}
		if _, mark, err = box.Wait(ctx, mark, `update v0.3.0: unlock the box to keep it`); err != nil {
			t.Fatal(err)
		}
		c, _ = signIn(t) // the owner unlocks the box
		m, _, err := box.Wait(ctx, mark, `update v0.3.0 kept \((.*)\)`)
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("update applied and kept in %s (%s)", time.Since(applyStart).Round(time.Millisecond), m[1])
		resp, err := c.Get("https://10.201.86.1/update")
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		for _, want := range []string{"v0.3.0", "Went back to the previous version", "Kept", "Refused"} {
			if !strings.Contains(string(b), want) {
				t.Errorf("the update page does not show %q:\n%.2000s", want, b)
			}
		}
	})
	t.Run("idle memory after the unlock", func(t *testing.T) { memory(t, "unlocked, no VPN or team mesh") })
	t.Run("factory reset from the console", func(t *testing.T) {
		mark := box.Mark()
		box.Type("factory-reset")
		if _, mark, err = box.Wait(ctx, mark, `Type 'erase everything' to go on`); err != nil {
			t.Fatal(err)
		}
		box.Type("erase everything")
		if _, mark, err = box.Wait(ctx, mark, `redoubt: data partition wiped`); err != nil {
			t.Fatal(err)
		}
		m, _, err := box.Wait(ctx, mark, `redoubt: setup code: (\S+)`)
		if err != nil {
			t.Fatal(err)
		}
		if m[1] == code {
			t.Fatal("the box came back with the old setup code")
		}
		// The box is new: the setup page asks for the code again.
		c := laptopClient(t, l, nil)
		var resp *http.Response
		for i := 0; i < 30; i++ {
			if resp, err = c.Get(boxURL + "/setup"); err == nil {
				break
			}
			time.Sleep(time.Second)
		}
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || !strings.Contains(string(b), "setup code") {
			t.Fatalf("after the reset: %d\n%.400s", resp.StatusCode, b)
		}
	})
}

// TestPiImageInQEMUVirt boots the Raspberry Pi image's kernel and root (an
// arm64 redoubt) on QEMU's virt machine: there is no Pi in QEMU 7.2, so the
// kernel is given directly instead of through the Pi's firmware, and the two
// NICs are QEMU's isolated user network. It needs an arm64 build of redoubt
// in REDOUBT_ARM64_BIN (make image leaves one in out/image/redoubt-arm64;
// bench/board.sh sets it), since cross-compiling it here would take minutes.
func TestPiImageInQEMUVirt(t *testing.T) {
	bin := os.Getenv("REDOUBT_ARM64_BIN")
	if bin == "" {
		t.Skip("arm64 boot skipped: set REDOUBT_ARM64_BIN to an arm64 redoubt (make image builds out/image/redoubt-arm64)")
	}
	if _, err := exec.LookPath("qemu-system-aarch64"); err != nil {
		t.Skip("arm64 boot skipped: qemu-system-aarch64 not installed (Debian's qemu-system-arm)")
	}
	t.Setenv("SOURCE_DATE_EPOCH", fmt.Sprint(epoch))
	dir := t.TempDir()
	kernel, err := image.ModuleDir(image.KernelRPi)
	if err != nil {
		t.Fatal(err)
	}
	firmware, err := image.ModuleDir(image.Firmware)
	if err != nil {
		t.Fatal(err)
	}
	_, vkey, _ := note.GenerateKey(rand.Reader, "redoubt-test-updates")
	keyFile := filepath.Join(dir, "update.pub")
	os.WriteFile(keyFile, []byte(vkey+"\n"), 0o644)
	res, err := image.Build(image.Inputs{Board: layout.RPi, Binary: bin, Kernel: kernel, Firmware: firmware, UpdateKey: keyFile,
		Version: "v0.1.0", Commit: "test", Epoch: time.Unix(epoch, 0).UTC()}, filepath.Join(dir, "rpi.img"))
	if err != nil {
		t.Fatal(err)
	}
	os.Truncate(res.Path, 2<<30)
	cmdline := strings.Replace(layout.Cmdline(layout.RPi, layout.A, res.PartUUID[layout.A]), "console=tty1 console=serial0,115200", "console=ttyAMA0 quiet", 1)
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	start := time.Now()
	box, err := vm.Start(ctx, vm.Config{Image: res.Path, Dir: dir, Arm64: true, Kernel: filepath.Join(kernel, "vmlinuz"), Append: cmdline,
		NICs: []vm.NIC{{MAC: "02:52:44:00:01:02"}, {MAC: "02:52:44:00:00:02"}}, Logf: t.Logf})
	if err != nil {
		t.Fatal(err)
	}
	defer box.Stop()
	for _, want := range []string{`redoubt: booting rpi v0.1.0 \(slot a\)`, `redoubt: data partition ready`, `redoubt: setup code: \S+`} {
		if _, _, err := box.Wait(ctx, 0, want); err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("the arm64 image waits for setup %s after power-on (Cortex-A72 emulated)", time.Since(start).Round(time.Millisecond))
}
