package lab

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"net"
	"net/http"
	"net/http/cookiejar"
	"time"
)

// DialContext returns a dial function whose connections start in node's
// namespace: a Go client (an http.Client, a proxy) in the test process reaches
// the box exactly as a program on that node would.
func (l *Lab) DialContext(node string) func(ctx context.Context, network, addr string) (net.Conn, error) {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		var c net.Conn
		err := l.Do(node, func() error {
			var d net.Dialer
			var err error
			c, err = d.DialContext(ctx, network, addr)
			return err
		})
		return c, err
	}
}

// HTTPClient is a browser-like client on node: cookies kept, redirects not
// followed (tests look at them), and, given a CA certificate in PEM, HTTPS
// verified against it alone.
func (l *Lab) HTTPClient(node string, caPEM []byte) *http.Client {
	jar, _ := cookiejar.New(nil)
	tr := &http.Transport{DialContext: l.DialContext(node), ResponseHeaderTimeout: 15 * time.Second}
	if caPEM != nil {
		pool := x509.NewCertPool()
		pool.AppendCertsFromPEM(caPEM)
		tr.TLSClientConfig = &tls.Config{RootCAs: pool}
	}
	return &http.Client{
		Jar:           jar,
		Transport:     tr,
		Timeout:       30 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}
