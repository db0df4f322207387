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
