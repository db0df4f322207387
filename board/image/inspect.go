package image

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path"
	"sort"
	"strings"

	diskfs "github.com/diskfs/go-diskfs"
	"github.com/diskfs/go-diskfs/backend/file"
	"github.com/diskfs/go-diskfs/filesystem"
	"github.com/diskfs/go-diskfs/filesystem/squashfs"
	"github.com/diskfs/go-diskfs/partition/gpt"
	"github.com/diskfs/go-diskfs/partition/mbr"

	"github.com/redoubt/redoubt/board/layout"
)

// Layout is what an image holds, read back from its bytes.
type Layout struct {
	Table      string // "gpt" or "mbr"
	Partitions []PartInfo
	// BootFiles are the boot partition's files and sizes.
	BootFiles map[string]int64
	// Boot holds the small text files of the boot partition (entries,
	// config.txt, cmdline.txt, loader.conf).
	Boot map[string]string
	// Root is image.json of slot a; RootFiles its files.
	Root      Info
	RootFiles []string
	UpdateKey string
}

// PartInfo is one partition.
type PartInfo struct {
	Index       int
	Start, Size int64 // bytes
	Name, UUID  string
}

func (l Layout) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "partition table: %s\n", l.Table)
	for _, p := range l.Partitions {
		fmt.Fprintf(&b, "  %d %-13s start %10d size %10d %s\n", p.Index, p.Name, p.Start, p.Size, p.UUID)
	}
	fmt.Fprintf(&b, "root (slot a): %s %s %s, kernel %s\n", l.Root.Board, l.Root.Version, l.Root.Commit, l.Root.Kernel)
	fmt.Fprintf(&b, "update key: %s\n", strings.TrimSpace(l.UpdateKey))
	names := make([]string, 0, len(l.BootFiles))
	for n := range l.BootFiles {
		names = append(names, n)
	}
	sort.Strings(names)
	fmt.Fprintf(&b, "boot partition: %d files\n", len(names))
	for _, n := range names {
		if strings.Contains(n, "overlays/") {
			continue
		}
		fmt.Fprintf(&b, "  %-40s %d\n", n, l.BootFiles[n])
	}
	return b.String()
}

// Inspect reads an image's layout and checks it against board/layout.
func Inspect(p string) (Layout, error) {
	var l Layout
	d, err := diskfs.Open(p, diskfs.WithOpenMode(diskfs.ReadOnly))
	if err != nil {
		return l, fmt.Errorf("opening %s: %w", p, err)
	}
	defer d.Close()
	tbl, err := d.GetPartitionTable()
	if err != nil {
		return l, fmt.Errorf("reading the partition table: %w", err)
	}
	switch t := tbl.(type) {
	case *gpt.Table:
		l.Table = "gpt"
		for _, pt := range t.Partitions {
			if pt.Type == gpt.Unused {
				continue
			}
			l.Partitions = append(l.Partitions, PartInfo{pt.Index, int64(pt.Start) * layout.SectorSize, int64(pt.Size), pt.Name, strings.ToLower(pt.GUID)})
		}
	case *mbr.Table:
		l.Table = "mbr"
		for i, pt := range t.Partitions {
			if pt.Type == mbr.Empty {
				continue
			}
			l.Partitions = append(l.Partitions, PartInfo{i + 1, int64(pt.Start) * layout.SectorSize, int64(pt.Size) * layout.SectorSize, fmt.Sprintf("type-%02x", byte(pt.Type)), pt.UUID()})
		}
	default:
		return l, fmt.Errorf("unknown partition table %T", tbl)
	}
	if len(l.Partitions) != 4 {
		return l, fmt.Errorf("%d partitions: want 4 (boot, root a, root b, data)", len(l.Partitions))
	}
	for i, want := range []int64{layout.BootSize, layout.SlotSize, layout.SlotSize, layout.DataSizeMin} {
		if l.Partitions[i].Size != want || l.Partitions[i].Start != partOffset(i+1) {
			return l, fmt.Errorf("partition %d at %d, %d bytes: want %d, %d bytes", i+1, l.Partitions[i].Start, l.Partitions[i].Size, partOffset(i+1), want)
		}
	}
	bootFS, err := d.GetFilesystem(layout.PartBoot)
	if err != nil {
		return l, fmt.Errorf("reading the boot partition: %w", err)
	}
	if bootFS.Type() != filesystem.TypeFat32 {
		return l, fmt.Errorf("boot partition is %v: want FAT32", bootFS.Type())
	}
	l.BootFiles, l.Boot = map[string]int64{}, map[string]string{}
	if err := walk(bootFS, "/", func(name string, size int64) error {
		l.BootFiles[name] = size
		if size < 4096 && (strings.HasSuffix(name, ".conf") || strings.HasSuffix(name, ".txt")) {
			b, err := readAll(bootFS, "/"+name)
			if err != nil {
				return err
			}
			l.Boot[name] = string(b)
		}
		return nil
	}); err != nil {
		return l, err
	}
	b, err := file.OpenFromPath(p, true)
	if err != nil {
		return l, err
	}
	defer b.Close()
	rootFS, err := squashfs.Read(b, layout.SlotSize, partOffset(layout.PartA), 0)
	if err != nil {
		return l, fmt.Errorf("reading root a: %w", err)
	}
	if err := walk(rootFS, "/", func(name string, _ int64) error { l.RootFiles = append(l.RootFiles, name); return nil }); err != nil {
		return l, err
	}
	info, err := readAll(rootFS, layout.ImageInfo)
	if err != nil {
		return l, fmt.Errorf("root a: %w", err)
	}
	if err := json.Unmarshal(info, &l.Root); err != nil {
		return l, fmt.Errorf("root a: %s: %w", layout.ImageInfo, err)
	}
	k, err := readAll(rootFS, layout.UpdateKey)
	if err != nil {
		return l, fmt.Errorf("root a: %w", err)
	}
	l.UpdateKey = string(k)
	return l, nil
}

func readAll(f filesystem.FileSystem, p string) ([]byte, error) {
	fh, err := f.OpenFile(p, os.O_RDONLY)
	if err != nil {
		// go-diskfs's file systems differ on a leading slash.
		if fh, err = f.OpenFile(strings.TrimPrefix(p, "/"), os.O_RDONLY); err != nil {
			return nil, fmt.Errorf("opening %s: %w", p, err)
		}
	}
	defer fh.Close()
	return io.ReadAll(fh)
}

func walk(f filesystem.FileSystem, dir string, fn func(name string, size int64) error) error {
	// go-diskfs's FAT wants io/fs paths ("." and "a/b"), its squashfs "/a/b".
	rel := strings.TrimPrefix(dir, "/")
	if rel == "" {
		rel = "."
	}
	des, err := f.ReadDir(rel)
	if err != nil {
		if des, err = f.ReadDir(dir); err != nil {
			return fmt.Errorf("listing %s: %w", dir, err)
		}
	}
	for _, de := range des {
		if de.Name() == "." || de.Name() == ".." {
			continue
		}
		p := path.Join(dir, de.Name())
		if de.IsDir() {
			if err := walk(f, p, fn); err != nil {
				return err
			}
			continue
		}
		var size int64
		if info, err := de.Info(); err == nil {
			size = info.Size()
		}
		if err := fn(strings.TrimPrefix(p, "/"), size); err != nil {
			return err
		}
	}
	return nil
}

// ReadRootFile reads a file from an image's root slot a.
func ReadRootFile(img, name string) ([]byte, error) {
	b, err := file.OpenFromPath(img, true)
	if err != nil {
		return nil, err
	}
	defer b.Close()
	rootFS, err := squashfs.Read(b, layout.SlotSize, partOffset(layout.PartA), 0)
	if err != nil {
		return nil, fmt.Errorf("reading root a: %w", err)
	}
	return readAll(rootFS, name)
}
