// Package gadget makes a Raspberry Pi's USB-C port a network card for the
// laptop it is plugged into: a USB gadget written into configfs
// (/sys/kernel/config/usb_gadget) from Go, with one Ethernet function — NCM,
// which Linux, macOS and Windows 10 (2004) and later drive without
// installing anything, or RNDIS for older Windows — bound to the board's USB
// device controller. The function's interface (usb0) is then the box's LAN
// port. Only board/initd imports it.
package gadget

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
)

// Function is the gadget's Ethernet function.
type Function string

// The functions.
const (
	NCM   Function = "ncm"
	RNDIS Function = "rndis"
)

// Config is the gadget.
type Config struct {
	Function Function
	// Serial identifies the box (the board's serial number); the MAC
	// addresses are derived from it, so the laptop sees the same device
	// after every start.
	Serial string
}

// Validate names what is wrong.
func (c Config) Validate() error {
	if c.Function != NCM && c.Function != RNDIS {
		return fmt.Errorf("usb gadget function %q: want ncm or rndis", c.Function)
	}
	if c.Serial == "" {
		return errors.New("usb gadget: no serial number")
	}
	return nil
}

// Name is the gadget's directory under usb_gadget.
const Name = "redoubt"

// MACs derives the box's (dev) and the laptop's (host) side addresses:
// locally administered, unicast, stable for a serial.
func MACs(serial string) (dev, host net.HardwareAddr) {
	s := sha256.Sum256([]byte("redoubt usb gadget " + serial))
	dev = net.HardwareAddr{0x02, s[0], s[1], s[2], s[3], s[4]}
	host = net.HardwareAddr{0x06, s[0], s[1], s[2], s[3], s[4]}
	return dev, host
}

// Setup writes the gadget under configfs (normally /sys/kernel/config) and
// binds it to the first controller under udcDir (/sys/class/udc). It returns
// the function's directory. A gadget left from an earlier start is replaced.
func Setup(configfs, udcDir string, c Config) (string, error) {
	if err := c.Validate(); err != nil {
		return "", err
	}
	root := filepath.Join(configfs, "usb_gadget")
	if _, err := os.Stat(root); err != nil {
		return "", fmt.Errorf("the kernel has no USB gadget support (%s: %v): it needs libcomposite and usb_f_%s", root, err, c.Function)
	}
	udcs, err := os.ReadDir(udcDir)
	if err != nil || len(udcs) == 0 {
		return "", fmt.Errorf("no USB device controller in %s: on a Pi, dtoverlay=dwc2 in config.txt and the USB-C port", udcDir)
	}
	g := filepath.Join(root, Name)
	if _, err := os.Stat(g); err == nil {
		if err := Teardown(configfs); err != nil {
			return "", err
		}
	}
	dev, host := MACs(c.Serial)
	fn := string(c.Function) + ".usb0"
	steps := []struct{ path, value string }{
		{"idVendor", "0x1d6b"},  // Linux Foundation
		{"idProduct", "0x0104"}, // Multifunction Composite Gadget
		{"bcdDevice", "0x0100"},
		{"bcdUSB", "0x0200"},
		{"bDeviceClass", "0xEF"}, // miscellaneous, with an IAD: Windows binds per function
		{"bDeviceSubClass", "0x02"},
		{"bDeviceProtocol", "0x01"},
		{"strings/0x409/manufacturer", "Redoubt"},
		{"strings/0x409/product", "Redoubt box"},
		{"strings/0x409/serialnumber", c.Serial},
		{"configs/c.1/MaxPower", "250"},
		{"configs/c.1/strings/0x409/configuration", strings.ToUpper(string(c.Function))},
		{"functions/" + fn + "/dev_addr", dev.String()},
		{"functions/" + fn + "/host_addr", host.String()},
	}
	if c.Function == RNDIS {
		// Windows finds its RNDIS driver through Microsoft OS descriptors.
		steps = append(steps,
			struct{ path, value string }{"os_desc/use", "1"},
			struct{ path, value string }{"os_desc/b_vendor_code", "0xcd"},
			struct{ path, value string }{"os_desc/qw_sign", "MSFT100"},
			struct{ path, value string }{"functions/" + fn + "/os_desc/interface.rndis/compatible_id", "RNDIS"},
			struct{ path, value string }{"functions/" + fn + "/os_desc/interface.rndis/sub_compatible_id", "5162001"},
		)
	}
	for _, s := range steps {
		p := filepath.Join(g, s.path)
		// configfs makes the files of a directory when the directory is made;
		// MkdirAll of an existing configfs directory is a no-op.
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return "", fmt.Errorf("usb gadget: making %s: %w", filepath.Dir(p), err)
		}
		if err := os.WriteFile(p, []byte(s.value), 0o644); err != nil {
			return "", fmt.Errorf("usb gadget: writing %s: %w", s.path, err)
		}
	}
	if err := os.Symlink(filepath.Join(g, "functions", fn), filepath.Join(g, "configs", "c.1", fn)); err != nil {
		return "", fmt.Errorf("usb gadget: adding %s to the configuration: %w", fn, err)
	}
	if c.Function == RNDIS {
		if err := os.Symlink(filepath.Join(g, "configs", "c.1"), filepath.Join(g, "os_desc", "c.1")); err != nil {
			return "", fmt.Errorf("usb gadget: os_desc: %w", err)
		}
	}
	if err := os.WriteFile(filepath.Join(g, "UDC"), []byte(udcs[0].Name()), 0o644); err != nil {
		return "", fmt.Errorf("usb gadget: binding to %s: %w", udcs[0].Name(), err)
	}
	return filepath.Join(g, "functions", fn), nil
}

// Interface reads the network interface the kernel made for the function
// (usb0), once bound.
func Interface(fnDir string) (string, error) {
	b, err := os.ReadFile(filepath.Join(fnDir, "ifname"))
	if err != nil {
		return "", fmt.Errorf("usb gadget: reading the interface's name: %w", err)
	}
	name := strings.TrimSpace(string(b))
	if name == "" || strings.Contains(name, "unnamed") {
		return "", errors.New("usb gadget: the function has no interface yet")
	}
	return name, nil
}

// Teardown unbinds and removes the gadget, in the order configfs requires:
// unbind, configuration links, strings, configurations, functions, gadget.
func Teardown(configfs string) error {
	g := filepath.Join(configfs, "usb_gadget", Name)
	if _, err := os.Stat(g); err != nil {
		return nil
	}
	os.WriteFile(filepath.Join(g, "UDC"), []byte("\n"), 0o644)
	var errs []error
	rm := func(p string) {
		if err := os.Remove(p); err != nil && !os.IsNotExist(err) {
			errs = append(errs, err)
		}
	}
	links, _ := filepath.Glob(filepath.Join(g, "configs", "*", "*.usb*"))
	for _, l := range links {
		rm(l)
	}
	rm(filepath.Join(g, "os_desc", "c.1"))
	strs, _ := filepath.Glob(filepath.Join(g, "configs", "*", "strings", "*"))
	for _, s := range strs {
		rm(s)
	}
	cfgs, _ := filepath.Glob(filepath.Join(g, "configs", "*"))
	for _, c := range cfgs {
		rm(c)
	}
	fns, _ := filepath.Glob(filepath.Join(g, "functions", "*"))
	for _, f := range fns {
		rm(f)
	}
	gs, _ := filepath.Glob(filepath.Join(g, "strings", "*"))
	for _, s := range gs {
		rm(s)
	}
	rm(g)
	if len(errs) > 0 {
		return fmt.Errorf("usb gadget: removing the old gadget: %w", errors.Join(errs...))
	}
	return nil
}
