package ui

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io/fs"
	"log/slog"
	"mime"
	"net"
	"net/http"
	"net/netip"
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
	mux.HandleFunc("GET /trust-check", u.trustCheck)
	// The leak self-test: any device on the LAN port, for its own traffic.
	mux.HandleFunc("GET /selftest", u.selftestPage)
	mux.HandleFunc("POST /selftest/runs", u.selftestStart)
	mux.HandleFunc("POST /selftest/runs/{id}/outcomes", u.selftestOutcomes)
	mux.HandleFunc("GET /selftest/runs/{id}", u.selftestResults)
	mux.HandleFunc("/", u.notFound)

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
	mux.HandleFunc("GET /help", u.signedIn(u.helpPage))
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
	u.appsRoutes(mux)
	mux.HandleFunc("GET /settings", u.signedIn(u.settingsPage))
	mux.HandleFunc("POST /settings", u.signedIn(u.changed(u.saveSettings)))
	mux.HandleFunc("POST /settings/{id}", u.signedIn(u.changed(u.sectionSubmit)))
	mux.HandleFunc("POST /settings/passphrase", u.signedIn(u.changed(u.changePassphrase)))
	mux.HandleFunc("POST /settings/strength", u.signedIn(u.changed(func(w http.ResponseWriter, r *http.Request, _ *session) { u.strength(w, r) })))
	mux.HandleFunc("POST /lock", u.signedIn(u.changed(u.lock)))
	mux.HandleFunc("POST /logout", u.signedIn(u.changed(u.logout)))
	mux.HandleFunc("POST /reboot", u.signedIn(u.changed(u.reboot)))
	mux.HandleFunc("POST /reset", u.signedIn(u.changed(u.factoryReset)))
	u.backupRoutes(mux)
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
			if r.Method == http.MethodGet || r.Method == http.MethodHead {
				// The first plain visit: explain the box's certificate and
				// offer it, then go on to HTTPS (by itself once this browser
				// trusts the box).
				u.trustPage(w, r)
				return
			}
			http.Redirect(w, r, u.httpsURL(r), http.StatusSeeOther)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// plainAllowed lists what stays on plain HTTP after setup: the CA certificate and
// its instructions (to get HTTPS working: the page that ends setup is one), the
// captive-portal API, and the leak self-test (which must try plain HTTP, and a
// secure page may not).
func plainAllowed(p string) bool {
	return p == "/ca.crt" || p == "/ca" || p == "/setup/done" || p == "/captive-portal/api" || strings.HasPrefix(p, "/static/") ||
		p == "/selftest" || strings.HasPrefix(p, "/selftest/")
}

// httpsURL is r's address over HTTPS, on the host the browser used (the box's
// certificate covers its names and its address).
func (u *UI) httpsURL(r *http.Request) string { return u.httpsOrigin(r) + r.URL.RequestURI() }

// httpsOrigin is the box over HTTPS on the host r came by (the box's canonical
// name when that host is not the box's).
func (u *UI) httpsOrigin(r *http.Request) string {
	host := r.Host
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	if a, err := netip.ParseAddr(strings.Trim(host, "[]")); err == nil && a.Is6() {
		host = "[" + a.String() + "]"
	}
	if host == "" || !u.allowedHost(host) {
		host = u.canonicalHost()
	}
	return "https://" + strings.ToLower(host)
}

// trustPage is what a plain-HTTP visit finds once setup is done: what the box's
// certificate is, how to install it, its fingerprint, and the way on to HTTPS.
func (u *UI) trustPage(w http.ResponseWriter, r *http.Request) {
	target := u.httpsURL(r)
	v := u.caData(r, false)
	v.Continue, v.Auto = target, true
	u.render(w, r, http.StatusOK, "ca", view{Title: "Trust your box", Data: v})
}

// trustCheck answers the trust page's script over HTTPS: if this request
// arrives at all, the browser trusts the box's certificate. Only the box's own
// plain-HTTP pages may read the answer.
func (u *UI) trustCheck(w http.ResponseWriter, r *http.Request) {
	if o := r.Header.Get("Origin"); strings.HasPrefix(o, "http://") && u.allowedHost(strings.TrimPrefix(o, "http://")) {
		w.Header().Set("Access-Control-Allow-Origin", o)
		w.Header().Set("Vary", "Origin")
	}
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusNoContent)
}

// notFound is the page for an address the box does not have, with a way back.
func (u *UI) notFound(w http.ResponseWriter, r *http.Request) {
	back, label := "/", "Back to the dashboard"
	if !u.d.Setup.Done() {
		back, label = "/setup", "Back to setup"
	}
	u.render(w, r, http.StatusNotFound, "notfound", view{Title: "Not found", Data: struct {
		Path, Back, Label string
	}{r.URL.Path, back, label}})
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
	t := u.templates()[page]
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
		if err := formValues(w, r); err != nil {
			u.fail(w, r, http.StatusBadRequest, "The form could not be read (a file in it may be too large).")
			return
		}
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

// formValues reads a bounded form, URL-encoded or multipart (a form with a file).
func formValues(w http.ResponseWriter, r *http.Request) error {
	r.Body = http.MaxBytesReader(w, r.Body, 2*maxUpload)
	if strings.HasPrefix(r.Header.Get("Content-Type"), "multipart/form-data") {
		return r.ParseMultipartForm(2 * maxUpload)
	}
	return r.ParseForm()
}

// cookieAge is how long a session cookie lives in the browser; the server ends
// the session sooner if it sits idle.
var cookieAge = int(maxLifetime / time.Second)

// signedInView reports whether r comes from a signed-in browser, for pages open
// to everyone that show the menu to the owner (the CA page).
func (u *UI) signedInView(r *http.Request) bool {
	return r.TLS != nil && u.d.Setup.Done() && !u.d.Vault.Locked() && u.sess.get(cookieValue(r, sessionCookie)) != nil
}

// csrfOf is the signed-in browser's CSRF token, or "".
func (u *UI) csrfOf(r *http.Request) string {
	if r.TLS == nil {
		return ""
	}
	if s := u.sess.get(cookieValue(r, sessionCookie)); s != nil {
		return s.csrf
	}
	return ""
}
