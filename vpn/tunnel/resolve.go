package tunnel

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/netip"
	"strings"
	"time"

	"golang.org/x/net/dns/dnsmessage"
)

const (
	dnsAttemptTimeout = 2 * time.Second
	dnsAttempts       = 2
	maxDNSResponse    = 64 << 10
)

// LookupNetIP resolves host with the DNS servers of the tunnel's configuration,
// reached through the tunnel: the box's own lookups never go to the network the
// box is on. IP literals are returned as they are. The answer lists IPv4
// addresses first. Errors are *net.DNSError.
func (t *Tunnel) LookupNetIP(ctx context.Context, host string) ([]netip.Addr, error) {
	if a, err := netip.ParseAddr(strings.Trim(host, "[]")); err == nil {
		return []netip.Addr{a.Unmap()}, nil
	}
	name := strings.ToLower(strings.TrimSuffix(host, "."))
	dnsErr := func(msg string) *net.DNSError { return &net.DNSError{Err: msg, Name: host} }
	if name == "" || len(name) > 253 {
		return nil, dnsErr("not a host name")
	}
	if name == "localhost" || strings.HasSuffix(name, ".localhost") {
		return nil, dnsErr("localhost is never looked up through the VPN")
	}
	if len(t.cfg.DNS) == 0 {
		return nil, dnsErr("the VPN config names no DNS server (DNS = in [Interface]), so the box cannot look up names")
	}
	qname, err := dnsmessage.NewName(name + ".")
	if err != nil {
		return nil, dnsErr("not a host name")
	}
	var types []dnsmessage.Type
	if t.has4 {
		types = append(types, dnsmessage.TypeA)
	}
	if t.has6 {
		types = append(types, dnsmessage.TypeAAAA)
	}
	var lastErr *net.DNSError
	for _, server := range t.cfg.DNS {
		if !t.usable(server, 0) {
			continue
		}
		type result struct {
			addrs []netip.Addr
			err   *net.DNSError
		}
		results := make([]chan result, len(types))
		for i, typ := range types {
			results[i] = make(chan result, 1)
			go func() {
				addrs, err := t.query(ctx, server, qname, typ)
				results[i] <- result{addrs, err}
			}()
		}
		var addrs []netip.Addr
		notFound := 0
		var serverErr *net.DNSError
		for _, ch := range results {
			r := <-ch
			switch {
			case r.err == nil:
				addrs = append(addrs, r.addrs...)
			case r.err.IsNotFound:
				notFound++
			default:
				serverErr = r.err
			}
		}
		if len(addrs) > 0 {
			return addrs, nil
		}
		if notFound == len(types) || (notFound > 0 && serverErr == nil) {
			return nil, &net.DNSError{Err: "no such host", Name: host, Server: server.String(), IsNotFound: true}
		}
		lastErr = serverErr
		if ctx.Err() != nil {
			break
		}
	}
	if lastErr == nil {
		lastErr = dnsErr("no DNS server of the VPN config is reachable through the tunnel")
	}
	lastErr.Name = host
	return nil, lastErr
}

// query asks server for one record type, over UDP (retried once) and over TCP when
// the answer was truncated.
func (t *Tunnel) query(ctx context.Context, server netip.Addr, name dnsmessage.Name, typ dnsmessage.Type) ([]netip.Addr, *net.DNSError) {
	id := uint16(rand.Uint32())
	msg := dnsmessage.Message{
		Header:    dnsmessage.Header{ID: id, RecursionDesired: true},
		Questions: []dnsmessage.Question{{Name: name, Type: typ, Class: dnsmessage.ClassINET}},
	}
	q, err := msg.Pack()
	if err != nil {
		return nil, &net.DNSError{Err: "building the query: " + err.Error()}
	}
	srv := netip.AddrPortFrom(server, 53)
	var resp []byte
	var lastErr error
	for attempt := 0; attempt < dnsAttempts && resp == nil; attempt++ {
		resp, lastErr = t.exchangeUDP(ctx, srv, q, id)
		if ctx.Err() != nil {
			break
		}
	}
	if resp == nil {
		timeout := errors.Is(lastErr, context.DeadlineExceeded) || isTimeout(lastErr)
		return nil, &net.DNSError{Err: fmt.Sprintf("no answer from %s through the tunnel: %v", server, lastErr), Server: server.String(), IsTimeout: timeout, IsTemporary: true}
	}
	var p dnsmessage.Parser
	h, err := p.Start(resp)
	if err == nil && h.Truncated {
		if resp, err = t.exchangeTCP(ctx, srv, q, id); err != nil {
			return nil, &net.DNSError{Err: fmt.Sprintf("truncated answer, and TCP to %s failed: %v", server, err), Server: server.String(), IsTemporary: true}
		}
	}
	addrs, derr := parseAnswer(resp, name, typ)
	if derr != nil {
		derr.Server = server.String()
	}
	return addrs, derr
}

// parseAnswer reads the addresses of type typ for name from a DNS answer (bytes
// from the network: anything may be in them), following its CNAME chain.
func parseAnswer(resp []byte, name dnsmessage.Name, typ dnsmessage.Type) ([]netip.Addr, *net.DNSError) {
	var p dnsmessage.Parser
	h, err := p.Start(resp)
	if err != nil {
		return nil, &net.DNSError{Err: "malformed answer: " + err.Error()}
	}
	switch h.RCode {
	case dnsmessage.RCodeSuccess:
	case dnsmessage.RCodeNameError:
		return nil, &net.DNSError{Err: "no such host", IsNotFound: true}
	default:
		return nil, &net.DNSError{Err: "server answered " + h.RCode.String(), IsTemporary: true}
	}
	qs, err := p.AllQuestions()
	if err != nil || len(qs) != 1 || !strings.EqualFold(qs[0].Name.String(), name.String()) || qs[0].Type != typ {
		return nil, &net.DNSError{Err: "the answer is for another question"}
	}
	// Follow the CNAME chain from the name asked; take only addresses on it.
	onChain := map[string]bool{strings.ToLower(name.String()): true}
	var addrs []netip.Addr
	rrs, err := p.AllAnswers()
	if err != nil {
		return nil, &net.DNSError{Err: "malformed answer: " + err.Error()}
	}
	for range 8 { // chains are short; bound the work on hostile answers
		grew := false
		for _, rr := range rrs {
			if c, ok := rr.Body.(*dnsmessage.CNAMEResource); ok && onChain[strings.ToLower(rr.Header.Name.String())] {
				target := strings.ToLower(c.CNAME.String())
				if !onChain[target] {
					onChain[target] = true
					grew = true
				}
			}
		}
		if !grew {
			break
		}
	}
	for _, rr := range rrs {
		if !onChain[strings.ToLower(rr.Header.Name.String())] {
			continue
		}
		switch b := rr.Body.(type) {
		case *dnsmessage.AResource:
			if typ == dnsmessage.TypeA {
				addrs = append(addrs, netip.AddrFrom4(b.A))
			}
		case *dnsmessage.AAAAResource:
			if typ == dnsmessage.TypeAAAA {
				addrs = append(addrs, netip.AddrFrom16(b.AAAA).Unmap())
			}
		}
	}
	if len(addrs) == 0 {
		return nil, &net.DNSError{Err: "no such host", IsNotFound: true}
	}
	return addrs, nil
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

func (t *Tunnel) exchangeUDP(ctx context.Context, srv netip.AddrPort, q []byte, id uint16) ([]byte, error) {
	c, err := t.dialAddr(ctx, false, srv)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	deadline := time.Now().Add(dnsAttemptTimeout)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	c.SetDeadline(deadline)
	stop := context.AfterFunc(ctx, func() { c.SetDeadline(time.Now()) })
	defer stop()
	if _, err := c.Write(q); err != nil {
		return nil, err
	}
	buf := make([]byte, 4096)
	for {
		n, err := c.Read(buf)
		if err != nil {
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			return nil, err
		}
		if n >= 2 && binary.BigEndian.Uint16(buf) == id {
			return buf[:n], nil
		}
		// Not our answer (a stray or spoofed datagram): keep waiting.
	}
}

func (t *Tunnel) exchangeTCP(ctx context.Context, srv netip.AddrPort, q []byte, id uint16) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, 2*dnsAttemptTimeout)
	defer cancel()
	c, err := t.dialAddr(ctx, true, srv)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	if d, ok := ctx.Deadline(); ok {
		c.SetDeadline(d)
	}
	framed := binary.BigEndian.AppendUint16(nil, uint16(len(q)))
	if _, err := c.Write(append(framed, q...)); err != nil {
		return nil, err
	}
	var l [2]byte
	if _, err := io.ReadFull(c, l[:]); err != nil {
		return nil, err
	}
	n := int(binary.BigEndian.Uint16(l[:]))
	if n < 12 || n > maxDNSResponse {
		return nil, fmt.Errorf("a %d-byte answer", n)
	}
	resp := make([]byte, n)
	if _, err := io.ReadFull(c, resp); err != nil {
		return nil, err
	}
	if binary.BigEndian.Uint16(resp) != id {
		return nil, errors.New("the answer has another ID")
	}
	return resp, nil
}

// Probe checks that the tunnel carries traffic both ways now: it asks the first
// DNS server of the configuration for the root's name servers (a question every
// resolver answers from its cache) and waits for any answer. Without a DNS server
// it only makes WireGuard send a keepalive, and reports nothing.
func (t *Tunnel) Probe(ctx context.Context) error {
	if len(t.cfg.DNS) == 0 {
		t.Kick()
		return nil
	}
	id := uint16(rand.Uint32())
	msg := dnsmessage.Message{
		Header:    dnsmessage.Header{ID: id, RecursionDesired: true},
		Questions: []dnsmessage.Question{{Name: dnsmessage.MustNewName("."), Type: dnsmessage.TypeNS, Class: dnsmessage.ClassINET}},
	}
	q, err := msg.Pack()
	if err != nil {
		return err
	}
	_, err = t.exchangeUDP(ctx, netip.AddrPortFrom(t.cfg.DNS[0], 53), q, id)
	return err
}
