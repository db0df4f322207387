// Package datapart owns the box's disk as the running system sees it: which
// disk and partitions it booted from, growing the data partition to the end
// of the disk, making its file system (ext4, from Go), and wiping it. Only
// board/initd and board/update import it.
package datapart

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"unsafe"

	"github.com/diskfs/go-diskfs/backend/file"
	"github.com/diskfs/go-diskfs/filesystem/ext4"
	"github.com/diskfs/go-diskfs/partition/gpt"
	"golang.org/x/sys/unix"

	"github.com/redoubt/redoubt/board/layout"
)

// Disk is the boot disk.
type Disk struct {
	Name string // "vda", "mmcblk0", "nvme0n1"
	// SysBlock is /sys/class/block by default (a temporary tree in tests);
	// Dev is /dev.
	SysBlock, Dev string
}

// Find returns the disk holding the partition mounted at root ("/").
func Find(root string) (Disk, error) {
	var st unix.Stat_t
	if err := unix.Stat(root, &st); err != nil {
		return Disk{}, fmt.Errorf("finding the boot disk: %w", err)
	}
	link := fmt.Sprintf("/sys/dev/block/%d:%d", unix.Major(st.Dev), unix.Minor(st.Dev))
	target, err := filepath.EvalSymlinks(link)
	if err != nil {
		return Disk{}, fmt.Errorf("finding the boot disk of %s: %w", root, err)
	}
	return Disk{Name: filepath.Base(filepath.Dir(target)), SysBlock: "/sys/class/block", Dev: "/dev"}, nil
}

// PartName is partition n's name: vda2, mmcblk0p2, nvme0n1p2.
func (d Disk) PartName(n int) string {
	if last := d.Name[len(d.Name)-1]; last >= '0' && last <= '9' {
		return fmt.Sprintf("%sp%d", d.Name, n)
	}
	return fmt.Sprintf("%s%d", d.Name, n)
}

// Path is the disk's device node; PartPath partition n's.
func (d Disk) Path() string          { return filepath.Join(d.Dev, d.Name) }
func (d Disk) PartPath(n int) string { return filepath.Join(d.Dev, d.PartName(n)) }

// SlotPath is the device node of a root slot.
func (d Disk) SlotPath(s layout.Slot) string { return d.PartPath(s.Part()) }

// size reads a block device's size in bytes from sysfs (512-byte units).
func (d Disk) size(name string) (int64, error) {
	p := filepath.Join(d.SysBlock, name, "size")
	b, err := os.ReadFile(p)
	if err != nil {
		return 0, err
	}
	var n int64
	if _, err := fmt.Sscan(strings.TrimSpace(string(b)), &n); err != nil {
		return 0, fmt.Errorf("reading %s: %w", p, err)
	}
	return n * 512, nil
}

// PartSize is partition n's size in bytes.
func (d Disk) PartSize(n int) (int64, error) { return d.size(d.PartName(n)) }

// Grow extends the data partition to the end of the disk, in the partition
// table (GPT or MBR) and in the kernel's view. It does nothing when the
// partition already reaches the end (within 1 MiB).
func (d Disk) Grow() (grown bool, err error) {
	diskSize, err := d.size(d.Name)
	if err != nil {
		return false, err
	}
	f, err := os.OpenFile(d.Path(), os.O_RDWR, 0)
	if err != nil {
		return false, fmt.Errorf("opening the boot disk: %w", err)
	}
	defer f.Close()
	start, size, grown, err := growTable(f, diskSize)
	if err != nil || !grown {
		return false, err
	}
	return true, resizePart(f, layout.PartData, int64(start)*layout.SectorSize, int64(size)*layout.SectorSize)
}

// growTable extends the data partition to the end of a disk of diskSize
// bytes in its partition table, returning its new extent in sectors.
func growTable(f *os.File, diskSize int64) (start, size uint64, grown bool, err error) {
	var mbr [512]byte
	if _, err := f.ReadAt(mbr[:], 0); err != nil {
		return 0, 0, false, err
	}
	if mbr[450] == 0xee { // protective MBR: GPT
		t, err := gpt.Read(f, layout.SectorSize, layout.SectorSize)
		if err != nil {
			return 0, 0, false, fmt.Errorf("reading the GPT: %w", err)
		}
		var p *gpt.Partition
		for _, q := range t.Partitions {
			if q.Index == layout.PartData {
				p = q
			}
		}
		if p == nil {
			return 0, 0, false, errors.New("the GPT has no data partition")
		}
		last := uint64(diskSize-layout.GPTTailBytes)/layout.SectorSize - 1
		last -= (last + 1) % (layout.MiB / layout.SectorSize) // end on a MiB
		if p.End+layout.MiB/layout.SectorSize >= last {
			return 0, 0, false, nil
		}
		p.End = last
		p.Size = (p.End - p.Start + 1) * layout.SectorSize
		if err := t.Write(f, diskSize); err != nil {
			return 0, 0, false, fmt.Errorf("writing the GPT: %w", err)
		}
		start, size = p.Start, p.End-p.Start+1
	} else {
		e := mbr[446+16*(layout.PartData-1):]
		start = uint64(le32(e[8:]))
		cur := uint64(le32(e[12:]))
		total := uint64(diskSize) / layout.SectorSize
		total -= total % (layout.MiB / layout.SectorSize)
		if total > 1<<32-1 {
			total = 1<<32 - 1
		}
		if start+cur+layout.MiB/layout.SectorSize >= total {
			return 0, 0, false, nil
		}
		size = total - start
		putLE32(e[12:], uint32(size))
		if _, err := f.WriteAt(mbr[:], 0); err != nil {
			return 0, 0, false, fmt.Errorf("writing the MBR: %w", err)
		}
	}
	if err := f.Sync(); err != nil {
		return 0, 0, false, err
	}
	return start, size, true, nil
}

// resizePart tells the kernel partition n's new extent (BLKPG), which works
// while other partitions of the disk are mounted.
func resizePart(f *os.File, n int, start, length int64) error {
	type blkpgPartition struct {
		Start, Length int64
		Pno           int32
		Devname       [64]byte
		Volname       [64]byte
	}
	type blkpgIoctlArg struct {
		Op      int32
		Flags   int32
		Datalen int32
		_       int32
		Data    uintptr
	}
	const blkpg = 0x1269
	const blkpgResizePartition = 3
	p := blkpgPartition{Start: start, Length: length, Pno: int32(n)}
	arg := blkpgIoctlArg{Op: blkpgResizePartition, Datalen: int32(unsafe.Sizeof(p)), Data: uintptr(unsafe.Pointer(&p))}
	if _, _, e := unix.Syscall(unix.SYS_IOCTL, f.Fd(), blkpg, uintptr(unsafe.Pointer(&arg))); e != 0 {
		return fmt.Errorf("telling the kernel the data partition's new size: %w", e)
	}
	return nil
}

// MakeFS makes a fresh ext4 file system on the data partition.
func (d Disk) MakeFS() error {
	size, err := d.PartSize(layout.PartData)
	if err != nil {
		return err
	}
	f, err := os.OpenFile(d.PartPath(layout.PartData), os.O_RDWR, 0)
	if err != nil {
		return fmt.Errorf("opening the data partition: %w", err)
	}
	defer f.Close()
	if _, err := ext4.Create(file.New(f, false), size, 0, 512, &ext4.Params{VolumeName: "redoubt-data", InodeRatio: 64 << 10}); err != nil {
		return fmt.Errorf("making the data partition's file system: %w", err)
	}
	return f.Sync()
}

// Discard tells the card or disk that the data partition's blocks are free
// (BLKDISCARD), after zeroing its first and last MiB (the file system's
// superblocks, in case the device ignores discards). Unmount it first.
func (d Disk) Discard() error {
	size, err := d.PartSize(layout.PartData)
	if err != nil {
		return err
	}
	f, err := os.OpenFile(d.PartPath(layout.PartData), os.O_RDWR, 0)
	if err != nil {
		return fmt.Errorf("opening the data partition: %w", err)
	}
	defer f.Close()
	zero := make([]byte, layout.MiB)
	for _, off := range []int64{0, max(0, size-layout.MiB)} {
		if _, err := f.WriteAt(zero, off); err != nil {
			return fmt.Errorf("zeroing the data partition: %w", err)
		}
	}
	if err := f.Sync(); err != nil {
		return err
	}
	r := [2]uint64{0, uint64(size)}
	unix.Syscall(unix.SYS_IOCTL, f.Fd(), unix.BLKDISCARD, uintptr(unsafe.Pointer(&r))) // best effort: not every device discards
	return nil
}

func le32(b []byte) uint32 {
	return uint32(b[0]) | uint32(b[1])<<8 | uint32(b[2])<<16 | uint32(b[3])<<24
}
func putLE32(b []byte, v uint32) {
	b[0], b[1], b[2], b[3] = byte(v), byte(v>>8), byte(v>>16), byte(v>>24)
}

// PartUUID is partition n's PARTUUID as the kernel's root= names it: the GPT
// partition GUID (lower case), or for MBR the disk signature and the number
// ("1a2b3c4d-03").
func (d Disk) PartUUID(n int) (string, error) {
	f, err := os.Open(d.Path())
	if err != nil {
		return "", fmt.Errorf("opening the boot disk: %w", err)
	}
	defer f.Close()
	var mbr [512]byte
	if _, err := f.ReadAt(mbr[:], 0); err != nil {
		return "", err
	}
	if mbr[450] != 0xee {
		return fmt.Sprintf("%08x-%02x", le32(mbr[440:]), n), nil
	}
	t, err := gpt.Read(f, layout.SectorSize, layout.SectorSize)
	if err != nil {
		return "", fmt.Errorf("reading the GPT: %w", err)
	}
	for _, p := range t.Partitions {
		if p.Index == n {
			return strings.ToLower(p.GUID), nil
		}
	}
	return "", fmt.Errorf("the GPT has no partition %d", n)
}
