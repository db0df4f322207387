// Package daemon is the box as a whole: it reads the config file, builds every room
// from it, wires them together, and runs them until a signal stops it. Only
// cmd/redoubt imports it.
package daemon

import (
	_ "embed"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"strings"

	"github.com/BurntSushi/toml"

	"github.com/redoubt/redoubt/apps/host"
	"github.com/redoubt/redoubt/board/profile"
	"github.com/redoubt/redoubt/board/update"
	"github.com/redoubt/redoubt/clock"
	"github.com/redoubt/redoubt/datapath/lan"
	"github.com/redoubt/redoubt/dhcp"
	"github.com/redoubt/redoubt/dns"
	"github.com/redoubt/redoubt/ui/setup"
	"github.com/redoubt/redoubt/vpn/external"
	"github.com/redoubt/redoubt/vpn/mesh"
	"github.com/redoubt/redoubt/vpn/wan"
)

// Example is the documented example config file.
//
//go:embed redoubt.example.toml
var Example string

// Config is the daemon's config file.
type Config struct {
	LAN   lan.Config  `toml:"lan"`
	DNS   dns.Config  `toml:"dns"`
	DHCP  dhcp.Config `toml:"dhcp"`
	Setup SetupConfig `toml:"setup"`
	State StateConfig `toml:"state"`
	Log   LogConfig   `toml:"log"`
	API   APIConfig   `toml:"api"`
	// WAN is the port toward the network the box is on; VPN the external VPN
	// every connection of the box's own leaves through.
	WAN wan.Config      `toml:"wan"`
	VPN external.Config `toml:"vpn"`
	// Mesh is how the box's node in the team's tailnet runs.
	Mesh mesh.Config `toml:"mesh"`
	// Apps are the apps the box hosts.
	Apps host.Config `toml:"apps"`
	// Clock is where the box gets its time (NTP through the VPN).
	Clock clock.Config `toml:"clock"`
	// Board is how a board's ports are used; Update, where updates come
	// from and how long a trial may take (both read on a box started from a
	// Redoubt image).
	Board  profile.Config `toml:"board"`
	Update update.Config  `toml:"update"`

	dev Options // from the command line, not the file
}

// SetupConfig records whether the owner has finished setting the box up. Until
// then the box tells the laptop it is a captive portal (DHCP option 114, the
// captive-probe names in DNS) so the browser opens the setup page.
type SetupConfig struct {
	// Done forces the box to behave as set up, whatever its setup state
	// (for boxes configured entirely from this file; false by default).
	Done bool `toml:"done"`
	// CodeFile is where the setup code is written for whoever holds the box:
	// on the boot partition (default /boot/firmware/redoubt-setup-code.txt when
	// /boot/firmware exists, else setup-code.txt in state.dir).
	CodeFile string `toml:"code_file"`
}

// StateConfig says where the box keeps what it must remember.
type StateConfig struct {
	// Dir holds the box's state (default /var/lib/redoubt, or
	// $REDOUBT_STATE_DIR, which a board's init sets to the data partition).
	Dir string `toml:"dir"`
}

// LogConfig shapes the daemon's log on standard error.
type LogConfig struct {
	// Level is debug, info, warn or error (default info).
	Level string `toml:"level"`
	// Format is text or json (default text).
	Format string `toml:"format"`
}

// APIConfig places the local admin API.
type APIConfig struct {
	// Socket is the Unix socket of the local admin API (default
	// /run/redoubt/redoubt.sock). Only root may connect.
	Socket string `toml:"socket"`
}

// Defaults for fields the file leaves out.
const (
	DefaultStateDir = "/var/lib/redoubt"
	DefaultSocket   = "/run/redoubt/redoubt.sock"
	DefaultConfig   = "/etc/redoubt/redoubt.toml"
)

// WithDefaults fills unset fields.
func (c Config) WithDefaults() Config {
	c.LAN = c.LAN.WithDefaults()
	c.DNS = c.DNS.WithDefaults()
	if c.DHCP.Domain == "" {
		c.DHCP.Domain = c.DNS.Domain // devices are named in the zone the box serves
	}
	c.DHCP = c.DHCP.WithDefaults(c.LAN.Address)
	if c.State.Dir == "" {
		c.State.Dir = DefaultStateDir
		if d := os.Getenv("REDOUBT_STATE_DIR"); d != "" {
			c.State.Dir = d // the board's init: the data partition
		}
	}
	if c.Setup.CodeFile == "" {
		c.Setup.CodeFile = filepath.Join(c.State.Dir, "setup-code.txt")
		if fi, err := os.Stat(filepath.Dir(setup.DefaultCodeFile)); err == nil && fi.IsDir() {
			c.Setup.CodeFile = setup.DefaultCodeFile
		}
	}
	if c.Log.Level == "" {
		c.Log.Level = "info"
	}
	if c.Log.Format == "" {
		c.Log.Format = "text"
	}
	if c.API.Socket == "" {
		c.API.Socket = DefaultSocket
	}
	c.WAN = c.WAN.WithDefaults()
	c.Clock = c.Clock.WithDefaults()
	return c
}

// Validate names the first bad field, its value and what is accepted.
func (c Config) Validate() error {
	if err := c.LAN.Validate(); err != nil {
		return err
	}
	if err := c.DNS.Validate(); err != nil {
		return err
	}
	if err := c.DHCP.Validate(c.LAN.Address); err != nil {
		return err
	}
	if err := c.WAN.Validate(); err != nil {
		return err
	}
	if c.WAN.Interface != "" && c.WAN.Interface == c.LAN.Interface {
		return fmt.Errorf("wan.interface %q is also lan.interface: the WAN and LAN ports must be two interfaces", c.WAN.Interface)
	}
	if err := c.VPN.Validate(); err != nil {
		return err
	}
	if err := c.Board.Validate(); err != nil {
		return err
	}
	if err := c.Update.Validate(); err != nil {
		return err
	}
	if err := c.Apps.Validate(); err != nil {
		return err
	}
	if err := c.Clock.Validate(); err != nil {
		return err
	}
	if !filepath.IsAbs(c.State.Dir) {
		return fmt.Errorf("state.dir %q: want an absolute path, such as %s", c.State.Dir, DefaultStateDir)
	}
	if !filepath.IsAbs(c.Setup.CodeFile) {
		return fmt.Errorf("setup.code_file %q: want an absolute path, such as %s", c.Setup.CodeFile, setup.DefaultCodeFile)
	}
	if _, err := parseLevel(c.Log.Level); err != nil {
		return err
	}
	if c.Log.Format != "text" && c.Log.Format != "json" {
		return fmt.Errorf("log.format %q: want text or json", c.Log.Format)
	}
	if !filepath.IsAbs(c.API.Socket) {
		return fmt.Errorf("api.socket %q: want an absolute path, such as %s", c.API.Socket, DefaultSocket)
	}
	return nil
}

func parseLevel(s string) (slog.Level, error) {
	switch strings.ToLower(s) {
	case "debug":
		return slog.LevelDebug, nil
	case "info":
		return slog.LevelInfo, nil
	case "warn", "warning":
		return slog.LevelWarn, nil
	case "error":
		return slog.LevelError, nil
	}
	return 0, fmt.Errorf("log.level %q: want debug, info, warn or error", s)
}

// maxConfigSize bounds the config file: it is small, and a huge one is a mistake.
const maxConfigSize = 1 << 20

// LoadConfig reads, defaults and validates the config file at path.
func LoadConfig(path string) (Config, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return Config{}, fmt.Errorf("reading config: %w", err)
	}
	if fi.Size() > maxConfigSize {
		return Config{}, fmt.Errorf("config %s is %d bytes: a config file is at most %d bytes", path, fi.Size(), maxConfigSize)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return Config{}, fmt.Errorf("reading config: %w", err)
	}
	cfg, err := ParseConfig(string(data))
	if err != nil {
		return Config{}, fmt.Errorf("config %s: %w", path, err)
	}
	return cfg, nil
}

// ParseConfig parses, defaults and validates a config file's text.
func ParseConfig(text string) (Config, error) {
	var cfg Config
	md, err := toml.Decode(text, &cfg)
	if err != nil {
		var pe toml.ParseError
		if errors.As(err, &pe) {
			where := fmt.Sprintf("line %d", pe.Position.Line)
			if pe.LastKey != "" {
				msg := fmt.Sprintf("%s: %s: %s", where, pe.LastKey, pe.Message)
				if h, ok := accepted[pe.LastKey]; ok {
					msg += "; want " + h
				}
				return Config{}, errors.New(msg)
			}
			return Config{}, fmt.Errorf("%s: %s", where, pe.Message)
		}
		msg := strings.TrimPrefix(err.Error(), "toml: ")
		if m := lastKey.FindStringSubmatch(msg); m != nil {
			if h, ok := accepted[m[1]]; ok {
				msg += "; want " + h
			}
		}
		return Config{}, errors.New(msg)
	}
	if und := md.Undecoded(); len(und) > 0 {
		known := knownKeys()
		k := und[0].String()
		msg := fmt.Sprintf("unknown setting %q", k)
		if s := closest(k, known); s != "" {
			msg += fmt.Sprintf(" (did you mean %q?)", s)
		}
		return Config{}, fmt.Errorf("%s; known settings: %s", msg, strings.Join(known, ", "))
	}
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return Config{}, err
	}
	return cfg, nil
}

var lastKey = regexp.MustCompile(`last key "([^"]+)"`)

// accepted says, for settings whose type the file parser checks, what a value
// must look like.
var accepted = map[string]string{
	"lan.address":  "an IPv4 address with prefix length, such as 10.201.86.1/24",
	"lan.reveal":   "true or false",
	"setup.done":   "true or false",
	"wan.address":  "an IPv4 address with prefix length, such as 192.168.1.2/24",
	"wan.gateway":  "an IPv4 address, such as 192.168.1.1",
	"wan.firewall": "true or false",
}

// knownKeys lists the settings the example file documents.
func knownKeys() []string {
	var c Config
	md, err := toml.Decode(Example, &c)
	if err != nil {
		return nil
	}
	var out []string
	for _, k := range md.Keys() {
		if len(k) > 1 {
			out = append(out, k.String())
		}
	}
	return out
}

// closest returns the known key nearest to k by edit distance, if near enough.
func closest(k string, known []string) string {
	best, bestD := "", 4
	for _, c := range known {
		if d := editDistance(k, c); d < bestD {
			best, bestD = c, d
		}
	}
	return best
}

func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
