package ui

import (
	"fmt"
	"html"
	"net/http"
	"strings"
	"time"

	"github.com/redoubt/redoubt/internal/timeseries"
)

// palette colours the chart's kinds; it reads in both light and dark themes and
// stays distinguishable for the common colour-vision deficiencies.
var palette = []string{"#d55e00", "#0072b2", "#009e73", "#cc79a7", "#e69f00", "#56b4e9", "#7f7f7f", "#f0e442", "#332288", "#882255", "#44aa99", "#999933"}

// chart draws what was stopped over time as a stacked bar chart, one colour per
// kind, as an SVG image the page embeds (no script needed to read it). The
// "narrow" layout is drawn for phones: a smaller canvas, so its text stays
// readable once scaled to the screen, and the legend under the bars.
func (u *UI) chart(w http.ResponseWriter, r *http.Request, s *session) {
	window, step := time.Hour, time.Minute
	if r.URL.Query().Get("window") == "24h" {
		window, step = 24*time.Hour, 30*time.Minute
	}
	snap := u.d.Box.Chart(window, step)
	w.Header().Set("Content-Type", "image/svg+xml")
	w.Header().Set("Cache-Control", "no-store")
	fmt.Fprint(w, renderChart(snap, window, r.URL.Query().Get("layout") == "narrow", u.d.Now()))
}

// chartLayout is the canvas's geometry.
type chartLayout struct {
	width, height            int
	left, right, top, bottom int
	legendBelow              bool
	font                     int
	ticks                    int
}

func layoutFor(narrow bool, legendRows int) chartLayout {
	if narrow {
		// About the width of a phone's card, so 13-unit text is 13 px there.
		l := chartLayout{width: 340, left: 34, right: 8, top: 12, bottom: 40, legendBelow: true, font: 13, ticks: 3}
		l.height = 180 + legendRows*20 + 8
		return l
	}
	return chartLayout{width: 720, height: 280, left: 44, right: 190, top: 16, bottom: 40, font: 12, ticks: 5}
}

func renderChart(snap timeseries.Snapshot, window time.Duration, narrow bool, now time.Time) string {
	// Only kinds that occurred get a colour and a legend row.
	var used []int
	for c, name := range snap.Categories {
		if snap.Total(c) > 0 && !quiet(name) && name != "none" {
			used = append(used, c)
		}
	}
	l := layoutFor(narrow, len(used))
	plotBottom := l.height - l.bottom
	if l.legendBelow {
		plotBottom = l.height - l.bottom - len(used)*20 - 8
	}
	plotW, plotH := float64(l.width-l.left-l.right), float64(plotBottom-l.top)
	var peak uint64
	for _, b := range snap.Counts {
		var sum uint64
		for _, c := range used {
			sum += b[c]
		}
		peak = max(peak, sum)
	}
	scale := niceCeil(peak)
	var sb strings.Builder
	fmt.Fprintf(&sb, `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 %d %d" role="img" aria-labelledby="t d" font-family="system-ui, sans-serif" font-size="%d">`, l.width, l.height, l.font)
	fmt.Fprintf(&sb, `<title id="t">What the box stopped, last %s</title>`, humanWindow(window))
	fmt.Fprintf(&sb, `<desc id="d">%s</desc>`, html.EscapeString(describe(snap, used)))
	fmt.Fprint(&sb, `<style>text{fill:#6b6b73}.grid{stroke:#8884;stroke-width:1}@media (prefers-color-scheme:dark){text{fill:#a6a6ae}}</style>`)
	// Grid and the count axis.
	for i := 0; i <= 4; i++ {
		y := float64(l.top) + plotH*float64(i)/4
		fmt.Fprintf(&sb, `<line class="grid" x1="%d" x2="%.0f" y1="%.1f" y2="%.1f"/>`, l.left, float64(l.left)+plotW, y, y)
		fmt.Fprintf(&sb, `<text x="%d" y="%.1f" text-anchor="end">%d</text>`, l.left-6, y+4, scale*uint64(4-i)/4)
	}
	n := len(snap.Counts)
	if n > 0 {
		barW := plotW / float64(n)
		for i, b := range snap.Counts {
			y := float64(l.top) + plotH
			for k, c := range used {
				if b[c] == 0 || scale == 0 {
					continue
				}
				h := plotH * float64(b[c]) / float64(scale)
				y -= h
				fmt.Fprintf(&sb, `<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="%s"><title>%s: %d</title></rect>`,
					float64(l.left)+float64(i)*barW+0.5, y, max(barW-1, 0.5), h, palette[k%len(palette)], html.EscapeString(kindOf(snap.Categories[c]).Label), b[c])
			}
		}
		// The time axis: the time under each tick, and the date under the
		// first and wherever the day changes.
		lastDay := ""
		for j := 0; j < l.ticks; j++ {
			i := j * (n - 1) / max(l.ticks-1, 1)
			t := snap.Start.Add(time.Duration(i*snap.Step) * time.Second).Local()
			x := float64(l.left) + (float64(i)+0.5)*barW
			anchor := "middle"
			switch j {
			case 0:
				anchor, x = "start", float64(l.left)
			case l.ticks - 1:
				anchor, x = "end", float64(l.left)+plotW
			}
			fmt.Fprintf(&sb, `<text x="%.1f" y="%d" text-anchor="%s">%s</text>`, x, plotBottom+16, anchor, t.Format("15:04"))
			if d := dayLabel(t, now); d != lastDay {
				fmt.Fprintf(&sb, `<text x="%.1f" y="%d" text-anchor="%s">%s</text>`, x, plotBottom+32, anchor, d)
				lastDay = d
			}
		}
	}
	for k, c := range used {
		var x, y int
		if l.legendBelow {
			x, y = l.left, plotBottom+l.bottom+4+k*20
		} else {
			x, y = l.width-l.right+14, l.top+6+k*20
		}
		fmt.Fprintf(&sb, `<rect x="%d" y="%d" width="12" height="12" fill="%s"/><text x="%d" y="%d">%s (%d)</text>`,
			x, y, palette[k%len(palette)], x+18, y+11, html.EscapeString(kindOf(snap.Categories[c]).Label), snap.Total(c))
	}
	if len(used) == 0 {
		fmt.Fprintf(&sb, `<text x="%.0f" y="%.0f" text-anchor="middle">Nothing stopped in this time.</text>`, float64(l.left)+plotW/2, float64(l.top)+plotH/2)
	}
	sb.WriteString(`</svg>`)
	return sb.String()
}

// dayLabel is a date on the time axis, with the zone: "Today (UTC)", "Sat 6 Dec".
func dayLabel(t, now time.Time) string {
	if y, m, d := t.Date(); y == now.Local().Year() && m == now.Local().Month() && d == now.Local().Day() {
		return "today, " + t.Format("MST")
	}
	return t.Format("Mon 2 Jan, MST")
}

func humanWindow(d time.Duration) string {
	if d >= 24*time.Hour {
		return "24 hours"
	}
	return "hour"
}

// describe is the chart in words, for screen readers.
func describe(snap timeseries.Snapshot, used []int) string {
	if len(used) == 0 {
		return "Nothing was stopped."
	}
	parts := make([]string, 0, len(used))
	for _, c := range used {
		parts = append(parts, fmt.Sprintf("%s %d", kindOf(snap.Categories[c]).Label, snap.Total(c)))
	}
	return "Stopped: " + strings.Join(parts, ", ") + "."
}

// niceCeil rounds up to 1, 2 or 5 times a power of ten.
func niceCeil(v uint64) uint64 {
	if v <= 4 {
		return 4
	}
	p := uint64(1)
	for p*10 <= v {
		p *= 10
	}
	for _, m := range []uint64{1, 2, 5, 10} {
		if m*p >= v {
			return m * p
		}
	}
	return 10 * p
}

// chartTable is the chart's data as a table over time: one row per hour in which
// something was stopped.
type chartTable struct {
	Rows []chartRow
	Zone string
}

type chartRow struct {
	From, To string
	Total    uint64
	Kinds    string // "Internet connection 12, Name lookup 3"
}

func tableOverTime(snap timeseries.Snapshot, now time.Time) chartTable {
	t := chartTable{Zone: now.Local().Format("MST")}
	for i := len(snap.Counts) - 1; i >= 0; i-- {
		b := snap.Counts[i]
		var total uint64
		var parts []string
		for _, k := range kinds {
			for c, name := range snap.Categories {
				if name == k.Key && !k.Quiet && b[c] > 0 {
					total += b[c]
					parts = append(parts, fmt.Sprintf("%s %d", k.Label, b[c]))
				}
			}
		}
		if total == 0 {
			continue
		}
		from := snap.Start.Add(time.Duration(i*snap.Step) * time.Second)
		to := from.Add(time.Duration(snap.Step) * time.Second)
		t.Rows = append(t.Rows, chartRow{From: when(from, now), To: to.Local().Format("15:04"), Total: total, Kinds: strings.Join(parts, ", ")})
	}
	return t
}
