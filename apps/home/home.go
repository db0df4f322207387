// Package home serves the page team members see at the box's name in the team's
// tailnet: what the box offers them, a download to check their connection to
// the box, and the box's audit log, which their browser verifies itself
// (assets/audit.mjs). It is the only page the box serves on the
// tailnet; the owner's pages (package ui) are never served there. The daemon
// mounts its Handler on the tailnet node's listener.
package home

import (
	"embed"
	"encoding/base64"
	"fmt"
	"html/template"
	"log/slog"
	"net/http"
	"strconv"

	qrcode "github.com/skip2/go-qrcode"
)

//go:embed assets
var assets embed.FS

var (
	page      = template.Must(template.ParseFS(assets, "assets/home.html"))
	auditPage = template.Must(template.ParseFS(assets, "assets/audit.html"))
	sharePage = template.Must(template.ParseFS(assets, "assets/share.html"))
)

// App is one service the box offers members.
type App struct {
	Name, URL, What string
}

// Info is what the page shows.
type Info struct {
	BoxName string
	Apps    func() []App
	// Audit serves the audit log's API (auditlog.Handler, with members as
	// callers); nil: the page has no log.
	Audit http.Handler
	// Member names the member behind a request, from the tailnet.
	Member func(*http.Request) (string, bool)
	// Share returns a member's share of the backups' recovery key, if they
	// hold one; ShareSaved tells the box they keep it (it then forgets it).
	Share      func(member string) (Share, bool)
	ShareSaved func(member string) error
}

// Share is a member's share of the recovery key, as their page shows it.
type Share struct {
	Share        string // "" once saved
	Number, K, N int
	Set          string
	Saved        bool
}

// csp lets a page load the box's own styles and scripts and talk to the box,
// nothing else.
const csp = "default-src 'none'; style-src 'self'; script-src 'self'; connect-src 'self'; img-src 'self' data:; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"

func pageHeaders(w http.ResponseWriter) {
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Content-Security-Policy", csp)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("Cache-Control", "no-store")
}

// Handler serves the members' page.
func Handler(info Info, log *slog.Logger) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		pageHeaders(w)
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
	mux.HandleFunc("GET /assets/{file}", func(w http.ResponseWriter, r *http.Request) {
		ct, ok := staticFiles[r.PathValue("file")]
		if !ok {
			http.NotFound(w, r)
			return
		}
		b, err := assets.ReadFile("assets/" + r.PathValue("file"))
		if err != nil {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", ct)
		w.Header().Set("X-Content-Type-Options", "nosniff")
		w.Header().Set("Cache-Control", "no-cache")
		w.Write(b)
	})
	if info.Audit != nil {
		mux.HandleFunc("GET /audit", func(w http.ResponseWriter, r *http.Request) {
			pageHeaders(w)
			member := ""
			if info.Member != nil {
				member, _ = info.Member(r)
			}
			if err := auditPage.Execute(w, struct {
				Info
				Member, Host string
			}{info, member, r.Host}); err != nil {
				log.Warn("rendering the log's page", "err", err)
			}
		})
		mux.Handle("/audit/api/", http.StripPrefix("/audit/api", info.Audit))
	}
	if info.Share != nil && info.Member != nil {
		mux.HandleFunc("GET /share", func(w http.ResponseWriter, r *http.Request) {
			pageHeaders(w)
			member, _ := info.Member(r)
			sh, has := info.Share(member)
			qr := ""
			if has && sh.Share != "" {
				if png, err := qrcode.Encode(sh.Share, qrcode.Medium, 320); err == nil {
					qr = "data:image/png;base64," + base64.StdEncoding.EncodeToString(png)
				}
			}
			if err := sharePage.Execute(w, struct {
				Info
				Has   bool
				Share Share
				QR    template.URL
			}{info, has, sh, template.URL(qr)}); err != nil {
				log.Warn("rendering the share page", "err", err)
			}
		})
		mux.HandleFunc("POST /share/saved", func(w http.ResponseWriter, r *http.Request) {
			if !sameOrigin(r) {
				http.Error(w, "this form is posted from the box's own page only", http.StatusForbidden)
				return
			}
			member, ok := info.Member(r)
			if !ok {
				http.Error(w, "only a member's device holds a share", http.StatusForbidden)
				return
			}
			if err := info.ShareSaved(member); err != nil {
				http.Error(w, err.Error(), http.StatusBadRequest)
				return
			}
			http.Redirect(w, r, "/share", http.StatusSeeOther)
		})
	}
	return mux
}

// sameOrigin accepts a POST only from a page of the box itself.
func sameOrigin(r *http.Request) bool {
	if site := r.Header.Get("Sec-Fetch-Site"); site != "" && site != "same-origin" {
		return false
	}
	origin := r.Header.Get("Origin")
	return origin != "" && origin == "https://"+r.Host
}

// staticFiles are the assets served as they are, with their types.
var staticFiles = map[string]string{
	"home.css":  "text/css; charset=utf-8",
	"audit.mjs": "text/javascript; charset=utf-8",
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
