package localapi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/redoubt/redoubt/vpn/external"
	"github.com/redoubt/redoubt/vpn/wgconfig"
)

// VPN is what the local API does with the external VPN.
type VPN interface {
	// Status is the VPN's health; it holds no secret.
	Status() external.Status
	// Set validates and applies a wg-quick config; a *wgconfig.Error says what
	// is wrong with it.
	Set(text []byte) (*wgconfig.Config, error)
	// Clear removes the config set through the API.
	Clear() error
	// Fetch gets a URL through the tunnel (a diagnostic).
	Fetch(ctx context.Context, url string, keep int) (external.FetchResult, error)
	// Test checks the VPN step by step.
	Test(ctx context.Context) external.TestResult
}

// VPNError is the body of a refused PUT /v1/vpn.
type VPNError struct {
	Error string `json:"error"`
	// Line, Section and Key locate a mistake in the config text.
	Line    int    `json:"line,omitempty"`
	Section string `json:"section,omitempty"`
	Key     string `json:"key,omitempty"`
}

// FetchRequest is the body of POST /v1/vpn/fetch.
type FetchRequest struct {
	URL string `json:"url"`
	// Keep is how many bytes of the body to return (the rest is counted).
	Keep int `json:"keep,omitempty"`
	// TimeoutSeconds bounds the fetch (default 30, at most 600).
	TimeoutSeconds int `json:"timeout_seconds,omitempty"`
}

func vpnRoutes(mux *http.ServeMux, v VPN) {
	if v == nil {
		return
	}
	mux.HandleFunc("GET /v1/vpn", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, v.Status())
	})
	mux.HandleFunc("PUT /v1/vpn", func(w http.ResponseWriter, r *http.Request) {
		text, err := io.ReadAll(io.LimitReader(r.Body, wgconfig.MaxSize+1))
		if err != nil {
			writeError(w, http.StatusBadRequest, VPNError{Error: "reading the config: " + err.Error()})
			return
		}
		if _, err := v.Set(text); err != nil {
			var we *wgconfig.Error
			status := http.StatusConflict
			body := VPNError{Error: err.Error()}
			if errors.As(err, &we) {
				status = http.StatusBadRequest
				body.Line, body.Section, body.Key = we.Line, we.Section, we.Key
			}
			writeError(w, status, body)
			return
		}
		writeJSON(w, v.Status())
	})
	mux.HandleFunc("DELETE /v1/vpn", func(w http.ResponseWriter, r *http.Request) {
		if err := v.Clear(); err != nil {
			writeError(w, http.StatusConflict, VPNError{Error: err.Error()})
			return
		}
		writeJSON(w, v.Status())
	})
	mux.HandleFunc("POST /v1/vpn/test", func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), 30*time.Second)
		defer cancel()
		writeJSON(w, v.Test(ctx))
	})
	mux.HandleFunc("POST /v1/vpn/fetch", func(w http.ResponseWriter, r *http.Request) {
		var req FetchRequest
		if err := json.NewDecoder(io.LimitReader(r.Body, 64<<10)).Decode(&req); err != nil {
			writeError(w, http.StatusBadRequest, VPNError{Error: "reading the request: " + err.Error()})
			return
		}
		timeout := 30 * time.Second
		if req.TimeoutSeconds > 0 {
			timeout = time.Duration(min(req.TimeoutSeconds, 600)) * time.Second
		}
		ctx, cancel := context.WithTimeout(r.Context(), timeout)
		defer cancel()
		res, err := v.Fetch(ctx, req.URL, req.Keep)
		if err != nil {
			writeError(w, http.StatusBadGateway, VPNError{Error: err.Error()})
			return
		}
		writeJSON(w, res)
	})
}

func writeError(w http.ResponseWriter, status int, body VPNError) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(body)
}

// VPNStatus fetches the VPN's status.
func (c *Client) VPNStatus(ctx context.Context) (external.Status, error) {
	var s external.Status
	return s, c.GetJSON(ctx, "/v1/vpn", &s)
}

// SetVPN sends a wg-quick config to the box.
func (c *Client) SetVPN(ctx context.Context, text []byte) (external.Status, error) {
	var s external.Status
	return s, c.vpnCall(ctx, http.MethodPut, "/v1/vpn", bytes.NewReader(text), &s)
}

// ClearVPN removes the VPN config set through the API.
func (c *Client) ClearVPN(ctx context.Context) (external.Status, error) {
	var s external.Status
	return s, c.vpnCall(ctx, http.MethodDelete, "/v1/vpn", nil, &s)
}

// FetchVPN asks the box to fetch a URL through its tunnel.
func (c *Client) FetchVPN(ctx context.Context, req FetchRequest) (external.FetchResult, error) {
	var res external.FetchResult
	b, _ := json.Marshal(req)
	return res, c.vpnCall(ctx, http.MethodPost, "/v1/vpn/fetch", bytes.NewReader(b), &res)
}

func (c *Client) vpnCall(ctx context.Context, method, path string, body io.Reader, v any) error {
	req, err := http.NewRequestWithContext(ctx, method, "http://redoubt"+path, body)
	if err != nil {
		return err
	}
	resp, err := c.do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		var ve VPNError
		raw, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
		if json.Unmarshal(raw, &ve) == nil && ve.Error != "" {
			return errors.New(ve.Error)
		}
		return fmt.Errorf("%s %s: %s: %s", method, path, resp.Status, strings.TrimSpace(string(raw)))
	}
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		return fmt.Errorf("decoding %s: %w", path, err)
	}
	return nil
}
