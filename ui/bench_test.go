package ui

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"testing"
	"time"
)

// fullBox is the fake box with a full leak log and query log (2048 entries
// each, as the box keeps at most), for the pages' benchmarks.
func fullBox(r *rig) {
	now := time.Now()
	r.box.mu.Lock()
	defer r.box.mu.Unlock()
	for i := range 4096 {
		e := Stopped{Source: "connection", Category: "egress", Device: "laptop", MAC: "02:52:44:00:00:64", IP: "10.201.86.100",
			Proto: "tcp", App: "tls", Dst: fmt.Sprintf("203.0.%d.%d", i/256, i%256), Port: 443, Name: fmt.Sprintf("t%d.tracker.example", i),
			Count: uint64(i%7 + 1), First: now.Add(-time.Hour), Last: now.Add(-time.Duration(i) * time.Second)}
		if i%2 == 1 {
			e = Stopped{Source: "dns", Category: "dns", Class: "unknown", Device: "laptop", MAC: "02:52:44:00:00:64", IP: "10.201.86.100",
				Types: []string{"A", "AAAA"}, Name: fmt.Sprintf("n%d.example.com", i), Count: 2, First: now.Add(-time.Hour), Last: now}
		}
		r.box.stopped = append(r.box.stopped, e)
	}
}

// BenchmarkStoppedPage renders the Stopped page over a full log (the most a
// page shows, 500 entries, filtered from 4096).
func BenchmarkStoppedPage(b *testing.B) {
	r := newRig(b, b.TempDir())
	fullBox(r)
	req := httptest.NewRequest(http.MethodGet, "/stopped?kind=egress", nil)
	s := &session{csrf: "x"}
	b.ReportAllocs()
	for b.Loop() {
		w := httptest.NewRecorder()
		r.u.stoppedPage(w, req, s)
		if w.Code != http.StatusOK {
			b.Fatal(w.Code)
		}
	}
}

// BenchmarkSummary is the dashboard's state and numbers, which the live feed
// sends again at most once a second to each open dashboard.
func BenchmarkSummary(b *testing.B) {
	r := newRig(b, b.TempDir())
	fullBox(r)
	who := netip.MustParseAddr("10.201.86.100")
	b.ReportAllocs()
	for b.Loop() {
		if s := r.u.summarize(who, time.Now()); s.Sentence == "" {
			b.Fatal("no sentence")
		}
	}
}
