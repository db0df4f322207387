package web

import (
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
)

func TestSecure(t *testing.T) {
	var changed int
	h := Secure(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet {
			changed++
		}
	}), Policy{ImgSrc: []string{"blob:"}, Permissions: []string{"camera"}})
	for _, tc := range []struct {
		method string
		hdr    map[string]string
		ok     bool
	}{
		{"GET", map[string]string{"Sec-Fetch-Site": "cross-site"}, true}, // reads are the browser's to refuse
		{"POST", map[string]string{"Sec-Fetch-Site": "same-origin"}, true},
		{"POST", map[string]string{"Sec-Fetch-Site": "cross-site"}, false},
		{"POST", map[string]string{"Sec-Fetch-Site": "same-site"}, false}, // another app of the box
		{"PUT", map[string]string{"Origin": "https://chat.kestrel.home.arpa"}, false},
		{"PROPFIND", map[string]string{"Origin": "https://evil.example"}, false},
		{"PUT", nil, true},    // WebDAV clients, rclone: no browser headers
		{"DELETE", nil, true}, // …
		{"MKCOL", nil, true},  // …
		{"POST", map[string]string{"Origin": "https://files.kestrel.home.arpa"}, true},
	} {
		req := httptest.NewRequest(tc.method, "https://files.kestrel.home.arpa/x", nil)
		for k, v := range tc.hdr {
			req.Header.Set(k, v)
		}
		rec := httptest.NewRecorder()
		before := changed
		h.ServeHTTP(rec, req)
		if ok := rec.Code < 400; ok != tc.ok || (tc.method != "GET" && (changed > before) != tc.ok) {
			t.Errorf("%s %v: %d (changed %v)", tc.method, tc.hdr, rec.Code, changed > before)
		}
		csp := rec.Header().Get("Content-Security-Policy")
		for _, want := range []string{"default-src 'none'", "script-src 'self'", "frame-ancestors 'none'", "img-src 'self' blob:", "connect-src 'self' wss://files.kestrel.home.arpa"} {
			if !strings.Contains(csp, want) {
				t.Errorf("CSP %q lacks %q", csp, want)
			}
		}
		if rec.Header().Get("Cross-Origin-Resource-Policy") != "same-origin" || rec.Header().Get("Strict-Transport-Security") == "" ||
			!strings.Contains(rec.Header().Get("Permissions-Policy"), "camera=(self)") || !strings.Contains(rec.Header().Get("Permissions-Policy"), "microphone=()") {
			t.Errorf("headers: %v", rec.Header())
		}
	}
}

func TestErrorsAndJSON(t *testing.T) {
	rec := httptest.NewRecorder()
	req := httptest.NewRequest("POST", "/x", strings.NewReader(`{"name": 3, "x": 1}`))
	req.Header.Set("Content-Type", "application/json")
	var v struct {
		Name string `json:"name"`
	}
	err := ReadJSON(rec, req, 100, &v)
	ErrorOf(rec, req, 400, err)
	if rec.Code != 400 || rec.Header().Get("Content-Type") != "application/json" || !strings.Contains(rec.Body.String(), `"field":"name"`) {
		t.Errorf("%d %s %s", rec.Code, rec.Header(), rec.Body)
	}
	for body, field := range map[string]string{`{"nope": "a"}`: `"field":"nope"`, `{"name": "` + strings.Repeat("a", 200) + `"}`: "larger than 100 bytes",
		`{"name": "a"}{}`: "one JSON value only", `{`: "not valid JSON"} {
		rec = httptest.NewRecorder()
		req = httptest.NewRequest("POST", "/x", strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		ErrorOf(rec, req, 400, ReadJSON(rec, req, 100, &v))
		if !strings.Contains(rec.Body.String(), field) {
			t.Errorf("%.30s: %s", body, rec.Body)
		}
	}
	rec = httptest.NewRecorder()
	Error(rec, httptest.NewRequest("GET", "/", nil), 404, "No such file.")
	if rec.Header().Get("Content-Type") != "text/plain; charset=utf-8" || rec.Body.String() != "No such file.\n" {
		t.Errorf("for people: %s %q", rec.Header(), rec.Body)
	}
}

func TestTemplatesAndStatic(t *testing.T) {
	tpl, err := NewTemplates(os.DirFS("testdata"), "pages/*.html", []string{"layout.html"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	rec := httptest.NewRecorder()
	if err := tpl.Render(rec, 200, "hello", map[string]string{"Title": "T", "Name": "<b>alex</b>"}); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(rec.Body.String(), "<title>T</title><main><p>Hello, &lt;b&gt;alex&lt;/b&gt;</p>") {
		t.Errorf("%s", rec.Body)
	}
	if _, err := NewTemplates(os.DirFS("testdata"), "nothing/*.html", nil, nil); err == nil {
		t.Error("no pages, no error")
	}
	st := Static(os.DirFS("testdata"), ".")
	rec = httptest.NewRecorder()
	st.ServeHTTP(rec, httptest.NewRequest("GET", "/app.js", nil))
	if rec.Code != 200 || !strings.HasPrefix(rec.Header().Get("Content-Type"), "text/javascript") || rec.Header().Get("ETag") == "" {
		t.Errorf("%d %v", rec.Code, rec.Header())
	}
	req := httptest.NewRequest("GET", "/app.js", nil)
	req.Header.Set("If-None-Match", rec.Header().Get("ETag"))
	rec = httptest.NewRecorder()
	st.ServeHTTP(rec, req)
	if rec.Code != http.StatusNotModified {
		t.Errorf("revalidation: %d", rec.Code)
	}
	for _, p := range []string{"/../web_test.go", "/pages/", "/missing.js", "/%2e%2e/web.go"} {
		rec = httptest.NewRecorder()
		st.ServeHTTP(rec, httptest.NewRequest("GET", p, nil))
		if rec.Code != 404 {
			t.Errorf("%s: %d", p, rec.Code)
		}
	}
}

func TestFeed(t *testing.T) {
	f := NewFeed[int](2)
	fast, cancelFast := f.Subscribe()
	slow, _ := f.Subscribe()
	var got []int
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for v := range fast {
			got = append(got, v)
		}
	}()
	dropped := 0
	for i := range 10 {
		dropped += f.Publish(i)
		time.Sleep(time.Millisecond)
	}
	if dropped != 1 || f.Len() != 1 {
		t.Errorf("dropped %d, %d left", dropped, f.Len())
	}
	n := 0
	for range slow {
		n++
	}
	if n != 2 {
		t.Errorf("the slow one got %d before it was dropped", n)
	}
	cancelFast()
	cancelFast()
	wg.Wait()
	if len(got) != 10 {
		t.Errorf("the fast one got %v", got)
	}
}

func TestLive(t *testing.T) {
	f := NewFeed[string](8)
	mux := http.NewServeMux()
	mux.HandleFunc("/events", func(w http.ResponseWriter, r *http.Request) {
		s, err := NewEventStream(w, r, 2*time.Second)
		if err != nil {
			t.Error(err)
			return
		}
		ch, cancel := f.Subscribe()
		defer cancel()
		Stream(r.Context(), s, "note", ch)
	})
	mux.HandleFunc("/ws", func(w http.ResponseWriter, r *http.Request) {
		c, err := AcceptWebSocket(w, r, WebSocketOptions{ReadLimit: 16})
		if err != nil {
			return
		}
		defer c.CloseNow()
		for {
			typ, b, err := c.Read(r.Context())
			if err != nil {
				return
			}
			c.Write(r.Context(), typ, b)
		}
	})
	srv := httptest.NewServer(mux)
	defer srv.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	req, _ := http.NewRequestWithContext(ctx, "GET", srv.URL+"/events", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	for f.Len() == 0 {
		time.Sleep(time.Millisecond)
	}
	f.Publish("a\nb")
	buf := make([]byte, 200)
	var got string
	for !strings.Contains(got, "data:") {
		n, err := resp.Body.Read(buf)
		if err != nil {
			t.Fatal(err)
		}
		got += string(buf[:n])
	}
	resp.Body.Close()
	if !strings.Contains(got, "retry: 2000") || !strings.Contains(got, "event: note\ndata: \"a\\nb\"\n\n") {
		t.Errorf("events: %q", got)
	}

	c, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(srv.URL, "http")+"/ws", nil)
	if err != nil {
		t.Fatal(err)
	}
	c.Write(ctx, websocket.MessageText, []byte("hi"))
	if _, b, err := c.Read(ctx); err != nil || string(b) != "hi" {
		t.Errorf("echo: %q %v", b, err)
	}
	c.Write(ctx, websocket.MessageText, []byte(strings.Repeat("x", 100)))
	if _, _, err := c.Read(ctx); websocket.CloseStatus(err) != websocket.StatusMessageTooBig || !IsClosed(err) {
		t.Errorf("an oversized message: %v", err)
	}
	// A page of another origin cannot open a socket.
	_, resp, err = websocket.Dial(ctx, "ws"+strings.TrimPrefix(srv.URL, "http")+"/ws",
		&websocket.DialOptions{HTTPHeader: http.Header{"Origin": {"https://chat.kestrel.home.arpa"}}})
	if err == nil || resp == nil || resp.StatusCode != http.StatusForbidden {
		t.Errorf("from another origin: %v", err)
	}
}
