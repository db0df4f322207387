// Package peerstore is the space a box keeps for its teammates' backups: each
// peer the owner accepted gets a store with a quota, reached over the team's
// tailnet, holding objects it cannot read (every object a backup repository
// writes is encrypted, named by a hash or a random id). A peer writes with the
// invitation code the owner gave it; it can also register a read code (which
// its owner can derive again from the recovery key), so a fresh box that has
// only the recovery key can fetch its backup back.
//
// The API, under /peer/v1/ (Authorization: Bearer <code>):
//
//	PUT    o/<name>   write an object (write code; 507 beyond the quota)
//	GET    o/<name>   read it (Range honoured; either code)
//	DELETE o/<name>   delete it (write code)
//	GET    list?prefix=   JSON [{"name","size"}] (either code)
//	PUT    read-code  body: the read code to accept from now on (write code)
//	GET    usage      JSON {"used","quota"} (either code)
//
// Stores live under state.dir/peer-store/<id>/. The daemon serves the handler
// on the box's tailnet node; the backup room's peer target is its client.
package peerstore

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"

	"github.com/redoubt/redoubt/backup/target"
)

// Peer is one teammate's store, as the owner set it.
type Peer struct {
	Name  string `json:"name"`
	Quota int64  `json:"quota"`
	// ID names the store's directory.
	ID string `json:"id"`
	// WriteHash and ReadHash are SHA-256 of the codes (hex).
	WriteHash string `json:"write_hash"`
	ReadHash  string `json:"read_hash,omitempty"`
}

// Persist keeps the peer list (sealed in the vault by the daemon).
type Persist interface {
	Load() ([]Peer, error)
	Save([]Peer) error
}

// Server keeps the stores.
type Server struct {
	dir     string
	persist Persist
	log     *slog.Logger

	mu    sync.Mutex
	peers []Peer
	used  map[string]int64 // by store ID
}

// New opens the stores in dir.
func New(dir string, p Persist, log *slog.Logger) (*Server, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Server{dir: dir, persist: p, log: log, used: map[string]int64{}}
	if err := s.Reload(); err != nil {
		return nil, err
	}
	return s, nil
}

// Reload reads the peer list again (after an unlock).
func (s *Server) Reload() error {
	peers, err := s.persist.Load()
	if err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.peers = peers
	for _, p := range peers {
		s.used[p.ID] = usage(filepath.Join(s.dir, p.ID))
	}
	return nil
}

func usage(dir string) int64 {
	var n int64
	filepath.Walk(dir, func(_ string, fi os.FileInfo, err error) error {
		if err == nil && fi.Mode().IsRegular() {
			n += fi.Size()
		}
		return nil
	})
	return n
}

var namePattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9 ._-]{0,62}$`)

// Limits.
const (
	MaxQuota  = 4 << 40
	MinQuota  = 64 << 20
	maxObject = 256 << 20
	maxPeers  = 32
)

// Add accepts a new peer with a quota and returns its invitation code,
// which the peer's owner pastes into their box. It is shown once.
func (s *Server) Add(name string, quota int64) (string, error) {
	if !namePattern.MatchString(name) {
		return "", fmt.Errorf("peer name %q: want 1 to 63 letters, digits, spaces, dots, dashes", name)
	}
	if quota < MinQuota || quota > MaxQuota {
		return "", fmt.Errorf("quota %d bytes: want 64 MiB to 4 TiB", quota)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.peers) >= maxPeers {
		return "", fmt.Errorf("%d peers already: at most %d", len(s.peers), maxPeers)
	}
	for _, p := range s.peers {
		if strings.EqualFold(p.Name, name) {
			return "", fmt.Errorf("a peer named %q already has a store here", name)
		}
	}
	code := newCode()
	var id [8]byte
	rand.Read(id[:])
	p := Peer{Name: name, Quota: quota, ID: hex.EncodeToString(id[:]), WriteHash: hashCode(code)}
	next := append(append([]Peer{}, s.peers...), p)
	if err := s.persist.Save(next); err != nil {
		return "", err
	}
	s.peers = next
	s.log.Info("a peer may keep backups here", "peer", name, "quota", quota)
	return code, nil
}

// Remove deletes a peer's store and everything in it.
func (s *Server) Remove(name string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i, p := range s.peers {
		if p.Name == name {
			next := append(append([]Peer{}, s.peers[:i]...), s.peers[i+1:]...)
			if err := s.persist.Save(next); err != nil {
				return err
			}
			s.peers = next
			delete(s.used, p.ID)
			return os.RemoveAll(filepath.Join(s.dir, p.ID))
		}
	}
	return fmt.Errorf("no peer named %q", name)
}

// PeerStatus is a store as the owner sees it.
type PeerStatus struct {
	Name       string `json:"name"`
	Quota      int64  `json:"quota"`
	Used       int64  `json:"used"`
	CanRecover bool   `json:"can_recover"` // a read code is registered
}

// Peers lists the stores.
func (s *Server) Peers() []PeerStatus {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := []PeerStatus{}
	for _, p := range s.peers {
		out = append(out, PeerStatus{Name: p.Name, Quota: p.Quota, Used: s.used[p.ID], CanRecover: p.ReadHash != ""})
	}
	return out
}

func newCode() string {
	var b [24]byte
	rand.Read(b[:])
	return base64.RawURLEncoding.EncodeToString(b[:])
}

func hashCode(code string) string {
	h := sha256.Sum256([]byte("redoubt peer code\n" + code))
	return hex.EncodeToString(h[:])
}

// auth finds the store a code opens, and whether it may write.
func (s *Server) auth(r *http.Request) (Peer, bool, bool) {
	code, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok || code == "" {
		return Peer{}, false, false
	}
	h := hashCode(code)
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, p := range s.peers {
		if subtle.ConstantTimeCompare([]byte(p.WriteHash), []byte(h)) == 1 {
			return p, true, true
		}
		if p.ReadHash != "" && subtle.ConstantTimeCompare([]byte(p.ReadHash), []byte(h)) == 1 {
			return p, false, true
		}
	}
	return Peer{}, false, false
}

// Handler serves the stores' API.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	with := func(write bool, f func(w http.ResponseWriter, r *http.Request, p Peer, st target.Dir)) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			p, canWrite, ok := s.auth(r)
			if !ok {
				httpError(w, http.StatusUnauthorized, "this code opens no store here")
				return
			}
			if write && !canWrite {
				httpError(w, http.StatusForbidden, "the read code cannot change the store")
				return
			}
			f(w, r, p, target.Dir{Root: filepath.Join(s.dir, p.ID)})
		}
	}
	mux.HandleFunc("PUT /peer/v1/o/{name...}", with(true, func(w http.ResponseWriter, r *http.Request, p Peer, st target.Dir) {
		name := r.PathValue("name")
		if err := target.CheckName(name); err != nil {
			httpError(w, http.StatusBadRequest, err.Error())
			return
		}
		if r.ContentLength < 0 || r.ContentLength > maxObject {
			httpError(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("an object of %d bytes: at most %d, with Content-Length", r.ContentLength, maxObject))
			return
		}
		s.mu.Lock()
		old := int64(0)
		if fi, err := os.Stat(filepath.Join(st.Root, filepath.FromSlash(name))); err == nil {
			old = fi.Size()
		}
		if s.used[p.ID]-old+r.ContentLength > p.Quota {
			used := s.used[p.ID]
			s.mu.Unlock()
			httpError(w, http.StatusInsufficientStorage, fmt.Sprintf("the quota is full: %d of %d bytes used", used, p.Quota))
			return
		}
		s.used[p.ID] += r.ContentLength - old // reserved now, so parallel writes cannot pass the quota
		s.mu.Unlock()
		data, err := io.ReadAll(io.LimitReader(r.Body, r.ContentLength+1))
		if err == nil && int64(len(data)) != r.ContentLength {
			err = errors.New("the body is not Content-Length bytes")
		}
		if err == nil {
			err = st.Put(r.Context(), name, data)
		}
		if err != nil {
			s.mu.Lock()
			s.used[p.ID] -= r.ContentLength - old
			s.mu.Unlock()
			httpError(w, http.StatusInternalServerError, "writing: "+err.Error())
			return
		}
		w.WriteHeader(http.StatusNoContent)
	}))
	mux.HandleFunc("GET /peer/v1/o/{name...}", with(false, func(w http.ResponseWriter, r *http.Request, p Peer, st target.Dir) {
		name := r.PathValue("name")
		if err := target.CheckName(name); err != nil {
			httpError(w, http.StatusBadRequest, err.Error())
			return
		}
		f, err := os.Open(filepath.Join(st.Root, filepath.FromSlash(name)))
		if err != nil {
			httpError(w, http.StatusNotFound, "no such object")
			return
		}
		defer f.Close()
		fi, _ := f.Stat()
		w.Header().Set("Content-Type", "application/octet-stream")
		http.ServeContent(w, r, "", fi.ModTime(), f)
	}))
	mux.HandleFunc("DELETE /peer/v1/o/{name...}", with(true, func(w http.ResponseWriter, r *http.Request, p Peer, st target.Dir) {
		name := r.PathValue("name")
		path := filepath.Join(st.Root, filepath.FromSlash(name))
		var size int64
		if fi, err := os.Stat(path); err == nil {
			size = fi.Size()
		}
		if err := st.Delete(r.Context(), name); err != nil {
			httpError(w, http.StatusBadRequest, err.Error())
			return
		}
		s.mu.Lock()
		s.used[p.ID] -= size
		s.mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
	}))
	mux.HandleFunc("GET /peer/v1/list", with(false, func(w http.ResponseWriter, r *http.Request, p Peer, st target.Dir) {
		objs, err := st.List(r.Context(), r.URL.Query().Get("prefix"))
		if err != nil {
			httpError(w, http.StatusInternalServerError, err.Error())
			return
		}
		if objs == nil {
			objs = []target.Object{}
		}
		out := make([]objectJSON, len(objs))
		for i, o := range objs {
			out[i] = objectJSON{o.Name, o.Size}
		}
		writeJSON(w, out)
	}))
	mux.HandleFunc("PUT /peer/v1/read-code", with(true, func(w http.ResponseWriter, r *http.Request, p Peer, st target.Dir) {
		b, _ := io.ReadAll(io.LimitReader(r.Body, 256))
		code := strings.TrimSpace(string(b))
		if len(code) < 32 {
			httpError(w, http.StatusBadRequest, "a read code is at least 32 characters")
			return
		}
		if err := s.setReadHash(p.ID, hashCode(code)); err != nil {
			httpError(w, http.StatusInternalServerError, err.Error())
			return
		}
		w.WriteHeader(http.StatusNoContent)
	}))
	mux.HandleFunc("GET /peer/v1/usage", with(false, func(w http.ResponseWriter, r *http.Request, p Peer, st target.Dir) {
		s.mu.Lock()
		used := s.used[p.ID]
		s.mu.Unlock()
		writeJSON(w, map[string]int64{"used": used, "quota": p.Quota})
	}))
	return mux
}

type objectJSON struct {
	Name string `json:"name"`
	Size int64  `json:"size"`
}

func (s *Server) setReadHash(id, h string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	next := append([]Peer{}, s.peers...)
	for i := range next {
		if next[i].ID == id {
			next[i].ReadHash = h
		}
	}
	if err := s.persist.Save(next); err != nil {
		return err
	}
	s.peers = next
	return nil
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(v)
}

func httpError(w http.ResponseWriter, status int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(map[string]string{"error": msg})
}

// ParseSize reads "20GB", "512MiB", "1TB" into bytes.
func ParseSize(s string) (int64, error) {
	s = strings.TrimSpace(strings.ToUpper(s))
	units := []struct {
		suffix string
		mult   int64
	}{{"TIB", 1 << 40}, {"GIB", 1 << 30}, {"MIB", 1 << 20}, {"TB", 1e12}, {"GB", 1e9}, {"MB", 1e6}, {"T", 1 << 40}, {"G", 1 << 30}, {"M", 1 << 20}}
	for _, u := range units {
		if v, ok := strings.CutSuffix(s, u.suffix); ok {
			f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
			if err != nil || f <= 0 {
				break
			}
			return int64(f * float64(u.mult)), nil
		}
	}
	return 0, fmt.Errorf("size %q: want a number and a unit, such as 20GB or 512MiB", s)
}

// FilePersist keeps the peer list in a JSON file (mode 0600): for a peer
// store that runs on its own (`redoubt peer-store`), without a vault. It
// holds no secret: codes are kept as hashes.
type FilePersist struct{ Path string }

// Load implements Persist.
func (f FilePersist) Load() ([]Peer, error) {
	b, err := os.ReadFile(f.Path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []Peer
	if err := json.Unmarshal(b, &out); err != nil {
		return nil, fmt.Errorf("%s: %w", f.Path, err)
	}
	return out, nil
}

// Save implements Persist.
func (f FilePersist) Save(peers []Peer) error {
	b, _ := json.MarshalIndent(peers, "", "  ")
	tmp := f.Path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, f.Path)
}
