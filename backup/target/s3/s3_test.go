package s3

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3mem"

	"github.com/redoubt/redoubt/backup/target"
	"github.com/redoubt/redoubt/vpn/egress"
)

// The example in AWS's Signature Version 4 documentation (GET Object with
// a range).
func TestSignAWSExample(t *testing.T) {
	req, _ := http.NewRequest("GET", "https://examplebucket.s3.amazonaws.com/test.txt", nil)
	req.Header.Set("Range", "bytes=0-9")
	Sign(req, nil, "AKIAIOSFODNN7EXAMPLE", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", "us-east-1", time.Date(2013, 5, 24, 0, 0, 0, 0, time.UTC))
	want := "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request, SignedHeaders=host;range;x-amz-content-sha256;x-amz-date, Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41"
	if got := req.Header.Get("Authorization"); got != want {
		t.Fatalf("signature:\n got %s\nwant %s", got, want)
	}
}

// countingDialer is the egress dialer, on loopback, counting connections.
type countingDialer struct{ n atomic.Int32 }

func (d *countingDialer) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	d.n.Add(1)
	var nd net.Dialer
	return nd.DialContext(ctx, network, addr)
}
func (d *countingDialer) ListenPacket(context.Context, string, string) (net.PacketConn, error) {
	return nil, errors.New("no")
}
func (d *countingDialer) LookupNetIP(context.Context, string) ([]netip.Addr, error) {
	return nil, errors.New("no")
}

// fake starts gofakes3 with a bucket.
func fake(t testing.TB, bucket string) string {
	backend := s3mem.New()
	if bucket != "" {
		backend.CreateBucket(bucket)
	}
	srv := httptest.NewServer(gofakes3.New(backend).Server())
	t.Cleanup(srv.Close)
	return srv.URL
}

func TestStoreAgainstGofakes3(t *testing.T) {
	ctx := context.Background()
	d := &countingDialer{}
	s, err := New(Config{Endpoint: fake(t, "backups"), Bucket: "backups", Prefix: "box1", AccessKey: "a", SecretKey: "b"}, d, time.Now)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Check(ctx); err != nil {
		t.Fatal(err)
	}
	data := bytes.Repeat([]byte("0123456789"), 1000)
	if err := s.Put(ctx, "data/ab/abcdef", data); err != nil {
		t.Fatal(err)
	}
	if got, err := s.Get(ctx, "data/ab/abcdef"); err != nil || !bytes.Equal(got, data) {
		t.Fatalf("get: %d bytes, %v", len(got), err)
	}
	if got, err := s.GetRange(ctx, "data/ab/abcdef", 15, 10); err != nil || string(got) != "5678901234" {
		t.Fatalf("range: %q %v", got, err)
	}
	if got, err := s.GetRange(ctx, "data/ab/abcdef", -4, 4); err != nil || string(got) != "6789" {
		t.Fatalf("suffix range: %q %v", got, err)
	}
	if _, err := s.Get(ctx, "nothing"); !errors.Is(err, target.ErrNotFound) {
		t.Fatalf("a missing object: %v", err)
	}
	for i := 0; i < 1003; i++ {
		s.Put(ctx, fmt.Sprintf("index/%04d", i), []byte("x"))
	}
	objs, err := s.List(ctx, "index/")
	if err != nil || len(objs) != 1003 || objs[0].Name != "index/0000" || objs[0].Size != 1 {
		t.Fatalf("list over two pages: %d %v", len(objs), err)
	}
	if err := s.Delete(ctx, "index/0000"); err != nil {
		t.Fatal(err)
	}
	if err := s.Delete(ctx, "index/0000"); err != nil {
		t.Fatalf("deleting twice: %v", err)
	}
	if err := s.Put(ctx, "../escape", data); err == nil {
		t.Fatal("an object name with .. was written")
	}
	if d.n.Load() == 0 {
		t.Fatal("the store did not use the egress dialer")
	}
	// A missing bucket is named.
	s2, _ := New(Config{Endpoint: fake(t, ""), Bucket: "nope", AccessKey: "a", SecretKey: "b"}, d, time.Now)
	if err := s2.Check(ctx); err == nil || !strings.Contains(err.Error(), "NoSuchBucket") {
		t.Fatalf("a missing bucket: %v", err)
	}
	// Without the VPN, nothing leaves.
	s3, _ := New(Config{Endpoint: fake(t, "backups"), Bucket: "backups", AccessKey: "a", SecretKey: "b"}, egress.Closed{Reason: "the VPN is down"}, time.Now)
	if err := s3.Put(ctx, "config", data); !errors.Is(err, egress.ErrNoEgress) {
		t.Fatalf("without the VPN: %v", err)
	}
}

func TestConfig(t *testing.T) {
	for _, c := range []Config{
		{Endpoint: "s3.example.com", Bucket: "b", AccessKey: "a", SecretKey: "s"},
		{Endpoint: "https://s3.example.com/path", Bucket: "b", AccessKey: "a", SecretKey: "s"},
		{Endpoint: "https://s3.example.com", Bucket: "", AccessKey: "a", SecretKey: "s"},
		{Endpoint: "https://s3.example.com", Bucket: "b"},
		{Endpoint: "https://s3.example.com", Bucket: "b", AccessKey: "a", SecretKey: "s", Prefix: "../x"},
		{Endpoint: "https://s3.example.com", Bucket: "b", AccessKey: "a", SecretKey: "s", CA: "junk"},
	} {
		if err := c.Validate(); err == nil {
			t.Errorf("%+v accepted", c)
		}
	}
}
