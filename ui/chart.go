package ui

import (
	"fmt"
	"html"
	"net/http"
	"strings"
	"time"

	"github.com/redoubt/redoubt/internal/timeseries"
)

// palette colours the chart's categories; it reads in both light and dark themes
// and stays distinguishable for the common colour-vision deficiencies.
var palette = []string{"#d55e00", "#0072b2", "#009e73", "#cc79a7", "#e69f00", "#56b4e9", "#7f7f7f", "#f0e442", "#332288", "#882255", "#44aa99", "#999933"}

// chart draws what was stopped over time as a stacked bar chart, one colour per
// category, as an SVG image the page embeds (no script needed to read it).
func (u *UI) chart(w http.ResponseWriter, r *http.Request, s *session) {
	window, step := time.Hour, time.Minute
	if r.URL.Query().Get("window") == "24h" {
		window, step = 24*time.Hour, 30*time.Minute
	}
	snap := u.d.Box.Chart(window, step)
	w.Header().Set("Content-Type", "image/svg+xml")
	w.Header().Set("Cache-Control", "no-store")
	fmt.Fprint(w, renderChart(snap, window))
}

func renderChart(snap timeseries.Snapshot, window time.Duration) string {
	const (
		width, height = 720, 260
		left, right   = 44, 150
		top, bottom   = 16, 28
	)
	plotW, plotH := float64(width-left-right), float64(height-top-bottom)
	// Only categories that occurred get a colour and a legend row.
	var used []int
	for c, name := range snap.Categories {
		if snap.Total(c) > 0 && !quiet[name] {
			used = append(used, c)
		}
	}
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
	fmt.Fprintf(&sb, `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 %d %d" role="img" aria-labelledby="t d" font-family="system-ui, sans-serif" font-size="11">`, width, height)
	fmt.Fprintf(&sb, `<title id="t">What the box stopped, last %s</title>`, humanWindow(window))
	fmt.Fprintf(&sb, `<desc id="d">%s</desc>`, html.EscapeString(describe(snap, used)))
	fmt.Fprint(&sb, `<style>text{fill:#6b6b73}.grid{stroke:#8883;stroke-width:1}</style>`)
	// Grid and axis labels.
	for i := 0; i <= 4; i++ {
		y := float64(top) + plotH*float64(i)/4
		fmt.Fprintf(&sb, `<line class="grid" x1="%d" x2="%.0f" y1="%.1f" y2="%.1f"/>`, left, float64(left)+plotW, y, y)
		fmt.Fprintf(&sb, `<text x="%d" y="%.1f" text-anchor="end">%d</text>`, left-6, y+4, scale*uint64(4-i)/4)
	}
	n := len(snap.Counts)
	if n > 0 {
		barW := plotW / float64(n)
		for i, b := range snap.Counts {
			y := float64(top) + plotH
			for k, c := range used {
				if b[c] == 0 || scale == 0 {
					continue
				}
				h := plotH * float64(b[c]) / float64(scale)
				y -= h
				fmt.Fprintf(&sb, `<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="%s"><title>%s: %d</title></rect>`,
					float64(left)+float64(i)*barW+0.5, y, max(barW-1, 0.5), h, palette[k%len(palette)], html.EscapeString(snap.Categories[c]), b[c])
			}
		}
		for _, i := range []int{0, n / 2, n - 1} {
			t := snap.Start.Add(time.Duration(i*snap.Step) * time.Second).Local()
			fmt.Fprintf(&sb, `<text x="%.1f" y="%d" text-anchor="middle">%s</text>`, float64(left)+(float64(i)+0.5)*barW, height-8, t.Format("15:04"))
		}
	}
	for k, c := range used {
		y := top + 6 + k*18
		fmt.Fprintf(&sb, `<rect x="%d" y="%d" width="12" height="12" fill="%s"/><text x="%d" y="%d">%s (%d)</text>`,
			width-right+14, y, palette[k%len(palette)], width-right+32, y+10, html.EscapeString(snap.Categories[c]), snap.Total(c))
	}
	if len(used) == 0 {
		fmt.Fprintf(&sb, `<text x="%.0f" y="%.0f" text-anchor="middle">Nothing stopped in this time.</text>`, float64(left)+plotW/2, float64(top)+plotH/2)
	}
	sb.WriteString(`</svg>`)
	return sb.String()
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
		parts = append(parts, fmt.Sprintf("%s %d", snap.Categories[c], snap.Total(c)))
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
