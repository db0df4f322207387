package web

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"html/template"
	"io/fs"
	"mime"
	"net/http"
	"os"
	"path"
	"path/filepath"
	"strings"
	"sync"
)

// DevEnv names the environment variable that makes apps read their assets
// from a source tree while developing: `redoubt serve --apps-dir DIR` sets it
// to DIR, the repository's apps/ folder, and an app's Assets then come from
// DIR/<app>/assets, re-read on every request.
const DevEnv = "REDOUBT_APPS_DIR"

// Assets returns an app's files: embedded (the assets directory of its
// package, embedded with //go:embed assets), or the source tree's while
// developing (DevEnv).
func Assets(embedded fs.FS, app string) fs.FS {
	if dir := os.Getenv(DevEnv); dir != "" {
		return os.DirFS(filepath.Join(dir, app, "assets"))
	}
	sub, err := fs.Sub(embedded, "assets")
	if err != nil {
		return embedded
	}
	return sub
}

// isDev reports whether fsys is read from disk (re-read every time).
func isDev(fsys fs.FS) bool { return fmt.Sprintf("%T", fsys) == "os.dirFS" }

// Templates renders an app's pages: each file matching pages (such as
// "pages/*.html") parsed with the shared files matching layouts (such as
// "layout.html"), executed by the page's base name. From a disk directory
// (DevEnv) they are parsed again on every render.
type Templates struct {
	fsys    fs.FS
	pages   string
	layouts []string
	funcs   template.FuncMap

	mu  sync.Mutex
	set map[string]*template.Template
}

// NewTemplates parses the pages now, so a mistake fails the app's start.
func NewTemplates(fsys fs.FS, pages string, layouts []string, funcs template.FuncMap) (*Templates, error) {
	t := &Templates{fsys: fsys, pages: pages, layouts: layouts, funcs: funcs}
	set, err := t.parse()
	if err != nil {
		return nil, err
	}
	t.set = set
	return t, nil
}

func (t *Templates) parse() (map[string]*template.Template, error) {
	files, err := fs.Glob(t.fsys, t.pages)
	if err != nil || len(files) == 0 {
		return nil, fmt.Errorf("templates: no pages match %q", t.pages)
	}
	set := map[string]*template.Template{}
	for _, f := range files {
		name := strings.TrimSuffix(path.Base(f), path.Ext(f))
		tpl := template.New(path.Base(f)).Funcs(t.funcs)
		patterns := append([]string{f}, t.layouts...)
		if tpl, err = tpl.ParseFS(t.fsys, patterns...); err != nil {
			return nil, fmt.Errorf("templates: %s: %w", f, err)
		}
		set[name] = tpl
	}
	return set, nil
}

// Render executes the page called name (its file's base name) with data into
// a buffer first, so a failure answers 500 rather than half a page.
func (t *Templates) Render(w http.ResponseWriter, status int, name string, data any) error {
	set := t.set
	if isDev(t.fsys) {
		var err error
		if set, err = t.parse(); err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return err
		}
	}
	tpl := set[name]
	if tpl == nil {
		http.Error(w, "no page "+name, http.StatusInternalServerError)
		return fmt.Errorf("templates: no page %q", name)
	}
	var buf bytes.Buffer
	if err := tpl.Execute(&buf, data); err != nil {
		http.Error(w, "the page could not be shown", http.StatusInternalServerError)
		return fmt.Errorf("rendering %s: %w", name, err)
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_, err := w.Write(buf.Bytes())
	return err
}

// Static serves the files under dir of fsys (no listings, nothing outside
// dir), with their type from the extension and an ETag, so browsers and
// offline-first pages revalidate cheaply. Mount it with http.StripPrefix.
func Static(fsys fs.FS, dir string) http.Handler {
	var mu sync.Mutex
	etags := map[string]string{}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		name := path.Clean("/" + r.URL.Path)[1:]
		if name == "" || strings.HasSuffix(r.URL.Path, "/") {
			http.NotFound(w, r)
			return
		}
		full := path.Join(dir, name)
		b, err := fs.ReadFile(fsys, full)
		if err != nil {
			http.NotFound(w, r)
			return
		}
		mu.Lock()
		tag, ok := etags[full]
		if !ok || isDev(fsys) {
			sum := sha256.Sum256(b)
			tag = `"` + hex.EncodeToString(sum[:8]) + `"`
			etags[full] = tag
		}
		mu.Unlock()
		ct := mime.TypeByExtension(path.Ext(name))
		if ct == "" {
			ct = "application/octet-stream"
		}
		h := w.Header()
		h.Set("Content-Type", ct)
		h.Set("Cache-Control", "no-cache")
		h.Set("ETag", tag)
		if r.Header.Get("If-None-Match") == tag {
			w.WriteHeader(http.StatusNotModified)
			return
		}
		if r.Method == http.MethodHead {
			return
		}
		w.Write(b)
	})
}
