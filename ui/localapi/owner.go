package localapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
)

// OwnerState says where the box stands with its owner.
type OwnerState struct {
	SetupDone bool   `json:"setup_done"`
	Locked    bool   `json:"locked"`
	BoxName   string `json:"box_name,omitempty"`
}

// Owner is what the local API does for the owner at the box's console.
type Owner interface {
	State() OwnerState
	// SetupCode is the current setup code, "" once setup is done.
	SetupCode() string
	// Unlock opens the vault; the error says why not (wrong passphrase,
	// too many tries).
	Unlock(passphrase []byte) error
	// Lock closes the vault and signs every browser out.
	Lock() error
}

// maxPassphrase bounds what /v1/unlock reads.
const maxPassphrase = 4096

func ownerRoutes(mux *http.ServeMux, o Owner) {
	mux.HandleFunc("GET /v1/setup-code", func(w http.ResponseWriter, r *http.Request) {
		code := o.SetupCode()
		if code == "" {
			http.Error(w, "setup is done: there is no setup code", http.StatusConflict)
			return
		}
		writeJSON(w, map[string]string{"code": code})
	})
	mux.HandleFunc("POST /v1/unlock", func(w http.ResponseWriter, r *http.Request) {
		pass, err := io.ReadAll(io.LimitReader(r.Body, maxPassphrase+1))
		if err != nil || len(pass) > maxPassphrase {
			http.Error(w, "the passphrase could not be read", http.StatusBadRequest)
			return
		}
		if err := o.Unlock(pass); err != nil {
			http.Error(w, err.Error(), http.StatusForbidden)
			return
		}
		writeJSON(w, o.State())
	})
	mux.HandleFunc("POST /v1/lock", func(w http.ResponseWriter, r *http.Request) {
		if err := o.Lock(); err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		writeJSON(w, o.State())
	})
}

// SetupCode fetches the setup code.
func (c *Client) SetupCode(ctx context.Context) (string, error) {
	var v struct{ Code string }
	err := c.GetJSON(ctx, "/v1/setup-code", &v)
	return v.Code, err
}

// Unlock sends the passphrase to unlock the box.
func (c *Client) Unlock(ctx context.Context, passphrase []byte) (OwnerState, error) {
	return c.post(ctx, "/v1/unlock", string(passphrase))
}

// Lock locks the box.
func (c *Client) Lock(ctx context.Context) (OwnerState, error) { return c.post(ctx, "/v1/lock", "") }

func (c *Client) post(ctx context.Context, path, body string) (OwnerState, error) {
	var st OwnerState
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://redoubt"+path, strings.NewReader(body))
	if err != nil {
		return st, err
	}
	resp, err := c.do(req)
	if err != nil {
		return st, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		return st, errors.New(strings.TrimSpace(string(msg)))
	}
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
		return st, fmt.Errorf("decoding %s: %w", path, err)
	}
	return st, nil
}
