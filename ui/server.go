package ui

import (
	"log/slog"
	"net/http"
	"time"
)

// Server returns an http.Server for h with timeouts suited to a small box facing
// one laptop: slow or stuck clients cannot hold connections open. Live feeds
// (server-sent events) are kept alive by their own heartbeats.
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
