package daemon

import (
	"context"
	"errors"
	"strings"
	"time"

	"github.com/redoubt/redoubt/ui"
	"github.com/redoubt/redoubt/vpn/external"
	"github.com/redoubt/redoubt/vpn/members"
	"github.com/redoubt/redoubt/vpn/mesh"
)

// ownerTeam is the team mesh as the owner's pages manage it.
type ownerTeam Box

func (t *ownerTeam) box() *Box { return (*Box)(t) }

func (t *ownerTeam) m() *members.Manager { return t.box().mesh.Members() }

func (t *ownerTeam) Status() ui.TeamStatus {
	b := t.box()
	ms := t.m().Status()
	st := ui.TeamStatus{Configured: ms.Configured, Reachable: ms.Reachable, Detail: ms.Detail}
	if s, ok, _ := b.mesh.Settings(); ok {
		st.LoginServer = s.LoginServer
	}
	if p, err := t.m().Policy(); err == nil {
		st.ReachEachOther = p.MembersReachEachOther
	}
	st.Detail = sentence(st.Detail)
	if state, detail := b.meshState(); state != "up" && ms.Configured && detail != "" {
		st.Detail = strings.TrimSpace(st.Detail + " The box's node: " + sentence(detail))
	}
	return st
}

func (t *ownerTeam) Configure(ctx context.Context, loginServer, apiKey string) error {
	return t.box().mesh.Configure(ctx, mesh.Settings{LoginServer: loginServer, APIKey: apiKey})
}

func (t *ownerTeam) Members(ctx context.Context) ([]ui.Member, error) {
	ms, err := t.m().Members(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]ui.Member, 0, len(ms))
	for _, m := range ms {
		um := ui.Member{Name: m.Name, Note: m.Note, Created: m.Created}
		if m.Problem != "" {
			um.Note = strings.TrimSpace(um.Note + " (" + m.Problem + ")")
		}
		for _, d := range m.Devices {
			ud := ui.TeamDevice{ID: d.ID, Name: d.Name, OS: d.OS, Online: d.Online, LastSeen: d.LastSeen}
			for _, a := range d.Addrs {
				ud.Addrs = append(ud.Addrs, a.String())
			}
			um.Devices = append(um.Devices, ud)
		}
		out = append(out, um)
	}
	return out, nil
}

func (t *ownerTeam) Pending(ctx context.Context) ([]ui.PendingDevice, error) {
	ps, err := t.m().Pending(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]ui.PendingDevice, 0, len(ps))
	for _, p := range ps {
		out = append(out, ui.PendingDevice{ID: p.ID, Name: p.Name, OS: p.OS, Requested: p.Requested})
	}
	return out, nil
}

func bundle(b members.Bundle) ui.Bundle {
	return ui.Bundle{Member: b.Member, Expires: b.Expires, LoginServer: b.LoginServer, Shell: b.Shell, PowerShell: b.PowerShell,
		QR: b.QR, MobileSteps: b.MobileSteps, CAFingerprint: b.CAFingerprint}
}

// memberNameRule is what a member's name may be, in the pages' words.
const memberNameRule = "Use 1 to 32 lower-case letters, digits and hyphens, starting with a letter and not ending with a hyphen, like “alice” or “field-team-2”."

// teamError says a members' error in the owner's words, next to the field it is
// about when there is one.
func teamError(err error, name string) error {
	switch {
	case err == nil:
		return nil
	case members.ValidateName(name) != nil:
		return &ui.FieldError{Field: "name", Message: memberNameRule}
	case errors.Is(err, members.ErrExists):
		return &ui.FieldError{Field: "name", Message: "There is already a member called “" + name + "” (on the box or on the Headscale server): choose another name."}
	case errors.Is(err, members.ErrNoMember):
		return errors.New("there is no member called “" + name + "”")
	case errors.Is(err, members.ErrNotReady):
		return errors.New("the team mesh is not set up yet: give the box your Headscale server in Settings, Team mesh")
	}
	return err
}

func (t *ownerTeam) Add(ctx context.Context, name, note string) (ui.Bundle, error) {
	if err := members.ValidateName(name); err != nil {
		return ui.Bundle{}, teamError(err, name)
	}
	b, err := t.m().Add(ctx, name, note)
	return bundle(b), teamError(err, name)
}

func (t *ownerTeam) Reissue(ctx context.Context, name string) (ui.Bundle, error) {
	b, err := t.m().Reissue(ctx, name)
	return bundle(b), teamError(err, name)
}

func (t *ownerTeam) Rename(ctx context.Context, old, new string) error {
	if err := members.ValidateName(new); err != nil {
		return errors.New(memberNameRule)
	}
	err := t.m().Rename(ctx, old, new)
	if errors.Is(err, members.ErrExists) {
		return errors.New("there is already a member called “" + new + "”")
	}
	return teamError(err, old)
}

func (t *ownerTeam) Remove(ctx context.Context, name string) error {
	return teamError(t.m().Remove(ctx, name), name)
}

func (t *ownerTeam) AddPending(ctx context.Context, link, name string) error {
	_, err := t.m().AddPending(ctx, link, name)
	return err
}

func (t *ownerTeam) Approve(ctx context.Context, id, member string) error {
	return t.m().Approve(ctx, id, member)
}

func (t *ownerTeam) Reject(ctx context.Context, id string) error { return t.m().Reject(ctx, id) }

func (t *ownerTeam) SetReachEachOther(ctx context.Context, on bool) error {
	p, err := t.m().Policy()
	if err != nil {
		return err
	}
	p.MembersReachEachOther = on
	return t.m().SetPolicy(ctx, p)
}

// meshStep is the setup wizard's team mesh step.
type meshStep Box

func (s *meshStep) ID() string     { return "team" }
func (s *meshStep) Title() string  { return "Team mesh" }
func (s *meshStep) Optional() bool { return true }
func (s *meshStep) Intro() string {
	return "Your team reaches the box's apps from their own devices, from anywhere, over an encrypted network coordinated by your own Headscale server (reached only through the VPN). Give its address and an API key (on the server: headscale apikeys create --expiration 365d). You can also do this later, in Settings."
}
func (s *meshStep) Fields() []ui.Field {
	return []ui.Field{
		{Name: "login_server", Label: "Headscale server", Type: "url", Placeholder: "https://headscale.example.org"},
		{Name: "api_key", Label: "API key", Type: "password", Help: "The box keeps it sealed."},
	}
}
func (s *meshStep) Submit(v map[string]string) error {
	b := (*Box)(s)
	if b.vpn == nil || b.vpn.Status().State != external.StateUp {
		return &ui.FieldError{Field: "login_server", Message: "The box reaches Headscale only through its VPN, which is not up yet: set up the VPN first, or skip this step and do it later."}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 45*time.Second)
	defer cancel()
	err := b.mesh.Configure(ctx, mesh.Settings{LoginServer: strings.TrimSpace(v["login_server"]), APIKey: strings.TrimSpace(v["api_key"])})
	if err != nil {
		var fe *ui.FieldError
		if errors.As(err, &fe) {
			return fe
		}
		return &ui.FieldError{Field: "login_server", Message: err.Error()}
	}
	return nil
}
