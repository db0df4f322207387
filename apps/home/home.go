// Package home serves the page team members see at the box's name in the team's
// tailnet: what the box offers them, and a download to check their connection to
// the box. It is the only page the box serves on the
// tailnet; the owner's pages (package ui) are never served there. The daemon
// mounts its Handler on the tailnet node's listener.
package home

import (
	"crypto/tls"
	"embed"
	"fmt"
	"html/template"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"sync"

	"github.com/redoubt/redoubt/ui"
)

//go:embed assets
var assets embed.FS

var page = template.Must(template.ParseFS(assets, "assets/home.html"))

// App is one service the box offers members.
type App struct {
	Name, URL, What string
}

// Info is what the page shows.
type Info struct {
	BoxName string
	Apps    func() []App
}

// Handler serves the members' page.
func Handler(info Info, log *slog.Logger) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Type", "text/html; charset=utf-8")
		h.Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'")
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("Cache-Control", "no-store")
		var apps []App
		if info.Apps != nil {
			apps = info.Apps()
		}
		if err := page.Execute(w, struct {
			Info
			List []App
		}{info, apps}); err != nil {
			log.Warn("rendering the members' page", "err", err)
		}
	})
	mux.HandleFunc("GET /speed", speed)
	return mux
}

// MaxSpeedMB bounds a connection check's download.
const MaxSpeedMB = 1000

// speed sends ?mb= megabytes (default 25, at most MaxSpeedMB) for a member to
// see how fast their path to the box is: their browser shows the download's rate.
func speed(w http.ResponseWriter, r *http.Request) {
	mb := 25
	if v := r.URL.Query().Get("mb"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > MaxSpeedMB {
			http.Error(w, fmt.Sprintf("mb=%q: want a whole number of megabytes from 1 to %d", v, MaxSpeedMB), http.StatusBadRequest)
			return
		}
		mb = n
	}
	h := w.Header()
	h.Set("Content-Type", "application/octet-stream")
	h.Set("Content-Disposition", fmt.Sprintf(`attachment; filename="redoubt-connection-check-%dMB.bin"`, mb))
	h.Set("Content-Length", strconv.Itoa(mb<<20))
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	if r.Method == http.MethodHead {
		return
	}
	buf := make([]byte, 64<<10)
	for left := mb << 20; left > 0; left -= len(buf) {
		if _, err := w.Write(buf[:min(left, len(buf))]); err != nil {
			return
		}
	}
}

// Node is where the members' page is served: the box's tailnet node.
type Node interface {
	Listen(network, addr string) (net.Listener, error)
}

// Server serves the members' page on the box's tailnet node while it runs:
// HTTPS on 443, with certificates from certs, and plain HTTP on 80 leading
// there. The owner's pages are never served on the tailnet.
type Server struct {
	certs func(*tls.ClientHelloInfo) (*tls.Certificate, error)
	log   *slog.Logger

	mu      sync.Mutex
	servers []*http.Server
}

// NewServer returns a Server with certificates from certs.
func NewServer(certs func(*tls.ClientHelloInfo) (*tls.Certificate, error), log *slog.Logger) *Server {
	return &Server{certs: certs, log: log}
}

// Mount serves the page h on n, or stops serving it (n nil).
func (s *Server) Mount(n Node, h http.Handler) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, srv := range s.servers {
		srv.Close()
	}
	s.servers = nil
	if n == nil {
		return nil
	}
	ln, err := n.Listen("tcp", ":443")
	if err != nil {
		return err
	}
	ln80, err := n.Listen("tcp", ":80")
	if err != nil {
		ln.Close()
		return err
	}
	page := ui.Server(h, s.log)
	go page.Serve(tls.NewListener(ln, &tls.Config{MinVersion: tls.VersionTLS12, GetCertificate: s.certs}))
	toHTTPS := ui.Server(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "https://"+r.Host+r.URL.RequestURI(), http.StatusMovedPermanently)
	}), s.log)
	go toHTTPS.Serve(ln80)
	s.servers = []*http.Server{page, toHTTPS}
	return nil
}
