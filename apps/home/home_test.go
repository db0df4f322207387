package home

import (
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestPage(t *testing.T) {
	h := Handler(Info{BoxName: "kestrel", Apps: func() []App {
		return []App{{Name: "Files", URL: "https://files.kestrel.example/", What: "shared files"}}
	}},
		slog.New(slog.DiscardHandler))
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/", nil))
	body, _ := io.ReadAll(rec.Body)
	if rec.Code != http.StatusOK || !strings.Contains(string(body), "kestrel") || !strings.Contains(string(body), "Files") {
		t.Fatalf("%d %s", rec.Code, body)
	}
	if !strings.Contains(rec.Header().Get("Content-Security-Policy"), "default-src 'none'") {
		t.Error("no CSP")
	}
	rec = httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/settings", nil))
	if rec.Code != http.StatusNotFound {
		t.Errorf("the members' page serves other paths: %d", rec.Code)
	}
}

func TestSpeed(t *testing.T) {
	h := Handler(Info{BoxName: "kestrel"}, slog.New(slog.DiscardHandler))
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/speed?mb=3", nil))
	if rec.Code != http.StatusOK || rec.Body.Len() != 3<<20 || rec.Header().Get("Content-Length") != "3145728" {
		t.Fatalf("3 MB: %d, %d bytes, length %q", rec.Code, rec.Body.Len(), rec.Header().Get("Content-Length"))
	}
	if rec = httptest.NewRecorder(); true {
		h.ServeHTTP(rec, httptest.NewRequest("GET", "/speed", nil))
	}
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
