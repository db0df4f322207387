// Package coord makes what a test coordination server needs: a per-run
// certificate authority with a server certificate for the server's address,
// and a Headscale v0.29 configuration in the shape of the release's
// config-example.yaml (v0.29 refuses removed keys), with its embedded DERP and
// STUN on, nothing reaching outside (no public DERP map, no update check, no
// log upload), state in one directory and the policy kept in the database so
// the box can set it. The lab's mesh and the vpn room's tests use it; only they
// import it.
package coord

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"time"
)

// CA is a throw-away certificate authority.
type CA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	// PEM is the CA certificate, for clients' trust (SSL_CERT_FILE).
	PEM []byte
}

// NewCA makes a CA valid for a day.
func NewCA(name string) (*CA, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial(),
		Subject:               pkix.Name{CommonName: name},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, err
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	return &CA{cert: cert, key: key, PEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})}, nil
}

// Issue makes a server certificate for addrs, returning it and its key as PEM.
func (ca *CA) Issue(addrs ...netip.Addr) (certPEM, keyPEM []byte, err error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial(),
		Subject:      pkix.Name{CommonName: addrs[0].String()},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	for _, a := range addrs {
		tmpl.IPAddresses = append(tmpl.IPAddresses, net.IP(a.AsSlice()))
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		return nil, nil, err
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return nil, nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), nil
}

func serial() *big.Int {
	n, _ := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 120))
	return n
}

// Server describes one Headscale to configure.
type Server struct {
	// Dir holds its config, keys, database, socket and certificate.
	Dir string
	// Addr is the address clients reach it at; Port its HTTPS port
	// (server_url is https://Addr[:Port]).
	Addr netip.Addr
	Port uint16
	// STUNPort is the embedded DERP's STUN port (udp; 3478 when 0).
	STUNPort uint16
	// BaseDomain is MagicDNS's domain (default "team.lab").
	BaseDomain string
	// Metrics is where Headscale serves its metrics (/metrics, /debug/varz),
	// such as 127.0.0.1:9090 inside the lab's coordination namespace; empty:
	// not served.
	Metrics string
}

// URL is the server's server_url.
func (s Server) URL() string {
	if s.Port == 0 || s.Port == 443 {
		return "https://" + s.Addr.String()
	}
	return "https://" + net.JoinHostPort(s.Addr.String(), strconv.Itoa(int(s.Port)))
}

// Paths of the files Write makes.
func (s Server) ConfigPath() string { return filepath.Join(s.Dir, "headscale.yaml") }
func (s Server) CAPath() string     { return filepath.Join(s.Dir, "ca.pem") }
func (s Server) Socket() string     { return filepath.Join(s.Dir, "headscale.sock") }

// Write makes a CA and certificate and writes the config; it returns the CA.
func (s Server) Write() (*CA, error) {
	if err := os.MkdirAll(s.Dir, 0o700); err != nil {
		return nil, err
	}
	ca, err := NewCA("Redoubt lab CA " + filepath.Base(s.Dir))
	if err != nil {
		return nil, err
	}
	cert, key, err := ca.Issue(s.Addr)
	if err != nil {
		return nil, err
	}
	for name, b := range map[string][]byte{"ca.pem": ca.PEM, "tls.crt": cert, "tls.key": key} {
		if err := os.WriteFile(filepath.Join(s.Dir, name), b, 0o600); err != nil {
			return nil, err
		}
	}
	if err := os.Chmod(s.CAPath(), 0o644); err != nil {
		return nil, err
	}
	return ca, os.WriteFile(s.ConfigPath(), s.yaml(), 0o600)
}

// yaml is the config: config-example.yaml of v0.29.2, with what a lab changes.
func (s Server) yaml() []byte {
	port := s.Port
	if port == 0 {
		port = 443
	}
	stun := s.STUNPort
	if stun == 0 {
		stun = 3478
	}
	dom := s.BaseDomain
	if dom == "" {
		dom = "team.lab"
	}
	ip4 := ""
	if s.Addr.Is4() {
		ip4 = "    ipv4: " + s.Addr.String() + "\n"
	}
	d := s.Dir
	return []byte(fmt.Sprintf(`# Headscale v0.29.2 for a Redoubt lab: written by lab/coord.
server_url: %[1]s
listen_addr: %[2]s
metrics_listen_addr: %[8]s
grpc_listen_addr: 127.0.0.1:0
grpc_allow_insecure: false
trusted_proxies: []
noise:
  private_key_path: %[3]s/noise_private.key
prefixes:
  v4: 100.64.0.0/10
  v6: fd7a:115c:a1e0::/48
  allocation: sequential
derp:
  server:
    enabled: true
    region_id: 999
    region_code: "lab"
    region_name: "Redoubt lab DERP"
    verify_clients: true
    stun_listen_addr: %[4]s
    private_key_path: %[3]s/derp_server_private.key
    automatically_add_embedded_derp_region: true
%[5]s  urls: []
  paths: []
  auto_update_enabled: false
  update_frequency: 3h
disable_check_updates: true
node:
  expiry: 0
  ephemeral:
    inactivity_timeout: 30m
database:
  type: sqlite
  debug: false
  sqlite:
    path: %[3]s/db.sqlite
    write_ahead_log: true
    wal_autocheckpoint: 1000
acme_url: ""
acme_email: ""
tls_letsencrypt_hostname: ""
tls_cert_path: %[3]s/tls.crt
tls_key_path: %[3]s/tls.key
log:
  level: info
  format: text
policy:
  mode: database
  path: ""
dns:
  magic_dns: true
  base_domain: %[6]s
  override_local_dns: false
  nameservers:
    global: []
    split: {}
  search_domains: []
  extra_records: []
unix_socket: %[7]s
unix_socket_permission: "0770"
logtail:
  enabled: false
taildrop:
  enabled: false
`, s.URL(), net.JoinHostPort(s.Addr.String(), strconv.Itoa(int(port))), d,
		net.JoinHostPort(s.Addr.String(), strconv.Itoa(int(stun))), ip4, dom, s.Socket(), strconv.Quote(s.Metrics)))
}
