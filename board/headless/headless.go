// Package headless takes the box's configuration from its boot partition, so
// a box can be set up without a screen or a terminal: the owner writes
// redoubt.toml, vpn.conf (their VPN provider's WireGuard config),
// headscale.toml (their team's Headscale) and wifi.toml (Wi-Fi as the WAN)
// onto the card before its first start. Init moves them onto the data
// partition and off the card (secrets are overwritten before they are
// removed); the daemon seals the VPN and Headscale files into the vault at the
// first unlock and deletes them. board/initd and the daemon import it.
package headless

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/BurntSushi/toml"

	"github.com/redoubt/redoubt/board/layout"
)

// MaxFile bounds every file read from the boot partition.
const MaxFile = 64 << 10

// Result says what an import did.
type Result struct {
	Config   bool     // redoubt.toml replaced the box's config
	Pending  []string // secrets waiting for the vault (vpn.conf, headscale.toml)
	WiFi     bool
	Problems []string // files refused, and why (they stay on the card)
}

// PendingDir is where secrets wait for the vault, under the state directory.
func PendingDir(stateDir string) string { return filepath.Join(stateDir, "board", "pending") }

// Import moves the owner's files from bootDir: redoubt.toml to configPath,
// vpn.conf and headscale.toml to PendingDir(stateDir), wifi.toml next to the
// config. Each is checked first; a file that does not parse stays on the card
// and is named in Problems.
func Import(bootDir, configPath, stateDir string) (Result, error) {
	var r Result
	read := func(name string) ([]byte, bool, error) {
		p := filepath.Join(bootDir, name)
		fi, err := os.Stat(p)
		if errors.Is(err, fs.ErrNotExist) {
			return nil, false, nil
		}
		if err != nil {
			return nil, false, err
		}
		if fi.Size() > MaxFile {
			r.Problems = append(r.Problems, fmt.Sprintf("%s is %d bytes: at most %d", name, fi.Size(), MaxFile))
			return nil, false, nil
		}
		b, err := os.ReadFile(p)
		return b, err == nil, err
	}
	if b, ok, err := read(layout.HeadlessConfig); err != nil {
		return r, err
	} else if ok {
		var v map[string]any
		if err := toml.Unmarshal(b, &v); err != nil {
			r.Problems = append(r.Problems, fmt.Sprintf("%s: %v", layout.HeadlessConfig, err))
		} else {
			if err := writeFile(configPath, b); err != nil {
				return r, err
			}
			if err := shred(filepath.Join(bootDir, layout.HeadlessConfig)); err != nil {
				return r, err
			}
			r.Config = true
		}
	}
	pending := PendingDir(stateDir)
	for _, name := range []string{layout.HeadlessVPN, layout.HeadlessHeadscale} {
		b, ok, err := read(name)
		if err != nil {
			return r, err
		}
		if !ok {
			continue
		}
		if name == layout.HeadlessHeadscale {
			if _, err := ParseHeadscale(b); err != nil {
				r.Problems = append(r.Problems, err.Error())
				continue
			}
		} else if !strings.Contains(string(b), "[Interface]") {
			r.Problems = append(r.Problems, fmt.Sprintf("%s: not a WireGuard config (no [Interface] section)", name))
			continue
		}
		if err := writeFile(filepath.Join(pending, name), b); err != nil {
			return r, err
		}
		if err := shred(filepath.Join(bootDir, name)); err != nil {
			return r, err
		}
		r.Pending = append(r.Pending, name)
	}
	if b, ok, err := read(layout.HeadlessWiFi); err != nil {
		return r, err
	} else if ok {
		if _, err := ParseWiFi(b); err != nil {
			r.Problems = append(r.Problems, err.Error())
		} else {
			if err := writeFile(filepath.Join(filepath.Dir(configPath), layout.HeadlessWiFi), b); err != nil {
				return r, err
			}
			if err := shred(filepath.Join(bootDir, layout.HeadlessWiFi)); err != nil {
				return r, err
			}
			r.WiFi = true
		}
	}
	return r, nil
}

// Headscale is headscale.toml: the team's coordination server.
type Headscale struct {
	URL    string `toml:"url"`
	APIKey string `toml:"api_key"`
}

// ParseHeadscale reads headscale.toml; its errors never contain the key.
func ParseHeadscale(b []byte) (Headscale, error) {
	var h Headscale
	md, err := toml.Decode(string(b), &h)
	if err != nil {
		return h, fmt.Errorf("%s: not TOML (%s)", layout.HeadlessHeadscale, firstLine(err.Error()))
	}
	if un := md.Undecoded(); len(un) > 0 {
		return h, fmt.Errorf("%s: unknown key %q: want url and api_key", layout.HeadlessHeadscale, un[0].String())
	}
	if !strings.HasPrefix(h.URL, "https://") {
		return h, fmt.Errorf("%s: url %q: want https://…", layout.HeadlessHeadscale, h.URL)
	}
	if h.APIKey == "" {
		return h, fmt.Errorf("%s: api_key is empty", layout.HeadlessHeadscale)
	}
	return h, nil
}

// WiFi is wifi.toml: the network to use as the WAN.
type WiFi struct {
	SSID string `toml:"ssid"`
	// PSK is the WPA2/WPA3 passphrase (8 to 63 characters); empty for an
	// open network.
	PSK string `toml:"psk"`
	// Country is the regulatory domain (two letters, "DE").
	Country string `toml:"country"`
}

// ParseWiFi reads wifi.toml; its errors never contain the passphrase.
func ParseWiFi(b []byte) (WiFi, error) {
	var w WiFi
	md, err := toml.Decode(string(b), &w)
	if err != nil {
		return w, fmt.Errorf("%s: not TOML (%s)", layout.HeadlessWiFi, firstLine(err.Error()))
	}
	if un := md.Undecoded(); len(un) > 0 {
		return w, fmt.Errorf("%s: unknown key %q: want ssid, psk, country", layout.HeadlessWiFi, un[0].String())
	}
	if n := len(w.SSID); n == 0 || n > 32 {
		return w, fmt.Errorf("%s: ssid is %d bytes: want 1 to 32", layout.HeadlessWiFi, n)
	}
	if n := len(w.PSK); n != 0 && (n < 8 || n > 63) {
		return w, fmt.Errorf("%s: psk is %d characters: WPA wants 8 to 63", layout.HeadlessWiFi, n)
	}
	if w.Country != "" && (len(w.Country) != 2 || strings.ToUpper(w.Country) != w.Country) {
		return w, fmt.Errorf("%s: country %q: want two capital letters (\"DE\")", layout.HeadlessWiFi, w.Country)
	}
	return w, nil
}

func firstLine(s string) string { l, _, _ := strings.Cut(s, "\n"); return l }

// Pending reads a secret waiting for the vault; ok is false when there is none.
func Pending(stateDir, name string) (b []byte, ok bool, err error) {
	b, err = os.ReadFile(filepath.Join(PendingDir(stateDir), name))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, false, nil
	}
	return b, err == nil, err
}

// Done removes a sealed secret from the data partition.
func Done(stateDir, name string) error { return shred(filepath.Join(PendingDir(stateDir), name)) }

// writeFile writes b to p (mode 0600) through a synced temporary file.
func writeFile(p string, b []byte) error {
	if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
		return err
	}
	tmp := p + ".new"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return err
	}
	f, err := os.OpenFile(tmp, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	err = f.Sync()
	f.Close()
	if err != nil {
		return err
	}
	return os.Rename(tmp, p)
}

// shred overwrites a file with zeros, syncs, and removes it. On a FAT card
// with wear levelling the old blocks may survive in the flash; the owner is
// told to treat the card's first contents as exposed to whoever held it.
func shred(p string) error {
	f, err := os.OpenFile(p, os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	if fi, err := f.Stat(); err == nil {
		f.WriteAt(make([]byte, fi.Size()), 0)
		f.Sync()
	}
	f.Close()
	return os.Remove(p)
}
