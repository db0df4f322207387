package querylog

import (
	"net/netip"
	"time"

	"github.com/redoubt/redoubt/internal/timeseries"
)

// Series returns the stopped queries per class over the last window (at most a
// day), in buckets of step, for the dashboard's chart.
func (l *Log) Series(window, step time.Duration) timeseries.Snapshot {
	return l.series.Snapshot(l.cfg.Now(), window, step)
}

// Reset forgets every entry and counter (a factory reset: a new owner does not see
// the old one's history).
func (l *Log) Reset() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.entries = make(map[key]*node)
	l.classified, l.unknown = lru{}, lru{}
	l.queries, l.dropped, l.evicted = 0, 0, 0
	l.byOutcome = [numOutcomes]uint64{}
	l.devices = make(map[netip.Addr]*device)
	l.other = device{}
	l.series.Reset()
}
