package auditlog

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"

	"golang.org/x/mod/sumdb/tlog"
)

// The HTTP API verifiers use (the members' page mounts it at /audit/api/, the
// local API at /v1/audit/):
//
//	GET  key                          the log's verifier key (text)
//	GET  checkpoint                   the latest signed checkpoint (text; 503 with the reason when there is none)
//	GET  consistency?old=M&new=N      {"proof": [base64 hash, …]}
//	GET  entries?start=S&end=E&size=N {"entries": [{"index", "data" (base64 record), "proof"}]} (at most 256)
//	GET  witnesses                    what each witness last cosigned
//	GET  status                       Status
//	POST witness                      {"key": vkey, "checkpoint": cosigned note} from a member's device

// ConsistencyResponse is the consistency endpoint's answer.
type ConsistencyResponse struct {
	Proof [][]byte `json:"proof"`
}

// EntriesResponse is the entries endpoint's answer.
type EntriesResponse struct {
	Entries []EntryJSON `json:"entries"`
}

// EntryJSON is an Entry on the wire.
type EntryJSON struct {
	Index int64    `json:"index"`
	Data  []byte   `json:"data"`
	Proof [][]byte `json:"proof"`
}

// WitnessRequest is what a member's device posts.
type WitnessRequest struct {
	Key        string `json:"key"`
	Checkpoint string `json:"checkpoint"`
}

// Caller names the member behind a request (ok false: not a member).
type Caller func(*http.Request) (member string, ok bool)

// Handler serves the log's API. caller may be nil: then no one can post
// cosignatures.
func (l *Log) Handler(caller Caller) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /key", func(w http.ResponseWriter, r *http.Request) {
		k := l.VerifierKey()
		if k == "" {
			httpError(w, http.StatusServiceUnavailable, "the log has no key yet: the box was never unlocked")
			return
		}
		text(w, k+"\n")
	})
	mux.HandleFunc("GET /checkpoint", func(w http.ResponseWriter, r *http.Request) {
		signed, _, err := l.Checkpoint()
		if err != nil {
			httpError(w, http.StatusServiceUnavailable, err.Error())
			return
		}
		text(w, string(signed))
	})
	mux.HandleFunc("GET /consistency", func(w http.ResponseWriter, r *http.Request) {
		old, err1 := intParam(r, "old")
		next, err2 := intParam(r, "new")
		if err := errors.Join(err1, err2); err != nil {
			httpError(w, http.StatusBadRequest, err.Error())
			return
		}
		p, err := l.Consistency(old, next)
		if err != nil {
			httpError(w, statusOf(err), err.Error())
			return
		}
		writeJSON(w, ConsistencyResponse{Proof: hashes(p)})
	})
	mux.HandleFunc("GET /entries", func(w http.ResponseWriter, r *http.Request) {
		start, err1 := intParam(r, "start")
		end, err2 := intParam(r, "end")
		size, err3 := intParam(r, "size")
		if err := errors.Join(err1, err2, err3); err != nil {
			httpError(w, http.StatusBadRequest, err.Error())
			return
		}
		es, err := l.Entries(start, end, size)
		if err != nil {
			httpError(w, statusOf(err), err.Error())
			return
		}
		out := EntriesResponse{Entries: []EntryJSON{}}
		for _, e := range es {
			out.Entries = append(out.Entries, EntryJSON{Index: e.Index, Data: e.Data, Proof: hashes(e.Proof)})
		}
		writeJSON(w, out)
	})
	mux.HandleFunc("GET /witnesses", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, l.Witnesses())
	})
	mux.HandleFunc("GET /status", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, l.Status())
	})
	mux.HandleFunc("POST /witness", func(w http.ResponseWriter, r *http.Request) {
		member, ok := "", false
		if caller != nil {
			member, ok = caller(r)
		}
		if !ok {
			httpError(w, http.StatusForbidden, "only a team member's device can countersign the log")
			return
		}
		var req WitnessRequest
		if err := json.NewDecoder(io.LimitReader(r.Body, 32<<10)).Decode(&req); err != nil {
			httpError(w, http.StatusBadRequest, "want JSON {\"key\": …, \"checkpoint\": …}: "+err.Error())
			return
		}
		if err := l.AddCosignature(member, req.Key, []byte(req.Checkpoint)); err != nil {
			status := http.StatusBadRequest
			if errors.Is(err, ErrFork) {
				status = http.StatusConflict
			}
			httpError(w, status, err.Error())
			return
		}
		writeJSON(w, map[string]string{"ok": "cosignature kept"})
	})
	return mux
}

func hashes[T ~[]tlog.Hash](p T) [][]byte {
	out := make([][]byte, len(p))
	for i := range p {
		out[i] = p[i][:]
	}
	return out
}

func intParam(r *http.Request, name string) (int64, error) {
	v := r.URL.Query().Get(name)
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("%s=%.20q: want a whole number ≥ 0", name, v)
	}
	return n, nil
}

func statusOf(err error) int {
	switch {
	case errors.Is(err, ErrLocked):
		return http.StatusServiceUnavailable
	case errors.Is(err, ErrRange):
		return http.StatusBadRequest
	}
	return http.StatusInternalServerError
}

func text(w http.ResponseWriter, s string) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	io.WriteString(w, s)
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	json.NewEncoder(w).Encode(v)
}

func httpError(w http.ResponseWriter, status int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(map[string]string{"error": msg})
}
