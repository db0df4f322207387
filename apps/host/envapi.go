package host

import (
	"errors"
	"io"
	"net/http"
	"strings"

	"github.com/redoubt/redoubt/apps"
	"github.com/redoubt/redoubt/apps/store"
	"github.com/redoubt/redoubt/apps/web"
)

// envAPI is an external app's Env, over HTTP on its env.sock:
//
//	GET    /v1/records?prefix=P      the keys, JSON
//	GET    /v1/records/KEY           a value (404 if none)
//	PUT    /v1/records/KEY           store the body as the value
//	DELETE /v1/records/KEY
//	GET    /v1/blobs?prefix=P        the blobs, JSON (name, size, modified, etag)
//	GET    /v1/blobs/NAME            a blob (Range requests work)
//	PUT    /v1/blobs/NAME            store the body as a blob, streamed, committed at its end
//	DELETE /v1/blobs/NAME
//	GET    /v1/usage                 the storage's usage, JSON
//	GET    /v1/members               the team's members, JSON
//	GET    /v1/options               the option values, JSON
//	GET    /v1/origins               the app's origins, JSON
//
// Errors are JSON ({"error": …}): 404 not found, 423 the box is locked, 507
// the quota or the disk is full, 400 a bad key.
func envAPI(e *env) http.Handler {
	mux := http.NewServeMux()
	fail := func(w http.ResponseWriter, r *http.Request, err error) {
		status := http.StatusBadRequest
		switch {
		case errors.Is(err, apps.ErrNotFound):
			status = http.StatusNotFound
		case errors.Is(err, apps.ErrLocked), errors.Is(err, apps.ErrStopped):
			status = http.StatusLocked
		case errors.Is(err, apps.ErrQuota), errors.Is(err, apps.ErrDiskFull):
			status = http.StatusInsufficientStorage
		}
		web.ErrorOf(w, nil, status, err)
	}
	mux.HandleFunc("GET /v1/records", func(w http.ResponseWriter, r *http.Request) {
		keys, err := e.Records().List(r.URL.Query().Get("prefix"))
		if err != nil {
			fail(w, r, err)
			return
		}
		web.WriteJSON(w, http.StatusOK, keys)
	})
	mux.HandleFunc("GET /v1/records/{key...}", func(w http.ResponseWriter, r *http.Request) {
		v, err := e.Records().Get(r.PathValue("key"))
		if err != nil {
			fail(w, r, err)
			return
		}
		w.Header().Set("Content-Type", "application/octet-stream")
		w.Write(v)
	})
	mux.HandleFunc("PUT /v1/records/{key...}", func(w http.ResponseWriter, r *http.Request) {
		v, err := io.ReadAll(http.MaxBytesReader(w, r.Body, store.MaxRecord))
		if err == nil {
			err = e.Records().Put(r.PathValue("key"), v)
		}
		if err != nil {
			fail(w, r, err)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	})
	mux.HandleFunc("DELETE /v1/records/{key...}", func(w http.ResponseWriter, r *http.Request) {
		if err := e.Records().Delete(r.PathValue("key")); err != nil {
			fail(w, r, err)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	})
	mux.HandleFunc("GET /v1/blobs", func(w http.ResponseWriter, r *http.Request) {
		list, err := e.Blobs().List(r.URL.Query().Get("prefix"))
		if err != nil {
			fail(w, r, err)
			return
		}
		web.WriteJSON(w, http.StatusOK, list)
	})
	mux.HandleFunc("GET /v1/blobs/{name...}", func(w http.ResponseWriter, r *http.Request) {
		b, err := e.Blobs().Open(r.PathValue("name"))
		if err != nil {
			fail(w, r, err)
			return
		}
		defer b.Close()
		info := b.Info()
		w.Header().Set("ETag", info.ETag)
		w.Header().Set("Content-Type", "application/octet-stream")
		http.ServeContent(w, r, "", info.Modified, b)
	})
	mux.HandleFunc("PUT /v1/blobs/{name...}", func(w http.ResponseWriter, r *http.Request) {
		u, err := e.Blobs().Create()
		if err != nil {
			fail(w, r, err)
			return
		}
		if _, err := io.Copy(u, r.Body); err != nil {
			u.Abort()
			fail(w, r, err)
			return
		}
		info, err := u.Commit(r.PathValue("name"))
		if err != nil {
			u.Abort()
			fail(w, r, err)
			return
		}
		web.WriteJSON(w, http.StatusCreated, info)
	})
	mux.HandleFunc("DELETE /v1/blobs/{name...}", func(w http.ResponseWriter, r *http.Request) {
		if err := e.Blobs().Delete(r.PathValue("name")); err != nil {
			fail(w, r, err)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	})
	mux.HandleFunc("GET /v1/usage", func(w http.ResponseWriter, r *http.Request) {
		web.WriteJSON(w, http.StatusOK, e.Blobs().Usage())
	})
	mux.HandleFunc("GET /v1/members", func(w http.ResponseWriter, r *http.Request) {
		web.WriteJSON(w, http.StatusOK, e.Members())
	})
	mux.HandleFunc("GET /v1/options", func(w http.ResponseWriter, r *http.Request) {
		web.WriteJSON(w, http.StatusOK, e.Options().Values())
	})
	mux.HandleFunc("GET /v1/origins", func(w http.ResponseWriter, r *http.Request) {
		web.WriteJSON(w, http.StatusOK, e.Origins())
	})
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.Contains(r.URL.Path, "\x00") {
			http.Error(w, "bad path", http.StatusBadRequest)
			return
		}
		mux.ServeHTTP(w, r)
	})
}
