// Package egress is the one way the box's own code reaches beyond the box: every
// connection the box itself opens toward the internet (the tailnet's control and
// relay traffic, backups, time, update checks, the VPN's health checks) is dialed
// through a Dialer from this package, and a Dialer sends only through the external
// VPN's tunnel. When the tunnel is down or unconfigured, dials fail: nothing falls
// back to the WAN.
//
// Opening kernel sockets directly (net.Dial, net.Listen*, http.Get, …) outside
// the vpn room is flagged by this package's tests (see lint_test.go), so that a new
// feature cannot quietly bypass the tunnel.
//
// Any room may import this package; it imports no other part of the box.
package egress

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"sync"
	"time"
)

// Dialer opens the box's own connections to the internet, through the VPN.
type Dialer interface {
	// DialContext connects to address ("host:port"; host names are resolved
	// through the VPN) over network tcp, tcp4, tcp6, udp, udp4 or udp6.
	DialContext(ctx context.Context, network, address string) (net.Conn, error)
	// ListenPacket opens a UDP socket on the box's VPN address, for protocols
	// that talk to several peers from one socket (network udp, udp4 or udp6;
	// address ":port", port 0 picks one).
	ListenPacket(ctx context.Context, network, address string) (net.PacketConn, error)
	// LookupNetIP resolves host with the VPN's DNS servers, through the VPN.
	LookupNetIP(ctx context.Context, host string) ([]netip.Addr, error)
}

// ErrNoEgress is wrapped by every error of a Dialer that has no tunnel.
var ErrNoEgress = errors.New("the box's own traffic is not allowed out")

// Closed is a Dialer that refuses everything, saying why. It is what the box has
// before the VPN is configured.
type Closed struct{ Reason string }

func (c Closed) err(op string) error {
	reason := c.Reason
	if reason == "" {
		reason = "no VPN"
	}
	return fmt.Errorf("%s: %w: %s", op, ErrNoEgress, reason)
}

// DialContext implements Dialer: it always fails.
func (c Closed) DialContext(_ context.Context, network, address string) (net.Conn, error) {
	return nil, &net.OpError{Op: "dial", Net: network, Err: c.err("dialing " + address)}
}

// ListenPacket implements Dialer: it always fails.
func (c Closed) ListenPacket(_ context.Context, network, address string) (net.PacketConn, error) {
	return nil, &net.OpError{Op: "listen", Net: network, Err: c.err("listening on " + address)}
}

// LookupNetIP implements Dialer: it always fails.
func (c Closed) LookupNetIP(_ context.Context, host string) ([]netip.Addr, error) {
	return nil, &net.DNSError{Err: c.err("looking up").Error(), Name: host}
}

// Switch is the Dialer the box hands out: it sends through whichever tunnel is
// current, and refuses (fails closed) while there is none. The VPN room swaps the
// tunnel when the configuration changes; holders of the Switch never notice.
type Switch struct {
	mu     sync.RWMutex
	cur    Dialer
	reason string
}

// NewSwitch returns a Switch with no tunnel: it refuses with reason.
func NewSwitch(reason string) *Switch { return &Switch{reason: reason} }

// Set makes d the current tunnel; nil closes the switch, refusing with reason.
func (s *Switch) Set(d Dialer, reason string) {
	s.mu.Lock()
	s.cur, s.reason = d, reason
	s.mu.Unlock()
}

func (s *Switch) current() Dialer {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.cur == nil {
		return Closed{Reason: s.reason}
	}
	return s.cur
}

// DialContext implements Dialer.
func (s *Switch) DialContext(ctx context.Context, network, address string) (net.Conn, error) {
	return s.current().DialContext(ctx, network, address)
}

// ListenPacket implements Dialer.
func (s *Switch) ListenPacket(ctx context.Context, network, address string) (net.PacketConn, error) {
	return s.current().ListenPacket(ctx, network, address)
}

// LookupNetIP implements Dialer.
func (s *Switch) LookupNetIP(ctx context.Context, host string) ([]netip.Addr, error) {
	return s.current().LookupNetIP(ctx, host)
}

// HTTPClient is an HTTP client whose every connection goes through d. It ignores
// proxy settings from the environment. timeout bounds each request (0: none).
func HTTPClient(d Dialer, timeout time.Duration) *http.Client {
	return &http.Client{Transport: Transport(d), Timeout: timeout}
}

// Transport is an http.Transport dialing through d (HTTP/1.1 and HTTP/2 over TLS).
func Transport(d Dialer) *http.Transport {
	return &http.Transport{
		Proxy:                 nil,
		DialContext:           d.DialContext,
		ForceAttemptHTTP2:     true,
		MaxIdleConns:          16,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   15 * time.Second,
		ExpectContinueTimeout: time.Second,
	}
}
