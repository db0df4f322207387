// Package image builds Redoubt's disk images and update bundles from pinned
// inputs: the redoubt program, gokrazy's kernel (and, for a Pi, its firmware)
// from the Go module proxy at the versions go.mod names, systemd-boot from
// Debian (pinned by hash, see pins.go), and the update key the box will trust.
// Two builds from the same inputs give the same bytes: every timestamp is the
// epoch given, every identifier is derived from the inputs, and file systems
// are written in a fixed order. Only cmd/redoubt-image and tests import it.
package image

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"time"

	"github.com/redoubt/redoubt/board/layout"
)

// Inputs are everything a build reads.
type Inputs struct {
	Board layout.Board
	// Binary is the redoubt program built for Board.Arch() (static, stripped,
	// -trimpath).
	Binary string
	// Kernel is the directory of github.com/gokrazy/kernel.amd64 (pc) or
	// github.com/gokrazy/kernel.rpi (rpi).
	Kernel string
	// Firmware is the directory of github.com/gokrazy/firmware (rpi only).
	Firmware string
	// BootLoader is systemd-boot's systemd-bootx64.efi (pc only).
	BootLoader string
	// UpdateKey is the verifier key (golang.org/x/mod/sumdb/note format) of
	// the signer whose updates the box accepts.
	UpdateKey string
	// Version is the image's semantic version; Commit the source's commit.
	Version, Commit string
	// Epoch is the time every file carries (SOURCE_DATE_EPOCH).
	Epoch time.Time
}

// Validate names what is missing.
func (in Inputs) Validate() error {
	if _, err := layout.ParseBoard(string(in.Board)); err != nil {
		return err
	}
	need := map[string]string{"binary": in.Binary, "kernel": in.Kernel, "update key": in.UpdateKey}
	if in.Board == layout.RPi {
		need["firmware"] = in.Firmware
	} else {
		need["boot loader"] = in.BootLoader
	}
	for name, p := range need {
		if p == "" {
			return fmt.Errorf("image inputs: no %s given", name)
		}
		if _, err := os.Stat(p); err != nil {
			return fmt.Errorf("image inputs: %s: %w", name, err)
		}
	}
	if in.Version == "" || in.Commit == "" {
		return errors.New("image inputs: version and commit are required")
	}
	if in.Epoch.IsZero() {
		return errors.New("image inputs: no epoch (SOURCE_DATE_EPOCH)")
	}
	if env := os.Getenv("SOURCE_DATE_EPOCH"); env != strconv.FormatInt(in.Epoch.Unix(), 10) {
		// go-diskfs's FAT writer stamps files with SOURCE_DATE_EPOCH.
		return fmt.Errorf("image inputs: SOURCE_DATE_EPOCH is %q: it must equal the epoch %d", env, in.Epoch.Unix())
	}
	return nil
}

// Info is /etc/redoubt/image.json in the root, and what a build reports.
type Info struct {
	Board   layout.Board `json:"board"`
	Version string       `json:"version"`
	Commit  string       `json:"commit"`
	Kernel  string       `json:"kernel"` // SHA-256 of the kernel
}

// seed derives stable identifiers (disk and partition GUIDs) from the inputs'
// identity, so they are the same in every build of the same inputs.
func (in Inputs) seed(purpose string) [32]byte {
	return sha256.Sum256([]byte("redoubt image " + string(in.Board) + " " + in.Version + " " + in.Commit + " " + purpose))
}

// guid formats 16 derived bytes as an RFC 4122 version-4-shaped GUID.
func (in Inputs) guid(purpose string) string {
	s := in.seed(purpose)
	b := s[:16]
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%08X-%04X-%04X-%04X-%012X", binary.BigEndian.Uint32(b[0:4]), binary.BigEndian.Uint16(b[4:6]),
		binary.BigEndian.Uint16(b[6:8]), binary.BigEndian.Uint16(b[8:10]), b[10:16])
}

func sha256File(p string) (string, error) {
	f, err := os.Open(p)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", fmt.Errorf("hashing %s: %w", p, err)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

func (in Inputs) info() (Info, error) {
	k, err := sha256File(filepath.Join(in.Kernel, "vmlinuz"))
	if err != nil {
		return Info{}, err
	}
	return Info{Board: in.Board, Version: in.Version, Commit: in.Commit, Kernel: k}, nil
}

// bootFile is a file in a slot's directory on the boot partition.
type bootFile struct {
	name string // relative to the slot directory
	path string // where to read it
}

// slotBootFiles lists the files a slot keeps on the boot partition: the
// kernel, and on a Pi the device trees and overlays (os_prefix applies to all).
func (in Inputs) slotBootFiles() ([]bootFile, error) {
	files := []bootFile{{in.Board.KernelName(), filepath.Join(in.Kernel, "vmlinuz")}}
	if in.Board == layout.RPi {
		dtbs, err := filepath.Glob(filepath.Join(in.Kernel, "bcm27*-rpi-*.dtb"))
		if err != nil {
			return nil, err
		}
		for _, d := range dtbs {
			files = append(files, bootFile{filepath.Base(d), d})
		}
		ovs, err := filepath.Glob(filepath.Join(in.Kernel, "overlays", "*"))
		if err != nil {
			return nil, err
		}
		for _, o := range ovs {
			files = append(files, bootFile{"overlays/" + filepath.Base(o), o})
		}
	}
	sort.Slice(files, func(i, j int) bool { return files[i].name < files[j].name })
	return files, nil
}

func writeJSON(v any) []byte {
	b, _ := json.MarshalIndent(v, "", "  ")
	return append(b, '\n')
}
