// Package headscale is a client of Headscale's REST API (v1, as served by
// Headscale v0.29): health, users, pre-auth keys, nodes, interactive
// registrations and the policy, authenticated with a bearer API key.
//
// It is given the *http.Client to use: the box passes egress.HTTPClient, so every
// request goes through the external VPN. Responses are read up to a bound, every
// request has a deadline, and errors say what was being done; a 401 or 403 says
// that the API key is wrong or expired (ErrUnauthorized). The API key never
// appears in an error, a log line or fmt output of a Client.
//
// Only vpn/members (and the daemon, which builds the client) import it.
package headscale

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Limits on what the client reads and how long it waits.
const (
	// MaxResponse bounds a response body. A node list of a few thousand
	// nodes is well under it.
	MaxResponse = 8 << 20
	// DefaultTimeout bounds one request when the caller's context has no
	// earlier deadline.
	DefaultTimeout = 15 * time.Second
)

// Errors callers tell apart (with errors.Is).
var (
	// ErrUnauthorized: Headscale refused the API key (HTTP 401 or 403).
	ErrUnauthorized = errors.New("the Headscale API key is wrong or expired")
	// ErrNotFound: the user, node, key or registration does not exist.
	ErrNotFound = errors.New("not found")
	// ErrUnreachable: no answer from Headscale (connection, TLS, timeout).
	ErrUnreachable = errors.New("Headscale did not answer")
)

// Client talks to one Headscale server. It is safe for concurrent use.
type Client struct {
	base    *url.URL
	key     string
	hc      *http.Client
	timeout time.Duration
}

// New returns a client of the Headscale at baseURL (its server_url, such as
// https://headscale.example.org), authenticating with apiKey, sending through hc.
func New(baseURL, apiKey string, hc *http.Client) (*Client, error) {
	u, err := ParseURL(baseURL)
	if err != nil {
		return nil, err
	}
	if err := checkAPIKey(apiKey); err != nil {
		return nil, err
	}
	if hc == nil {
		return nil, errors.New("headscale: an HTTP client is required (the egress client, through the VPN)")
	}
	return &Client{base: u, key: apiKey, hc: hc, timeout: DefaultTimeout}, nil
}

// ParseURL checks a Headscale server URL: http or https, a host, no user
// information, query or fragment. The path may name a prefix it is served under.
func ParseURL(s string) (*url.URL, error) {
	u, err := url.Parse(strings.TrimSpace(s))
	if err != nil {
		return nil, fmt.Errorf("Headscale URL %q: %v", s, err)
	}
	switch {
	case u.Scheme != "https" && u.Scheme != "http":
		return nil, fmt.Errorf("Headscale URL %q: want https://host (the server_url in Headscale's config)", s)
	case u.Host == "" || u.Hostname() == "":
		return nil, fmt.Errorf("Headscale URL %q: no host", s)
	case u.User != nil:
		return nil, fmt.Errorf("Headscale URL %q: user information is not allowed in it", s)
	case u.RawQuery != "" || u.Fragment != "" || u.Opaque != "":
		return nil, fmt.Errorf("Headscale URL %q: no query or fragment, please", s)
	}
	u.Path = strings.TrimSuffix(u.Path, "/")
	u.RawPath = ""
	return u, nil
}

// checkAPIKey refuses what could not be an API key or would break the header.
func checkAPIKey(k string) error {
	if k == "" {
		return errors.New("headscale: the API key is empty")
	}
	if len(k) > 512 {
		return errors.New("headscale: the API key is too long to be one")
	}
	for _, c := range k {
		if c <= ' ' || c >= 0x7f {
			return errors.New("headscale: the API key has characters no API key has (spaces, control or non-ASCII characters)")
		}
	}
	return nil
}

// URL is the server's base URL.
func (c *Client) URL() string { return c.base.String() }

// String describes the client without its key.
func (c *Client) String() string { return "headscale.Client(" + c.base.String() + ")" }

// GoString keeps the key out of %#v.
func (c *Client) GoString() string { return c.String() }

// Error is a failed request: what was being done, and what came back.
type Error struct {
	Op      string // what was being done, such as `creating user "alice"`
	Status  int    // the HTTP status; 0 when nothing came back
	Code    int    // the gRPC status code Headscale's gateway put in the body, if any
	Message string // Headscale's message, if any
	Err     error  // the transport error when nothing came back
}

func (e *Error) Error() string {
	switch {
	case e.Err != nil:
		return fmt.Sprintf("%s: %v: %v", e.Op, ErrUnreachable, e.Err)
	case e.Status == http.StatusUnauthorized || e.Status == http.StatusForbidden:
		return fmt.Sprintf("%s: %v (HTTP %d): make a new one with `headscale apikeys create` and give it to the box", e.Op, ErrUnauthorized, e.Status)
	case e.Message != "":
		return fmt.Sprintf("%s: Headscale says: %s (HTTP %d)", e.Op, e.Message, e.Status)
	default:
		return fmt.Sprintf("%s: Headscale answered HTTP %d", e.Op, e.Status)
	}
}

// Unwrap gives the transport error.
func (e *Error) Unwrap() error { return e.Err }

// Is matches ErrUnauthorized, ErrNotFound and ErrUnreachable.
func (e *Error) Is(target error) bool {
	switch target {
	case ErrUnauthorized:
		return e.Status == http.StatusUnauthorized || e.Status == http.StatusForbidden
	case ErrUnreachable:
		return e.Err != nil || e.Status == http.StatusBadGateway || e.Status == http.StatusServiceUnavailable || e.Status == http.StatusGatewayTimeout
	case ErrNotFound:
		return e.Status == http.StatusNotFound || e.Code == codeNotFound || isNotFoundMessage(e.Message)
	}
	return false
}

// codeNotFound is gRPC's NOT_FOUND.
const codeNotFound = 5

// isNotFoundMessage recognises Headscale's "not found" answers that come with
// status 500 (it returns plain errors for some lookups).
func isNotFoundMessage(m string) bool {
	m = strings.ToLower(m)
	for _, s := range []string{"user not found", "node not found", "record not found", "not found in registration cache", "no pending auth session", "acl policy not found"} {
		if strings.Contains(m, s) {
			return true
		}
	}
	return false
}

// apiStatus is the body grpc-gateway sends with an error.
type apiStatus struct {
	Code    int    `json:"code"`
	Message string `json:"message"`
}

// do sends one request to path (segments under /api/v1, escaped here) with an
// optional JSON body and
// decodes a JSON answer into out (nil: the answer is discarded).
func (c *Client) do(ctx context.Context, op, method string, path []string, query url.Values, in, out any) error {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, c.timeout)
		defer cancel()
	}
	u := *c.base
	u.Path, u.RawPath = c.base.Path+"/api/v1", c.base.EscapedPath()+"/api/v1"
	for _, seg := range path {
		u.Path += "/" + seg
		u.RawPath += "/" + url.PathEscape(seg)
	}
	u.RawQuery = query.Encode()
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return &Error{Op: op, Err: err}
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, u.String(), body)
	if err != nil {
		return &Error{Op: op, Err: err}
	}
	req.Header.Set("Authorization", "Bearer "+c.key)
	req.Header.Set("Accept", "application/json")
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return &Error{Op: op, Err: scrub(err, c.key)}
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, MaxResponse+1))
	if err != nil {
		return &Error{Op: op, Err: fmt.Errorf("reading the answer: %w", err)}
	}
	if len(b) > MaxResponse {
		return &Error{Op: op, Status: resp.StatusCode, Message: fmt.Sprintf("the answer is larger than %d bytes", MaxResponse)}
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return decodeError(op, resp.StatusCode, b)
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(b, out); err != nil {
		return &Error{Op: op, Status: resp.StatusCode, Message: "undecodable answer: " + err.Error()}
	}
	return nil
}

// decodeError makes an Error from a non-2xx answer: grpc-gateway's JSON status
// when there is one, else the start of the text.
func decodeError(op string, status int, body []byte) *Error {
	e := &Error{Op: op, Status: status}
	var st apiStatus
	if json.Unmarshal(body, &st) == nil && (st.Message != "" || st.Code != 0) {
		e.Code, e.Message = st.Code, clean(st.Message)
		return e
	}
	if status != http.StatusUnauthorized && status != http.StatusForbidden {
		e.Message = clean(string(body))
	}
	return e
}

// clean keeps a server's message printable and short.
func clean(s string) string {
	s = strings.Map(func(r rune) rune {
		if r < ' ' || r == 0x7f {
			return ' '
		}
		return r
	}, strings.TrimSpace(s))
	if len(s) > 300 {
		s = s[:300] + "…"
	}
	return s
}

// scrub removes the key from an error's text, in case a transport error
// quotes the request.
func scrub(err error, key string) error {
	if key == "" || !strings.Contains(err.Error(), key) {
		return err
	}
	return errors.New(strings.ReplaceAll(err.Error(), key, "(API key)"))
}

// u64 is a uint64 that protojson writes as a string ("12") and others as a
// number.
type u64 uint64

func (n *u64) UnmarshalJSON(b []byte) error {
	s := strings.Trim(string(b), `"`)
	if s == "" || s == "null" {
		*n = 0
		return nil
	}
	v, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		return fmt.Errorf("want an unsigned integer, got %.40q", b)
	}
	*n = u64(v)
	return nil
}

func (n u64) MarshalJSON() ([]byte, error) {
	return []byte(`"` + strconv.FormatUint(uint64(n), 10) + `"`), nil
}

func idPath(id uint64) string { return strconv.FormatUint(id, 10) }

// p is a path under /api/v1, one segment per argument.
func p(segs ...string) []string { return segs }
