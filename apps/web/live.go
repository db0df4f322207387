package web

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/coder/websocket"
)

// Heartbeat is how often live feeds show they are alive, so proxies and
// phones' networks keep idle connections open and dead ones are noticed.
const Heartbeat = 15 * time.Second

// EventStream is a server-sent events response.
type EventStream struct {
	w  http.ResponseWriter
	rc *http.ResponseController
	mu sync.Mutex
}

// NewEventStream starts a server-sent events response; retry tells the
// browser how long to wait before reconnecting.
func NewEventStream(w http.ResponseWriter, r *http.Request, retry time.Duration) (*EventStream, error) {
	rc := http.NewResponseController(w)
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	if _, err := fmt.Fprintf(w, "retry: %d\n\n", retry.Milliseconds()); err != nil {
		return nil, err
	}
	// No deadline for a feed that lives as long as the page.
	rc.SetWriteDeadline(time.Time{})
	if err := rc.Flush(); err != nil {
		return nil, fmt.Errorf("server-sent events need a flushing writer: %w", err)
	}
	return &EventStream{w: w, rc: rc}, nil
}

// Send sends one event: its name (empty for "message"), an ID the browser
// sends back as Last-Event-ID when it reconnects (empty for none), and v as
// JSON.
func (s *EventStream) Send(event, id string, v any) error {
	data, err := json.Marshal(v)
	if err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	var b strings.Builder
	if event != "" {
		b.WriteString("event: " + oneLine(event) + "\n")
	}
	if id != "" {
		b.WriteString("id: " + oneLine(id) + "\n")
	}
	b.WriteString("data: ")
	b.Write(data) // JSON has no raw newlines
	b.WriteString("\n\n")
	if _, err := io.WriteString(s.w, b.String()); err != nil {
		return err
	}
	return s.rc.Flush()
}

// Ping sends a comment, which keeps the connection alive.
func (s *EventStream) Ping() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, err := io.WriteString(s.w, ": ping\n\n"); err != nil {
		return err
	}
	return s.rc.Flush()
}

func oneLine(s string) string { return strings.NewReplacer("\n", " ", "\r", " ").Replace(s) }

// Stream sends every value from ch as an event until ch closes, the request
// ends or a send fails, with a ping every Heartbeat in between.
func Stream[T any](ctx context.Context, s *EventStream, event string, ch <-chan T) error {
	t := time.NewTicker(Heartbeat)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case v, ok := <-ch:
			if !ok {
				return nil
			}
			if err := s.Send(event, "", v); err != nil {
				return err
			}
		case <-t.C:
			if err := s.Ping(); err != nil {
				return err
			}
		}
	}
}

// WebSocketOptions bound an accepted WebSocket.
type WebSocketOptions struct {
	// ReadLimit is the largest message accepted (default 64 KiB); a larger
	// one closes the connection with "message too big".
	ReadLimit int64
	// Subprotocols the app speaks, if any.
	Subprotocols []string
}

// AcceptWebSocket upgrades the request to a WebSocket, refusing pages of
// other origins (the Origin header must name the request's host: a page
// elsewhere cannot open a socket with the user's identity). Compression is
// off: it costs the box's CPU and mixes secrets with attacker-chosen text.
func AcceptWebSocket(w http.ResponseWriter, r *http.Request, o WebSocketOptions) (*websocket.Conn, error) {
	c, err := websocket.Accept(w, r, &websocket.AcceptOptions{
		Subprotocols:    o.Subprotocols,
		CompressionMode: websocket.CompressionDisabled,
	})
	if err != nil {
		return nil, err
	}
	if o.ReadLimit == 0 {
		o.ReadLimit = 64 << 10
	}
	c.SetReadLimit(o.ReadLimit)
	return c, nil
}

// KeepAlive pings c every Heartbeat until ctx ends or a ping goes
// unanswered for a Heartbeat, then closes c. Run it in its own goroutine;
// pings are answered only while someone reads from c.
func KeepAlive(ctx context.Context, c *websocket.Conn) {
	t := time.NewTicker(Heartbeat)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			pctx, cancel := context.WithTimeout(ctx, Heartbeat)
			err := c.Ping(pctx)
			cancel()
			if err != nil {
				if ctx.Err() == nil {
					c.Close(websocket.StatusGoingAway, "no answer to pings")
				}
				return
			}
		}
	}
}

// Feed fans values out to subscribers, each with a bounded queue: a
// subscriber that falls behind (a phone on a bad network) is dropped — its
// channel closes — instead of stalling the others; its client reconnects and
// catches up from its own last position.
type Feed[T any] struct {
	mu   sync.Mutex
	buf  int
	subs map[chan T]struct{}
}

// NewFeed returns a Feed whose subscribers queue at most buf values.
func NewFeed[T any](buf int) *Feed[T] {
	return &Feed[T]{buf: max(buf, 1), subs: map[chan T]struct{}{}}
}

// Subscribe returns a channel of what is published from now on, and a
// function that ends the subscription (safe to call more than once).
func (f *Feed[T]) Subscribe() (<-chan T, func()) {
	c := make(chan T, f.buf)
	f.mu.Lock()
	f.subs[c] = struct{}{}
	f.mu.Unlock()
	return c, func() {
		f.mu.Lock()
		defer f.mu.Unlock()
		if _, ok := f.subs[c]; ok {
			delete(f.subs, c)
			close(c)
		}
	}
}

// Publish sends v to every subscriber, dropping those whose queue is full.
// It never blocks. It returns how many were dropped.
func (f *Feed[T]) Publish(v T) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	dropped := 0
	for c := range f.subs {
		select {
		case c <- v:
		default:
			delete(f.subs, c)
			close(c)
			dropped++
		}
	}
	return dropped
}

// Close ends every subscription.
func (f *Feed[T]) Close() {
	f.mu.Lock()
	defer f.mu.Unlock()
	for c := range f.subs {
		close(c)
	}
	clear(f.subs)
}

// Len is how many subscribe now.
func (f *Feed[T]) Len() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.subs)
}

// IsClosed reports whether err means the other side of a WebSocket went
// away (rather than a failure worth logging).
func IsClosed(err error) bool {
	if err == nil {
		return false
	}
	var ce websocket.CloseError
	return errors.As(err, &ce) || errors.Is(err, io.EOF) || errors.Is(err, context.Canceled) ||
		strings.Contains(err.Error(), "use of closed network connection") || strings.Contains(err.Error(), "failed to read frame header")
}
