// Package wgconfig parses the WireGuard configuration a VPN provider hands out, in
// the wg-quick format ([Interface] PrivateKey, Address, DNS, MTU; one [Peer] with
// PublicKey, PresharedKey, Endpoint, AllowedIPs, PersistentKeepalive), into a
// validated Config for the box's external VPN.
//
// The text comes from the owner (pasted in the setup page, put in a file), so the
// parser treats it as untrusted: it is bounded in size, refuses what it does not
// understand, and every error names the line, the section, the key, the value and
// what would be accepted. Private and preshared keys never appear in an error, a
// log line or JSON: PrivateKey's String and MarshalText print "(hidden)".
//
// Only the vpn room imports it (and the lab, which writes configs for its box).
package wgconfig

import (
	"bufio"
	"bytes"
	"crypto/ecdh"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// Limits on the text, so that a huge or hostile paste is refused before any work.
const (
	MaxSize      = 64 << 10 // bytes in a config
	MaxLineBytes = 4096     // bytes in one line
	maxListItems = 256      // addresses in Address, AllowedIPs, DNS
)

// Defaults applied to what a config leaves out.
const (
	// DefaultMTU is wg-quick's MTU on a 1500-byte link (1500 - 80).
	DefaultMTU = 1420
	// DefaultKeepalive is used when the config sets no PersistentKeepalive: the
	// box sits behind NAT (home routers, hotels) and its health check needs
	// traffic both ways.
	DefaultKeepalive = 25 * time.Second
)

// Key is a WireGuard public key.
type Key [32]byte

// String is the key in the base64 form WireGuard tools print.
func (k Key) String() string { return base64.StdEncoding.EncodeToString(k[:]) }

// IsZero reports whether k is all zeros (no key).
func (k Key) IsZero() bool { return k == Key{} }

// MarshalText implements encoding.TextMarshaler.
func (k Key) MarshalText() ([]byte, error) { return []byte(k.String()), nil }

// PrivateKey is a secret key: a WireGuard private key or a preshared key. It prints
// as "(hidden)" everywhere (fmt, slog, JSON); Bytes gives the key itself, for the
// WireGuard device only.
type PrivateKey struct{ k [32]byte }

// String hides the key.
func (PrivateKey) String() string { return "(hidden)" }

// GoString hides the key from %#v too.
func (PrivateKey) GoString() string { return "wgconfig.PrivateKey(hidden)" }

// MarshalText hides the key from encoders.
func (PrivateKey) MarshalText() ([]byte, error) { return []byte("(hidden)"), nil }

// IsZero reports whether the key is unset.
func (p PrivateKey) IsZero() bool { return p.k == [32]byte{} }

// Bytes returns the key. Only the WireGuard device and key derivation use it.
func (p PrivateKey) Bytes() [32]byte { return p.k }

// Public derives the public key of a private key.
func (p PrivateKey) Public() Key {
	priv, err := ecdh.X25519().NewPrivateKey(p.k[:])
	if err != nil {
		return Key{}
	}
	var k Key
	copy(k[:], priv.PublicKey().Bytes())
	return k
}

// GenerateKey makes a new private key (for the lab and tests; a provider's config
// brings its own).
func GenerateKey() (PrivateKey, error) {
	priv, err := ecdh.X25519().GenerateKey(rand.Reader)
	if err != nil {
		return PrivateKey{}, fmt.Errorf("generating a WireGuard key: %w", err)
	}
	var p PrivateKey
	copy(p.k[:], priv.Bytes())
	return p, nil
}

// Base64 is the key in the form a wg-quick file holds. Only code that writes such
// a file (the lab) calls it.
func (p PrivateKey) Base64() string { return base64.StdEncoding.EncodeToString(p.k[:]) }

// Config is a parsed, validated client configuration.
type Config struct {
	// PrivateKey is the box's key for this VPN.
	PrivateKey PrivateKey
	// Addresses are the box's addresses inside the tunnel.
	Addresses []netip.Prefix
	// DNS are the resolvers the box's own lookups use, reached through the tunnel.
	DNS []netip.Addr
	// DNSSearch are the non-address entries of DNS (wg-quick's search domains).
	// Redoubt keeps them for display only.
	DNSSearch []string
	// MTU of the tunnel (default DefaultMTU).
	MTU int
	// ListenPort is the local UDP port; 0 picks one.
	ListenPort uint16
	// Peer is the VPN server.
	Peer Peer
	// Ignored lists wg-quick keys that Redoubt reads but does not act on (scripts,
	// routing tables), each with its line, so the owner can be told.
	Ignored []string
}

// Peer is the VPN server.
type Peer struct {
	PublicKey    Key
	PresharedKey PrivateKey // zero: none
	// Endpoint is the server's address and UDP port. It must be an IP address:
	// see the package vpn/external for why host names are refused.
	Endpoint   netip.AddrPort
	AllowedIPs []netip.Prefix
	// Keepalive is PersistentKeepalive (default DefaultKeepalive when the config
	// leaves it out or sets it to 0 or off).
	Keepalive time.Duration
	// KeepaliveSet reports that the config itself set PersistentKeepalive.
	KeepaliveSet bool
}

// Error is a parse or validation error. Its message names where, what and what
// would be accepted; it never holds key material.
type Error struct {
	Line    int    // 1-based; 0 when the error is about the whole config
	Section string // "Interface" or "Peer", or ""
	Key     string // as written in the file, or ""
	Msg     string
}

func (e *Error) Error() string {
	var b strings.Builder
	if e.Line > 0 {
		fmt.Fprintf(&b, "line %d: ", e.Line)
	}
	if e.Section != "" {
		fmt.Fprintf(&b, "[%s] ", e.Section)
	}
	if e.Key != "" {
		b.WriteString(e.Key)
		b.WriteString(": ")
	}
	b.WriteString(e.Msg)
	return b.String()
}

// keys the parser knows, by lower-cased name, per section.
var (
	interfaceKeys = []string{"PrivateKey", "Address", "DNS", "MTU", "ListenPort"}
	peerKeys      = []string{"PublicKey", "PresharedKey", "Endpoint", "AllowedIPs", "PersistentKeepalive"}
	// wg-quick and wg keys Redoubt accepts without acting on them.
	ignoredKeys = map[string]string{
		"table":      "Redoubt routes only the box's own connections through the VPN",
		"preup":      "Redoubt never runs commands from a VPN config",
		"postup":     "Redoubt never runs commands from a VPN config",
		"predown":    "Redoubt never runs commands from a VPN config",
		"postdown":   "Redoubt never runs commands from a VPN config",
		"saveconfig": "Redoubt keeps the config as given",
		"fwmark":     "Redoubt marks the tunnel's packets itself",
	}
)

// Parse reads a wg-quick config and validates it.
func Parse(text []byte) (*Config, error) {
	if len(text) == 0 {
		return nil, &Error{Msg: "the config is empty; paste the WireGuard config file your VPN provider gave you ([Interface] and [Peer] sections)"}
	}
	if len(text) > MaxSize {
		return nil, &Error{Msg: fmt.Sprintf("the config is %d bytes; a WireGuard config is at most %d bytes", len(text), MaxSize)}
	}
	if !utf8.Valid(text) {
		return nil, &Error{Msg: "the config is not text (invalid UTF-8); paste the .conf file's contents"}
	}
	if i := bytes.IndexByte(text, 0); i >= 0 {
		return nil, &Error{Line: 1 + bytes.Count(text[:i], []byte("\n")), Msg: "a NUL byte: the config is not text"}
	}
	text = bytes.TrimPrefix(text, []byte("\xef\xbb\xbf")) // a byte-order mark from Windows editors

	p := parser{}
	sc := bufio.NewScanner(bytes.NewReader(text))
	sc.Buffer(make([]byte, 0, 1024), MaxLineBytes+2)
	for sc.Scan() {
		p.line++
		if err := p.parseLine(sc.Text()); err != nil {
			return nil, err
		}
	}
	if err := sc.Err(); err != nil {
		if errors.Is(err, bufio.ErrTooLong) {
			return nil, &Error{Line: p.line + 1, Msg: fmt.Sprintf("the line is longer than %d bytes", MaxLineBytes)}
		}
		return nil, &Error{Msg: "reading the config: " + err.Error()}
	}
	return p.finish()
}

type parser struct {
	line     int
	section  string // "", "Interface", "Peer"
	sawIface bool
	peers    int
	seen     map[string]int // key (lower-case, with section) → line, for keys that may appear once
	cfg      Config
	peerLine int
}

func (p *parser) errorf(key, format string, args ...any) error {
	return &Error{Line: p.line, Section: p.section, Key: key, Msg: fmt.Sprintf(format, args...)}
}

func (p *parser) parseLine(raw string) error {
	line := raw
	if i := strings.IndexByte(line, '#'); i >= 0 {
		line = line[:i]
	}
	line = strings.TrimSpace(line)
	if line == "" {
		return nil
	}
	if strings.HasPrefix(line, "[") {
		if !strings.HasSuffix(line, "]") {
			return p.errorf("", "section header %q is not closed; want [Interface] or [Peer]", clip(line))
		}
		name := strings.TrimSpace(line[1 : len(line)-1])
		switch strings.ToLower(name) {
		case "interface":
			if p.sawIface {
				return &Error{Line: p.line, Msg: "a second [Interface] section; a config has exactly one"}
			}
			p.sawIface = true
			p.section = "Interface"
		case "peer":
			p.peers++
			if p.peers > 1 {
				return &Error{Line: p.line, Msg: "a second [Peer] section: Redoubt connects to one VPN server; keep only the [Peer] you want to use"}
			}
			p.section = "Peer"
			p.peerLine = p.line
		default:
			return &Error{Line: p.line, Msg: fmt.Sprintf("unknown section [%s]; want [Interface] or [Peer]", clip(name))}
		}
		return nil
	}
	eq := strings.IndexByte(line, '=')
	if eq < 0 {
		return &Error{Line: p.line, Section: p.section, Msg: fmt.Sprintf("%q is not a \"Key = value\" line", clip(line))}
	}
	key := strings.TrimSpace(line[:eq])
	value := strings.TrimSpace(line[eq+1:])
	if key == "" {
		return &Error{Line: p.line, Section: p.section, Msg: "a line with a value but no key"}
	}
	if p.section == "" {
		return &Error{Line: p.line, Key: clip(key), Msg: "a setting before any section; it belongs in [Interface] or [Peer]"}
	}
	lk := strings.ToLower(key)
	if why, ok := ignoredKeys[lk]; ok {
		p.cfg.Ignored = append(p.cfg.Ignored, fmt.Sprintf("line %d: %s (ignored: %s)", p.line, key, why))
		return nil
	}
	if p.section == "Interface" {
		return p.interfaceKey(key, lk, value)
	}
	return p.peerKey(key, lk, value)
}

func (p *parser) once(key, lk string) error {
	if p.seen == nil {
		p.seen = map[string]int{}
	}
	id := p.section + "." + lk
	if first, ok := p.seen[id]; ok {
		return p.errorf(key, "set twice (first on line %d); keep one", first)
	}
	p.seen[id] = p.line
	return nil
}

func (p *parser) interfaceKey(key, lk, value string) error {
	c := &p.cfg
	switch lk {
	case "privatekey":
		if err := p.once(key, lk); err != nil {
			return err
		}
		k, err := p.parseKey(key, value, true)
		if err != nil {
			return err
		}
		c.PrivateKey = PrivateKey{k}
	case "address":
		for _, item := range splitList(value) {
			pfx, err := parseAddress(item)
			if err != nil {
				return p.errorf(key, "%q: %v; want addresses inside the tunnel such as 10.64.0.2/32 or fd00::2/128", clip(item), err)
			}
			c.Addresses = append(c.Addresses, pfx)
		}
		if len(c.Addresses) > maxListItems {
			return p.errorf(key, "more than %d addresses", maxListItems)
		}
	case "dns":
		for _, item := range splitList(value) {
			if a, err := netip.ParseAddr(item); err == nil {
				if a.Zone() != "" {
					return p.errorf(key, "%q: an address with a zone cannot be reached through the tunnel", clip(item))
				}
				if a.IsUnspecified() || a.IsMulticast() || a.IsLoopback() {
					return p.errorf(key, "%q is not a usable DNS server address", clip(item))
				}
				c.DNS = append(c.DNS, a.Unmap())
				continue
			}
			if !validDomain(item) {
				return p.errorf(key, "%q is neither an IP address nor a search domain; want DNS server addresses such as 10.64.0.1", clip(item))
			}
			c.DNSSearch = append(c.DNSSearch, item)
		}
		if len(c.DNS)+len(c.DNSSearch) > maxListItems {
			return p.errorf(key, "more than %d entries", maxListItems)
		}
	case "mtu":
		if err := p.once(key, lk); err != nil {
			return err
		}
		n, err := strconv.Atoi(value)
		if err != nil || n < 576 || n > 9000 {
			return p.errorf(key, "%q: want a whole number from 576 to 9000 (1420 suits most links)", clip(value))
		}
		c.MTU = n
	case "listenport":
		if err := p.once(key, lk); err != nil {
			return err
		}
		n, err := strconv.ParseUint(value, 10, 16)
		if err != nil {
			return p.errorf(key, "%q: want a UDP port from 0 to 65535 (0 or no ListenPort picks one)", clip(value))
		}
		c.ListenPort = uint16(n)
	default:
		return p.unknown(key, interfaceKeys)
	}
	return nil
}

func (p *parser) peerKey(key, lk, value string) error {
	peer := &p.cfg.Peer
	switch lk {
	case "publickey":
		if err := p.once(key, lk); err != nil {
			return err
		}
		k, err := p.parseKey(key, value, false)
		if err != nil {
			return err
		}
		peer.PublicKey = Key(k)
	case "presharedkey":
		if err := p.once(key, lk); err != nil {
			return err
		}
		k, err := p.parseKey(key, value, true)
		if err != nil {
			return err
		}
		peer.PresharedKey = PrivateKey{k}
	case "endpoint":
		if err := p.once(key, lk); err != nil {
			return err
		}
		ep, err := parseEndpoint(value)
		if err != nil {
			return p.errorf(key, "%q: %v", clip(value), err)
		}
		peer.Endpoint = ep
	case "allowedips":
		for _, item := range splitList(value) {
			pfx, err := netip.ParsePrefix(item)
			if err != nil {
				if a, aerr := netip.ParseAddr(item); aerr == nil {
					pfx = netip.PrefixFrom(a, a.BitLen())
				} else {
					return p.errorf(key, "%q is not an address range; want ranges such as 0.0.0.0/0, ::/0", clip(item))
				}
			}
			if pfx.Addr().Zone() != "" {
				return p.errorf(key, "%q: a range with a zone", clip(item))
			}
			if pfx.Addr().Is4In6() && pfx.Bits() >= 96 {
				pfx = netip.PrefixFrom(pfx.Addr().Unmap(), pfx.Bits()-96)
			}
			peer.AllowedIPs = append(peer.AllowedIPs, pfx.Masked())
		}
		if len(peer.AllowedIPs) > maxListItems {
			return p.errorf(key, "more than %d ranges", maxListItems)
		}
	case "persistentkeepalive":
		if err := p.once(key, lk); err != nil {
			return err
		}
		if strings.EqualFold(value, "off") {
			peer.KeepaliveSet = true
			return nil
		}
		n, err := strconv.ParseUint(value, 10, 16)
		if err != nil {
			return p.errorf(key, "%q: want seconds from 0 to 65535, or off (25 suits most networks)", clip(value))
		}
		peer.Keepalive = time.Duration(n) * time.Second
		peer.KeepaliveSet = true
	default:
		return p.unknown(key, peerKeys)
	}
	return nil
}

func (p *parser) unknown(key string, known []string) error {
	msg := fmt.Sprintf("unknown setting; [%s] takes %s", p.section, strings.Join(known, ", "))
	for _, other := range [][]string{interfaceKeys, peerKeys} {
		for _, k := range other {
			if strings.EqualFold(k, key) && !slices.Contains(known, k) {
				msg = fmt.Sprintf("%s belongs in the other section; [%s] takes %s", k, p.section, strings.Join(known, ", "))
			}
		}
	}
	return p.errorf(clip(key), "%s", msg)
}

// parseKey decodes a base64 key. Errors never quote a secret's value.
func (p *parser) parseKey(key, value string, secret bool) ([32]byte, error) {
	var k [32]byte
	show := func() string {
		if secret {
			return "the value"
		}
		return fmt.Sprintf("%q", clip(value))
	}
	if value == "" {
		return k, p.errorf(key, "empty; want a 44-character base64 key such as the output of `wg genkey`")
	}
	if hb, herr := hex.DecodeString(value); herr == nil && len(hb) == 32 {
		return k, p.errorf(key, "%s is hexadecimal; WireGuard configs hold keys in base64 (44 characters ending in =)", show())
	}
	b, err := base64.StdEncoding.DecodeString(value)
	if err != nil {
		return k, p.errorf(key, "%s is not valid base64; want a 44-character base64 key ending in = (check for a truncated or mangled paste)", show())
	}
	if len(b) != 32 {
		return k, p.errorf(key, "%s decodes to %d bytes; a WireGuard key is 32 bytes (44 base64 characters)", show(), len(b))
	}
	copy(k[:], b)
	if k == [32]byte{} {
		return k, p.errorf(key, "the key is all zeros; want a real key")
	}
	return k, nil
}

func (p *parser) finish() (*Config, error) {
	c := &p.cfg
	if !p.sawIface {
		return nil, &Error{Msg: "no [Interface] section; a WireGuard config starts with [Interface] (PrivateKey, Address)"}
	}
	if p.peers == 0 {
		return nil, &Error{Msg: "no [Peer] section; the config must name the VPN server (PublicKey, Endpoint, AllowedIPs)"}
	}
	if c.PrivateKey.IsZero() {
		return nil, &Error{Section: "Interface", Key: "PrivateKey", Msg: "missing; the config must hold the box's private key"}
	}
	if len(c.Addresses) == 0 {
		return nil, &Error{Section: "Interface", Key: "Address", Msg: "missing; want the box's address inside the tunnel, such as 10.64.0.2/32"}
	}
	peer := &c.Peer
	pe := func(key, msg string) error { return &Error{Line: p.peerLine, Section: "Peer", Key: key, Msg: msg} }
	if peer.PublicKey.IsZero() {
		return nil, pe("PublicKey", "missing; want the VPN server's public key")
	}
	if peer.PublicKey == c.PrivateKey.Public() {
		return nil, pe("PublicKey", "is the box's own public key; want the VPN server's")
	}
	if !peer.Endpoint.IsValid() {
		return nil, pe("Endpoint", "missing; want the VPN server's IP address and port, such as 198.51.100.7:51820")
	}
	if len(peer.AllowedIPs) == 0 {
		return nil, pe("AllowedIPs", "missing; Redoubt sends all of the box's traffic through the VPN: want 0.0.0.0/0, ::/0")
	}
	var has4, has6 bool
	for _, a := range c.Addresses {
		has4 = has4 || a.Addr().Is4()
		has6 = has6 || a.Addr().Is6()
	}
	if !covers(peer.AllowedIPs, true) && !(has6 && !has4 && covers(peer.AllowedIPs, false)) {
		return nil, pe("AllowedIPs", fmt.Sprintf("%s does not cover every address; Redoubt sends all of the box's traffic through the VPN: want 0.0.0.0/0 (and ::/0 for IPv6)", joinPrefixes(peer.AllowedIPs)))
	}
	if has6 && !covers(peer.AllowedIPs, false) {
		// IPv6 addresses inside the tunnel without an IPv6 route: drop them rather
		// than hold an address nothing can use.
		c.Addresses = slices.DeleteFunc(c.Addresses, func(a netip.Prefix) bool { return a.Addr().Is6() })
		has6 = false
	}
	for _, d := range c.DNS {
		if !routed(peer.AllowedIPs, d) {
			return nil, &Error{Section: "Interface", Key: "DNS", Msg: fmt.Sprintf("%s is outside AllowedIPs, so it cannot be reached through the tunnel", d)}
		}
		if (d.Is4() && !has4) || (d.Is6() && !has6) {
			return nil, &Error{Section: "Interface", Key: "DNS", Msg: fmt.Sprintf("%s is an IPv%d server but the tunnel has no IPv%d address", d, ipVersion(d), ipVersion(d))}
		}
	}
	if c.MTU == 0 {
		c.MTU = DefaultMTU
	}
	if has6 && c.MTU < 1280 {
		return nil, &Error{Section: "Interface", Key: "MTU", Msg: fmt.Sprintf("%d is below 1280, the least IPv6 allows, and Address holds an IPv6 address", c.MTU)}
	}
	if !peer.KeepaliveSet || peer.Keepalive == 0 {
		peer.Keepalive = DefaultKeepalive
	}
	return c, nil
}

// parseAddress reads an Address entry: a prefix, or a bare address meaning a
// single host.
func parseAddress(s string) (netip.Prefix, error) {
	pfx, err := netip.ParsePrefix(s)
	if err != nil {
		a, aerr := netip.ParseAddr(s)
		if aerr != nil {
			return netip.Prefix{}, errors.New("not an IP address or prefix")
		}
		pfx = netip.PrefixFrom(a, a.BitLen())
	}
	a := pfx.Addr()
	if a.Zone() != "" {
		return netip.Prefix{}, errors.New("an address with a zone")
	}
	if a.Is4In6() && pfx.Bits() >= 96 {
		a = a.Unmap()
		pfx = netip.PrefixFrom(a, pfx.Bits()-96)
	}
	if a.IsUnspecified() || a.IsMulticast() || a.IsLoopback() || (a.Is4() && a == netip.AddrFrom4([4]byte{255, 255, 255, 255})) {
		return netip.Prefix{}, errors.New("not a usable host address")
	}
	return pfx, nil
}

// parseEndpoint reads host:port, refusing host names.
func parseEndpoint(s string) (netip.AddrPort, error) {
	if s == "" {
		return netip.AddrPort{}, errors.New("empty; want the VPN server's IP address and port, such as 198.51.100.7:51820")
	}
	ap, err := netip.ParseAddrPort(s)
	if err == nil {
		a := ap.Addr().Unmap()
		if ap.Port() == 0 {
			return netip.AddrPort{}, errors.New("port 0; want the server's UDP port, such as 51820")
		}
		if a.Zone() != "" || a.IsUnspecified() || a.IsMulticast() || a.IsLoopback() || a.IsLinkLocalUnicast() {
			return netip.AddrPort{}, errors.New("not an address a VPN server can have")
		}
		return netip.AddrPortFrom(a, ap.Port()), nil
	}
	host, port, ok := splitHostPort(s)
	if !ok {
		return netip.AddrPort{}, errors.New("want IP:port, such as 198.51.100.7:51820 or [2001:db8::7]:51820")
	}
	n, perr := strconv.ParseUint(port, 10, 16)
	if perr != nil || n == 0 {
		return netip.AddrPort{}, fmt.Errorf("port %q: want a UDP port from 1 to 65535", clip(port))
	}
	if _, aerr := netip.ParseAddr(strings.Trim(host, "[]")); aerr == nil {
		return netip.AddrPort{}, errors.New("want IP:port with IPv6 addresses in brackets, such as [2001:db8::7]:51820")
	}
	if validDomain(host) {
		return netip.AddrPort{}, fmt.Errorf("%q is a host name; Redoubt needs the server's IP address, because looking the name up would send it in clear to the network the box is on, outside the VPN. Ask your provider for the IP form of this server (or look the name up on another device) and write it as IP:%s", clip(host), port)
	}
	return netip.AddrPort{}, errors.New("want IP:port, such as 198.51.100.7:51820")
}

func splitHostPort(s string) (host, port string, ok bool) {
	i := strings.LastIndexByte(s, ':')
	if i <= 0 || i == len(s)-1 {
		return "", "", false
	}
	return s[:i], s[i+1:], true
}

// validDomain reports whether s looks like a DNS name (letters, digits, hyphens,
// dots; labels of at most 63 bytes).
func validDomain(s string) bool {
	s = strings.TrimSuffix(s, ".")
	if s == "" || len(s) > 253 {
		return false
	}
	for _, label := range strings.Split(s, ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for _, r := range label {
			if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_') {
				return false
			}
		}
	}
	return true
}

func splitList(v string) []string {
	var out []string
	for _, f := range strings.Split(v, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}

func ipVersion(a netip.Addr) int {
	if a.Is4() {
		return 4
	}
	return 6
}

// routed reports whether a lies in one of the prefixes.
func routed(pfxs []netip.Prefix, a netip.Addr) bool {
	for _, p := range pfxs {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// covers reports whether the prefixes of one family together cover all of it
// (0.0.0.0/0, or split forms such as 0.0.0.0/1 + 128.0.0.0/1).
func covers(pfxs []netip.Prefix, v4 bool) bool {
	type span struct{ lo, hi netip.Addr }
	var spans []span
	for _, p := range pfxs {
		if p.Addr().Is4() != v4 {
			continue
		}
		p = p.Masked()
		spans = append(spans, span{p.Addr(), lastAddr(p)})
	}
	slices.SortFunc(spans, func(a, b span) int { return a.lo.Compare(b.lo) })
	next := netip.IPv6Unspecified()
	if v4 {
		next = netip.IPv4Unspecified()
	}
	for _, s := range spans {
		if s.lo.Compare(next) > 0 {
			return false
		}
		if s.hi.Compare(next) >= 0 {
			n := s.hi.Next()
			if !n.IsValid() {
				return true // reached the family's last address
			}
			next = n
		}
	}
	return false
}

// lastAddr is the last address of a masked prefix.
func lastAddr(p netip.Prefix) netip.Addr {
	b := p.Addr().AsSlice()
	for i := p.Bits(); i < len(b)*8; i++ {
		b[i/8] |= 0x80 >> (i % 8)
	}
	a, _ := netip.AddrFromSlice(b)
	return a
}

func joinPrefixes(ps []netip.Prefix) string {
	s := make([]string, len(ps))
	for i, p := range ps {
		s[i] = p.String()
	}
	return strings.Join(s, ", ")
}

// clip shortens what an error quotes from hostile input.
func clip(s string) string {
	const n = 80
	if len(s) <= n {
		return s
	}
	cut := n
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…"
}

// Marshal writes c as a wg-quick file. The lab uses it to write its box's config;
// the box itself keeps the text the owner gave.
func (c *Config) Marshal() []byte {
	var b bytes.Buffer
	b.WriteString("[Interface]\n")
	fmt.Fprintf(&b, "PrivateKey = %s\n", c.PrivateKey.Base64())
	fmt.Fprintf(&b, "Address = %s\n", joinPrefixes(c.Addresses))
	if len(c.DNS) > 0 || len(c.DNSSearch) > 0 {
		var d []string
		for _, a := range c.DNS {
			d = append(d, a.String())
		}
		d = append(d, c.DNSSearch...)
		fmt.Fprintf(&b, "DNS = %s\n", strings.Join(d, ", "))
	}
	if c.MTU != 0 {
		fmt.Fprintf(&b, "MTU = %d\n", c.MTU)
	}
	if c.ListenPort != 0 {
		fmt.Fprintf(&b, "ListenPort = %d\n", c.ListenPort)
	}
	b.WriteString("\n[Peer]\n")
	fmt.Fprintf(&b, "PublicKey = %s\n", c.Peer.PublicKey)
	if !c.Peer.PresharedKey.IsZero() {
		fmt.Fprintf(&b, "PresharedKey = %s\n", c.Peer.PresharedKey.Base64())
	}
	fmt.Fprintf(&b, "Endpoint = %s\n", c.Peer.Endpoint)
	fmt.Fprintf(&b, "AllowedIPs = %s\n", joinPrefixes(c.Peer.AllowedIPs))
	if c.Peer.Keepalive > 0 {
		fmt.Fprintf(&b, "PersistentKeepalive = %d\n", int(c.Peer.Keepalive/time.Second))
	}
	return b.Bytes()
}

// UAPI is the device configuration in WireGuard's cross-platform configuration
// protocol (what wireguard-go's IpcSet reads). It holds the private key: hand it
// to the device only.
func (c *Config) UAPI(fwmark uint32) string {
	var b strings.Builder
	pk := c.PrivateKey.Bytes()
	fmt.Fprintf(&b, "private_key=%s\n", hex.EncodeToString(pk[:]))
	fmt.Fprintf(&b, "listen_port=%d\n", c.ListenPort)
	if fwmark != 0 {
		fmt.Fprintf(&b, "fwmark=%d\n", fwmark)
	}
	b.WriteString("replace_peers=true\n")
	fmt.Fprintf(&b, "public_key=%s\n", hex.EncodeToString(c.Peer.PublicKey[:]))
	if !c.Peer.PresharedKey.IsZero() {
		psk := c.Peer.PresharedKey.Bytes()
		fmt.Fprintf(&b, "preshared_key=%s\n", hex.EncodeToString(psk[:]))
	}
	if c.Peer.Endpoint.IsValid() {
		fmt.Fprintf(&b, "endpoint=%s\n", c.Peer.Endpoint)
	}
	fmt.Fprintf(&b, "persistent_keepalive_interval=%d\n", int(c.Peer.Keepalive/time.Second))
	b.WriteString("replace_allowed_ips=true\n")
	for _, p := range c.Peer.AllowedIPs {
		fmt.Fprintf(&b, "allowed_ip=%s\n", p)
	}
	return b.String()
}

// Summary is what may be shown about a config: everything but the secrets.
type Summary struct {
	PublicKey     string   `json:"public_key"` // the box's
	PeerPublicKey string   `json:"peer_public_key"`
	PresharedKey  bool     `json:"preshared_key"`
	Endpoint      string   `json:"endpoint"`
	Addresses     []string `json:"addresses"`
	DNS           []string `json:"dns,omitempty"`
	AllowedIPs    []string `json:"allowed_ips"`
	MTU           int      `json:"mtu"`
	Keepalive     int      `json:"keepalive_seconds"`
	Ignored       []string `json:"ignored,omitempty"`
}

// Summarize describes c without its secrets.
func (c *Config) Summarize() Summary {
	s := Summary{
		PublicKey:     c.PrivateKey.Public().String(),
		PeerPublicKey: c.Peer.PublicKey.String(),
		PresharedKey:  !c.Peer.PresharedKey.IsZero(),
		Endpoint:      c.Peer.Endpoint.String(),
		MTU:           c.MTU,
		Keepalive:     int(c.Peer.Keepalive / time.Second),
		Ignored:       c.Ignored,
	}
	for _, a := range c.Addresses {
		s.Addresses = append(s.Addresses, a.String())
	}
	for _, a := range c.DNS {
		s.DNS = append(s.DNS, a.String())
	}
	for _, a := range c.Peer.AllowedIPs {
		s.AllowedIPs = append(s.AllowedIPs, a.String())
	}
	return s
}

// Equal reports whether two configs describe the same tunnel.
func (c *Config) Equal(o *Config) bool {
	if c == nil || o == nil {
		return c == o
	}
	return c.UAPI(0) == o.UAPI(0) && slices.Equal(c.Addresses, o.Addresses) &&
		slices.Equal(c.DNS, o.DNS) && c.MTU == o.MTU
}
