package initd

import (
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/redoubt/redoubt/board/layout"
	"github.com/redoubt/redoubt/board/status"
	"github.com/redoubt/redoubt/vault"
)

// ResetPhrase is what factory-reset.txt, or the console, must say.
const ResetPhrase = "erase everything"

// factoryResetFromCard wipes the data partition when the boot partition
// holds factory-reset.txt saying ResetPhrase (the person holding the card
// asked). Any other content is left, renamed, and said on the console.
func (in *Init) factoryResetFromCard() error {
	p := filepath.Join(layout.BootMount, layout.FactoryResetFile)
	b, err := os.ReadFile(p)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if !strings.Contains(strings.ToLower(string(b)), ResetPhrase) {
		os.Rename(p, p+".ignored")
		return fmt.Errorf("%s does not say %q: ignored", layout.FactoryResetFile, ResetPhrase)
	}
	in.say("factory reset asked for on the boot partition")
	part := in.disk.PartPath(layout.PartData)
	if err := unix.Mount(part, layout.DataMount, "ext4", 0, ""); err == nil {
		destroyKeys(layout.StateDir)
		unix.Unmount(layout.DataMount, 0)
	}
	if err := in.wipeData(); err != nil {
		return err
	}
	return os.Remove(p)
}

// factoryReset wipes the running box from the console and restarts it as new.
func (in *Init) factoryReset(from string) {
	in.show(status.Resetting)
	in.say("factory reset (from %s): stopping the daemon", from)
	in.stopDaemon()
	destroyKeys(layout.StateDir)
	unix.Sync()
	if err := unix.Unmount(layout.DataMount, 0); err != nil {
		in.say("unmounting the data partition: %v; the data partition is made anew at the next start", err)
	}
	if err := in.wipeData(); err != nil {
		in.say("factory reset: %v", err)
	}
	in.restart("factory reset done: restarting as new")
}

// wipeData discards the unmounted data partition and makes a fresh file
// system; the boot partition's setup code goes too.
func (in *Init) wipeData() error {
	if err := in.disk.Discard(); err != nil {
		return fmt.Errorf("wiping the data partition: %w", err)
	}
	if err := in.disk.MakeFS(); err != nil {
		return err
	}
	os.Remove(filepath.Join(layout.BootMount, layout.SetupCodeFile))
	in.say("data partition wiped")
	return nil
}

// destroyKeys makes the vault unopenable before anything else is erased: the
// vault forgets its keys, then its file is overwritten with random bytes and
// synced, so the wrapped data key is gone from the file's blocks whatever the
// file system later does with them.
func destroyKeys(stateDir string) {
	dir := filepath.Join(stateDir, "vault")
	if v, err := vault.Open(dir); err == nil {
		v.Wipe()
		v.Close()
	}
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return nil
		}
		overwrite(p)
		return nil
	})
}

func overwrite(p string) error {
	f, err := os.OpenFile(p, os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	if _, err := io.CopyN(f, rand.Reader, fi.Size()); err != nil {
		return err
	}
	return f.Sync()
}
