package ui

import (
	"cmp"
	"html/template"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
)

// entry is one thing the box stopped, as the pages show it: every field already
// in words, so the server's pages and the live feed (which the server renders
// too) look the same.
type entry struct {
	Key      string // identifies the entry in the live feed
	When     string
	Time     time.Time
	First    string
	Device   string
	Kind     kindWords
	What     string
	Where    string
	Name     string
	NameHTML template.HTML
	Count    uint64
	Explain  Explanation
	Quiet    bool
}

// entryOf puts e into words.
func entryOf(e Stopped, now time.Time) entry {
	v := entry{
		Key:    strings.Join([]string{e.Source, e.Category, e.MAC, e.IP, e.Proto, e.App, e.Dst, itoa(int(e.Port)), e.Name}, "|"),
		When:   when(e.Last, now),
		Time:   e.Last,
		First:  when(e.First, now),
		Device: nonEmpty(e.Device, "an unknown device"),
		Kind:   kindOf(e.Category),
		Name:   e.Name,
		Count:  e.Count,
		Quiet:  quiet(e.Category),
	}
	v.NameHTML = breakable(e.Name)
	if e.Source == "dns" {
		v.What = "Name lookup"
		if len(e.Types) > 0 {
			v.What += " (" + strings.Join(e.Types, ", ") + ")"
		}
	} else {
		v.What = protoWords(e.Proto, e.App, e.Port)
		v.Where = whereWords(e.Dst, e.Port)
	}
	v.Explain = explain(e)
	return v
}

// explain is "what is this?" for an entry: the name's class and sender when the
// box knows them, else what the kind and the protocol say.
func explain(e Stopped) Explanation {
	var x Explanation
	if c, ok := classWords[e.Class]; ok && e.Class != "" && e.Class != "unknown" {
		x.Class = c.Label
		x.What = c.What
	}
	x.Who = e.Who
	switch {
	case x.What != "":
	case e.Name != "" && e.Source == "dns":
		x.What = "The box does not know who looks this name up. Search the web for it, or think of which program on the device would."
	case e.Name != "":
		x.What = "A connection to " + e.Name + ". The box does not know who makes it."
	default:
		k := kindOf(e.Category)
		x.What = k.What
		if e.Category == "egress" && e.Name == "" {
			x.What = "A connection to an address, without a name: software that has its server's address written into it (some apps, updaters, malware) does this."
		}
	}
	if e.Category == "egress" && e.Proto == "udp" && (e.Port == 3478 || e.Port == 19302 || e.Port == 5349) {
		x.Class, x.What = "WebRTC", "A browser or calling app asking a STUN server for this computer's public address, the way video calls start."
	}
	return x
}

func itoa(n int) string {
	if n == 0 {
		return ""
	}
	return strconv.Itoa(n)
}

// filter is what the Stopped page shows: one device, one kind, names containing
// a text.
type filter struct {
	Device, Kind, Q string
}

func (f filter) match(e Stopped) bool {
	if f.Device != "" && deviceKey(e.MAC, e.IP) != f.Device && e.IP != f.Device {
		return false
	}
	if f.Kind != "" && e.Category != f.Kind {
		return false
	}
	if f.Q != "" {
		hay := strings.ToLower(e.Name + " " + e.Dst + " " + e.Who)
		if !strings.Contains(hay, strings.ToLower(f.Q)) {
			return false
		}
	}
	return true
}

func (f filter) empty() bool { return f == filter{} }

// query is the filter as a Stopped page link.
func (f filter) query() string {
	v := url.Values{}
	if f.Device != "" {
		v.Set("device", f.Device)
	}
	if f.Kind != "" {
		v.Set("kind", f.Kind)
	}
	if f.Q != "" {
		v.Set("q", f.Q)
	}
	if len(v) == 0 {
		return "/stopped"
	}
	return "/stopped?" + v.Encode()
}

// counts is a tally in the pages' terms: attempts (every kind but link
// chatter) in all, per kind and per device.
type counts struct {
	Total   uint64
	Chatter uint64
	ByKind  map[string]uint64
	// ByDevice is keyed by hardware address (or address when there is none).
	ByDevice map[string]uint64
}

func countsOf(t Tally) counts {
	c := counts{ByKind: map[string]uint64{}, ByDevice: map[string]uint64{}}
	for k, n := range t.ByKind {
		c.ByKind[k] += n
		if quiet(k) {
			c.Chatter += n
		} else {
			c.Total += n
		}
	}
	for _, d := range t.Devices {
		var n uint64
		for k, m := range d.ByKind {
			if !quiet(k) {
				n += m
			}
		}
		c.ByDevice[deviceKey(d.MAC, d.IP)] += n
	}
	return c
}

func deviceKey(mac, ip string) string {
	if mac != "" {
		return strings.ToLower(mac)
	}
	return ip
}

// kindOption is a kind in the Stopped page's filter, with its count.
type kindOption struct {
	Key, Label string
	Count      uint64
}

func kindOptions(c counts) []kindOption {
	var out []kindOption
	for _, k := range kinds {
		if n := c.ByKind[k.Key]; n > 0 {
			out = append(out, kindOption{k.Key, k.Label, n})
		}
	}
	return out
}

// deviceOption is a device in the filter and the dashboard's top list.
type deviceOption struct {
	Key, Label string
	Count      uint64
}

// deviceOptions names each counted device by its lease, most stopped first.
func deviceOptions(c counts, devices []Device, t Tally) []deviceOption {
	names := map[string]string{}
	for _, d := range devices {
		if d.Name != "" {
			names[deviceKey(d.MAC, "")] = d.Name
		}
		names[d.IP] = nonEmpty(d.Name, d.IP)
	}
	var out []deviceOption
	seen := map[string]bool{}
	for _, d := range t.Devices {
		k := deviceKey(d.MAC, d.IP)
		if seen[k] || c.ByDevice[k] == 0 {
			continue
		}
		seen[k] = true
		label := names[k]
		if label == "" {
			label = nonEmpty(names[d.IP], nonEmpty(d.IP, d.MAC))
		}
		out = append(out, deviceOption{k, label, c.ByDevice[k]})
	}
	slices.SortFunc(out, func(a, b deviceOption) int {
		if c := cmp.Compare(b.Count, a.Count); c != 0 {
			return c
		}
		return cmp.Compare(a.Label, b.Label)
	})
	return out
}
