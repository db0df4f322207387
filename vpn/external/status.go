package external

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"time"

	"github.com/redoubt/redoubt/vpn/egress"
	"github.com/redoubt/redoubt/vpn/tunnel"
	"github.com/redoubt/redoubt/vpn/wan"
	"github.com/redoubt/redoubt/vpn/wanfw"
	"github.com/redoubt/redoubt/vpn/wgconfig"
)

// Status is the VPN at a glance: what the dashboard, `redoubt vpn status` and
// GET /v1/vpn show. It holds no secret.
type Status struct {
	// State is "up", "connecting", "down" or "not configured"; Reason says why
	// it is not up, in plain words; Since is when it became so.
	State  string    `json:"state"`
	Reason string    `json:"reason,omitempty"`
	Since  time.Time `json:"since"`
	// Source says where the configuration came from; FromFile, that the config
	// file gives it (the API cannot change it).
	Source   string            `json:"source,omitempty"`
	FromFile bool              `json:"from_file"`
	Config   *wgconfig.Summary `json:"config,omitempty"`
	// Endpoint is where WireGuard sends; LastHandshake when the last handshake
	// completed; HandshakeAge its age in seconds (-1: none yet).
	Endpoint      string    `json:"endpoint,omitempty"`
	LastHandshake time.Time `json:"last_handshake,omitzero"`
	HandshakeAge  float64   `json:"handshake_age_seconds"`
	// RxBytes and TxBytes are the encrypted bytes exchanged with the server.
	RxBytes uint64 `json:"rx_bytes"`
	TxBytes uint64 `json:"tx_bytes"`
	// LastReply is when something last came back through the tunnel.
	LastReply time.Time `json:"last_reply,omitzero"`
	// Reconnects counts the times the tunnel came back up after being down.
	Reconnects int `json:"reconnects"`
	// Exit is the public address the VPN's traffic leaves from, when
	// vpn.exit_check names a page that tells it.
	Exit          string            `json:"exit_address,omitempty"`
	ExitCheckedAt time.Time         `json:"exit_checked_at,omitzero"`
	ExitError     string            `json:"exit_error,omitempty"`
	Link          *tunnel.LinkStats `json:"tunnel_link,omitempty"`
	WAN           wan.State         `json:"wan"`
	Firewall      FirewallStatus    `json:"firewall"`
}

// FirewallStatus describes the kernel firewall.
type FirewallStatus struct {
	On        bool   `json:"on"`
	Installed bool   `json:"installed"`
	Rules     string `json:"rules,omitempty"`
	Error     string `json:"error,omitempty"`
	// Direct is the team mesh's direct paths as SetDirect asked for them
	// (zero: none); DirectOpen, whether the installed rules let them through,
	// which they do only while there is a VPN endpoint.
	Direct     wanfw.DirectPaths `json:"direct_paths,omitzero"`
	DirectOpen bool              `json:"direct_paths_open,omitempty"`
	Dropped    wanfw.Counters    `json:"dropped"`
}

// Status reports the VPN's state.
func (v *VPN) Status() Status {
	now := v.now()
	v.mu.Lock()
	h, t, c, src, fw, ex := v.health, v.tun, v.wgcfg, v.source, v.fwState, v.exit
	v.mu.Unlock()
	st := Status{
		State: h.state, Reason: h.reason, Since: h.since, Source: src, FromFile: v.FromFile(),
		Reconnects: h.reconnects, WAN: v.port.State(), Firewall: fw, HandshakeAge: -1,
	}
	if c != nil {
		sum := c.Summarize()
		st.Config = &sum
	}
	if t != nil {
		ts := t.Stats()
		st.Endpoint, st.RxBytes, st.TxBytes = ts.Endpoint, ts.RxBytes, ts.TxBytes
		if !ts.LastHandshake.IsZero() {
			st.LastHandshake = ts.LastHandshake
			st.HandshakeAge = now.Sub(ts.LastHandshake).Seconds()
		}
		if h.lastRx > 0 {
			st.LastReply = h.lastRxAt
		}
		st.Link = &ts.Link
	}
	if ex.addr.IsValid() {
		st.Exit = ex.addr.String()
	}
	st.ExitCheckedAt, st.ExitError = ex.checked, ex.err
	if fw.Installed {
		if cs, err := v.fw.Counters(); err == nil {
			st.Firewall.Dropped = cs
		}
	}
	return st
}

// checkExit asks vpn.exit_check, through the tunnel, where the box's traffic
// appears to come from.
func (v *VPN) checkExit(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	exitCheck := v.config().ExitCheck
	res, err := v.Fetch(ctx, exitCheck, 4096)
	ex := exitState{checked: v.now()}
	if err == nil && res.Status != http.StatusOK {
		err = fmt.Errorf("%s answered %d", exitCheck, res.Status)
	}
	if err == nil {
		if a, ok := findAddress(res.Head); ok {
			ex.addr = a
		} else {
			err = fmt.Errorf("%s did not answer with an address", exitCheck)
		}
	}
	if err != nil {
		ex.err = err.Error()
		v.log.Warn("exit address check", "err", err)
	} else {
		v.log.Info("VPN exit address", "address", ex.addr)
	}
	v.mu.Lock()
	v.exit = ex
	v.mu.Unlock()
}

// findAddress finds the address in an answer: a JSON object's "ip" (or "address")
// field, or the first word that is an address (or address:port).
func findAddress(body string) (netip.Addr, bool) {
	var obj map[string]any
	if json.Unmarshal([]byte(body), &obj) == nil {
		for _, k := range []string{"ip", "address", "ip_addr", "origin"} {
			if s, ok := obj[k].(string); ok {
				if a, err := netip.ParseAddr(strings.TrimSpace(s)); err == nil {
					return a.Unmap(), true
				}
			}
		}
	}
	for _, f := range strings.FieldsFunc(body, func(r rune) bool {
		return r == ' ' || r == '\n' || r == '\t' || r == '\r' || r == '"' || r == ',' || r == '<' || r == '>'
	}) {
		if a, err := netip.ParseAddr(f); err == nil {
			return a.Unmap(), true
		}
		if ap, err := netip.ParseAddrPort(f); err == nil {
			return ap.Addr().Unmap(), true
		}
	}
	return netip.Addr{}, false
}

// FetchResult is what a diagnostic fetch through the tunnel got.
type FetchResult struct {
	URL     string  `json:"url"`
	Status  int     `json:"status"`
	Bytes   int64   `json:"bytes"`
	Seconds float64 `json:"seconds"`
	// Head is the start of the body (at most the limit given, as text).
	Head string `json:"head,omitempty"`
}

// maxFetchHead bounds what a fetch keeps of the body.
const maxFetchHead = 64 << 10

// Fetch gets rawURL through the egress (the tunnel) and reads the whole body,
// keeping its first keep bytes: the owner's "does the VPN work" check, the exit
// address check, and the lab's download benchmark.
func (v *VPN) Fetch(ctx context.Context, rawURL string, keep int) (FetchResult, error) {
	res := FetchResult{URL: rawURL}
	if err := validateURL(rawURL); err != nil {
		return res, fmt.Errorf("fetching %q: %v", rawURL, err)
	}
	keep = min(max(keep, 0), maxFetchHead)
	client := egress.HTTPClient(v.egress, 0)
	defer client.CloseIdleConnections()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, rawURL, nil)
	if err != nil {
		return res, fmt.Errorf("fetching %q: %w", rawURL, err)
	}
	req.Header.Set("User-Agent", "redoubt")
	start := time.Now()
	resp, err := client.Do(req)
	if err != nil {
		return res, fmt.Errorf("fetching %s through the VPN: %w", rawURL, err)
	}
	defer resp.Body.Close()
	res.Status = resp.StatusCode
	head := make([]byte, keep)
	n, err := io.ReadFull(resp.Body, head)
	res.Head = string(head[:n])
	res.Bytes = int64(n)
	if err == nil {
		var m int64
		m, err = io.CopyBuffer(io.Discard, resp.Body, make([]byte, 256<<10))
		res.Bytes += m
	} else if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
		err = nil
	}
	res.Seconds = time.Since(start).Seconds()
	if err != nil {
		return res, fmt.Errorf("reading %s through the VPN after %d bytes: %w", rawURL, res.Bytes, err)
	}
	return res, nil
}

func validateURL(s string) error {
	u, err := url.Parse(s)
	if err != nil {
		return errors.New("not a URL")
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return errors.New("want an http:// or https:// URL")
	}
	if u.Host == "" {
		return errors.New("the URL has no host")
	}
	return nil
}
