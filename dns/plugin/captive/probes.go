package captive

// Probe is a name a system looks up to check for a captive portal, and who uses it.
type Probe struct {
	Name string // fully qualified
	Who  string
	// URL is what the system then fetches (and what it expects, when it does
	// not get it, is a portal).
	URL string
}

// probes is the table of captive-portal probe names, documented in README.md (a
// test keeps the two the same). Only these exact names are answered: a broad name
// such as www.google.com or fedoraproject.org, which some systems also probe, is
// not, so that it stays stopped and logged like any other.
var probes = []Probe{
	{"captive.apple.com.", "macOS, iOS, iPadOS", "http://captive.apple.com/hotspot-detect.html (Success)"},
	{"www.appleiphonecell.com.", "older iOS", "http://www.appleiphonecell.com/ (Success)"},
	{"www.itools.info.", "older iOS", "http://www.itools.info/ (Success)"},
	{"www.ibook.info.", "older iOS", "http://www.ibook.info/ (Success)"},
	{"www.airport.us.", "older iOS", "http://www.airport.us/ (Success)"},
	{"www.thinkdifferent.us.", "older iOS", "http://www.thinkdifferent.us/ (Success)"},
	{"connectivitycheck.gstatic.com.", "Android, Chrome", "http://connectivitycheck.gstatic.com/generate_204 (204)"},
	{"connectivitycheck.android.com.", "Android", "http://connectivitycheck.android.com/generate_204 (204)"},
	{"clients1.google.com.", "older Android", "http://clients1.google.com/generate_204 (204)"},
	{"clients3.google.com.", "ChromeOS, older Android", "http://clients3.google.com/generate_204 (204)"},
	{"www.msftconnecttest.com.", "Windows 10 and 11", "http://www.msftconnecttest.com/connecttest.txt (Microsoft Connect Test)"},
	{"ipv6.msftconnecttest.com.", "Windows 10 and 11", "http://ipv6.msftconnecttest.com/connecttest.txt (Microsoft Connect Test)"},
	{"www.msftncsi.com.", "Windows 7 and 8", "http://www.msftncsi.com/ncsi.txt (Microsoft NCSI)"},
	{"detectportal.firefox.com.", "Firefox", "http://detectportal.firefox.com/canonical.html (success)"},
	{"nmcheck.gnome.org.", "GNOME NetworkManager", "http://nmcheck.gnome.org/check_network_status.txt (NetworkManager is online)"},
	{"connectivity-check.ubuntu.com.", "Ubuntu", "http://connectivity-check.ubuntu.com/ (204)"},
	{"network-test.debian.org.", "Debian NetworkManager", "http://network-test.debian.org/nm (NetworkManager is online)"},
	{"networkcheck.kde.org.", "KDE Plasma", "http://networkcheck.kde.org/ (OK)"},
	{"connect.rom.miui.com.", "Xiaomi MIUI", "http://connect.rom.miui.com/generate_204 (204)"},
	{"connectivitycheck.platform.hicloud.com.", "Huawei EMUI", "http://connectivitycheck.platform.hicloud.com/generate_204 (204)"},
}

// byName indexes probes; built once, never changed.
var byName = func() map[string]Probe {
	m := make(map[string]Probe, len(probes))
	for _, p := range probes {
		m[p.Name] = p
	}
	return m
}()
