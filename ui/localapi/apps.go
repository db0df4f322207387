package localapi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"

	"github.com/redoubt/redoubt/apps"
)

// Apps is what the local API does with the apps (the apps' host).
type Apps interface {
	List() []apps.Status
	Info(id string) (apps.Info, error)
	Status(id string) (apps.Status, error)
	// Enable starts an app now; Disable stops it.
	Enable(id string) error
	Disable(id string) error
	Option(id, name string) (string, error)
	// SetOption checks and applies an option; an *apps.OptionError says
	// what is accepted.
	SetOption(id, name, value string) (string, error)
	Passwords(id string) ([]apps.Password, error)
	AddPassword(id, label string) (string, error)
	RevokePassword(id, label string) error
}

// AppOption is an option's value (GET and PUT /v1/apps/ID/options/NAME).
type AppOption struct {
	App   string `json:"app"`
	Name  string `json:"name"`
	Value string `json:"value"`
}

// AppPassword is a new app password, shown once.
type AppPassword struct {
	Label    string `json:"label"`
	Password string `json:"password"`
}

// appsRoutes serves the apps:
//
//	GET    /v1/apps                        every app's status
//	GET    /v1/apps/ID                     one app in full (manifest, options)
//	GET    /v1/apps/ID/status              installed, running, published
//	POST   /v1/apps/ID/enable              start it now
//	POST   /v1/apps/ID/disable             stop it now
//	GET    /v1/apps/ID/options/NAME        an option's value
//	PUT    /v1/apps/ID/options/NAME        set it ({"value": "…"})
//	GET    /v1/apps/ID/passwords           its app passwords (labels)
//	POST   /v1/apps/ID/passwords           make one ({"label": "…"}): the password, once
//	DELETE /v1/apps/ID/passwords/LABEL     revoke one
//
// Errors are JSON ({"error": …}): 404 for an unknown app, 409 while the box
// is locked, 400 for a refused value.
func appsRoutes(mux *http.ServeMux, a Apps) {
	if a == nil {
		return
	}
	fail := func(w http.ResponseWriter, err error) {
		status := http.StatusBadRequest
		var oe *apps.OptionError
		switch {
		case errors.Is(err, apps.ErrNoApp):
			status = http.StatusNotFound
		case errors.Is(err, apps.ErrLocked):
			status = http.StatusConflict
		case errors.As(err, &oe):
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		json.NewEncoder(w).Encode(Error{Error: err.Error()})
	}
	body := func(w http.ResponseWriter, r *http.Request, v any) bool {
		dec := json.NewDecoder(io.LimitReader(r.Body, 16<<10))
		dec.DisallowUnknownFields()
		if err := dec.Decode(v); err != nil {
			fail(w, fmt.Errorf("reading the request: %w", err))
			return false
		}
		return true
	}
	mux.HandleFunc("GET /v1/apps", func(w http.ResponseWriter, r *http.Request) { writeJSON(w, a.List()) })
	mux.HandleFunc("GET /v1/apps/{id}", func(w http.ResponseWriter, r *http.Request) {
		info, err := a.Info(r.PathValue("id"))
		if err != nil {
			fail(w, err)
			return
		}
		writeJSON(w, info)
	})
	status := func(w http.ResponseWriter, r *http.Request) {
		st, err := a.Status(r.PathValue("id"))
		if err != nil {
			fail(w, err)
			return
		}
		writeJSON(w, st)
	}
	mux.HandleFunc("GET /v1/apps/{id}/status", status)
	mux.HandleFunc("POST /v1/apps/{id}/enable", func(w http.ResponseWriter, r *http.Request) {
		if err := a.Enable(r.PathValue("id")); err != nil {
			fail(w, err)
			return
		}
		status(w, r)
	})
	mux.HandleFunc("POST /v1/apps/{id}/disable", func(w http.ResponseWriter, r *http.Request) {
		if err := a.Disable(r.PathValue("id")); err != nil {
			fail(w, err)
			return
		}
		status(w, r)
	})
	mux.HandleFunc("GET /v1/apps/{id}/options/{name}", func(w http.ResponseWriter, r *http.Request) {
		v, err := a.Option(r.PathValue("id"), r.PathValue("name"))
		if err != nil {
			fail(w, err)
			return
		}
		writeJSON(w, AppOption{App: r.PathValue("id"), Name: r.PathValue("name"), Value: v})
	})
	mux.HandleFunc("PUT /v1/apps/{id}/options/{name}", func(w http.ResponseWriter, r *http.Request) {
		var in struct {
			Value string `json:"value"`
		}
		if !body(w, r, &in) {
			return
		}
		v, err := a.SetOption(r.PathValue("id"), r.PathValue("name"), in.Value)
		if err != nil {
			fail(w, err)
			return
		}
		writeJSON(w, AppOption{App: r.PathValue("id"), Name: r.PathValue("name"), Value: v})
	})
	mux.HandleFunc("GET /v1/apps/{id}/passwords", func(w http.ResponseWriter, r *http.Request) {
		ps, err := a.Passwords(r.PathValue("id"))
		if err != nil {
			fail(w, err)
			return
		}
		if ps == nil {
			ps = []apps.Password{}
		}
		writeJSON(w, ps)
	})
	mux.HandleFunc("POST /v1/apps/{id}/passwords", func(w http.ResponseWriter, r *http.Request) {
		var in struct {
			Label string `json:"label"`
		}
		if !body(w, r, &in) {
			return
		}
		pw, err := a.AddPassword(r.PathValue("id"), in.Label)
		if err != nil {
			fail(w, err)
			return
		}
		w.Header().Set("Cache-Control", "no-store")
		writeJSON(w, AppPassword{Label: in.Label, Password: pw})
	})
	mux.HandleFunc("DELETE /v1/apps/{id}/passwords/{label}", func(w http.ResponseWriter, r *http.Request) {
		if err := a.RevokePassword(r.PathValue("id"), r.PathValue("label")); err != nil {
			fail(w, err)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	})
}

// appsCall sends a request to the apps' routes and decodes the answer into v
// (nil: none), turning a refusal into its message.
func (c *Client) appsCall(ctx context.Context, method, path string, in, v any) error {
	var body io.Reader
	if in != nil {
		raw, _ := json.Marshal(in)
		body = bytes.NewReader(raw)
	}
	req, err := http.NewRequestWithContext(ctx, method, "http://redoubt"+path, body)
	if err != nil {
		return err
	}
	resp, err := c.do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode >= 300 {
		var e Error
		raw, _ := io.ReadAll(io.LimitReader(resp.Body, 16<<10))
		if json.Unmarshal(raw, &e) == nil && e.Error != "" {
			return errors.New(e.Error)
		}
		return fmt.Errorf("%s %s: %s: %s", method, path, resp.Status, raw)
	}
	if v == nil {
		return nil
	}
	return json.NewDecoder(resp.Body).Decode(v)
}

func appPath(id string, rest ...string) string {
	p := "/v1/apps/" + url.PathEscape(id)
	for _, r := range rest {
		p += "/" + url.PathEscape(r)
	}
	return p
}

// Apps lists the apps.
func (c *Client) Apps(ctx context.Context) ([]apps.Status, error) {
	var out []apps.Status
	return out, c.appsCall(ctx, http.MethodGet, "/v1/apps", nil, &out)
}

// AppInfo describes an app in full.
func (c *Client) AppInfo(ctx context.Context, id string) (apps.Info, error) {
	var out apps.Info
	return out, c.appsCall(ctx, http.MethodGet, appPath(id), nil, &out)
}

// AppStatus says whether an app is installed, running and published.
func (c *Client) AppStatus(ctx context.Context, id string) (apps.Status, error) {
	var out apps.Status
	return out, c.appsCall(ctx, http.MethodGet, appPath(id, "status"), nil, &out)
}

// EnableApp starts an app.
func (c *Client) EnableApp(ctx context.Context, id string) (apps.Status, error) {
	var out apps.Status
	return out, c.appsCall(ctx, http.MethodPost, appPath(id, "enable"), nil, &out)
}

// DisableApp stops an app.
func (c *Client) DisableApp(ctx context.Context, id string) (apps.Status, error) {
	var out apps.Status
	return out, c.appsCall(ctx, http.MethodPost, appPath(id, "disable"), nil, &out)
}

// AppOption reads an option.
func (c *Client) AppOption(ctx context.Context, id, name string) (string, error) {
	var out AppOption
	err := c.appsCall(ctx, http.MethodGet, appPath(id, "options", name), nil, &out)
	return out.Value, err
}

// SetAppOption sets an option and returns its value as kept.
func (c *Client) SetAppOption(ctx context.Context, id, name, value string) (string, error) {
	var out AppOption
	err := c.appsCall(ctx, http.MethodPut, appPath(id, "options", name), map[string]string{"value": value}, &out)
	return out.Value, err
}

// AppPasswords lists an app's passwords.
func (c *Client) AppPasswords(ctx context.Context, id string) ([]apps.Password, error) {
	var out []apps.Password
	return out, c.appsCall(ctx, http.MethodGet, appPath(id, "passwords"), nil, &out)
}

// AddAppPassword makes an app password and returns it (shown once).
func (c *Client) AddAppPassword(ctx context.Context, id, label string) (string, error) {
	var out AppPassword
	err := c.appsCall(ctx, http.MethodPost, appPath(id, "passwords"), map[string]string{"label": label}, &out)
	return out.Password, err
}

// RevokeAppPassword revokes an app password.
func (c *Client) RevokeAppPassword(ctx context.Context, id, label string) error {
	return c.appsCall(ctx, http.MethodDelete, appPath(id, "passwords", label), nil, nil)
}
