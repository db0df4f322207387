package lab

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"time"

	"github.com/redoubt/redoubt/lab/coord"
	"github.com/redoubt/redoubt/lab/tools"
)

// S3Port is where the lab's S3 server listens, on the tracker's address in
// the internet namespace.
const S3Port = 9000

// S3 is the lab's S3-compatible server: versitygw (posix back end, built by
// scripts/tools.sh) in the internet namespace, with HTTPS from a CA made for
// the run, keys made for the run, and one bucket. The box reaches it only
// through its VPN; its access log names every client.
type S3 struct {
	Endpoint  string // https://203.0.113.10:9000
	Bucket    string
	AccessKey string
	SecretKey string
	// CA is the server's CA certificate (PEM), for the box's S3 settings.
	CA []byte
	// Dir holds the buckets (a directory each); AccessLog the requests.
	Dir       string
	AccessLog string
	Proc      *Proc
}

// StartS3 runs the lab's S3 server, or says how to build it.
func (l *Lab) StartS3(ctx context.Context) (*S3, error) {
	bin, err := tools.S3Server()
	if err != nil {
		return nil, err
	}
	dir := filepath.Join(l.Dir, "s3")
	s := &S3{Endpoint: fmt.Sprintf("https://%s:%d", Tracker, S3Port), Bucket: "backups", Dir: filepath.Join(dir, "data"),
		AccessLog: filepath.Join(dir, "access.log")}
	if err := os.MkdirAll(filepath.Join(s.Dir, s.Bucket), 0o700); err != nil {
		return nil, err
	}
	ca, err := coord.NewCA("redoubt lab s3 " + l.Prefix)
	if err != nil {
		return nil, err
	}
	cert, key, err := ca.Issue(Tracker, netip.MustParseAddr("127.0.0.1"))
	if err != nil {
		return nil, err
	}
	s.CA = ca.PEM
	certPath, keyPath := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(certPath, cert, 0o600); err != nil {
		return nil, err
	}
	if err := os.WriteFile(keyPath, key, 0o600); err != nil {
		return nil, err
	}
	s.AccessKey, s.SecretKey = "lab"+randHex(6), randHex(20)
	p, err := l.StartEnv(Internet, "s3", []string{"ROOT_ACCESS_KEY=" + s.AccessKey, "ROOT_SECRET_KEY=" + s.SecretKey},
		bin, "--port", fmt.Sprintf("%s:%d", Tracker, S3Port), "--cert", certPath, "--key", keyPath,
		"--quiet", "--access-log", s.AccessLog, "posix", s.Dir)
	if err != nil {
		return nil, err
	}
	s.Proc = p
	deadline := time.Now().Add(15 * time.Second)
	for {
		var dialErr error
		l.Do(Internet, func() error {
			c, err := net.DialTimeout("tcp", fmt.Sprintf("%s:%d", Tracker, S3Port), time.Second)
			if err == nil {
				c.Close()
			}
			dialErr = err
			return nil
		})
		if dialErr == nil {
			return s, nil
		}
		if done, err := p.Exited(); done {
			return nil, fmt.Errorf("the lab's S3 server exited (%v):\n%s", err, tail(p.Output(), 20))
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			p.Stop(3 * time.Second)
			return nil, fmt.Errorf("the lab's S3 server did not listen within 15s: %v", dialErr)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func randHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}
