package ui

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"net/http"
	"sync"
	"time"
)

// Session cookie names. Over HTTPS the __Host- prefix makes the browser refuse the
// cookie unless it is Secure, host-only and for the whole site.
const (
	sessionCookie = "__Host-redoubt"
	setupCookie   = "redoubt_setup"
)

const (
	idleTimeout  = 15 * time.Minute
	maxLifetime  = 12 * time.Hour
	maxSessions  = 32
	tokenEntropy = 32
)

// session is one signed-in browser.
type session struct {
	csrf    string
	created time.Time
	last    time.Time
	// flash is what the next page tells the owner about what they just did,
	// and where (a settings section's ID); guarded by sessions.mu.
	flash, flashAt string
}

// sessions holds signed-in browsers, keyed by the hash of their cookie, so a
// memory dump does not hand out valid cookies. They live in memory only: a restart
// or a lock signs everyone out.
type sessions struct {
	now func() time.Time
	mu  sync.Mutex
	m   map[[32]byte]*session
}

func newSessions(now func() time.Time) *sessions {
	return &sessions{now: now, m: make(map[[32]byte]*session)}
}

func randomToken() string {
	b := make([]byte, tokenEntropy)
	rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

// create starts a session and returns its cookie value.
func (s *sessions) create() string {
	tok := randomToken()
	now := s.now()
	s.mu.Lock()
	defer s.mu.Unlock()
	s.expireLocked(now)
	if len(s.m) >= maxSessions { // drop the least recently used
		var oldest [32]byte
		var t time.Time
		for k, v := range s.m {
			if t.IsZero() || v.last.Before(t) {
				oldest, t = k, v.last
			}
		}
		delete(s.m, oldest)
	}
	s.m[sha256.Sum256([]byte(tok))] = &session{csrf: randomToken(), created: now, last: now}
	return tok
}

// get returns the live session for a cookie value and marks it used.
func (s *sessions) get(tok string) *session {
	if tok == "" {
		return nil
	}
	now := s.now()
	s.mu.Lock()
	defer s.mu.Unlock()
	k := sha256.Sum256([]byte(tok))
	ss := s.m[k]
	if ss == nil {
		return nil
	}
	if now.Sub(ss.last) > idleTimeout || now.Sub(ss.created) > maxLifetime {
		delete(s.m, k)
		return nil
	}
	ss.last = now
	return ss
}

func (s *sessions) end(tok string) {
	s.mu.Lock()
	delete(s.m, sha256.Sum256([]byte(tok)))
	s.mu.Unlock()
}

// endAll signs every browser out (lock, passphrase change, reset).
func (s *sessions) endAll() {
	s.mu.Lock()
	clear(s.m)
	s.mu.Unlock()
}

func (s *sessions) expireLocked(now time.Time) {
	for k, v := range s.m {
		if now.Sub(v.last) > idleTimeout || now.Sub(v.created) > maxLifetime {
			delete(s.m, k)
		}
	}
}

// setFlash keeps a message for the session's next page.
func (s *sessions) setFlash(ss *session, at, text string) {
	s.mu.Lock()
	ss.flash, ss.flashAt = text, at
	s.mu.Unlock()
}

// takeFlash returns the session's message and forgets it.
func (s *sessions) takeFlash(ss *session) (at, text string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	at, text = ss.flashAt, ss.flash
	ss.flash, ss.flashAt = "", ""
	return at, text
}

func (s *sessions) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.m)
}

// setCookie sets a session-type cookie: HttpOnly, SameSite=Strict, Secure over
// HTTPS.
func setCookie(w http.ResponseWriter, r *http.Request, name, value string, maxAge int) {
	c := &http.Cookie{
		Name:     name,
		Value:    value,
		Path:     "/",
		HttpOnly: true,
		SameSite: http.SameSiteStrictMode,
		Secure:   r.TLS != nil,
		MaxAge:   maxAge,
	}
	if name == sessionCookie && r.TLS == nil {
		// The __Host- prefix requires Secure; a plain-HTTP sign-in never
		// happens (HTTP redirects to HTTPS once setup is done).
		return
	}
	http.SetCookie(w, c)
}

func cookieValue(r *http.Request, name string) string {
	c, err := r.Cookie(name)
	if err != nil {
		return ""
	}
	return c.Value
}

// validCSRF compares a submitted token with the session's.
func validCSRF(want, got string) bool {
	return want != "" && subtle.ConstantTimeCompare([]byte(want), []byte(got)) == 1
}
