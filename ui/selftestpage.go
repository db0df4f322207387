package ui

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/redoubt/redoubt/ui/selftest"
)

// The leak self-test's pages. The test runs from a plain-HTTP page on the box's
// address: a browser refuses plain-HTTP requests from a secure page (mixed
// content), and the test must try plain HTTP too. Nothing here needs a session:
// any device on the LAN port may test its own protection, and sees only what the
// box recorded from its own address, for the probes of its own run, after the
// run began.

const (
	maxRuns     = 16               // runs kept; a new one pushes the oldest out
	runLifetime = 15 * time.Minute // how long a run answers
	maxTestBody = 16 << 10
)

// run is one self-test run.
type run struct {
	plan     selftest.Plan
	client   netip.Addr
	outcomes []selftest.Outcome
	reported time.Time
}

// runs holds the recent self-test runs.
type runs struct {
	mu   sync.Mutex
	list []*run
}

func (rs *runs) add(r *run, now time.Time) {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	rs.list = slices.DeleteFunc(rs.list, func(x *run) bool { return now.Sub(x.plan.Started) > runLifetime })
	if len(rs.list) >= maxRuns {
		rs.list = rs.list[1:]
	}
	rs.list = append(rs.list, r)
}

// get returns the run id, if client made it and it is still live.
func (rs *runs) get(id string, client netip.Addr, now time.Time) (*run, bool) {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	for _, r := range rs.list {
		if r.plan.ID == id && r.client == client && now.Sub(r.plan.Started) <= runLifetime {
			return r, true
		}
	}
	return nil, false
}

func (rs *runs) report(id string, client netip.Addr, outcomes []selftest.Outcome, now time.Time) bool {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	for _, r := range rs.list {
		if r.plan.ID == id && r.client == client {
			r.outcomes, r.reported = outcomes, now
			return true
		}
	}
	return false
}

// last is the most recent run whose outcomes were reported.
func (rs *runs) last() (run, bool) {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	for i := len(rs.list) - 1; i >= 0; i-- {
		if r := rs.list[i]; !r.reported.IsZero() {
			return run{plan: r.plan, client: r.client, outcomes: slices.Clone(r.outcomes), reported: r.reported}, true
		}
	}
	return run{}, false
}

func (rs *runs) reset() {
	rs.mu.Lock()
	rs.list = nil
	rs.mu.Unlock()
}

// selftestURL is where the test runs: the box's address (not its name, which
// HSTS would take to HTTPS), over plain HTTP.
func (u *UI) selftestURL() string { return "http://" + u.d.Addr().String() + "/selftest" }

// records are the box's logs as the test matches them.
func (u *UI) records() []selftest.Record {
	var out []selftest.Record
	for _, e := range u.d.Box.Stopped() {
		r := selftest.Record{Client: e.IP, MAC: e.MAC, Name: e.Name, Count: e.Count, First: e.First, Last: e.Last}
		if e.Source == "dns" {
			r.Source, r.Kind = "query log", "name refused"
		} else {
			r.Source, r.Kind, r.Proto = "leak log", e.Category, e.Proto
			if a, err := netip.ParseAddr(e.Dst); err == nil {
				r.Addr = netip.AddrPortFrom(a, e.Port).String()
			}
		}
		out = append(out, r)
	}
	return out
}

// macOf is the hardware address of the device at a, from its lease.
func (u *UI) macOf(a netip.Addr) string {
	for _, d := range u.d.Box.Devices() {
		if d.IP == a.String() {
			return d.MAC
		}
	}
	return ""
}

// reportOf matches a run against the box's logs now.
func (u *UI) reportOf(r run) selftest.Report {
	results := selftest.Match(r.plan, r.client, u.macOf(r.client), r.outcomes, u.records())
	sum, safe := selftest.Summary(results)
	return selftest.Report{Plan: r.plan, Results: results, Summary: sum, Safe: safe, Reported: r.reported}
}

func (u *UI) lastSelfTest() *selftest.Report {
	r, ok := u.runs.last()
	if !ok {
		return nil
	}
	rep := u.reportOf(r)
	return &rep
}

// selftestSummary is the dashboard's line about the last test.
type selftestSummary struct {
	When    string
	Summary string
	Safe    bool
}

func (u *UI) selftestSummary(now time.Time) *selftestSummary {
	rep := u.lastSelfTest()
	if rep == nil {
		return nil
	}
	return &selftestSummary{When: when(rep.Reported, now), Summary: rep.Summary, Safe: rep.Safe}
}

// selftestPage is the test's page. The browser's probes go to internet
// addresses, so this page alone lets scripts connect beyond the box.
func (u *UI) selftestPage(w http.ResponseWriter, r *http.Request) {
	if r.TLS != nil {
		http.Redirect(w, r, u.selftestURL(), http.StatusFound)
		return
	}
	w.Header().Set("Content-Security-Policy", "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self' http: https:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
	preview, _ := selftest.NewPlan("preview0", u.d.Now(), selftest.ByBrowser, nil)
	u.render(w, r, http.StatusOK, "selftest", view{Title: "Test my protection", Data: struct {
		Probes    []selftest.Probe
		Dashboard string
	}{preview.Probes, "https://" + u.canonicalHost() + "/"}})
}

type apiError struct {
	Error string `json:"error"`
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

func readJSON(w http.ResponseWriter, r *http.Request, v any) error {
	if ct := r.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		return errors.New("send JSON (Content-Type: application/json)")
	}
	b, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxTestBody))
	if err != nil {
		return fmt.Errorf("the request is larger than %d bytes", maxTestBody)
	}
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("the request is not the JSON expected: %v", err)
	}
	return nil
}

// selftestStart makes a run for the device that asks.
func (u *UI) selftestStart(w http.ResponseWriter, r *http.Request) {
	var req selftest.StartRequest
	if err := readJSON(w, r, &req); err != nil {
		writeJSON(w, http.StatusBadRequest, apiError{err.Error()})
		return
	}
	client := viewer(r)
	if !client.IsValid() {
		writeJSON(w, http.StatusBadRequest, apiError{"the box cannot tell which device asked"})
		return
	}
	if req.By == "" {
		req.By = selftest.ByBrowser
	}
	plan, err := selftest.NewPlan(selftest.NewRunID(), u.d.Now(), req.By, req.ExtraResolvers)
	if err != nil {
		writeJSON(w, http.StatusBadRequest, apiError{err.Error()})
		return
	}
	u.runs.add(&run{plan: plan, client: client}, u.d.Now())
	u.logf(r, "leak self-test started", "client", client.String(), "by", req.By)
	writeJSON(w, http.StatusOK, plan)
}

func (u *UI) selftestOutcomes(w http.ResponseWriter, r *http.Request) {
	var outcomes []selftest.Outcome
	if err := readJSON(w, r, &outcomes); err != nil {
		writeJSON(w, http.StatusBadRequest, apiError{err.Error()})
		return
	}
	id, client := r.PathValue("id"), viewer(r)
	rn, ok := u.runs.get(id, client, u.d.Now())
	if !ok {
		writeJSON(w, http.StatusNotFound, apiError{"no such run from this device (runs last 15 minutes): start the test again"})
		return
	}
	var kept []selftest.Outcome
	for _, o := range outcomes {
		if _, ok := rn.plan.Probe(o.Probe); ok && !slices.ContainsFunc(kept, func(k selftest.Outcome) bool { return k.Probe == o.Probe }) {
			o.Detail = o.Detail[:min(len(o.Detail), 200)]
			kept = append(kept, o)
		}
	}
	u.runs.report(id, client, kept, u.d.Now())
	writeJSON(w, http.StatusOK, struct{}{})
}

// resultRow is a probe's verdict in words, for the page.
type resultRow struct {
	Probe    string   `json:"probe"`
	Verdict  string   `json:"verdict"`
	Safe     bool     `json:"safe"`
	Says     string   `json:"says"`
	Saw      string   `json:"saw,omitempty"`
	Evidence []string `json:"evidence,omitempty"`
}

// selftestResults is the run's verdicts, with the box's evidence in words.
func (u *UI) selftestResults(w http.ResponseWriter, r *http.Request) {
	rn, ok := u.runs.get(r.PathValue("id"), viewer(r), u.d.Now())
	if !ok {
		writeJSON(w, http.StatusNotFound, apiError{"no such run from this device (runs last 15 minutes): start the test again"})
		return
	}
	rep := u.reportOf(run{plan: rn.plan, client: rn.client, outcomes: rn.outcomes, reported: rn.reported})
	now := u.d.Now()
	rows := make([]resultRow, 0, len(rep.Results))
	for _, res := range rep.Results {
		row := resultRow{Probe: res.Probe.ID, Verdict: res.Verdict, Safe: res.Safe(), Says: res.Says}
		if res.Outcome != nil {
			row.Saw = sentence(res.Outcome.Detail)
		}
		for _, e := range res.Evidence {
			row.Evidence = append(row.Evidence, evidenceWords(e, now))
		}
		rows = append(rows, row)
	}
	writeJSON(w, http.StatusOK, struct {
		selftest.Report
		Rows []resultRow `json:"rows"`
	}{rep, rows})
}

// evidenceWords is a log entry the test matched, in a line.
func evidenceWords(e selftest.Record, now time.Time) string {
	times := plural(int(e.Count), "time")
	if e.Source == "query log" {
		return fmt.Sprintf("Query log, %s: the box answered that %s does not exist (%s).", when(e.Last, now), e.Name, times)
	}
	var port uint16
	what := e.Addr
	if ap, err := netip.ParseAddrPort(e.Addr); err == nil {
		port = ap.Port()
		if e.Name != "" && e.Name != ap.Addr().String() {
			what += " (" + e.Name + ")"
		}
	}
	w := protoWords(e.Proto, "", port)
	return fmt.Sprintf("Leak log, %s: %s to %s stopped (%s, %s).", when(e.Last, now), w, what, strings.ToLower(kindOf(e.Kind).Label), times)
}
