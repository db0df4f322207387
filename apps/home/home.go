// Package home serves the page team members see at the box's name in the team's
// tailnet: what the box offers them. It is the only page the box serves on the
// tailnet; the owner's pages (package ui) are never served there. The daemon
// mounts its Handler on the tailnet node's listener.
package home

import (
	"embed"
	"html/template"
	"log/slog"
	"net/http"
	"time"
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
	return mux
}

// Server wraps h with timeouts for the tailnet side.
func Server(h http.Handler, log *slog.Logger) *http.Server {
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    16 << 10,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelDebug),
	}
}
