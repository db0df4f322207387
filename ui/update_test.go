package ui

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redoubt/redoubt/board/bundle"
	"github.com/redoubt/redoubt/board/layout"
	"github.com/redoubt/redoubt/board/update"
)

type fakeUpdates struct {
	mu        sync.Mutex
	got       []byte
	err       error
	restarted chan struct{}
}

func (f *fakeUpdates) Status() (update.Status, error) {
	return update.Status{Running: update.Image{Board: layout.PC, Version: "v1.0.0", Slot: layout.A}, LastGood: "v1.0.0",
		History: []update.Event{{At: time.Unix(1767225600, 0), Outcome: update.OutcomeRolledBack, Version: "v0.9.9", Detail: "dns: no answer"}}}, nil
}

func (f *fakeUpdates) Apply(_ context.Context, r io.Reader, source string) (bundle.Manifest, error) {
	b, _ := io.ReadAll(r)
	f.mu.Lock()
	f.got = b
	f.mu.Unlock()
	if f.err != nil {
		return bundle.Manifest{}, f.err
	}
	return bundle.Manifest{Version: "v1.1.0"}, nil
}

func (f *fakeUpdates) Restart() error { close(f.restarted); return nil }

func (r *rig) upload(csrf string, content []byte) resp {
	var body bytes.Buffer
	mw := multipart.NewWriter(&body)
	fw, _ := mw.CreateFormFile("file", "update.rdu")
	fw.Write(content)
	mw.Close()
	req, _ := http.NewRequest("POST", r.secure.URL+"/update?csrf="+csrf, &body)
	req.Header.Set("Content-Type", mw.FormDataContentType())
	res, err := r.client.Do(req)
	if err != nil {
		r.t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return resp{status: res.StatusCode, body: string(b), header: res.Header}
}

func TestUpdatePage(t *testing.T) {
	r := newRig(t, t.TempDir())
	r.setUp()
	csrf := r.signIn(goodPass)
	if res := r.do("GET", r.secure.URL, "/update", nil, nil); res.status != http.StatusNotFound {
		t.Fatalf("a box not started from an image: %d", res.status)
	}
	f := &fakeUpdates{restarted: make(chan struct{})}
	r.u.d.Updates = f
	page := r.do("GET", r.secure.URL, "/update", nil, nil)
	for _, want := range []string{"v1.0.0", "Went back to the previous version", "dns: no answer", `enctype="multipart/form-data"`} {
		if !strings.Contains(page.body, want) {
			t.Fatalf("the page lacks %q:\n%s", want, page.body)
		}
	}
	if res := r.upload("forged", []byte("x")); res.status != http.StatusForbidden || f.got != nil {
		t.Fatalf("without the form's token: %d", res.status)
	}
	f.err = fmt.Errorf("%w (test)", bundle.ErrSignature)
	if res := r.upload(csrf, []byte("bad")); res.status != http.StatusForbidden || !strings.Contains(res.body, "refused") {
		t.Fatalf("a badly signed update: %d %s", res.status, res.body)
	}
	f.err = nil
	res := r.upload(csrf, []byte("the update file"))
	if res.status != http.StatusOK || !strings.Contains(res.body, "Updating to v1.1.0") || string(f.got) != "the update file" {
		t.Fatalf("%d %s", res.status, res.body)
	}
	select {
	case <-f.restarted:
	case <-time.After(5 * time.Second):
		t.Fatal("the box did not restart into the update")
	}
	// Signed out: no upload.
	r.client.Jar = nil
	if res := r.upload(csrf, []byte("x")); res.status != http.StatusUnauthorized {
		t.Fatalf("signed out: %d", res.status)
	}
}
