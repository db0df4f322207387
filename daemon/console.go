package daemon

import (
	"context"
	"errors"
	"time"

	"github.com/redoubt/redoubt/ui"
	"github.com/redoubt/redoubt/ui/localapi"
	"github.com/redoubt/redoubt/vpn/members"
)

// The team and the settings as the local API (the box's console, `redoubt team`
// and `redoubt settings`) sees them: the same rules and words as the owner's
// pages, through the same code.

// consoleTeam is the team for the local API.
type consoleTeam Box

func (c *consoleTeam) box() *Box { return (*Box)(c) }

// ready refuses while the box cannot manage its team.
func (c *consoleTeam) ready() error {
	b := c.box()
	switch {
	case b.mesh == nil:
		return &localapi.Conflict{Message: "this box runs without a team mesh"}
	case !b.setup.Done():
		return &localapi.Conflict{Message: "the box is not set up yet: finish setup in the browser first"}
	case b.vault.Locked():
		return &localapi.Conflict{Message: "the box is locked: unlock it first (redoubt unlock)"}
	}
	return nil
}

// consoleError turns the pages' errors into the API's.
func consoleError(err error) error {
	var fe *ui.FieldError
	switch {
	case err == nil:
		return nil
	case errors.As(err, &fe):
		return &localapi.FieldError{Field: fe.Field, Message: fe.Message}
	case errors.Is(err, members.ErrNotReady):
		return &localapi.Conflict{Message: "the team mesh is not set up yet: redoubt settings set team.server=URL team.api_key=-"}
	}
	return err
}

func (c *consoleTeam) Team(ctx context.Context) (localapi.Team, error) {
	if err := c.ready(); err != nil {
		return localapi.Team{}, err
	}
	ot := (*ownerTeam)(c.box())
	st := ot.Status()
	t := localapi.Team{Status: localapi.TeamStatus{Configured: st.Configured, LoginServer: st.LoginServer, Reachable: st.Reachable,
		Detail: st.Detail, ReachEachOther: st.ReachEachOther}, Members: []localapi.TeamMember{}}
	if !st.Configured {
		return t, nil
	}
	ms, err := ot.Members(ctx)
	if err != nil {
		return t, consoleError(err)
	}
	for _, m := range ms {
		tm := localapi.TeamMember{Name: m.Name, Note: m.Note, Created: m.Created, Devices: []localapi.TeamDevice{}}
		for _, d := range m.Devices {
			tm.Devices = append(tm.Devices, localapi.TeamDevice{ID: d.ID, Name: d.Name, OS: d.OS, Addrs: d.Addrs, Online: d.Online, LastSeen: d.LastSeen})
		}
		t.Members = append(t.Members, tm)
	}
	// Asking Headscale for the members updated what the box knows of it.
	now := ot.Status()
	t.Status.Reachable, t.Status.Detail = now.Reachable, now.Detail
	return t, nil
}

func invitation(b ui.Bundle) localapi.Invitation {
	return localapi.Invitation{Member: b.Member, Expires: b.Expires, LoginServer: b.LoginServer, Shell: b.Shell, PowerShell: b.PowerShell,
		QR: b.QR, MobileSteps: b.MobileSteps, CAFingerprint: b.CAFingerprint}
}

func (c *consoleTeam) Add(ctx context.Context, name, note string) (localapi.Invitation, error) {
	if err := c.ready(); err != nil {
		return localapi.Invitation{}, err
	}
	b, err := (*ownerTeam)(c.box()).Add(ctx, name, note)
	if err != nil {
		return localapi.Invitation{}, consoleError(err)
	}
	c.box().log.Info("member added from the console", "member", name)
	return invitation(b), nil
}

func (c *consoleTeam) Reissue(ctx context.Context, name string) (localapi.Invitation, error) {
	if err := c.ready(); err != nil {
		return localapi.Invitation{}, err
	}
	b, err := (*ownerTeam)(c.box()).Reissue(ctx, name)
	if err != nil {
		return localapi.Invitation{}, consoleError(err)
	}
	return invitation(b), nil
}

func (c *consoleTeam) Rename(ctx context.Context, old, new string) error {
	if err := c.ready(); err != nil {
		return err
	}
	return consoleError((*ownerTeam)(c.box()).Rename(ctx, old, new))
}

func (c *consoleTeam) Remove(ctx context.Context, name string) error {
	if err := c.ready(); err != nil {
		return err
	}
	return consoleError((*ownerTeam)(c.box()).Remove(ctx, name))
}

func (c *consoleTeam) Pending(ctx context.Context) ([]localapi.PendingDevice, error) {
	if err := c.ready(); err != nil {
		return nil, err
	}
	ps, err := (*ownerTeam)(c.box()).Pending(ctx)
	if err != nil {
		return nil, consoleError(err)
	}
	out := []localapi.PendingDevice{}
	for _, p := range ps {
		out = append(out, localapi.PendingDevice{ID: p.ID, Name: p.Name, Requested: p.Requested})
	}
	return out, nil
}

func (c *consoleTeam) AddPending(ctx context.Context, link, name string) error {
	if err := c.ready(); err != nil {
		return err
	}
	return consoleError((*ownerTeam)(c.box()).AddPending(ctx, link, name))
}

func (c *consoleTeam) Approve(ctx context.Context, id, member string) error {
	if err := c.ready(); err != nil {
		return err
	}
	return consoleError((*ownerTeam)(c.box()).Approve(ctx, id, member))
}

func (c *consoleTeam) Reject(ctx context.Context, id string) error {
	if err := c.ready(); err != nil {
		return err
	}
	return consoleError((*ownerTeam)(c.box()).Reject(ctx, id))
}

func (c *consoleTeam) SetMesh(ctx context.Context, s localapi.MeshSettings) error {
	if err := c.ready(); err != nil {
		return err
	}
	_, err := meshSection{c.box()}.Submit(ctx, "save", map[string]string{"login_server": s.LoginServer, "api_key": s.APIKey})
	return consoleError(err)
}

func (c *consoleTeam) TestMesh(ctx context.Context) (string, error) {
	if err := c.ready(); err != nil {
		return "", err
	}
	msg, err := meshSection{c.box()}.Submit(ctx, "test", nil)
	return msg, consoleError(err)
}

// consoleSettings are the owner's settings for the local API.
type consoleSettings Box

func (c *consoleSettings) box() *Box { return (*Box)(c) }

func (c *consoleSettings) Settings() localapi.Settings {
	b := c.box()
	s := (*ownerBox)(b).Settings()
	out := localapi.Settings{BoxName: s.BoxName, LANAddress: s.LANAddress, LeaseTime: s.LeaseTime, Reservations: []localapi.Reservation{}}
	if d, err := time.ParseDuration(s.LeaseTime); err == nil {
		out.LeaseTime = ui.ShortDuration(d)
	}
	for _, r := range s.Reservations {
		out.Reservations = append(out.Reservations, localapi.Reservation{MAC: r.MAC, IP: r.IP})
	}
	if b.vpn != nil {
		st := b.vpn.Status()
		out.VPN = localapi.VPNSummary{State: st.State, Reason: st.Reason, Endpoint: st.Endpoint, Exit: st.Exit, FromFile: st.FromFile}
	} else {
		out.VPN.State = "off"
	}
	if b.mesh != nil {
		st := (*ownerTeam)(b).Status()
		if b.vault.Locked() {
			st.LoginServer = ""
		}
		out.Team = localapi.TeamStatus{Configured: st.Configured, LoginServer: st.LoginServer, Reachable: st.Reachable, Detail: st.Detail, ReachEachOther: st.ReachEachOther}
	}
	return out
}

func (c *consoleSettings) Change(ch localapi.SettingsChange) (localapi.Settings, error) {
	b := c.box()
	if !b.setup.Done() {
		return localapi.Settings{}, &localapi.Conflict{Message: "the box is not set up yet: finish setup in the browser first"}
	}
	if b.ui == nil {
		return localapi.Settings{}, &localapi.Conflict{Message: "the owner's pages are not running"}
	}
	next := (*ownerBox)(b).Settings()
	if ch.BoxName != nil {
		next.BoxName = *ch.BoxName
	}
	if ch.LANAddress != nil {
		next.LANAddress = *ch.LANAddress
	}
	if ch.LeaseTime != nil {
		next.LeaseTime = *ch.LeaseTime
	}
	if ch.Reservations != nil {
		next.Reservations = nil
		for _, r := range *ch.Reservations {
			next.Reservations = append(next.Reservations, ui.Reservation{MAC: r.MAC, IP: r.IP})
		}
	}
	if err := b.ui.ApplySettings(next); err != nil {
		return localapi.Settings{}, consoleError(err)
	}
	b.log.Info("settings changed from the console")
	return c.Settings(), nil
}
