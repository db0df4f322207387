package clipboard

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/redoubt/redoubt/apps"
	"github.com/redoubt/redoubt/apps/apptest"
)

func TestClipboard(t *testing.T) {
	env := apptest.NewEnv(t, New().Manifest())
	h := apptest.Start(t, New(), env)
	alex, sam := apptest.Member("m1", "alex"), apptest.Member("m2", "sam")

	// Live: a page's socket sees what others paste.
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h.ServeHTTP(w, r.WithContext(apps.WithCaller(r.Context(), sam)))
	}))
	defer srv.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ws, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(srv.URL, "http")+"/api/live", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ws.CloseNow()

	resp := apptest.Do(h, alex, "POST", "/api/text", strings.NewReader(`{"text": "the meeting moved to 3pm"}`), "Content-Type", "application/json")
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("paste: %d", resp.StatusCode)
	}
	var e Entry
	json.NewDecoder(resp.Body).Decode(&e)
	if e.By != "member:m1" || e.Who != "alex" || e.From != "alex-phone" {
		t.Errorf("the entry: %+v", e)
	}
	_, msg, err := ws.Read(ctx)
	if err != nil || !bytes.Contains(msg, []byte("the meeting moved")) || !bytes.Contains(msg, []byte(`"added"`)) {
		t.Errorf("live: %s %v", msg, err)
	}

	// A file, streamed into a blob, read back whole and by range.
	data := bytes.Repeat([]byte("0123456789"), 20000)
	resp = apptest.Do(h, apptest.Owner, "PUT", "/api/file?name=notes%0A.txt", bytes.NewReader(data), "Content-Type", "text/plain")
	var f Entry
	json.NewDecoder(resp.Body).Decode(&f)
	if resp.StatusCode != http.StatusCreated || f.Name != "notes_.txt" || f.Size != int64(len(data)) || f.Who != "owner" {
		t.Fatalf("file: %d %+v", resp.StatusCode, f)
	}
	resp = apptest.Do(h, alex, "GET", "/api/entries/"+f.ID+"/file", nil, "Range", "bytes=100-109")
	if b, _ := io.ReadAll(resp.Body); resp.StatusCode != http.StatusPartialContent || string(b) != "0123456789" {
		t.Errorf("range: %d %q", resp.StatusCode, b)
	}
	resp = apptest.Do(h, alex, "GET", "/api/entries", nil)
	var list []Entry
	json.NewDecoder(resp.Body).Decode(&list)
	if len(list) != 2 || list[0].ID != f.ID {
		t.Errorf("list: %+v", list)
	}

	// Only whoever pasted it, or the owner, removes an entry.
	if resp = apptest.Do(h, sam, "DELETE", "/api/entries/"+e.ID, nil); resp.StatusCode != http.StatusForbidden {
		t.Errorf("sam removing alex's entry: %d", resp.StatusCode)
	}
	if resp = apptest.Do(h, alex, "DELETE", "/api/entries/"+e.ID, nil); resp.StatusCode != http.StatusNoContent {
		t.Errorf("alex removing theirs: %d", resp.StatusCode)
	}
	if resp = apptest.Do(h, apptest.Owner, "DELETE", "/api/entries/"+f.ID, nil); resp.StatusCode != http.StatusNoContent {
		t.Errorf("the owner removing a file: %d", resp.StatusCode)
	}
	if u := env.Blobs().Usage(); u.Blobs != 0 {
		t.Errorf("the file's blob stays: %+v", u)
	}

	// Bad input.
	env.SetOption("max-size", "1KB")
	for _, tc := range []struct {
		method, path, body string
		want               int
	}{
		{"POST", "/api/text", `{"text": ""}`, 400},
		{"POST", "/api/text", `{"text": "` + strings.Repeat("a", MaxText+1) + `"}`, 400},
		{"POST", "/api/text", `{"txt": "a"}`, 400},
		{"PUT", "/api/file?name=big", strings.Repeat("x", 2000), 413},
		{"GET", "/api/entries/%2e%2e%2fx/file", "", 404},
		{"GET", "/api/entries/zzzz/file", "", 404},
	} {
		resp := apptest.Do(h, alex, tc.method, tc.path, strings.NewReader(tc.body), "Content-Type", "application/json")
		if resp.StatusCode != tc.want {
			t.Errorf("%s %.40s: %d, want %d", tc.method, tc.path, resp.StatusCode, tc.want)
		}
	}
	// Locked: nothing is read.
	env.Lock()
	if resp = apptest.Do(h, alex, "GET", "/api/entries", nil); resp.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("locked: %d", resp.StatusCode)
	}
}
