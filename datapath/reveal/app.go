package reveal

import (
	"bytes"
	"encoding/binary"
)

// Application protocols a Summary names.
const (
	appDNS     = "dns"
	appMDNS    = "mdns"
	appLLMNR   = "llmnr"
	appNetBIOS = "netbios"
	appSSDP    = "ssdp"
	appDHCP    = "dhcp"
	appTLS     = "tls"
	appHTTP    = "http"
	appQUIC    = "quic"
)

// Well-known ports that name the application protocol.
const (
	portDNS             = 53
	portDHCPServer      = 67
	portDHCPClient      = 68
	portNetBIOSName     = 137
	portNetBIOSDatagram = 138
	portSSDP            = 1900
	portMDNS            = 5353
	portLLMNR           = 5355
)

// maxHeaderScan bounds how far into a text protocol's message (HTTP, SSDP) the header
// lines are looked for.
const maxHeaderScan = 8 << 10

// udpApp recognises the application protocol of a UDP datagram, by port where the
// port is the protocol's own (either way: a laptop answers mDNS, LLMNR and NetBIOS
// queries from those ports), and otherwise by content (QUIC).
func (d *Decoder) udpApp(src, dst uint16, payload []byte) (app, name string) {
	either := func(port uint16) bool { return src == port || dst == port }
	switch {
	case either(portDNS):
		return appDNS, dnsFirstName(payload)
	case either(portMDNS):
		return appMDNS, dnsFirstName(payload)
	case either(portLLMNR):
		return appLLMNR, dnsFirstName(payload)
	case either(portNetBIOSName):
		return appNetBIOS, netbiosName(payload, dnsHeaderLen)
	case either(portNetBIOSDatagram):
		return appNetBIOS, netbiosDatagramSource(payload)
	case either(portSSDP):
		return appSSDP, ssdpName(payload)
	case either(portDHCPServer) || either(portDHCPClient):
		return appDHCP, dhcpHostName(payload)
	}
	if isInitial, sni, ok := d.quic.serverName(payload); isInitial {
		if ok {
			name = cleanName(sni)
		}
		return appQUIC, name
	}
	return "", ""
}

// Stream recognises the first bytes a client sent on a TCP connection to dstPort and
// returns the application protocol and the name it reveals: DNS over TCP (port 53,
// with its 2-byte length prefix) and its first name, a TLS ClientHello and its server
// name, an HTTP/1.x request and its host. The bytes may stop anywhere; a name is
// returned only once the part of the message holding it is complete. Bytes it does
// not recognise give "", "".
func Stream(first []byte, dstPort uint16) (app, name string) {
	switch {
	case dstPort == portDNS:
		if len(first) < 2 {
			return appDNS, ""
		}
		msg := first[2:]
		if n := int(binary.BigEndian.Uint16(first)); n < len(msg) {
			msg = msg[:n]
		}
		return appDNS, dnsFirstName(msg)
	case isTLSClientHello(first):
		name, _ = TLSServerName(first)
		return appTLS, name
	case isHTTPRequest(first):
		name, _ = HTTPHost(first)
		return appHTTP, name
	}
	return "", ""
}

// isHTTPRequest reports whether b opens with an HTTP/1.x method and a space.
func isHTTPRequest(b []byte) bool {
	const longestMethod = len("OPTIONS")
	if len(b) > longestMethod+1 {
		b = b[:longestMethod+1]
	}
	method, _, ok := bytes.Cut(b, []byte{' '})
	if !ok {
		return false
	}
	switch string(method) { // compiled without allocating
	case "GET", "POST", "HEAD", "PUT", "DELETE", "OPTIONS", "PATCH", "CONNECT", "TRACE":
		return true
	}
	return false
}

// HTTPHost returns the host an HTTP/1.x request is for, in the form Summary.Name holds:
// the host of an absolute-form or (for CONNECT) authority-form request target, or
// else of the Host header, without its port. The request line and the Host header
// line must be complete.
func HTTPHost(req []byte) (host string, ok bool) {
	if len(req) > maxHeaderScan {
		req = req[:maxHeaderScan]
	}
	line, headers, ok := cutLine(req)
	if !ok {
		return "", false
	}
	method, rest, ok1 := bytes.Cut(line, []byte{' '})
	target, version, ok2 := bytes.Cut(rest, []byte{' '})
	if !ok1 || !ok2 || len(method) == 0 || len(target) == 0 || !bytes.HasPrefix(version, []byte("HTTP/1.")) {
		return "", false
	}
	var authority []byte
	if _, after, found := bytes.Cut(target, []byte("://")); found && target[0] != '/' {
		authority = after
		if i := bytes.IndexAny(authority, "/?#"); i >= 0 {
			authority = authority[:i]
		}
		if i := bytes.LastIndexByte(authority, '@'); i >= 0 {
			authority = authority[i+1:] // userinfo
		}
	} else if string(method) == "CONNECT" {
		authority = target
	}
	if len(authority) == 0 {
		authority = headerValue(headers, "host")
	}
	name := cleanName(stripPort(authority))
	return name, name != ""
}

// stripPort returns the host part of host[:port], taking the brackets off an IPv6
// literal.
func stripPort(hostport []byte) []byte {
	if len(hostport) > 0 && hostport[0] == '[' {
		host, _, _ := bytes.Cut(hostport[1:], []byte{']'})
		return host
	}
	if i := bytes.IndexByte(hostport, ':'); i >= 0 && bytes.IndexByte(hostport[i+1:], ':') < 0 {
		return hostport[:i]
	}
	return hostport
}

// cutLine cuts b after its first line, which must end in LF (CRLF or bare LF), and
// returns the line without its end.
func cutLine(b []byte) (line, rest []byte, ok bool) {
	line, rest, ok = bytes.Cut(b, []byte{'\n'})
	if !ok {
		return nil, nil, false
	}
	return bytes.TrimSuffix(line, []byte{'\r'}), rest, true
}

// headerValue returns the value of the first complete header line named name (in
// lower case) among the lines of b, which ends at an empty line.
func headerValue(b []byte, name string) []byte {
	for {
		line, rest, ok := cutLine(b)
		if !ok || len(line) == 0 {
			return nil
		}
		b = rest
		key, value, ok := bytes.Cut(line, []byte{':'})
		if ok && len(key) == len(name) && asciiEqualFold(key, name) {
			return bytes.Trim(value, " \t")
		}
	}
}

// asciiEqualFold reports whether b equals lower, a lower-case ASCII string, ignoring
// the case of b's letters.
func asciiEqualFold(b []byte, lower string) bool {
	if len(b) != len(lower) {
		return false
	}
	for i, c := range b {
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != lower[i] {
			return false
		}
	}
	return true
}

// ssdpName returns what an SSDP message reveals: for an M-SEARCH the search target
// (ST: what the laptop looks for, such as a Chromecast's DIAL service); for a NOTIFY
// or a search response the unique service name (USN: the device's UUID and type,
// which identify it across networks), or the type (NT, ST) when there is no USN.
func ssdpName(b []byte) string {
	if len(b) > maxHeaderScan {
		b = b[:maxHeaderScan]
	}
	line, headers, ok := cutLine(b)
	if !ok {
		return ""
	}
	first, second := "", ""
	switch {
	case bytes.HasPrefix(line, []byte("M-SEARCH ")):
		first = "st"
	case bytes.HasPrefix(line, []byte("NOTIFY ")):
		first, second = "usn", "nt"
	case bytes.HasPrefix(line, []byte("HTTP/1.")):
		first, second = "usn", "st"
	default:
		return ""
	}
	v := headerValue(headers, first)
	if len(v) == 0 && second != "" {
		v = headerValue(headers, second)
	}
	return cleanName(v)
}

// netbiosName decodes the first-level encoded NetBIOS name at off in a NetBIOS
// message (RFC 1001 section 14.1: 16 bytes, each split into two nibbles written as
// 'A'+nibble), without its padding and its suffix byte (the service type). The name
// service puts it where DNS puts its first name.
func netbiosName(b []byte, off int) string {
	const encodedLen = 32
	if off < 0 || len(b) < off+1+encodedLen || b[off] != encodedLen {
		return ""
	}
	enc := b[off+1 : off+1+encodedLen]
	var raw [encodedLen / 2]byte
	for i := range raw {
		hi, lo := enc[2*i]-'A', enc[2*i+1]-'A'
		if hi > 0xf || lo > 0xf {
			return ""
		}
		raw[i] = hi<<4 | lo
	}
	name := bytes.TrimRight(raw[:len(raw)-1], " \x00")
	return cleanName(name)
}

// netbiosDatagramSource returns the source name of a NetBIOS datagram service message
// (RFC 1002 section 4.4.1), which browser announcements carry the host's name in.
func netbiosDatagramSource(b []byte) string {
	const (
		directUnique = 0x10
		broadcast    = 0x12
		sourceName   = 14 // after type, flags, id, source IP and port, length, offset
	)
	if len(b) == 0 || b[0] < directUnique || b[0] > broadcast {
		return ""
	}
	return netbiosName(b, sourceName)
}

// dhcpHostName returns the host name a DHCPv4 message carries: option 12, or else the
// name in the client FQDN option 81 (RFC 4702).
func dhcpHostName(b []byte) string {
	const (
		optionsStart  = 240
		magicCookie   = 0x63825363
		optPad        = 0
		optHostName   = 12
		optClientFQDN = 81
		optEnd        = 255
		fqdnHeader    = 3    // flags, two obsolete RCODE bytes
		fqdnWire      = 0x04 // the E flag: the name is in DNS wire format
	)
	if len(b) < optionsStart || binary.BigEndian.Uint32(b[optionsStart-4:]) != magicCookie {
		return ""
	}
	opts := b[optionsStart:]
	var fqdn []byte
	for len(opts) > 0 {
		code := opts[0]
		if code == optPad {
			opts = opts[1:]
			continue
		}
		if code == optEnd || len(opts) < 2 || int(opts[1]) > len(opts)-2 {
			break
		}
		data := opts[2 : 2+int(opts[1])]
		opts = opts[2+len(data):]
		switch code {
		case optHostName:
			if name := cleanName(bytes.TrimRight(data, "\x00")); name != "" {
				return name
			}
		case optClientFQDN:
			fqdn = data
		}
	}
	if len(fqdn) <= fqdnHeader {
		return ""
	}
	if fqdn[0]&fqdnWire == 0 {
		return cleanName(bytes.TrimRight(fqdn[fqdnHeader:], "\x00"))
	}
	var buf [maxName]byte
	return cleanName(wireLabels(fqdn[fqdnHeader:], &buf))
}

// wireLabels writes the text form of the uncompressed DNS wire-format name in b into
// buf; the name may lack its terminating root label, as partial names in the client
// FQDN option do.
func wireLabels(b []byte, buf *[maxName]byte) []byte {
	const maxLabel = 63
	n := 0
	for len(b) > 0 && b[0] != 0 {
		l := int(b[0])
		if l > maxLabel || l >= len(b) {
			break
		}
		if n > 0 && n < len(buf) {
			buf[n] = '.'
			n++
		}
		n += copy(buf[n:], b[1:1+l])
		b = b[1+l:]
	}
	return buf[:n]
}
