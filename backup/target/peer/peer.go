// Package peer keeps backups on a teammate's box (its backup/peerstore),
// reached over the team's tailnet: the connection is the tailnet's
// (WireGuard), the objects are the repository's (encrypted), and the
// teammate's box learns nothing of their content. The backup room builds it
// with a dial function through the box's tailnet node.
package peer

import (
	"bytes"
	"context"
	"crypto/hkdf"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/redoubt/redoubt/backup/target"
)

// Port is where boxes serve their peer stores on the tailnet.
const Port = 8443

// Store is a store on a peer's box.
type Store struct {
	addr string // host:port
	code string
	hc   *http.Client
}

// New makes the store at the peer's tailnet address (a name or an IP, with
// or without :port), opened by code (the invitation code to write, or the
// read code), dialing with dial.
func New(addr, code string, dial func(ctx context.Context, network, addr string) (net.Conn, error)) (*Store, error) {
	if addr == "" || strings.ContainsAny(addr, "/ ") {
		return nil, fmt.Errorf("peer address %q: want the teammate's box's name or address in the tailnet", addr)
	}
	if _, _, err := net.SplitHostPort(addr); err != nil {
		addr = net.JoinHostPort(addr, fmt.Sprint(Port))
	}
	if len(code) < 32 {
		return nil, errors.New("peer: the code is too short: paste the whole invitation code")
	}
	tr := &http.Transport{DialContext: dial, MaxIdleConnsPerHost: 4, IdleConnTimeout: time.Minute}
	return &Store{addr: addr, code: code, hc: &http.Client{Transport: tr, Timeout: 10 * time.Minute}}, nil
}

// ReadCode is the code a box registers with its peers so that, with the
// recovery key alone, a fresh box can read its backup back.
func ReadCode(recoveryKey []byte) string {
	k, _ := hkdf.Key(sha256.New, recoveryKey, nil, "redoubt backup peer read code", 24)
	return base64.RawURLEncoding.EncodeToString(k)
}

// String implements target.Store.
func (s *Store) String() string { return "peer " + s.addr }

func (s *Store) do(ctx context.Context, method, path string, body []byte, hdr http.Header) (*http.Response, error) {
	u := "http://" + s.addr + "/peer/v1/" + path
	req, err := http.NewRequestWithContext(ctx, method, u, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.ContentLength = int64(len(body))
	if body == nil {
		req.Body = http.NoBody
	}
	for k, v := range hdr {
		req.Header[k] = v
	}
	req.Header.Set("Authorization", "Bearer "+s.code)
	resp, err := s.hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("peer %s: %w", s.addr, err)
	}
	if resp.StatusCode >= 300 {
		defer resp.Body.Close()
		var e struct{ Error string }
		json.NewDecoder(io.LimitReader(resp.Body, 4096)).Decode(&e)
		if resp.StatusCode == http.StatusNotFound {
			return nil, fmt.Errorf("peer %s: %s: %w", s.addr, path, target.ErrNotFound)
		}
		return nil, fmt.Errorf("peer %s: %s %s: %s %s", s.addr, method, path, resp.Status, e.Error)
	}
	return resp, nil
}

func objPath(name string) string { return "o/" + (&url.URL{Path: name}).EscapedPath() }

// Put implements target.Store.
func (s *Store) Put(ctx context.Context, name string, data []byte) error {
	if err := target.CheckName(name); err != nil {
		return err
	}
	resp, err := s.do(ctx, http.MethodPut, objPath(name), data, nil)
	if err != nil {
		return err
	}
	resp.Body.Close()
	return nil
}

// Get implements target.Store.
func (s *Store) Get(ctx context.Context, name string) ([]byte, error) {
	return s.get(ctx, name, "")
}

// GetRange implements target.Store.
func (s *Store) GetRange(ctx context.Context, name string, off, n int64) ([]byte, error) {
	r := fmt.Sprintf("bytes=%d-%d", off, off+n-1)
	if off < 0 {
		r = fmt.Sprintf("bytes=%d", off)
	}
	return s.get(ctx, name, r)
}

func (s *Store) get(ctx context.Context, name, rng string) ([]byte, error) {
	if err := target.CheckName(name); err != nil {
		return nil, err
	}
	hdr := http.Header{}
	if rng != "" {
		hdr.Set("Range", rng)
	}
	resp, err := s.do(ctx, http.MethodGet, objPath(name), nil, hdr)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	return io.ReadAll(io.LimitReader(resp.Body, 1<<30))
}

// List implements target.Store.
func (s *Store) List(ctx context.Context, prefix string) ([]target.Object, error) {
	resp, err := s.do(ctx, http.MethodGet, "list?prefix="+url.QueryEscape(prefix), nil, nil)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var objs []struct {
		Name string `json:"name"`
		Size int64  `json:"size"`
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 64<<20)).Decode(&objs); err != nil {
		return nil, fmt.Errorf("peer %s: the list does not read: %w", s.addr, err)
	}
	out := make([]target.Object, 0, len(objs))
	for _, o := range objs {
		if target.CheckName(o.Name) == nil {
			out = append(out, target.Object{Name: o.Name, Size: o.Size})
		}
	}
	return out, nil
}

// Delete implements target.Store.
func (s *Store) Delete(ctx context.Context, name string) error {
	if err := target.CheckName(name); err != nil {
		return err
	}
	resp, err := s.do(ctx, http.MethodDelete, objPath(name), nil, nil)
	if err != nil {
		return err
	}
	resp.Body.Close()
	return nil
}

// RegisterReadCode tells the peer to accept code for reading.
func (s *Store) RegisterReadCode(ctx context.Context, code string) error {
	resp, err := s.do(ctx, http.MethodPut, "read-code", []byte(code), nil)
	if err != nil {
		return err
	}
	resp.Body.Close()
	return nil
}

// Usage is what the peer says of the quota.
func (s *Store) Usage(ctx context.Context) (used, quota int64, err error) {
	resp, err := s.do(ctx, http.MethodGet, "usage", nil, nil)
	if err != nil {
		return 0, 0, err
	}
	defer resp.Body.Close()
	var u struct{ Used, Quota int64 }
	err = json.NewDecoder(resp.Body).Decode(&u)
	return u.Used, u.Quota, err
}
