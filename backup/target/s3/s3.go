// Package s3 keeps backups in S3-compatible storage (AWS S3, Backblaze B2,
// Wasabi, MinIO, versitygw, …), reached only through the box's egress dialer
// (the external VPN): it has no other way to open a connection. Requests are
// signed with AWS Signature Version 4 at the time of the box's own clock
// (synced through the VPN, which a board without a real-time clock needs),
// and TLS certificates are checked at that time too.
//
// It speaks the few calls a backup repository needs: PUT, GET (with Range),
// ListObjectsV2, DELETE, and HEAD of the bucket. The backup room builds it
// from the owner's settings.
package s3

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"time"

	"github.com/redoubt/redoubt/backup/target"
	"github.com/redoubt/redoubt/vpn/egress"
)

// Config is where the bucket is and how to reach it.
type Config struct {
	// Endpoint is the service's URL: https://s3.eu-central-1.amazonaws.com,
	// https://s3.us-west-004.backblazeb2.com, https://minio.example.org:9000.
	Endpoint string `json:"endpoint"`
	// Region (default us-east-1).
	Region string `json:"region,omitempty"`
	Bucket string `json:"bucket"`
	// Prefix puts the repository under a folder of the bucket ("redoubt/").
	Prefix    string `json:"prefix,omitempty"`
	AccessKey string `json:"access_key"`
	SecretKey string `json:"secret_key"`
	// VirtualHost addresses the bucket as bucket.endpoint rather than
	// endpoint/bucket.
	VirtualHost bool `json:"virtual_host,omitempty"`
	// CA is a PEM certificate to trust besides the system's (a self-hosted
	// server).
	CA string `json:"ca,omitempty"`
}

// Validate names the bad field.
func (c Config) Validate() error {
	u, err := url.Parse(c.Endpoint)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || (u.Path != "" && u.Path != "/") {
		return fmt.Errorf("s3 endpoint %q: want https://host[:port], without a path", c.Endpoint)
	}
	if c.Bucket == "" || len(c.Bucket) > 63 || strings.ContainsAny(c.Bucket, "/ ") {
		return fmt.Errorf("s3 bucket %q: want a bucket name (3 to 63 letters, digits, dots, dashes)", c.Bucket)
	}
	if c.AccessKey == "" || c.SecretKey == "" {
		return errors.New("s3: the access key and the secret key are both needed")
	}
	if strings.HasPrefix(c.Prefix, "/") || strings.Contains(c.Prefix, "..") {
		return fmt.Errorf("s3 prefix %q: want a relative folder such as redoubt/", c.Prefix)
	}
	if c.CA != "" && !x509.NewCertPool().AppendCertsFromPEM([]byte(c.CA)) {
		return errors.New("s3 ca: not a PEM certificate")
	}
	return nil
}

// Store is a bucket (and prefix) as a target.Store.
type Store struct {
	cfg  Config
	base *url.URL
	hc   *http.Client
	now  func() time.Time
}

// New makes the store. Every connection goes through d; now is the clock
// requests are signed and certificates checked with.
func New(cfg Config, d egress.Dialer, now func() time.Time) (*Store, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Region == "" {
		cfg.Region = "us-east-1"
	}
	if cfg.Prefix != "" && !strings.HasSuffix(cfg.Prefix, "/") {
		cfg.Prefix += "/"
	}
	base, _ := url.Parse(strings.TrimSuffix(cfg.Endpoint, "/"))
	tr := egress.Transport(d)
	pool, err := x509.SystemCertPool()
	if err != nil || pool == nil {
		pool = x509.NewCertPool()
	}
	if cfg.CA != "" {
		pool.AppendCertsFromPEM([]byte(cfg.CA))
	}
	tr.TLSClientConfig = &tls.Config{RootCAs: pool, Time: now, MinVersion: tls.VersionTLS12}
	tr.MaxIdleConnsPerHost = 8
	return &Store{cfg: cfg, base: base, hc: &http.Client{Transport: tr, Timeout: 10 * time.Minute}, now: now}, nil
}

// String implements target.Store.
func (s *Store) String() string {
	return fmt.Sprintf("s3 %s/%s/%s", s.cfg.Endpoint, s.cfg.Bucket, s.cfg.Prefix)
}

// objectURL addresses key in the bucket.
func (s *Store) objectURL(key string, q url.Values) *url.URL {
	u := *s.base
	if s.cfg.VirtualHost {
		u.Host = s.cfg.Bucket + "." + u.Host
		u.Path = "/" + key
	} else {
		u.Path = "/" + s.cfg.Bucket + "/" + key
	}
	if q != nil {
		u.RawQuery = q.Encode()
	}
	return &u
}

// Error is what the service answered.
type Error struct {
	Status  int
	Code    string
	Message string
	Op      string
}

func (e *Error) Error() string {
	hint := ""
	switch e.Code {
	case "SignatureDoesNotMatch":
		hint = ": the secret key is wrong"
	case "InvalidAccessKeyId":
		hint = ": the access key is not known to this service"
	case "AccessDenied":
		hint = ": the key may not do this in this bucket"
	case "NoSuchBucket":
		hint = ": create the bucket first"
	case "RequestTimeTooSkewed":
		hint = ": the box's clock and the service's disagree"
	}
	msg := e.Message
	if msg != "" {
		msg = " (" + msg + ")"
	}
	return fmt.Sprintf("s3 %s: %d %s%s%s", e.Op, e.Status, e.Code, msg, hint)
}

func (s *Store) do(ctx context.Context, op, method string, u *url.URL, body []byte, hdr http.Header) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, method, u.String(), bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	if body == nil {
		req.Body = http.NoBody
	}
	req.ContentLength = int64(len(body))
	for k, v := range hdr {
		req.Header[k] = v
	}
	Sign(req, body, s.cfg.AccessKey, s.cfg.SecretKey, s.cfg.Region, s.now())
	resp, err := s.hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("s3 %s: %w", op, err)
	}
	if resp.StatusCode >= 300 {
		defer resp.Body.Close()
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
		var x struct {
			Code    string `xml:"Code"`
			Message string `xml:"Message"`
		}
		xml.Unmarshal(b, &x)
		if x.Code == "" {
			x.Code = http.StatusText(resp.StatusCode)
		}
		e := &Error{Status: resp.StatusCode, Code: x.Code, Message: x.Message, Op: op}
		if resp.StatusCode == http.StatusNotFound && (x.Code == "NoSuchKey" || x.Code == "Not Found" || method == http.MethodHead) {
			return nil, fmt.Errorf("%w: %w", target.ErrNotFound, e)
		}
		return nil, e
	}
	return resp, nil
}

// Put implements target.Store: a single PUT, which S3 makes visible whole or
// not at all.
func (s *Store) Put(ctx context.Context, name string, data []byte) error {
	if err := target.CheckName(name); err != nil {
		return err
	}
	hdr := http.Header{"Content-Type": {"application/octet-stream"}}
	resp, err := s.do(ctx, "put "+name, http.MethodPut, s.objectURL(s.cfg.Prefix+name, nil), data, hdr)
	if err != nil {
		return err
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return nil
}

// Get implements target.Store.
func (s *Store) Get(ctx context.Context, name string) ([]byte, error) {
	return s.get(ctx, name, "")
}

// GetRange implements target.Store.
func (s *Store) GetRange(ctx context.Context, name string, off, n int64) ([]byte, error) {
	r := fmt.Sprintf("bytes=%d-%d", off, off+n-1)
	if off < 0 {
		r = fmt.Sprintf("bytes=%d", off)
	}
	b, err := s.get(ctx, name, r)
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > n {
		b = b[:n] // a server that ignored the range
	}
	return b, nil
}

func (s *Store) get(ctx context.Context, name, rng string) ([]byte, error) {
	if err := target.CheckName(name); err != nil {
		return nil, err
	}
	hdr := http.Header{}
	if rng != "" {
		hdr.Set("Range", rng)
	}
	resp, err := s.do(ctx, "get "+name, http.MethodGet, s.objectURL(s.cfg.Prefix+name, nil), nil, hdr)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<30))
	if err != nil {
		return nil, fmt.Errorf("s3 get %s: %w", name, err)
	}
	return b, nil
}

// List implements target.Store (ListObjectsV2, page by page).
func (s *Store) List(ctx context.Context, prefix string) ([]target.Object, error) {
	var out []target.Object
	token := ""
	for page := 0; page < 100000; page++ {
		q := url.Values{"list-type": {"2"}, "prefix": {s.cfg.Prefix + prefix}, "max-keys": {"1000"}}
		if token != "" {
			q.Set("continuation-token", token)
		}
		u := *s.base
		if s.cfg.VirtualHost {
			u.Host = s.cfg.Bucket + "." + u.Host
			u.Path = "/"
		} else {
			u.Path = "/" + s.cfg.Bucket
		}
		u.RawQuery = q.Encode()
		resp, err := s.do(ctx, "list "+prefix, http.MethodGet, &u, nil, nil)
		if err != nil {
			if errors.Is(err, target.ErrNotFound) {
				return nil, fmt.Errorf("s3 list: the bucket %s does not exist: %w", s.cfg.Bucket, err)
			}
			return nil, err
		}
		var r struct {
			Contents []struct {
				Key  string `xml:"Key"`
				Size int64  `xml:"Size"`
			} `xml:"Contents"`
			IsTruncated           bool   `xml:"IsTruncated"`
			NextContinuationToken string `xml:"NextContinuationToken"`
		}
		err = xml.NewDecoder(io.LimitReader(resp.Body, 64<<20)).Decode(&r)
		resp.Body.Close()
		if err != nil {
			return nil, fmt.Errorf("s3 list %s: the answer does not read: %w", prefix, err)
		}
		for _, c := range r.Contents {
			name := strings.TrimPrefix(c.Key, s.cfg.Prefix)
			if target.CheckName(name) == nil {
				out = append(out, target.Object{Name: name, Size: c.Size})
			}
		}
		if !r.IsTruncated || r.NextContinuationToken == "" {
			break
		}
		token = r.NextContinuationToken
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// Delete implements target.Store.
func (s *Store) Delete(ctx context.Context, name string) error {
	if err := target.CheckName(name); err != nil {
		return err
	}
	resp, err := s.do(ctx, "delete "+name, http.MethodDelete, s.objectURL(s.cfg.Prefix+name, nil), nil, nil)
	if err != nil {
		if errors.Is(err, target.ErrNotFound) {
			return nil
		}
		return err
	}
	resp.Body.Close()
	return nil
}

// Check asks for the bucket: it exists and the keys may read it.
func (s *Store) Check(ctx context.Context) error {
	_, err := s.List(ctx, "config")
	return err
}

// Sign signs req (whose body is body) with AWS Signature Version 4 at t.
func Sign(req *http.Request, body []byte, accessKey, secretKey, region string, t time.Time) {
	t = t.UTC()
	amzDate := t.Format("20060102T150405Z")
	day := t.Format("20060102")
	sum := sha256.Sum256(body)
	payload := hex.EncodeToString(sum[:])
	req.Header.Set("X-Amz-Date", amzDate)
	req.Header.Set("X-Amz-Content-Sha256", payload)
	host := req.URL.Host
	if req.Host != "" {
		host = req.Host
	}
	// Canonical headers: host and every x-amz-*, range, content-type.
	hdrs := map[string]string{"host": host}
	for k, v := range req.Header {
		lk := strings.ToLower(k)
		if strings.HasPrefix(lk, "x-amz-") || lk == "range" || lk == "content-type" || lk == "content-md5" {
			hdrs[lk] = strings.TrimSpace(strings.Join(v, ","))
		}
	}
	var names []string
	for k := range hdrs {
		names = append(names, k)
	}
	sort.Strings(names)
	var canonHdrs strings.Builder
	for _, k := range names {
		canonHdrs.WriteString(k + ":" + hdrs[k] + "\n")
	}
	signed := strings.Join(names, ";")
	canonical := strings.Join([]string{req.Method, escapePath(req.URL.EscapedPath()), canonicalQuery(req.URL.Query()), canonHdrs.String(), signed, payload}, "\n")
	scope := day + "/" + region + "/s3/aws4_request"
	h := sha256.Sum256([]byte(canonical))
	toSign := "AWS4-HMAC-SHA256\n" + amzDate + "\n" + scope + "\n" + hex.EncodeToString(h[:])
	k := hmacSHA256([]byte("AWS4"+secretKey), day)
	k = hmacSHA256(k, region)
	k = hmacSHA256(k, "s3")
	k = hmacSHA256(k, "aws4_request")
	sig := hex.EncodeToString(hmacSHA256(k, toSign))
	req.Header.Set("Authorization", "AWS4-HMAC-SHA256 Credential="+accessKey+"/"+scope+", SignedHeaders="+signed+", Signature="+sig)
}

func hmacSHA256(key []byte, s string) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(s))
	return m.Sum(nil)
}

// escapePath encodes a path as SigV4 wants: every byte but unreserved ones
// and '/'.
func escapePath(p string) string {
	raw, err := url.PathUnescape(p)
	if err != nil {
		raw = p
	}
	var b strings.Builder
	for i := 0; i < len(raw); i++ {
		c := raw[i]
		if c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.' || c == '~' || c == '/' {
			b.WriteByte(c)
		} else {
			fmt.Fprintf(&b, "%%%02X", c)
		}
	}
	if b.Len() == 0 {
		return "/"
	}
	return b.String()
}

func canonicalQuery(q url.Values) string {
	var keys []string
	for k := range q {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var parts []string
	for _, k := range keys {
		vs := q[k]
		sort.Strings(vs)
		for _, v := range vs {
			parts = append(parts, awsEscape(k)+"="+awsEscape(v))
		}
	}
	return strings.Join(parts, "&")
}

func awsEscape(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.' || c == '~' {
			b.WriteByte(c)
		} else {
			fmt.Fprintf(&b, "%%%02X", c)
		}
	}
	return b.String()
}
