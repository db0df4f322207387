package reveal

import (
	"bytes"
	"crypto/tls"
	"net/http"
	"testing"

	"golang.org/x/net/dns/dnsmessage"
)

// The fuzz targets check that no input panics (gopacket's included: the parser lets
// its panics through here), that every name is clean, and that the decoders agree
// with each other. Their seeds are kept small (ClientHellos without the post-quantum
// key share) so that minimizing what they find stays quick; even so, Go spends up to
// -fuzzminimizetime (60s by default) minimizing each new input, during which no new
// inputs run: -fuzzminimizetime=5s keeps the throughput steady.

func FuzzDecode(f *testing.F) {
	for _, tt := range frameCases(f) {
		if len(tt.frame) <= 1300 { // not the post-quantum ClientHello: see below
			f.Add(tt.frame)
		}
	}
	hello := clientHello(f, &tls.Config{ServerName: "fuzz.example", CurvePreferences: []tls.CurveID{tls.X25519}})
	f.Add(tcpFrame(f, ap(laptop4, 51000), ap(remote4, 443), hello))
	d := NewDecoder()
	d.parser.IgnorePanic = true
	f.Fuzz(func(t *testing.T, frame []byte) {
		s := d.Decode(frame)
		if err := checkSummary(s); err != nil {
			t.Fatal(err)
		}
		if again := d.Decode(frame); again != s {
			t.Fatalf("decoding twice differs:\n%+v\n%+v", s, again)
		}
	})
}

func FuzzStream(f *testing.F) {
	req, err := http.NewRequest("GET", "http://fuzz.example:8080/", nil)
	if err != nil {
		f.Fatal(err)
	}
	var httpReq bytes.Buffer
	if err := req.Write(&httpReq); err != nil {
		f.Fatal(err)
	}
	query := dnsQuery(f, "fuzz.example.", dnsmessage.TypeA)
	for _, seed := range []struct {
		first []byte
		port  uint16
	}{
		{clientHello(f, &tls.Config{ServerName: "fuzz.example", CurvePreferences: []tls.CurveID{tls.X25519}}), 443},
		{clientHello(f, &tls.Config{ServerName: "fuzz.example", MaxVersion: tls.VersionTLS12}), 443},
		{httpReq.Bytes(), 80},
		{[]byte("CONNECT fuzz.example:443 HTTP/1.1\r\n\r\n"), 3128},
		{[]byte("GET http://fuzz.example/ HTTP/1.1\r\nHost: other\r\n\r\n"), 3128},
		{append([]byte{0, byte(len(query))}, query...), 53},
		{[]byte("SSH-2.0-x\r\n"), 22},
	} {
		f.Add(seed.first, seed.port)
	}
	f.Fuzz(func(t *testing.T, first []byte, port uint16) {
		app, name := Stream(first, port)
		if err := checkName(name); err != nil {
			t.Fatal(err)
		}
		var again string
		switch app {
		case appTLS:
			again, _ = TLSServerName(first)
		case appHTTP:
			again, _ = HTTPHost(first)
		case appDNS:
			return
		case "":
			if name != "" {
				t.Fatalf("name %q without app", name)
			}
			return
		default:
			t.Fatalf("app %q", app)
		}
		if again != name {
			t.Fatalf("Stream found %q, the %s decoder %q", name, app, again)
		}
	})
}

func FuzzQUIC(f *testing.F) {
	f.Add(readHexFile(f, "rfc9001-client-initial.hex"))
	f.Add(readHexFile(f, "rfc9369-client-initial.hex"))
	hello := quicClientHello(f, "fuzz.example", tls.X25519)
	f.Add(sealInitial(f, quicVersion1, []byte{1, 2, 3, 4, 5, 6, 7, 8}, 0, append(cryptoFrame(0, hello), make([]byte, 100)...)))
	f.Add(sealInitial(f, quicVersion2, []byte{1, 2, 3, 4, 5, 6, 7, 8}, 1, cryptoFrame(0, hello[:200])))
	var q quicOpener // kept across inputs, as a Decoder keeps it
	f.Fuzz(func(t *testing.T, datagram []byte) {
		name, ok := QUICServerName(datagram)
		if err := checkName(name); err != nil {
			t.Fatal(err)
		}
		_, sni, ok2 := q.serverName(datagram)
		if ok != ok2 || (ok && cleanName(sni) != name) {
			t.Fatalf("fresh opener %q, %v; reused opener %q, %v", name, ok, sni, ok2)
		}
	})
}

// FuzzQUICFrames fuzzes what lies under the packet protection: the frames and the
// ClientHello in them, sealed into an Initial.
func FuzzQUICFrames(f *testing.F) {
	hello := quicClientHello(f, "fuzz.example", tls.X25519)
	f.Add(cryptoFrame(0, hello))
	f.Add(bytes.Join([][]byte{cryptoFrame(100, hello[100:]), {quicFramePing}, cryptoFrame(0, hello[:100])}, nil))
	f.Add(bytes.Join([][]byte{{quicFrameACK, 0, 0, 1, 0, 0, 0}, cryptoFrame(0, hello[:150]), cryptoFrame(150, hello[150:])}, nil))
	f.Add(append([]byte{quicFrameACKECN, 0, 0, 0, 0, 1, 2, 3}, cryptoFrame(0, hello)...))
	dcid := []byte{8, 7, 6, 5, 4, 3, 2, 1}
	var q quicOpener
	f.Fuzz(func(t *testing.T, frames []byte) {
		if len(frames) > 4000 {
			return
		}
		pkt := sealInitial(t, quicVersion1, dcid, 0, frames)
		isInitial, sni, ok := q.serverName(pkt)
		if !isInitial {
			t.Fatal("a sealed Initial was not recognised")
		}
		if err := checkName(cleanName(sni)); err != nil {
			t.Fatal(err)
		}
		// The name comes out of CRYPTO data, which the frames hold as it is.
		if ok && (len(sni) == 0 || !bytes.Contains(frames, sni)) {
			t.Fatalf("found %q, which the frames do not hold", sni)
		}
	})
}

// FuzzParsers feeds the same bytes to every application decoder.
func FuzzParsers(f *testing.F) {
	f.Add(dnsQuery(f, "fuzz.example.", dnsmessage.TypeA))
	f.Add(dhcpMessage(f))
	f.Add(clientHello(f, &tls.Config{ServerName: "fuzz.example", CurvePreferences: []tls.CurveID{tls.X25519}}))
	f.Add([]byte("M-SEARCH * HTTP/1.1\r\nST: ssdp:all\r\n\r\n"))
	f.Add([]byte("NOTIFY * HTTP/1.1\r\nNT: a\r\nUSN: b\r\n\r\n"))
	f.Add([]byte("GET / HTTP/1.1\r\nHost: fuzz.example\r\n\r\n"))
	f.Add(append(make([]byte, 14), encodeNetBIOS("FUZZ", 0x20)...))
	f.Fuzz(func(t *testing.T, b []byte) {
		var names []string
		add := func(name string, _ bool) { names = append(names, name) }
		add(DNSQuestion(b))
		add(dnsFirstName(b), true)
		add(TLSServerName(b))
		add(HTTPHost(b))
		add(ssdpName(b), true)
		add(netbiosName(b, dnsHeaderLen), true)
		add(netbiosDatagramSource(b), true)
		add(dhcpHostName(b), true)
		for _, name := range names {
			if err := checkName(name); err != nil {
				t.Fatal(err)
			}
		}
	})
}
