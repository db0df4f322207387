package host

import (
	"context"
	"errors"
	"html/template"
	"net/http"
	"strings"

	"github.com/redoubt/redoubt/apps"
	"github.com/redoubt/redoubt/apps/web"
	"github.com/redoubt/redoubt/vpn/tailnet"
)

// serve is every request to every app: which app, whether it runs and is
// published where the request came from, who is calling; then the app's
// handler, with the caller in the request's context and the request ended
// when the app stops.
func (h *Host) serve(w http.ResponseWriter, r *http.Request) {
	info, _ := r.Context().Value(connKey{}).(*connInfo)
	if info == nil {
		http.Error(w, "not a connection the box accepted", http.StatusInternalServerError)
		return
	}
	in := info.fixed
	if info.network == apps.LAN {
		// The app is the one the TLS server name named; the Host header
		// must agree (a browser reusing a connection for another name is
		// told to open a new one).
		if r.TLS == nil {
			http.Error(w, "HTTPS only", http.StatusBadRequest)
			return
		}
		in = h.appForHost(r.TLS.ServerName)
		if in == nil || h.appForHost(r.Host) != in {
			http.Error(w, "This connection is for another name.", http.StatusMisdirectedRequest)
			return
		}
		info.mu.Lock()
		info.lanApp = in
		info.mu.Unlock()
	}
	if in == nil {
		http.NotFound(w, r)
		return
	}
	rn := in.current()
	switch {
	case !h.isUnlocked():
		h.page(w, r, http.StatusServiceUnavailable, in, "The box is locked.", "Its owner unlocks it with the passphrase; until then nothing of "+in.m.Name+" can be read.")
		return
	case rn == nil:
		h.page(w, r, http.StatusServiceUnavailable, in, in.m.Name+" is not running.", "The box's owner starts it on the Apps page.")
		return
	case !allowed(in, rn, info.network):
		h.page(w, r, http.StatusForbidden, in, in.m.Name+" is not served here.", "The box's owner has turned it off on this network.")
		return
	}

	var caller apps.Caller
	switch info.network {
	case apps.LAN:
		if r.URL.Path == handoffPath {
			h.auth.takeHandoff(w, r, in)
			return
		}
		var ok bool
		if caller, ok = h.lanCaller(w, r, in, info); !ok {
			return
		}
	case apps.Tailnet:
		var ok bool
		if caller, ok = h.tailnetCaller(w, r, in, info); !ok {
			return
		}
	case apps.Box:
		caller = apps.Caller{Owner: true, Network: apps.Box, Device: "console"}
	}
	if strings.HasPrefix(r.URL.Path, "/.redoubt/") {
		http.NotFound(w, r)
		return
	}
	if !rn.enter() {
		h.page(w, r, http.StatusServiceUnavailable, in, in.m.Name+" is stopping.", "Try again in a moment.")
		return
	}
	defer rn.inflight.Done()
	ctx, cancel := context.WithCancel(apps.WithCaller(r.Context(), caller))
	defer cancel()
	stop := context.AfterFunc(rn.ctx, cancel)
	defer stop()
	rn.handler.ServeHTTP(&sameOrigin{ResponseWriter: w, tls: r.TLS != nil}, r.WithContext(ctx))
}

// tailnetCaller is the member behind a tailnet connection: the device's user
// (tsnet's WhoIs), who must be a member of the team now.
func (h *Host) tailnetCaller(w http.ResponseWriter, r *http.Request, in *instance, info *connInfo) (apps.Caller, bool) {
	id, err := h.net.whois(info)
	if err != nil {
		if !errors.Is(err, tailnet.ErrUnknownPeer) {
			in.log.Warn("asking who is calling", "from", info.remote, "err", err)
		}
		h.refuse(w, r, in, "The box does not know this device.")
		return apps.Caller{}, false
	}
	e, ok := h.memberForUser(id.UserID)
	if !ok {
		h.refuse(w, r, in, "This device belongs to no member of the team.")
		return apps.Caller{}, false
	}
	info.mu.Lock()
	info.member = e.ID
	info.mu.Unlock()
	m := apps.Member{ID: e.ID, Name: e.Name}
	for _, p := range h.net.tailnetPeers() {
		if p.UserID == e.UserID && !p.Tagged {
			m.Devices = append(m.Devices, apps.Device{Name: p.Name, Addrs: p.Addrs, OS: p.OS, Online: p.Online})
		}
	}
	return apps.Caller{Member: m, Device: id.Device, Network: apps.Tailnet, Addr: info.remote}, true
}

// refuse answers 403 and closes the connection.
func (h *Host) refuse(w http.ResponseWriter, r *http.Request, in *instance, why string) {
	w.Header().Set("Connection", "close")
	h.page(w, r, http.StatusForbidden, in, why, "Ask the box's owner to add you to the team.")
}

// sameOrigin keeps an app's answers to its own origin: whatever CORS
// headers the app sets are dropped (no other origin, not even another app of
// the box, may read them), and the baseline headers are set if the app did
// not.
type sameOrigin struct {
	http.ResponseWriter
	tls   bool
	wrote bool
}

func (s *sameOrigin) fix() {
	if s.wrote {
		return
	}
	s.wrote = true
	hd := s.ResponseWriter.Header()
	for k := range hd {
		if strings.HasPrefix(k, "Access-Control-Allow-") || k == "Access-Control-Expose-Headers" {
			delete(hd, k)
		}
	}
	hd.Set("Cross-Origin-Resource-Policy", "same-origin")
	if hd.Get("X-Content-Type-Options") == "" {
		hd.Set("X-Content-Type-Options", "nosniff")
	}
	if hd.Get("X-Frame-Options") == "" && !strings.Contains(hd.Get("Content-Security-Policy"), "frame-ancestors") {
		hd.Set("X-Frame-Options", "DENY")
	}
	if s.tls && hd.Get("Strict-Transport-Security") == "" {
		hd.Set("Strict-Transport-Security", "max-age=31536000")
	}
}

func (s *sameOrigin) WriteHeader(code int) { s.fix(); s.ResponseWriter.WriteHeader(code) }

func (s *sameOrigin) Write(p []byte) (int, error) { s.fix(); return s.ResponseWriter.Write(p) }

// Unwrap lets http.ResponseController reach the connection (flushing, and
// hijacking for WebSockets).
func (s *sameOrigin) Unwrap() http.ResponseWriter { return s.ResponseWriter }

var pageTemplate = template.Must(template.New("page").Parse(`<!doctype html>
<html lang="en"><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{.App}}</title>
<style>body{font:16px/1.5 system-ui,sans-serif;max-width:36rem;margin:3rem auto;padding:0 1rem;color:#1d1d1f}h1{font-size:1.3rem}</style>
<h1>{{.Title}}</h1><p>{{.Detail}}</p></html>
`))

// page answers with a short page (or JSON, or text, as the client prefers)
// for people reaching an app that cannot answer them.
func (h *Host) page(w http.ResponseWriter, r *http.Request, status int, in *instance, title, detail string) {
	web.SetHeaders(w, r, web.Policy{InlineStyles: true})
	if !strings.Contains(r.Header.Get("Accept"), "text/html") {
		web.Error(w, r, status, title+" "+detail)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	pageTemplate.Execute(w, struct{ App, Title, Detail string }{in.m.Name, title, detail})
}
