package daemon

import (
	"context"
	"fmt"
	"net/http"
	"time"

	"github.com/redoubt/redoubt/datapath/lan"
)

const (
	// moveAfter is how long a move waits after the owner's page asked for it,
	// so the page that says where the box went reaches the browser first.
	moveAfter = time.Second
	// linkDown is how long the LAN port's link stays down in a move. Longer
	// than NetworkManager's four seconds of patience with a lost carrier, so
	// the laptop treats it as a new connection and asks DHCP afresh; Windows
	// and macOS do on any carrier loss.
	linkDown = 5 * time.Second
)

// moveLAN puts the LAN side on next's lan.interface and lan.address: the port,
// the resolver, the DHCP server and the owner's pages are closed and built anew
// there, with the link taken down in between so the devices on it ask for new
// addresses. The vault, the VPN, the team mesh, the leak and query logs and the
// owner's sessions carry on. If the new LAN side does not come up, the old one
// comes back and the error says why.
func (b *Box) moveLAN(next Config) error {
	b.moveMu.Lock()
	defer b.moveMu.Unlock()
	old := b.config()
	b.log.Info("moving the LAN", "from", old.LAN.Address.String(), "to", next.LAN.Address.String(),
		"interface", next.LAN.Interface)
	b.stopLANSide()
	if err := lan.Bounce(old.LAN.Interface, linkDown); err != nil {
		b.log.Warn("the LAN link did not go down and up; devices keep their old addresses until they renew", "err", err)
	}
	b.setConfig(next)
	err := b.startLANSide(next)
	if err == nil {
		b.log.Info("LAN moved", "address", next.LAN.Address.String())
		b.afterMove()
		return nil
	}
	b.log.Error("the LAN did not come up on its new address; going back", "err", err)
	b.stopLANSide()
	b.setConfig(old)
	if err2 := b.startLANSide(old); err2 != nil {
		b.errc <- fmt.Errorf("the LAN port is down: moving failed (%v), and going back failed too: %w", err, err2)
		return err
	}
	b.afterMove()
	return fmt.Errorf("the box stays at %v: %w", old.LAN.Address, err)
}

// stopLANSide closes the owner's pages, DHCP, DNS and the LAN port, in that
// order. The closed rooms stay in place until new ones replace them: their
// readers (status, the dashboard) see last counters, not nil.
func (b *Box) stopLANSide() {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	for _, srv := range []*http.Server{b.web, b.webTLS} {
		if srv != nil && srv.Shutdown(ctx) != nil {
			srv.Close() // live feeds never end by themselves
		}
	}
	if d := b.dhcp.Load(); d != nil {
		d.Close()
	}
	if d := b.dns.Load(); d != nil {
		d.Close()
	}
	if l := b.lan.Load(); l != nil {
		l.Close()
	}
}

// startLANSide opens the LAN port on cfg and starts DNS, DHCP and the owner's
// pages on it. On failure what it opened is closed again.
func (b *Box) startLANSide(cfg Config) error {
	l, err := lan.Open(cfg.LAN, lan.Deps{Logger: b.log.With("room", "datapath"), Leaks: b.leaks})
	if err != nil {
		return err
	}
	b.lan.Store(l)
	if err := b.startLANServices(cfg, l); err != nil {
		b.stopLANSide()
		return err
	}
	if err := b.serveUI(l); err != nil {
		b.stopLANSide()
		return err
	}
	return nil
}

// afterMove brings what other rooms had put on the old LAN side to the new one:
// the way to the team and its names, the UI certificate's address.
func (b *Box) afterMove() {
	if b.mesh != nil {
		b.mesh.Resync()
	}
	if b.ui != nil {
		if err := b.ui.RenewCert(); err != nil {
			b.log.Warn("renewing the UI certificate for the new address", "err", err)
		}
	}
}

// setConfig makes cfg the config in force.
func (b *Box) setConfig(cfg Config) {
	b.mu.Lock()
	b.cfg = cfg
	b.mu.Unlock()
}
