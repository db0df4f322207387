// Package ui serves the owner's web pages on the box's LAN address. Its assets are
// embedded; it sends nothing to the browser from anywhere but the box. The daemon
// mounts its Handler on the LAN port's listener; no other room imports it.
package ui

import (
	"embed"
	"html/template"
	"log/slog"
	"net/http"
	"time"
)

//go:embed assets
var assets embed.FS

var pages = template.Must(template.ParseFS(assets, "assets/*.html"))

// Info is what the pages show about the box.
type Info struct {
	Version string
	Address string // the box's LAN address
}

// Handler serves the box's page on every path: the laptop may reach the box by
// any name or address that leads to it.
func Handler(info Info, log *slog.Logger) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /style.css", func(w http.ResponseWriter, r *http.Request) {
		b, err := assets.ReadFile("assets/style.css")
		if err != nil {
			http.Error(w, "missing asset", http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "text/css; charset=utf-8")
		w.Header().Set("Cache-Control", "no-cache")
		w.Write(b)
	})
	mux.HandleFunc("GET /", func(w http.ResponseWriter, r *http.Request) {
		secureHeaders(w)
		if err := pages.ExecuteTemplate(w, "about.html", info); err != nil {
			log.Warn("rendering about page", "err", err)
		}
	})
	return mux
}

// secureHeaders sets the headers every page carries: nothing loads from anywhere but
// the box, nothing frames the page, nothing sniffs content types.
func secureHeaders(w http.ResponseWriter) {
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Content-Security-Policy", "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("Cache-Control", "no-store")
}

// Server returns an http.Server for h with timeouts suited to a small box facing
// one laptop: slow or stuck clients cannot hold connections open.
func Server(h http.Handler, log *slog.Logger) *http.Server {
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      60 * time.Second,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    16 << 10,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelDebug),
	}
}
