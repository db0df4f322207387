package image

import (
	"crypto/sha256"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"golang.org/x/mod/sumdb/note"

	"github.com/redoubt/redoubt/board/bundle"
)

// BuildUpdate writes the signed update bundle for in to out: the same root
// file system and slot boot files a disk image of in holds.
func BuildUpdate(in Inputs, signer note.Signer, out string) (bundle.Manifest, error) {
	if err := in.Validate(); err != nil {
		return bundle.Manifest{}, err
	}
	tmp, err := os.MkdirTemp(filepath.Dir(out), ".update-")
	if err != nil {
		return bundle.Manifest{}, err
	}
	defer os.RemoveAll(tmp)
	rootPath := filepath.Join(tmp, "root.squashfs")
	if _, err := BuildRoot(in, rootPath); err != nil {
		return bundle.Manifest{}, err
	}
	files, err := in.slotBootFiles()
	if err != nil {
		return bundle.Manifest{}, err
	}
	paths := map[string]string{"root": rootPath}
	m := bundle.Manifest{Board: in.Board, Arch: in.Board.Arch(), Version: in.Version, Commit: in.Commit}
	names := []string{}
	for _, f := range files {
		paths["boot/"+f.name] = f.path
		names = append(names, "boot/"+f.name)
	}
	names = append(names, "root")
	for _, n := range names {
		p, err := partOf(n, paths[n])
		if err != nil {
			return bundle.Manifest{}, err
		}
		m.Parts = append(m.Parts, p)
	}
	partial := out + ".partial"
	f, err := os.Create(partial)
	if err != nil {
		return bundle.Manifest{}, err
	}
	err = bundle.Write(f, m, signer, func(name string) (io.ReadCloser, error) { return os.Open(paths[name]) })
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(partial)
		return bundle.Manifest{}, fmt.Errorf("writing the update: %w", err)
	}
	return m, os.Rename(partial, out)
}

func partOf(name, path string) (bundle.Part, error) {
	f, err := os.Open(path)
	if err != nil {
		return bundle.Part{}, err
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(h, f)
	if err != nil {
		return bundle.Part{}, fmt.Errorf("hashing %s: %w", path, err)
	}
	p := bundle.Part{Name: name, Size: n}
	copy(p.SHA256[:], h.Sum(nil))
	return p, nil
}
