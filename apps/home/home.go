// Package home is the members' page, the first app on the platform: what
// team members see at the box's name in the tailnet (https://<box>/, port
// 443 of the box's tailnet address): the apps the box offers them, who the
// box knows them as, and a download to check their connection to the box. It
// is served on the tailnet only; the owner's pages (package ui) never are.
// apps/builtin lists it.
package home

import (
	"context"
	"embed"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"sync"

	"github.com/redoubt/redoubt/apps"
	"github.com/redoubt/redoubt/apps/web"
)

//go:embed manifest.toml
var manifestTOML []byte

//go:embed assets
var assets embed.FS

var manifest = sync.OnceValue(func() apps.Manifest { return apps.MustParseManifest(manifestTOML) })

// Link is one service the box offers members.
type Link struct {
	Name, URL, What string
}

// Info is what the page shows besides the caller.
type Info struct {
	// BoxName is the box's name.
	BoxName func() string
	// Apps are the apps published on the tailnet, with their URLs there.
	Apps func() []Link
}

// App is the members' page as an app.
type App struct{ info Info }

// New returns the app.
func New(info Info) *App { return &App{info: info} }

// Manifest implements apps.App.
func (a *App) Manifest() apps.Manifest { return manifest() }

// Start implements apps.App.
func (a *App) Start(_ context.Context, env apps.Env) (http.Handler, error) {
	return Handler(a.info, env.Logger())
}

// Handler serves the members' page.
func Handler(info Info, log *slog.Logger) (http.Handler, error) {
	files := web.Assets(assets, "home")
	pages, err := web.NewTemplates(files, "home.html", nil, nil)
	if err != nil {
		return nil, fmt.Errorf("the members' page: %w", err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		v := struct {
			BoxName, Caller, Device string
			List                    []Link
		}{BoxName: "redoubt"}
		if info.BoxName != nil && info.BoxName() != "" {
			v.BoxName = info.BoxName()
		}
		if info.Apps != nil {
			v.List = info.Apps()
		}
		if c, ok := apps.CallerFrom(r.Context()); ok {
			v.Caller, v.Device = c.Name(), c.Device
		}
		if err := pages.Render(w, http.StatusOK, "home", v); err != nil {
			log.Warn("rendering the members' page", "err", err)
		}
	})
	mux.Handle("GET /static/", http.StripPrefix("/static/", web.Static(files, "static")))
	mux.HandleFunc("GET /speed", speed)
	return web.Secure(mux, web.Policy{}), nil
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
