// Package internet runs what stands for the internet in the lab: a "tracker" web
// server on HTTP and HTTPS, a time server (NTP, udp/123) and a DNS resolver that
// answers every name with the tracker's address — everything the laptop must never reach. Every request that
// arrives is written as one JSON line, so a test can prove none came from the laptop.
// Only the lab and `redoubt lab internet` import it.
package internet

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/netip"
	"sync"
	"time"

	"golang.org/x/net/dns/dnsmessage"
	"golang.org/x/net/ipv4"

	"github.com/redoubt/redoubt/clock"
)

// Hit is one request that reached the internet.
type Hit struct {
	Time   time.Time `json:"time"`
	Proto  string    `json:"proto"` // http, https, dns-udp, dns-tcp, ntp
	Remote string    `json:"remote"`
	Name   string    `json:"name,omitempty"` // Host header or DNS question
}

// Options configure Serve.
type Options struct {
	// Tracker is the address the DNS resolver gives for every name.
	Tracker netip.Addr
	// Log receives one JSON Hit per line.
	Log io.Writer
	// Names the tracker's certificate covers.
	Names []string
}

type server struct {
	opts Options
	mu   sync.Mutex
	enc  *json.Encoder
}

func (s *server) hit(h Hit) {
	h.Time = time.Now()
	s.mu.Lock()
	s.enc.Encode(h)
	s.mu.Unlock()
}

// Serve listens on every address of the namespace (ports 80, 443, 53 and
// udp/123) until ctx ends.
func Serve(ctx context.Context, opts Options) error {
	s := &server{opts: opts, enc: json.NewEncoder(opts.Log)}
	cert, err := selfSigned(opts.Names)
	if err != nil {
		return err
	}
	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		proto := "http"
		if r.TLS != nil {
			proto = "https"
		}
		s.hit(Hit{Proto: proto, Remote: r.RemoteAddr, Name: r.Host})
		fmt.Fprintf(w, "tracker: you reached the internet from %s\n", r.RemoteAddr)
	})
	httpLn, err := net.Listen("tcp", ":80")
	if err != nil {
		return err
	}
	httpsLn, err := net.Listen("tcp", ":443")
	if err != nil {
		return err
	}
	udp, err := net.ListenPacket("udp4", ":53")
	if err != nil {
		return err
	}
	tcpDNS, err := net.Listen("tcp", ":53")
	if err != nil {
		return err
	}
	ntp, err := net.ListenPacket("udp4", ":123")
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: handler, ReadHeaderTimeout: 5 * time.Second}
	tlsSrv := &http.Server{Handler: handler, ReadHeaderTimeout: 5 * time.Second,
		TLSConfig: &tls.Config{Certificates: []tls.Certificate{cert}}}
	errc := make(chan error, 4)
	go func() { errc <- srv.Serve(httpLn) }()
	go func() { errc <- tlsSrv.ServeTLS(httpsLn, "", "") }()
	go func() { errc <- s.serveDNSUDP(udp) }()
	go func() { errc <- s.serveDNSTCP(tcpDNS) }()
	go func() { errc <- s.serveUDP(ntp, "ntp", s.answerNTP) }()
	select {
	case <-ctx.Done():
	case err = <-errc:
	}
	srv.Close()
	tlsSrv.Close()
	udp.Close()
	tcpDNS.Close()
	ntp.Close()
	if errors.Is(err, http.ErrServerClosed) {
		err = nil
	}
	return err
}

// serveDNSUDP answers each query from the address it was sent to: the internet
// has several addresses, and an answer from another one would not pass back
// through the NAT (the home router's, the VPN provider's) the query came through.
func (s *server) serveDNSUDP(pc net.PacketConn) error {
	return s.serveUDP(pc, "dns-udp", s.answer)
}

// answerNTP answers an NTP client with the namespace's clock (the machine's).
func (s *server) answerNTP(q []byte) ([]byte, string) {
	now := time.Now()
	return clock.Answer(q, now, now), ""
}

func (s *server) serveUDP(pc net.PacketConn, proto string, answer func([]byte) ([]byte, string)) error {
	p := ipv4.NewPacketConn(pc)
	if err := p.SetControlMessage(ipv4.FlagDst, true); err != nil {
		return err
	}
	buf := make([]byte, 4096)
	for {
		n, cm, from, err := p.ReadFrom(buf)
		if err != nil {
			return err
		}
		resp, name := answer(buf[:n])
		s.hit(Hit{Proto: proto, Remote: from.String(), Name: name})
		if resp != nil {
			var reply *ipv4.ControlMessage
			if cm != nil {
				reply = &ipv4.ControlMessage{Src: cm.Dst}
			}
			p.WriteTo(resp, reply, from)
		}
	}
}

func (s *server) serveDNSTCP(ln net.Listener) error {
	for {
		c, err := ln.Accept()
		if err != nil {
			return err
		}
		go func() {
			defer c.Close()
			c.SetDeadline(time.Now().Add(5 * time.Second))
			var l [2]byte
			if _, err := io.ReadFull(c, l[:]); err != nil {
				return
			}
			msg := make([]byte, int(l[0])<<8|int(l[1]))
			if _, err := io.ReadFull(c, msg); err != nil {
				return
			}
			resp, name := s.answer(msg)
			s.hit(Hit{Proto: "dns-tcp", Remote: c.RemoteAddr().String(), Name: name})
			if resp != nil {
				c.Write(append([]byte{byte(len(resp) >> 8), byte(len(resp))}, resp...))
			}
		}()
	}
}

// answer gives the tracker's address for every A question.
func (s *server) answer(q []byte) ([]byte, string) {
	var p dnsmessage.Parser
	h, err := p.Start(q)
	if err != nil {
		return nil, ""
	}
	question, err := p.Question()
	if err != nil {
		return nil, ""
	}
	name := question.Name.String()
	b := dnsmessage.NewBuilder(nil, dnsmessage.Header{ID: h.ID, Response: true, RecursionDesired: h.RecursionDesired, RecursionAvailable: true})
	b.StartQuestions()
	b.Question(question)
	b.StartAnswers()
	if question.Type == dnsmessage.TypeA {
		b.AResource(dnsmessage.ResourceHeader{Name: question.Name, Class: dnsmessage.ClassINET, TTL: 60},
			dnsmessage.AResource{A: s.opts.Tracker.As4()})
	}
	out, err := b.Finish()
	if err != nil {
		return nil, name
	}
	return out, name
}

func selfSigned(names []string) (tls.Certificate, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "lab tracker"},
		DNSNames:     names,
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return tls.Certificate{}, err
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, nil
}
