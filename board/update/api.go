package update

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"

	"github.com/redoubt/redoubt/board/bundle"
	"github.com/redoubt/redoubt/board/health"
)

// MaxUpload bounds an uploaded update.
const MaxUpload = 512 << 20

// API serves the board's part of the local admin API, under /v1/board/:
//
//	GET  /v1/board/health          the health report (health.Report)
//	GET  /v1/board/update          the update status (Status)
//	POST /v1/board/update          apply the update in the body; ?restart=1 restarts into its trial
//	POST /v1/board/update/fetch    {"url": "…"}: fetch through the VPN and apply
//	POST /v1/board/update/restart  restart into the staged update's trial
type API struct {
	Updater *Updater        // nil on a box not booted from a Redoubt image
	Health  *health.Checker // nil: no report
}

// Handler returns the API's handler.
func (a API) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/board/health", func(w http.ResponseWriter, r *http.Request) {
		if a.Health == nil {
			httpError(w, http.StatusNotFound, errors.New("no health check on this box"))
			return
		}
		writeJSON(w, a.Health.Run(r.Context()))
	})
	mux.HandleFunc("GET /v1/board/update", func(w http.ResponseWriter, r *http.Request) {
		if !a.have(w) {
			return
		}
		st, err := a.Updater.Status()
		if err != nil {
			httpError(w, http.StatusInternalServerError, err)
			return
		}
		writeJSON(w, st)
	})
	mux.HandleFunc("POST /v1/board/update", func(w http.ResponseWriter, r *http.Request) {
		if !a.have(w) {
			return
		}
		m, err := a.Updater.Apply(r.Context(), http.MaxBytesReader(w, r.Body, MaxUpload), "upload")
		a.finish(w, r, m, err)
	})
	mux.HandleFunc("POST /v1/board/update/fetch", func(w http.ResponseWriter, r *http.Request) {
		if !a.have(w) {
			return
		}
		var req struct {
			URL string `json:"url"`
		}
		if err := json.NewDecoder(io.LimitReader(r.Body, 4096)).Decode(&req); err != nil {
			httpError(w, http.StatusBadRequest, fmt.Errorf("reading the request: %w", err))
			return
		}
		m, err := a.Updater.Fetch(r.Context(), req.URL)
		a.finish(w, r, m, err)
	})
	mux.HandleFunc("POST /v1/board/update/restart", func(w http.ResponseWriter, r *http.Request) {
		if !a.have(w) {
			return
		}
		if err := a.Updater.Restart(); err != nil {
			httpError(w, http.StatusConflict, err)
			return
		}
		writeJSON(w, map[string]string{"restarting": "yes"})
	})
	return mux
}

func (a API) have(w http.ResponseWriter) bool {
	if a.Updater == nil {
		httpError(w, http.StatusNotFound, errors.New("updates need a box started from a Redoubt image (this one was not)"))
		return false
	}
	return true
}

// Applied is the answer to an applied update.
type Applied struct {
	Version    string `json:"version"`
	Hash       string `json:"hash"`
	Restarting bool   `json:"restarting"`
}

func (a API) finish(w http.ResponseWriter, r *http.Request, m bundle.Manifest, err error) {
	if err != nil {
		code := http.StatusBadRequest
		switch {
		case errors.Is(err, ErrBusy), errors.Is(err, ErrOnTrial):
			code = http.StatusConflict
		case errors.Is(err, bundle.ErrSignature):
			code = http.StatusForbidden
		}
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			code = http.StatusRequestEntityTooLarge
		}
		httpError(w, code, err)
		return
	}
	out := Applied{Version: m.Version, Hash: m.Hash()}
	if r.URL.Query().Get("restart") == "1" {
		out.Restarting = true
		defer func() {
			go func() {
				time.Sleep(500 * time.Millisecond) // let the answer leave first
				a.Updater.Restart()
			}()
		}()
	}
	writeJSON(w, out)
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(v)
}

func httpError(w http.ResponseWriter, code int, err error) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(map[string]string{"error": err.Error()})
}

// Client talks to the board API over the local API's Unix socket.
type Client struct{ Socket string }

func (c Client) http() *http.Client {
	return &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "unix", c.Socket)
	}}}
}

func (c Client) do(ctx context.Context, method, path string, body io.Reader, out any) error {
	req, err := http.NewRequestWithContext(ctx, method, "http://redoubt"+path, body)
	if err != nil {
		return err
	}
	resp, err := c.http().Do(req)
	if err != nil {
		return fmt.Errorf("talking to the box at %s: %w", c.Socket, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if resp.StatusCode != http.StatusOK {
		var e struct {
			Error string `json:"error"`
		}
		if json.Unmarshal(b, &e) == nil && e.Error != "" {
			return errors.New(e.Error)
		}
		return fmt.Errorf("%s %s: %s", method, path, resp.Status)
	}
	if out != nil {
		return json.Unmarshal(b, out)
	}
	return nil
}

// Health fetches the health report.
func (c Client) Health(ctx context.Context) (health.Report, error) {
	var r health.Report
	return r, c.do(ctx, http.MethodGet, "/v1/board/health", nil, &r)
}

// Status fetches the update status.
func (c Client) Status(ctx context.Context) (Status, error) {
	var s Status
	return s, c.do(ctx, http.MethodGet, "/v1/board/update", nil, &s)
}

// Upload applies the update read from r; restart restarts into its trial.
func (c Client) Upload(ctx context.Context, r io.Reader, restart bool) (Applied, error) {
	var a Applied
	p := "/v1/board/update"
	if restart {
		p += "?restart=1"
	}
	return a, c.do(ctx, http.MethodPost, p, r, &a)
}

// Fetch fetches and applies an update through the VPN.
func (c Client) Fetch(ctx context.Context, url string, restart bool) (Applied, error) {
	b, _ := json.Marshal(map[string]string{"url": url})
	var a Applied
	p := "/v1/board/update/fetch"
	if restart {
		p += "?restart=1"
	}
	return a, c.do(ctx, http.MethodPost, p, bytes.NewReader(b), &a)
}

// Restart restarts into the staged update.
func (c Client) Restart(ctx context.Context) error {
	return c.do(ctx, http.MethodPost, "/v1/board/update/restart", nil, nil)
}
