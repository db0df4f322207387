// Package profile is how a board's ports are used, as the owner picks in the
// config file's [board] section (the USB gadget, the watchdog), and the config
// file a box starts with when the owner gave none. The daemon and board/initd
// import it.
package profile

import (
	"fmt"

	"github.com/redoubt/redoubt/board/gadget"
	"github.com/redoubt/redoubt/board/layout"
)

// Config is the [board] section of the config file: how the board's ports
// are used. (The [update] section is update.Config.)
type Config struct {
	// Gadget makes the Pi's USB-C port the LAN port: "ncm" (Linux, macOS,
	// Windows 10 2004 and later) or "rndis" (older Windows); "" for none. The
	// [lan] interface is then the gadget's (usb0).
	Gadget string `toml:"gadget"`
	// Watchdog uses the board's hardware watchdog, so a hung box restarts
	// by itself (default true).
	Watchdog *bool `toml:"watchdog"`
}

// Validate names the wrong field.
func (c Config) Validate() error {
	if c.Gadget != "" {
		if err := (gadget.Config{Function: gadget.Function(c.Gadget), Serial: "x"}).Validate(); err != nil {
			return fmt.Errorf("board.gadget: %w", err)
		}
	}
	return nil
}

// WatchdogOn says whether to use the watchdog.
func (c Config) WatchdogOn() bool { return c.Watchdog == nil || *c.Watchdog }

// DefaultConfig is the config file a box starts with when the owner put none
// on the boot partition: the board's usual ports.
func DefaultConfig(b layout.Board) string {
	lan, wan, extra := "eth1", "eth0", ""
	if b == layout.RPi {
		// The built-in port is the WAN; a USB Ethernet adapter the LAN.
		lan = "eth1"
		extra = "\n# For the USB-C port as the LAN port instead (the laptop powers the Pi):\n# [board]\n# gadget = \"ncm\"\n# and [lan] interface = \"usb0\".\n"
	}
	return fmt.Sprintf(`# Written by the box at its first start; put your own redoubt.toml on the
# boot partition to replace it.

[lan]
interface = %q

[wan]
interface = %q
addressing = "dhcp"

[state]
dir = %q

[setup]
code_file = %q
%s`, lan, wan, layout.StateDir, layout.BootMount+"/"+layout.SetupCodeFile, extra)
}
