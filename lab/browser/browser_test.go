package browser_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"html"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/network"
	"golang.org/x/sys/unix"

	"github.com/redoubt/redoubt/lab"
	"github.com/redoubt/redoubt/lab/browser"
	"github.com/redoubt/redoubt/lab/labtest"
)

func TestMain(m *testing.M) { labtest.Main(m) }

const csp = "default-src 'none'; script-src 'self'; connect-src 'self'; img-src 'self'; style-src 'self'; form-action 'self'"

// pages serves what the helpers are tried on: a form, a page updated live by
// server-sent events, a page with a script error and a CSP violation.
func pages() http.Handler {
	mux := http.NewServeMux()
	page := func(w http.ResponseWriter, title, body string) {
		w.Header().Set("Content-Security-Policy", csp)
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		fmt.Fprintf(w, "<!doctype html><html><head><title>%s</title></head><body>%s</body></html>", title, body)
	}
	js := func(src string) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "text/javascript")
			fmt.Fprint(w, src)
		}
	}
	mux.HandleFunc("GET /favicon.ico", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusNoContent) })
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		page(w, "Form", `<form id="f" method="post" action="/submit">
<input id="name" name="name" required>
<select id="color" name="color"><option value="red">red</option><option value="green">green</option></select>
<button id="go" type="submit">Go</button></form>
<button id="more" type="button">more</button><p id="out">nothing yet</p>
<script src="/form.js"></script>`)
	})
	mux.Handle("GET /form.js", js(`document.getElementById("more").addEventListener("click", () => { document.getElementById("out").textContent = "clicked" })`))
	mux.HandleFunc("POST /submit", func(w http.ResponseWriter, r *http.Request) {
		http.SetCookie(w, &http.Cookie{Name: "session", Value: "s3cret", Path: "/", HttpOnly: true, SameSite: http.SameSiteStrictMode})
		page(w, "Done", "<p id=hello>hello "+html.EscapeString(r.FormValue("name"))+", you like "+html.EscapeString(r.FormValue("color"))+"</p>")
	})
	mux.HandleFunc("GET /whoami", func(w http.ResponseWriter, r *http.Request) {
		c, err := r.Cookie("session")
		v := "nobody"
		if err == nil {
			v = c.Value
		}
		page(w, "Who", "<p id=who>session "+html.EscapeString(v)+"</p>")
	})
	mux.HandleFunc("GET /live", func(w http.ResponseWriter, r *http.Request) {
		page(w, "Live", `<ul id="feed"></ul><script src="/live.js"></script>`)
	})
	mux.Handle("GET /live.js", js(`new EventSource("/events").onmessage = e => {
  const li = document.createElement("li"); li.textContent = e.data; document.getElementById("feed").appendChild(li) }`))
	mux.HandleFunc("GET /events", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		for i := 1; i <= 3; i++ {
			fmt.Fprintf(w, "data: tick %d\n\n", i)
			w.(http.Flusher).Flush()
			select {
			case <-time.After(300 * time.Millisecond):
			case <-r.Context().Done():
				return
			}
		}
		<-r.Context().Done()
	})
	mux.HandleFunc("GET /broken", func(w http.ResponseWriter, r *http.Request) {
		page(w, "Broken", `<p>broken</p><img src="http://`+lab.Tracker.String()+`/pixel.gif"><script src="/broken.js"></script>`)
	})
	mux.Handle("GET /broken.js", js(`console.error("boom"); undefinedFunction()`))
	return mux
}

// serveIn serves h on 127.0.0.1 inside node's namespace (the socket is made
// there, and stays there), over TLS when cert is set, and returns its URL.
func serveIn(t *testing.T, e *labtest.Env, node string, h http.Handler, cert *tls.Certificate) string {
	t.Helper()
	ln, err := listenIn(e.Lab.NS(node))
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second}
	scheme := "http"
	if cert != nil {
		scheme = "https"
		srv.TLSConfig = &tls.Config{Certificates: []tls.Certificate{*cert}}
		ln = tls.NewListener(ln, srv.TLSConfig)
	}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return fmt.Sprintf("%s://%s/", scheme, ln.Addr())
}

// listenIn opens a TCP listener in the network namespace ns, from a thread
// that enters it and comes back (so no thread of the test, the main one
// included, is left there).
func listenIn(ns string) (net.Listener, error) {
	runtime.LockOSThread()
	orig, err := os.Open(fmt.Sprintf("/proc/self/task/%d/ns/net", unix.Gettid()))
	if err != nil {
		runtime.UnlockOSThread()
		return nil, err
	}
	defer orig.Close()
	target, err := os.Open(filepath.Join("/run/netns", ns))
	if err != nil {
		runtime.UnlockOSThread()
		return nil, err
	}
	defer target.Close()
	if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
		runtime.UnlockOSThread()
		return nil, err
	}
	ln, lerr := net.Listen("tcp", "127.0.0.1:0")
	if err := unix.Setns(int(orig.Fd()), unix.CLONE_NEWNET); err != nil {
		// Leave the thread locked: it dies with this goroutine's end.
		return nil, fmt.Errorf("returning from %s: %w", ns, err)
	}
	runtime.UnlockOSThread()
	return ln, lerr
}

func env(t *testing.T) *labtest.Env {
	t.Helper()
	if err := browser.Available(browser.Options{}); err != nil {
		t.Skipf("browser test skipped: %v", err)
	}
	return labtest.SharedLab(t)
}

func TestHelpers(t *testing.T) {
	e := env(t)
	base := serveIn(t, e, lab.Laptop, pages(), nil)
	b := browser.ForTest(t, e.Lab, browser.Options{})

	// A form, filled and submitted as a person would.
	if err := b.Open(base, "#name"); err != nil {
		t.Fatal(err)
	}
	if title, err := b.Title(); err != nil || title != "Form" {
		t.Errorf("title %q, %v", title, err)
	}
	if err := b.Click("#more"); err != nil {
		t.Fatal(err)
	}
	if err := b.WaitTextIn("#out", "clicked"); err != nil {
		t.Error(err)
	}
	if err := b.Fill("#name", "Ada <Lovelace>"); err != nil {
		t.Fatal(err)
	}
	if v, err := b.Value("#name"); err != nil || v != "Ada <Lovelace>" {
		t.Errorf("the name field holds %q (%v)", v, err)
	}
	if err := b.Select("#color", "green"); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Screenshot("form-filled"); err != nil {
		t.Error(err)
	}
	resp, err := b.Submit("#go")
	if err != nil {
		t.Fatal(err)
	}
	if resp == nil || resp.Status != 200 {
		t.Fatalf("submitting: %+v", resp)
	}
	if got, err := b.Text("#hello"); err != nil || got != "hello Ada <Lovelace>, you like green" {
		t.Errorf("after submitting: %q (%v)", got, err)
	}
	if u, err := b.URL(); err != nil || !strings.HasSuffix(u, "/submit") {
		t.Errorf("URL after submitting: %q (%v)", u, err)
	}

	// Cookies: what the server set, and one the test sets.
	cookies, err := b.Cookies(base)
	if err != nil {
		t.Fatal(err)
	}
	var session *network.Cookie
	for _, c := range cookies {
		if c.Name == "session" {
			session = c
		}
	}
	if session == nil || session.Value != "s3cret" || !session.HTTPOnly || session.SameSite != network.CookieSameSiteStrict {
		t.Errorf("session cookie: %+v", session)
	}
	if err := b.SetCookie(network.SetCookieParams{Name: "session", Value: "forged", URL: base}); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Navigate(base + "whoami"); err != nil {
		t.Fatal(err)
	}
	if got, _ := b.Text("#who"); got != "session forged" {
		t.Errorf("the server saw %q, want the cookie the test set", got)
	}

	// Live updates.
	if _, err := b.Navigate(base + "live"); err != nil {
		t.Fatal(err)
	}
	if err := b.WaitText("tick 3"); err != nil {
		t.Error(err)
	}
	var n int
	if err := b.Eval(`document.querySelectorAll("#feed li").length`, &n); err != nil || n != 3 {
		t.Errorf("feed has %d items (%v), want 3", n, err)
	}
	if err := b.Viewport(390, 844, true); err != nil {
		t.Error(err)
	}
	if _, err := b.Screenshot("live-phone"); err != nil {
		t.Error(err)
	}
	if p := b.Problems(); len(p) > 0 {
		t.Errorf("clean pages had problems: %v", p)
	}
	old := b.SetTimeout(time.Second)
	err = b.WaitText("never shown")
	b.SetTimeout(old)
	if err == nil {
		t.Error("WaitText found text that is not there")
	} else {
		t.Logf("WaitText for absent text: %.200s", err)
	}

	// A broken page: each kind of problem is reported.
	if _, err := b.Navigate(base + "broken"); err != nil {
		t.Fatal(err)
	}
	want := map[string]func(browser.Problem) bool{
		"console error": func(p browser.Problem) bool { return p.Kind == "console" && strings.Contains(p.Text, "boom") },
		"exception": func(p browser.Problem) bool {
			return p.Kind == "exception" && strings.Contains(p.Text, "undefinedFunction")
		},
		"csp": browser.Problem.IsCSP,
	}
	deadline := time.Now().Add(3 * time.Second)
	for {
		missing := []string{}
		for name, match := range want {
			found := false
			for _, p := range b.Problems() {
				found = found || match(p)
			}
			if !found {
				missing = append(missing, name)
			}
		}
		if len(missing) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Errorf("not reported: %v; problems:\n%v", missing, b.Problems())
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	for _, p := range b.Problems() {
		t.Logf("problem: %s", p)
	}
	b.ClearProblems()
	if p := b.Problems(); len(p) != 0 {
		t.Errorf("ClearProblems left %v", p)
	}
}

func TestCertificates(t *testing.T) {
	e := env(t)
	caPEM, leaf := testPKI(t)
	base := serveIn(t, e, lab.Laptop, pages(), leaf)
	if err := browser.Available(browser.Options{TrustCA: caPEM}); err != nil {
		t.Skipf("browser test skipped: %v", err)
	}
	for _, tc := range []struct {
		name string
		opts browser.Options
		ok   bool
	}{
		{"untrusted", browser.Options{}, false},
		{"trusted CA", browser.Options{TrustCA: caPEM}, true},
		{"ignore errors", browser.Options{IgnoreCertErrors: true}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := browser.ForTest(t, e.Lab, tc.opts)
			_, err := b.Navigate(base)
			netErr, _ := browser.IsLoadError(err)
			t.Logf("%s: %v", base, err)
			if tc.ok && err != nil {
				t.Errorf("not loaded: %v", err)
			}
			if !tc.ok && netErr != "net::ERR_CERT_AUTHORITY_INVALID" {
				t.Errorf("got %v, want net::ERR_CERT_AUTHORITY_INVALID", err)
			}
		})
	}
}

// testPKI makes a CA and a certificate it signs for 127.0.0.1.
func testPKI(t *testing.T) (caPEM []byte, leaf *tls.Certificate) {
	t.Helper()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	ca := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "lab browser test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, ca, ca, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	leafKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "127.0.0.1"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, KeyUsage: x509.KeyUsageDigitalSignature,
	}
	caCert, _ := x509.ParseCertificate(caDER)
	leafDER, err := x509.CreateCertificate(rand.Reader, tmpl, caCert, &leafKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}),
		&tls.Certificate{Certificate: [][]byte{leafDER}, PrivateKey: leafKey}
}

// TestStartFails checks that a start that times out, or a browser that is not
// there, leaves no process and no profile behind.
func TestStartFails(t *testing.T) {
	e := env(t)
	_, err := browser.Start(context.Background(), e.Lab, browser.Options{Name: t.Name(), StartTimeout: 50 * time.Millisecond, Logf: t.Logf})
	if err == nil {
		t.Fatal("chromium started within 50ms")
	}
	t.Logf("start with a 50ms timeout: %.200s", err)
	_, err = browser.Start(context.Background(), e.Lab, browser.Options{Name: t.Name(), Exec: "/bin/false", Logf: t.Logf})
	if err == nil {
		t.Fatal("/bin/false started as a browser")
	}
	t.Logf("start of /bin/false: %.300s", err)
	if err := browser.Available(browser.Options{Exec: "/nonexistent/chromium"}); err == nil {
		t.Error("Available accepts a missing binary")
	}
	time.Sleep(100 * time.Millisecond)
	profiles, _ := filepath.Glob(filepath.Join(e.Lab.Dir, "browser-*"))
	if len(profiles) > 0 {
		t.Errorf("profiles left behind: %v", profiles)
	}
	procs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, p := range procs {
		b, _ := os.ReadFile(p)
		if strings.Contains(string(b), "--user-data-dir="+e.Lab.Dir) {
			t.Errorf("process left behind: %s: %s", p, strings.ReplaceAll(string(b), "\x00", " "))
		}
	}
}

func TestArtifactsDir(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("REDOUBT_ARTIFACTS", dir)
	got, err := browser.ArtifactsDir("TestX/sub test/../weird:name")
	if err != nil {
		t.Fatal(err)
	}
	want := filepath.Join(dir, "screenshots", "TestX", "sub_test", "_", "weird_name")
	if got != want {
		t.Errorf("ArtifactsDir = %s, want %s", got, want)
	}
	if st, err := os.Stat(got); err != nil || !st.IsDir() {
		t.Errorf("not made: %v", err)
	}
}
