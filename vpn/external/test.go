package external

import (
	"context"
	"fmt"
	"time"
)

// Check is one step of a test of the VPN, in plain words.
type Check struct {
	// Name is "config", "wan", "handshake", "dns" or "exit".
	Name   string `json:"name"`
	OK     bool   `json:"ok"`
	Detail string `json:"detail"`
}

// TestResult is what Test found: OK when every step passed.
type TestResult struct {
	OK     bool    `json:"ok"`
	Checks []Check `json:"checks"`
	// Exit is the public address the box's traffic leaves from, when
	// vpn.exit_check names a page that tells it.
	Exit string `json:"exit_address,omitempty"`
}

// testHandshakeWait bounds how long Test waits for a fresh handshake.
const testHandshakeWait = 5 * time.Second

// Test checks the VPN now, step by step, and says where it stops: a config, the
// WAN port, a handshake with the VPN server (asking for a fresh one when the last
// is old), an answer from the config's DNS server through the tunnel, and the
// exit address when vpn.exit_check is set. It takes at most about 20 s, less when
// ctx ends sooner, and refreshes the status on the way.
func (v *VPN) Test(ctx context.Context) TestResult {
	var res TestResult
	add := func(name string, ok bool, detail string) bool {
		res.Checks = append(res.Checks, Check{Name: name, OK: ok, Detail: detail})
		return ok
	}
	defer v.poke()
	v.mu.Lock()
	t, cfgErr := v.tun, v.cfgErr
	v.mu.Unlock()
	switch {
	case t == nil && cfgErr != "":
		add("config", false, cfgErr)
		return res
	case t == nil:
		add("config", false, "No VPN is set up: give the box your provider's WireGuard config.")
		return res
	}
	c := t.Config()
	add("config", true, fmt.Sprintf("A WireGuard config for %s.", c.Peer.Endpoint))
	if w := v.port.State(); !w.Ready {
		add("wan", false, "The box's WAN port is not ready: "+w.Problem)
		return res
	}
	add("wan", true, "The WAN port is ready.")

	start := v.now()
	last := t.Stats().LastHandshake
	if last.IsZero() || start.Sub(last) > 2*time.Minute {
		t.Kick()
		hctx, cancel := context.WithTimeout(ctx, testHandshakeWait)
		for hctx.Err() == nil && !t.Stats().LastHandshake.After(last) {
			select {
			case <-hctx.Done():
			case <-time.After(100 * time.Millisecond):
			}
		}
		cancel()
		last = t.Stats().LastHandshake
	}
	if last.IsZero() || start.Sub(last) > 2*time.Minute {
		add("handshake", false, fmt.Sprintf("The VPN server at %s does not answer: check the endpoint and the keys, and that this network lets UDP out.", c.Peer.Endpoint))
		return res
	}
	when := "just now"
	if age := v.now().Sub(last).Round(time.Second); age > 0 {
		when = age.String() + " ago"
	}
	add("handshake", true, fmt.Sprintf("The VPN server at %s answered (the last handshake was %s).", c.Peer.Endpoint, when))

	if len(c.DNS) == 0 {
		add("dns", false, "The config has no DNS line, so the box cannot look names up through the VPN: add the provider's DNS server (DNS = …).")
		return res
	}
	pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	err := t.Probe(pctx)
	cancel()
	if err != nil {
		add("dns", false, fmt.Sprintf("The VPN's DNS server (%s) did not answer through the tunnel: %v.", c.DNS[0], err))
		return res
	}
	add("dns", true, fmt.Sprintf("The VPN's DNS server (%s) answered through the tunnel.", c.DNS[0]))

	if v.config().ExitCheck != "" {
		v.checkExit(ctx)
		v.mu.Lock()
		ex := v.exit
		v.mu.Unlock()
		if ex.err != "" || !ex.addr.IsValid() {
			add("exit", false, "The exit address check failed: "+ex.err)
			return res
		}
		res.Exit = ex.addr.String()
		add("exit", true, "The box's traffic leaves the VPN from "+res.Exit+".")
	}
	res.OK = true
	return res
}
