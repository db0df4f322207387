package home

import (
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/redoubt/redoubt/apps"
)

func TestLogAndSharePages(t *testing.T) {
	saved := ""
	h, err := Handler(Info{
		BoxName: func() string { return "kestrel" },
		Audit:   http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("api " + r.URL.Path)) }),
		Share: func(m string) (Share, bool) {
			return Share{Share: "RS-ABCDE-FGHIJ", Number: 2, K: 2, N: 3, Set: "A1B2C3D4"}, m == "alex"
		},
		ShareSaved: func(m string) error { saved = m; return nil },
	}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	as := func(r *http.Request) *http.Request {
		return r.WithContext(apps.WithCaller(context.Background(), apps.Caller{Member: apps.Member{ID: "m1", Name: "alex"}, Device: "alex-laptop"}))
	}
	get := func(path string) *httptest.ResponseRecorder {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, as(httptest.NewRequest("GET", path, nil)))
		return rec
	}
	if rec := get("/"); !strings.Contains(rec.Body.String(), `href="/audit"`) || !strings.Contains(rec.Body.String(), `href="/share"`) {
		t.Fatalf("the page links neither the log nor the share:\n%s", rec.Body)
	}
	if rec := get("/audit"); !strings.Contains(rec.Body.String(), `data-member="alex"`) || !strings.Contains(rec.Body.String(), `src="/static/audit.mjs"`) {
		t.Fatalf("the log's page:\n%s", rec.Body)
	}
	if rec := get("/static/audit.mjs"); rec.Code != 200 || !strings.Contains(rec.Header().Get("Content-Type"), "javascript") {
		t.Fatalf("the verifier script: %d %q", rec.Code, rec.Header().Get("Content-Type"))
	}
	if rec := get("/audit/api/checkpoint"); rec.Body.String() != "api /checkpoint" {
		t.Fatalf("the log's API: %q", rec.Body)
	}
	rec := get("/share")
	if !strings.Contains(rec.Body.String(), "RS-ABCDE-FGHIJ") || !strings.Contains(rec.Body.String(), "data:image/png;base64,") ||
		!strings.Contains(rec.Header().Get("Content-Security-Policy"), "img-src 'self' data:") {
		t.Fatalf("the share page:\n%s", rec.Body)
	}
	// Saving: from the page only.
	cross := httptest.NewRequest("POST", "/share/saved", nil)
	cross.Header.Set("Sec-Fetch-Site", "cross-site")
	rec = httptest.NewRecorder()
	h.ServeHTTP(rec, as(cross))
	if rec.Code != http.StatusForbidden || saved != "" {
		t.Fatalf("a cross-site save: %d %q", rec.Code, saved)
	}
	same := httptest.NewRequest("POST", "/share/saved", nil)
	same.Header.Set("Sec-Fetch-Site", "same-origin")
	rec = httptest.NewRecorder()
	h.ServeHTTP(rec, as(same))
	if rec.Code != http.StatusSeeOther || saved != "alex" {
		t.Fatalf("saving: %d %q", rec.Code, saved)
	}
	// Not a member: no share, and no saving.
	rec = httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("POST", "/share/saved", nil))
	if rec.Code != http.StatusForbidden {
		t.Fatalf("saving as nobody: %d", rec.Code)
	}
}
