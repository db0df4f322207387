// Package web is the small web kit the box's apps share instead of each
// copying the owner pages' headers: security headers with a strict
// Content-Security-Policy, cross-site request refusal (CSRF), JSON answers and
// errors, live feeds (server-sent events, WebSockets with
// github.com/coder/websocket, a bounded fan-out Feed), templates and embedded
// assets with a development override.
//
// Apps import it; so may the owner's pages. It imports nothing of the box.
package web

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"strings"
)

// Policy is what an app's pages may do beyond the defaults, which allow
// only the app's own origin: its scripts, styles, images, fonts and
// connections (fetch, WebSocket, server-sent events), no frames, no plugins,
// forms posting only to itself.
type Policy struct {
	// ImgSrc adds image sources, such as "blob:" and "data:" for previews.
	ImgSrc []string
	// MediaSrc adds audio and video sources, such as "blob:" and
	// "mediastream:".
	MediaSrc []string
	// WorkerSrc adds worker sources ("'self'" for a service worker is the
	// default; "blob:" for bundlers' workers).
	WorkerSrc []string
	// FrameSrc lets the page frame these (none by default; PDF previews may
	// want "'self'" or "blob:").
	FrameSrc []string
	// InlineStyles allows style attributes ('unsafe-inline' for styles only:
	// editors set them). Scripts are never inline.
	InlineStyles bool
	// Permissions are the browser features the app's pages may use, as
	// Permissions-Policy allowlists (calls: "camera", "microphone",
	// "display-capture"); everything else is off.
	Permissions []string
}

// csp builds the Content-Security-Policy for a request's host.
func (p Policy) csp(host string) string {
	style := "'self'"
	if p.InlineStyles {
		style += " 'unsafe-inline'"
	}
	join := func(base string, extra []string) string {
		return strings.TrimSpace(base + " " + strings.Join(extra, " "))
	}
	// 'self' covers ws(s): in current browsers; older Safari wants the
	// origin spelled out.
	connect := "'self'"
	if host != "" && !strings.ContainsAny(host, " ;,'\"") {
		connect += " wss://" + host
	}
	parts := []string{
		"default-src 'none'",
		"script-src 'self'",
		"style-src " + style,
		join("img-src 'self'", p.ImgSrc),
		"font-src 'self'",
		"connect-src " + connect,
		"manifest-src 'self'",
		join("worker-src 'self'", p.WorkerSrc),
		"form-action 'self'",
		"frame-ancestors 'none'",
		"base-uri 'none'",
		"object-src 'none'",
	}
	if len(p.MediaSrc) > 0 {
		parts = append(parts, join("media-src 'self'", p.MediaSrc))
	}
	if len(p.FrameSrc) > 0 {
		parts = append(parts, "frame-src "+strings.Join(p.FrameSrc, " "))
	}
	return strings.Join(parts, "; ")
}

var features = []string{"accelerometer", "camera", "display-capture", "geolocation", "gyroscope", "magnetometer", "microphone",
	"midi", "payment", "usb", "serial", "bluetooth", "hid", "idle-detection", "publickey-credentials-get", "screen-wake-lock"}

func (p Policy) permissions() string {
	var out []string
	for _, f := range features {
		v := "()"
		for _, a := range p.Permissions {
			if a == f {
				v = "(self)"
			}
		}
		out = append(out, f+"="+v)
	}
	return strings.Join(out, ", ")
}

// SetHeaders sets the security headers for one response: the policy's CSP,
// no sniffing, no framing, no referrer beyond the origin, resources and
// windows kept to the origin, HTTPS remembered.
func SetHeaders(w http.ResponseWriter, r *http.Request, p Policy) {
	h := w.Header()
	h.Set("Content-Security-Policy", p.csp(r.Host))
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Referrer-Policy", "same-origin")
	h.Set("Cross-Origin-Resource-Policy", "same-origin")
	h.Set("Cross-Origin-Opener-Policy", "same-origin")
	h.Set("Permissions-Policy", p.permissions())
	if r.TLS != nil {
		h.Set("Strict-Transport-Security", "max-age=31536000")
	}
}

// Secure wraps an app's handler: every response gets the security headers,
// and changes (POST, PUT, DELETE, PATCH, WebDAV's methods…) that a browser
// says come from another origin are refused with 403 — the CSRF defence
// (net/http's CrossOriginProtection: Sec-Fetch-Site, else Origin against
// Host). Native clients (WebDAV, rclone), which send neither header, pass.
func Secure(h http.Handler, p Policy) http.Handler {
	cop := http.NewCrossOriginProtection()
	cop.SetDenyHandler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		Error(w, r, http.StatusForbidden, "This change came from another site, so it was refused.")
	}))
	inner := cop.Handler(h)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		SetHeaders(w, r, p)
		inner.ServeHTTP(w, r)
	})
}

// ErrorBody is the JSON of an error answer.
type ErrorBody struct {
	Error string `json:"error"`
	// Field names the request's field that was wrong, if one was.
	Field string `json:"field,omitempty"`
}

// FieldError is a problem with one field of a request.
type FieldError struct {
	Field string
	Msg   string
}

func (e *FieldError) Error() string { return e.Field + ": " + e.Msg }

// WantsJSON reports whether the client asked for JSON (or sent it), rather
// than a page.
func WantsJSON(r *http.Request) bool {
	if ct, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); ct == "application/json" {
		return true
	}
	a := r.Header.Get("Accept")
	return strings.Contains(a, "application/json") || (a != "" && !strings.Contains(a, "text/html") && r.Header.Get("Sec-Fetch-Mode") == "cors")
}

// Error answers with status and a message for people: JSON ({"error": …})
// for clients that want JSON, plain text otherwise. A *FieldError's field is
// named.
func Error(w http.ResponseWriter, r *http.Request, status int, msg string) {
	ErrorOf(w, r, status, errors.New(msg))
}

// ErrorOf is Error with err's message (and field, for a *FieldError).
func ErrorOf(w http.ResponseWriter, r *http.Request, status int, err error) {
	body := ErrorBody{Error: err.Error()}
	var fe *FieldError
	if errors.As(err, &fe) {
		body.Field, body.Error = fe.Field, fe.Msg
	}
	w.Header().Set("Cache-Control", "no-store")
	if r != nil && !WantsJSON(r) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.WriteHeader(status)
		io.WriteString(w, body.Error+"\n")
		return
	}
	WriteJSON(w, status, body)
}

// WriteJSON answers with v as JSON.
func WriteJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(true)
	enc.Encode(v)
}

// ReadJSON decodes the request's JSON body into v: at most max bytes, one
// value, no unknown fields. The error says what was wrong, for a 400.
func ReadJSON(w http.ResponseWriter, r *http.Request, max int64, v any) error {
	if ct, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); ct != "application/json" {
		return &FieldError{Field: "(body)", Msg: "send JSON, with Content-Type: application/json"}
	}
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, max))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var mbe *http.MaxBytesError
		var ute *json.UnmarshalTypeError
		switch {
		case errors.As(err, &mbe):
			return &FieldError{Field: "(body)", Msg: fmt.Sprintf("larger than %d bytes", max)}
		case errors.As(err, &ute):
			return &FieldError{Field: ute.Field, Msg: "want a " + ute.Type.String()}
		case strings.HasPrefix(err.Error(), "json: unknown field "):
			return &FieldError{Field: strings.Trim(strings.TrimPrefix(err.Error(), "json: unknown field "), `"`), Msg: "unknown field"}
		}
		return &FieldError{Field: "(body)", Msg: "not valid JSON: " + err.Error()}
	}
	if dec.More() {
		return &FieldError{Field: "(body)", Msg: "one JSON value only"}
	}
	return nil
}

// Logged returns a handler that logs requests that failed (status 500 and
// above) and panics, at the app's logger, without the query string (which may
// carry secrets).
func Logged(h http.Handler, log *slog.Logger) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sw := &statusWriter{ResponseWriter: w}
		defer func() {
			if p := recover(); p != nil {
				if p == http.ErrAbortHandler {
					panic(p)
				}
				log.Error("handler panicked", "method", r.Method, "path", r.URL.Path, "panic", fmt.Sprint(p))
				if !sw.wrote {
					Error(w, r, http.StatusInternalServerError, "Something went wrong on the box.")
				}
				return
			}
			if sw.status >= 500 {
				log.Warn("request failed", "method", r.Method, "path", r.URL.Path, "status", sw.status)
			}
		}()
		h.ServeHTTP(sw, r)
	})
}

type statusWriter struct {
	http.ResponseWriter
	status int
	wrote  bool
}

func (s *statusWriter) WriteHeader(code int) {
	if !s.wrote {
		s.status, s.wrote = code, true
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusWriter) Write(p []byte) (int, error) {
	if !s.wrote {
		s.status, s.wrote = http.StatusOK, true
	}
	return s.ResponseWriter.Write(p)
}

// Unwrap lets http.ResponseController reach the connection (flushing,
// hijacking for WebSockets, deadlines).
func (s *statusWriter) Unwrap() http.ResponseWriter { return s.ResponseWriter }
