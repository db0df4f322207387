package lab

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/redoubt/redoubt/vpn/wgconfig"
)

// The VPN provider's addressing: its public side on the internet, and the tunnel.
var (
	// VPNEndpoint is the VPN server's public address and WireGuard port.
	VPNEndpoint = netip.MustParseAddrPort("192.0.2.2:51820")
	// VPNUpstream is the internet's address facing the VPN provider.
	VPNUpstream = netip.MustParsePrefix("192.0.2.1/24")
	// VPNTunnelServer and VPNTunnelBox are the two ends inside the tunnel.
	VPNTunnelServer = netip.MustParsePrefix("10.66.0.1/24")
	VPNTunnelBox    = netip.MustParsePrefix("10.66.0.2/32")
	// The VPN node's interface toward the internet, and the internet's toward it.
	VPNIface         = "wan0"
	InternetVPNIface = "vpn0"
	// Box WAN leases the home router hands out besides the box's own.
	homeDHCPRange = "192.168.1.100,192.168.1.199,255.255.255.0,10m"
)

// VPNServer is the lab's VPN provider: Debian's wireguard-go, configured with
// wireguard-tools (wg), in the "vpn" namespace, with NAT from the tunnel to the
// internet. Its keys and the box's are made for each lab.
type VPNServer struct {
	// Iface is the WireGuard interface in the vpn namespace (unique per lab:
	// wireguard-go's control socket lives in the shared /var/run/wireguard).
	Iface string
	// PublicKey is the server's key; BoxPublicKey the box's.
	PublicKey, BoxPublicKey wgconfig.Key
	// ClientConfig is the wg-quick file the lab wrote for the box (mode 0600).
	ClientConfig string

	lab       *Lab
	serverKey string // path of the server's private key file
	mu        sync.Mutex
	proc      *Proc
}

// addVPN builds the VPN provider and the home router's DHCP server, and starts
// the VPN server.
func (l *Lab) addVPN(ctx context.Context) error {
	l.logf("lab %s: adding the VPN provider", l.Prefix)
	for _, tool := range []string{"wireguard-go", "wg", "dnsmasq"} {
		if _, err := exec.LookPath(tool); err != nil {
			return fmt.Errorf("the lab's VPN needs %q (run scripts/deps.sh)", tool)
		}
	}
	if err := l.AddNode(ctx, VPN, false); err != nil {
		return err
	}
	if err := l.AddLink(ctx, VPN, VPNIface, "", Internet, InternetVPNIface, ""); err != nil {
		return err
	}
	vpnAddr := netip.PrefixFrom(VPNEndpoint.Addr(), VPNUpstream.Bits())
	for _, s := range [][]string{
		{Internet, "ip", "addr", "add", VPNUpstream.String(), "dev", InternetVPNIface},
		{VPN, "ip", "addr", "add", vpnAddr.String(), "dev", VPNIface},
		{VPN, "ip", "route", "add", "default", "via", VPNUpstream.Addr().String()},
		{VPN, "sysctl", "-q", "-w", "net.ipv4.ip_forward=1"},
	} {
		if _, err := l.Exec(ctx, s[0], s[1:]...); err != nil {
			return err
		}
	}
	// The provider's NAT: the tunnel's traffic leaves from its public address.
	// And counters on what comes out of the tunnel, by source.
	if err := l.nft(ctx, VPN, fmt.Sprintf(`table ip redoubt_lab_nat {
	chain postrouting {
		type nat hook postrouting priority srcnat; policy accept;
		oifname %[1]q ip saddr %[2]s masquerade
	}
}
table ip redoubt_lab_tunnel {
	counter tunnel_all {}
	counter tunnel_from_box {}
	counter tunnel_from_lan {}
	counter tunnel_other {}
	chain prerouting {
		type filter hook prerouting priority raw; policy accept;
		iifname %[3]q counter name tunnel_all
		iifname %[3]q ip saddr %[4]s counter name tunnel_from_box return
		iifname %[3]q ip saddr %[5]s counter name tunnel_from_lan
		iifname %[3]q counter name tunnel_other
	}
}
`, VPNIface, VPNTunnelServer.Masked(), l.wgIface(), VPNTunnelBox.Addr(), LANPrefix)); err != nil {
		return err
	}

	// Keys for this lab, and the box's config.
	serverKey, err := wgconfig.GenerateKey()
	if err != nil {
		return err
	}
	boxKey, err := wgconfig.GenerateKey()
	if err != nil {
		return err
	}
	v := &VPNServer{
		Iface: l.wgIface(), PublicKey: serverKey.Public(), BoxPublicKey: boxKey.Public(),
		ClientConfig: filepath.Join(l.Dir, "vpn-client.conf"),
		serverKey:    filepath.Join(l.Dir, "vpn-server.key"),
		lab:          l,
	}
	if err := os.WriteFile(v.serverKey, []byte(serverKey.Base64()+"\n"), 0o600); err != nil {
		return err
	}
	client := &wgconfig.Config{
		PrivateKey: boxKey,
		Addresses:  []netip.Prefix{VPNTunnelBox},
		DNS:        []netip.Addr{Resolver},
		MTU:        wgconfig.DefaultMTU,
		Peer: wgconfig.Peer{
			PublicKey:  serverKey.Public(),
			Endpoint:   VPNEndpoint,
			AllowedIPs: []netip.Prefix{netip.MustParsePrefix("0.0.0.0/0")},
			Keepalive:  wgconfig.DefaultKeepalive,
		},
	}
	if err := os.WriteFile(v.ClientConfig, client.Marshal(), 0o600); err != nil {
		return err
	}
	l.VPN = v
	if err := v.Start(ctx); err != nil {
		return err
	}
	return l.startHomeDHCP()
}

// wgIface names the VPN server's interface: unique per lab.
func (l *Lab) wgIface() string { return "wg" + strings.TrimPrefix(l.Prefix, "rdt") }

// startHomeDHCP runs dnsmasq on the home router as the home network's DHCP
// server: the box's WAN gets BoxWAN, the home router as its gateway.
func (l *Lab) startHomeDHCP() error {
	p, err := l.Start(HomeRouter, "homerouter-dhcp", "dnsmasq", "--keep-in-foreground", "--log-facility=-",
		"--conf-file=/dev/null", "--port=0", "--no-resolv", "--no-hosts", "--user=root",
		"--interface="+HomeLANIface, "--bind-interfaces",
		"--dhcp-range="+homeDHCPRange,
		"--dhcp-host="+BoxWANMAC+","+BoxWAN.Addr().String(),
		"--dhcp-option=option:router,"+Upstream.Addr().String(),
		"--dhcp-option=option:dns-server,"+Upstream.Addr().String(),
		"--dhcp-leasefile="+filepath.Join(l.Dir, "homerouter.leases"),
		"--pid-file=", "--log-dhcp")
	if err != nil {
		return err
	}
	time.Sleep(100 * time.Millisecond)
	if done, err := p.Exited(); done {
		return fmt.Errorf("the home router's DHCP server exited (%v):\n%s", err, p.Output())
	}
	return nil
}

// Start runs the VPN server (again, with the same keys and port).
func (v *VPNServer) Start(ctx context.Context) error {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.proc != nil {
		if done, _ := v.proc.Exited(); !done {
			return nil
		}
	}
	l := v.lab
	// wireguard-go in the foreground: the lab owns the process.
	p, err := l.Start(VPN, "vpn-server", "wireguard-go", "-f", v.Iface)
	if err != nil {
		return err
	}
	sock := "/var/run/wireguard/" + v.Iface + ".sock"
	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, err := os.Stat(sock); err == nil {
			break
		}
		if done, err := p.Exited(); done {
			return fmt.Errorf("wireguard-go exited (%v):\n%s", err, p.Output())
		}
		if time.Now().After(deadline) {
			p.Stop(time.Second)
			return fmt.Errorf("wireguard-go made no control socket %s within 10s:\n%s", sock, p.Output())
		}
		time.Sleep(20 * time.Millisecond)
	}
	for _, c := range [][]string{
		{"wg", "set", v.Iface, "private-key", v.serverKey, "listen-port", fmt.Sprint(VPNEndpoint.Port()),
			"peer", v.BoxPublicKey.String(), "allowed-ips", "0.0.0.0/0"},
		{"ip", "addr", "add", VPNTunnelServer.String(), "dev", v.Iface},
		{"ip", "link", "set", v.Iface, "up"},
	} {
		if _, err := l.Exec(ctx, VPN, c...); err != nil {
			p.Stop(time.Second)
			return fmt.Errorf("configuring the VPN server: %w", err)
		}
	}
	v.proc = p
	return nil
}

// Stop takes the VPN server down (its interface goes with it): the provider is
// gone, as far as the box can tell.
func (v *VPNServer) Stop() error {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.proc == nil {
		return nil
	}
	err := v.proc.Stop(5 * time.Second)
	v.proc = nil
	var ee interface{ ExitCode() int }
	if errors.As(err, &ee) {
		err = nil // wireguard-go exits non-zero on SIGTERM
	}
	return err
}

// Show is `wg show` on the server: its view of the box's session.
func (v *VPNServer) Show(ctx context.Context) (string, error) {
	return v.lab.Exec(ctx, VPN, "wg", "show", v.Iface)
}

// VPNBoxConfig is the TOML to append to BoxConfig for a box that uses the lab's
// VPN: its WAN port addressed by the home router's DHCP server, the lab's client
// config, and the tracker as the page that tells the exit address.
func (l *Lab) VPNBoxConfig() string {
	if l.VPN == nil {
		return ""
	}
	return fmt.Sprintf(`
[wan]
interface = %q
addressing = "dhcp"

[vpn]
config_file = %q
exit_check = "http://%s/exit"
`, BoxWANIface, l.VPN.ClientConfig, Tracker)
}

// TunnelCounts are the packets that came out of the VPN tunnel at the server,
// by source address.
type TunnelCounts struct {
	All, FromBox, FromLAN, Other uint64
}

// TunnelCounts reads the VPN node's counters.
func (l *Lab) TunnelCounts(ctx context.Context) (TunnelCounts, error) {
	var c TunnelCounts
	for name, dst := range map[string]*uint64{"tunnel_all": &c.All, "tunnel_from_box": &c.FromBox, "tunnel_from_lan": &c.FromLAN, "tunnel_other": &c.Other} {
		out, err := l.Exec(ctx, VPN, "nft", "list", "counter", "ip", "redoubt_lab_tunnel", name)
		if err != nil {
			return c, err
		}
		f := strings.Fields(out)
		for i := range f {
			if f[i] == "packets" && i+1 < len(f) {
				fmt.Sscan(f[i+1], dst)
			}
		}
	}
	return c, nil
}

// ResetTunnelCounts zeroes them.
func (l *Lab) ResetTunnelCounts(ctx context.Context) error {
	_, err := l.Exec(ctx, VPN, "nft", "reset", "counters", "table", "ip", "redoubt_lab_tunnel")
	return err
}

// Pid is the VPN server's process id (0 while it is stopped).
func (v *VPNServer) Pid() int {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.proc == nil {
		return 0
	}
	return v.proc.Pid()
}
