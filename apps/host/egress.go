package host

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"strings"

	"github.com/redoubt/redoubt/vpn/egress"
)

// appEgress is an app's way out: only to the host:port pairs its manifest
// declares, through the box's VPN, and only while the owner allows it.
type appEgress struct {
	d       egress.Dialer
	allowed []string
	on      func() bool
}

func (a *appEgress) check(op, address string) error {
	if !a.on() {
		return fmt.Errorf("%s %s: %w: the owner has not allowed this app to connect out (its allow-egress option)", op, address, egress.ErrNoEgress)
	}
	for _, ok := range a.allowed {
		if strings.EqualFold(ok, address) {
			return nil
		}
	}
	return fmt.Errorf("%s %s: %w: the app's manifest does not declare it (it declares %s)", op, address, egress.ErrNoEgress, strings.Join(a.allowed, ", "))
}

func (a *appEgress) DialContext(ctx context.Context, network, address string) (net.Conn, error) {
	if err := a.check("dialing", address); err != nil {
		return nil, &net.OpError{Op: "dial", Net: network, Err: err}
	}
	return a.d.DialContext(ctx, network, address)
}

func (a *appEgress) ListenPacket(_ context.Context, network, address string) (net.PacketConn, error) {
	return nil, &net.OpError{Op: "listen", Net: network, Err: fmt.Errorf("%w: apps connect out only to the hosts they declare", egress.ErrNoEgress)}
}

func (a *appEgress) LookupNetIP(ctx context.Context, host string) ([]netip.Addr, error) {
	if !a.on() {
		return nil, fmt.Errorf("looking up %s: %w: the owner has not allowed this app to connect out", host, egress.ErrNoEgress)
	}
	for _, ok := range a.allowed {
		if h, _, err := net.SplitHostPort(ok); err == nil && strings.EqualFold(h, host) {
			return a.d.LookupNetIP(ctx, host)
		}
	}
	return nil, fmt.Errorf("looking up %s: %w: the app's manifest does not declare it", host, egress.ErrNoEgress)
}
