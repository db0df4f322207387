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
	"time"
)

// The team's members over the local API (`redoubt team …`): everything the team
// page does, for an owner at the box's console or over SSH.
//
//	GET    /v1/team                             status and members
//	POST   /v1/team/members                     {name, note} → an invitation
//	POST   /v1/team/members/{name}/reissue      → a new invitation (the old key stops working)
//	POST   /v1/team/members/{name}/rename       {name}
//	DELETE /v1/team/members/{name}
//	GET    /v1/team/pending                     devices waiting for approval
//	POST   /v1/team/pending                     {link, name}: a phone's registration link
//	POST   /v1/team/pending/{id}/approve        {member}
//	POST   /v1/team/pending/{id}/reject
//	PUT    /v1/team/mesh                        {login_server, api_key}: the team's Headscale
//	POST   /v1/team/mesh/test                   try it again now
//
// A refused change answers with an Error (400 when a value is wrong, naming the
// field; 409 when the box is locked or the mesh is not set up; 502 when Headscale
// refused or could not be reached).

// TeamStatus is the team mesh at a glance.
type TeamStatus struct {
	Configured  bool   `json:"configured"`
	LoginServer string `json:"login_server,omitempty"`
	Reachable   bool   `json:"reachable"`
	// Detail says what the box last found, in plain words.
	Detail         string `json:"detail,omitempty"`
	ReachEachOther bool   `json:"members_reach_each_other"`
}

// Team is the team's status and members.
type Team struct {
	Status  TeamStatus   `json:"status"`
	Members []TeamMember `json:"members"`
}

// TeamMember is a member and their devices.
type TeamMember struct {
	Name    string       `json:"name"`
	Note    string       `json:"note,omitempty"`
	Created time.Time    `json:"created"`
	Devices []TeamDevice `json:"devices"`
}

// TeamDevice is one of a member's devices in the tailnet.
type TeamDevice struct {
	ID       string    `json:"id"`
	Name     string    `json:"name"`
	OS       string    `json:"os,omitempty"`
	Addrs    []string  `json:"addrs"`
	Online   bool      `json:"online"`
	LastSeen time.Time `json:"last_seen,omitzero"`
}

// PendingDevice is a device (a phone) waiting for the owner's approval.
type PendingDevice struct {
	ID        string    `json:"id"`
	Name      string    `json:"name,omitempty"`
	Requested time.Time `json:"requested"`
}

// Invitation is what a new member needs to join, given once: the key inside
// works once, until Expires.
type Invitation struct {
	Member        string    `json:"member"`
	Expires       time.Time `json:"expires"`
	LoginServer   string    `json:"login_server"`
	Shell         string    `json:"shell_script"`
	PowerShell    string    `json:"powershell_script"`
	QR            []byte    `json:"qr_png"`
	MobileSteps   []string  `json:"mobile_steps"`
	CAFingerprint string    `json:"ca_fingerprint,omitempty"`
}

// MeshSettings are the team's Headscale and its API key (PUT /v1/team/mesh). An
// empty APIKey keeps the current one.
type MeshSettings struct {
	LoginServer string `json:"login_server"`
	APIKey      string `json:"api_key,omitempty"`
}

// TeamAPI is what the local API does with the team; the daemon implements it.
type TeamAPI interface {
	Team(ctx context.Context) (Team, error)
	Add(ctx context.Context, name, note string) (Invitation, error)
	Reissue(ctx context.Context, name string) (Invitation, error)
	Rename(ctx context.Context, old, new string) error
	Remove(ctx context.Context, name string) error
	Pending(ctx context.Context) ([]PendingDevice, error)
	AddPending(ctx context.Context, link, name string) error
	Approve(ctx context.Context, id, member string) error
	Reject(ctx context.Context, id string) error
	SetMesh(ctx context.Context, s MeshSettings) error
	// TestMesh tries the Headscale the box has and says what it found.
	TestMesh(ctx context.Context) (string, error)
}

// Error is the body of a refused request (the team's, the settings' and the
// apps' routes).
type Error struct {
	Error string `json:"error"`
	// Field names the value that is wrong, when one is.
	Field string `json:"field,omitempty"`
}

// FieldError is a refused value, naming it.
type FieldError struct{ Field, Message string }

func (e *FieldError) Error() string { return e.Message }

// Conflict is a change the box cannot make in its state (locked, not set up).
type Conflict struct{ Message string }

func (e *Conflict) Error() string { return e.Message }

// teamTimeout bounds a team change: Headscale is reached through the VPN.
const teamTimeout = 60 * time.Second

func teamRoutes(mux *http.ServeMux, t TeamAPI) {
	if t == nil {
		return
	}
	handle := func(pattern string, fn func(ctx context.Context, r *http.Request) (any, error)) {
		mux.HandleFunc(pattern, func(w http.ResponseWriter, r *http.Request) {
			ctx, cancel := context.WithTimeout(r.Context(), teamTimeout)
			defer cancel()
			v, err := fn(ctx, r)
			if err != nil {
				writeErr(w, err)
				return
			}
			if v == nil {
				v = struct{}{}
			}
			writeJSON(w, v)
		})
	}
	body := readBody
	handle("GET /v1/team", func(ctx context.Context, r *http.Request) (any, error) { return t.Team(ctx) })
	handle("POST /v1/team/members", func(ctx context.Context, r *http.Request) (any, error) {
		var req struct{ Name, Note string }
		if err := body(r, &req); err != nil {
			return nil, err
		}
		return t.Add(ctx, req.Name, req.Note)
	})
	handle("POST /v1/team/members/{name}/reissue", func(ctx context.Context, r *http.Request) (any, error) {
		return t.Reissue(ctx, r.PathValue("name"))
	})
	handle("POST /v1/team/members/{name}/rename", func(ctx context.Context, r *http.Request) (any, error) {
		var req struct{ Name string }
		if err := body(r, &req); err != nil {
			return nil, err
		}
		return nil, t.Rename(ctx, r.PathValue("name"), req.Name)
	})
	handle("DELETE /v1/team/members/{name}", func(ctx context.Context, r *http.Request) (any, error) {
		return nil, t.Remove(ctx, r.PathValue("name"))
	})
	handle("GET /v1/team/pending", func(ctx context.Context, r *http.Request) (any, error) {
		p, err := t.Pending(ctx)
		if p == nil {
			p = []PendingDevice{}
		}
		return p, err
	})
	handle("POST /v1/team/pending", func(ctx context.Context, r *http.Request) (any, error) {
		var req struct{ Link, Name string }
		if err := body(r, &req); err != nil {
			return nil, err
		}
		return nil, t.AddPending(ctx, req.Link, req.Name)
	})
	handle("POST /v1/team/pending/{id}/approve", func(ctx context.Context, r *http.Request) (any, error) {
		var req struct{ Member string }
		if err := body(r, &req); err != nil {
			return nil, err
		}
		return nil, t.Approve(ctx, r.PathValue("id"), req.Member)
	})
	handle("POST /v1/team/pending/{id}/reject", func(ctx context.Context, r *http.Request) (any, error) {
		return nil, t.Reject(ctx, r.PathValue("id"))
	})
	handle("PUT /v1/team/mesh", func(ctx context.Context, r *http.Request) (any, error) {
		var req MeshSettings
		if err := body(r, &req); err != nil {
			return nil, err
		}
		return nil, t.SetMesh(ctx, req)
	})
	handle("POST /v1/team/mesh/test", func(ctx context.Context, r *http.Request) (any, error) {
		msg, err := t.TestMesh(ctx)
		return map[string]string{"result": msg}, err
	})
}

// readBody decodes a request's JSON body (at most 64 KiB).
func readBody(r *http.Request, v any) error {
	if err := json.NewDecoder(io.LimitReader(r.Body, 64<<10)).Decode(v); err != nil {
		return &FieldError{Message: "reading the request: " + err.Error()}
	}
	return nil
}

// writeErr answers a refused change with an Error.
func writeErr(w http.ResponseWriter, err error) {
	body := Error{Error: err.Error()}
	status := http.StatusBadGateway
	var fe *FieldError
	var ce *Conflict
	switch {
	case errors.As(err, &fe):
		status, body.Field = http.StatusBadRequest, fe.Field
	case errors.As(err, &ce):
		status = http.StatusConflict
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(body)
}

// call sends a JSON request and decodes a JSON answer; a refused change comes
// back as a *FieldError, *Conflict or plain error with the box's words.
func (c *Client) call(ctx context.Context, method, path string, in, out any) error {
	var rd io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, "http://redoubt"+path, rd)
	if err != nil {
		return err
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if resp.StatusCode != http.StatusOK {
		var e Error
		if json.Unmarshal(raw, &e) != nil || e.Error == "" {
			return fmt.Errorf("%s %s: %s: %s", method, path, resp.Status, bytes.TrimSpace(raw))
		}
		switch resp.StatusCode {
		case http.StatusBadRequest:
			return &FieldError{Field: e.Field, Message: e.Error}
		case http.StatusConflict:
			return &Conflict{e.Error}
		}
		return errors.New(e.Error)
	}
	if out != nil {
		if err := json.Unmarshal(raw, out); err != nil {
			return fmt.Errorf("decoding %s: %w", path, err)
		}
	}
	return nil
}

// Team fetches the team's status and members.
func (c *Client) Team(ctx context.Context) (Team, error) {
	var t Team
	return t, c.call(ctx, http.MethodGet, "/v1/team", nil, &t)
}

// AddMember adds a member and returns their invitation.
func (c *Client) AddMember(ctx context.Context, name, note string) (Invitation, error) {
	var inv Invitation
	return inv, c.call(ctx, http.MethodPost, "/v1/team/members", map[string]string{"name": name, "note": note}, &inv)
}

// Reissue makes a member a new invitation.
func (c *Client) Reissue(ctx context.Context, name string) (Invitation, error) {
	var inv Invitation
	return inv, c.call(ctx, http.MethodPost, "/v1/team/members/"+url.PathEscape(name)+"/reissue", nil, &inv)
}

// RenameMember renames a member.
func (c *Client) RenameMember(ctx context.Context, old, new string) error {
	return c.call(ctx, http.MethodPost, "/v1/team/members/"+url.PathEscape(old)+"/rename", map[string]string{"name": new}, nil)
}

// RemoveMember removes a member: their devices lose the box at once.
func (c *Client) RemoveMember(ctx context.Context, name string) error {
	return c.call(ctx, http.MethodDelete, "/v1/team/members/"+url.PathEscape(name), nil, nil)
}

// Pending lists the devices waiting for approval.
func (c *Client) Pending(ctx context.Context) ([]PendingDevice, error) {
	var p []PendingDevice
	return p, c.call(ctx, http.MethodGet, "/v1/team/pending", nil, &p)
}

// AddPending hands the box a phone's registration link.
func (c *Client) AddPending(ctx context.Context, link, name string) error {
	return c.call(ctx, http.MethodPost, "/v1/team/pending", map[string]string{"link": link, "name": name}, nil)
}

// Approve registers a waiting device as one of member's.
func (c *Client) Approve(ctx context.Context, id, member string) error {
	return c.call(ctx, http.MethodPost, "/v1/team/pending/"+url.PathEscape(id)+"/approve", map[string]string{"member": member}, nil)
}

// Reject refuses a waiting device.
func (c *Client) Reject(ctx context.Context, id string) error {
	return c.call(ctx, http.MethodPost, "/v1/team/pending/"+url.PathEscape(id)+"/reject", nil, nil)
}

// SetMesh gives the box the team's Headscale (tried before it is kept).
func (c *Client) SetMesh(ctx context.Context, s MeshSettings) error {
	return c.call(ctx, http.MethodPut, "/v1/team/mesh", s, nil)
}

// TestMesh asks the box to try its Headscale now.
func (c *Client) TestMesh(ctx context.Context) (string, error) {
	var v struct{ Result string }
	err := c.call(ctx, http.MethodPost, "/v1/team/mesh/test", nil, &v)
	return v.Result, err
}
