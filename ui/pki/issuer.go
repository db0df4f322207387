package pki

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"sync"
	"time"
)

// Issuer serves one TLS identity whose names and addresses may change (the
// box's tailnet node, an app's origin): it issues a certificate from the
// box's CA when first asked, keeps it in memory only, and issues again when
// the names or addresses it is asked for are no longer covered or the
// certificate nears its end. The CA's key is read from the vault for each
// issue, so an Issuer fails while the box is locked.
type Issuer struct {
	// Store is the vault holding the CA.
	Store Store
	// Identity returns the names and addresses the certificate must cover
	// now.
	Identity func() (names []string, addrs []netip.Addr)

	mu   sync.Mutex
	cert *tls.Certificate
}

// GetCertificate is for tls.Config.GetCertificate.
func (i *Issuer) GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) { return i.Get() }

// Get returns the current certificate, issuing one if needed.
func (i *Issuer) Get() (*tls.Certificate, error) {
	names, addrs := i.Identity()
	names = slices.Compact(slices.DeleteFunc(names, func(n string) bool { return n == "" }))
	i.mu.Lock()
	defer i.mu.Unlock()
	if !NeedsRenewal(i.cert, names, addrs, time.Now()) {
		return i.cert, nil
	}
	if len(names) == 0 && len(addrs) == 0 {
		return nil, errors.New("pki: no name or address to issue a certificate for yet")
	}
	ca, err := LoadCA(i.Store)
	if err != nil {
		return nil, fmt.Errorf("the box's CA: %w", err)
	}
	certPEM, keyPEM, err := ca.Issue(names, addrs)
	if err != nil {
		return nil, err
	}
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return nil, err
	}
	i.cert = &cert
	return i.cert, nil
}

// Forget drops the certificate held in memory (the box was locked).
func (i *Issuer) Forget() {
	i.mu.Lock()
	i.cert = nil
	i.mu.Unlock()
}
