package lan

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/redoubt/redoubt/datapath/link"
)

// Open takes over the interface named in cfg: it checks the kernel holds no IPv4
// address on it, turns the kernel's IPv6, forwarding and ARP answers off there,
// brings the link up and attaches the netstack through a packet socket.
func Open(cfg Config, deps Deps) (*LAN, error) {
	l, err := newLAN(cfg, deps)
	if err != nil {
		return nil, err
	}
	if err := prepareInterface(l.cfg.Interface); err != nil {
		return nil, err
	}
	ep, err := link.Open(l.cfg.Interface, l)
	if err != nil {
		return nil, err
	}
	if err := l.start(ep); err != nil {
		ep.Close()
		return nil, err
	}
	l.log.Info("LAN port up", "interface", l.cfg.Interface, "address", l.cfg.Address.String(),
		"mac", l.MAC().String(), "reveal", l.cfg.RevealOn())
	return l, nil
}

// OpenFD attaches the netstack to fd, a socket that carries one Ethernet frame per
// message (one end of a socketpair), with mac as the box's hardware address. Tests
// use it to run a real LAN port without root; the caller closes fd after Close.
func OpenFD(fd int, mac net.HardwareAddr, cfg Config, deps Deps) (*LAN, error) {
	if cfg.Interface == "" {
		cfg.Interface = "fd"
	}
	l, err := newLAN(cfg, deps)
	if err != nil {
		return nil, err
	}
	ep, err := link.New(fd, link.Options{MAC: mac, MTU: 1500, Gate: l})
	if err != nil {
		return nil, err
	}
	if err := l.start(ep); err != nil {
		ep.Close()
		return nil, err
	}
	return l, nil
}

// kernelSettings keep the kernel out of the LAN port: no IPv6 (so no link-local
// address, neighbour or router solicitations), nothing forwarded from it, and no
// ARP answers for the kernel's other addresses (the WAN's, by default, would be
// announced to the laptop).
var kernelSettings = []struct{ path, value string }{
	{"net/ipv6/conf/%s/disable_ipv6", "1"},
	{"net/ipv4/conf/%s/forwarding", "0"},
	{"net/ipv4/conf/%s/arp_ignore", "8"},
	{"net/ipv4/conf/%s/arp_announce", "2"},
	{"net/ipv4/conf/%s/accept_redirects", "0"},
	{"net/ipv4/conf/%s/send_redirects", "0"},
}

func prepareInterface(name string) error {
	ifi, err := net.InterfaceByName(name)
	if err != nil {
		return fmt.Errorf("lan.interface %q: %w", name, err)
	}
	addrs, err := ifi.Addrs()
	if err != nil {
		return fmt.Errorf("reading addresses of %s: %w", name, err)
	}
	for _, a := range addrs {
		if ipn, ok := a.(*net.IPNet); ok && ipn.IP.To4() != nil {
			return fmt.Errorf("lan.interface %q has the kernel address %v: the LAN port must carry no kernel address "+
				"(remove it with `ip addr flush dev %s`, or pick another interface)", name, ipn, name)
		}
	}
	for _, s := range kernelSettings {
		p := filepath.Join("/proc/sys", fmt.Sprintf(s.path, name))
		if err := os.WriteFile(p, []byte(s.value), 0); err != nil {
			return fmt.Errorf("setting %s to %s on the LAN port: %w", strings.ReplaceAll(fmt.Sprintf(s.path, name), "/", "."), s.value, err)
		}
	}
	return setUp(name)
}

// setUp brings the interface up.
func setUp(name string) error { return setLink(name, true) }

// Bounce takes the interface down for the given time and brings it back up: to
// the devices on the port it looks like the cable was pulled and plugged back in,
// and they ask DHCP for their address again (NetworkManager, Windows and macOS
// all do on a link that returns). The LAN must be closed while it runs.
func Bounce(name string, down time.Duration) error {
	if err := setLink(name, false); err != nil {
		return err
	}
	time.Sleep(down)
	return setLink(name, true)
}

// setLink brings the interface up or down.
func setLink(name string, up bool) error {
	verb := "up"
	if !up {
		verb = "down"
	}
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("bringing %s %s: %w", name, verb, err)
	}
	defer unix.Close(fd)
	ifr, err := unix.NewIfreq(name)
	if err != nil {
		return fmt.Errorf("bringing %s %s: %w", name, verb, err)
	}
	if err := unix.IoctlIfreq(fd, unix.SIOCGIFFLAGS, ifr); err != nil {
		return fmt.Errorf("reading flags of %s: %w", name, err)
	}
	flags := ifr.Uint16()
	if (flags&unix.IFF_UP != 0) == up {
		return nil
	}
	if up {
		flags |= unix.IFF_UP
	} else {
		flags &^= unix.IFF_UP
	}
	ifr.SetUint16(flags)
	if err := unix.IoctlIfreq(fd, unix.SIOCSIFFLAGS, ifr); err != nil {
		return fmt.Errorf("bringing %s %s: %w", name, verb, err)
	}
	return nil
}
