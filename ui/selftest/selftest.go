// Package selftest is the leak self-test: the ways software on the laptop tries
// to get out (plain HTTP and HTTPS to an internet address, DNS to a public
// resolver over UDP and over HTTPS, WebRTC's STUN, IPv6, a name looked up for a
// connection), sent on purpose, and what the box's leak log and query log show
// for each. The owner's pages run the probes from the laptop's browser; `redoubt
// selftest` runs them with real sockets from the laptop's side (probe.go). Both
// ask the box which of them it saw and stopped.
//
// The box makes a Plan (NewPlan) for each run: the probes, their targets, and a
// fresh name so the run's lookups are told apart from everything else. The
// client sends the probes and reports what it saw of each (an Outcome: an answer
// came back, or none). Match then joins the plan, the outcomes and the records
// of the box's logs made since the run started by that client, into a Verdict per
// probe:
//
//   - stopped: nothing came back, and the box's logs have the attempt;
//   - stopped, nothing sent: the laptop had no route (IPv6: the box gives none);
//   - got out: an answer came back — something other than the box carried it;
//   - unclear: nothing came back, but the box did not see the attempt either
//     (another network on the laptop, such as Wi-Fi, may have carried it; or a
//     firewall on the laptop stopped it first).
//
// The ui room imports it (to serve the test) and cmd/redoubt (the command); it
// imports nothing of the box.
package selftest

import (
	"encoding/base64"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"time"
)

// Who sends a probe.
const (
	ByBrowser = "browser" // the self-test page, from the laptop's browser
	ByCommand = "command" // redoubt selftest, from the laptop's own sockets
	ByBoth    = "both"
)

// Probe is one way out that the test tries.
type Probe struct {
	// ID is stable: "http", "https", "doh-ip", "doh-name", "name", "stun",
	// "ipv6", "dns-udp-<address>".
	ID string `json:"id"`
	// Way is what is tried, in plain words; How, what exactly is sent.
	Way string `json:"way"`
	How string `json:"how"`
	// Why says which software gets out this way.
	Why string `json:"why"`
	// By says who sends it (ByBrowser, ByCommand, ByBoth).
	By string `json:"by"`
	// URL is fetched by the browser probes that fetch.
	URL string `json:"url,omitempty"`
	// Proto and Addr are where the packets go ("tcp", "udp"; address:port);
	// Name, the name looked up. The box's logs are searched for them.
	Proto string `json:"proto,omitempty"`
	Addr  string `json:"addr,omitempty"`
	Name  string `json:"name,omitempty"`
	// Question is the name a raw DNS probe asks for (the leak log shows it).
	Question string `json:"question,omitempty"`
	// NoRoute: the laptop is expected to have no route for it at all, so the
	// box sees nothing (IPv6).
	NoRoute bool `json:"no_route,omitempty"`
}

// Plan is one run of the test.
type Plan struct {
	ID      string    `json:"id"`
	Started time.Time `json:"started"`
	// By is who runs it (ByBrowser or ByCommand); Probes are the ones it sends.
	By     string  `json:"by"`
	Probes []Probe `json:"probes"`
}

// Targets are the internet addresses and names the probes go to. They are
// well-known public services, so that a laptop whose traffic does get out (by
// another network) really gets an answer and the test says so.
var Targets = struct {
	HTTP, HTTPS, DoHIP, STUN, IPv6 netip.AddrPort
	DoHName                        string
	Resolvers                      []netip.Addr
}{
	HTTP:      netip.MustParseAddrPort("1.1.1.1:80"),           // Cloudflare's resolver answers HTTP
	HTTPS:     netip.MustParseAddrPort("1.1.1.1:443"),          // and HTTPS
	DoHIP:     netip.MustParseAddrPort("8.8.8.8:443"),          // Google Public DNS over HTTPS, by address
	STUN:      netip.MustParseAddrPort("74.125.250.129:19302"), // Google's STUN server (stun.l.google.com)
	IPv6:      netip.MustParseAddrPort("[2606:4700:4700::1111]:443"),
	DoHName:   "cloudflare-dns.com",
	Resolvers: []netip.Addr{netip.MustParseAddr("8.8.8.8"), netip.MustParseAddr("9.9.9.9")},
}

// MaxExtraResolvers bounds the resolvers a client may add to a plan.
const MaxExtraResolvers = 4

// NewPlan makes the probes of a run that by (ByBrowser, ByCommand) sends. id
// must be random (it names the run's lookups); extra adds resolvers for the UDP
// DNS probes (the lab's resolver).
func NewPlan(id string, started time.Time, by string, extra []netip.Addr) (Plan, error) {
	if by != ByBrowser && by != ByCommand {
		return Plan{}, fmt.Errorf("a run is by %q or %q, not %q", ByBrowser, ByCommand, by)
	}
	if len(id) < 8 || strings.Trim(strings.ToLower(id), "abcdefghijklmnopqrstuvwxyz0123456789") != "" {
		return Plan{}, fmt.Errorf("a run id is at least 8 letters and digits, not %q", id)
	}
	if len(extra) > MaxExtraResolvers {
		return Plan{}, fmt.Errorf("at most %d extra resolvers, not %d", MaxExtraResolvers, len(extra))
	}
	t := Targets
	name := QueryName(id)
	dohQuery := base64.RawURLEncoding.EncodeToString(dnsQuery(name))
	p := Plan{ID: id, Started: started, By: by}
	all := []Probe{
		{ID: "http", Way: "Plain web (HTTP) to an internet address", By: ByBoth,
			How: "a web request to " + t.HTTP.String(), Why: "Apps and devices that talk to a fixed server without encryption.",
			URL: "http://" + t.HTTP.String() + "/redoubt-selftest?run=" + id, Proto: "tcp", Addr: t.HTTP.String()},
		{ID: "https", Way: "Encrypted web (HTTPS) to an internet address", By: ByBoth,
			How: "an encrypted connection to " + t.HTTPS.String(), Why: "Most apps, updaters and telemetry.",
			URL: "https://" + t.HTTPS.Addr().String() + "/redoubt-selftest?run=" + id, Proto: "tcp", Addr: t.HTTPS.String()},
		{ID: "doh-ip", Way: "DNS over HTTPS to a public resolver, by address", By: ByBoth,
			How: "a DNS question inside HTTPS to " + t.DoHIP.String(), Why: "Browsers and apps that bring their own encrypted DNS, bypassing the box's resolver.",
			URL: "https://" + t.DoHIP.Addr().String() + "/dns-query?dns=" + dohQuery, Proto: "tcp", Addr: t.DoHIP.String()},
		{ID: "doh-name", Way: "DNS over HTTPS to a public resolver, by name", By: ByBrowser,
			How: "a lookup of " + t.DoHName + ", then HTTPS to it", Why: "Browsers' “secure DNS” settings.",
			URL: "https://" + t.DoHName + "/dns-query?dns=" + dohQuery, Name: t.DoHName},
		{ID: "name", Way: "A name looked up to connect to it", By: ByBoth,
			How: "a lookup of " + name + " through the box", Why: "Every connection to a named server starts this way: the box answers that the name does not exist.",
			URL: "https://" + name + "/", Name: name},
		{ID: "stun", Way: "WebRTC address discovery (STUN)", By: ByBoth,
			How: "a STUN request over UDP to " + t.STUN.String(), Why: "Video calls and web pages that learn your public address; a classic VPN leak.",
			Proto: "udp", Addr: t.STUN.String()},
		{ID: "ipv6", Way: "IPv6 to an internet address", By: ByBoth,
			How: "a connection to " + t.IPv6.String(), Why: "Software that prefers IPv6 when the network offers it.",
			URL: "https://" + t.IPv6.String() + "/", Proto: "tcp", Addr: t.IPv6.String(), NoRoute: true},
	}
	resolvers := append(slices.Clone(t.Resolvers), extra...)
	seen := map[netip.Addr]bool{}
	for _, r := range resolvers {
		r = r.Unmap()
		if !r.IsValid() || seen[r] {
			continue
		}
		seen[r] = true
		ap := netip.AddrPortFrom(r, 53)
		all = append(all, Probe{ID: "dns-udp-" + r.String(), Way: "Plain DNS to a public resolver (" + r.String() + ")", By: ByCommand,
			How: "a DNS question for " + name + " over UDP to " + ap.String(), Why: "Software with a resolver written into it, ignoring the one the network gave.",
			Proto: "udp", Addr: ap.String(), Question: name})
	}
	for _, pr := range all {
		if pr.By == by || pr.By == ByBoth {
			p.Probes = append(p.Probes, pr)
		}
	}
	return p, nil
}

// QueryName is the name a run's probes look up (the DNS probes ask for it).
func QueryName(id string) string { return "rdt-" + strings.ToLower(id) + ".example.com" }

// Probe returns the plan's probe id.
func (p Plan) Probe(id string) (Probe, bool) {
	for _, pr := range p.Probes {
		if pr.ID == id {
			return pr, true
		}
	}
	return Probe{}, false
}

// dnsQuery is a DNS question for name's A record, as DoH's GET form and the UDP
// probes send it (RFC 8484: id 0).
func dnsQuery(name string) []byte {
	q := []byte{0, 0, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0} // id 0, RD, one question
	for _, label := range strings.Split(strings.TrimSuffix(name, "."), ".") {
		q = append(q, byte(len(label)))
		q = append(q, label...)
	}
	return append(q, 0, 0, 1, 0, 1) // root, type A, class IN
}

// Outcome is what a client saw of one probe.
type Outcome struct {
	Probe string `json:"probe"`
	// Answered: something answered from the other side (the probe got out).
	Answered bool `json:"answered"`
	// Sent is false when the laptop could not even send (no route).
	Sent bool `json:"sent"`
	// Detail says what happened, in plain words ("connection reset", "no
	// answer in 4 s", "no route to the address").
	Detail string `json:"detail"`
	// Skipped: the client could not try it (a browser cannot send raw DNS).
	Skipped bool `json:"skipped,omitempty"`
}

// Record is an entry of the box's leak log or query log, as Match sees it.
type Record struct {
	Source string    `json:"source"` // "leak log" or "query log"
	Kind   string    `json:"kind"`   // the leak log's kind, or the lookup's answer
	Client string    `json:"client"` // the sender's address
	MAC    string    `json:"mac,omitempty"`
	Proto  string    `json:"proto,omitempty"`
	Addr   string    `json:"addr,omitempty"` // destination address:port
	Name   string    `json:"name,omitempty"`
	Count  uint64    `json:"count"`
	First  time.Time `json:"first"`
	Last   time.Time `json:"last"`
}

// Verdicts.
const (
	Stopped       = "stopped"
	StoppedNoSend = "stopped, nothing sent"
	GotOut        = "got out"
	Unclear       = "unclear"
	Waiting       = "waiting"
	NotTried      = "not tried"
)

// Result is a probe's verdict with its evidence.
type Result struct {
	Probe    Probe    `json:"probe"`
	Outcome  *Outcome `json:"outcome,omitempty"`
	Verdict  string   `json:"verdict"`
	Says     string   `json:"says"` // the verdict in a sentence
	Evidence []Record `json:"evidence,omitempty"`
}

// Safe reports whether the verdict means nothing got out.
func (r Result) Safe() bool { return r.Verdict == Stopped || r.Verdict == StoppedNoSend }

// Match joins a run's plan, its client's outcomes and the box's records into a
// verdict per probe. Records count only when they come from client (address or
// hardware address) and were last seen after the run started.
func Match(p Plan, client netip.Addr, clientMAC string, outcomes []Outcome, records []Record) []Result {
	byProbe := map[string]Outcome{}
	for _, o := range outcomes {
		byProbe[o.Probe] = o
	}
	start := p.Started.Add(-time.Second) // the clocks are the box's, but be lenient
	var mine []Record
	for _, r := range records {
		if r.Last.Before(start) {
			continue
		}
		from := r.Client == client.String() || (clientMAC != "" && strings.EqualFold(r.MAC, clientMAC))
		if from {
			mine = append(mine, r)
		}
	}
	var out []Result
	for _, pr := range p.Probes {
		res := Result{Probe: pr}
		for _, r := range mine {
			if matches(pr, r) {
				res.Evidence = append(res.Evidence, r)
			}
		}
		o, ok := byProbe[pr.ID]
		if ok {
			res.Outcome = &o
		}
		res.Verdict, res.Says = verdict(pr, o, ok, len(res.Evidence) > 0)
		out = append(out, res)
	}
	return out
}

// matches reports whether r is pr's attempt.
func matches(pr Probe, r Record) bool {
	switch r.Source {
	case "leak log":
		if pr.Addr == "" || !strings.EqualFold(r.Proto, pr.Proto) {
			return false
		}
		return sameAddrPort(r.Addr, pr.Addr)
	case "query log":
		return pr.Name != "" && strings.EqualFold(strings.TrimSuffix(r.Name, "."), pr.Name)
	}
	return false
}

func sameAddrPort(a, b string) bool {
	x, err1 := netip.ParseAddrPort(a)
	y, err2 := netip.ParseAddrPort(b)
	if err1 != nil || err2 != nil {
		return a == b
	}
	return x.Addr().Unmap() == y.Addr().Unmap() && x.Port() == y.Port()
}

func verdict(pr Probe, o Outcome, reported, seen bool) (string, string) {
	switch {
	case !reported:
		if seen {
			return Stopped, "The box stopped it."
		}
		return Waiting, "Not reported yet."
	case o.Skipped:
		return NotTried, o.Detail
	case o.Answered:
		return GotOut, "An answer came back: this way out is open, so something other than the box carried it (another network on this computer, such as Wi-Fi?)."
	case seen:
		return Stopped, "The box stopped it: nothing came back, and the box's log has the attempt."
	case !o.Sent || pr.NoRoute:
		return StoppedNoSend, "Nothing was sent: this computer has no route for it through the box."
	}
	return Unclear, "Nothing came back, but the box did not see the attempt: another network on this computer (Wi-Fi?) or its own firewall may have handled it."
}

// Summary is a run's outcome in a sentence, and whether every probe was stopped.
func Summary(results []Result) (string, bool) {
	var stopped, out, unclear, waiting int
	for _, r := range results {
		switch {
		case r.Safe():
			stopped++
		case r.Verdict == GotOut:
			out++
		case r.Verdict == Unclear:
			unclear++
		case r.Verdict == Waiting:
			waiting++
		}
	}
	tried := stopped + out + unclear
	switch {
	case out > 0:
		return fmt.Sprintf("%d of %d ways out got through: this computer is not protected.", out, tried), false
	case unclear > 0:
		return fmt.Sprintf("%d of %d ways out were stopped by the box; %d went somewhere the box did not see.", stopped, tried, unclear), false
	case waiting > 0 && tried == 0:
		return "The test has not run yet.", false
	}
	return fmt.Sprintf("All %d ways out were stopped: nothing got out.", stopped), stopped > 0
}
