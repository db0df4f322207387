// Package clipboard is a small app the team shares: paste text or a file on
// one device and pick it up on another, with who pasted it, live on every open
// page, until it expires. It is the platform's proof in miniature — sealed
// records, encrypted blobs with ranges, a live feed over WebSockets, the
// caller from the host, live options — and the example apps/README.md walks
// through. apps/builtin lists it.
package clipboard

import (
	"context"
	"crypto/rand"
	"embed"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/coder/websocket"

	"github.com/redoubt/redoubt/apps"
	"github.com/redoubt/redoubt/apps/web"
)

//go:embed manifest.toml
var manifestTOML []byte

//go:embed assets
var assets embed.FS

var manifest = sync.OnceValue(func() apps.Manifest { return apps.MustParseManifest(manifestTOML) })

// MaxText bounds a pasted text.
const MaxText = 64 << 10

// App is the clipboard.
type App struct{}

// New returns the app.
func New() *App { return &App{} }

// Manifest implements apps.App.
func (*App) Manifest() apps.Manifest { return manifest() }

// Entry is one thing on the clipboard.
type Entry struct {
	ID   string `json:"id"`
	Kind string `json:"kind"` // "text" or "file"
	Text string `json:"text,omitempty"`
	// Name, Type and Size describe a file.
	Name string    `json:"name,omitempty"`
	Type string    `json:"type,omitempty"`
	Size int64     `json:"size,omitempty"`
	By   string    `json:"by"`   // the caller's ID
	Who  string    `json:"who"`  // the caller's name
	From string    `json:"from"` // the device
	At   time.Time `json:"at"`
}

// Event is what the live feed sends: an entry added or removed.
type Event struct {
	Type  string `json:"type"` // "added", "removed"
	Entry Entry  `json:"entry"`
}

type clip struct {
	env  apps.Env
	feed *web.Feed[Event]
	mu   sync.Mutex // one change of the list at a time
}

// Start implements apps.App.
func (*App) Start(ctx context.Context, env apps.Env) (http.Handler, error) {
	c := &clip{env: env, feed: web.NewFeed[Event](64)}
	files := web.Assets(assets, "clipboard")
	if _, err := files.Open("index.html"); err != nil {
		return nil, fmt.Errorf("the clipboard's page: %w", err)
	}
	go c.expire(ctx)
	go func() { <-ctx.Done(); c.feed.Close() }()
	mux := http.NewServeMux()
	mux.Handle("GET /{$}", http.FileServerFS(files))
	mux.Handle("GET /static/", http.StripPrefix("/static/", web.Static(files, "static")))
	mux.HandleFunc("GET /api/whoami", c.whoami)
	mux.HandleFunc("GET /api/entries", c.list)
	mux.HandleFunc("POST /api/text", c.pasteText)
	mux.HandleFunc("PUT /api/file", c.pasteFile)
	mux.HandleFunc("GET /api/entries/{id}/file", c.download)
	mux.HandleFunc("DELETE /api/entries/{id}", c.remove)
	mux.HandleFunc("GET /api/live", c.live)
	return web.Logged(web.Secure(mux, web.Policy{}), env.Logger()), nil
}

func newID() string {
	b := make([]byte, 12)
	rand.Read(b)
	return hex.EncodeToString(b)
}

func validID(id string) bool {
	_, err := hex.DecodeString(id)
	return len(id) == 24 && err == nil
}

func (c *clip) whoami(w http.ResponseWriter, r *http.Request) {
	caller, _ := apps.CallerFrom(r.Context())
	web.WriteJSON(w, http.StatusOK, caller)
}

// entries reads the clipboard, newest first.
func (c *clip) entries() ([]Entry, error) {
	keys, err := c.env.Records().List("entry/")
	if err != nil {
		return nil, err
	}
	out := make([]Entry, 0, len(keys))
	for _, k := range keys {
		raw, err := c.env.Records().Get(k)
		if err != nil {
			continue
		}
		var e Entry
		if json.Unmarshal(raw, &e) == nil {
			out = append(out, e)
		}
	}
	slices.SortFunc(out, func(a, b Entry) int { return b.At.Compare(a.At) })
	return out, nil
}

func (c *clip) list(w http.ResponseWriter, r *http.Request) {
	es, err := c.entries()
	if err != nil {
		web.ErrorOf(w, r, http.StatusServiceUnavailable, err)
		return
	}
	web.WriteJSON(w, http.StatusOK, es)
}

func (c *clip) add(r *http.Request, e Entry) (Entry, error) {
	caller, ok := apps.CallerFrom(r.Context())
	if !ok {
		return e, errors.New("no caller")
	}
	e.By, e.Who, e.From, e.At = caller.ID(), caller.Name(), caller.Device, time.Now().UTC()
	raw, _ := json.Marshal(e)
	if err := c.env.Records().Put("entry/"+e.ID, raw); err != nil {
		return e, err
	}
	c.feed.Publish(Event{Type: "added", Entry: e})
	return e, nil
}

func (c *clip) pasteText(w http.ResponseWriter, r *http.Request) {
	var in struct {
		Text string `json:"text"`
	}
	if err := web.ReadJSON(w, r, MaxText+1024, &in); err != nil {
		web.ErrorOf(w, r, http.StatusBadRequest, err)
		return
	}
	if strings.TrimSpace(in.Text) == "" || len(in.Text) > MaxText || !utf8.ValidString(in.Text) {
		web.ErrorOf(w, r, http.StatusBadRequest, &web.FieldError{Field: "text", Msg: fmt.Sprintf("1 byte to %d KB of text", MaxText>>10)})
		return
	}
	e, err := c.add(r, Entry{ID: newID(), Kind: "text", Text: in.Text})
	if err != nil {
		web.ErrorOf(w, r, http.StatusServiceUnavailable, err)
		return
	}
	web.WriteJSON(w, http.StatusCreated, e)
}

// cleanName keeps a file's name printable and short.
func cleanName(s string) string {
	s = strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f || r == '/' || r == '\\' || r == '"' {
			return '_'
		}
		return r
	}, s)
	if utf8.RuneCountInString(s) > 120 {
		s = string([]rune(s)[:120])
	}
	if strings.Trim(s, ". _") == "" {
		s = "file"
	}
	return s
}

// pasteFile streams the body into a blob: ?name= names it.
func (c *clip) pasteFile(w http.ResponseWriter, r *http.Request) {
	max := c.env.Options().Size("max-size")
	if r.ContentLength > max {
		web.ErrorOf(w, r, http.StatusRequestEntityTooLarge, &web.FieldError{Field: "file", Msg: "larger than " + apps.FormatSize(max)})
		return
	}
	ct := r.Header.Get("Content-Type")
	if _, _, err := mime.ParseMediaType(ct); err != nil || ct == "" {
		ct = "application/octet-stream"
	}
	u, err := c.env.Blobs().Create()
	if err != nil {
		web.ErrorOf(w, r, http.StatusInsufficientStorage, err)
		return
	}
	n, err := io.Copy(u, http.MaxBytesReader(w, r.Body, max))
	if err != nil {
		u.Abort()
		status := http.StatusBadRequest
		if errors.Is(err, apps.ErrQuota) || errors.Is(err, apps.ErrDiskFull) {
			status = http.StatusInsufficientStorage
		}
		web.ErrorOf(w, r, status, err)
		return
	}
	id := newID()
	if _, err := u.Commit("file/" + id); err != nil {
		u.Abort()
		web.ErrorOf(w, r, http.StatusInsufficientStorage, err)
		return
	}
	e, err := c.add(r, Entry{ID: id, Kind: "file", Name: cleanName(r.URL.Query().Get("name")), Type: ct, Size: n})
	if err != nil {
		c.env.Blobs().Delete("file/" + id)
		web.ErrorOf(w, r, http.StatusServiceUnavailable, err)
		return
	}
	web.WriteJSON(w, http.StatusCreated, e)
}

func (c *clip) entry(r *http.Request) (Entry, error) {
	id := r.PathValue("id")
	if !validID(id) {
		return Entry{}, apps.ErrNotFound
	}
	raw, err := c.env.Records().Get("entry/" + id)
	if err != nil {
		return Entry{}, err
	}
	var e Entry
	return e, json.Unmarshal(raw, &e)
}

func (c *clip) download(w http.ResponseWriter, r *http.Request) {
	e, err := c.entry(r)
	if err != nil || e.Kind != "file" {
		web.Error(w, r, http.StatusNotFound, "No such file on the clipboard.")
		return
	}
	b, err := c.env.Blobs().Open("file/" + e.ID)
	if err != nil {
		web.ErrorOf(w, r, http.StatusNotFound, err)
		return
	}
	defer b.Close()
	w.Header().Set("Content-Type", e.Type)
	w.Header().Set("Content-Disposition", mime.FormatMediaType("attachment", map[string]string{"filename": e.Name}))
	w.Header().Set("ETag", b.Info().ETag)
	http.ServeContent(w, r, "", b.Info().Modified, b)
}

func (c *clip) remove(w http.ResponseWriter, r *http.Request) {
	e, err := c.entry(r)
	if err != nil {
		web.Error(w, r, http.StatusNotFound, "No such entry.")
		return
	}
	caller, _ := apps.CallerFrom(r.Context())
	if !caller.Owner && caller.ID() != e.By {
		web.Error(w, r, http.StatusForbidden, "Only whoever pasted it, or the box's owner, may remove it.")
		return
	}
	if err := c.drop(e); err != nil {
		web.ErrorOf(w, r, http.StatusServiceUnavailable, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (c *clip) drop(e Entry) error {
	if e.Kind == "file" {
		if err := c.env.Blobs().Delete("file/" + e.ID); err != nil && !errors.Is(err, apps.ErrNotFound) {
			return err
		}
	}
	if err := c.env.Records().Delete("entry/" + e.ID); err != nil {
		return err
	}
	c.feed.Publish(Event{Type: "removed", Entry: Entry{ID: e.ID}})
	return nil
}

// expire erases entries older than the keep option, every minute.
func (c *clip) expire(ctx context.Context) {
	t := time.NewTicker(time.Minute)
	defer t.Stop()
	for {
		es, err := c.entries()
		if err == nil {
			keep := c.env.Options().Duration("keep")
			for _, e := range es {
				if time.Since(e.At) > keep {
					c.drop(e)
				}
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// live sends every change over a WebSocket until the page goes away, the
// app stops, or the host closes the connection (the member was removed).
func (c *clip) live(w http.ResponseWriter, r *http.Request) {
	conn, err := web.AcceptWebSocket(w, r, web.WebSocketOptions{ReadLimit: 1024})
	if err != nil {
		return
	}
	defer conn.CloseNow()
	ch, cancel := c.feed.Subscribe()
	defer cancel()
	ctx := conn.CloseRead(r.Context())
	go web.KeepAlive(ctx, conn)
	for {
		select {
		case <-ctx.Done():
			return
		case ev, ok := <-ch:
			if !ok {
				conn.Close(websocket.StatusTryAgainLater, "fell behind: reload")
				return
			}
			raw, _ := json.Marshal(ev)
			wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			err := conn.Write(wctx, websocket.MessageText, raw)
			cancel()
			if err != nil {
				return
			}
		}
	}
}
