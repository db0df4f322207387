package backup

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"path"
	"strings"

	"github.com/redoubt/redoubt/backup/peerstore"
	"github.com/redoubt/redoubt/backup/repo"
	"github.com/redoubt/redoubt/backup/target/s3"
)

// The owner's API (the local API mounts it at /v1/backup/; the owner's pages
// call the same methods):
//
//	GET    status                          Status
//	GET    settings                        Settings, secrets left out
//	PUT    settings                        Settings (a secret left empty keeps the one set)
//	POST   run                             a backup now (202: started, or waiting and why)
//	POST   drill                           the restore drill now (DrillStatus)
//	GET    key                             the recovery key (text)
//	POST   split                           {"k": 2, "members": ["alice", …]}
//	GET    snapshots?target=               [SnapshotInfo]
//	GET    browse?target=&snapshot=&path=  [Entry]
//	GET    file?target=&snapshot=&path=    the file's bytes
//	POST   restore-item                    {"target", "snapshot", "path"} → RestoredItem
//	GET    peers                           the stores this box keeps for teammates
//	POST   peers                           {"name", "quota": "20GB"} → {"code"} (shown once)
//	DELETE peers/{name}                    remove a teammate's store and its content

// Handler serves the owner's API; peers may be nil (no peer store).
func (e *Engine) Handler(peers *peerstore.Server) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /status", func(w http.ResponseWriter, r *http.Request) { writeJSON(w, e.Status()) })
	mux.HandleFunc("GET /settings", func(w http.ResponseWriter, r *http.Request) {
		s, err := e.Settings()
		if err != nil {
			fail(w, err)
			return
		}
		writeJSON(w, s.Redacted())
	})
	mux.HandleFunc("PUT /settings", func(w http.ResponseWriter, r *http.Request) {
		var s Settings
		if err := json.NewDecoder(io.LimitReader(r.Body, 64<<10)).Decode(&s); err != nil {
			httpError(w, http.StatusBadRequest, "the settings do not read: "+err.Error())
			return
		}
		old, err := e.Settings()
		if err != nil {
			fail(w, err)
			return
		}
		if err := e.SetSettings(s.KeepSecrets(old)); err != nil {
			fail(w, err)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	})
	mux.HandleFunc("POST /run", func(w http.ResponseWriter, r *http.Request) {
		err := e.BackupNow()
		if errors.Is(err, ErrNotConfigured) {
			httpError(w, http.StatusConflict, err.Error())
			return
		}
		msg := "started"
		if err != nil {
			msg = err.Error()
		}
		w.WriteHeader(http.StatusAccepted)
		writeJSON(w, map[string]string{"status": msg})
	})
	mux.HandleFunc("POST /drill", func(w http.ResponseWriter, r *http.Request) { writeJSON(w, e.Drill(r.Context())) })
	mux.HandleFunc("GET /key", func(w http.ResponseWriter, r *http.Request) {
		k, err := e.RecoveryKey()
		if err != nil {
			fail(w, err)
			return
		}
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Header().Set("Cache-Control", "no-store")
		fmt.Fprintln(w, k.String())
	})
	mux.HandleFunc("POST /split", func(w http.ResponseWriter, r *http.Request) {
		var req struct {
			K       int      `json:"k"`
			Members []string `json:"members"`
		}
		if err := json.NewDecoder(io.LimitReader(r.Body, 16<<10)).Decode(&req); err != nil {
			httpError(w, http.StatusBadRequest, err.Error())
			return
		}
		hs, err := e.Split(req.K, req.Members)
		if err != nil {
			fail(w, err)
			return
		}
		writeJSON(w, hs)
	})
	mux.HandleFunc("GET /snapshots", func(w http.ResponseWriter, r *http.Request) {
		out, err := e.Snapshots(r.Context(), r.URL.Query().Get("target"))
		if err != nil {
			fail(w, err)
			return
		}
		if out == nil {
			out = []SnapshotInfo{}
		}
		writeJSON(w, out)
	})
	mux.HandleFunc("GET /browse", func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		out, err := e.Browse(r.Context(), q.Get("target"), q.Get("snapshot"), q.Get("path"))
		if err != nil {
			fail(w, err)
			return
		}
		if out == nil {
			out = []Entry{}
		}
		writeJSON(w, out)
	})
	mux.HandleFunc("GET /file", func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		w.Header().Set("Content-Type", "application/octet-stream")
		w.Header().Set("Content-Disposition", fmt.Sprintf("attachment; filename=%q", path.Base(q.Get("path"))))
		if err := e.WriteFile(r.Context(), q.Get("target"), q.Get("snapshot"), q.Get("path"), w); err != nil {
			fail(w, err)
		}
	})
	mux.HandleFunc("POST /restore-item", func(w http.ResponseWriter, r *http.Request) {
		var req struct{ Target, Snapshot, Path string }
		if err := json.NewDecoder(io.LimitReader(r.Body, 16<<10)).Decode(&req); err != nil {
			httpError(w, http.StatusBadRequest, err.Error())
			return
		}
		item, err := e.RestoreItem(r.Context(), req.Target, req.Snapshot, req.Path)
		if err != nil {
			fail(w, err)
			return
		}
		writeJSON(w, item)
	})
	if peers != nil {
		mux.HandleFunc("GET /peers", func(w http.ResponseWriter, r *http.Request) { writeJSON(w, peers.Peers()) })
		mux.HandleFunc("POST /peers", func(w http.ResponseWriter, r *http.Request) {
			var req struct{ Name, Quota string }
			if err := json.NewDecoder(io.LimitReader(r.Body, 4096)).Decode(&req); err != nil {
				httpError(w, http.StatusBadRequest, err.Error())
				return
			}
			q, err := peerstore.ParseSize(req.Quota)
			if err != nil {
				httpError(w, http.StatusBadRequest, err.Error())
				return
			}
			code, err := peers.Add(req.Name, q)
			if err != nil {
				httpError(w, http.StatusBadRequest, err.Error())
				return
			}
			e.d.Audit.Record(auditEvent("keep a teammate's backups", req.Name, "quota "+req.Quota))
			writeJSON(w, map[string]string{"code": code})
		})
		mux.HandleFunc("DELETE /peers/{name}", func(w http.ResponseWriter, r *http.Request) {
			if err := peers.Remove(r.PathValue("name")); err != nil {
				httpError(w, http.StatusNotFound, err.Error())
				return
			}
			e.d.Audit.Record(auditEvent("remove a teammate's backups", r.PathValue("name"), ""))
			w.WriteHeader(http.StatusNoContent)
		})
	}
	return mux
}

// Redacted is the settings without their secrets (for display).
func (s Settings) Redacted() Settings {
	if s.S3 != nil {
		c := *s.S3
		if c.SecretKey != "" {
			c.SecretKey = ""
		}
		s.S3 = &c
	}
	var ps []PeerTarget
	for _, p := range s.Peers {
		p.Code = ""
		ps = append(ps, p)
	}
	s.Peers = ps
	return s
}

// KeepSecrets fills secrets left empty from old (a form that does not show
// them back).
func (s Settings) KeepSecrets(old Settings) Settings {
	if s.S3 != nil && s.S3.SecretKey == "" && old.S3 != nil && old.S3.AccessKey == s.S3.AccessKey {
		c := *s.S3
		c.SecretKey = old.S3.SecretKey
		s.S3 = &c
	}
	for i := range s.Peers {
		if s.Peers[i].Code == "" {
			for _, o := range old.Peers {
				if o.Name == s.Peers[i].Name {
					s.Peers[i].Code = o.Code
				}
			}
		}
	}
	return s
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(v)
}

func httpError(w http.ResponseWriter, status int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(map[string]string{"error": msg})
}

// fail answers err with the status that fits it.
func fail(w http.ResponseWriter, err error) {
	var fe *FieldError
	switch {
	case errors.As(err, &fe), errors.Is(err, repo.ErrNoPath):
		httpError(w, http.StatusBadRequest, err.Error())
	case errors.Is(err, ErrNotConfigured):
		httpError(w, http.StatusConflict, err.Error())
	case strings.Contains(err.Error(), "locked"):
		httpError(w, http.StatusServiceUnavailable, err.Error())
	default:
		var se *s3.Error
		if errors.As(err, &se) {
			httpError(w, http.StatusBadGateway, err.Error())
			return
		}
		httpError(w, http.StatusInternalServerError, err.Error())
	}
}
