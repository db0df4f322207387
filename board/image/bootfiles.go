package image

import (
	"fmt"
	"os"
	"strings"

	diskfs "github.com/diskfs/go-diskfs"

	"github.com/redoubt/redoubt/board/layout"
)

// PutBootFile writes a file onto an image's boot partition, as the owner does
// with the card in a computer before the first start (redoubt.toml, vpn.conf…).
func PutBootFile(imagePath, name string, data []byte) error {
	if strings.Contains(name, "/") {
		return fmt.Errorf("boot file %q: want a name at the partition's top", name)
	}
	d, err := diskfs.Open(imagePath)
	if err != nil {
		return fmt.Errorf("opening %s: %w", imagePath, err)
	}
	defer d.Close()
	fs, err := d.GetFilesystem(layout.PartBoot)
	if err != nil {
		return fmt.Errorf("reading the boot partition: %w", err)
	}
	f, err := fs.OpenFile("/"+name, os.O_CREATE|os.O_RDWR|os.O_TRUNC)
	if err != nil {
		return fmt.Errorf("creating %s on the boot partition: %w", name, err)
	}
	if _, err := f.Write(data); err != nil {
		return err
	}
	return f.Close()
}

// ReadBootFile reads a file from an image's boot partition.
func ReadBootFile(imagePath, name string) ([]byte, error) {
	d, err := diskfs.Open(imagePath, diskfs.WithOpenMode(diskfs.ReadOnly))
	if err != nil {
		return nil, fmt.Errorf("opening %s: %w", imagePath, err)
	}
	defer d.Close()
	fs, err := d.GetFilesystem(layout.PartBoot)
	if err != nil {
		return nil, fmt.Errorf("reading the boot partition: %w", err)
	}
	return readAll(fs, "/"+name)
}
