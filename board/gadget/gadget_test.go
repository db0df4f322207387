package gadget

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// tree is a configfs stand-in: a temporary usb_gadget directory and one UDC.
func tree(t *testing.T) (configfs, udc string) {
	dir := t.TempDir()
	configfs, udc = filepath.Join(dir, "config"), filepath.Join(dir, "udc")
	os.MkdirAll(filepath.Join(configfs, "usb_gadget"), 0o755)
	os.MkdirAll(filepath.Join(udc, "fe980000.usb"), 0o755)
	return configfs, udc
}

func read(t *testing.T, p string) string {
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestNCM(t *testing.T) {
	configfs, udc := tree(t)
	fn, err := Setup(configfs, udc, Config{Function: NCM, Serial: "10000000abcdef"})
	if err != nil {
		t.Fatal(err)
	}
	g := filepath.Join(configfs, "usb_gadget", Name)
	if read(t, filepath.Join(g, "UDC")) != "fe980000.usb" {
		t.Fatal("not bound to the controller")
	}
	if read(t, filepath.Join(g, "idVendor")) != "0x1d6b" || read(t, filepath.Join(g, "strings/0x409/serialnumber")) != "10000000abcdef" {
		t.Fatal("descriptors")
	}
	dev, host := MACs("10000000abcdef")
	if read(t, filepath.Join(fn, "dev_addr")) != dev.String() || read(t, filepath.Join(fn, "host_addr")) != host.String() || dev.String() == host.String() {
		t.Fatal("addresses")
	}
	if dev[0]&0x02 == 0 || dev[0]&0x01 != 0 {
		t.Fatalf("%s is not a locally administered unicast address", dev)
	}
	target, err := os.Readlink(filepath.Join(g, "configs/c.1/ncm.usb0"))
	if err != nil || target != fn {
		t.Fatalf("configuration link: %q %v", target, err)
	}
	if _, err := os.Stat(filepath.Join(g, "os_desc")); err == nil {
		t.Fatal("NCM needs no Microsoft OS descriptors")
	}
	// Once bound, the kernel names the interface.
	os.WriteFile(filepath.Join(fn, "ifname"), []byte("usb0\n"), 0o644)
	if name, err := Interface(fn); err != nil || name != "usb0" {
		t.Fatalf("%q %v", name, err)
	}
}

func TestRNDIS(t *testing.T) {
	configfs, udc := tree(t)
	fn, err := Setup(configfs, udc, Config{Function: RNDIS, Serial: "s"})
	if err != nil {
		t.Fatal(err)
	}
	g := filepath.Join(configfs, "usb_gadget", Name)
	if read(t, filepath.Join(g, "os_desc/qw_sign")) != "MSFT100" || read(t, filepath.Join(fn, "os_desc/interface.rndis/compatible_id")) != "RNDIS" {
		t.Fatal("Windows would not find its driver")
	}
	if _, err := os.Readlink(filepath.Join(g, "os_desc/c.1")); err != nil {
		t.Fatal(err)
	}
}

func TestNoGadgetSupport(t *testing.T) {
	dir := t.TempDir()
	_, err := Setup(filepath.Join(dir, "config"), filepath.Join(dir, "udc"), Config{Function: NCM, Serial: "s"})
	if err == nil || !strings.Contains(err.Error(), "libcomposite") {
		t.Fatalf("%v", err)
	}
	configfs, _ := tree(t)
	_, err = Setup(configfs, filepath.Join(dir, "none"), Config{Function: NCM, Serial: "s"})
	if err == nil || !strings.Contains(err.Error(), "no USB device controller") {
		t.Fatalf("%v", err)
	}
	if err := (Config{Function: "ecm", Serial: "s"}).Validate(); err == nil {
		t.Fatal("ecm accepted")
	}
}
