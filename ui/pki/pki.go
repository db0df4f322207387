// Package pki is the box's own certificate authority: created once at setup, its
// key kept in the sealed vault, it issues the certificate the admin UI serves over
// HTTPS for the box's names and LAN address. The owner installs the CA certificate
// on the laptop once; nothing depends on any public CA, and the laptop needs no
// internet to verify the box.
//
// The server certificate and its key are kept outside the vault (a 0600 file in the
// state directory): a locked box must still serve its unlock page over HTTPS. The
// CA key never leaves the vault. ui imports this package; the daemon wires it.
package pki

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"time"
)

// Store keeps the CA's key sealed (the vault).
type Store interface {
	Get(bucket, key string) ([]byte, error)
	Put(bucket, key string, value []byte) error
}

const (
	bucket     = "pki"
	caKeyName  = "ca-key"
	caCertName = "ca-cert"
	// Server certificates live 397 days, the most Apple's and Chrome's rules
	// allow for certificates even from private CAs the user installed; the box
	// renews them well before.
	serverLife = 397 * 24 * time.Hour
	renewAt    = 30 * 24 * time.Hour
	caLife     = 20 * 365 * 24 * time.Hour
)

// CA is the box's certificate authority.
type CA struct {
	Cert *x509.Certificate
	key  crypto.Signer
	DER  []byte
}

// CreateCA makes a new CA named after the box and keeps it in store.
func CreateCA(store Store, boxName string) (*CA, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	serial, _ := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 126))
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: "Redoubt " + boxName + " CA", Organization: []string{"Redoubt box " + boxName}},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(caLife),
		IsCA:                  true,
		BasicConstraintsValid: true,
		MaxPathLenZero:        true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, fmt.Errorf("creating the box's CA: %w", err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, err
	}
	if err := store.Put(bucket, caKeyName, keyDER); err != nil {
		return nil, fmt.Errorf("sealing the CA key: %w", err)
	}
	if err := store.Put(bucket, caCertName, der); err != nil {
		return nil, fmt.Errorf("storing the CA certificate: %w", err)
	}
	cert, _ := x509.ParseCertificate(der)
	return &CA{Cert: cert, key: key, DER: der}, nil
}

// LoadCA reads the CA from store (unlocked).
func LoadCA(store Store) (*CA, error) {
	keyDER, err := store.Get(bucket, caKeyName)
	if err != nil {
		return nil, fmt.Errorf("reading the CA key: %w", err)
	}
	der, err := store.Get(bucket, caCertName)
	if err != nil {
		return nil, fmt.Errorf("reading the CA certificate: %w", err)
	}
	k, err := x509.ParsePKCS8PrivateKey(keyDER)
	if err != nil {
		return nil, fmt.Errorf("parsing the CA key: %w", err)
	}
	signer, ok := k.(crypto.Signer)
	if !ok {
		return nil, errors.New("the CA key cannot sign")
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("parsing the CA certificate: %w", err)
	}
	return &CA{Cert: cert, key: signer, DER: der}, nil
}

// PEM is the CA certificate in PEM form, as the owner downloads it.
func (ca *CA) PEM() []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ca.DER})
}

// Fingerprint is the SHA-256 of the CA certificate, for the owner to compare.
func (ca *CA) Fingerprint() string { return Fingerprint(ca.DER) }

// Fingerprint formats the SHA-256 of a DER certificate as colon-separated hex.
func Fingerprint(der []byte) string {
	sum := sha256.Sum256(der)
	h := hex.EncodeToString(sum[:])
	var out []byte
	for i := 0; i < len(h); i += 2 {
		if i > 0 {
			out = append(out, ':')
		}
		out = append(out, h[i], h[i+1])
	}
	return string(out)
}

// Issue makes a server certificate for names and addresses.
func (ca *CA) Issue(names []string, addrs []netip.Addr) (certPEM, keyPEM []byte, err error) {
	if len(names) == 0 && len(addrs) == 0 {
		return nil, nil, errors.New("pki: a server certificate needs a name or an address")
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	serial, _ := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 126))
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: firstOr(names, "redoubt")},
		DNSNames:     names,
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(serverLife),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	for _, a := range addrs {
		tmpl.IPAddresses = append(tmpl.IPAddresses, net.IP(a.AsSlice()))
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, &key.PublicKey, ca.key)
	if err != nil {
		return nil, nil, fmt.Errorf("issuing the UI certificate: %w", err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, nil, err
	}
	certPEM = append(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), ca.PEM()...)
	keyPEM = pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER})
	return certPEM, keyPEM, nil
}

func firstOr(s []string, def string) string {
	if len(s) > 0 {
		return s[0]
	}
	return def
}

// ServerFiles are where the server certificate and key live, outside the vault.
type ServerFiles struct{ Dir string }

func (f ServerFiles) certPath() string { return filepath.Join(f.Dir, "ui-cert.pem") }
func (f ServerFiles) keyPath() string  { return filepath.Join(f.Dir, "ui-key.pem") }

// Save writes the server certificate and key (0600), atomically.
func (f ServerFiles) Save(certPEM, keyPEM []byte) error {
	if err := writeAtomic(f.keyPath(), keyPEM); err != nil {
		return err
	}
	return writeAtomic(f.certPath(), certPEM)
}

// Load reads the server certificate, or reports it missing.
func (f ServerFiles) Load() (*tls.Certificate, error) {
	c, err := tls.LoadX509KeyPair(f.certPath(), f.keyPath())
	if err != nil {
		return nil, err
	}
	return &c, nil
}

// Remove deletes the server certificate and key (factory reset).
func (f ServerFiles) Remove() {
	os.Remove(f.certPath())
	os.Remove(f.keyPath())
}

// NeedsRenewal reports whether c should be reissued: close to expiry, or not
// covering every name and address wanted.
func NeedsRenewal(c *tls.Certificate, names []string, addrs []netip.Addr, now time.Time) bool {
	if c == nil || len(c.Certificate) == 0 {
		return true
	}
	leaf, err := x509.ParseCertificate(c.Certificate[0])
	if err != nil || now.Add(renewAt).After(leaf.NotAfter) {
		return true
	}
	for _, n := range names {
		if !slices.Contains(leaf.DNSNames, n) {
			return true
		}
	}
	for _, a := range addrs {
		if !slices.ContainsFunc(leaf.IPAddresses, func(ip net.IP) bool { return ip.Equal(net.IP(a.AsSlice())) }) {
			return true
		}
	}
	return false
}

func writeAtomic(path string, data []byte) error {
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}
