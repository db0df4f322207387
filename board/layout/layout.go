// Package layout is the shape of a Redoubt disk: which boards there are, the
// partitions and their sizes, where the kernel and the boot loader's files sit on
// the boot partition, and the kernel command line. Both sides read it: the image
// builder (board/image) that writes a disk, and the box (board/initd,
// board/update) that finds its slots on one. It imports nothing of the box;
// any package may import it.
package layout

import (
	"fmt"
	"strings"
)

// Board names a kind of box.
type Board string

// The boards.
const (
	// PC is an x86-64 mini PC (two Ethernet ports), booted by UEFI firmware
	// through systemd-boot from a GPT disk.
	PC Board = "pc"
	// RPi is a Raspberry Pi 4 or 5 (arm64), booted by the Pi's firmware from an
	// MBR card, A/B through os_prefix and tryboot.
	RPi Board = "rpi"
)

// Boards lists every board.
var Boards = []Board{PC, RPi}

// ParseBoard names a board or says which are known.
func ParseBoard(s string) (Board, error) {
	for _, b := range Boards {
		if string(b) == s {
			return b, nil
		}
	}
	return "", fmt.Errorf("board %q: want one of %v", s, Boards)
}

// Arch is the board's Go architecture.
func (b Board) Arch() string {
	if b == RPi {
		return "arm64"
	}
	return "amd64"
}

// Slot is one of the two root file systems.
type Slot string

// The slots.
const (
	A Slot = "a"
	B Slot = "b"
)

// Other is the slot that is not s.
func (s Slot) Other() Slot {
	if s == A {
		return B
	}
	return A
}

// ParseSlot reads "a" or "b".
func ParseSlot(v string) (Slot, error) {
	switch v {
	case "a", "A":
		return A, nil
	case "b", "B":
		return B, nil
	}
	return "", fmt.Errorf("slot %q: want a or b", v)
}

// Partition numbers (1-based, as the kernel names them: vda1, mmcblk0p1).
const (
	PartBoot = 1 // FAT32: boot loader or Pi firmware, kernels, headless config
	PartA    = 2 // squashfs root, slot a
	PartB    = 3 // squashfs root, slot b
	PartData = 4 // ext4, made at first boot: the state directory only
)

// Part is the partition number of a slot.
func (s Slot) Part() int {
	if s == B {
		return PartB
	}
	return PartA
}

// Sizes, in bytes. The data partition is written small and grown to the end
// of the disk at first boot.
const (
	MiB          = 1 << 20
	SectorSize   = 512
	FirstSector  = 2048 // 1 MiB alignment
	BootSize     = 256 * MiB
	SlotSize     = 256 * MiB
	DataSizeMin  = 64 * MiB
	GPTTailBytes = 33 * SectorSize // the backup GPT after the last partition
)

// DiskSize is the size of a freshly built image.
func DiskSize() int64 {
	return FirstSector*SectorSize + BootSize + 2*SlotSize + DataSizeMin + MiB
}

// Where things live on a running box.
const (
	BootMount = "/boot/firmware" // the boot partition, read-write
	DataMount = "/perm"          // the data partition
	StateDir  = "/perm/redoubt"  // the daemon's state.dir
	Config    = "/perm/redoubt.toml"
	ImageInfo = "/etc/redoubt/image.json" // in the root: board, version, commit
	UpdateKey = "/etc/redoubt/update.pub" // in the root: the update verifier key
	Binary    = "/bin/redoubt"            // the one program
	Init      = Binary                    // PID 1 is the same program (as init)
)

// Files on the boot partition the owner may put there before first boot.
const (
	HeadlessConfig    = "redoubt.toml"
	HeadlessVPN       = "vpn.conf"
	HeadlessHeadscale = "headscale.toml"
	HeadlessWiFi      = "wifi.toml"
	SetupCodeFile     = "redoubt-setup-code.txt"
	FactoryResetFile  = "factory-reset.txt"
)

// SlotDir is the directory on the boot partition holding a slot's kernel
// (and, on a Pi, its device trees, overlays and cmdline.txt).
func SlotDir(s Slot) string { return "slot-" + string(s) }

// KernelName is the kernel's file name in SlotDir.
func (b Board) KernelName() string {
	if b == RPi {
		return "kernel8.img"
	}
	return "vmlinuz"
}

// Cmdline is the kernel command line booting root rootPartUUID.
func Cmdline(b Board, s Slot, rootPartUUID string) string {
	args := []string{
		"root=PARTUUID=" + rootPartUUID, "rootfstype=squashfs", "ro", "rootwait",
		"init=" + Init, "panic=10", "oops=panic", "redoubt.slot=" + string(s),
	}
	if b == RPi {
		args = append(args, "console=tty1", "console=serial0,115200")
	} else {
		args = append(args, "console=tty0", "console=ttyS0,115200", "quiet", "loglevel=3")
	}
	return strings.Join(args, " ")
}

// SlotFromCmdline reads redoubt.slot= from a kernel command line.
func SlotFromCmdline(cmdline string) (Slot, error) {
	for _, f := range strings.Fields(cmdline) {
		if v, ok := strings.CutPrefix(f, "redoubt.slot="); ok {
			return ParseSlot(v)
		}
	}
	return "", fmt.Errorf("kernel command line has no redoubt.slot=")
}
