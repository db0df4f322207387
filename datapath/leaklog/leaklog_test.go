package leaklog

import (
	"bytes"
	"fmt"
	"net/netip"
	"testing"
	"time"

	"github.com/gopacket/gopacket/pcapgo"

	"github.com/redoubt/redoubt/datapath/filter"
)

type clock struct{ t time.Time }

func (c *clock) now() time.Time { c.t = c.t.Add(time.Second); return c.t }

var (
	laptop = [6]byte{2, 0x52, 0x44, 0, 0, 0x64}
	phone  = [6]byte{2, 0x52, 0x44, 0, 0, 0x65}
	src    = netip.MustParseAddr("10.201.86.100")
)

func attempt(dst string, port uint16, name string) Attempt {
	return Attempt{Kind: filter.Egress, MAC: laptop, Src: src, Dst: netip.MustParseAddr(dst), Proto: "tcp", DstPort: port, App: "tls", Name: name}
}

func TestAggregates(t *testing.T) {
	c := &clock{t: time.Unix(1_700_000_000, 0)}
	l := New(Config{Now: c.now})
	a := attempt("203.0.113.10", 443, "tracker.example")
	for range 5 {
		l.Record(a, nil)
	}
	l.Record(attempt("203.0.113.11", 443, "ads.example"), nil)
	es := l.Entries()
	if len(es) != 2 {
		t.Fatalf("%d entries, want 2: %+v", len(es), es)
	}
	if es[0].Name != "ads.example" {
		t.Errorf("most recent first: got %q first", es[0].Name)
	}
	tr := es[1]
	if tr.Count != 5 || tr.Name != "tracker.example" || tr.Kind != "egress" || tr.MAC != "02:52:44:00:00:64" ||
		tr.Src != "10.201.86.100" || tr.Dst != "203.0.113.10" || tr.DstPort != 443 || tr.App != "tls" {
		t.Errorf("aggregated entry: %+v", tr)
	}
	if !tr.Last.After(tr.First) || tr.Last.Sub(tr.First) != 4*time.Second {
		t.Errorf("first %v last %v: want 4s apart", tr.First, tr.Last)
	}
	if snap := l.Series(time.Hour, time.Minute); snap.Total(int(filter.Egress)) != 6 {
		t.Errorf("series holds %d egress attempts, want 6", snap.Total(int(filter.Egress)))
	}
	ct := l.Counters()
	if ct.Total != 6 || ct.ByKind["egress"] != 6 || len(ct.Devices) != 1 || ct.Devices[0].Total != 6 || ct.Devices[0].IP != "10.201.86.100" {
		t.Errorf("counters: %+v", ct)
	}
}

func TestBoundedAndNamesSurviveAScan(t *testing.T) {
	l := New(Config{MaxEntries: 20})
	for i := range 10 {
		l.Record(attempt("203.0.113.10", 443, fmt.Sprintf("n%d.example", i)), nil)
	}
	// A port scan: thousands of distinct unnamed attempts.
	for i := range 5000 {
		l.Record(attempt(fmt.Sprintf("198.51.%d.%d", i/250, i%250), uint16(i), ""), nil)
	}
	es := l.Entries()
	if len(es) > 20 {
		t.Fatalf("%d entries, bound is 20", len(es))
	}
	named := 0
	for _, e := range es {
		if e.Name != "" {
			named++
		}
	}
	if named != 10 {
		t.Errorf("%d named entries survived the scan, want all 10", named)
	}
	c := l.Counters()
	if c.Total != 5010 || c.Evicted != 5000-10 {
		t.Errorf("total %d evicted %d, want 5010 and 4990", c.Total, c.Evicted)
	}
}

func TestDevicesBounded(t *testing.T) {
	l := New(Config{MaxDevices: 3})
	for i := range 100 {
		a := attempt("203.0.113.10", 80, "")
		a.MAC = [6]byte{2, 0, 0, 0, 0, byte(i)}
		l.Record(a, nil)
	}
	c := l.Counters()
	if len(c.Devices) != 4 {
		t.Fatalf("%d device rows, want 3 + other", len(c.Devices))
	}
	var other *DeviceCounters
	for i := range c.Devices {
		if c.Devices[i].MAC == "other" {
			other = &c.Devices[i]
		}
	}
	if other == nil || other.Total != 97 {
		t.Fatalf("other devices: %+v", other)
	}
}

func TestSpoofedSourceDoesNotMoveDeviceIP(t *testing.T) {
	l := New(Config{})
	l.Record(attempt("203.0.113.10", 80, ""), nil)
	s := attempt("10.201.86.1", 80, "")
	s.Kind, s.Src = filter.Spoofed, netip.MustParseAddr("198.51.100.7")
	l.Record(s, nil)
	if ip := l.Counters().Devices[0].IP; ip != "10.201.86.100" {
		t.Errorf("device IP %s after a spoofed packet, want the laptop's", ip)
	}
}

func TestPcap(t *testing.T) {
	l := New(Config{Frames: 3, SnapLen: 8})
	for i := range 5 {
		l.Record(attempt("203.0.113.10", 80, ""), bytes.Repeat([]byte{byte(i)}, 10))
	}
	var buf bytes.Buffer
	if err := l.WritePcap(&buf); err != nil {
		t.Fatal(err)
	}
	r, err := pcapgo.NewReader(&buf)
	if err != nil {
		t.Fatal(err)
	}
	var got []byte
	for {
		data, ci, err := r.ReadPacketData()
		if err != nil {
			break
		}
		if len(data) != 8 || ci.Length != 10 {
			t.Errorf("record: %d bytes of %d, want 8 of 10", len(data), ci.Length)
		}
		got = append(got, data[0])
	}
	if !bytes.Equal(got, []byte{2, 3, 4}) {
		t.Errorf("frames %v, want the last three, oldest first", got)
	}
}

func TestSubscribe(t *testing.T) {
	l := New(Config{})
	ch, cancel := l.Subscribe(2)
	l.Record(attempt("203.0.113.10", 443, "a.example"), nil)
	l.Record(attempt("203.0.113.10", 443, "a.example"), nil)
	l.Record(attempt("203.0.113.10", 443, "a.example"), nil) // beyond the buffer: skipped, not blocking
	e := <-ch
	if e.Name != "a.example" || e.Count != 1 {
		t.Errorf("first update %+v", e)
	}
	if e := <-ch; e.Count != 2 {
		t.Errorf("second update %+v", e)
	}
	cancel()
	cancel()
	if _, ok := <-ch; ok {
		t.Error("channel open after cancel")
	}
	l.Record(attempt("203.0.113.10", 443, "a.example"), nil) // no subscriber: no panic
}

func BenchmarkRecordRepeat(b *testing.B) {
	l := New(Config{})
	a := attempt("203.0.113.10", 443, "tracker.example")
	frame := make([]byte, 74)
	b.ReportAllocs()
	for b.Loop() {
		l.Record(a, frame)
	}
}

func BenchmarkRecordDistinct(b *testing.B) {
	l := New(Config{})
	frame := make([]byte, 74)
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		a := attempt("203.0.113.10", uint16(i), "")
		i++
		l.Record(a, frame)
	}
}
