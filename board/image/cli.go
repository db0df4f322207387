package image

import (
	"crypto/rand"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"golang.org/x/mod/sumdb/note"

	"github.com/redoubt/redoubt/board/layout"
)

const usage = `redoubt-image builds Redoubt's disk images and signed updates.

  redoubt-image keygen -name NAME -out FILE     a signing key (FILE, mode 0600) and its verifier key (FILE.pub)
  redoubt-image build  [flags] -out FILE.img    a disk image to flash
  redoubt-image update [flags] -sign KEY -out FILE.rdu   a signed update
  redoubt-image inspect FILE.img                the image's layout, checked

Flags of build and update: -board pc|rpi -binary FILE -kernel DIR [-firmware DIR]
[-bootloader FILE] -key FILE.pub -version vX.Y.Z -commit HASH. The epoch is
SOURCE_DATE_EPOCH, which must be set.
`

// Main is the redoubt-image command.
func Main(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	var err error
	switch args[0] {
	case "keygen":
		err = keygen(args[1:], stdout)
	case "build", "update":
		err = build(args[0], args[1:], stdout)
	case "inspect":
		if len(args) != 2 {
			err = errors.New("inspect: want one image file")
			break
		}
		var l Layout
		l, err = Inspect(args[1])
		if err == nil {
			fmt.Fprint(stdout, l.String())
		}
	default:
		fmt.Fprint(stderr, usage)
		return 2
	}
	if err != nil {
		fmt.Fprintf(stderr, "redoubt-image %s: %v\n", args[0], err)
		return 1
	}
	return 0
}

func keygen(args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("keygen", flag.ContinueOnError)
	name := fs.String("name", "redoubt-updates", "the key's name")
	out := fs.String("out", "", "where to write the signing key")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *out == "" {
		return errors.New("-out is required")
	}
	if _, err := os.Stat(*out); err == nil {
		return fmt.Errorf("%s exists: refusing to overwrite a signing key", *out)
	}
	skey, vkey, err := note.GenerateKey(rand.Reader, *name)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(*out), 0o700); err != nil {
		return err
	}
	if err := os.WriteFile(*out, []byte(skey+"\n"), 0o600); err != nil {
		return err
	}
	if err := os.WriteFile(*out+".pub", []byte(vkey+"\n"), 0o644); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "signing key %s, verifier key %s.pub\n", *out, *out)
	return nil
}

// ReadSigner reads a signing key file.
func ReadSigner(path string) (note.Signer, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading the signing key: %w", err)
	}
	s, err := note.NewSigner(string(trimNL(b)))
	if err != nil {
		return nil, fmt.Errorf("signing key %s: %w", path, err)
	}
	return s, nil
}

func trimNL(b []byte) []byte {
	for len(b) > 0 && (b[len(b)-1] == '\n' || b[len(b)-1] == '\r') {
		b = b[:len(b)-1]
	}
	return b
}

func build(what string, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet(what, flag.ContinueOnError)
	var in Inputs
	board := fs.String("board", "pc", "pc or rpi")
	fs.StringVar(&in.Binary, "binary", "", "the redoubt program for the board")
	fs.StringVar(&in.Kernel, "kernel", "", "the gokrazy kernel module's directory")
	fs.StringVar(&in.Firmware, "firmware", "", "the gokrazy firmware module's directory (rpi)")
	fs.StringVar(&in.BootLoader, "bootloader", SystemdBootPath, "systemd-bootx64.efi (pc)")
	fs.StringVar(&in.UpdateKey, "key", "", "the verifier key the box trusts for updates")
	fs.StringVar(&in.Version, "version", "", "the image's version (vX.Y.Z)")
	fs.StringVar(&in.Commit, "commit", "", "the source's commit")
	sign := fs.String("sign", "", "the signing key (update)")
	out := fs.String("out", "", "the file to write")
	if err := fs.Parse(args); err != nil {
		return err
	}
	b, err := layout.ParseBoard(*board)
	if err != nil {
		return err
	}
	in.Board = b
	epoch, err := strconv.ParseInt(os.Getenv("SOURCE_DATE_EPOCH"), 10, 64)
	if err != nil {
		return fmt.Errorf("SOURCE_DATE_EPOCH %q: want seconds since 1970", os.Getenv("SOURCE_DATE_EPOCH"))
	}
	in.Epoch = time.Unix(epoch, 0).UTC()
	if *out == "" {
		return errors.New("-out is required")
	}
	if what == "update" {
		signer, err := ReadSigner(*sign)
		if err != nil {
			return err
		}
		m, err := BuildUpdate(in, signer, *out)
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "%s: update %s for %s, manifest %s\n", *out, m.Version, m.Board, m.Hash())
		return nil
	}
	res, err := Build(in, *out)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "%s: %s image %s, %d bytes, root %d bytes, sha256 %s\n", res.Path, res.Info.Board, res.Info.Version, res.Size, res.RootSize, res.SHA256)
	return nil
}
