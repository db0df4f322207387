package daemon

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/redoubt/redoubt/ui"
	"github.com/redoubt/redoubt/ui/localapi"
	"github.com/redoubt/redoubt/vpn/external"
)

// startVPN installs the WAN firewall, takes the WAN port and brings the external
// VPN up: from here on the box's own traffic leaves only through it. It needs the
// vault open (a config set by the owner is kept there).
func (b *Box) startVPN(cfg Config) error {
	v, err := external.Start(cfg.VPN, external.Deps{
		Logger: b.log.With("room", "vpn"),
		Store:  b.vault,
		WAN:    cfg.WAN,
	})
	if err != nil {
		return err
	}
	b.vpn = v
	b.life.Register("vpn", v)
	return nil
}

// vpnAPI is the VPN as the local API sees it (nil when there is none).
func (b *Box) vpnAPI() localapi.VPN {
	if b.vpn == nil {
		return nil
	}
	return b.vpn
}

// vpnStatus is the VPN's health for the status command.
func (b *Box) vpnStatus() *external.Status {
	if b.vpn == nil {
		return nil
	}
	st := b.vpn.Status()
	return &st
}

// vpnServiceStates are the dashboard's WAN and VPN tiles.
func (b *Box) vpnServiceStates() (wanState, vpnState ui.ServiceState) {
	if b.vpn == nil {
		return ui.ServiceState{State: "off"}, ui.ServiceState{State: "off"}
	}
	st := b.vpn.Status()
	w := st.WAN
	switch {
	case w.Ready:
		wanState = ui.ServiceState{State: "up", Detail: fmt.Sprintf("%s %s (%s)", w.Interface, w.Address, w.Addressing)}
	default:
		wanState = ui.ServiceState{State: "down", Detail: w.Problem}
	}
	if !st.Firewall.Installed && st.Firewall.On {
		wanState.Detail += " — the firewall is not installed: " + st.Firewall.Error
	}
	switch st.State {
	case external.StateUp:
		d := "The box's own traffic leaves through " + st.Endpoint
		if st.Exit != "" {
			d += ", appearing from " + st.Exit
		}
		vpnState = ui.ServiceState{State: "up", Detail: d + "."}
	case external.StateConnecting:
		vpnState = ui.ServiceState{State: "connecting", Detail: st.Reason}
	case external.StateDown:
		vpnState = ui.ServiceState{State: "down", Detail: st.Reason + ". Nothing of the box's own leaves meanwhile."}
	default:
		vpnState = ui.ServiceState{State: "not configured", Detail: "The box's own traffic does not leave it yet: add your VPN provider's WireGuard config in Settings."}
	}
	return wanState, vpnState
}

// vpnStep is the setup wizard's VPN step.
type vpnStep struct{ b *Box }

func (s vpnStep) ID() string    { return "vpn" }
func (s vpnStep) Title() string { return "VPN" }
func (s vpnStep) Intro() string {
	return "The box's own connections (to your team's coordination server, backups, time) leave only through a VPN, so the network you plug the box into sees one encrypted flow and nothing else. Paste the WireGuard configuration your VPN provider gave you (a .conf file with [Interface] and [Peer]). Its Endpoint must be an IP address."
}
func (s vpnStep) Optional() bool     { return true }
func (s vpnStep) Fields() []ui.Field { return []ui.Field{vpnConfigField()} }

// Submit applies the pasted (or uploaded) config; a mistake is shown next to the
// field with the line it is on.
func (s vpnStep) Submit(values map[string]string) error {
	if s.b.vpn == nil {
		return errors.New("the VPN is not running on this box")
	}
	if err := setVPN(s.b.vpn, values["config"]); err != nil {
		var fe *ui.FieldError
		if errors.As(err, &fe) && strings.Contains(fe.Message, "config file") {
			fe.Message = "This box's VPN is set in its config file; skip this step."
		}
		return err
	}
	// Give the tunnel a moment, so the next page can say it is up.
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	for ctx.Err() == nil && s.b.vpn.Status().State == external.StateConnecting {
		time.Sleep(100 * time.Millisecond)
	}
	return nil
}

// uiSteps are the setup wizard's steps from other rooms.
func (b *Box) uiSteps() []ui.Step {
	var steps []ui.Step
	if b.vpn != nil {
		steps = append(steps, vpnStep{b}, (*meshStep)(b))
	}
	return append(steps, appsStep{b})
}

// reconfigVPN applies a reloaded config file's [wan] and [vpn] sections: the WAN
// port changes only with a restart; the VPN's config is re-read (its file may
// have changed) and the tunnel replaced if it differs.
func (b *Box) reconfigVPN(old, cfg Config) error {
	ow, nw := old.WAN, cfg.WAN
	if ow.Interface != nw.Interface || ow.Addressing != nw.Addressing || ow.Address != nw.Address ||
		ow.Gateway != nw.Gateway || ow.FirewallOn() != nw.FirewallOn() {
		return errors.New("the [wan] section changes only with a restart")
	}
	if b.vpn == nil {
		return nil
	}
	return b.vpn.Reconfig(cfg.VPN)
}
