package ui

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io/fs"
	"log/slog"
	"mime"
	"net/http"
	"net/url"
	"path"
	"strings"
	"time"
)

// Handler serves the UI on the LAN port, for both plain HTTP (port 80) and HTTPS
// (port 443): it tells them apart by r.TLS.
func (u *UI) Handler() http.Handler {
	mux := http.NewServeMux()
	// Open to anyone on the LAN, whatever the state.
	mux.HandleFunc("GET /static/", u.static)
	mux.HandleFunc("GET /captive-portal/api", u.captiveAPI)
	mux.HandleFunc("GET /ca.crt", u.caDownload)
	mux.HandleFunc("GET /ca", u.caPage)
	mux.HandleFunc("GET /favicon.ico", func(w http.ResponseWriter, r *http.Request) { http.NotFound(w, r) })

	// First boot.
	mux.HandleFunc("GET /setup", u.setupPage)
	mux.HandleFunc("POST /setup/code", u.setupCode)
	mux.HandleFunc("POST /setup/strength", u.setupOnly(u.strength))
	mux.HandleFunc("POST /setup/passphrase", u.setupOnly(u.setupPassphrase))
	mux.HandleFunc("POST /setup/name", u.setupOnly(u.setupName))
	mux.HandleFunc("POST /setup/step/{id}", u.setupOnly(u.setupStep))
	mux.HandleFunc("POST /setup/finish", u.setupOnly(u.setupFinish))
	mux.HandleFunc("GET /setup/done", u.setupDone)

	// A locked box, or a browser not signed in.
	mux.HandleFunc("GET /unlock", u.unlockPage)
	mux.HandleFunc("POST /unlock", u.unlock)

	// Signed in.
	mux.HandleFunc("GET /{$}", u.signedIn(u.dashboard))
	mux.HandleFunc("GET /devices", u.signedIn(u.devicesPage))
	mux.HandleFunc("GET /stopped", u.signedIn(u.stoppedPage))
	mux.HandleFunc("GET /events", u.signedIn(u.events))
	mux.HandleFunc("GET /chart.svg", u.signedIn(u.chart))
	mux.HandleFunc("GET /drops.pcap", u.signedIn(u.pcap))
	mux.HandleFunc("GET /team", u.signedIn(u.teamPage))
	mux.HandleFunc("POST /team/add", u.signedIn(u.changed(u.withTeam(u.teamAdd))))
	mux.HandleFunc("POST /team/reissue", u.signedIn(u.changed(u.withTeam(u.teamReissue))))
	mux.HandleFunc("POST /team/rename", u.signedIn(u.changed(u.withTeam(u.teamRename))))
	mux.HandleFunc("POST /team/remove", u.signedIn(u.changed(u.withTeam(u.teamRemove))))
	mux.HandleFunc("POST /team/pending", u.signedIn(u.changed(u.withTeam(u.teamPending))))
	mux.HandleFunc("POST /team/configure", u.signedIn(u.changed(u.withTeam(u.teamConfigure))))
	mux.HandleFunc("POST /team/pending/add", u.signedIn(u.changed(u.withTeam(u.teamAddPending))))
	mux.HandleFunc("POST /team/policy", u.signedIn(u.changed(u.withTeam(u.teamPolicy))))
	mux.HandleFunc("GET /team/bundle/{id}", u.signedIn(u.withTeam(u.teamBundle)))
	mux.HandleFunc("GET /team/bundle/{id}/{file}", u.signedIn(u.withTeam(u.teamBundleFile)))
	mux.HandleFunc("POST /team/bundle/{id}/done", u.signedIn(u.changed(u.withTeam(u.teamDone))))
	mux.HandleFunc("GET /settings", u.signedIn(u.settingsPage))
	mux.HandleFunc("POST /settings", u.signedIn(u.changed(u.saveSettings)))
	mux.HandleFunc("POST /settings/passphrase", u.signedIn(u.changed(u.changePassphrase)))
	mux.HandleFunc("POST /settings/strength", u.signedIn(u.changed(func(w http.ResponseWriter, r *http.Request, _ *session) { u.strength(w, r) })))
	mux.HandleFunc("POST /lock", u.signedIn(u.changed(u.lock)))
	mux.HandleFunc("POST /logout", u.signedIn(u.changed(u.logout)))
	mux.HandleFunc("POST /reboot", u.signedIn(u.changed(u.reboot)))
	mux.HandleFunc("POST /reset", u.signedIn(u.changed(u.factoryReset)))
	mux.HandleFunc("GET /update", u.signedIn(u.updatePage))
	mux.HandleFunc("POST /update", u.signedIn(u.updateUpload))
	return u.guard(mux)
}

// guard applies what every request goes through: the Host check, the HTTPS
// requirement once setup is done, same-origin checks on changes, and the headers
// every response carries.
func (u *UI) guard(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		securityHeaders(w, r)
		if !u.allowedHost(r.Host) {
			// Another site's name pointed at the box (an OS probing for a
			// captive portal, or a DNS-rebinding page): send the browser to the
			// box itself, never content under a foreign name.
			target := "http://" + u.d.Addr().String() + "/setup"
			if u.d.Setup.Done() {
				target = "https://" + u.canonicalHost() + "/"
			}
			http.Redirect(w, r, target, http.StatusFound)
			return
		}
		if r.Method != http.MethodGet && r.Method != http.MethodHead && !sameOrigin(r) {
			u.fail(w, r, http.StatusForbidden, "This change came from another site, so the box refused it.")
			return
		}
		if r.TLS == nil && u.d.Setup.Done() && !plainAllowed(r.URL.Path) {
			http.Redirect(w, r, "https://"+u.canonicalHost()+r.URL.RequestURI(), http.StatusMovedPermanently)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// plainAllowed lists what stays on plain HTTP after setup: the CA certificate and
// its instructions (to get HTTPS working: the page that ends setup is one), and
// the captive-portal API.
func plainAllowed(p string) bool {
	return p == "/ca.crt" || p == "/ca" || p == "/setup/done" || p == "/captive-portal/api" || strings.HasPrefix(p, "/static/")
}

// sameOrigin refuses cross-site requests by the browser's own account of them
// (Sec-Fetch-Site, Origin). Browsers that send neither are left to the CSRF
// token and the SameSite cookie.
func sameOrigin(r *http.Request) bool {
	switch r.Header.Get("Sec-Fetch-Site") {
	case "", "same-origin", "none":
	default:
		return false
	}
	if o := r.Header.Get("Origin"); o != "" && o != "null" {
		ou, err := url.Parse(o)
		if err != nil || !strings.EqualFold(ou.Host, r.Host) {
			return false
		}
	} else if o == "null" {
		return false
	}
	return true
}

func securityHeaders(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Content-Security-Policy", "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("X-Frame-Options", "DENY")
	// same-origin: other sites learn nothing, and the box gets its own Origin
	// header on forms ("no-referrer" would make browsers send Origin: null).
	h.Set("Referrer-Policy", "same-origin")
	h.Set("Cross-Origin-Resource-Policy", "same-origin")
	h.Set("Permissions-Policy", "camera=(), microphone=(), geolocation=(), usb=(), payment=()")
	if r.TLS != nil {
		// Browsers honour (and otherwise complain about) these only on a
		// secure origin.
		h.Set("Strict-Transport-Security", "max-age=31536000")
		h.Set("Cross-Origin-Opener-Policy", "same-origin")
	}
}

// static serves embedded assets.
func (u *UI) static(w http.ResponseWriter, r *http.Request) {
	name := path.Clean(strings.TrimPrefix(r.URL.Path, "/static/"))
	if strings.Contains(name, "..") || strings.HasPrefix(name, "/") {
		http.NotFound(w, r)
		return
	}
	b, err := fs.ReadFile(u.files, "static/"+name)
	if err != nil {
		http.NotFound(w, r)
		return
	}
	if ct := mime.TypeByExtension(path.Ext(name)); ct != "" {
		w.Header().Set("Content-Type", ct)
	}
	w.Header().Set("Cache-Control", "no-cache")
	w.Write(b)
}

// view is what every page template gets.
type view struct {
	Title    string
	Page     string
	CSRF     string
	SignedIn bool
	Box      string
	Host     string
	Data     any
	Error    string
	Notice   string
	Fields   map[string]string // per-field errors
}

func (u *UI) render(w http.ResponseWriter, r *http.Request, status int, page string, v view) {
	pages := u.pages
	if u.dev {
		var err error
		if pages, err = u.parsePages(); err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
	}
	t := pages[page]
	if t == nil {
		http.Error(w, "missing page "+page, http.StatusInternalServerError)
		return
	}
	v.Page = page
	if v.Box == "" {
		v.Box = u.d.Setup.BoxName()
	}
	v.Host = u.canonicalHost()
	var buf bytes.Buffer
	if err := t.Execute(&buf, v); err != nil {
		u.d.Logger.Error("rendering page", "page", page, "err", err)
		http.Error(w, "the page could not be shown", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	w.Write(buf.Bytes())
}

func (u *UI) fail(w http.ResponseWriter, r *http.Request, status int, msg string) {
	u.render(w, r, status, "error", view{Title: http.StatusText(status), Error: msg})
}

// signedIn lets through only a signed-in browser on an unlocked, set-up box.
func (u *UI) signedIn(next func(http.ResponseWriter, *http.Request, *session)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		switch {
		case !u.d.Setup.Done():
			http.Redirect(w, r, "/setup", http.StatusFound)
			return
		case u.d.Vault.Locked():
			http.Redirect(w, r, "/unlock", http.StatusFound)
			return
		}
		s := u.sess.get(cookieValue(r, sessionCookie))
		if s == nil {
			if r.Method == http.MethodGet && r.URL.Path != "/events" {
				http.Redirect(w, r, "/unlock?next="+url.QueryEscape(r.URL.Path), http.StatusFound)
				return
			}
			u.fail(w, r, http.StatusUnauthorized, "You are not signed in (or were signed out after a while without activity).")
			return
		}
		next(w, r, s)
	}
}

// changed requires the session's CSRF token on a change.
func (u *UI) changed(next func(http.ResponseWriter, *http.Request, *session)) func(http.ResponseWriter, *http.Request, *session) {
	return func(w http.ResponseWriter, r *http.Request, s *session) {
		r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
		if !validCSRF(s.csrf, r.PostFormValue("csrf")) {
			u.d.Logger.Warn("refused a change without a valid CSRF token", "path", r.URL.Path)
			u.fail(w, r, http.StatusForbidden, "This form has expired or did not come from the box. Reload the page and try again.")
			return
		}
		next(w, r, s)
	}
}

// captiveAPI is the RFC 8908 captive-portal API: captive until setup is done.
func (u *UI) captiveAPI(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/captive+json")
	w.Header().Set("Cache-Control", "private, no-store")
	resp := map[string]any{"captive": !u.d.Setup.Done()}
	if !u.d.Setup.Done() {
		resp["user-portal-url"] = "http://" + u.d.Addr().String() + "/setup"
	}
	json.NewEncoder(w).Encode(resp)
}

func (u *UI) caDownload(w http.ResponseWriter, r *http.Request) {
	pemBytes := u.caPEM()
	if pemBytes == nil {
		u.fail(w, r, http.StatusNotFound, "The box creates its certificate authority during setup.")
		return
	}
	name := "redoubt-" + strings.ToLower(nonEmpty(u.d.Setup.BoxName(), "box")) + "-ca.crt"
	w.Header().Set("Content-Type", "application/x-x509-ca-cert")
	w.Header().Set("Content-Disposition", fmt.Sprintf(`attachment; filename=%q`, name))
	w.Write(pemBytes)
}

func nonEmpty(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

func (u *UI) logf(r *http.Request, msg string, args ...any) {
	u.d.Logger.Info(msg, append(args, slog.String("path", r.URL.Path))...)
}

// formValues reads a bounded form.
func formValues(w http.ResponseWriter, r *http.Request) error {
	r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
	return r.ParseForm()
}

// cookieAge is how long a session cookie lives in the browser; the server ends
// the session sooner if it sits idle.
var cookieAge = int(maxLifetime / time.Second)
