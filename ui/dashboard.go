package ui

import (
	"bytes"
	"cmp"
	"encoding/json"
	"fmt"
	"html/template"
	"net"
	"net/http"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/redoubt/redoubt/internal/timeseries"
)

// day is what was stopped today (by the box's clock), from the per-minute
// series, in attempts (link chatter left out).
type day struct {
	Attempts, Connections, Names uint64
	// LastHour and HourBefore give the trend.
	LastHour, HourBefore uint64
	// Hourly are the last 24 hours' attempts, oldest first, for the sparklines;
	// HourlyConn and HourlyNames the same split.
	Hourly, HourlyConn, HourlyNames []uint64
	// Start is when the first hour of Hourly began.
	Start time.Time
}

func dayOf(snap timeseries.Snapshot, now time.Time) day {
	var d day
	y, m, dd := now.Local().Date()
	midnight := time.Date(y, m, dd, 0, 0, 0, 0, time.Local)
	hours := 24
	d.Hourly, d.HourlyConn, d.HourlyNames = make([]uint64, hours), make([]uint64, hours), make([]uint64, hours)
	end := snap.Start.Add(time.Duration(len(snap.Counts)*snap.Step) * time.Second)
	d.Start = end.Add(-time.Duration(hours) * time.Hour)
	for i, b := range snap.Counts {
		t := snap.Start.Add(time.Duration(i*snap.Step) * time.Second)
		var conn, names uint64
		for c, n := range b {
			switch k := snap.Categories[c]; {
			case k == "dns":
				names += n
			case quiet(k) || k == "none":
			default:
				conn += n
			}
		}
		all := conn + names
		if !t.Before(midnight) {
			d.Attempts += all
			d.Connections += conn
			d.Names += names
		}
		age := end.Sub(t)
		switch {
		case age <= time.Hour:
			d.LastHour += all
		case age <= 2*time.Hour:
			d.HourBefore += all
		}
		if h := int(t.Sub(d.Start) / time.Hour); h >= 0 && h < hours {
			d.Hourly[h] += all
			d.HourlyConn[h] += conn
			d.HourlyNames[h] += names
		}
	}
	return d
}

// counter is one of the dashboard's numbers with its trend.
type counter struct {
	Key, Label string
	Value      uint64
	Trend      string // in words
	Dir        string // "up", "down", "" (the trend's direction)
	Spark      template.HTML
	Link       string
}

// summary is the dashboard's state and numbers; the live feed sends it again
// whenever something is stopped.
type summary struct {
	Tone     string // "safe" or "warn"
	Title    string // "Protected", "Check this"
	Sentence string
	BoxLine  string // the box's own connections
	TestLine string // the last self-test
	Today    day
	Counts   counts
	Since    string
	Counters []counter
}

// summaryJSON is the live feed's copy of the numbers.
type summaryJSON struct {
	Sentence string            `json:"sentence"`
	Values   map[string]string `json:"values"`
	Trends   map[string]string `json:"trends"`
	Devices  map[string]string `json:"devices"`
}

func (s summary) json() summaryJSON {
	j := summaryJSON{Sentence: s.Sentence, Values: map[string]string{}, Trends: map[string]string{}, Devices: map[string]string{}}
	for _, c := range s.Counters {
		j.Values[c.Key] = count(c.Value)
		j.Trends[c.Key] = c.Trend
	}
	j.Values["total"] = count(s.Counts.Total)
	for k, n := range s.Counts.ByDevice {
		j.Devices[k] = count(n)
	}
	return j
}

// summarize says where the box stands for the device at viewer.
func (u *UI) summarize(viewer netip.Addr, now time.Time) summary {
	st := u.d.Box.Status()
	t := u.d.Box.Tally()
	s := summary{Counts: countsOf(t), Today: dayOf(u.d.Box.Chart(24*time.Hour, time.Minute), now), Since: when(t.Since, now)}
	who := "This computer"
	for _, d := range u.d.Box.Devices() {
		if d.IP == viewer.String() && d.Name != "" {
			who = "This computer (" + d.Name + ")"
		}
	}
	s.Tone, s.Title = "safe", "Protected"
	switch n := s.Today.Attempts; n {
	case 0:
		s.Sentence = who + " cannot reach the internet. Nothing has tried to get out today."
	default:
		s.Sentence = fmt.Sprintf("%s cannot reach the internet. %s stopped today; nothing got out.", who, plural(int(n), "attempt"))
	}
	if r := u.lastSelfTest(); r != nil {
		if r.Safe {
			s.TestLine = "Last self-test, " + when(r.Reported, now) + ": every way out was stopped."
		} else {
			s.Tone, s.Title = "warn", "Check this"
			s.TestLine = "Last self-test, " + when(r.Reported, now) + ": " + r.Summary + " Turn off other networks (Wi-Fi) on this computer and test again."
			s.Sentence = who + " may have another way to the internet besides the box."
		}
	} else {
		s.TestLine = "Not tested yet: test your protection to see every way out stopped."
	}
	switch v := st.VPN; v.State {
	case "up":
		s.BoxLine = "The box's own connections (your team, backups) leave only through your VPN. " + v.Detail
	case "off", "":
		s.BoxLine = ""
	case "not configured":
		s.BoxLine = "The box's own connections are off until you give it a VPN (Settings, VPN). This computer's protection does not depend on it."
	default:
		s.BoxLine = "The VPN is " + v.State + ": " + strings.TrimSuffix(v.Detail, ".") + ". The box's own connections wait; this computer stays protected."
	}
	trend := func(last, before uint64) (string, string) {
		switch {
		case last > before:
			return fmt.Sprintf("%s in the last hour, up from %s", count(last), count(before)), "up"
		case last < before:
			return fmt.Sprintf("%s in the last hour, down from %s", count(last), count(before)), "down"
		}
		return fmt.Sprintf("%s in the last hour", count(last)), ""
	}
	lastConn, beforeConn := lastTwo(s.Today.HourlyConn)
	lastNames, beforeNames := lastTwo(s.Today.HourlyNames)
	ct, cd := trend(s.Today.LastHour, s.Today.HourBefore)
	c1, d1 := trend(lastConn, beforeConn)
	c2, d2 := trend(lastNames, beforeNames)
	s.Counters = []counter{
		{Key: "today", Label: "Stopped today", Value: s.Today.Attempts, Trend: ct, Dir: cd, Spark: spark(s.Today.Hourly), Link: "/stopped"},
		{Key: "connections", Label: "Connections stopped today", Value: s.Today.Connections, Trend: c1, Dir: d1, Spark: spark(s.Today.HourlyConn), Link: "/stopped?kind=egress"},
		{Key: "names", Label: "Names refused today", Value: s.Today.Names, Trend: c2, Dir: d2, Spark: spark(s.Today.HourlyNames), Link: "/stopped?kind=dns"},
		{Key: "since", Label: "Stopped since the box started", Value: s.Counts.Total, Trend: "since " + s.Since, Link: "/stopped"},
	}
	return s
}

func lastTwo(h []uint64) (last, before uint64) {
	if n := len(h); n >= 2 {
		return h[n-1], h[n-2]
	}
	return 0, 0
}

// spark draws a small bar chart of hourly counts as inline SVG (attributes only:
// the pages allow no inline styles).
func spark(h []uint64) template.HTML {
	var peak uint64
	for _, n := range h {
		peak = max(peak, n)
	}
	const w, ht = 120, 28
	var b strings.Builder
	fmt.Fprintf(&b, `<svg class="spark" viewBox="0 0 %d %d" width="%d" height="%d" aria-hidden="true" focusable="false">`, w, ht, w, ht)
	fmt.Fprintf(&b, `<rect class="base" x="0" y="%d" width="%d" height="1"/>`, ht-1, w)
	bw := float64(w) / float64(max(len(h), 1))
	for i, n := range h {
		if n == 0 || peak == 0 {
			continue
		}
		hh := max(float64(n)/float64(peak)*float64(ht-2), 2)
		fmt.Fprintf(&b, `<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f"/>`, float64(i)*bw+0.5, float64(ht-1)-hh, max(bw-1, 0.5), hh)
	}
	b.WriteString(`</svg>`)
	return template.HTML(b.String())
}

// dashView is the dashboard's data.
type dashView struct {
	Status   Status
	Uptime   string
	Summary  summary
	Devices  []deviceView
	Feed     []entry
	Talkers  []deviceOption
	Names    []deviceOption
	Kinds    []kindOption
	Chart    chartTable
	TestURL  string
	SelfTest *selftestSummary
}

// deviceView is a device as the pages list it.
type deviceView struct {
	Device
	Key       string
	Stopped   uint64
	FirstSeen string
	Lease     string
}

func (u *UI) deviceViews(c counts, now time.Time) []deviceView {
	var out []deviceView
	for _, d := range u.d.Box.Devices() {
		k := deviceKey(d.MAC, d.IP)
		out = append(out, deviceView{Device: d, Key: k, Stopped: c.ByDevice[k], FirstSeen: when(d.FirstSeen, now), Lease: ago(d.Expires)})
	}
	return out
}

const feedLen = 50

// viewer is the address of the device that asked.
func viewer(r *http.Request) netip.Addr {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	a, _ := netip.ParseAddr(host)
	return a.Unmap()
}

func (u *UI) dashboard(w http.ResponseWriter, r *http.Request, s *session) {
	now := u.d.Now()
	st := u.d.Box.Status()
	sum := u.summarize(viewer(r), now)
	v := dashView{Status: st, Uptime: duration(now.Sub(st.Started).Round(time.Minute)), Summary: sum,
		Devices: u.deviceViews(sum.Counts, now), TestURL: u.selftestURL(), SelfTest: u.selftestSummary(now)}
	// Link chatter (IPv6 neighbour discovery, ARP) is how any computer behaves on
	// a wire, not something trying to reach out: the full list keeps it, the
	// dashboard does not lead with it.
	stopped := slices.DeleteFunc(u.d.Box.Stopped(), func(e Stopped) bool { return quiet(e.Category) })
	byName := map[string]uint64{}
	for _, e := range stopped {
		if e.Name != "" {
			byName[e.Name] += e.Count
		}
	}
	for _, e := range stopped[:min(len(stopped), feedLen)] {
		v.Feed = append(v.Feed, entryOf(e, now))
	}
	v.Talkers = deviceOptions(sum.Counts, u.d.Box.Devices(), u.d.Box.Tally())
	v.Talkers = v.Talkers[:min(len(v.Talkers), 5)]
	v.Names = topNames(byName, 8)
	v.Kinds = slices.DeleteFunc(kindOptions(sum.Counts), func(k kindOption) bool { return quiet(k.Key) })
	v.Chart = tableOverTime(u.d.Box.Chart(24*time.Hour, time.Hour), now)
	u.render(w, r, http.StatusOK, "dashboard", view{Title: "Dashboard", CSRF: s.csrf, SignedIn: true, Data: v})
}

func topNames(m map[string]uint64, n int) []deviceOption {
	out := make([]deviceOption, 0, len(m))
	for k, v := range m {
		out = append(out, deviceOption{Key: k, Label: k, Count: v})
	}
	slices.SortFunc(out, func(a, b deviceOption) int {
		if c := cmp.Compare(b.Count, a.Count); c != 0 {
			return c
		}
		return cmp.Compare(a.Label, b.Label)
	})
	return out[:min(len(out), n)]
}

// devicesPage lists the LAN's devices with what each had stopped.
func (u *UI) devicesPage(w http.ResponseWriter, r *http.Request, s *session) {
	now := u.d.Now()
	c := countsOf(u.d.Box.Tally())
	u.render(w, r, http.StatusOK, "devices", view{Title: "Devices", CSRF: s.csrf, SignedIn: true, Data: u.deviceViews(c, now)})
}

// stoppedView is the Stopped page's data.
type stoppedView struct {
	Filter   filter
	Entries  []entry
	Shown    int
	Matched  int
	Attempts uint64 // the tally's count for the filter (all kinds: the list's)
	Total    uint64
	Since    string
	Devices  []deviceOption
	Kinds    []kindOption
	Chatter  uint64
	Evicted  uint64
	Label    string // the filter in words
}

const stoppedMax = 500

func (u *UI) stoppedPage(w http.ResponseWriter, r *http.Request, s *session) {
	now := u.d.Now()
	q := r.URL.Query()
	f := filter{Device: strings.TrimSpace(q.Get("device")), Kind: strings.TrimSpace(q.Get("kind")), Q: strings.TrimSpace(q.Get("q"))}
	f.Q = f.Q[:min(len(f.Q), 200)]
	t := u.d.Box.Tally()
	c := countsOf(t)
	v := stoppedView{Filter: f, Total: c.Total, Since: when(t.Since, now), Kinds: kindOptions(c), Chatter: c.Chatter, Evicted: t.Evicted}
	v.Devices = deviceOptions(c, u.d.Box.Devices(), t)
	for _, e := range u.d.Box.Stopped() {
		if !f.match(e) {
			continue
		}
		v.Matched++
		if len(v.Entries) < stoppedMax {
			v.Entries = append(v.Entries, entryOf(e, now))
		}
	}
	v.Shown = len(v.Entries)
	switch {
	case f.Q != "":
		v.Label = "matching “" + f.Q + "”"
	case f.Device != "" && f.Kind == "":
		v.Attempts = c.ByDevice[f.Device]
	case f.Kind != "" && f.Device == "":
		v.Attempts = c.ByKind[f.Kind]
	case f.empty():
		v.Attempts = c.Total
	}
	var parts []string
	if f.Kind != "" {
		parts = append(parts, strings.ToLower(kindOf(f.Kind).Label))
	}
	if f.Device != "" {
		label := f.Device
		for _, d := range v.Devices {
			if d.Key == f.Device {
				label = d.Label
			}
		}
		parts = append(parts, "from "+label)
	}
	if f.Q != "" {
		parts = append(parts, "matching “"+f.Q+"”")
	}
	v.Label = strings.Join(parts, ", ")
	u.render(w, r, http.StatusOK, "stopped", view{Title: "Stopped", CSRF: s.csrf, SignedIn: true, Data: v})
}

// helpPage explains each kind of stopped traffic and each class of name.
func (u *UI) helpPage(w http.ResponseWriter, r *http.Request, s *session) {
	type class struct{ Key, Label, What string }
	var classes []class
	for _, k := range []string{"os-telemetry", "browser", "app-update", "captive-probe", "unknown"} {
		c := classWords[k]
		classes = append(classes, class{k, c.Label, c.What})
	}
	u.render(w, r, http.StatusOK, "help", view{Title: "What the box stops", CSRF: s.csrf, SignedIn: true,
		Data: struct {
			Kinds   []kindWords
			Classes []class
			TestURL string
		}{kinds, classes, u.selftestURL()}})
}

// events streams what the box stops, as server-sent events, until the browser
// goes away or its session ends: each entry as the page's own row, and the
// dashboard's numbers again (at most once a second).
func (u *UI) events(w http.ResponseWriter, r *http.Request, s *session) {
	fl, ok := w.(http.Flusher)
	if !ok {
		http.Error(w, "streaming unsupported", http.StatusInternalServerError)
		return
	}
	ch, cancel := u.d.Box.SubscribeStopped(64)
	defer cancel()
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
	fmt.Fprint(w, "retry: 3000\n\n")
	fl.Flush()
	beat := time.NewTicker(15 * time.Second)
	defer beat.Stop()
	numbers := time.NewTicker(time.Second)
	defer numbers.Stop()
	dirty := false
	tok := cookieValue(r, sessionCookie)
	who := viewer(r)
	for {
		select {
		case <-r.Context().Done():
			return
		case <-beat.C:
			if u.sess.get(tok) == nil || u.d.Vault.Locked() {
				fmt.Fprint(w, "event: signedout\ndata: {}\n\n")
				fl.Flush()
				return
			}
			fmt.Fprint(w, ": still here\n\n")
			fl.Flush()
		case <-numbers.C:
			if !dirty {
				continue
			}
			dirty = false
			b, _ := json.Marshal(u.summarize(who, u.d.Now()).json())
			fmt.Fprintf(w, "event: summary\ndata: %s\n\n", b)
			fl.Flush()
		case e, ok := <-ch:
			if !ok {
				return
			}
			dirty = true
			if quiet(e.Category) {
				continue
			}
			ev := entryOf(e, u.d.Now())
			var buf bytes.Buffer
			if err := u.templates()["dashboard"].ExecuteTemplate(&buf, "entry-row", ev); err != nil {
				u.d.Logger.Warn("rendering a live entry", "err", err)
				continue
			}
			b, _ := json.Marshal(map[string]string{"key": ev.Key, "html": buf.String()})
			fmt.Fprintf(w, "event: stopped\ndata: %s\n\n", b)
			fl.Flush()
		}
	}
}

func (u *UI) pcap(w http.ResponseWriter, r *http.Request, s *session) {
	w.Header().Set("Content-Type", "application/vnd.tcpdump.pcap")
	w.Header().Set("Content-Disposition", fmt.Sprintf(`attachment; filename="redoubt-drops-%s.pcap"`, u.d.Now().Format("20060102-1504")))
	if err := u.d.Box.WritePcap(w); err != nil {
		u.d.Logger.Warn("writing pcap", "err", err)
	}
}
