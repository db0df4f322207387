package daemon

import (
	"cmp"
	"errors"
	"path/filepath"
	"slices"
	"strconv"

	"github.com/redoubt/redoubt/apps"
	"github.com/redoubt/redoubt/apps/builtin"
	"github.com/redoubt/redoubt/apps/home"
	"github.com/redoubt/redoubt/apps/host"
	"github.com/redoubt/redoubt/ui"
	"github.com/redoubt/redoubt/vpn/members"
	"github.com/redoubt/redoubt/vpn/tailnet"
)

// startApps builds the apps' host and registers it with the lifecycle after
// the mesh, so apps stop before the node they are served on.
func (b *Box) startApps(cfg Config) error {
	h, err := host.New(cfg.Apps, host.Deps{
		Logger:  b.log.With("room", "apps"),
		Vault:   b.vault,
		Builtin: builtin.Apps(builtin.Deps{Home: b.homeInfo()}),
		// state.dir/apps/<id>: each app's data; /run/redoubt/apps: sockets.
		StateDir: filepath.Join(cfg.State.Dir, "apps"),
		RunDir:   filepath.Join(filepath.Dir(cfg.API.Socket), "apps"),
		BoxNames: b.appBoxNames,
		Domain:   func() string { return b.dnsConfig(b.config()).Domain },
		AdminURL: func() string {
			if n := b.uiNames(); len(n) > 0 {
				return "https://" + n[0]
			}
			return "https://" + b.lan.Load().Addr().String()
		},
		Names: func() host.Zone {
			if d := b.dns.Load(); d != nil {
				return d.Names()
			}
			return nil
		},
		Directory: membersDirectory{b},
		Egress:    b.egress(),
		Audit:     b.recorder(),
	})
	if err != nil {
		return err
	}
	b.apps = h
	b.life.Register("apps", h)
	return nil
}

// appBoxNames are the box's names an app's LAN name goes under: the owner's
// name for the box, and the default.
func (b *Box) appBoxNames() []string {
	c := b.dnsConfig(b.config())
	return slices.Compact([]string{c.Name, "redoubt"})
}

// teamBoxName is the box's name as the members' page shows it.
func (b *Box) teamBoxName() string { return cmp.Or(b.setup.BoxName(), "redoubt") }

// membersApps are the apps the members' page offers: those published on the
// tailnet, with their URLs there.
func (b *Box) membersApps() []home.Link {
	var out []home.Link
	for _, st := range b.apps.List() {
		if st.ID == "home" {
			continue
		}
		for _, c := range st.Connect {
			if c.Network == apps.Tailnet {
				out = append(out, home.Link{Name: st.Name + " · " + c.Label, URL: c.URL, What: st.Description})
			}
		}
	}
	return out
}

// mountTailnet serves the apps, and the stores kept for teammates' backups,
// on the node (nil: it stopped).
func (b *Box) mountTailnet(n *tailnet.Node) {
	b.servePeers(n)
	if b.apps == nil {
		return
	}
	if n == nil {
		b.apps.MountTailnet(nil)
		return
	}
	b.apps.MountTailnet(n)
}

// membersDirectory is the team as the apps' host looks callers up.
type membersDirectory struct{ b *Box }

func (d membersDirectory) Members() ([]host.DirectoryEntry, error) {
	if d.b.mesh == nil {
		return nil, nil
	}
	es, err := d.b.mesh.Members().Directory()
	if err != nil {
		return nil, err
	}
	out := make([]host.DirectoryEntry, len(es))
	for i, e := range es {
		out[i] = host.DirectoryEntry{ID: e.ID, Name: e.Name, UserID: e.UserID}
	}
	return out, nil
}

// memberRemoved ends a removed member's app sessions, and forgets their
// devices' keys as the audit log's witnesses.
func (b *Box) memberRemoved(m members.Member) {
	if b.apps != nil {
		b.apps.MemberRemoved(m.ID, m.Name)
	}
	if b.audit != nil {
		b.audit.RemoveWitnesses(m.Name)
	}
}

// appsStep is the setup wizard's step choosing which apps start.
type appsStep struct{ b *Box }

func (s appsStep) ID() string     { return "apps" }
func (s appsStep) Title() string  { return "Apps" }
func (s appsStep) Optional() bool { return true }
func (s appsStep) Intro() string {
	return "The services the box hosts for you and your team. Choose which start now and whenever the box is unlocked; you can change this later on the Apps page."
}

func (s appsStep) Fields() []ui.Field {
	var out []ui.Field
	for _, st := range s.b.apps.List() {
		info, err := s.b.apps.Info(st.ID)
		if err != nil {
			continue
		}
		def, _ := info.Manifest.Option(apps.OptAutostart)
		f := ui.Field{Name: "start-" + st.ID, Type: "checkbox", Label: "Start " + st.Name, Help: st.Description, Optional: true}
		if def.Default == "true" {
			f.Value = "on"
		}
		out = append(out, f)
	}
	return out
}

// Submit sets each app's autostart option and starts the chosen ones now.
func (s appsStep) Submit(values map[string]string) error {
	var errs []error
	for _, st := range s.b.apps.List() {
		on := values["start-"+st.ID] == "on"
		if _, err := s.b.apps.SetOption(st.ID, apps.OptAutostart, strconv.FormatBool(on)); err != nil {
			errs = append(errs, err)
			continue
		}
		if on {
			if err := s.b.apps.Enable(st.ID); err != nil {
				errs = append(errs, err)
			}
		} else {
			s.b.apps.Disable(st.ID)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return &ui.FieldError{Field: "form", Message: err.Error()}
	}
	return nil
}
