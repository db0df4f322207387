package coord

import (
	"crypto/x509"
	"encoding/pem"
	"net/netip"
	"os"
	"strings"
	"testing"
)

func TestWrite(t *testing.T) {
	s := Server{Dir: t.TempDir(), Addr: netip.MustParseAddr("198.18.1.2")}
	ca, err := s.Write()
	if err != nil {
		t.Fatal(err)
	}
	if s.URL() != "https://198.18.1.2" {
		t.Errorf("URL %s", s.URL())
	}
	cfg, err := os.ReadFile(s.ConfigPath())
	if err != nil {
		t.Fatal(err)
	}
	text := string(cfg)
	// v0.29 refuses removed keys; nothing may reach outside the lab.
	for _, bad := range []string{"randomize_client_port", "ephemeral_node_inactivity_timeout", "controlplane.tailscale.com", "1.1.1.1", "letsencrypt.org"} {
		if strings.Contains(text, bad) {
			t.Errorf("the config has %q", bad)
		}
	}
	for _, want := range []string{"server_url: https://198.18.1.2\n", "listen_addr: 198.18.1.2:443\n", "  urls: []\n",
		"disable_check_updates: true\n", "logtail:\n  enabled: false\n", "stun_listen_addr: 198.18.1.2:3478\n", "  mode: database\n",
		"    ipv4: 198.18.1.2\n", "unix_socket: " + s.Socket() + "\n"} {
		if !strings.Contains(text, want) {
			t.Errorf("the config lacks %q", want)
		}
	}
	// The server's certificate verifies for its address against the CA alone.
	certPEM, _ := os.ReadFile(s.Dir + "/tls.crt")
	block, _ := pem.Decode(certPEM)
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(ca.PEM)
	if _, err := cert.Verify(x509.VerifyOptions{Roots: pool, DNSName: "198.18.1.2"}); err != nil {
		t.Fatal(err)
	}
	if _, err := cert.Verify(x509.VerifyOptions{Roots: pool, DNSName: "198.18.1.3"}); err == nil {
		t.Fatal("the certificate verifies for another address")
	}
	if st, _ := os.Stat(s.Dir + "/tls.key"); st.Mode().Perm() != 0o600 {
		t.Errorf("key mode %v", st.Mode())
	}
	s2 := Server{Dir: t.TempDir(), Addr: netip.MustParseAddr("127.0.0.1"), Port: 8443, STUNPort: 3479}
	if s2.URL() != "https://127.0.0.1:8443" {
		t.Errorf("URL %s", s2.URL())
	}
}
