package host

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base32"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/redoubt/redoubt/apps"
	"github.com/redoubt/redoubt/vault"
)

// How the owner gets into an app on the LAN without a password: the owner's
// pages (signed in) ask the host for a hand-off link to the app's origin; the
// link's token works once, for a minute, and turns into a session cookie of
// that origin alone (__Host-: Secure, host-only, path /; HttpOnly;
// SameSite=Strict). Sessions live in memory: a lock or a restart ends them.
const (
	sessionCookie = "__Host-redoubt-app"
	handoffPath   = "/.redoubt/handoff"
	handoffLife   = time.Minute
	sessionIdle   = 12 * time.Hour
	sessionMax    = 24 * time.Hour
	maxSessions   = 64
	maxPasswords  = 32
)

type auth struct {
	h  *Host
	mu sync.Mutex
	// handoffs and sessions are keyed by the SHA-256 of their secret, so
	// memory shows no usable token.
	handoffs map[[32]byte]handoff
	sessions map[[32]byte]*session
}

type handoff struct {
	app     string
	next    string
	expires time.Time
}

type session struct {
	app           string
	created, last time.Time
}

func newAuth(h *Host) *auth {
	return &auth{h: h, handoffs: map[[32]byte]handoff{}, sessions: map[[32]byte]*session{}}
}

func token() (string, [32]byte) {
	b := make([]byte, 32)
	rand.Read(b)
	t := base64.RawURLEncoding.EncodeToString(b)
	return t, sha256.Sum256([]byte(t))
}

// Handoff returns a link that signs the owner's browser into the app's LAN
// origin, once, within a minute: the owner's pages call it for a signed-in
// owner and send the browser there. next is the app's path to land on.
func (h *Host) Handoff(id, next string) (string, error) {
	in, err := h.app(id)
	if err != nil {
		return "", err
	}
	if !h.isUnlocked() {
		return "", errLocked
	}
	if _, ok := in.m.Web(); !ok || !in.m.Exposed(apps.LAN) {
		return "", fmt.Errorf("%s is not served on the LAN", in.m.Name)
	}
	t, k := token()
	a := h.auth
	a.mu.Lock()
	now := h.d.Now()
	for hk, ho := range a.handoffs {
		if now.After(ho.expires) {
			delete(a.handoffs, hk)
		}
	}
	a.handoffs[k] = handoff{app: id, next: safeNext(next), expires: now.Add(handoffLife)}
	a.mu.Unlock()
	return "https://" + h.lanHosts(id)[0] + handoffPath + "?t=" + url.QueryEscape(t), nil
}

// safeNext keeps a landing path on the app's own origin.
func safeNext(p string) string {
	if p == "" || !strings.HasPrefix(p, "/") || strings.HasPrefix(p, "//") || strings.HasPrefix(p, "/\\") ||
		strings.ContainsAny(p, "\r\n\x00") || strings.HasPrefix(p, "/.redoubt/") || len(p) > 2048 {
		return "/"
	}
	return p
}

// takeHandoff redeems a hand-off token for the app: a session cookie, and
// the browser sent on to where the owner was going.
func (a *auth) takeHandoff(w http.ResponseWriter, r *http.Request, in *instance) {
	k := sha256.Sum256([]byte(r.URL.Query().Get("t")))
	now := a.h.d.Now()
	a.mu.Lock()
	ho, ok := a.handoffs[k]
	delete(a.handoffs, k)
	a.mu.Unlock()
	if !ok || ho.app != in.m.ID || now.After(ho.expires) {
		a.h.page(w, r, http.StatusForbidden, in, "This link has expired or was used already.",
			"Open "+in.m.Name+" again from the box's Apps page.")
		return
	}
	t, sk := token()
	a.mu.Lock()
	if len(a.sessions) >= maxSessions {
		var oldest [32]byte
		var when time.Time
		for k, s := range a.sessions {
			if when.IsZero() || s.last.Before(when) {
				oldest, when = k, s.last
			}
		}
		delete(a.sessions, oldest)
	}
	a.sessions[sk] = &session{app: in.m.ID, created: now, last: now}
	a.mu.Unlock()
	http.SetCookie(w, &http.Cookie{Name: sessionCookie, Value: t, Path: "/", Secure: true, HttpOnly: true,
		SameSite: http.SameSiteStrictMode, MaxAge: int(sessionMax / time.Second)})
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Referrer-Policy", "no-referrer")
	http.Redirect(w, r, ho.next, http.StatusSeeOther)
}

// sessionOf returns whether the request carries a live session of the app.
func (a *auth) sessionOf(r *http.Request, in *instance) bool {
	c, err := r.Cookie(sessionCookie)
	if err != nil || c.Value == "" {
		return false
	}
	k := sha256.Sum256([]byte(c.Value))
	now := a.h.d.Now()
	a.mu.Lock()
	defer a.mu.Unlock()
	s := a.sessions[k]
	if s == nil || s.app != in.m.ID {
		return false
	}
	if now.Sub(s.last) > sessionIdle || now.Sub(s.created) > sessionMax {
		delete(a.sessions, k)
		return false
	}
	s.last = now
	return true
}

// forgetAll ends every session and hand-off (the box was locked).
func (a *auth) forgetAll() {
	a.mu.Lock()
	clear(a.sessions)
	clear(a.handoffs)
	a.mu.Unlock()
}

// --- app passwords, for native clients on the LAN ---

type storedPassword struct {
	apps.Password
	Hash string `json:"hash"` // SHA-256 of the secret (which has 160 random bits)
}

var passwordEncoding = base32.StdEncoding.WithPadding(base32.NoPadding)

func (h *Host) passwords(id string) ([]storedPassword, error) {
	raw, err := h.d.Vault.Get(vaultBucket, passwordsName(id))
	switch {
	case errors.Is(err, vault.ErrNotFound):
		return nil, nil
	case errors.Is(err, vault.ErrLocked):
		return nil, errLocked
	case err != nil:
		return nil, err
	}
	var ps []storedPassword
	if err := json.Unmarshal(raw, &ps); err != nil {
		return nil, fmt.Errorf("%s's app passwords in the vault are damaged: %w", id, err)
	}
	return ps, nil
}

func (h *Host) putPasswords(id string, ps []storedPassword) error {
	raw, _ := json.Marshal(ps)
	return h.d.Vault.Put(vaultBucket, passwordsName(id), raw)
}

// Passwords lists an app's passwords.
func (h *Host) Passwords(id string) ([]apps.Password, error) {
	if _, err := h.app(id); err != nil {
		return nil, err
	}
	ps, err := h.passwords(id)
	out := make([]apps.Password, len(ps))
	for i, p := range ps {
		out[i] = p.Password
	}
	return out, err
}

// checkLabel names a password's device: 1 to 40 letters, digits, spaces,
// dots, hyphens and underscores.
func checkLabel(l string) error {
	if l == "" || utf8.RuneCountInString(l) > 40 {
		return fmt.Errorf("label %q: 1 to 40 characters naming the device, such as macbook-finder", l)
	}
	for _, r := range l {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune(" .-_", r)) {
			return fmt.Errorf("label %q: letters, digits, spaces, dots, hyphens and underscores only", l)
		}
	}
	return nil
}

// AddPassword makes a password for a native client of the app on the LAN
// (a WebDAV client, rclone) and returns it: it is shown once and kept only
// as a hash.
func (h *Host) AddPassword(id, label string) (string, error) {
	in, err := h.app(id)
	if err != nil {
		return "", err
	}
	if err := checkLabel(label); err != nil {
		return "", err
	}
	if !in.m.Exposed(apps.LAN) {
		return "", fmt.Errorf("%s is not served on the LAN: app passwords are for the owner's devices there", in.m.Name)
	}
	in.optMu.Lock()
	defer in.optMu.Unlock()
	ps, err := h.passwords(id)
	if err != nil {
		return "", err
	}
	if slices.ContainsFunc(ps, func(p storedPassword) bool { return strings.EqualFold(p.Label, label) }) {
		return "", fmt.Errorf("%s has a password labelled %q already: revoke it first", in.m.Name, label)
	}
	if len(ps) >= maxPasswords {
		return "", fmt.Errorf("%s has %d passwords, the most it keeps: revoke one first", in.m.Name, len(ps))
	}
	b := make([]byte, 20)
	rand.Read(b)
	raw := strings.ToLower(passwordEncoding.EncodeToString(b))
	var groups []string
	for i := 0; i < len(raw); i += 4 {
		groups = append(groups, raw[i:min(i+4, len(raw))])
	}
	secret := strings.Join(groups, "-")
	sum := sha256.Sum256([]byte(secret))
	ps = append(ps, storedPassword{Password: apps.Password{Label: label, Created: h.d.Now().UTC()}, Hash: fmt.Sprintf("%x", sum)})
	if err := h.putPasswords(id, ps); err != nil {
		return "", err
	}
	in.log.Info("app password added", "label", label)
	return secret, nil
}

// RevokePassword removes an app password; clients using it are refused from
// their next request, and their connections closed now.
func (h *Host) RevokePassword(id, label string) error {
	in, err := h.app(id)
	if err != nil {
		return err
	}
	in.optMu.Lock()
	defer in.optMu.Unlock()
	ps, err := h.passwords(id)
	if err != nil {
		return err
	}
	i := slices.IndexFunc(ps, func(p storedPassword) bool { return strings.EqualFold(p.Label, label) })
	if i < 0 {
		return fmt.Errorf("%s has no password labelled %q", in.m.Name, label)
	}
	ps = slices.Delete(ps, i, i+1)
	if err := h.putPasswords(id, ps); err != nil {
		return err
	}
	h.net.closeConns(func(c *connInfo) bool { return c.network == apps.LAN && c.app() == in })
	in.log.Info("app password revoked", "label", label)
	return nil
}

// checkPassword returns the label of the app password the request's Basic
// authorization carries ("" for none that matches).
func (h *Host) checkPassword(r *http.Request, in *instance) string {
	_, pw, ok := r.BasicAuth()
	if !ok || pw == "" || len(pw) > 200 {
		return ""
	}
	ps, err := h.passwords(in.m.ID)
	if err != nil {
		return ""
	}
	sum := fmt.Sprintf("%x", sha256.Sum256([]byte(strings.ToLower(strings.TrimSpace(pw)))))
	label := ""
	for _, p := range ps {
		if subtle.ConstantTimeCompare([]byte(p.Hash), []byte(sum)) == 1 {
			label = p.Label
		}
	}
	return label
}

// lanCaller authenticates a LAN request: a session the owner's pages handed
// over, or an app password. Without either, a browser is sent to the
// owner's pages to open the app from there; other clients are asked for a
// password.
func (h *Host) lanCaller(w http.ResponseWriter, r *http.Request, in *instance, info *connInfo) (apps.Caller, bool) {
	c := apps.Caller{Owner: true, Network: apps.LAN, Addr: info.remote}
	if h.auth.sessionOf(r, in) {
		c.Device = "browser"
		return c, true
	}
	if label := h.checkPassword(r, in); label != "" {
		c.Device = label
		return c, true
	}
	if r.Method == http.MethodGet && strings.Contains(r.Header.Get("Accept"), "text/html") && r.Header.Get("Authorization") == "" {
		if admin := h.d.AdminURL(); admin != "" {
			http.Redirect(w, r, admin+"/apps/"+in.m.ID+"/open?next="+url.QueryEscape(safeNext(r.URL.RequestURI())), http.StatusSeeOther)
			return c, false
		}
	}
	w.Header().Set("WWW-Authenticate", fmt.Sprintf(`Basic realm=%q, charset="UTF-8"`, in.m.Name+" on the box"))
	h.page(w, r, http.StatusUnauthorized, in, "Sign in to use "+in.m.Name+".",
		"Open it from the box's Apps page in a browser, or use an app password the owner made for this device.")
	return c, false
}
