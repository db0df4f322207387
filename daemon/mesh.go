package daemon

import (
	"net/netip"
	"os"
	"path/filepath"

	"github.com/redoubt/redoubt/ui/localapi"
	"github.com/redoubt/redoubt/vpn/egress"
	"github.com/redoubt/redoubt/vpn/mesh"
	"github.com/redoubt/redoubt/vpn/tailnet"
)

// startMesh builds the team mesh (vpn/mesh) and registers it with the
// lifecycle: its node starts when the box is unlocked.
func (b *Box) startMesh(cfg Config) error {
	log := b.log.With("room", "mesh")
	m, err := mesh.New(cfg.Mesh, mesh.Deps{
		Logger:  log,
		Vault:   b.vault,
		Egress:  b.egress(),
		CACert:  func() ([]byte, error) { return os.ReadFile(filepath.Join(b.config().State.Dir, "ca.pem")) },
		BoxName: b.setup.BoxName,
		SetTeam: func(n *tailnet.Node, self netip.Addr, devices []netip.Addr) error {
			if n == nil {
				return b.lan.Load().SetTeam(nil, self, nil)
			}
			return b.lan.Load().SetTeam(n, self, devices)
		},
		Names: func() mesh.Zone {
			if d := b.dns.Load(); d != nil {
				return d.Names()
			}
			return nil
		},
		Direct: func(mark uint32, port uint16) error {
			if b.vpn == nil {
				return nil
			}
			return b.vpn.SetDirect(mark, port)
		},
		OnNode:    b.mountTailnet,
		OnRemoved: b.memberRemoved,
	})
	if err != nil {
		return err
	}
	b.mesh = m
	b.life.Register("mesh", m)
	return nil
}

// egress is the box's way out: the VPN's, or one that refuses.
func (b *Box) egress() egress.Dialer {
	if b.vpn == nil {
		return egress.Closed{Reason: "the box has no VPN"}
	}
	return b.vpn.Dialer()
}

func (b *Box) meshNode() *tailnet.Node {
	if b.mesh == nil {
		return nil
	}
	return b.mesh.Node()
}

// meshStatus is the team mesh for the local API's status.
func (b *Box) meshStatus() *localapi.MeshStatus {
	if b.mesh == nil {
		return nil
	}
	ms := b.mesh.Status()
	hs := ms.Members
	st := &localapi.MeshStatus{Configured: hs.Configured, HeadscaleDetail: hs.Detail, Strict: ms.Strict, LoginServer: ms.LoginServer,
		Node: ms.Node, NodeDetail: ms.NodeDetail, Name: ms.Name, Peers: ms.Peers}
	switch {
	case !hs.Configured:
		st.Headscale = "not configured"
	case hs.KeyRejected:
		st.Headscale = "key rejected"
	case hs.Reachable:
		st.Headscale = "reachable"
	default:
		st.Headscale = "unreachable"
	}
	if !hs.Reachable {
		st.NextTry = hs.NextTry
	}
	for _, a := range ms.Addrs {
		st.Addrs = append(st.Addrs, a.String())
	}
	return st
}

// meshState is the dashboard's team mesh tile.
func (b *Box) meshState() (state, detail string) {
	if b.mesh == nil {
		return "off", ""
	}
	return b.mesh.Summary()
}
