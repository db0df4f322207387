package image

import (
	"encoding/binary"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/diskfs/go-diskfs/backend/file"
	"github.com/diskfs/go-diskfs/filesystem/squashfs"
	"golang.org/x/sys/unix"

	"github.com/redoubt/redoubt/board/layout"
)

// rootDirs are the root's empty mount points and directories.
var rootDirs = []string{"bin", "sbin", "etc", "etc/redoubt", "boot", "boot/firmware", "dev", "perm", "proc", "run", "sys", "tmp", "var", "var/lib", "sys/kernel/config"}

// BuildRoot writes the root file system (squashfs, gzip, which the kernels
// read) to out: the program (also PID 1), the image's identity and the update
// key. It returns the file's size.
func BuildRoot(in Inputs, out string) (int64, error) {
	info, err := in.info()
	if err != nil {
		return 0, err
	}
	key, err := os.ReadFile(in.UpdateKey)
	if err != nil {
		return 0, fmt.Errorf("reading the update key: %w", err)
	}
	f, err := os.Create(out)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sq, err := squashfs.Create(file.New(f, false), 0, 0, 0)
	if err != nil {
		return 0, fmt.Errorf("creating the root file system: %w", err)
	}
	ws := sq.Workspace()
	defer os.RemoveAll(ws)
	for _, d := range rootDirs {
		if err := os.MkdirAll(filepath.Join(ws, d), 0o755); err != nil {
			return 0, err
		}
	}
	bin, err := os.ReadFile(in.Binary)
	if err != nil {
		return 0, fmt.Errorf("reading the program: %w", err)
	}
	files := map[string][]byte{
		layout.Binary:    bin,
		layout.ImageInfo: writeJSON(info),
		layout.UpdateKey: key,
	}
	for p, b := range files {
		mode := os.FileMode(0o644)
		if p == layout.Binary {
			mode = 0o755
		}
		if err := os.WriteFile(filepath.Join(ws, p), b, mode); err != nil {
			return 0, err
		}
	}
	if err := stampTree(ws, in); err != nil {
		return 0, err
	}
	zero := uint32(0)
	if err := sq.Finalize(squashfs.FinalizeOptions{Compression: &squashfs.CompressorGzip{CompressionLevel: 9, WindowSize: 15}, FileUID: &zero, FileGID: &zero}); err != nil {
		return 0, fmt.Errorf("writing the root file system: %w", err)
	}
	// The superblock's modification time (bytes 8–11) is the build's clock
	// in go-diskfs; make it the epoch.
	var t [4]byte
	binary.LittleEndian.PutUint32(t[:], uint32(in.Epoch.Unix()))
	if _, err := f.WriteAt(t[:], 8); err != nil {
		return 0, err
	}
	st, err := f.Stat()
	if err != nil {
		return 0, err
	}
	if st.Size() > layout.SlotSize {
		return 0, fmt.Errorf("the root file system is %d bytes: a slot holds %d", st.Size(), layout.SlotSize)
	}
	return st.Size(), f.Sync()
}

// stampTree sets every entry's times to the epoch and its mode to a fixed one.
func stampTree(root string, in Inputs) error {
	ts := []unix.Timespec{unix.NsecToTimespec(in.Epoch.UnixNano()), unix.NsecToTimespec(in.Epoch.UnixNano())}
	var dirs []string
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			dirs = append(dirs, p) // directories last, deepest first
			return os.Chmod(p, 0o755)
		}
		return unix.UtimesNanoAt(unix.AT_FDCWD, p, ts, unix.AT_SYMLINK_NOFOLLOW)
	})
	if err != nil {
		return err
	}
	for i := len(dirs) - 1; i >= 0; i-- {
		if err := unix.UtimesNanoAt(unix.AT_FDCWD, dirs[i], ts, 0); err != nil {
			return err
		}
	}
	return nil
}
