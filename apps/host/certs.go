package host

import (
	"crypto/tls"
	"fmt"
	"os"
	"path/filepath"

	"github.com/redoubt/redoubt/ui/pki"
)

// The apps' LAN certificates are kept outside the vault, like the owner's
// pages' (state.dir/apps/.certs/<id>.pem, 0600): a locked box still answers
// an app's name over HTTPS, to say it is locked. Their keys prove only that
// the box is the box; the CA's key stays in the vault, so a locked box issues
// none.
func (n *networks) certPath(id string) string {
	return filepath.Join(n.h.d.StateDir, ".certs", id+".pem")
}

// lanCertificate answers a LAN client's TLS handshake for an app's name.
func (n *networks) lanCertificate(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
	in := n.h.appForHost(hello.ServerName)
	if in == nil {
		return nil, fmt.Errorf("no app is called %q", hello.ServerName)
	}
	return n.lanCert(in.m.ID, false)
}

// lanCert returns an app's LAN certificate: from memory, from its file, or
// issued anew (only while the box is unlocked) when it does not cover the
// app's names or nears its end.
func (n *networks) lanCert(id string, force bool) (*tls.Certificate, error) {
	names := n.h.lanHosts(id)
	now := n.h.d.Now()
	n.mu.Lock()
	c := n.lanCerts[id]
	n.mu.Unlock()
	if c == nil {
		c = loadPEM(n.certPath(id))
	}
	if !force && !pki.NeedsRenewal(c, names, nil, now) {
		n.remember(id, c)
		return c, nil
	}
	if !n.h.isUnlocked() {
		if c != nil {
			return c, nil
		}
		return nil, errLocked
	}
	ca, err := pki.LoadCA(n.h.d.Vault)
	if err != nil {
		if c != nil {
			return c, nil
		}
		return nil, fmt.Errorf("the box's CA: %w", err)
	}
	certPEM, keyPEM, err := ca.Issue(names, nil)
	if err != nil {
		return nil, err
	}
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return nil, err
	}
	if err := writePEM(n.certPath(id), append(certPEM, keyPEM...)); err != nil {
		n.h.log.Warn("keeping an app's certificate", "app", id, "err", err)
	}
	n.remember(id, &cert)
	return &cert, nil
}

func (n *networks) remember(id string, c *tls.Certificate) {
	n.mu.Lock()
	n.lanCerts[id] = c
	n.mu.Unlock()
}

// renewCerts issues the LAN certificates that need it (after an unlock or a
// change of the box's names).
func (n *networks) renewCerts() {
	if !n.h.isUnlocked() {
		return
	}
	for id, in := range n.h.apps {
		if _, ok := in.m.Web(); ok && in.m.Exposed("lan") {
			if _, err := n.lanCert(id, false); err != nil {
				n.h.log.Warn("issuing an app's certificate", "app", id, "err", err)
			}
		}
	}
}

func loadPEM(path string) *tls.Certificate {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil
	}
	c, err := tls.X509KeyPair(raw, raw)
	if err != nil {
		return nil
	}
	return &c
}

func writePEM(path string, data []byte) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, 0o600); err != nil {
		return err
	}
	f, err := os.Open(tmp)
	if err == nil {
		f.Sync()
		f.Close()
	}
	return os.Rename(tmp, path)
}
