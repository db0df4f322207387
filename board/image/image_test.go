package image

import (
	"bytes"
	"debug/elf"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"

	"github.com/redoubt/redoubt/board/bundle"
	"github.com/redoubt/redoubt/board/layout"
)

const testEpoch = 1767225600

// program builds a small static program for arch, standing in for redoubt
// (the image does not run it here; the QEMU test boots the real one).
func program(t *testing.T, arch string) string {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "main.go"), []byte("package main\nfunc main() { println(\"redoubt\") }\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "go.mod"), []byte("module standin\ngo 1.21\n"), 0o644)
	out := filepath.Join(dir, "redoubt")
	cmd := exec.Command("go", "build", "-trimpath", "-o", out, ".")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH="+arch, "GOFLAGS=")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("building a stand-in program: %v\n%s", err, b)
	}
	return out
}

func inputs(t *testing.T, b layout.Board) (Inputs, note.Signer) {
	t.Setenv("SOURCE_DATE_EPOCH", fmt.Sprint(testEpoch))
	in := Inputs{Board: b, Binary: program(t, b.Arch()), Version: "v0.1.0", Commit: "test", Epoch: time.Unix(testEpoch, 0).UTC()}
	var err error
	if b == layout.RPi {
		if in.Kernel, err = ModuleDir(KernelRPi); err == nil {
			in.Firmware, err = ModuleDir(Firmware)
		}
	} else {
		in.Kernel, err = ModuleDir(KernelPC)
		in.BootLoader = SystemdBootPath
		if _, serr := os.Stat(SystemdBootPath); serr != nil {
			t.Skipf("%v (scripts/deps.sh installs systemd-boot-efi)", serr)
		}
	}
	if err != nil {
		t.Skipf("the kernel modules are not downloaded: %v", err)
	}
	// A fixed key (from fixed randomness): the public half is in the image.
	skey, vkeyText, err := note.GenerateKey(bytes.NewReader(bytes.Repeat([]byte{7}, 64)), "redoubt-test")
	if err != nil {
		t.Fatal(err)
	}
	s, err := note.NewSigner(skey)
	if err != nil {
		t.Fatal(err)
	}
	vkey := filepath.Join(t.TempDir(), "update.pub")
	os.WriteFile(vkey, []byte(vkeyText+"\n"), 0o644)
	in.UpdateKey = vkey
	return in, s
}

// TestImages builds each board's image twice (the same bytes), reads its
// layout back, and checks that an update of the same inputs verifies with the
// key in the image and carries the same root.
func TestImages(t *testing.T) {
	for _, b := range layout.Boards {
		t.Run(string(b), func(t *testing.T) {
			in, signer := inputs(t, b)
			dir := t.TempDir()
			res, err := Build(in, filepath.Join(dir, "disk.img"))
			if err != nil {
				t.Fatal(err)
			}
			again, err := Build(in, filepath.Join(dir, "again.img"))
			if err != nil {
				t.Fatal(err)
			}
			if res.SHA256 != again.SHA256 {
				t.Fatalf("two builds of the same inputs differ: %s and %s", res.SHA256, again.SHA256)
			}
			os.Remove(again.Path)
			l, err := Inspect(res.Path)
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("%s", l)
			key, _ := os.ReadFile(in.UpdateKey)
			if l.Root.Version != "v0.1.0" || l.Root.Board != b || l.UpdateKey != string(key) {
				t.Fatalf("root: %+v key %q", l.Root, l.UpdateKey)
			}
			if !contains(l.RootFiles, "bin/redoubt") {
				t.Fatalf("root files: %v", l.RootFiles)
			}
			kernel := layout.SlotDir(layout.A) + "/" + b.KernelName()
			if l.BootFiles[kernel] == 0 {
				t.Fatalf("no kernel %s: %v", kernel, l.BootFiles)
			}
			switch b {
			case layout.PC:
				if l.Table != "gpt" || l.BootFiles["EFI/BOOT/BOOTX64.EFI"] == 0 {
					t.Fatalf("%s, boot files %v", l.Table, l.BootFiles)
				}
				entry := l.Boot["loader/entries/redoubt-00000001-a.conf"]
				if !strings.Contains(entry, "root=PARTUUID="+res.PartUUID[layout.A]) || !strings.Contains(entry, "init=/bin/redoubt") {
					t.Fatalf("boot entry:\n%s", entry)
				}
			case layout.RPi:
				if l.Table != "mbr" || l.BootFiles["start4.elf"] == 0 || l.BootFiles["slot-a/bcm2711-rpi-4-b.dtb"] == 0 || l.BootFiles["slot-a/bcm2712-rpi-5-b.dtb"] == 0 {
					t.Fatalf("%s, boot files %v", l.Table, l.BootFiles)
				}
				if !strings.Contains(l.Boot["config.txt"], "os_prefix=slot-a/") || !strings.Contains(l.Boot["slot-a/cmdline.txt"], "root=PARTUUID="+res.PartUUID[layout.A]) {
					t.Fatalf("config.txt:\n%s\ncmdline.txt:\n%s", l.Boot["config.txt"], l.Boot["slot-a/cmdline.txt"])
				}
			}
			// The program in the root is the board's architecture.
			checkArch(t, res.Path, b)

			// The update for the same inputs verifies with the image's key and
			// carries the same root.
			upd := filepath.Join(dir, "update.rdu")
			m, err := BuildUpdate(in, signer, upd)
			if err != nil {
				t.Fatal(err)
			}
			v, err := note.NewVerifier(strings.TrimSpace(l.UpdateKey))
			if err != nil {
				t.Fatal(err)
			}
			f, _ := os.Open(upd)
			defer f.Close()
			r, err := bundle.Open(f, v)
			if err != nil {
				t.Fatalf("the update does not verify with the image's key: %v", err)
			}
			if r.Manifest.Hash() != m.Hash() || r.Manifest.Board != b {
				t.Fatal("manifest")
			}
			for {
				p, pr, err := r.Next()
				if err == io.EOF {
					break
				}
				io.Copy(io.Discard, pr)
				if err := pr.Check(); err != nil {
					t.Fatalf("part %s: %v", p.Name, err)
				}
				if p.Name == "root" && p.Size != res.RootSize {
					t.Fatalf("the update's root is %d bytes, the image's %d", p.Size, res.RootSize)
				}
			}
		})
	}
}

func checkArch(t *testing.T, img string, b layout.Board) {
	prog, err := ReadRootFile(img, layout.Binary)
	if err != nil {
		t.Fatal(err)
	}
	f, err := elf.NewFile(bytes.NewReader(prog))
	if err != nil {
		t.Fatal(err)
	}
	want := map[layout.Board]elf.Machine{layout.PC: elf.EM_X86_64, layout.RPi: elf.EM_AARCH64}[b]
	if f.Machine != want {
		t.Fatalf("the program in the root is %v, want %v", f.Machine, want)
	}
}

func contains(l []string, s string) bool {
	for _, x := range l {
		if x == s {
			return true
		}
	}
	return false
}
