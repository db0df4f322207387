package reveal

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"encoding/binary"
	"net/http"
	"strings"
	"testing"

	"golang.org/x/net/dns/dnsmessage"
)

func TestTLSServerName(t *testing.T) {
	for _, tt := range []struct {
		name string
		cfg  *tls.Config
		want string
		ok   bool
	}{
		{"TLS 1.3", &tls.Config{ServerName: "www.example.com"}, "www.example.com", true},
		{"TLS 1.2 only", &tls.Config{ServerName: "legacy.example.net", MaxVersion: tls.VersionTLS12}, "legacy.example.net", true},
		{"upper case", &tls.Config{ServerName: "MiXeD.Example.COM"}, "mixed.example.com", true},
		{"with ALPN", &tls.Config{ServerName: "h2.example", NextProtos: []string{"h2", "http/1.1"}}, "h2.example", true},
		{"IP literal sends no SNI", &tls.Config{ServerName: "192.0.2.1"}, "", false},
		{"no server name", &tls.Config{InsecureSkipVerify: true}, "", false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			record := clientHello(t, tt.cfg)
			name, ok := TLSServerName(record)
			if name != tt.want || ok != tt.ok {
				t.Errorf("TLSServerName = %q, %v; want %q, %v", name, ok, tt.want, tt.ok)
			}
			app, name := Stream(record, 443)
			if app != appTLS || name != tt.want {
				t.Errorf("Stream = %q, %q; want tls, %q", app, name, tt.want)
			}
		})
	}
}

// TestTLSTruncated cuts a ClientHello at every byte: the name is found exactly when
// its extension is complete.
func TestTLSTruncated(t *testing.T) {
	const host = "truncated.example.org"
	record := clientHello(t, &tls.Config{ServerName: host})
	sniEnd := bytes.Index(record, []byte(host)) + len(host)
	for n := range len(record) + 1 {
		name, ok := TLSServerName(record[:n])
		if want := n >= sniEnd; ok != want || (ok && name != host) {
			t.Fatalf("cut at %d (SNI ends at %d): TLSServerName = %q, %v", n, sniEnd, name, ok)
		}
		app, _ := Stream(record[:n], 443)
		if want := n >= 3; (app == appTLS) != want {
			t.Fatalf("cut at %d: Stream app %q", n, app)
		}
	}
}

// TestTLSSplitRecords splits the ClientHello over several handshake records, as
// software trying to slip past inspection does.
func TestTLSSplitRecords(t *testing.T) {
	const host = "split.example.com"
	record := clientHello(t, &tls.Config{ServerName: host})
	hs := record[tlsRecordHeaderLen:]
	for _, size := range []int{1, 2, 5, 16, 50, 100, 1000} {
		var split []byte
		for rest := hs; len(rest) > 0; {
			n := min(size, len(rest))
			split = append(split, tlsRecordHandshake, 3, 1, byte(n>>8), byte(n))
			split = append(split, rest[:n]...)
			rest = rest[n:]
		}
		if name, ok := TLSServerName(split); !ok || name != host {
			t.Errorf("records of %d bytes: TLSServerName = %q, %v", size, name, ok)
		}
	}
}

func TestTLSControlCharacters(t *testing.T) {
	const host = "abcdefghijklmnop.example"
	record := clientHello(t, &tls.Config{ServerName: host})
	i := bytes.Index(record, []byte(host))
	copy(record[i:], "ev\x1b[31mIL\x00\n\r\x7f\xff.X.")
	name, ok := TLSServerName(record)
	if want := "ev?[31mil?????.x.example"; !ok || name != want {
		t.Errorf("TLSServerName = %q, %v; want %q", name, ok, want)
	}
}

func TestTLSNotAClientHello(t *testing.T) {
	for _, b := range [][]byte{
		nil,
		{0x16},
		{0x16, 0x03, 0x01, 0x00, 0x00}, // empty record
		{0x17, 0x03, 0x03, 0x00, 0x05, 1, 2, 3, 4},             // application data
		{0x16, 0x03, 0x03, 0x00, 0x04, 0x02, 0x00, 0x00, 0x00}, // a ServerHello
		{0x16, 0x03, 0x01, 0x00, 0x04, 0x01, 0xff, 0xff, 0xff}, // a huge ClientHello cut short
	} {
		if name, ok := TLSServerName(b); ok {
			t.Errorf("TLSServerName(%x) = %q, true", b, name)
		}
	}
}

func TestHTTPHost(t *testing.T) {
	request := func(method, url, host string, proxy bool) []byte {
		req, err := http.NewRequest(method, url, nil)
		if err != nil {
			t.Fatal(err)
		}
		if host != "" {
			req.Host = host
		}
		var buf bytes.Buffer
		if proxy {
			err = req.WriteProxy(&buf)
		} else {
			err = req.Write(&buf)
		}
		if err != nil {
			t.Fatal(err)
		}
		return buf.Bytes()
	}
	for _, tt := range []struct {
		name string
		req  []byte
		want string
		ok   bool
	}{
		{"GET", request("GET", "http://Example.COM/index.html", "", false), "example.com", true},
		{"Host with port", request("GET", "http://example.com:8080/", "", false), "example.com", true},
		{"POST", request("POST", "http://api.example.net/v1/upload?x=1", "", false), "api.example.net", true},
		{"IPv6 literal with port", request("GET", "http://[2001:db8::1]:8080/", "", false), "2001:db8::1", true},
		{"Host override", request("GET", "http://192.0.2.1/", "Virtual.Example:81", false), "virtual.example", true},
		{"absolute form", request("GET", "http://origin.example:8000/a", "", true), "origin.example", true},
		{"absolute form beats Host", []byte("GET http://user:pw@target.example:80/x HTTP/1.1\r\nHost: other.example\r\n\r\n"), "target.example", true},
		{"CONNECT", []byte("CONNECT tunnel.example:443 HTTP/1.1\r\nUser-Agent: x\r\n\r\n"), "tunnel.example", true},
		{"lower-case header, bare LF", []byte("HEAD / HTTP/1.0\nhost:   plain.example  \n\n"), "plain.example", true},
		{"control characters", []byte("GET / HTTP/1.1\r\nHost: ev\x01l.Example\x1b\r\n\r\n"), "ev?l.example?", true},
		{"Host line cut short", []byte("GET / HTTP/1.1\r\nHost: cut.exam"), "", false},
		{"request line cut short", []byte("GET /index.html HTT"), "", false},
		{"no Host", []byte("GET / HTTP/1.0\r\nAccept: */*\r\n\r\n"), "", false},
		{"Host after the headers", []byte("GET / HTTP/1.1\r\nA: b\r\n\r\nHost: body.example\r\n"), "", false},
		{"HTTP/2 preface", []byte("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"), "", false},
		{"empty Host", []byte("GET / HTTP/1.1\r\nHost: \r\n\r\n"), "", false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			name, ok := HTTPHost(tt.req)
			if name != tt.want || ok != tt.ok {
				t.Errorf("HTTPHost(%q) = %q, %v; want %q, %v", tt.req, name, ok, tt.want, tt.ok)
			}
		})
	}
}

func TestStream(t *testing.T) {
	dnsTCP := func(msg []byte) []byte {
		return append(binary.BigEndian.AppendUint16(nil, uint16(len(msg))), msg...)
	}
	httpReq := func(url string) []byte {
		req, err := http.NewRequest("GET", url, nil)
		if err != nil {
			t.Fatal(err)
		}
		var buf bytes.Buffer
		if err := req.Write(&buf); err != nil {
			t.Fatal(err)
		}
		return buf.Bytes()
	}
	hello := clientHello(t, &tls.Config{ServerName: "stream.example"})
	query := dnsQuery(t, "Zone.Example.", dnsmessage.TypeAXFR)

	for _, tt := range []struct {
		name      string
		first     []byte
		port      uint16
		app, want string
	}{
		{"DNS over TCP", dnsTCP(query), 53, appDNS, "zone.example"},
		{"DNS over TCP, two messages", append(dnsTCP(query), dnsTCP(query)...), 53, appDNS, "zone.example"},
		{"DNS over TCP, length only", dnsTCP(query)[:2], 53, appDNS, ""},
		{"DNS over TCP, one byte", []byte{0}, 53, appDNS, ""},
		{"TLS", hello, 443, appTLS, "stream.example"},
		{"TLS on another port", hello, 8443, appTLS, "stream.example"},
		{"TLS, first segment only", hello[:200], 443, appTLS, "stream.example"},
		{"HTTP", httpReq("http://www.example.org:8080/"), 80, appHTTP, "www.example.org"},
		{"HTTP on another port", httpReq("http://www.example.org/"), 3128, appHTTP, "www.example.org"},
		{"SSH", []byte("SSH-2.0-OpenSSH_9.6\r\n"), 22, "", ""},
		{"binary", []byte{0, 1, 2, 3}, 9999, "", ""},
		{"empty", nil, 443, "", ""},
		{"lower-case method", []byte("get / HTTP/1.1\r\nHost: x\r\n\r\n"), 80, "", ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			app, name := Stream(tt.first, tt.port)
			if app != tt.app || name != tt.want {
				t.Errorf("Stream = %q, %q; want %q, %q", app, name, tt.app, tt.want)
			}
		})
	}
}

func TestDNSQuestion(t *testing.T) {
	header := func(qd, an uint16) []byte {
		h := make([]byte, dnsHeaderLen)
		binary.BigEndian.PutUint16(h[4:], qd)
		binary.BigEndian.PutUint16(h[6:], an)
		return h
	}
	withName := func(qd uint16, name ...byte) []byte {
		return append(header(qd, 0), append(name, 0, 1, 0, 1)...)
	}
	long := strings.Repeat(strings.Repeat("a", 63)+".", 4) // 256 bytes of text
	longWire := bytes.Repeat(append([]byte{63}, bytes.Repeat([]byte("a"), 63)...), 4)

	for _, tt := range []struct {
		name string
		msg  []byte
		want string
		ok   bool
	}{
		{"A query", dnsQuery(t, "Mail.Example.COM.", dnsmessage.TypeA), "mail.example.com", true},
		{"AAAA query", dnsQuery(t, "ipv6.example.", dnsmessage.TypeAAAA), "ipv6.example", true},
		{"root", withName(1, 0), "", true},
		{"no question", header(0, 0), "", false},
		{"header only, question claimed", header(1, 0), "", false},
		{"short header", []byte{0, 1, 0, 0, 0, 1}, "", false},
		{"pointer to itself", withName(1, 0xc0, 12), "", false},
		{"label then pointer back to it", withName(1, 1, 'a', 0xc0, 12), "", false},
		{"pointer forward", withName(1, 0xc0, 14, 1, 'a', 0), "", false},
		{"pointer into the header", withName(1, 1, 'a', 0xc0, 2), "", false},
		{"pointer cut short", withName(1, 1, 'a', 0xc0)[:15], "", false},
		{"label past the end", append(header(1, 0), 5, 'a', 'b'), "", false},
		{"extended label type", withName(1, 0x41, 'a', 0), "", false},
		{"control characters", withName(1, 4, 'b', 0x07, '\n', 'L', 3, 'c', 0, 'm', 0), "b??l.c?m", true},
		{"dot inside a label", withName(1, 3, 'a', '.', 'b', 2, 'c', 'd', 0), "a.b.cd", true},
		{"longer than 253", withName(1, append(longWire, 0)...), long[:253], true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			name, ok := DNSQuestion(tt.msg)
			if name != tt.want || ok != tt.ok {
				t.Errorf("DNSQuestion = %q, %v; want %q, %v", name, ok, tt.want, tt.ok)
			}
			if err := checkName(name); err != nil {
				t.Error(err)
			}
		})
	}
}

// TestDNSCompression follows a compression pointer chain back, and rejects a chain
// that goes round.
func TestDNSCompression(t *testing.T) {
	msg := make([]byte, dnsHeaderLen)
	binary.BigEndian.PutUint16(msg[4:], 3)
	msg = append(msg, 7, 'e', 'x', 'a', 'm', 'p', 'l', 'e', 3, 'c', 'o', 'm', 0, 0, 1, 0, 1) // at 12
	second := len(msg)
	msg = append(msg, 4, 'm', 'a', 'i', 'l', 0xc0, 12, 0, 1, 0, 1) // mail + example.com
	third := len(msg)
	msg = append(msg, 1, 'x', 0xc0, byte(second), 0, 1, 0, 1) // x + mail.example.com
	var buf [maxName]byte
	for _, tt := range []struct {
		off  int
		want string
	}{{12, "example.com"}, {second, "mail.example.com"}, {third, "x.mail.example.com"}} {
		text, ok := readDNSName(msg, tt.off, &buf)
		if !ok || string(text) != tt.want {
			t.Errorf("name at %d = %q, %v; want %q", tt.off, text, ok, tt.want)
		}
	}

	// Two names pointing into each other: 12 -> 20 is forward, and 20 -> 12 -> 20
	// goes round.
	loop := make([]byte, dnsHeaderLen)
	binary.BigEndian.PutUint16(loop[4:], 1)
	loop = append(loop, 1, 'a', 1, 'b', 1, 'c', 0xc0, 20, 1, 'd', 0xc0, 12)
	for _, off := range []int{12, 20} {
		if text, ok := readDNSName(loop, off, &buf); ok {
			t.Errorf("loop from %d: %q, true", off, text)
		}
	}
}

// TestDNSTruncated cuts a compressed message at every byte.
func TestDNSTruncated(t *testing.T) {
	msg := dnsQuery(t, "truncated.example.com.", dnsmessage.TypeA)
	for n := range len(msg) + 1 {
		name, ok := DNSQuestion(msg[:n])
		if want := n >= len(msg)-4; ok != want || (ok && name != "truncated.example.com") {
			t.Fatalf("cut at %d: DNSQuestion = %q, %v", n, name, ok)
		}
	}
}

func TestCleanName(t *testing.T) {
	for _, tt := range []struct{ in, want string }{
		{"", ""},
		{".", ""},
		{"example.com.", "example.com"},
		{"example.com..", "example.com"},
		{"EXAMPLE.com", "example.com"},
		{"a b", "a?b"},
		{"\x00\x01\x1f\x7f\x80\xff", "??????"},
		{"ünïcode", "??n??code"},
		{strings.Repeat("x", 300), strings.Repeat("x", 253)},
		{strings.Repeat("X", 300) + ".", strings.Repeat("x", 253)},
	} {
		if got := cleanName([]byte(tt.in)); got != tt.want {
			t.Errorf("cleanName(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

// TestHeaderScanBounded checks that a huge request is looked at only so far.
func TestHeaderScanBounded(t *testing.T) {
	var b bytes.Buffer
	w := bufio.NewWriter(&b)
	w.WriteString("GET / HTTP/1.1\r\n")
	for b.Len()+w.Buffered() < 2*maxHeaderScan {
		w.WriteString("X-Filler: 0123456789abcdef\r\n")
	}
	w.WriteString("Host: too.far.example\r\n\r\n")
	w.Flush()
	if name, ok := HTTPHost(b.Bytes()); ok {
		t.Errorf("HTTPHost found %q past the scan bound", name)
	}
}
