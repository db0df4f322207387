package image

import (
	"encoding/binary"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"

	diskfs "github.com/diskfs/go-diskfs"
	"github.com/diskfs/go-diskfs/disk"
	"github.com/diskfs/go-diskfs/filesystem"
	"github.com/diskfs/go-diskfs/partition/gpt"

	"github.com/redoubt/redoubt/board/bootloader"
	"github.com/redoubt/redoubt/board/layout"
)

// Result says what a build wrote.
type Result struct {
	Info     Info
	Path     string
	Size     int64
	RootSize int64  // bytes of slot a's squashfs
	SHA256   string // of the whole image
	// PartUUIDs of the root slots, as the kernel command line names them.
	PartUUID map[layout.Slot]string
}

// Build writes the disk image for in.Board to out.
func Build(in Inputs, out string) (Result, error) {
	if err := in.Validate(); err != nil {
		return Result{}, err
	}
	info, err := in.info()
	if err != nil {
		return Result{}, err
	}
	tmp, err := os.MkdirTemp(filepath.Dir(out), ".image-")
	if err != nil {
		return Result{}, err
	}
	defer os.RemoveAll(tmp)
	rootPath := filepath.Join(tmp, "root.squashfs")
	rootSize, err := BuildRoot(in, rootPath)
	if err != nil {
		return Result{}, err
	}
	partial := out + ".partial"
	os.Remove(partial)
	size := layout.DiskSize()
	f, err := os.OpenFile(partial, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return Result{}, err
	}
	if err := f.Truncate(size); err != nil {
		f.Close()
		return Result{}, err
	}
	uuids, err := writeTable(f, in)
	f.Close()
	if err != nil {
		return Result{}, err
	}
	d, err := diskfs.Open(partial)
	if err != nil {
		return Result{}, fmt.Errorf("opening the new image: %w", err)
	}
	bootFS, err := d.CreateFilesystem(disk.FilesystemSpec{Partition: layout.PartBoot, FSType: filesystem.TypeFat32, VolumeLabel: "REDOUBT", Reproducible: true})
	if err != nil {
		d.Close()
		return Result{}, fmt.Errorf("making the boot partition's file system: %w", err)
	}
	files, err := in.bootPartition(uuids)
	if err == nil {
		err = writeFAT(bootFS, files)
	}
	d.Close()
	if err != nil {
		return Result{}, err
	}
	if err := copyInto(partial, rootPath, partOffset(layout.PartA)); err != nil {
		return Result{}, err
	}
	sum, err := sha256File(partial)
	if err != nil {
		return Result{}, err
	}
	if err := os.Rename(partial, out); err != nil {
		return Result{}, err
	}
	return Result{Info: info, Path: out, Size: size, RootSize: rootSize, SHA256: sum, PartUUID: uuids}, nil
}

// partOffset is where partition n starts, in bytes.
func partOffset(n int) int64 {
	off := int64(layout.FirstSector * layout.SectorSize)
	sizes := []int64{layout.BootSize, layout.SlotSize, layout.SlotSize, layout.DataSizeMin}
	for i := 1; i < n; i++ {
		off += sizes[i-1]
	}
	return off
}

func partSize(n int) int64 {
	return []int64{layout.BootSize, layout.SlotSize, layout.SlotSize, layout.DataSizeMin}[n-1]
}

// writeTable writes the partition table: GPT for a PC, MBR for a Pi (whose
// firmware reads MBR). It returns the root slots' PARTUUIDs.
func writeTable(f *os.File, in Inputs) (map[layout.Slot]string, error) {
	if in.Board == layout.RPi {
		seed := in.seed("mbr")
		sig := binary.LittleEndian.Uint32(seed[:4])
		var mbr [512]byte
		binary.LittleEndian.PutUint32(mbr[440:], sig)
		types := []byte{0x0c, 0x83, 0x83, 0x83} // FAT32 LBA, Linux ×3
		for i := 0; i < 4; i++ {
			e := mbr[446+16*i:]
			if i == 0 {
				e[0] = 0x80
			}
			// CHS fields unused: LBA addressing (0xfe 0xff 0xff means "see LBA").
			copy(e[1:4], []byte{0xfe, 0xff, 0xff})
			e[4] = types[i]
			copy(e[5:8], []byte{0xfe, 0xff, 0xff})
			binary.LittleEndian.PutUint32(e[8:], uint32(partOffset(i+1)/layout.SectorSize))
			binary.LittleEndian.PutUint32(e[12:], uint32(partSize(i+1)/layout.SectorSize))
		}
		mbr[510], mbr[511] = 0x55, 0xaa
		if _, err := f.WriteAt(mbr[:], 0); err != nil {
			return nil, err
		}
		return map[layout.Slot]string{
			layout.A: fmt.Sprintf("%08x-%02x", sig, layout.PartA),
			layout.B: fmt.Sprintf("%08x-%02x", sig, layout.PartB),
		}, nil
	}
	names := []string{"redoubt-boot", "redoubt-a", "redoubt-b", "redoubt-data"}
	types := []gpt.Type{gpt.EFISystemPartition, gpt.LinuxFilesystem, gpt.LinuxFilesystem, gpt.LinuxFilesystem}
	t := &gpt.Table{LogicalSectorSize: layout.SectorSize, PhysicalSectorSize: layout.SectorSize, ProtectiveMBR: true, GUID: in.guid("disk")}
	uuids := map[layout.Slot]string{}
	for i := 0; i < 4; i++ {
		n := i + 1
		start := uint64(partOffset(n) / layout.SectorSize)
		p := &gpt.Partition{Index: n, Start: start, End: start + uint64(partSize(n)/layout.SectorSize) - 1, Type: types[i], Name: names[i], GUID: in.guid(names[i])}
		t.Partitions = append(t.Partitions, p)
	}
	uuids[layout.A] = strings.ToLower(t.Partitions[1].GUID)
	uuids[layout.B] = strings.ToLower(t.Partitions[2].GUID)
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if err := t.Write(f, st.Size()); err != nil {
		return nil, fmt.Errorf("writing the GPT: %w", err)
	}
	return uuids, nil
}

// bootPartition lists the boot partition's files: path → contents or source.
func (in Inputs) bootPartition(uuids map[layout.Slot]string) (map[string]fileSource, error) {
	files := map[string]fileSource{}
	slotFiles, err := in.slotBootFiles()
	if err != nil {
		return nil, err
	}
	dir := layout.SlotDir(layout.A)
	for _, sf := range slotFiles {
		files[dir+"/"+sf.name] = fileSource{path: sf.path}
	}
	cmdline := layout.Cmdline(in.Board, layout.A, uuids[layout.A])
	files["README.txt"] = fileSource{data: []byte(readme)}
	if in.Board == layout.RPi {
		fw, err := filepath.Glob(filepath.Join(in.Firmware, "*"))
		if err != nil {
			return nil, err
		}
		for _, p := range fw {
			b := filepath.Base(p)
			if strings.HasSuffix(b, ".elf") || strings.HasSuffix(b, ".dat") || b == "bootcode.bin" || strings.HasPrefix(b, "LICENSE") {
				files[b] = fileSource{path: p}
			}
		}
		files[dir+"/cmdline.txt"] = fileSource{data: []byte(cmdline + "\n")}
		files["config.txt"] = fileSource{data: []byte(bootloader.PiConfig(layout.A))}
		return files, nil
	}
	h, err := sha256File(in.BootLoader)
	if err != nil {
		return nil, err
	}
	if h != SystemdBootSHA256 {
		return nil, fmt.Errorf("systemd-boot at %s has SHA-256 %s; the pinned one (%s, Debian systemd-boot-efi %s) is %s: check the new version, then update board/image/pins.go",
			in.BootLoader, h, "systemd-bootx64.efi", SystemdBootVersion, SystemdBootSHA256)
	}
	files["EFI/BOOT/BOOTX64.EFI"] = fileSource{path: in.BootLoader}
	files["loader/loader.conf"] = fileSource{data: []byte(bootloader.LoaderConf)}
	e := bootloader.Entry{Generation: 1, Slot: layout.A, Version: in.Version, Kernel: "/" + dir + "/" + in.Board.KernelName(), Options: cmdline}
	files["loader/entries/"+e.FileName()] = fileSource{data: []byte(e.Text())}
	return files, nil
}

type fileSource struct {
	data []byte
	path string
}

// writeFAT writes files in sorted order, directories first as they are met.
func writeFAT(fs filesystem.FileSystem, files map[string]fileSource) error {
	names := make([]string, 0, len(files))
	for n := range files {
		names = append(names, n)
	}
	sort.Strings(names)
	made := map[string]bool{"/": true, ".": true}
	for _, n := range names {
		var parts []string
		for d := path.Dir(n); d != "." && !made[d]; d = path.Dir(d) {
			parts = append([]string{d}, parts...)
		}
		for _, d := range parts {
			if err := fs.Mkdir("/" + d); err != nil {
				return fmt.Errorf("boot partition: making %s: %w", d, err)
			}
			made[d] = true
		}
		w, err := fs.OpenFile("/"+n, os.O_CREATE|os.O_RDWR|os.O_TRUNC)
		if err != nil {
			return fmt.Errorf("boot partition: creating %s: %w", n, err)
		}
		src := files[n]
		var r io.Reader
		if src.path != "" {
			rf, err := os.Open(src.path)
			if err != nil {
				return err
			}
			defer rf.Close()
			r = rf
		} else {
			r = strings.NewReader(string(src.data))
		}
		if _, err := io.Copy(w, r); err != nil {
			return fmt.Errorf("boot partition: writing %s: %w", n, err)
		}
		if err := w.Close(); err != nil {
			return fmt.Errorf("boot partition: closing %s: %w", n, err)
		}
	}
	return nil
}

func copyInto(dst, src string, off int64) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	defer out.Close()
	if _, err := io.Copy(io.NewOffsetWriter(out, off), in); err != nil {
		return fmt.Errorf("writing the root into the image: %w", err)
	}
	return out.Sync()
}

// DigestFile is the SHA-256 of a file, hex.
func DigestFile(p string) (string, error) { return sha256File(p) }

const readme = `This is the boot partition of a Redoubt box.

Before the first start you may put here (all optional):

  redoubt.toml    the box's settings (see redoubt.example.toml in the source);
                  copied to the data partition at first start
  vpn.conf        your VPN provider's WireGuard config
  headscale.toml  url = "https://…" and api_key = "…" of your team's Headscale
  wifi.toml       ssid = "…" and psk = "…" to use Wi-Fi as the WAN

The box moves vpn.conf and headscale.toml off this card at first start and
seals them into its vault when you set your passphrase. It writes the setup
code to redoubt-setup-code.txt here: type it on the setup page.

To start over from nothing, put a file named factory-reset.txt here containing
the line "erase everything": the box wipes its data partition at its next start.
`
