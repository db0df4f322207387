package lab

import (
	"fmt"
	"net"

	"golang.org/x/sys/unix"
)

// SendFrames writes raw Ethernet frames on a node's interface, exactly as given:
// malformed, truncated, tagged or spoofed frames reach the wire as the test built
// them.
func (l *Lab) SendFrames(node, iface string, frames [][]byte) error {
	return l.Do(node, func() error {
		ifi, err := net.InterfaceByName(iface)
		if err != nil {
			return err
		}
		fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			return fmt.Errorf("raw socket in %s: %w", node, err)
		}
		defer unix.Close(fd)
		to := &unix.SockaddrLinklayer{Ifindex: ifi.Index, Halen: 6}
		for i, f := range frames {
			if len(f) >= 6 {
				copy(to.Addr[:], f[:6])
			}
			if err := unix.Sendto(fd, f, 0, to); err != nil {
				return fmt.Errorf("sending frame %d (%d bytes) on %s/%s: %w", i, len(f), node, iface, err)
			}
		}
		return nil
	})
}
