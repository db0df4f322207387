package ui

import (
	"fmt"
	"html/template"
	"net/netip"
	"strconv"
	"strings"
	"time"
)

// The owner's pages speak plainly: what the box stopped is said in words a
// person at risk understands, never as a protocol's jargon. This file holds every
// such word, and the help page explains each kind (/help#<kind>).

// kindWords is a kind of stopped traffic in plain words.
type kindWords struct {
	Key   string // the leak log's kind, or "dns"
	Label string // short, for tags and filters
	What  string // what it is
	Worry string // whether to worry, and what to do
	Quiet bool   // link chatter: not an attempt to reach anything
}

// kinds are every kind of stopped traffic, in the order the help page gives
// them. Their keys are the leak log's kinds (datapath/filter), and "dns" for names
// the box refused to look up.
var kinds = []kindWords{
	{Key: "egress", Label: "Internet connection",
		What:  "Software on the device tried to connect to an address on the internet. The box is its only way out and lets nothing through: it notes what the connection revealed (the name of the site, when it says one) and closes it.",
		Worry: "Stopping it is the box's main job. Many of these are normal: operating systems, browsers and apps phone home all the time. “What is this?” on each entry says who, when the box knows."},
	{Key: "dns", Label: "Name lookup",
		What:  "Software asked the box for the address of a name on the internet. The box answers only for its own names and the team's; for every other name it says the name does not exist, and asks no one else.",
		Worry: "Normal: every connection starts with a lookup. The list of names shows what each device would have talked to."},
	{Key: "closed-port", Label: "Closed door on the box",
		What:  "Something knocked on a door of the box where nothing listens.",
		Worry: "A few are normal (some systems probe their router). Many, from one device, may mean something on it is scanning."},
	{Key: "discovery", Label: "Looking for nearby devices",
		What:  "The device asked who else is on the cable: printers, speakers, file shares (mDNS, SSDP, NetBIOS, LLMNR).",
		Worry: "Normal for laptops. The box answers none of it, so nothing nearby learns the laptop is there."},
	{Key: "broadcast", Label: "Broadcast",
		What:  "A message sent to every device on the cable, such as a network-wide announcement.",
		Worry: "Normal background noise."},
	{Key: "ipv6-link", Label: "IPv6 housekeeping", Quiet: true,
		What:  "IPv6 neighbour and router searches. The box runs no IPv6 and offers no IPv6 route, so the device stays on IPv4, through the box.",
		Worry: "Harmless: every computer does this when plugged in. It is listed apart, not counted as an attempt."},
	{Key: "arp", Label: "Address search on the cable", Quiet: true,
		What:  "The device asked which hardware answers for an address other than the box's.",
		Worry: "Harmless: this is how computers find each other on a cable. Listed apart, not counted as an attempt."},
	{Key: "spoofed", Label: "Forged sender",
		What:  "A packet claiming to come from an address the device cannot have.",
		Worry: "Unusual. A misconfigured device sends these; so does software trying to disguise itself. Look at which device."},
	{Key: "fragment", Label: "Packet fragment",
		What:  "A piece of a packet that was split in transit. The box's services never need them.",
		Worry: "Rare; harmless on its own."},
	{Key: "non-ip", Label: "Other network protocol",
		What:  "A frame that is not an internet packet (link discovery such as LLDP, network logins such as 802.1X).",
		Worry: "Harmless background from the device's network settings."},
	{Key: "vlan", Label: "Tagged for another network",
		What:  "A frame tagged for a virtual network (VLAN) that the box does not run.",
		Worry: "Only seen when a device is set up for an office network."},
	{Key: "other-host", Label: "Addressed to another device",
		What:  "A frame addressed to some other device's hardware address.",
		Worry: "Unusual on a cable to the box alone."},
	{Key: "malformed", Label: "Damaged packet",
		What:  "A packet whose headers do not add up: cut short, too long, or with a bad checksum.",
		Worry: "Occasional ones are harmless; a steady stream may be an attack on the box."},
}

func kindOf(key string) kindWords {
	for _, k := range kinds {
		if k.Key == key {
			return k
		}
	}
	return kindWords{Key: key, Label: key, What: "A kind the box has no words for yet."}
}

// quiet are the kinds that are link chatter: listed, never counted as attempts.
func quiet(key string) bool { return kindOf(key).Quiet }

// classWords are the query log's classes of names (dns/querylog), in plain words:
// "what is this?" for a name.
var classWords = map[string]struct{ Label, What string }{
	"os-telemetry":  {"System telemetry", "The operating system (or an app) reporting usage, crashes or diagnostics to its maker."},
	"browser":       {"Browser service", "The browser phoning home: safe-browsing lists, settings, its own encrypted DNS."},
	"app-update":    {"Software update", "A program or the system checking for updates. Updates need a connection the box does not give the laptop."},
	"captive-probe": {"Internet check", "The system checking whether it is online. Once the box is set up, the answer is no, which is true."},
	"local":         {"The box's own name", "A name the box answers itself."},
	"unknown":       {"Unknown", "The box does not know who sends this name. Search for it, or ask who on the laptop would."},
}

// Explanation is "what is this?" for an entry.
type Explanation struct {
	Class string // the class's label ("System telemetry"), "" when unknown
	Who   string // who sends it, when the box's table knows ("Windows diagnostic data")
	What  string // a sentence
}

// protoWords says what a connection was, from its protocol, the application the
// box recognised and its port.
func protoWords(proto, app string, port uint16) string {
	switch app {
	case "tls":
		return "Encrypted web (HTTPS)"
	case "http":
		return "Web (HTTP)"
	case "quic":
		return "Encrypted web (QUIC)"
	case "dns":
		return "Name lookup sent elsewhere"
	case "mdns", "llmnr", "netbios":
		return "Name search on the cable"
	case "ssdp":
		return "Device search (UPnP)"
	case "dhcp":
		return "Address request"
	}
	switch {
	case proto == "udp" && (port == 3478 || port == 19302 || port == 5349):
		return "WebRTC address discovery (STUN)"
	case proto == "udp" && port == 123:
		return "Time (NTP)"
	case proto == "udp" && port == 443:
		return "Encrypted web (QUIC)"
	case (proto == "tcp" || proto == "udp") && port == 53:
		return "Name lookup sent elsewhere"
	case proto == "tcp" && port == 853:
		return "Encrypted DNS (DNS over TLS)"
	case proto == "tcp" && port == 443:
		return "Encrypted connection"
	case proto == "tcp" && port == 80:
		return "Web (HTTP)"
	case proto == "icmp":
		return "Ping or network control"
	case proto == "icmpv6":
		return "IPv6 control message"
	case proto == "igmp":
		return "Multicast membership"
	case proto == "arp":
		return "Address search"
	case proto == "tcp":
		return "Connection (TCP)"
	case proto == "udp":
		return "Message (UDP)"
	case proto == "":
		return "Frame"
	}
	return "Packet (" + proto + ")"
}

// wellKnown names addresses every device sends to on a cable.
var wellKnown = map[string]string{
	"ff02::1":         "every device (IPv6)",
	"ff02::2":         "every router (IPv6)",
	"ff02::16":        "IPv6 multicast routers",
	"ff02::fb":        "nearby devices (mDNS)",
	"ff02::1:3":       "nearby devices (LLMNR)",
	"ff02::c":         "nearby devices (SSDP)",
	"224.0.0.251":     "nearby devices (mDNS)",
	"224.0.0.252":     "nearby devices (LLMNR)",
	"224.0.0.22":      "multicast routers",
	"224.0.0.1":       "every device",
	"239.255.255.250": "nearby devices (SSDP)",
	"255.255.255.255": "every device on the cable",
}

// whereWords says where an entry went, plainly: a named well-known group, else
// the address and port.
func whereWords(dst string, port uint16) string {
	if dst == "" {
		return ""
	}
	if w, ok := wellKnown[dst]; ok {
		return w
	}
	if strings.HasPrefix(dst, "ff02::1:ff") {
		return "a neighbour's address (IPv6)"
	}
	if a, err := netip.ParseAddr(dst); err == nil && port != 0 {
		return netip.AddrPortFrom(a, port).String()
	}
	return dst
}

// when is the one way the pages write a time: the time with the box's zone, and
// the date unless it is today (by the box's clock). Every page and the live feed
// use it.
func when(t, now time.Time) string {
	if t.IsZero() {
		return "never"
	}
	t, now = t.Local(), now.Local()
	if y, m, d := t.Date(); y == now.Year() && m == now.Month() && d == now.Day() {
		return t.Format("15:04:05 MST")
	}
	if t.Year() == now.Year() {
		return t.Format("2 Jan 15:04 MST")
	}
	return t.Format("2 Jan 2006 15:04 MST")
}

// duration says a duration the way a person would write it: "12 hours",
// "1 hour 30 minutes", "45 seconds".
func duration(d time.Duration) string {
	if d <= 0 {
		return "0 seconds"
	}
	units := []struct {
		d    time.Duration
		name string
	}{{24 * time.Hour, "day"}, {time.Hour, "hour"}, {time.Minute, "minute"}, {time.Second, "second"}}
	var parts []string
	for _, u := range units {
		if n := d / u.d; n > 0 && len(parts) < 2 {
			parts = append(parts, plural(int(n), u.name))
			d -= n * u.d
		}
	}
	if len(parts) == 0 {
		return "under a second"
	}
	return strings.Join(parts, " ")
}

// shortDuration writes a duration as the settings' fields take it: "12h",
// "1h30m", "90s", without Go's "12h0m0s".
func shortDuration(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}

func plural(n int, unit string) string {
	if n == 1 {
		return "1 " + unit
	}
	if strings.HasSuffix(unit, "y") && !strings.HasSuffix(unit, "ey") {
		return strconv.Itoa(n) + " " + strings.TrimSuffix(unit, "y") + "ies"
	}
	return strconv.Itoa(n) + " " + unit + "s"
}

// count writes a number with a thin space every three digits.
func count(n uint64) string {
	s := strconv.FormatUint(n, 10)
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "\u202f" + s[i:]
	}
	return s
}

// breakable lets a long name wrap at its dots and hyphens rather than in the
// middle of a word.
func breakable(s string) template.HTML {
	var b strings.Builder
	for _, r := range s {
		b.WriteString(template.HTMLEscapeString(string(r)))
		if r == '.' || r == '-' || r == ':' || r == '/' {
			b.WriteString("<wbr>")
		}
	}
	return template.HTML(b.String())
}

// capitalize makes an error from a room read as a sentence on a page.
func sentence(s string) string {
	s = strings.TrimSpace(s)
	if s == "" {
		return s
	}
	s = strings.ToUpper(s[:1]) + s[1:]
	if !strings.HasSuffix(s, ".") && !strings.HasSuffix(s, "?") && !strings.HasSuffix(s, "!") {
		s += "."
	}
	return s
}

// tooSoon writes "try again in 2 s" as a sentence.
func waitWords(d time.Duration) string {
	if d < time.Second {
		d = time.Second
	}
	return fmt.Sprintf("Try again in %s.", duration(d.Round(time.Second)))
}

// When writes a time as every page does (for sections other rooms add).
func When(t, now time.Time) string { return when(t, now) }

// Duration writes a duration in words ("3 minutes 20 seconds").
func Duration(d time.Duration) string { return duration(d) }

// ShortDuration writes a duration as the settings take it ("12h", "1h30m").
func ShortDuration(d time.Duration) string { return shortDuration(d) }
