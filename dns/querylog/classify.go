package querylog

import "strings"

// rule classifies a name and every name under it.
type rule struct {
	suffix string
	class  Class
	what   string // who sends it, for the README
}

// rules is the classification table, documented in README.md (a test keeps the
// two the same). It is deliberately small: well-known names whose purpose is not
// in doubt. The longest matching suffix wins; everything else is Unknown. Captive
// probes are not here: the captive plugin marks them from its own table, and the
// localnames plugin marks the box's names.
var rules = []rule{
	// Operating-system telemetry and crash reports.
	{"events.data.microsoft.com", OSTelemetry, "Windows diagnostic data"},
	{"vortex.data.microsoft.com", OSTelemetry, "Windows diagnostic data (older)"},
	{"settings-win.data.microsoft.com", OSTelemetry, "Windows telemetry settings"},
	{"telemetry.microsoft.com", OSTelemetry, "Windows telemetry"},
	{"watson.microsoft.com", OSTelemetry, "Windows Error Reporting"},
	{"xp.apple.com", OSTelemetry, "Apple analytics"},
	{"metrics.icloud.com", OSTelemetry, "Apple iCloud metrics"},
	{"metrics.mzstatic.com", OSTelemetry, "Apple App Store metrics"},
	{"daisy.ubuntu.com", OSTelemetry, "Ubuntu crash reports"},
	{"metrics.ubuntu.com", OSTelemetry, "Ubuntu metrics"},
	{"popcon.ubuntu.com", OSTelemetry, "Ubuntu popularity contest"},
	{"app-measurement.com", OSTelemetry, "Google/Firebase analytics in apps"},
	{"firebaselogging-pa.googleapis.com", OSTelemetry, "Firebase logging in apps"},

	// Browsers phoning home: safe-browsing lists, settings, browser telemetry,
	// encrypted-DNS canaries and resolvers.
	{"safebrowsing.googleapis.com", Browser, "Chrome Safe Browsing"},
	{"safebrowsing.google.com", Browser, "Chrome Safe Browsing"},
	{"optimizationguide-pa.googleapis.com", Browser, "Chrome optimization hints"},
	{"firefox.settings.services.mozilla.com", Browser, "Firefox remote settings"},
	{"incoming.telemetry.mozilla.org", Browser, "Firefox telemetry"},
	{"location.services.mozilla.com", Browser, "Firefox geolocation"},
	{"push.services.mozilla.com", Browser, "Firefox push"},
	{"shavar.services.mozilla.com", Browser, "Firefox tracking-protection lists"},
	{"use-application-dns.net", Browser, "Firefox DNS-over-HTTPS canary"},
	{"mask.icloud.com", Browser, "Safari iCloud Private Relay canary"},
	{"mask-h2.icloud.com", Browser, "Safari iCloud Private Relay"},
	{"smartscreen.microsoft.com", Browser, "Edge SmartScreen"},
	{"edge.microsoft.com", Browser, "Edge services"},
	{"dns.google", Browser, "Google Public DNS over HTTPS"},
	{"cloudflare-dns.com", Browser, "Cloudflare DNS over HTTPS"},
	{"dns.quad9.net", Browser, "Quad9 DNS over HTTPS"},
	{"doh.opendns.com", Browser, "OpenDNS DNS over HTTPS"},

	// Software updates.
	{"update.googleapis.com", AppUpdate, "Chrome and Google updaters"},
	{"dl.google.com", AppUpdate, "Google downloads and updates"},
	{"aus5.mozilla.org", AppUpdate, "Firefox updates"},
	{"windowsupdate.com", AppUpdate, "Windows Update"},
	{"update.microsoft.com", AppUpdate, "Windows Update"},
	{"delivery.mp.microsoft.com", AppUpdate, "Windows Update delivery"},
	{"swscan.apple.com", AppUpdate, "macOS software update"},
	{"swdist.apple.com", AppUpdate, "macOS software update"},
	{"mesu.apple.com", AppUpdate, "Apple software update"},
	{"updates.cdn-apple.com", AppUpdate, "Apple software update"},
	{"archive.ubuntu.com", AppUpdate, "Ubuntu packages"},
	{"security.ubuntu.com", AppUpdate, "Ubuntu security updates"},
	{"api.snapcraft.io", AppUpdate, "Snap updates"},
	{"deb.debian.org", AppUpdate, "Debian packages"},
	{"security.debian.org", AppUpdate, "Debian security updates"},
	{"dl.flathub.org", AppUpdate, "Flatpak updates"},
	{"update.code.visualstudio.com", AppUpdate, "VS Code updates"},
}

// bySuffix indexes rules; built once from the table, never changed.
var bySuffix = func() map[string]Class {
	m := make(map[string]Class, len(rules))
	for _, r := range rules {
		m[r.suffix] = r.class
	}
	return m
}()

// whoBySuffix indexes the rules' senders, for Explain.
var whoBySuffix = func() map[string]string {
	m := make(map[string]string, len(rules))
	for _, r := range rules {
		m[r.suffix] = r.what
	}
	return m
}()

// Explain returns the class of a normalised name and, when the table has it, who
// sends it ("Windows diagnostic data"): the owner's "what is this?".
func Explain(name string) (Class, string) {
	for {
		if c, ok := bySuffix[name]; ok {
			return c, whoBySuffix[name]
		}
		i := strings.IndexByte(name, '.')
		if i < 0 {
			return Unknown, ""
		}
		name = name[i+1:]
	}
}

// Classify returns the class of a normalised name (see Normalize) from the table:
// the rule for the longest suffix of name that has one, else Unknown.
func Classify(name string) Class {
	for {
		if c, ok := bySuffix[name]; ok {
			return c
		}
		i := strings.IndexByte(name, '.')
		if i < 0 {
			return Unknown
		}
		name = name[i+1:]
	}
}
