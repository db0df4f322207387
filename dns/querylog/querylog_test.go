package querylog

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// clock is a fake time that advances a second per reading.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(time.Second)
	return c.t
}

func newLog(cfg Config) (*Log, *clock) {
	c := &clock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	cfg.Now = c.now
	return New(cfg), c
}

var laptop = netip.MustParseAddr("10.201.86.100")

func TestAggregate(t *testing.T) {
	l, _ := newLog(Config{})
	phone := netip.MustParseAddr("10.201.86.101")
	mac := [6]byte{2, 0x52, 0x44, 0, 0, 0x64}
	steps := []struct {
		q     Query
		fresh bool
	}{
		{Query{Client: laptop, MAC: mac, Name: "Tracker.Example.", Type: 1, Outcome: Stopped}, true},
		{Query{Client: laptop, Name: "tracker.example", Type: 28, Outcome: Stopped}, false},
		{Query{Client: laptop, Name: "tracker.example.", Type: 65, Outcome: Stopped}, false},
		{Query{Client: phone, Name: "tracker.example.", Type: 1, Outcome: Stopped}, true},
		{Query{Client: laptop, Name: "redoubt.home.arpa.", Type: 1, Outcome: Local, Class: LocalName}, true},
		{Query{Client: laptop, Name: "redoubt.home.arpa.", Type: 99, Outcome: Local, Class: LocalName}, false},
		{Query{Client: laptop, Name: "captive.apple.com.", Type: 1, Outcome: Captive, Class: CaptiveProbe}, true},
		{Query{Client: laptop, Name: "captive.apple.com.", Type: 1, Outcome: Stopped, Class: CaptiveProbe}, false},
	}
	for i, s := range steps {
		if got := l.Record(s.q); got != s.fresh {
			t.Errorf("step %d: fresh %v, want %v", i, got, s.fresh)
		}
	}
	l.CountMalformed(laptop)
	l.CountDropped(phone)
	var got []string
	for _, e := range l.Entries() {
		got = append(got, fmt.Sprintf("%s %s %s %s %s %v %d %s %s", e.Client, e.MAC, e.Name, e.Class, e.Answer, e.Types, e.Count,
			e.First.Format("05"), e.Last.Format("05")))
	}
	want := []string{
		// The most recently seen first; answer is the latest outcome.
		"10.201.86.100 02:52:44:00:00:64 captive.apple.com captive-probe stopped [A] 2 07 08",
		"10.201.86.100 02:52:44:00:00:64 redoubt.home.arpa local local [A other] 2 05 06",
		"10.201.86.101  tracker.example unknown stopped [A] 1 04 04",
		"10.201.86.100 02:52:44:00:00:64 tracker.example unknown stopped [A AAAA HTTPS] 3 01 03",
	}
	if !slices.Equal(got, want) {
		t.Errorf("entries:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	c := l.Counters()
	if c.Queries != 9 || c.Dropped != 1 || c.Evicted != 0 ||
		c.ByAnswer["stopped"] != 5 || c.ByAnswer["local"] != 2 || c.ByAnswer["captive"] != 1 || c.ByAnswer["malformed"] != 1 {
		t.Errorf("counters %+v", c)
	}
	if len(c.Devices) != 2 {
		t.Fatalf("devices %+v", c.Devices)
	}
	d := c.Devices[0]
	if d.Client != "10.201.86.100" || d.MAC != "02:52:44:00:00:64" || d.Queries != 8 || d.Stopped != 4 || d.Malformed != 1 || d.Dropped != 0 {
		t.Errorf("laptop's counters %+v", d)
	}
	if d := c.Devices[1]; d.Client != "10.201.86.101" || d.Queries != 1 || d.Dropped != 1 {
		t.Errorf("phone's counters %+v", d)
	}
}

// TestBounded floods the log with distinct names and clients: it keeps its size,
// the known names survive a flood of unknown ones, and the totals stay right.
func TestBounded(t *testing.T) {
	l, _ := newLog(Config{MaxEntries: 64, MaxDevices: 8})
	l.Record(Query{Client: laptop, Name: "safebrowsing.googleapis.com", Type: 1})
	l.Record(Query{Client: laptop, Name: "redoubt.home.arpa", Type: 1, Class: LocalName, Outcome: Local})
	for i := range 10000 {
		l.Record(Query{Client: netip.AddrFrom4([4]byte{10, 201, 86, byte(i % 50)}), Name: fmt.Sprintf("r%d.dga.example", i), Type: 1})
	}
	e := l.Entries()
	if len(e) > 64 {
		t.Errorf("%d entries, want at most 64", len(e))
	}
	var kept []string
	for _, x := range e {
		if x.Class != "unknown" {
			kept = append(kept, x.Name)
		}
	}
	slices.Sort(kept)
	if !slices.Equal(kept, []string{"redoubt.home.arpa", "safebrowsing.googleapis.com"}) {
		t.Errorf("classified entries after the flood: %q", kept)
	}
	c := l.Counters()
	if c.Queries != 10002 || c.Evicted != 10000-32 {
		t.Errorf("queries %d evicted %d", c.Queries, c.Evicted)
	}
	var other *DeviceCounters
	for i := range c.Devices {
		if c.Devices[i].Client == "other" {
			other = &c.Devices[i]
		}
	}
	if len(c.Devices) != 9 || other == nil {
		t.Fatalf("devices %d (want 8 and other): %+v", len(c.Devices), c.Devices)
	}
	var sum uint64
	for _, d := range c.Devices {
		sum += d.Queries
	}
	if sum != c.Queries {
		t.Errorf("device totals %d, want %d", sum, c.Queries)
	}
}

func TestSubscribe(t *testing.T) {
	l, _ := newLog(Config{})
	ch, cancel := l.Subscribe(2)
	for i := range 5 {
		l.Record(Query{Client: laptop, Name: fmt.Sprintf("n%d.example", i), Type: 1})
	}
	var got []string
	for range 2 {
		got = append(got, (<-ch).Name)
	}
	if !slices.Equal(got, []string{"n0.example", "n1.example"}) {
		t.Errorf("feed %q: want the first two (the rest skipped, not blocking)", got)
	}
	cancel()
	cancel()
	if _, ok := <-ch; ok {
		t.Error("feed open after cancel")
	}
	l.Record(Query{Client: laptop, Name: "after.example", Type: 1}) // no panic on a closed feed
}

func TestClassify(t *testing.T) {
	for name, want := range map[string]Class{
		"v10.events.data.microsoft.com": OSTelemetry,
		"events.data.microsoft.com":     OSTelemetry,
		"data.microsoft.com":            Unknown,
		"safebrowsing.googleapis.com":   Browser,
		"googleapis.com":                Unknown,
		"update.googleapis.com":         AppUpdate,
		"x.update.googleapis.com":       AppUpdate,
		"use-application-dns.net":       Browser,
		"dns.google":                    Browser,
		"ctldl.windowsupdate.com":       AppUpdate,
		"notwindowsupdate.com":          Unknown,
		"tracker.example":               Unknown,
		"":                              Unknown,
		".":                             Unknown,
	} {
		if got := Classify(name); got != want {
			t.Errorf("Classify(%q) = %v, want %v", name, got, want)
		}
	}
}

// TestClassesDocumented keeps the plugin README's table and the rules the same.
func TestClassesDocumented(t *testing.T) {
	readme, err := os.ReadFile("../plugin/querylog/README.md")
	if err != nil {
		t.Fatal(err)
	}
	var documented, code []string
	for _, line := range strings.Split(string(readme), "\n") {
		f := strings.Split(line, "|")
		if len(f) != 5 {
			continue
		}
		class := strings.TrimSpace(f[2])
		if class == "os-telemetry" || class == "browser" || class == "app-update" {
			documented = append(documented, strings.TrimSpace(f[1])+" "+class+" "+strings.TrimSpace(f[3]))
		}
	}
	for _, r := range rules {
		code = append(code, r.suffix+" "+r.class.String()+" "+r.what)
	}
	if !slices.Equal(documented, code) {
		t.Errorf("README table differs from classify.go:\nREADME:\n%s\ncode:\n%s", strings.Join(documented, "\n"), strings.Join(code, "\n"))
	}
}

func TestMark(t *testing.T) {
	Mark(context.Background(), Local, LocalName) // no note: nothing happens
	var n Note
	ctx := NewContext(context.Background(), &n)
	if _, ok := n.Outcome(); ok {
		t.Fatal("fresh note marked")
	}
	MarkClass(ctx, CaptiveProbe)
	Mark(ctx, Stopped, Unknown) // keeps the class
	if o, ok := n.Outcome(); !ok || o != Stopped || n.Class() != CaptiveProbe {
		t.Errorf("note %v %v %v", o, ok, n.Class())
	}
}

func TestNames(t *testing.T) {
	for o := range numOutcomes + 1 {
		if o.String() == "" {
			t.Errorf("outcome %d has no name", o)
		}
	}
	for c := range numClasses + 1 {
		if c.String() == "" {
			t.Errorf("class %d has no name", c)
		}
	}
	if Normalize("Example.COM.") != "example.com" || Normalize(".") != "." {
		t.Error("Normalize")
	}
}

func BenchmarkRecord(b *testing.B) {
	l := New(Config{})
	names := make([]string, 4096)
	for i := range names {
		names[i] = fmt.Sprintf("n%d.example.", i)
	}
	b.ReportAllocs()
	for i := range b.N {
		l.Record(Query{Client: laptop, Name: names[i%len(names)], Type: 1})
	}
}

func TestExplain(t *testing.T) {
	for name, want := range map[string]struct {
		class Class
		who   string
	}{
		"v10.events.data.microsoft.com": {OSTelemetry, "Windows diagnostic data"},
		"update.googleapis.com":         {AppUpdate, "Chrome and Google updaters"},
		"tracker.example":               {Unknown, ""},
	} {
		if c, who := Explain(name); c != want.class || who != want.who {
			t.Errorf("Explain(%q) = %v %q, want %v %q", name, c, who, want.class, want.who)
		}
		if c, _ := Explain(name); c != Classify(name) {
			t.Errorf("Explain and Classify disagree on %q", name)
		}
	}
}
