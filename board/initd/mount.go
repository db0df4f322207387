package initd

import (
	"errors"
	"fmt"
	"os"
	"unsafe"

	"github.com/BurntSushi/toml"
	"golang.org/x/sys/unix"

	"github.com/redoubt/redoubt/board/datapart"
	"github.com/redoubt/redoubt/board/layout"
	"github.com/redoubt/redoubt/board/profile"
	"github.com/redoubt/redoubt/board/update"
)

// mountEarly mounts the kernel's file systems and the tmpfs directories; the
// root is read-only squashfs, so every mount point exists in the image.
func mountEarly() error {
	mounts := []struct {
		src, dst, fstype string
		flags            uintptr
		data             string
	}{
		{"proc", "/proc", "proc", unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC, ""},
		{"sysfs", "/sys", "sysfs", unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC, ""},
		{"devtmpfs", "/dev", "devtmpfs", unix.MS_NOSUID, "mode=0755"},
		{"tmpfs", "/run", "tmpfs", unix.MS_NOSUID | unix.MS_NODEV, "mode=0755,size=32m"},
		{"tmpfs", "/tmp", "tmpfs", unix.MS_NOSUID | unix.MS_NODEV, "mode=1777,size=64m"},
		{"configfs", "/sys/kernel/config", "configfs", 0, ""},
	}
	for _, m := range mounts {
		err := unix.Mount(m.src, m.dst, m.fstype, m.flags, m.data)
		if err != nil && !errors.Is(err, unix.EBUSY) {
			if m.fstype == "configfs" {
				continue // only the USB gadget needs it
			}
			return fmt.Errorf("mounting %s on %s: %w", m.fstype, m.dst, err)
		}
	}
	return nil
}

// mountBoot mounts the boot partition (FAT) read-write: the boot loader's
// files, the slots' kernels, the owner's files and the setup code.
func mountBoot(d datapart.Disk) error {
	err := unix.Mount(d.PartPath(layout.PartBoot), layout.BootMount, "vfat", unix.MS_NOATIME|unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, "umask=0077,flush")
	if err != nil {
		return fmt.Errorf("mounting the boot partition %s: %w", d.PartPath(layout.PartBoot), err)
	}
	return nil
}

// unmountAll syncs and unmounts what init mounted read-write.
func unmountAll() {
	unix.Sync()
	for _, m := range []string{layout.DataMount, layout.BootMount} {
		if err := unix.Unmount(m, 0); err != nil {
			unix.Mount("", m, "", unix.MS_REMOUNT|unix.MS_RDONLY, "")
		}
	}
	unix.Sync()
}

// bringUpLoopback sets lo up: the daemon's own proxies listen on 127.0.0.1.
func bringUpLoopback() error {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	ifr, err := unix.NewIfreq("lo")
	if err != nil {
		return err
	}
	if err := unix.IoctlIfreq(fd, unix.SIOCGIFFLAGS, ifr); err != nil {
		return fmt.Errorf("reading lo's flags: %w", err)
	}
	ifr.SetUint16(ifr.Uint16() | unix.IFF_UP)
	if err := unix.IoctlIfreq(fd, unix.SIOCSIFFLAGS, ifr); err != nil {
		return fmt.Errorf("setting lo up: %w", err)
	}
	return nil
}

// rebootWithArg restarts with an argument for the firmware ("0 tryboot").
func rebootWithArg(arg string) error {
	p, err := unix.BytePtrFromString(arg)
	if err != nil {
		return err
	}
	_, _, e := unix.Syscall6(unix.SYS_REBOOT, unix.LINUX_REBOOT_MAGIC1, unix.LINUX_REBOOT_MAGIC2,
		unix.LINUX_REBOOT_CMD_RESTART2, uintptr(unsafe.Pointer(p)), 0, 0)
	if e != 0 {
		return e
	}
	return nil
}

// fileConfig is the part of the config file init reads.
type fileConfig struct {
	Board  profile.Config `toml:"board"`
	Update update.Config  `toml:"update"`
	API    struct {
		Socket string `toml:"socket"`
	} `toml:"api"`
}

func readConfig(path string) (fileConfig, error) {
	var c fileConfig
	b, err := os.ReadFile(path)
	if err != nil {
		return c, err
	}
	if _, err := toml.Decode(string(b), &c); err != nil {
		return c, fmt.Errorf("%s: %w", path, err)
	}
	c.Update = c.Update.WithDefaults()
	if c.API.Socket == "" {
		c.API.Socket = "/run/redoubt/redoubt.sock"
	}
	return c, c.Board.Validate()
}
