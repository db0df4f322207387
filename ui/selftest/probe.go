package selftest

// The laptop's side of the test, for `redoubt selftest`: each probe sent with the
// laptop's own sockets, as the software it stands for would send it, and the
// box's own pages asked for the run and its verdicts. This file runs on the
// laptop, never on the box: it is the one place outside the lab and the egress
// room that opens kernel sockets to internet addresses, on purpose.

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"strings"
	"sync"
	"syscall"
	"time"
)

// probeTimeout bounds how long a probe waits for an answer.
const probeTimeout = 3 * time.Second

// Send sends the probes with the laptop's own sockets, all at once, and says
// what each saw. It returns within about probeTimeout.
func Send(ctx context.Context, probes []Probe) []Outcome {
	out := make([]Outcome, len(probes))
	var wg sync.WaitGroup
	for i, pr := range probes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			pctx, cancel := context.WithTimeout(ctx, probeTimeout)
			defer cancel()
			o := send(pctx, pr)
			o.Probe = pr.ID
			out[i] = o
		}()
	}
	wg.Wait()
	return out
}

func send(ctx context.Context, pr Probe) Outcome {
	switch {
	case pr.ID == "name":
		return lookup(ctx, pr.Name)
	case pr.ID == "stun":
		return udpExchange(ctx, pr.Addr, stunRequest())
	case strings.HasPrefix(pr.ID, "dns-udp-"):
		return udpExchange(ctx, pr.Addr, dnsQuery(pr.Question))
	case pr.ID == "http":
		return httpExchange(ctx, pr)
	case pr.Proto == "tcp":
		return tlsHello(ctx, pr.Addr)
	}
	return Outcome{Skipped: true, Detail: "this probe runs only in the browser"}
}

// dialed sorts a dial's error: no route means nothing was sent.
func dialed(err error) Outcome {
	switch {
	case errors.Is(err, syscall.ENETUNREACH), errors.Is(err, syscall.EHOSTUNREACH), errors.Is(err, syscall.EADDRNOTAVAIL):
		return Outcome{Sent: false, Detail: "no route to the address: nothing was sent"}
	case errors.Is(err, syscall.ECONNREFUSED):
		// The box never refuses a connection to another address (it takes
		// it, to read what it reveals): the far side answered.
		return Outcome{Sent: true, Answered: true, Detail: "the other side refused the connection: the attempt reached it"}
	case errors.Is(err, context.DeadlineExceeded), isTimeout(err):
		return Outcome{Sent: true, Detail: fmt.Sprintf("no answer in %s", probeTimeout)}
	}
	return Outcome{Sent: true, Detail: "the connection failed: " + err.Error()}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// httpExchange sends a plain HTTP request and waits for an answer. The box
// completes the handshake itself (to read what the request reveals) and then
// resets it: only an HTTP status line counts as an answer.
func httpExchange(ctx context.Context, pr Probe) Outcome {
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", pr.Addr)
	if err != nil {
		return dialed(err)
	}
	defer c.Close()
	if dl, ok := ctx.Deadline(); ok {
		c.SetDeadline(dl)
	}
	host := strings.TrimPrefix(strings.TrimPrefix(pr.URL, "http://"), "https://")
	path := "/"
	if i := strings.IndexByte(host, '/'); i >= 0 {
		host, path = host[:i], host[i:]
	}
	fmt.Fprintf(c, "GET %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: redoubt-selftest\r\nConnection: close\r\n\r\n", path, host)
	buf := make([]byte, 64)
	n, err := io.ReadAtLeast(c, buf, 5)
	if n >= 5 && bytes.HasPrefix(buf[:n], []byte("HTTP/")) {
		return Outcome{Sent: true, Answered: true, Detail: "a web server answered: " + firstLine(buf[:n])}
	}
	return readFailed(err)
}

func firstLine(b []byte) string {
	if i := bytes.IndexAny(b, "\r\n"); i >= 0 {
		b = b[:i]
	}
	return string(b)
}

func readFailed(err error) Outcome {
	switch {
	case err == nil, errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return Outcome{Sent: true, Detail: "the connection was closed without an answer"}
	case errors.Is(err, syscall.ECONNRESET):
		return Outcome{Sent: true, Detail: "the connection was reset without an answer"}
	case isTimeout(err), errors.Is(err, context.DeadlineExceeded):
		return Outcome{Sent: true, Detail: fmt.Sprintf("no answer in %s", probeTimeout)}
	}
	return Outcome{Sent: true, Detail: "no answer: " + err.Error()}
}

// tlsHello starts a TLS handshake; a server's half of it is an answer. Nothing
// is sent after the handshake, so the server's certificate need not be checked:
// any TLS server answering means the way out is open.
func tlsHello(ctx context.Context, addr string) Outcome {
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return dialed(err)
	}
	defer c.Close()
	tc := tls.Client(c, &tls.Config{InsecureSkipVerify: true, MinVersion: tls.VersionTLS12}) //nolint:gosec // only "did anyone answer" is asked
	if err := tc.HandshakeContext(ctx); err != nil {
		var rec tls.RecordHeaderError
		if errors.As(err, &rec) {
			return Outcome{Sent: true, Answered: true, Detail: "something answered, not with TLS"}
		}
		return readFailed(unwrapOp(err))
	}
	return Outcome{Sent: true, Answered: true, Detail: "a TLS server answered (" + tc.ConnectionState().ServerName + ")"}
}

func unwrapOp(err error) error {
	var oe *net.OpError
	if errors.As(err, &oe) {
		return oe.Err
	}
	return err
}

// udpExchange sends one datagram and waits for any answer.
func udpExchange(ctx context.Context, addr string, payload []byte) Outcome {
	var d net.Dialer
	c, err := d.DialContext(ctx, "udp", addr)
	if err != nil {
		return dialed(err)
	}
	defer c.Close()
	if dl, ok := ctx.Deadline(); ok {
		c.SetDeadline(dl)
	}
	if _, err := c.Write(payload); err != nil {
		return dialed(err)
	}
	buf := make([]byte, 1500)
	n, err := c.Read(buf)
	if err == nil && n > 0 {
		return Outcome{Sent: true, Answered: true, Detail: fmt.Sprintf("an answer came back (%d bytes)", n)}
	}
	if errors.Is(err, syscall.ECONNREFUSED) {
		// An ICMP port-unreachable: something on the other side answered.
		return Outcome{Sent: true, Answered: true, Detail: "the other side said the port is closed"}
	}
	return Outcome{Sent: true, Detail: fmt.Sprintf("no answer in %s", probeTimeout)}
}

// stunRequest is a STUN Binding request (RFC 8489) with a random transaction id.
func stunRequest() []byte {
	b := []byte{0x00, 0x01, 0x00, 0x00, 0x21, 0x12, 0xa4, 0x42}
	tx := make([]byte, 12)
	rand.Read(tx)
	return append(b, tx...)
}

// lookup asks the laptop's resolver (the box) for name, with Go's own resolver
// reading /etc/resolv.conf as any program would.
func lookup(ctx context.Context, name string) Outcome {
	r := &net.Resolver{PreferGo: true}
	addrs, err := r.LookupNetIP(ctx, "ip4", name)
	var de *net.DNSError
	switch {
	case err == nil:
		return Outcome{Sent: true, Answered: true, Detail: fmt.Sprintf("the name resolved to %v", addrs)}
	case errors.As(err, &de) && de.IsNotFound:
		return Outcome{Sent: true, Detail: "the resolver answered that the name does not exist"}
	case errors.As(err, &de) && de.IsTimeout:
		return Outcome{Sent: true, Detail: "the resolver did not answer"}
	}
	return Outcome{Sent: true, Detail: "the lookup failed: " + err.Error()}
}

// Report is a run as the box sees it: the plan, a verdict per probe, and the
// run in a sentence.
type Report struct {
	Plan     Plan      `json:"plan"`
	Results  []Result  `json:"results"`
	Summary  string    `json:"summary"`
	Safe     bool      `json:"safe"`
	Reported time.Time `json:"reported,omitzero"`
}

// StartRequest is the body of POST /selftest/runs.
type StartRequest struct {
	By             string       `json:"by"`
	ExtraResolvers []netip.Addr `json:"extra_resolvers,omitempty"`
}

// Client runs the test against the box's pages (its LAN address, plain HTTP).
type Client struct {
	// Base is the box's address, "http://10.201.86.1".
	Base string
	HTTP *http.Client
}

// NewClient returns a Client for the box at base.
func NewClient(base string) *Client {
	var d net.Dialer
	return &Client{Base: strings.TrimSuffix(base, "/"), HTTP: &http.Client{
		Timeout:   15 * time.Second,
		Transport: &http.Transport{DialContext: d.DialContext, Proxy: nil},
		// The box answers the test's paths itself; a redirect means it is not
		// the box (or not one that has the test).
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}}
}

func (c *Client) call(ctx context.Context, method, path string, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.Base+path, body)
	if err != nil {
		return err
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.HTTP.Do(req)
	if err != nil {
		return fmt.Errorf("asking the box at %s: %w", c.Base, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode != http.StatusOK {
		var e struct{ Error string }
		if json.Unmarshal(raw, &e) == nil && e.Error != "" {
			return fmt.Errorf("the box at %s: %s", c.Base, e.Error)
		}
		return fmt.Errorf("the box at %s answered %s to %s %s", c.Base, resp.Status, method, path)
	}
	if out != nil {
		if err := json.Unmarshal(raw, out); err != nil {
			return fmt.Errorf("reading the box's answer to %s: %w", path, err)
		}
	}
	return nil
}

// Start asks the box for a new run.
func (c *Client) Start(ctx context.Context, extra []netip.Addr) (Plan, error) {
	var p Plan
	err := c.call(ctx, http.MethodPost, "/selftest/runs", StartRequest{By: ByCommand, ExtraResolvers: extra}, &p)
	return p, err
}

// Report tells the box what the probes saw.
func (c *Client) Report(ctx context.Context, id string, outcomes []Outcome) error {
	return c.call(ctx, http.MethodPost, "/selftest/runs/"+id+"/outcomes", outcomes, nil)
}

// Results asks the box for the run's verdicts.
func (c *Client) Results(ctx context.Context, id string) (Report, error) {
	var r Report
	err := c.call(ctx, http.MethodGet, "/selftest/runs/"+id, nil, &r)
	return r, err
}

// Run is the whole test: a run from the box, the probes, the outcomes reported,
// and the verdicts once the box's logs have every attempt (or after a few
// seconds).
func (c *Client) Run(ctx context.Context, extra []netip.Addr) (Report, error) {
	p, err := c.Start(ctx, extra)
	if err != nil {
		return Report{}, err
	}
	outcomes := Send(ctx, p.Probes)
	if err := c.Report(ctx, p.ID, outcomes); err != nil {
		return Report{}, err
	}
	var r Report
	for deadline := time.Now().Add(5 * time.Second); ; {
		if r, err = c.Results(ctx, p.ID); err != nil {
			return r, err
		}
		if r.Safe || time.Now().After(deadline) || !waitingForEvidence(r) {
			return r, nil
		}
		select {
		case <-ctx.Done():
			return r, ctx.Err()
		case <-time.After(250 * time.Millisecond):
		}
	}
}

// waitingForEvidence reports whether a verdict may still change: a probe the box
// has not logged yet.
func waitingForEvidence(r Report) bool {
	for _, res := range r.Results {
		if res.Verdict == Unclear || res.Verdict == Waiting {
			return true
		}
	}
	return false
}

// NewRunID returns a random run id.
func NewRunID() string {
	b := make([]byte, 8)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// DefaultGateway is the laptop's IPv4 default gateway (the box, when the laptop
// is plugged into it), from /proc/net/route.
func DefaultGateway() (netip.Addr, error) {
	b, err := os.ReadFile("/proc/net/route")
	if err != nil {
		return netip.Addr{}, fmt.Errorf("finding the default gateway: %w", err)
	}
	return gatewayIn(string(b))
}

// gatewayIn finds the default route's gateway in /proc/net/route's text.
func gatewayIn(table string) (netip.Addr, error) {
	for _, line := range strings.Split(table, "\n")[1:] {
		f := strings.Fields(line)
		if len(f) < 3 || f[1] != "00000000" {
			continue
		}
		gw, err := hex.DecodeString(f[2])
		if err != nil || len(gw) != 4 {
			continue
		}
		// Little-endian, as the kernel prints it.
		a := netip.AddrFrom4([4]byte{gw[3], gw[2], gw[1], gw[0]})
		if !a.IsUnspecified() {
			return a, nil
		}
	}
	return netip.Addr{}, errors.New("this computer has no IPv4 default gateway: is it plugged into the box?")
}
