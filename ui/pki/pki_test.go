package pki

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net/netip"
	"testing"
	"time"
)

type memStore map[string][]byte

func (m memStore) Get(b, k string) ([]byte, error) {
	v, ok := m[b+"/"+k]
	if !ok {
		return nil, errors.New("not found")
	}
	return v, nil
}
func (m memStore) Put(b, k string, v []byte) error { m[b+"/"+k] = v; return nil }

func TestIssueAndVerify(t *testing.T) {
	store := memStore{}
	ca, err := CreateCA(store, "kestrel")
	if err != nil {
		t.Fatal(err)
	}
	again, err := LoadCA(store)
	if err != nil || again.Fingerprint() != ca.Fingerprint() {
		t.Fatalf("reloaded CA differs: %v", err)
	}
	names := []string{"kestrel.home.arpa", "redoubt.home.arpa"}
	addrs := []netip.Addr{netip.MustParseAddr("10.201.86.1")}
	certPEM, keyPEM, err := again.Issue(names, addrs)
	if err != nil {
		t.Fatal(err)
	}
	files := ServerFiles{Dir: t.TempDir()}
	if err := files.Save(certPEM, keyPEM); err != nil {
		t.Fatal(err)
	}
	c, err := files.Load()
	if err != nil {
		t.Fatal(err)
	}
	leaf, _ := x509.ParseCertificate(c.Certificate[0])
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(ca.PEM())
	for _, n := range []string{"kestrel.home.arpa", "10.201.86.1"} {
		if _, err := leaf.Verify(x509.VerifyOptions{Roots: pool, DNSName: n}); err != nil {
			t.Errorf("certificate does not verify for %s: %v", n, err)
		}
	}
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: pool, DNSName: "bank.example"}); err == nil {
		t.Error("certificate verifies for a name it should not cover")
	}
	if NeedsRenewal(c, names, addrs, time.Now()) {
		t.Error("a fresh certificate needs renewal")
	}
	if !NeedsRenewal(c, append(names, "new.home.arpa"), addrs, time.Now()) {
		t.Error("a certificate lacking a name does not need renewal")
	}
	if !NeedsRenewal(c, names, addrs, time.Now().Add(380*24*time.Hour)) {
		t.Error("a certificate near expiry does not need renewal")
	}
	// The CA cannot issue for others: it is constrained to path length zero.
	if !ca.Cert.MaxPathLenZero || !ca.Cert.IsCA {
		t.Error("CA constraints missing")
	}
}

func TestTLSServerWithIssuedCert(t *testing.T) {
	store := memStore{}
	ca, _ := CreateCA(store, "box")
	certPEM, keyPEM, _ := ca.Issue([]string{"box.home.arpa"}, nil)
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{cert}})
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		c, err := ln.Accept()
		if err == nil {
			c.(*tls.Conn).Handshake()
			c.Close()
		}
	}()
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(ca.PEM())
	c, err := tls.Dial("tcp", ln.Addr().String(), &tls.Config{RootCAs: pool, ServerName: "box.home.arpa"})
	if err != nil {
		t.Fatalf("a client trusting the box's CA cannot connect: %v", err)
	}
	c.Close()
}
