package apps

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/BurntSushi/toml"
)

// Manifest describes an app: what it is, where it listens and is exposed,
// its options, the data it keeps, where it may connect to, and what its users
// are shown to connect. It is TOML (apps/README.md has an example a test
// parses); built-in and external apps use the same format, external ones with
// a [program] table.
type Manifest struct {
	// ID names the app everywhere: the CLI, its origin's host name
	// (files.<box>.home.arpa), its data. 2 to 20 lower-case letters, digits
	// and hyphens, starting with a letter.
	ID string `toml:"id" json:"id"`
	// Name is what people see ("Files").
	Name string `toml:"name" json:"name"`
	// Description says in a sentence or two what the app is for.
	Description string `toml:"description" json:"description"`
	// Version is the app's version, such as 1.2.0.
	Version string `toml:"version" json:"version"`
	// Clients are the programs people connect with ("Finder", "rclone",
	// "any browser").
	Clients []string `toml:"clients" json:"clients,omitempty"`
	// Docs is how to use the app, in plain text (paragraphs separated by a
	// blank line), shown on the owner's Apps page and by `redoubt app info
	// NAME --details`.
	Docs string `toml:"docs" json:"docs,omitempty"`
	// Exposure lists where the app may be published: "lan" (the owner's
	// laptop), "tailnet" (members' devices), "box" (the box's console).
	Exposure []Network `toml:"exposure" json:"exposure"`
	// Listeners are the ports the app serves. "web" (tcp) is its web origin:
	// on the LAN its own name on port 443, on the tailnet this port of the
	// box's tailnet address.
	Listeners []Listener `toml:"listeners" json:"listeners,omitempty"`
	// Options are the app's settings. The standard ones (persistence,
	// autostart, allow-lan, allow-tailnet, quota, and allow-egress when the
	// app declares egress) are added when the manifest does not list them;
	// listing one changes only its default and description.
	Options []Option `toml:"options" json:"options"`
	// Data says what the app keeps, in plain words, one item each.
	Data []string `toml:"data" json:"data,omitempty"`
	// Egress lists where the app may connect beyond the box ("host:port"),
	// through the box's VPN, when the owner allows it. Empty (the default):
	// nowhere.
	Egress []string `toml:"egress" json:"egress,omitempty"`
	// Connect is what users are shown to connect: URLs on each origin.
	Connect []Connect `toml:"connect" json:"connect,omitempty"`
	// Program is how an external app runs; built-in apps have none.
	Program *Program `toml:"program" json:"program,omitempty"`
}

// Listener is a port the app serves.
type Listener struct {
	// Name is how the app asks for it (Env.Listen); "web" is its web origin.
	Name string `toml:"name" json:"name"`
	// Proto is "tcp" or "udp".
	Proto string `toml:"proto" json:"proto"`
	// Port is the port on the box's tailnet and LAN addresses (1024 to
	// 65535). The web listener's is used on the tailnet only: on the LAN
	// the app's own name on port 443 is its origin.
	Port uint16 `toml:"port" json:"port"`
}

// Connect is one way users connect, shown on the Apps page, the members'
// page and by `redoubt app info`: the URL is the app's origin on each network
// followed by Path, with Scheme replacing https if set (davs, webcal).
type Connect struct {
	Label string `toml:"label" json:"label"`
	// Path is appended to the origin ("/", "/dav/").
	Path string `toml:"path" json:"path"`
	// Scheme replaces "https" in the URL shown (e.g. "davs" for WebDAV in
	// some file managers); empty keeps https.
	Scheme string `toml:"scheme" json:"scheme,omitempty"`
	// QR shows the URL as a QR code too, for phones.
	QR bool `toml:"qr" json:"qr,omitempty"`
}

// Program is an external app's program: run by the host in a sandbox with
// its own files read-only, no network but a Unix socket to the host, and no
// view of other apps' data or the box's.
type Program struct {
	// Command is the program and its arguments; the program's path is
	// relative to the app's directory.
	Command []string `toml:"command" json:"command"`
}

// Well-known option names.
const (
	OptPersistence  = "persistence"
	OptAutostart    = "autostart"
	OptAllowLAN     = "allow-lan"
	OptAllowTailnet = "allow-tailnet"
	OptQuota        = "quota"
	OptAllowEgress  = "allow-egress"
)

// ManifestError is what is wrong with a manifest: the field, and what is
// accepted.
type ManifestError struct {
	Field string
	Msg   string
}

func (e *ManifestError) Error() string { return "manifest: " + e.Field + ": " + e.Msg }

func bad(field, format string, args ...any) error {
	return &ManifestError{Field: field, Msg: fmt.Sprintf(format, args...)}
}

// maxManifest bounds a manifest file.
const maxManifest = 64 << 10

var (
	idRE     = regexp.MustCompile(`^[a-z][a-z0-9-]{1,19}$`)
	optRE    = regexp.MustCompile(`^[a-z][a-z0-9-]{0,31}$`)
	listenRE = regexp.MustCompile(`^[a-z][a-z0-9-]{0,15}$`)
	verRE    = regexp.MustCompile(`^[0-9]+(\.[0-9]+){0,3}([-+][0-9A-Za-z.-]{1,40})?$`)
	schemeRE = regexp.MustCompile(`^[a-z][a-z0-9+.-]{0,15}$`)
)

// reservedIDs cannot be apps' IDs: they are names the box uses.
var reservedIDs = []string{"redoubt", "setup", "www", "team", "admin", "box", "api", "ca", "localhost"}

// reservedPorts are the box's own on its LAN and tailnet addresses.
var reservedPorts = map[uint16]string{53: "DNS", 67: "DHCP", 68: "DHCP", 80: "the box's HTTP", 443: "the box's HTTPS", 41641: "the tailnet's WireGuard"}

// ParseManifest reads a manifest, fills in the standard options and checks
// it. Errors are *ManifestError.
func ParseManifest(data []byte) (Manifest, error) {
	var m Manifest
	if len(data) > maxManifest {
		return m, bad("(file)", "%d bytes: a manifest is at most %d", len(data), maxManifest)
	}
	if !utf8.Valid(data) || bytes.IndexByte(data, 0) >= 0 {
		return m, bad("(file)", "not UTF-8 text")
	}
	md, err := toml.Decode(string(data), &m)
	if err != nil {
		var pe toml.ParseError
		if errors.As(err, &pe) {
			return m, bad("(file)", "line %d: %s", pe.Position.Line, pe.Message)
		}
		return m, bad("(file)", "%s", strings.TrimPrefix(err.Error(), "toml: "))
	}
	if und := md.Undecoded(); len(und) > 0 {
		return m, bad(und[0].String(), "unknown field; a manifest has id, name, description, version, clients, docs, exposure, listeners, options, data, egress, connect and program")
	}
	if err := m.complete(); err != nil {
		return m, err
	}
	return m, m.Validate()
}

// MustParseManifest is ParseManifest for a built-in app's embedded manifest,
// which its tests parse: it panics on an error.
func MustParseManifest(data []byte) Manifest {
	m, err := ParseManifest(data)
	if err != nil {
		panic(err)
	}
	return m
}

// standard returns the standard options for m.
func (m *Manifest) standard() []Option {
	opts := []Option{
		{Name: OptPersistence, Type: Bool, Default: "true",
			Description: "Keep the app's data when the box is locked or restarted. Off, it is erased every time."},
		{Name: OptAutostart, Type: Bool, Default: "false", Live: true,
			Description: "Start the app when the box is unlocked."},
		{Name: OptQuota, Type: Size, Default: "0", Live: true,
			Description: "The most disk space the app's data may take (0: no limit but the disk), such as 50GB."},
	}
	if slices.Contains(m.Exposure, LAN) {
		opts = append(opts, Option{Name: OptAllowLAN, Type: Bool, Default: "true", Live: true,
			Description: "Serve the app to the owner's laptop, on the LAN."})
	}
	if slices.Contains(m.Exposure, Tailnet) {
		opts = append(opts, Option{Name: OptAllowTailnet, Type: Bool, Default: "true", Live: true,
			Description: "Serve the app to the team's members, over the tailnet."})
	}
	if len(m.Egress) > 0 {
		opts = append(opts, Option{Name: OptAllowEgress, Type: Bool, Default: "false", Live: true,
			Description: "Let the app connect to " + strings.Join(m.Egress, ", ") + " through the box's VPN."})
	}
	return opts
}

// complete adds the standard options the manifest did not list, and merges
// the ones it did (their type and liveness are the platform's).
func (m *Manifest) complete() error {
	for _, s := range m.standard() {
		i := slices.IndexFunc(m.Options, func(o Option) bool { return o.Name == s.Name })
		if i < 0 {
			m.Options = append(m.Options, s)
			continue
		}
		o := m.Options[i]
		if o.Type != "" && o.Type != s.Type {
			return bad("options."+s.Name+".type", "%q: %s is a standard option of type %s", o.Type, s.Name, s.Type)
		}
		if o.Default != "" {
			s.Default = o.Default
		}
		if o.Description != "" {
			s.Description = o.Description
		}
		m.Options[i] = s
	}
	return nil
}

// Validate checks the whole manifest and names the first bad field.
func (m Manifest) Validate() error {
	if !idRE.MatchString(m.ID) || slices.Contains(reservedIDs, m.ID) {
		return bad("id", "%q: 2 to 20 lower-case letters, digits and hyphens, starting with a letter (not %s)", m.ID, strings.Join(reservedIDs, ", "))
	}
	if strings.HasSuffix(m.ID, "-") || strings.Contains(m.ID, "--") {
		return bad("id", "%q: no hyphen at the end or two in a row", m.ID)
	}
	if err := text("name", m.Name, 1, 40, false); err != nil {
		return err
	}
	if err := text("description", m.Description, 1, 400, false); err != nil {
		return err
	}
	if !verRE.MatchString(m.Version) {
		return bad("version", "%q: a version such as 1.2.0 (numbers and dots, optionally -tag)", m.Version)
	}
	if len(m.Clients) > 20 {
		return bad("clients", "%d entries: at most 20", len(m.Clients))
	}
	for i, c := range m.Clients {
		if err := text(fmt.Sprintf("clients[%d]", i), c, 1, 60, false); err != nil {
			return err
		}
	}
	if err := text("docs", m.Docs, 0, 8000, true); err != nil {
		return err
	}
	if len(m.Exposure) == 0 {
		return bad("exposure", "empty: list where the app may be published, from \"lan\", \"tailnet\" and \"box\"")
	}
	for i, e := range m.Exposure {
		if e != LAN && e != Tailnet && e != Box {
			return bad(fmt.Sprintf("exposure[%d]", i), "%q: one of \"lan\", \"tailnet\", \"box\"", e)
		}
		if slices.Index(m.Exposure, e) != i {
			return bad(fmt.Sprintf("exposure[%d]", i), "%q is listed twice", e)
		}
	}
	if err := m.validateListeners(); err != nil {
		return err
	}
	if len(m.Options) > 64 {
		return bad("options", "%d options: at most 64", len(m.Options))
	}
	for i, o := range m.Options {
		if err := o.validate(fmt.Sprintf("options[%d]", i)); err != nil {
			return err
		}
		if slices.IndexFunc(m.Options, func(p Option) bool { return p.Name == o.Name }) != i {
			return bad(fmt.Sprintf("options[%d].name", i), "%q is listed twice", o.Name)
		}
	}
	for _, s := range []string{OptAllowLAN, OptAllowTailnet, OptAllowEgress} {
		if _, ok := m.Option(s); ok && !slices.ContainsFunc(m.standard(), func(o Option) bool { return o.Name == s }) {
			switch s {
			case OptAllowEgress:
				return bad("options", "%s: the app declares no egress", s)
			default:
				return bad("options", "%s: the app's exposure (%v) does not include %s", s, m.Exposure, strings.TrimPrefix(s, "allow-"))
			}
		}
	}
	if len(m.Data) > 20 {
		return bad("data", "%d entries: at most 20", len(m.Data))
	}
	for i, d := range m.Data {
		if err := text(fmt.Sprintf("data[%d]", i), d, 1, 200, false); err != nil {
			return err
		}
	}
	for i, e := range m.Egress {
		host, port, err := net.SplitHostPort(e)
		p, perr := strconv.ParseUint(port, 10, 16)
		if err != nil || host == "" || perr != nil || p == 0 || strings.ContainsAny(host, "*/ ") {
			return bad(fmt.Sprintf("egress[%d]", i), "%q: a host and a port, such as push.example.org:443", e)
		}
	}
	if len(m.Connect) > 0 && m.web() == nil {
		return bad("connect", "the app has no web listener to connect to")
	}
	for i, c := range m.Connect {
		f := fmt.Sprintf("connect[%d]", i)
		if err := text(f+".label", c.Label, 1, 60, false); err != nil {
			return err
		}
		if !strings.HasPrefix(c.Path, "/") || len(c.Path) > 200 || strings.ContainsAny(c.Path, " \"<>\\`{}|^") || !utf8.ValidString(c.Path) {
			return bad(f+".path", "%q: a path starting with /, such as /dav/", c.Path)
		}
		if c.Scheme != "" && !schemeRE.MatchString(c.Scheme) {
			return bad(f+".scheme", "%q: a URL scheme such as davs, or nothing for https", c.Scheme)
		}
	}
	if m.Program != nil {
		if len(m.Program.Command) == 0 || len(m.Program.Command) > 32 {
			return bad("program.command", "the program and its arguments, such as [\"bin/server\", \"--quiet\"]")
		}
		c := m.Program.Command[0]
		if strings.HasPrefix(c, "/") || slices.Contains(strings.Split(c, "/"), "..") || c == "" {
			return bad("program.command[0]", "%q: the program's path inside the app's directory, such as bin/server", c)
		}
		for i, a := range m.Program.Command {
			if len(a) > 1024 || strings.ContainsRune(a, 0) {
				return bad(fmt.Sprintf("program.command[%d]", i), "at most 1024 bytes, no NUL")
			}
		}
		if m.web() == nil {
			return bad("listeners", "an external app serves HTTP to the host: it needs a web listener")
		}
		for _, l := range m.Listeners {
			if l.Name != "web" {
				return bad("listeners", "%q: an external app has only its web listener (the host carries HTTP to it over a Unix socket)", l.Name)
			}
		}
		if len(m.Egress) > 0 {
			return bad("egress", "an external app runs without a network: it cannot have egress")
		}
	}
	return nil
}

func (m Manifest) validateListeners() error {
	if len(m.Listeners) > 8 {
		return bad("listeners", "%d listeners: at most 8", len(m.Listeners))
	}
	for i, l := range m.Listeners {
		f := fmt.Sprintf("listeners[%d]", i)
		if !listenRE.MatchString(l.Name) {
			return bad(f+".name", "%q: 1 to 16 lower-case letters, digits and hyphens, starting with a letter", l.Name)
		}
		if slices.IndexFunc(m.Listeners, func(o Listener) bool { return o.Name == l.Name }) != i {
			return bad(f+".name", "%q is listed twice", l.Name)
		}
		if l.Proto != "tcp" && l.Proto != "udp" {
			return bad(f+".proto", "%q: \"tcp\" or \"udp\"", l.Proto)
		}
		if l.Name == "web" && l.Proto != "tcp" {
			return bad(f+".proto", "the web listener is tcp")
		}
		if what, ok := reservedPorts[l.Port]; ok && !(l.Port == 443 && l.Name == "web") {
			return bad(f+".port", "%d is %s", l.Port, what)
		}
		if l.Port < 1024 && !(l.Port == 443 && l.Name == "web") {
			return bad(f+".port", "%d: from 1024 to 65535", l.Port)
		}
		for j, o := range m.Listeners[:i] {
			if o.Port == l.Port && o.Proto == l.Proto {
				return bad(f+".port", "%s/%d is also listeners[%d]'s", l.Proto, l.Port, j)
			}
		}
	}
	return nil
}

// web returns the web listener, or nil.
func (m Manifest) web() *Listener {
	for i := range m.Listeners {
		if m.Listeners[i].Name == "web" {
			return &m.Listeners[i]
		}
	}
	return nil
}

// Web returns the app's web listener and whether it has one.
func (m Manifest) Web() (Listener, bool) {
	if l := m.web(); l != nil {
		return *l, true
	}
	return Listener{}, false
}

// Listener returns the listener called name.
func (m Manifest) Listener(name string) (Listener, bool) {
	for _, l := range m.Listeners {
		if l.Name == name {
			return l, true
		}
	}
	return Listener{}, false
}

// Option returns the option called name.
func (m Manifest) Option(name string) (Option, bool) {
	for _, o := range m.Options {
		if o.Name == name {
			return o, true
		}
	}
	return Option{}, false
}

// Exposed reports whether the manifest allows publishing on n.
func (m Manifest) Exposed(n Network) bool { return slices.Contains(m.Exposure, n) }

// text checks a human-readable field: its length in characters, and no
// control characters (but newlines and tabs where multiline).
func text(field, s string, minLen, maxLen int, multiline bool) error {
	n := utf8.RuneCountInString(s)
	if n < minLen || n > maxLen {
		if minLen > 0 && s == "" {
			return bad(field, "missing: 1 to %d characters", maxLen)
		}
		return bad(field, "%d characters: %d to %d", n, minLen, maxLen)
	}
	if !utf8.ValidString(s) {
		return bad(field, "not UTF-8")
	}
	for _, r := range s {
		if r < 0x20 && !(multiline && (r == '\n' || r == '\t')) || r == 0x7f || (r >= 0x80 && r < 0xa0) || r == '\u2028' || r == '\u2029' || (r >= '\u202a' && r <= '\u202e') || (r >= '\u2066' && r <= '\u2069') {
			return bad(field, "control character %U: plain text only", r)
		}
	}
	return nil
}
