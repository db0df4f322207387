// Package bootloader decides which root slot the box boots, on the boot
// partition as the boot loader reads it. On a PC that is systemd-boot with
// its automatic boot assessment: one entry file per slot, a trial entry
// carrying one try ("+1"), which systemd-boot spends before it boots it, so
// that any later boot without the running system's blessing goes back to the
// previous entry. On a Raspberry Pi it is the firmware's config.txt
// (os_prefix names the slot's directory) and tryboot.txt, read for one boot
// only when the reboot asks for it. The image builder writes the first
// files; the box's init and updater change them. Any board package may import
// it.
package bootloader

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"

	"golang.org/x/sys/unix"

	"github.com/redoubt/redoubt/board/layout"
)

// LoaderConf is systemd-boot's loader.conf: no menu unless a key is held,
// no editing of the kernel command line, nothing found by itself.
const LoaderConf = "timeout 0\neditor no\nauto-entries no\nauto-firmware no\n"

// Entry is one systemd-boot entry (Boot Loader Specification type #1).
type Entry struct {
	// Generation orders entries: systemd-boot sorts names in descending
	// version order, so the newest generation with tries left is the default.
	Generation int
	Slot       layout.Slot
	Version    string
	Kernel     string // path on the boot partition, "/slot-a/vmlinuz"
	Options    string // kernel command line
	// Counted entries are on trial: TriesLeft tries remain, TriesDone spent.
	Counted              bool
	TriesLeft, TriesDone int
}

var entryName = regexp.MustCompile(`^redoubt-(\d{8})-([ab])(?:\+(\d+)(?:-(\d+))?)?\.conf$`)

// FileName is the entry's file name in loader/entries.
func (e Entry) FileName() string {
	n := fmt.Sprintf("redoubt-%08d-%s", e.Generation, e.Slot)
	if e.Counted {
		n += "+" + strconv.Itoa(e.TriesLeft)
		if e.TriesDone > 0 {
			n += "-" + strconv.Itoa(e.TriesDone)
		}
	}
	return n + ".conf"
}

// Text is the entry file's contents.
func (e Entry) Text() string {
	return fmt.Sprintf("title Redoubt %s (slot %s)\nversion %s\nlinux %s\noptions %s\n", e.Version, e.Slot, e.Version, e.Kernel, e.Options)
}

// ParseEntryName reads an entry's file name; ok is false for other files.
func ParseEntryName(name string) (e Entry, ok bool) {
	m := entryName.FindStringSubmatch(name)
	if m == nil {
		return e, false
	}
	e.Generation, _ = strconv.Atoi(m[1])
	e.Slot = layout.Slot(m[2])
	if m[3] != "" {
		e.Counted = true
		e.TriesLeft, _ = strconv.Atoi(m[3])
		if m[4] != "" {
			e.TriesDone, _ = strconv.Atoi(m[4])
		}
	}
	return e, true
}

// Bad says systemd-boot will not choose the entry while another is good:
// its tries are spent.
func (e Entry) Bad() bool { return e.Counted && e.TriesLeft == 0 }

// PiConfig is config.txt (or tryboot.txt) booting slot s.
func PiConfig(s layout.Slot) string {
	return "# Redoubt: the slot's directory holds its kernel, device trees, overlays\n" +
		"# and cmdline.txt. Written by the box; tryboot.txt is the trial slot.\n" +
		"arm_64bit=1\nos_prefix=" + layout.SlotDir(s) + "/\nkernel=" + layout.RPi.KernelName() + "\n" +
		"disable_splash=1\nenable_uart=1\n" +
		"# The USB-C port as a USB device (the gadget, [board] gadget in redoubt.toml).\n" +
		"dtoverlay=dwc2,dr_mode=peripheral\n"
}

// State is what the boot partition says.
type State struct {
	// Default is the slot the next ordinary boot starts.
	Default layout.Slot
	// Trial is the slot staged for one trial boot, if any ("" otherwise).
	Trial layout.Slot
	// Failed is a slot whose trial was spent without a blessing ("" if none).
	Failed layout.Slot
}

// Loader is a board's boot loader, on a mounted boot partition.
type Loader interface {
	// State reads the boot partition.
	State() (State, error)
	// Discard forgets slot s's boot files and entries: done before the slot
	// is overwritten, so nothing boots a half-written slot.
	Discard(s layout.Slot) error
	// SlotDir is where slot s's boot files go (the kernel…).
	SlotDir(s layout.Slot) string
	// Stage makes slot s the next boot's one trial; cmdline boots it.
	Stage(s layout.Slot, version, cmdline string) error
	// Bless makes the running trial slot s the default.
	Bless(s layout.Slot) error
	// RebootArg is what reboot(2) must be given for the trial ("" for none).
	RebootArg() string
}

// New returns the loader of board b on the boot partition mounted at dir.
func New(b layout.Board, dir string) Loader {
	if b == layout.RPi {
		return &Pi{Dir: dir}
	}
	return &SystemdBoot{Dir: dir}
}

// SystemdBoot is systemd-boot's entries on the EFI system partition.
type SystemdBoot struct{ Dir string }

func (l *SystemdBoot) entriesDir() string { return filepath.Join(l.Dir, "loader", "entries") }

// Entries lists the entries, newest generation first.
func (l *SystemdBoot) Entries() ([]Entry, error) {
	des, err := os.ReadDir(l.entriesDir())
	if err != nil {
		return nil, fmt.Errorf("reading boot entries: %w", err)
	}
	var out []Entry
	for _, de := range des {
		if e, ok := ParseEntryName(de.Name()); ok {
			out = append(out, e)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Generation > out[j].Generation })
	return out, nil
}

// State implements Loader: systemd-boot's choice is the newest entry that is
// not bad.
func (l *SystemdBoot) State() (State, error) {
	es, err := l.Entries()
	if err != nil {
		return State{}, err
	}
	var st State
	for _, e := range es {
		switch {
		case e.Bad():
			if st.Failed == "" && st.Default == "" {
				st.Failed = e.Slot
			}
		case e.Counted:
			if st.Trial == "" && st.Default == "" {
				st.Trial = e.Slot
			}
		default:
			if st.Default == "" {
				st.Default = e.Slot
			}
		}
	}
	if st.Default == "" {
		return st, fmt.Errorf("no bootable entry in %s", l.entriesDir())
	}
	return st, nil
}

// SlotDir implements Loader.
func (l *SystemdBoot) SlotDir(s layout.Slot) string { return filepath.Join(l.Dir, layout.SlotDir(s)) }

// Discard implements Loader.
func (l *SystemdBoot) Discard(s layout.Slot) error {
	es, err := l.Entries()
	if err != nil {
		return err
	}
	for _, e := range es {
		if e.Slot == s {
			if err := os.Remove(filepath.Join(l.entriesDir(), e.FileName())); err != nil {
				return fmt.Errorf("removing boot entry: %w", err)
			}
		}
	}
	if err := os.RemoveAll(l.SlotDir(s)); err != nil {
		return fmt.Errorf("removing slot %s's boot files: %w", s, err)
	}
	return syncDir(l.entriesDir())
}

// Stage implements Loader: a new entry, newest of all, with one try.
func (l *SystemdBoot) Stage(s layout.Slot, version, cmdline string) error {
	es, err := l.Entries()
	if err != nil {
		return err
	}
	gen := 1
	for _, e := range es {
		if e.Slot == s {
			return fmt.Errorf("slot %s still has a boot entry: discard it first", s)
		}
		gen = max(gen, e.Generation+1)
	}
	e := Entry{Generation: gen, Slot: s, Version: version, Kernel: "/" + layout.SlotDir(s) + "/" + layout.PC.KernelName(), Options: cmdline, Counted: true, TriesLeft: 1}
	return writeFileSync(filepath.Join(l.entriesDir(), e.FileName()), []byte(e.Text()))
}

// Bless implements Loader: the trial entry loses its counter.
func (l *SystemdBoot) Bless(s layout.Slot) error {
	es, err := l.Entries()
	if err != nil {
		return err
	}
	for _, e := range es {
		if e.Slot != s || !e.Counted {
			continue
		}
		good := e
		good.Counted, good.TriesLeft, good.TriesDone = false, 0, 0
		if err := os.Rename(filepath.Join(l.entriesDir(), e.FileName()), filepath.Join(l.entriesDir(), good.FileName())); err != nil {
			return fmt.Errorf("blessing slot %s's boot entry: %w", s, err)
		}
		return syncDir(l.entriesDir())
	}
	return fmt.Errorf("slot %s has no boot entry on trial", s)
}

// RebootArg implements Loader: systemd-boot needs none.
func (l *SystemdBoot) RebootArg() string { return "" }

// Pi is the Raspberry Pi firmware's config.txt and tryboot.txt.
type Pi struct{ Dir string }

var osPrefix = regexp.MustCompile(`(?m)^os_prefix=slot-([ab])/\s*$`)

func (l *Pi) slotOf(name string) (layout.Slot, error) {
	b, err := os.ReadFile(filepath.Join(l.Dir, name))
	if err != nil {
		return "", err
	}
	m := osPrefix.FindSubmatch(b)
	if m == nil {
		return "", fmt.Errorf("%s names no slot (os_prefix=slot-a/ or slot-b/)", name)
	}
	return layout.Slot(m[1]), nil
}

// State implements Loader. A Pi cannot tell a spent trial from a pending one
// by its files: the updater's record says which (Failed stays "").
func (l *Pi) State() (State, error) {
	def, err := l.slotOf("config.txt")
	if err != nil {
		return State{}, fmt.Errorf("reading the boot partition: %w", err)
	}
	st := State{Default: def}
	if t, err := l.slotOf("tryboot.txt"); err == nil && t != def {
		st.Trial = t
	}
	return st, nil
}

// SlotDir implements Loader.
func (l *Pi) SlotDir(s layout.Slot) string { return filepath.Join(l.Dir, layout.SlotDir(s)) }

// Discard implements Loader.
func (l *Pi) Discard(s layout.Slot) error {
	if t, err := l.slotOf("tryboot.txt"); err == nil && t == s {
		if err := os.Remove(filepath.Join(l.Dir, "tryboot.txt")); err != nil {
			return err
		}
	}
	if def, err := l.slotOf("config.txt"); err == nil && def == s {
		return fmt.Errorf("slot %s is the default: refusing to discard it", s)
	}
	if err := os.RemoveAll(l.SlotDir(s)); err != nil {
		return fmt.Errorf("removing slot %s's boot files: %w", s, err)
	}
	return syncDir(l.Dir)
}

// Stage implements Loader: tryboot.txt and the slot's cmdline.txt.
func (l *Pi) Stage(s layout.Slot, version, cmdline string) error {
	if err := writeFileSync(filepath.Join(l.SlotDir(s), "cmdline.txt"), []byte(cmdline+"\n")); err != nil {
		return err
	}
	return writeFileSync(filepath.Join(l.Dir, "tryboot.txt"), []byte(PiConfig(s)))
}

// Bless implements Loader: config.txt names the slot from now on.
func (l *Pi) Bless(s layout.Slot) error {
	if err := writeFileSync(filepath.Join(l.Dir, "config.txt"), []byte(PiConfig(s))); err != nil {
		return err
	}
	os.Remove(filepath.Join(l.Dir, "tryboot.txt"))
	return syncDir(l.Dir)
}

// RebootArg implements Loader: the firmware reads tryboot.txt once.
func (l *Pi) RebootArg() string { return "0 tryboot" }

// writeFileSync writes a file by a temporary name and a rename, synced.
func writeFileSync(p string, b []byte) error {
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return err
	}
	tmp := p + ".new"
	f, err := os.Create(tmp)
	if err != nil {
		return err
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp, p); err != nil {
		return fmt.Errorf("writing %s: %w", p, err)
	}
	return syncDir(filepath.Dir(p))
}

func syncDir(d string) error {
	fd, err := unix.Open(d, unix.O_RDONLY|unix.O_DIRECTORY, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	unix.Fsync(fd) // vfat may refuse fsync on a directory; the file was synced
	return nil
}
