package lab

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/gopacket/gopacket/pcapgo"
)

// WANCapture records the box's WAN cable from the home router's side, with
// tcpdump: what the network the box is plugged into sees.
type WANCapture struct {
	cmd  *exec.Cmd
	file string
	out  bytes.Buffer
}

// CaptureWAN starts recording the box's WAN cable; Stop ends it and sorts what it
// saw.
func (l *Lab) CaptureWAN() (*WANCapture, error) {
	f, err := os.CreateTemp(l.Dir, "wan-*.pcap")
	if err != nil {
		return nil, err
	}
	f.Close()
	c := &WANCapture{file: f.Name()}
	c.cmd = l.Cmd(context.Background(), HomeRouter, "tcpdump", "-i", HomeLANIface, "-n", "--immediate-mode", "-U", "-s", "200", "-w", c.file)
	c.cmd.Stdout, c.cmd.Stderr = &c.out, &c.out
	if err := c.cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting tcpdump on the home router: %w", err)
	}
	for deadline := time.Now().Add(5 * time.Second); !strings.Contains(c.out.String(), "listening on"); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			c.cmd.Process.Kill()
			c.cmd.Wait()
			return nil, fmt.Errorf("tcpdump did not start: %s", c.out.String())
		}
	}
	return c, nil
}

// WANVerdict sorts the packets a capture saw.
type WANVerdict struct {
	Total int
	// VPNOut and VPNIn are the VPN's flow: UDP to and from the endpoint.
	VPNOut, VPNIn int
	// ICMPAboutVPN are ICMP errors from the endpoint about the VPN's flow (its
	// port closed while the server is down).
	ICMPAboutVPN int
	ARP, DHCP    int
	// Other describes the first 20 packets that are none of these.
	Other []string
	// OtherCount counts them all.
	OtherCount int
}

func (v WANVerdict) String() string {
	return fmt.Sprintf("%d packets: %d VPN out, %d VPN in, %d ICMP about the VPN flow, %d ARP, %d DHCP, %d other",
		v.Total, v.VPNOut, v.VPNIn, v.ICMPAboutVPN, v.ARP, v.DHCP, v.OtherCount)
}

// Stop ends the capture and sorts what it saw.
func (c *WANCapture) Stop() (WANVerdict, error) {
	time.Sleep(200 * time.Millisecond) // the last packets reach the file
	c.cmd.Process.Signal(syscall.SIGINT)
	c.cmd.Wait()
	defer os.Remove(c.file)
	f, err := os.Open(c.file)
	if err != nil {
		return WANVerdict{}, err
	}
	defer f.Close()
	r, err := pcapgo.NewReader(f)
	if err != nil {
		return WANVerdict{}, fmt.Errorf("reading the capture %s: %v (%s)", filepath.Base(c.file), err, c.out.String())
	}
	var v WANVerdict
	ep := VPNEndpoint
	for {
		data, _, err := r.ReadPacketData()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return v, err
		}
		v.Total++
		p := gopacket.NewPacket(data, layers.LayerTypeEthernet, gopacket.DecodeOptions{Lazy: true, NoCopy: true})
		switch {
		case p.Layer(layers.LayerTypeARP) != nil:
			v.ARP++
			continue
		case p.Layer(layers.LayerTypeDHCPv4) != nil:
			v.DHCP++
			continue
		}
		if ip, _ := p.Layer(layers.LayerTypeIPv4).(*layers.IPv4); ip != nil {
			src, _ := netip.AddrFromSlice(ip.SrcIP.To4())
			dst, _ := netip.AddrFromSlice(ip.DstIP.To4())
			if udp, ok := p.Layer(layers.LayerTypeUDP).(*layers.UDP); ok && ip.Protocol == layers.IPProtocolUDP {
				if dst == ep.Addr() && uint16(udp.DstPort) == ep.Port() {
					v.VPNOut++
					continue
				}
				if src == ep.Addr() && uint16(udp.SrcPort) == ep.Port() {
					v.VPNIn++
					continue
				}
			}
			if icmp, ok := p.Layer(layers.LayerTypeICMPv4).(*layers.ICMPv4); ok && src == ep.Addr() && icmp.TypeCode.Type() == layers.ICMPv4TypeDestinationUnreachable {
				inner := gopacket.NewPacket(icmp.Payload, layers.LayerTypeIPv4, gopacket.Default)
				iip, _ := inner.Layer(layers.LayerTypeIPv4).(*layers.IPv4)
				iudp, _ := inner.Layer(layers.LayerTypeUDP).(*layers.UDP)
				if iip != nil && iudp != nil && iip.DstIP.Equal(net.IP(ep.Addr().AsSlice())) && uint16(iudp.DstPort) == ep.Port() {
					v.ICMPAboutVPN++
					continue
				}
			}
		}
		v.OtherCount++
		if len(v.Other) < 20 {
			v.Other = append(v.Other, p.String())
		}
	}
	return v, nil
}
