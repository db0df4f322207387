package daemon

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/redoubt/redoubt/apps/home"
	"github.com/redoubt/redoubt/dns/plugin/localnames"
	"github.com/redoubt/redoubt/ui"
	"github.com/redoubt/redoubt/ui/localapi"
	"github.com/redoubt/redoubt/ui/pki"
	"github.com/redoubt/redoubt/vault"
	"github.com/redoubt/redoubt/vpn/egress"
	"github.com/redoubt/redoubt/vpn/headscale"
	"github.com/redoubt/redoubt/vpn/members"
	"github.com/redoubt/redoubt/vpn/tailnet"
)

// Where the owner's team mesh settings are kept in the vault.
const (
	meshBucket = "mesh"
	meshKey    = "settings"
	// teamSource is the DNS zone's source for team devices' names
	// (<device>.team.<domain>).
	teamSource = "tailnet"
	teamLabel  = "team"
)

// MeshConfig is the [mesh] section: how the box's tailnet node runs. Where the
// team's Headscale is, and the API key, the owner gives in the setup wizard or the
// settings (kept in the vault).
type MeshConfig struct {
	// Strict relays every tailnet packet through the VPN (default true): the
	// local network sees nothing but the VPN's flow. Off, WireGuard may take
	// direct paths over the WAN.
	Strict *bool `toml:"strict"`
	// Port is the UDP port for direct paths when strict is off (default 41641).
	Port uint16 `toml:"port"`
}

// StrictOn reports the effective Strict setting.
func (c MeshConfig) StrictOn() bool { return c.Strict == nil || *c.Strict }

// meshSettings are the owner's: the team's Headscale and its API key.
type meshSettings struct {
	LoginServer string `json:"login_server"`
	APIKey      string `json:"api_key"`
}

// Validate names the bad field.
func (s meshSettings) Validate() error {
	u, err := url.Parse(s.LoginServer)
	if err != nil || u.Host == "" || u.Scheme != "https" || u.User != nil || u.RawQuery != "" {
		return fmt.Errorf("login server %q: want the Headscale server's https:// address, such as https://headscale.example.org", s.LoginServer)
	}
	if len(s.APIKey) < 8 || len(s.APIKey) > 512 || strings.ContainsAny(s.APIKey, " \t\r\n") {
		return errors.New("API key: paste the key `headscale apikeys create` printed, on one line")
	}
	return nil
}

// mesh is the team mesh part of the box: the members' manager (always there,
// "not set up" until the owner gives Headscale's address and key), and, while
// the box is unlocked and the mesh set up, the box's tailnet node.
type mesh struct {
	cfg     MeshConfig
	members *members.Manager
	proxy   *tailnet.Proxy

	mu     sync.Mutex
	node   *tailnet.Node
	home   []*http.Server // the members' page: https, and http leading to it
	stop   func()
	reason string // why the node is not running
}

// startMesh builds the members' manager and the proxy that carries tailscale's
// connections into the VPN. The node itself starts when the box is unlocked.
func (b *Box) startMesh(cfg Config) error {
	m, err := members.New(members.Config{}, members.Deps{
		Store:  b.vault,
		Logger: b.log.With("room", "mesh"),
		CACert: func() ([]byte, error) { return os.ReadFile(filepath.Join(b.config().State.Dir, "ca.pem")) },
		AppsURL: func() string {
			if n := b.meshNode(); n != nil {
				if st := n.Status(); st.Name != "" {
					return "https://" + st.Name + "/"
				}
			}
			return ""
		},
		OnRemoved: func(mem members.Member) {
			b.log.Info("member removed; their devices can no longer reach the box", "member", mem.Name, "devices", len(mem.Devices))
		},
		DeviceOS: b.deviceOS,
	})
	if err != nil {
		return err
	}
	p, err := tailnet.StartProxy(b.egress(), b.log.With("room", "mesh"))
	if err != nil {
		return err
	}
	if err := p.Install(); err != nil {
		p.Close()
		return fmt.Errorf("routing tailscale through the VPN: %w", err)
	}
	b.mesh = &mesh{cfg: cfg.Mesh, members: m, proxy: p, reason: "the box is locked"}
	m.Start() // Headscale's status, checked with backoff once the mesh is set up
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
	b.mesh.mu.Lock()
	defer b.mesh.mu.Unlock()
	return b.mesh.node
}

// deviceOS is a peer's system from the tailnet's peer list.
func (b *Box) deviceOS(nodeKey string) string {
	n := b.meshNode()
	if n == nil {
		return ""
	}
	for _, p := range n.Peers() {
		if p.Key == nodeKey {
			return p.OS
		}
	}
	return ""
}

// loadMeshSettings reads the owner's mesh settings from the vault.
func (b *Box) loadMeshSettings() (meshSettings, bool, error) {
	var s meshSettings
	raw, err := b.vault.Get(meshBucket, meshKey)
	if errors.Is(err, vault.ErrNotFound) {
		return s, false, nil
	}
	if err != nil {
		return s, false, err
	}
	if err := json.Unmarshal(raw, &s); err != nil {
		return s, false, fmt.Errorf("the team mesh settings in the vault are damaged: %w", err)
	}
	return s, true, nil
}

// SetMeshSettings checks, keeps and applies the owner's mesh settings: the
// Headscale address and API key are tried before they are kept.
func (b *Box) SetMeshSettings(ctx context.Context, s meshSettings) error {
	if err := b.checkMeshSettings(ctx, s); err != nil {
		return err
	}
	raw, _ := json.Marshal(s)
	if err := b.vault.Put(meshBucket, meshKey, raw); err != nil {
		return err
	}
	b.log.Info("team mesh set up", "login_server", s.LoginServer)
	return b.meshUp()
}

// checkMeshSettings tries the owner's Headscale address and API key, through the
// VPN, without keeping them.
func (b *Box) checkMeshSettings(ctx context.Context, s meshSettings) error {
	if err := s.Validate(); err != nil {
		return err
	}
	hs, err := headscale.New(s.LoginServer, s.APIKey, egress.HTTPClient(b.egress(), 20*time.Second))
	if err != nil {
		return err
	}
	if err := hs.Health(ctx); err != nil {
		return fmt.Errorf("the box cannot use this Headscale: %w", err)
	}
	if _, err := hs.ListUsers(ctx); err != nil {
		return fmt.Errorf("Headscale refused the API key: %w", err)
	}
	return nil
}

// meshUp applies the mesh settings in the vault: the members' manager gets its
// Headscale client, and the box's node starts (or restarts with new settings).
// It needs the vault open.
func (b *Box) meshUp() error {
	if b.mesh == nil || b.vault.Locked() {
		return nil
	}
	s, ok, err := b.loadMeshSettings()
	if err != nil {
		return err
	}
	m := b.mesh
	if !ok {
		m.members.SetHeadscale(nil)
		b.meshDown("the team mesh is not set up")
		return nil
	}
	hs, err := headscale.New(s.LoginServer, s.APIKey, egress.HTTPClient(b.egress(), 20*time.Second))
	if err != nil {
		return err
	}
	name := b.setup.BoxName()
	if name == "" {
		name = "redoubt"
	}
	if err := m.members.Reconfig(members.Config{LoginServer: s.LoginServer, BoxName: name}); err != nil {
		return err
	}
	m.members.SetHeadscale(hs)
	b.meshDown("restarting with new settings")

	ctx, cancel := context.WithTimeout(context.Background(), 45*time.Second)
	defer cancel()
	node, err := tailnet.Start(ctx, tailnet.Config{ControlURL: s.LoginServer, Hostname: name, Strict: m.cfg.Strict, Port: m.cfg.Port},
		tailnet.Deps{
			Logger: b.log.With("room", "mesh"),
			Store:  b.vault,
			AuthKey: func(ctx context.Context) (string, error) {
				k, _, err := m.members.BoxKey(ctx)
				return k, err
			},
		})
	if err != nil {
		m.mu.Lock()
		m.reason = err.Error()
		m.mu.Unlock()
		return err
	}
	if b.vpn != nil {
		// Direct paths for the node's own socket when strict mode is off;
		// closed in strict mode.
		if err := b.vpn.SetDirect(node.DirectPath()); err != nil {
			b.log.Warn("the team's direct paths stay closed", "err", err)
		}
	}
	servers, err := b.serveMembers(node, name)
	if err != nil {
		node.Close()
		return fmt.Errorf("serving the members' page: %w", err)
	}

	watchCtx, stopWatch := context.WithCancel(context.Background())
	go b.followTeam(watchCtx, node)
	m.mu.Lock()
	m.node, m.home, m.reason = node, servers, ""
	m.stop = stopWatch
	m.mu.Unlock()
	if b.vault.Locked() {
		// Locked while the node was joining: Locked came too early.
		b.meshDown("the box is locked")
		m.members.SetHeadscale(nil)
	}
	return nil
}

// serveMembers serves the members' page on the box's tailnet address: HTTPS on
// 443, with a certificate from the box's CA (the enrollment scripts install it on
// members' devices) for the box's tailnet names and addresses, and plain HTTP on
// 80 leading there. The owner's pages are never served on the tailnet.
func (b *Box) serveMembers(node *tailnet.Node, name string) ([]*http.Server, error) {
	ln, err := node.Listen("tcp", ":443")
	if err != nil {
		return nil, err
	}
	ln80, err := node.Listen("tcp", ":80")
	if err != nil {
		ln.Close()
		return nil, err
	}
	log := b.log.With("room", "apps")
	page := ui.Server(home.Handler(home.Info{BoxName: name}, log), log)
	certs := &tailnetCerts{box: b, node: node}
	go page.Serve(tls.NewListener(ln, &tls.Config{MinVersion: tls.VersionTLS12, GetCertificate: certs.get}))
	toHTTPS := ui.Server(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "https://"+r.Host+r.URL.RequestURI(), http.StatusMovedPermanently)
	}), log)
	go toHTTPS.Serve(ln80)
	return []*http.Server{page, toHTTPS}, nil
}

// tailnetCerts issues the members' page's certificate from the box's CA when
// first asked, and again when the box's tailnet names or addresses change.
type tailnetCerts struct {
	box  *Box
	node *tailnet.Node

	mu   sync.Mutex
	cert *tls.Certificate
}

func (c *tailnetCerts) get(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	st := c.node.Status()
	var names []string
	for _, n := range []string{st.Name, st.FQDN} {
		if n != "" && !slices.Contains(names, n) {
			names = append(names, n)
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if !pki.NeedsRenewal(c.cert, names, st.Addrs, time.Now()) {
		return c.cert, nil
	}
	ca, err := pki.LoadCA(c.box.vault)
	if err != nil {
		return nil, fmt.Errorf("the box's CA: %w", err)
	}
	certPEM, keyPEM, err := ca.Issue(names, st.Addrs)
	if err != nil {
		return nil, err
	}
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return nil, err
	}
	c.cert = &cert
	return c.cert, nil
}

// meshDown stops the box's node (its state stays in the vault).
func (b *Box) meshDown(reason string) {
	if b.mesh == nil {
		return
	}
	m := b.mesh
	m.mu.Lock()
	node, servers, stop := m.node, m.home, m.stop
	m.node, m.home, m.stop, m.reason = nil, nil, nil, reason
	m.mu.Unlock()
	if stop != nil {
		stop()
	}
	for _, srv := range servers {
		srv.Close()
	}
	if b.vpn != nil {
		b.vpn.SetDirect(0, 0)
	}
	if node != nil {
		node.Close()
	}
	b.lan.Load().SetTeam(nil, netip.Addr{}, nil)
	if b.dns.Load() != nil {
		b.dns.Load().Names().Clear(teamSource)
	}
}

// followTeam keeps the laptop's way to the team and the team's names in DNS in
// step with the tailnet's peers.
func (b *Box) followTeam(ctx context.Context, node *tailnet.Node) {
	changes, cancel := node.Changes()
	defer cancel()
	t := time.NewTicker(5 * time.Second)
	defer t.Stop()
	for {
		b.syncTeam(node)
		select {
		case <-ctx.Done():
			return
		case <-changes:
		case <-t.C:
		}
	}
}

func (b *Box) syncTeam(node *tailnet.Node) {
	st := node.Status()
	var self netip.Addr
	for _, a := range st.Addrs {
		if a.Is4() {
			self = a
		}
	}
	var devices []netip.Addr
	names := map[string][]netip.Addr{}
	for _, p := range node.Peers() {
		devices = append(devices, p.Addrs...)
		if localnames.CheckLabel(p.Name) == nil {
			names[p.Name+"."+teamLabel] = p.Addrs
		}
	}
	if err := b.lan.Load().SetTeam(node, self, devices); err != nil {
		b.log.Warn("updating the way to the team", "err", err)
	}
	if b.dns.Load() == nil {
		return
	}
	zone := b.dns.Load().Names()
	for _, r := range zone.Records() {
		if r.Source != teamSource {
			continue
		}
		rel := strings.TrimSuffix(r.Name, "."+zone.Domain())
		if _, ok := names[rel]; !ok {
			zone.Set(teamSource, rel, nil)
		}
	}
	for n, addrs := range names {
		if err := zone.Set(teamSource, n, addrs); err != nil {
			b.log.Debug("naming a team device", "name", n, "err", err)
		}
	}
}

// closeMesh stops everything of the mesh (daemon shutdown).
func (b *Box) closeMesh() {
	if b.mesh == nil {
		return
	}
	b.meshDown("the box is stopping")
	b.mesh.members.Close()
	b.mesh.proxy.Close()
}

// meshStatus is the team mesh for the local API's status.
func (b *Box) meshStatus() *localapi.MeshStatus {
	if b.mesh == nil {
		return nil
	}
	ms := b.mesh.members.Status()
	st := &localapi.MeshStatus{Configured: ms.Configured, HeadscaleDetail: ms.Detail, Strict: b.mesh.cfg.StrictOn(), Node: "off"}
	switch {
	case !ms.Configured:
		st.Headscale = "not configured"
	case ms.KeyRejected:
		st.Headscale = "key rejected"
	case ms.Reachable:
		st.Headscale = "reachable"
	default:
		st.Headscale = "unreachable"
	}
	if !ms.Reachable {
		st.NextTry = ms.NextTry
	}
	if !b.vault.Locked() {
		if s, ok, _ := b.loadMeshSettings(); ok {
			st.LoginServer = s.LoginServer
		}
	}
	b.mesh.mu.Lock()
	node, reason := b.mesh.node, b.mesh.reason
	b.mesh.mu.Unlock()
	if node == nil {
		st.NodeDetail = reason
		if b.vault.Locked() {
			st.NodeDetail = "the box is locked: unlock it to join the team mesh"
		}
		return st
	}
	ns := node.Status()
	st.Node, st.NodeDetail, st.Name, st.Peers = ns.State, ns.Detail, ns.Name, ns.Peers
	for _, a := range ns.Addrs {
		st.Addrs = append(st.Addrs, a.String())
	}
	return st
}

// meshState is the dashboard's team mesh tile.
func (b *Box) meshState() (state, detail string) {
	if b.mesh == nil {
		return "off", ""
	}
	ms := b.mesh.members.Status()
	if !ms.Configured {
		return "not configured", "No team yet: set up the team mesh in the settings."
	}
	b.mesh.mu.Lock()
	node, reason := b.mesh.node, b.mesh.reason
	b.mesh.mu.Unlock()
	if node == nil {
		return "down", reason
	}
	st := node.Status()
	d := st.Detail
	if st.State == "up" {
		d = fmt.Sprintf("%s in the tailnet, %d team device(s)", st.Name, st.Peers)
		if st.Strict {
			d += ", all through the VPN"
		}
	}
	if !ms.Reachable {
		d += ". Headscale: " + ms.Detail
	}
	return st.State, d
}
