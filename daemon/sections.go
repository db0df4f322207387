package daemon

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/redoubt/redoubt/ui"
	"github.com/redoubt/redoubt/vpn/external"
	"github.com/redoubt/redoubt/vpn/mesh"
	"github.com/redoubt/redoubt/vpn/wgconfig"
)

// The settings page's sections for the rooms the setup wizard also asks about:
// the external VPN and the team mesh. Whatever the wizard set can be seen,
// tested and changed here.

// uiSections are the settings page's sections from other rooms.
func (b *Box) uiSections() []ui.Section {
	if b.vpn == nil {
		return nil
	}
	return []ui.Section{vpnSection{b}, meshSection{b}}
}

// vpnSection is the VPN's part of the settings page.
type vpnSection struct{ b *Box }

func (s vpnSection) ID() string    { return "vpn" }
func (s vpnSection) Title() string { return "VPN" }
func (s vpnSection) Intro() string {
	return "The box's own connections (your team's coordination server and relays, backups, time) leave only through a VPN, so the network the box is plugged into sees one encrypted flow and nothing else. This computer's protection does not depend on it: the box never forwards anything of this computer's."
}

func (s vpnSection) State() ui.SectionState {
	st := s.b.vpn.Status()
	now := time.Now()
	var out ui.SectionState
	var facts []ui.Fact
	if st.Endpoint != "" {
		facts = append(facts, ui.Fact{Label: "VPN server", Value: st.Endpoint})
	}
	if !st.LastHandshake.IsZero() {
		facts = append(facts, ui.Fact{Label: "Last handshake", Value: agoWords(now.Sub(st.LastHandshake))})
	}
	if st.Exit != "" {
		facts = append(facts, ui.Fact{Label: "Exit address", Value: st.Exit + " (checked " + ui.When(st.ExitCheckedAt, now) + ")"})
	} else if st.ExitError != "" {
		facts = append(facts, ui.Fact{Label: "Exit address", Value: "unknown: " + st.ExitError})
	}
	if st.State == external.StateUp || st.RxBytes+st.TxBytes > 0 {
		facts = append(facts, ui.Fact{Label: "Traffic", Value: fmt.Sprintf("%s in, %s out", bytesText(st.RxBytes), bytesText(st.TxBytes))})
	}
	if st.Source != "" {
		facts = append(facts, ui.Fact{Label: "Config", Value: st.Source})
	}
	if !st.Firewall.Installed && st.Firewall.On {
		facts = append(facts, ui.Fact{Label: "Kernel firewall", Value: "not installed: " + st.Firewall.Error})
	}
	out.Facts = facts
	switch st.State {
	case external.StateUp:
		out.State, out.Label = "up", "Up"
		out.Detail = "The box's own connections leave through " + st.Endpoint + ", since " + ui.When(st.Since, now) + "."
	case external.StateConnecting:
		out.State, out.Label, out.Detail = "connecting", "Connecting", sentence(st.Reason)
		out.Todo = "Wait a few seconds. If it stays so, Test says which step fails."
	case external.StateDown:
		out.State, out.Label, out.Detail = "down", "Down", sentence(st.Reason)+" Nothing of the box's own leaves meanwhile."
		switch {
		case strings.Contains(st.Reason, "locked"):
			out.Todo = "Unlock the box: its VPN config is kept sealed."
		case st.FromFile:
			out.Todo = "The VPN is set in the box's config file: check it there. The box keeps retrying by itself."
		default:
			out.Todo = "Check that this is the config your provider made for this device, and that the network the box is plugged into lets UDP out. The box keeps retrying by itself; Test says which step fails."
		}
	default:
		out.State, out.Label = "not configured", "Not set up"
		out.Detail = "The box's own connections cannot leave: the team mesh, backups and time wait for a VPN."
		out.Todo = "Paste your VPN provider's WireGuard config below, or choose its .conf file."
	}
	if st.FromFile {
		out.Detail += " It is set in the box's config file, which wins over this page."
	}
	return out
}

func (s vpnSection) Fields() []ui.Field {
	if s.b.vpn.FromFile() {
		return nil
	}
	f := vpnConfigField()
	if s.b.vpn.Status().State != external.StateNotConfigured {
		f.Label = "A new WireGuard configuration"
		f.Help = "The one in use is kept sealed and never shown. A new one replaces it at once."
	}
	return []ui.Field{f}
}

// vpnConfigField is the wg-quick text, pasted or uploaded: the wizard's step and
// the settings page ask for it alike.
func vpnConfigField() ui.Field {
	return ui.Field{
		Name: "config", Label: "WireGuard configuration", Type: "textarea", Upload: true,
		Help:        "It holds a private key: it is kept sealed in the box's vault and never shown again.",
		Placeholder: "[Interface]\nPrivateKey = …\nAddress = …\nDNS = …\n\n[Peer]\nPublicKey = …\nEndpoint = 198.51.100.7:51820\nAllowedIPs = 0.0.0.0/0, ::/0",
	}
}

func (s vpnSection) Actions() []ui.Action {
	st := s.b.vpn.Status()
	if st.FromFile {
		return []ui.Action{{Name: "test", Label: "Test the VPN", Style: "secondary"}}
	}
	acts := []ui.Action{{Name: "save", Label: "Use this configuration", Fields: true}}
	if st.State != external.StateNotConfigured {
		acts = append(acts, ui.Action{Name: "test", Label: "Test the VPN", Style: "secondary"},
			ui.Action{Name: "remove", Label: "Remove the VPN", Style: "danger",
				Confirm: "Remove the VPN's config. The box's own connections (the team mesh among them) stop until you give it another."})
	}
	return acts
}

func (s vpnSection) Submit(ctx context.Context, action string, values map[string]string) (string, error) {
	v := s.b.vpn
	switch action {
	case "save":
		if err := setVPN(v, values["config"]); err != nil {
			return "", err
		}
		st := waitVPN(ctx, v, 5*time.Second)
		switch st.State {
		case external.StateUp:
			msg := "Saved. The VPN is up"
			if st.Exit != "" {
				msg += ": the box's traffic leaves from " + st.Exit
			}
			return msg + ".", nil
		case external.StateConnecting:
			return "Saved. The VPN is connecting; this page shows when it is up.", nil
		}
		return "Saved, but the VPN is not up: " + st.Reason + ".", nil
	case "test":
		res := v.Test(ctx)
		var lines []string
		for _, c := range res.Checks {
			mark := "✓ "
			if !c.OK {
				mark = "✗ "
			}
			lines = append(lines, mark+c.Detail)
		}
		if !res.OK {
			return "", errors.New("The test stopped at a step that failed:\n" + strings.Join(lines, "\n"))
		}
		return "The VPN works.\n" + strings.Join(lines, "\n"), nil
	case "remove":
		if err := v.Clear(); err != nil {
			return "", err
		}
		return "The VPN's config is removed: nothing of the box's own leaves until you give it another.", nil
	}
	return "", fmt.Errorf("no such action %q", action)
}

// setVPN applies a pasted config; a mistake names its line, next to the field.
func setVPN(v *external.VPN, text string) error {
	_, err := v.Set([]byte(strings.ReplaceAll(text, "\r\n", "\n")))
	var we *wgconfig.Error
	switch {
	case errors.As(err, &we):
		return &ui.FieldError{Field: "config", Message: sentence(we.Error())}
	case errors.Is(err, external.ErrFromFile):
		return &ui.FieldError{Field: "config", Message: "This box's VPN is set in its config file; change it there."}
	}
	return err
}

// waitVPN waits until the VPN is no longer connecting (or for d).
func waitVPN(ctx context.Context, v *external.VPN, d time.Duration) external.Status {
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	for {
		st := v.Status()
		if st.State != external.StateConnecting || ctx.Err() != nil {
			return st
		}
		select {
		case <-ctx.Done():
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// meshSection is the team mesh's part of the settings page.
type meshSection struct{ b *Box }

func (s meshSection) ID() string    { return "team" }
func (s meshSection) Title() string { return "Team mesh" }
func (s meshSection) Intro() string {
	return "Your team reaches the box's apps from their own devices, from anywhere, over an encrypted network coordinated by your own Headscale server, which the box reaches only through the VPN. Members are added on the Team page."
}

func (s meshSection) State() ui.SectionState {
	b := s.b
	ms := b.meshStatus()
	var out ui.SectionState
	if ms == nil {
		return ui.SectionState{State: "off", Label: "Off", Detail: "This box runs without a team mesh."}
	}
	if ms.LoginServer != "" {
		out.Facts = append(out.Facts, ui.Fact{Label: "Headscale", Value: ms.LoginServer})
	}
	if ms.Node == "up" {
		out.Facts = append(out.Facts, ui.Fact{Label: "The box in the team's network", Value: fmt.Sprintf("%s, %s", ms.Name, strings.Join(ms.Addrs, ", "))},
			ui.Fact{Label: "Team devices", Value: fmt.Sprint(ms.Peers)})
	}
	mode := "Strict: everything through the VPN"
	if !ms.Strict {
		mode = "Direct paths allowed"
	}
	out.Facts = append(out.Facts, ui.Fact{Label: "Mode", Value: mode})
	vpnUp := b.vpn.Status().State == external.StateUp
	switch {
	case !ms.Configured:
		out.State, out.Label = "not configured", "Not set up"
		out.Detail = "No team yet."
		out.Todo = "Give the box your Headscale server's address and an API key below (on the server: headscale apikeys create --expiration 365d)."
		if !vpnUp {
			out.Todo = "Set up the VPN first (above): the box reaches Headscale only through it. Then give the box your Headscale server's address and an API key here."
		}
	case ms.Headscale == "key rejected":
		out.State, out.Label, out.Detail = "down", "Key refused", sentence(ms.HeadscaleDetail)
		out.Todo = "Make a new API key on the Headscale server (headscale apikeys create --expiration 365d) and paste it below."
	case ms.Headscale == "unreachable":
		out.State, out.Label, out.Detail = "down", "Unreachable", sentence(ms.HeadscaleDetail)
		out.Todo = "Check the address below. The box reaches Headscale only through the VPN: is the VPN up? The box retries by itself."
		if !vpnUp {
			out.Todo = "The VPN is not up, and the box reaches Headscale only through it: see the VPN section above."
		}
	case ms.Node == "up":
		out.State, out.Label = "up", "Up"
		out.Detail = fmt.Sprintf("The box is in the team's network as %s, with %d team device(s).", ms.Name, ms.Peers)
	default:
		out.State, out.Label = "connecting", "Joining"
		out.Detail = "Headscale answers; the box's node is " + ms.Node + "."
		if ms.NodeDetail != "" {
			out.Detail += " " + sentence(ms.NodeDetail)
		}
		out.Todo = "Wait a few seconds; Test says whether Headscale answers and takes the key."
	}
	return out
}

func (s meshSection) configured() (mesh.Settings, bool) {
	if s.b.vault.Locked() || s.b.mesh == nil {
		return mesh.Settings{}, false
	}
	ms, ok, _ := s.b.mesh.Settings()
	return ms, ok
}

func (s meshSection) Fields() []ui.Field {
	cur, ok := s.configured()
	key := ui.Field{Name: "api_key", Label: "API key", Type: "password", Help: "On the Headscale server: headscale apikeys create --expiration 365d. The box keeps it sealed."}
	if ok {
		key.Optional = true
		key.Help = "Leave it empty to keep the current key. " + key.Help
	}
	return []ui.Field{
		{Name: "login_server", Label: "Headscale server", Type: "url", Placeholder: "https://headscale.example.org", Value: cur.LoginServer},
		key,
	}
}

func (s meshSection) Actions() []ui.Action {
	acts := []ui.Action{{Name: "save", Label: "Save and join", Fields: true}}
	if _, ok := s.configured(); ok {
		acts = append(acts, ui.Action{Name: "test", Label: "Test Headscale", Style: "secondary"})
	}
	return acts
}

func (s meshSection) Submit(ctx context.Context, action string, values map[string]string) (string, error) {
	b := s.b
	cur, ok := s.configured()
	switch action {
	case "save":
		next := mesh.Settings{LoginServer: strings.TrimSpace(values["login_server"]), APIKey: strings.TrimSpace(values["api_key"])}
		if next.APIKey == "" && ok {
			next.APIKey = cur.APIKey
		}
		if b.vpn.Status().State != external.StateUp {
			return "", &ui.FieldError{Field: "login_server", Message: "The box reaches Headscale only through its VPN, which is not up: set up the VPN first (above)."}
		}
		if err := b.mesh.Configure(ctx, next); err != nil {
			return "", meshFieldError(err)
		}
		return "Saved. Headscale answered and took the key; the box is joining the team's network.", nil
	case "test":
		if !ok {
			return "", errors.New("The team mesh is not set up yet.")
		}
		if err := b.mesh.Check(ctx, cur); err != nil {
			return "", meshFieldError(err)
		}
		return "Headscale at " + cur.LoginServer + " answered through the VPN and accepted the API key.", nil
	}
	return "", fmt.Errorf("no such action %q", action)
}

// meshFieldError puts a mesh settings error next to the field it is about.
func meshFieldError(err error) error {
	var fe *ui.FieldError
	if errors.As(err, &fe) {
		return fe
	}
	m := err.Error()
	switch {
	case strings.Contains(m, "API key"):
		return &ui.FieldError{Field: "api_key", Message: sentence(m)}
	}
	return &ui.FieldError{Field: "login_server", Message: sentence(m)}
}

// agoWords says how long ago something was: "just now", "2 minutes ago".
func agoWords(d time.Duration) string {
	if d < time.Second {
		return "just now"
	}
	return ui.Duration(d.Round(time.Second)) + " ago"
}

// sentence makes an error read as a sentence on a page.
func sentence(s string) string {
	s = strings.TrimSpace(s)
	if s == "" {
		return s
	}
	s = strings.ToUpper(s[:1]) + s[1:]
	if !strings.HasSuffix(s, ".") {
		s += "."
	}
	return s
}

func bytesText(n uint64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1f GB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f kB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d bytes", n)
}
