package localapi

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"syscall"
)

// Client talks to the local API.
type Client struct {
	Socket string
	hc     *http.Client
}

// NewClient returns a client for the API socket at path.
func NewClient(path string) *Client {
	return &Client{
		Socket: path,
		hc: &http.Client{Transport: &http.Transport{
			DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
				var d net.Dialer
				return d.DialContext(ctx, "unix", path)
			},
		}},
	}
}

// HTTP is an HTTP client whose every connection goes to the API's socket
// (for clients of APIs the daemon mounts, such as the audit log's at
// BaseURL+"/v1/audit/").
func (c *Client) HTTP() *http.Client { return c.hc }

// BaseURL is the URL the socket's API is reached at through HTTP.
const BaseURL = "http://redoubt"

// do sends req, turning the socket's errors into plain words.
func (c *Client) do(req *http.Request) (*http.Response, error) {
	resp, err := c.hc.Do(req)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) || errors.Is(err, syscall.ECONNREFUSED) {
			return nil, fmt.Errorf("%w: %s", ErrNoDaemon, c.Socket)
		}
		if errors.Is(err, os.ErrPermission) {
			return nil, fmt.Errorf("the local API at %s is for root only: run this command as root", c.Socket)
		}
		return nil, err
	}
	return resp, nil
}

func (c *Client) get(ctx context.Context, path string) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://redoubt"+path, nil)
	if err != nil {
		return nil, err
	}
	resp, err := c.do(req)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		defer resp.Body.Close()
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		return nil, fmt.Errorf("%s: %s: %s", path, resp.Status, msg)
	}
	return resp, nil
}

// GetJSON fetches path and decodes its JSON body into v.
func (c *Client) GetJSON(ctx context.Context, path string, v any) error {
	resp, err := c.get(ctx, path)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		return fmt.Errorf("decoding %s: %w", path, err)
	}
	return nil
}

// Status fetches the box's status.
func (c *Client) Status(ctx context.Context) (Status, error) {
	var s Status
	return s, c.GetJSON(ctx, "/v1/status", &s)
}

// Leaks fetches the leak log.
func (c *Client) Leaks(ctx context.Context) (Leaks, error) {
	var l Leaks
	return l, c.GetJSON(ctx, "/v1/leaks", &l)
}

// Pcap copies the recent dropped frames, as a pcap file, to w.
func (c *Client) Pcap(ctx context.Context, w io.Writer) error {
	resp, err := c.get(ctx, "/v1/leaks.pcap")
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	_, err = io.Copy(w, resp.Body)
	return err
}

// Devices fetches the DHCP leases and counters.
func (c *Client) Devices(ctx context.Context) (Devices, error) {
	var d Devices
	return d, c.GetJSON(ctx, "/v1/devices", &d)
}

// Queries fetches the DNS query log.
func (c *Client) Queries(ctx context.Context) (Queries, error) {
	var q Queries
	return q, c.GetJSON(ctx, "/v1/queries", &q)
}

// FollowLeaks calls fn with each leak entry as it is created or updated, until
// ctx ends or fn returns an error.
func (c *Client) FollowLeaks(ctx context.Context, fn func(json.RawMessage) error) error {
	return c.followPath(ctx, "/v1/leaks/follow", fn)
}

// FollowQueries calls fn with each query-log entry as it is created or updated,
// until ctx ends or fn returns an error.
func (c *Client) FollowQueries(ctx context.Context, fn func(json.RawMessage) error) error {
	return c.followPath(ctx, "/v1/queries/follow", fn)
}

func (c *Client) followPath(ctx context.Context, path string, fn func(json.RawMessage) error) error {
	resp, err := c.get(ctx, path)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		if err := fn(json.RawMessage(sc.Bytes())); err != nil {
			return err
		}
	}
	if ctx.Err() != nil {
		return nil
	}
	return sc.Err()
}

// Call sends a request with a JSON body (nil: none) to path and decodes a
// JSON answer into out (nil: ignored). An error answer's message is
// returned as the error.
func (c *Client) Call(ctx context.Context, method, path string, body, out any) error {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, "http://redoubt"+path, rd)
	if err != nil {
		return err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return err
	}
	if resp.StatusCode >= 300 {
		var e struct{ Error string }
		if json.Unmarshal(raw, &e) == nil && e.Error != "" {
			return errors.New(e.Error)
		}
		return fmt.Errorf("%s %s: %s: %s", method, path, resp.Status, bytes.TrimSpace(raw))
	}
	if out != nil && len(raw) > 0 {
		if p, ok := out.(*[]byte); ok {
			*p = raw
			return nil
		}
		return json.Unmarshal(raw, out)
	}
	return nil
}
