package host

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/redoubt/redoubt/apps"
	"github.com/redoubt/redoubt/ui/pki"
	"github.com/redoubt/redoubt/vpn/tailnet"
)

// LAN is the LAN port as the host uses it (datapath/lan.LAN).
type LAN interface {
	Addr() netip.Addr
	ListenTCP(port uint16) (net.Listener, error)
	ListenUDP(port uint16) (net.PacketConn, error)
}

// Tailnet is the box's tailnet node as the host uses it (vpn/tailnet.Node).
type Tailnet interface {
	Listen(network, addr string) (net.Listener, error)
	ListenPacket(network, addr string) (net.PacketConn, error)
	WhoIs(ctx context.Context, remote netip.AddrPort) (tailnet.Identity, error)
	Status() tailnet.Status
	Peers() []tailnet.Peer
}

// networks is where the apps are served: the LAN, the tailnet, the box.
type networks struct {
	h                       *Host
	lanSrv, tailSrv, boxSrv *http.Server

	mu       sync.Mutex
	lan      *lanMount
	tail     *tailMount
	box      map[string]net.Listener // app id → its Unix socket
	conns    map[*trackedConn]struct{}
	listens  map[swapKey]*swapListener
	packets  map[swapKey]*swapPacketConn
	lanCerts map[string]*tls.Certificate
	tailCert *pki.Issuer
}

type lanMount struct {
	lan   LAN
	front *front
	extra map[swapKey]io.Closer
}

type tailMount struct {
	node     Tailnet
	web      map[string]net.Listener // app id → its web listener
	redirect *http.Server
	extra    map[swapKey]io.Closer
}

// swapKey names one of an app's listeners on one network.
type swapKey struct {
	app, name string
	network   apps.Network
}

func newNetworks(h *Host) *networks {
	n := &networks{h: h, box: map[string]net.Listener{}, conns: map[*trackedConn]struct{}{},
		listens: map[swapKey]*swapListener{}, packets: map[swapKey]*swapPacketConn{}, lanCerts: map[string]*tls.Certificate{}}
	n.lanSrv = n.server(apps.LAN)
	n.tailSrv = n.server(apps.Tailnet)
	n.boxSrv = n.server(apps.Box)
	n.tailCert = &pki.Issuer{Store: h.d.Vault, Identity: n.tailIdentity}
	n.mountBox()
	return n
}

// server is the HTTP server of one network. Timeouts bound slow clients'
// headers; bodies (uploads of gigabytes) and answers (downloads, live
// feeds) take as long as they take.
func (n *networks) server(network apps.Network) *http.Server {
	return &http.Server{
		Handler:           http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { n.h.serve(w, r) }),
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    32 << 10,
		ErrorLog:          slog.NewLogLogger(n.h.log.Handler(), slog.LevelDebug),
		ConnContext: func(ctx context.Context, c net.Conn) context.Context {
			if tc, ok := c.(*tls.Conn); ok {
				c = tc.NetConn()
			}
			if t, ok := c.(*trackedConn); ok {
				return context.WithValue(ctx, connKey{}, t.info)
			}
			return ctx
		},
	}
}

// close stops serving on every network.
func (n *networks) close() {
	n.UnmountTailnet()
	n.unmountLAN()
	n.mu.Lock()
	for id, ln := range n.box {
		ln.Close()
		os.Remove(n.boxSocket(id))
	}
	n.mu.Unlock()
	for _, s := range []*http.Server{n.lanSrv, n.tailSrv, n.boxSrv} {
		s.Close()
	}
}

// connKey carries a connection's connInfo in its requests' contexts.
type connKey struct{}

// connInfo is what the host knows about a connection to an app.
type connInfo struct {
	network apps.Network
	conn    *trackedConn
	remote  netip.AddrPort
	fixed   *instance // the app of the listener (tailnet, box)

	mu      sync.Mutex
	lanApp  *instance // LAN: the app its TLS server name named
	whois   bool
	ident   tailnet.Identity
	err     error
	member  string // the member's ID, once known
	removed bool
}

func (c *connInfo) app() *instance {
	if c.fixed != nil {
		return c.fixed
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.lanApp
}

func (c *connInfo) memberID() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.member
}

// trackedConn is a connection to an app the host can close: when the app
// stops, the box is locked, or the member it belongs to is removed.
type trackedConn struct {
	net.Conn
	n    *networks
	info *connInfo
	once sync.Once
}

func (t *trackedConn) Close() error {
	t.once.Do(func() {
		t.n.mu.Lock()
		delete(t.n.conns, t)
		t.n.mu.Unlock()
	})
	return t.Conn.Close()
}

// trackListener wraps accepted connections in trackedConns.
type trackListener struct {
	net.Listener
	n       *networks
	network apps.Network
	app     *instance
}

func (l *trackListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	t := &trackedConn{Conn: c, n: l.n}
	t.info = &connInfo{network: l.network, conn: t, fixed: l.app}
	if ap, err := netip.ParseAddrPort(c.RemoteAddr().String()); err == nil {
		t.info.remote = netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
	}
	l.n.mu.Lock()
	l.n.conns[t] = struct{}{}
	l.n.mu.Unlock()
	return t, nil
}

// closeConns closes the connections pred picks, and says how many.
func (n *networks) closeConns(pred func(*connInfo) bool) int {
	n.mu.Lock()
	var picked []*trackedConn
	for c := range n.conns {
		if pred(c.info) {
			picked = append(picked, c)
		}
	}
	n.mu.Unlock()
	for _, c := range picked {
		c.Close()
	}
	return len(picked)
}

// --- the LAN ---

// MountLAN serves the apps on the LAN port l: https is its tcp/443
// listener, which the host splits by TLS server name; what is not for an app
// comes out of the returned listener, for the owner's pages. The apps' names
// go into the box's DNS. Called again after the LAN moved, it replaces the
// previous mount.
func (h *Host) MountLAN(l LAN, https net.Listener) net.Listener {
	n := h.net
	n.unmountLAN()
	f := newFront(https, func(name string) bool { return h.appForHost(name) != nil })
	tlsLn := tls.NewListener(&trackListener{Listener: f.apps, n: n, network: apps.LAN},
		&tls.Config{MinVersion: tls.VersionTLS12, GetCertificate: n.lanCertificate, NextProtos: []string{"h2", "http/1.1"}})
	n.mu.Lock()
	n.lan = &lanMount{lan: l, front: f, extra: map[swapKey]io.Closer{}}
	n.mu.Unlock()
	go n.lanSrv.Serve(tlsLn)
	h.publishNames()
	for _, in := range h.apps {
		n.publish(in)
	}
	return f.admin
}

func (n *networks) unmountLAN() {
	n.mu.Lock()
	m := n.lan
	n.lan = nil
	n.mu.Unlock()
	if m == nil {
		return
	}
	m.front.close()
	n.dropExtra(m.extra)
	n.closeConns(func(c *connInfo) bool { return c.network == apps.LAN })
}

// Refresh follows a change of the box's names: the apps' LAN names in DNS and
// their certificates.
func (h *Host) Refresh() {
	h.publishNames()
	h.net.renewCerts()
}

// publishNames names every app that may be served on the LAN in the box's
// DNS: <id>.<box name> for each of the box's names.
func (h *Host) publishNames() {
	if h.d.Names == nil {
		return
	}
	z := h.d.Names()
	if z == nil {
		return
	}
	z.Clear(dnsSource)
	h.net.mu.Lock()
	m := h.net.lan
	h.net.mu.Unlock()
	if m == nil {
		return
	}
	addr := m.lan.Addr()
	for _, in := range h.apps {
		if !in.m.Exposed(apps.LAN) {
			continue
		}
		if _, ok := in.m.Web(); !ok {
			continue
		}
		for _, b := range h.d.BoxNames() {
			if err := z.Set(dnsSource, in.m.ID+"."+b, []netip.Addr{addr}); err != nil {
				h.log.Warn("naming an app in DNS", "app", in.m.ID, "err", err)
			}
		}
	}
}

// lanHosts are an app's LAN host names, the first the one to show.
func (h *Host) lanHosts(id string) []string {
	var out []string
	dom := strings.TrimSuffix(h.d.Domain(), ".")
	for _, b := range h.d.BoxNames() {
		name := strings.ToLower(id + "." + b + "." + dom)
		if !slices.Contains(out, name) {
			out = append(out, name)
		}
	}
	return out
}

// appForHost is the app whose LAN name host is (port and case ignored).
func (h *Host) appForHost(host string) *instance {
	if hh, _, err := net.SplitHostPort(host); err == nil {
		host = hh
	}
	host = strings.ToLower(strings.TrimSuffix(host, "."))
	id, _, ok := strings.Cut(host, ".")
	if !ok {
		return nil
	}
	in := h.apps[id]
	if in == nil || !in.m.Exposed(apps.LAN) || !slices.Contains(h.lanHosts(id), host) {
		return nil
	}
	return in
}

// PlainHTTP wraps the owner's pages on the LAN's port 80: a request for an
// app's name is sent to its HTTPS origin.
func (h *Host) PlainHTTP(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if in := h.appForHost(r.Host); in != nil {
			http.Redirect(w, r, "https://"+h.lanHosts(in.m.ID)[0]+r.URL.RequestURI(), http.StatusMovedPermanently)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// dropExtra takes the sockets of a network going away from under the apps'
// listeners, which wait for the next mount.
func (n *networks) dropExtra(extra map[swapKey]io.Closer) {
	n.mu.Lock()
	defer n.mu.Unlock()
	for k, c := range extra {
		if s := n.listens[k]; s != nil {
			s.set(nil)
		}
		if p := n.packets[k]; p != nil {
			p.set(nil)
		}
		c.Close()
	}
}

// --- the tailnet ---

// MountTailnet serves the published apps on the box's tailnet node (nil
// unmounts: the node stopped). The daemon calls it from the mesh's OnNode.
func (h *Host) MountTailnet(t Tailnet) {
	n := h.net
	n.UnmountTailnet()
	if t == nil {
		return
	}
	m := &tailMount{node: t, web: map[string]net.Listener{}, extra: map[swapKey]io.Closer{}}
	for _, in := range h.apps {
		if w, ok := in.m.Web(); ok && w.Port == 443 && in.m.Exposed(apps.Tailnet) {
			// Plain HTTP on the node's name leads to the app on 443 (the
			// members' page).
			if ln, err := t.Listen("tcp", ":80"); err == nil {
				m.redirect = &http.Server{ReadHeaderTimeout: 10 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					http.Redirect(w, r, "https://"+r.Host+r.URL.RequestURI(), http.StatusMovedPermanently)
				})}
				go m.redirect.Serve(ln)
			}
		}
	}
	n.mu.Lock()
	n.tail = m
	n.mu.Unlock()
	for _, in := range h.apps {
		n.publish(in)
	}
}

// UnmountTailnet stops serving on the node.
func (n *networks) UnmountTailnet() {
	n.mu.Lock()
	m := n.tail
	n.tail = nil
	n.mu.Unlock()
	if m == nil {
		return
	}
	if m.redirect != nil {
		m.redirect.Close()
	}
	for _, ln := range m.web {
		ln.Close()
	}
	n.dropExtra(m.extra)
	n.closeConns(func(c *connInfo) bool { return c.network == apps.Tailnet })
	n.tailCert.Forget()
}

func (n *networks) tailIdentity() ([]string, []netip.Addr) {
	n.mu.Lock()
	m := n.tail
	n.mu.Unlock()
	if m == nil {
		return nil, nil
	}
	st := m.node.Status()
	return []string{st.Name, st.FQDN}, st.Addrs
}

func (n *networks) tailnetPeers() []tailnet.Peer {
	n.mu.Lock()
	m := n.tail
	n.mu.Unlock()
	if m == nil {
		return nil
	}
	return m.node.Peers()
}

// whois asks the node who is behind a tailnet connection, once.
func (n *networks) whois(c *connInfo) (tailnet.Identity, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.whois {
		return c.ident, c.err
	}
	n.mu.Lock()
	m := n.tail
	n.mu.Unlock()
	if m == nil {
		return tailnet.Identity{}, fmt.Errorf("the box's node is not running")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c.ident, c.err = m.node.WhoIs(ctx, c.remote)
	c.whois = true
	return c.ident, c.err
}

// --- the box ---

// boxSocket is where an app exposed on the box listens.
func (n *networks) boxSocket(id string) string { return filepath.Join(n.h.d.RunDir, id+".sock") }

// mountBox opens the Unix sockets of the apps exposed on the box (root
// only: the directory and sockets are 0700 and 0600).
func (n *networks) mountBox() {
	if n.h.d.RunDir == "" {
		return
	}
	for _, in := range n.h.apps {
		if !in.m.Exposed(apps.Box) {
			continue
		}
		if _, ok := in.m.Web(); !ok {
			continue
		}
		if err := os.MkdirAll(n.h.d.RunDir, 0o700); err != nil {
			n.h.log.Warn("the apps' socket directory", "err", err)
			return
		}
		path := n.boxSocket(in.m.ID)
		os.Remove(path)
		ln, err := net.Listen("unix", path)
		if err != nil {
			in.log.Warn("listening on the box", "socket", path, "err", err)
			continue
		}
		os.Chmod(path, 0o600)
		n.box[in.m.ID] = ln
		go n.boxSrv.Serve(&trackListener{Listener: ln, n: n, network: apps.Box, app: in})
	}
}

// --- publishing ---

// allowed reports whether the owner lets in be served on network.
func allowed(in *instance, r *run, network apps.Network) bool {
	if r == nil || !in.m.Exposed(network) {
		return false
	}
	opts := *r.opts.Load()
	switch network {
	case apps.LAN:
		return opts.Bool(apps.OptAllowLAN)
	case apps.Tailnet:
		return opts.Bool(apps.OptAllowTailnet)
	}
	return true
}

// published reports whether in is served on network now.
func (n *networks) published(in *instance, network apps.Network) bool {
	r := in.current()
	if !allowed(in, r, network) {
		return false
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	switch network {
	case apps.LAN:
		return n.lan != nil
	case apps.Tailnet:
		if n.tail == nil {
			return false
		}
		if _, isWeb := in.m.Web(); !isWeb {
			return true
		}
		_, ok := n.tail.web[in.m.ID]
		return ok
	case apps.Box:
		_, ok := n.box[in.m.ID]
		return ok
	}
	return false
}

// publish brings what is served of in on each network in line with its
// state and options: its web listener on the tailnet, the listeners it asked
// for on each network.
func (n *networks) publish(in *instance) {
	r := in.current()
	if r != nil {
		r.mu.Lock()
		stopping := r.stopping
		r.mu.Unlock()
		if stopping {
			r = nil
		}
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	id := in.m.ID
	if m := n.tail; m != nil {
		want := allowed(in, r, apps.Tailnet)
		ln, have := m.web[id]
		if w, ok := in.m.Web(); ok && want && !have {
			l, err := m.node.Listen("tcp", ":"+strconv.Itoa(int(w.Port)))
			if err != nil {
				in.log.Warn("listening on the tailnet", "port", w.Port, "err", err)
			} else {
				m.web[id] = l
				tl := tls.NewListener(&trackListener{Listener: l, n: n, network: apps.Tailnet, app: in},
					&tls.Config{MinVersion: tls.VersionTLS12, GetCertificate: n.tailCert.GetCertificate, NextProtos: []string{"h2", "http/1.1"}})
				go n.tailSrv.Serve(tl)
			}
		} else if !want && have {
			ln.Close()
			delete(m.web, id)
			go n.closeConns(func(c *connInfo) bool { return c.network == apps.Tailnet && c.fixed == in })
		}
	}
	if !allowed(in, r, apps.LAN) && r != nil {
		go n.closeConns(func(c *connInfo) bool { return c.network == apps.LAN && c.app() == in })
	}
	// The listeners the app asked for.
	for k, s := range n.listens {
		if k.app == id {
			n.mountExtra(k, in, r, s, nil)
		}
	}
	for k, p := range n.packets {
		if k.app == id {
			n.mountExtra(k, in, r, nil, p)
		}
	}
}

// unpublish stops serving a stopping app: its listeners close.
func (n *networks) unpublish(in *instance) {
	n.publish(in)
	n.mu.Lock()
	defer n.mu.Unlock()
	for k, s := range n.listens {
		if k.app == in.m.ID {
			s.Close()
			delete(n.listens, k)
		}
	}
	for k, p := range n.packets {
		if k.app == in.m.ID {
			p.Close()
			delete(n.packets, k)
		}
	}
}

// origins are in's web origins now.
func (n *networks) origins(in *instance) []apps.Origin {
	w, ok := in.m.Web()
	if !ok {
		return nil
	}
	var out []apps.Origin
	if n.published(in, apps.LAN) {
		out = append(out, apps.Origin{Network: apps.LAN, URL: "https://" + n.h.lanHosts(in.m.ID)[0]})
	}
	if n.published(in, apps.Tailnet) {
		if names, _ := n.tailIdentity(); len(names) == 2 && names[1] != "" {
			u := "https://" + names[1]
			if w.Port != 443 {
				u += ":" + strconv.Itoa(int(w.Port))
			}
			out = append(out, apps.Origin{Network: apps.Tailnet, URL: u})
		}
	}
	if n.published(in, apps.Box) {
		out = append(out, apps.Origin{Network: apps.Box, URL: "unix:" + n.boxSocket(in.m.ID)})
	}
	return out
}
