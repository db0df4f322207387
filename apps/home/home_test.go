package home

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/redoubt/redoubt/apps"
)

func TestManifest(t *testing.T) {
	m := New(Info{}).Manifest()
	if m.ID != "home" || !m.Exposed(apps.Tailnet) || m.Exposed(apps.LAN) {
		t.Errorf("%+v", m)
	}
	if w, _ := m.Web(); w.Port != 443 {
		t.Errorf("the members' page is on 443: %d", w.Port)
	}
	if !apps.NewOptions(m, nil).Bool(apps.OptAutostart) {
		t.Error("the members' page does not start by itself")
	}
}

func TestPage(t *testing.T) {
	h, err := Handler(Info{BoxName: func() string { return "kestrel" }, Apps: func() []Link {
		return []Link{{Name: "Files", URL: "https://kestrel.team.example:8443/", What: "shared files"}}
	}}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	rec := httptest.NewRecorder()
	req := httptest.NewRequest("GET", "/", nil)
	req = req.WithContext(apps.WithCaller(context.Background(), apps.Caller{Member: apps.Member{ID: "m1", Name: "alex"}, Device: "alex-laptop"}))
	h.ServeHTTP(rec, req)
	body, _ := io.ReadAll(rec.Body)
	for _, want := range []string{"<h1>kestrel</h1>", "Files", "as <strong>alex</strong> from alex-laptop"} {
		if !strings.Contains(string(body), want) {
			t.Errorf("the page lacks %q:\n%s", want, body)
		}
	}
	if rec.Code != http.StatusOK || !strings.Contains(rec.Header().Get("Content-Security-Policy"), "default-src 'none'") {
		t.Errorf("%d %v", rec.Code, rec.Header())
	}
	for path, code := range map[string]int{"/settings": 404, "/static/home.css": 200, "/static/../home.go": 307, "/static/%2e%2e/home.go": 404} {
		rec = httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest("GET", path, nil))
		if rec.Code != code || (code != 200 && strings.Contains(rec.Body.String(), "package home")) {
			t.Errorf("%s: %d", path, rec.Code)
		}
	}
}

func TestSpeed(t *testing.T) {
	h, _ := Handler(Info{}, slog.New(slog.DiscardHandler))
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/speed?mb=3", nil))
	if rec.Code != http.StatusOK || rec.Body.Len() != 3<<20 || rec.Header().Get("Content-Length") != "3145728" {
		t.Fatalf("3 MB: %d, %d bytes, length %q", rec.Code, rec.Body.Len(), rec.Header().Get("Content-Length"))
	}
	rec = httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/speed", nil))
	if rec.Body.Len() != 25<<20 {
		t.Errorf("the default: %d bytes", rec.Body.Len())
	}
	for _, bad := range []string{"0", "-1", "1001", "lots", "1e3"} {
		rec = httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest("GET", "/speed?mb="+bad, nil))
		if rec.Code != http.StatusBadRequest || !strings.Contains(rec.Body.String(), "mb=") {
			t.Errorf("mb=%s: %d %s", bad, rec.Code, rec.Body.String())
		}
	}
}
