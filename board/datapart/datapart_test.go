package datapart

import (
	"encoding/binary"
	"os"
	"path/filepath"
	"testing"

	"github.com/diskfs/go-diskfs/partition/gpt"

	"github.com/redoubt/redoubt/board/layout"
)

func TestPartName(t *testing.T) {
	for disk, want := range map[string]string{"vda": "vda4", "sda": "sda4", "mmcblk0": "mmcblk0p4", "nvme0n1": "nvme0n1p4"} {
		if got := (Disk{Name: disk}).PartName(4); got != want {
			t.Errorf("%s: %s, want %s", disk, got, want)
		}
	}
}

// image writes a disk of the image's layout (size bytes) with a GPT or MBR.
func image(t *testing.T, useGPT bool, size int64) *os.File {
	f, err := os.Create(filepath.Join(t.TempDir(), "disk"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	f.Truncate(layout.DiskSize())
	starts := []int64{layout.FirstSector * layout.SectorSize}
	sizes := []int64{layout.BootSize, layout.SlotSize, layout.SlotSize, layout.DataSizeMin}
	for i := 1; i < 4; i++ {
		starts = append(starts, starts[i-1]+sizes[i-1])
	}
	if useGPT {
		tbl := &gpt.Table{LogicalSectorSize: 512, PhysicalSectorSize: 512, ProtectiveMBR: true}
		for i := range 4 {
			s := uint64(starts[i] / 512)
			tbl.Partitions = append(tbl.Partitions, &gpt.Partition{Index: i + 1, Start: s, End: s + uint64(sizes[i]/512) - 1, Type: gpt.LinuxFilesystem})
		}
		if err := tbl.Write(f, layout.DiskSize()); err != nil {
			t.Fatal(err)
		}
	} else {
		var mbr [512]byte
		binary.LittleEndian.PutUint32(mbr[440:], 0x1d70f22f)
		for i := range 4 {
			e := mbr[446+16*i:]
			e[4] = 0x83
			binary.LittleEndian.PutUint32(e[8:], uint32(starts[i]/512))
			binary.LittleEndian.PutUint32(e[12:], uint32(sizes[i]/512))
		}
		mbr[510], mbr[511] = 0x55, 0xaa
		f.WriteAt(mbr[:], 0)
	}
	f.Truncate(size) // the card is bigger than the image
	return f
}

func TestGrowTable(t *testing.T) {
	const card = 8 << 30
	for _, useGPT := range []bool{true, false} {
		f := image(t, useGPT, card)
		start, size, grown, err := growTable(f, card)
		if err != nil || !grown {
			t.Fatalf("gpt=%v: %v %v", useGPT, grown, err)
		}
		end := int64(start+size) * 512
		if end > card || card-end > 2*layout.MiB || int64(start)*512 != layout.DiskSize()-layout.DataSizeMin-layout.MiB {
			t.Fatalf("gpt=%v: data partition %d+%d sectors on an %d-byte card", useGPT, start, size, card)
		}
		// Twice: nothing more to do.
		if _, _, grown, err := growTable(f, card); err != nil || grown {
			t.Fatalf("gpt=%v: second grow: %v %v", useGPT, grown, err)
		}
		if useGPT {
			tbl, err := gpt.Read(f, 512, 512)
			if err != nil || tbl.RecoveredFromBackup {
				t.Fatalf("the grown GPT does not read cleanly: %v", err)
			}
		}
	}
}

func TestPartUUID(t *testing.T) {
	dir := t.TempDir()
	f := image(t, false, layout.DiskSize())
	os.Link(f.Name(), filepath.Join(dir, "mmcblk0"))
	d := Disk{Name: "mmcblk0", Dev: dir}
	if u, err := d.PartUUID(3); err != nil || u != "1d70f22f-03" {
		t.Fatalf("%q %v", u, err)
	}
}
