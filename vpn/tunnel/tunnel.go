// Package tunnel is one WireGuard tunnel to the external VPN: a userspace
// wireguard-go device whose inside is a gVisor netstack holding the box's tunnel
// addresses, and whose outside is a UDP socket toward the VPN server (marked, so
// the box's firewall can let exactly that flow through).
//
// A Tunnel is immutable: its configuration is fixed when it is made, and a new
// configuration means a new Tunnel. It dials TCP and UDP through the tunnel and
// resolves names with the DNS servers of its configuration, through the tunnel;
// nothing on it listens for the internet. Only the vpn room imports it: the rest
// of the box reaches it through vpn/egress.
package tunnel

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.zx2c4.com/wireguard/conn"
	"golang.zx2c4.com/wireguard/device"
	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/adapters/gonet"
	"gvisor.dev/gvisor/pkg/tcpip/network/ipv4"
	"gvisor.dev/gvisor/pkg/tcpip/network/ipv6"

	"github.com/redoubt/redoubt/internal/ratelimit"
	"github.com/redoubt/redoubt/vpn/wgconfig"
)

// Options configure New.
type Options struct {
	// Config is the tunnel's configuration. Required.
	Config *wgconfig.Config
	// Bind carries the encrypted packets. Default: kernel UDP sockets
	// (conn.NewStdNetBind) carrying Mark.
	Bind conn.Bind
	// Mark is the socket mark (SO_MARK) on the tunnel's UDP sockets; the box's
	// WAN firewall lets only packets with it, to the endpoint, leave. 0: none.
	Mark uint32
	// Logger receives the tunnel's log lines (rate-limited). Default discards.
	Logger *slog.Logger
}

// Tunnel is a running WireGuard tunnel.
type Tunnel struct {
	cfg     *wgconfig.Config
	log     *slog.Logger
	tun     *netTUN
	dev     *device.Device
	peer    *device.Peer
	started atomic.Int64 // unix nanoseconds of Up
	has4    bool
	has6    bool

	up        atomic.Bool
	closeOnce sync.Once
}

// New makes the tunnel, down: Up starts it once the WAN can carry its packets
// (a handshake sent too early would hold the next one back for seconds).
func New(o Options) (*Tunnel, error) {
	if o.Config == nil {
		return nil, errors.New("tunnel: Options.Config is required")
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	cfg := o.Config
	nt, err := newNetTUN(cfg.Addresses, cfg.MTU)
	if err != nil {
		return nil, err
	}
	bind := o.Bind
	if bind == nil {
		bind = conn.NewStdNetBind()
	}
	t := &Tunnel{cfg: cfg, log: o.Logger, tun: nt}
	for _, a := range cfg.Addresses {
		t.has4 = t.has4 || a.Addr().Is4()
		t.has6 = t.has6 || a.Addr().Is6()
	}
	t.dev = device.NewDevice(nt, bind, wgLogger(o.Logger))
	if err := t.dev.IpcSet(cfg.UAPI(o.Mark)); err != nil {
		t.dev.Close()
		// The error may quote a line of the configuration: say only what failed.
		return nil, fmt.Errorf("configuring the WireGuard device: %s", ipcErrMsg(err))
	}
	t.peer = t.dev.LookupPeer(device.NoisePublicKey(cfg.Peer.PublicKey))
	if t.peer == nil {
		t.dev.Close()
		return nil, errors.New("the WireGuard device lost its peer")
	}
	return t, nil
}

// Up brings the tunnel up: from now on WireGuard tries to reach the VPN server
// whenever there is something to send, starting with a handshake now.
func (t *Tunnel) Up() error {
	if t.up.Swap(true) {
		return nil
	}
	if err := t.dev.Up(); err != nil {
		t.up.Store(false)
		return fmt.Errorf("bringing the WireGuard device up: %w", err)
	}
	t.started.Store(time.Now().UnixNano())
	t.peer.SendKeepalive()
	return nil
}

// IsUp reports whether Up was called.
func (t *Tunnel) IsUp() bool { return t.up.Load() }

func ipcErrMsg(err error) string {
	var ie *device.IPCError
	if errors.As(err, &ie) {
		return fmt.Sprintf("error code %d", ie.ErrorCode())
	}
	return "invalid configuration"
}

// wgLogger sends wireguard-go's log to slog, rate-limited: its verbose lines
// (handshakes, keepalives) at debug, its errors (sends refused, bad packets) at
// warn. wireguard-go names peers by an abbreviated public key only.
func wgLogger(log *slog.Logger) *device.Logger {
	verbose := &ratelimit.Limiter{Rate: 1, Burst: 20}
	errs := &ratelimit.Limiter{Rate: 0.2, Burst: 5}
	emit := func(l *ratelimit.Limiter, level slog.Level) func(string, ...any) {
		return func(format string, args ...any) {
			ok, suppressed := l.Allow(time.Now())
			if !ok {
				return
			}
			attrs := []any{}
			if suppressed > 0 {
				attrs = append(attrs, "suppressed", suppressed)
			}
			log.Log(context.Background(), level, "wireguard: "+fmt.Sprintf(format, args...), attrs...)
		}
	}
	return &device.Logger{Verbosef: emit(verbose, slog.LevelDebug), Errorf: emit(errs, slog.LevelWarn)}
}

// Config is the tunnel's configuration.
func (t *Tunnel) Config() *wgconfig.Config { return t.cfg }

// Started is when the tunnel was brought up (zero: not yet).
func (t *Tunnel) Started() time.Time {
	n := t.started.Load()
	if n == 0 {
		return time.Time{}
	}
	return time.Unix(0, n)
}

// Stats are what WireGuard and the netstack report about the tunnel.
type Stats struct {
	// LastHandshake is when the last handshake with the VPN server completed
	// (zero: never).
	LastHandshake time.Time
	RxBytes       uint64 // encrypted bytes received from the server
	TxBytes       uint64 // encrypted bytes sent to it
	Endpoint      string // where WireGuard sends
	ListenPort    int    // the local UDP port
	Link          LinkStats
}

// Stats reads the device's counters.
func (t *Tunnel) Stats() Stats {
	var st Stats
	var pr pipeReader
	if err := t.dev.IpcGetOperation(&pr); err != nil {
		return st
	}
	var sec, nsec int64
	sc := bufio.NewScanner(strings.NewReader(pr.String()))
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), "=")
		if !ok {
			continue
		}
		switch k {
		case "last_handshake_time_sec":
			sec, _ = strconv.ParseInt(v, 10, 64)
		case "last_handshake_time_nsec":
			nsec, _ = strconv.ParseInt(v, 10, 64)
		case "rx_bytes":
			st.RxBytes, _ = strconv.ParseUint(v, 10, 64)
		case "tx_bytes":
			st.TxBytes, _ = strconv.ParseUint(v, 10, 64)
		case "endpoint":
			st.Endpoint = v
		case "listen_port":
			st.ListenPort, _ = strconv.Atoi(v)
		}
		// private_key and preshared_key lines are skipped: they never leave here.
	}
	if sec != 0 || nsec != 0 {
		st.LastHandshake = time.Unix(sec, nsec)
	}
	st.Link = t.tun.ep.stats()
	return st
}

// pipeReader collects IpcGet's output without keeping the secret lines.
type pipeReader struct{ b strings.Builder }

func (p *pipeReader) Write(b []byte) (int, error) {
	for _, line := range strings.SplitAfter(string(b), "\n") {
		if strings.HasPrefix(line, "private_key=") || strings.HasPrefix(line, "preshared_key=") {
			continue
		}
		p.b.WriteString(line)
	}
	return len(b), nil
}

func (p *pipeReader) String() string { return p.b.String() }

// Kick makes WireGuard send to the VPN server now: a keepalive, which starts a
// handshake when there is no session. The health check calls it while the tunnel
// is down, so the tunnel comes back as soon as the server answers.
func (t *Tunnel) Kick() { t.peer.SendKeepalive() }

// Rebind reopens the tunnel's UDP sockets, after the WAN address changed.
func (t *Tunnel) Rebind() error { return t.dev.BindUpdate() }

// Close takes the tunnel down. Connections through it fail.
func (t *Tunnel) Close() {
	t.closeOnce.Do(func() { t.dev.Close() })
}

// DialContext connects to address ("host:port") through the tunnel. network is
// tcp, tcp4, tcp6, udp, udp4 or udp6; host names are resolved with the tunnel's
// DNS servers, through the tunnel.
func (t *Tunnel) DialContext(ctx context.Context, network, address string) (net.Conn, error) {
	tcp, fam, err := parseNetwork(network)
	if err != nil {
		return nil, &net.OpError{Op: "dial", Net: network, Err: err}
	}
	host, portStr, err := net.SplitHostPort(address)
	if err != nil {
		return nil, &net.OpError{Op: "dial", Net: network, Err: err}
	}
	port, err := strconv.ParseUint(portStr, 10, 16)
	if err != nil {
		return nil, &net.OpError{Op: "dial", Net: network, Err: fmt.Errorf("bad port %q", portStr)}
	}
	addrs, err := t.LookupNetIP(ctx, host)
	if err != nil {
		return nil, &net.OpError{Op: "dial", Net: network, Err: err}
	}
	var errs []error
	tried := 0
	for _, a := range addrs {
		if !t.usable(a, fam) {
			continue
		}
		tried++
		c, err := t.dialAddr(ctx, tcp, netip.AddrPortFrom(a, uint16(port)))
		if err == nil {
			return c, nil
		}
		errs = append(errs, err)
		if ctx.Err() != nil {
			break
		}
	}
	if tried == 0 {
		return nil, &net.OpError{Op: "dial", Net: network, Err: fmt.Errorf("%s has no address the tunnel can reach (tunnel IPv4 %v, IPv6 %v)", host, t.has4, t.has6)}
	}
	return nil, errors.Join(errs...)
}

func (t *Tunnel) usable(a netip.Addr, fam int) bool {
	if a.Is4() {
		return t.has4 && fam != 6
	}
	return t.has6 && fam != 4
}

func (t *Tunnel) dialAddr(ctx context.Context, tcp bool, ap netip.AddrPort) (net.Conn, error) {
	fa, proto := fullAddr(ap)
	if tcp {
		return gonet.DialContextTCP(ctx, t.tun.stack, fa, proto)
	}
	return gonet.DialUDP(t.tun.stack, nil, &fa, proto)
}

// ListenPacket opens a UDP socket on the tunnel's address (for protocols that
// talk to several peers from one socket). address is ":port" or "IP:port" with
// one of the tunnel's addresses; port 0 picks one.
func (t *Tunnel) ListenPacket(ctx context.Context, network, address string) (net.PacketConn, error) {
	tcp, fam, err := parseNetwork(network)
	if err != nil || tcp {
		return nil, &net.OpError{Op: "listen", Net: network, Err: errors.New("want udp, udp4 or udp6")}
	}
	host, portStr, err := net.SplitHostPort(address)
	if err != nil {
		return nil, &net.OpError{Op: "listen", Net: network, Err: err}
	}
	port, err := strconv.ParseUint(portStr, 10, 16)
	if err != nil {
		return nil, &net.OpError{Op: "listen", Net: network, Err: fmt.Errorf("bad port %q", portStr)}
	}
	var local netip.Addr
	if host != "" {
		if local, err = netip.ParseAddr(host); err != nil {
			return nil, &net.OpError{Op: "listen", Net: network, Err: fmt.Errorf("%q is not an IP address", host)}
		}
	}
	if !local.IsValid() || local.IsUnspecified() {
		want6 := fam == 6 || (fam == 0 && !t.has4) || (local.IsValid() && local.Is6())
		for _, a := range t.cfg.Addresses {
			if a.Addr().Is6() == want6 {
				local = a.Addr()
				break
			}
		}
		if !local.IsValid() {
			return nil, &net.OpError{Op: "listen", Net: network, Err: errors.New("the tunnel has no address of that family")}
		}
	}
	fa, proto := fullAddr(netip.AddrPortFrom(local, uint16(port)))
	c, err := gonet.DialUDP(t.tun.stack, &fa, nil, proto)
	if err != nil {
		return nil, err
	}
	return c, nil
}

// parseNetwork reads a Go network name: TCP or UDP, and the family (0: either).
func parseNetwork(network string) (tcp bool, fam int, err error) {
	switch network {
	case "tcp", "udp":
	case "tcp4", "udp4":
		fam = 4
	case "tcp6", "udp6":
		fam = 6
	default:
		return false, 0, fmt.Errorf("network %q: the tunnel carries tcp and udp", network)
	}
	return strings.HasPrefix(network, "tcp"), fam, nil
}

func fullAddr(ap netip.AddrPort) (tcpip.FullAddress, tcpip.NetworkProtocolNumber) {
	a := ap.Addr().Unmap()
	proto := ipv4.ProtocolNumber
	if a.Is6() {
		proto = ipv6.ProtocolNumber
	}
	return tcpip.FullAddress{NIC: nicID, Addr: tcpip.AddrFromSlice(a.AsSlice()), Port: ap.Port()}, proto
}
