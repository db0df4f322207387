package ui

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"
)

// Member is a person of the team, as the team page shows them.
type Member struct {
	Name, Note string
	Created    time.Time
	Devices    []TeamDevice
}

// TeamDevice is one of a member's devices.
type TeamDevice struct {
	ID, Name, OS string
	Addrs        []string
	Online       bool
	LastSeen     time.Time
}

// PendingDevice is a device that asked to join by itself (a phone) and waits for
// the owner.
type PendingDevice struct {
	ID, Name, OS string
	Requested    time.Time
}

// Bundle is what a new member needs to join, shown once.
type Bundle struct {
	Member      string
	Expires     time.Time
	LoginServer string
	Shell       string // install script for Linux and macOS
	PowerShell  string // install script for Windows
	QR          []byte // PNG, for phones
	MobileSteps []string
	// CAFingerprint is the box's CA certificate's, which a phone installs.
	CAFingerprint string
}

// TeamStatus is the team mesh at a glance.
type TeamStatus struct {
	Configured     bool
	Reachable      bool
	Detail         string
	LoginServer    string
	ReachEachOther bool
}

// Team is the team mesh as the owner manages it; the daemon implements it.
type Team interface {
	Status() TeamStatus
	// Configure gives the box the team's Headscale address and an API key
	// (checked before they are kept).
	Configure(ctx context.Context, loginServer, apiKey string) error
	// AddPending takes the registration link a phone showed, for the owner to
	// approve.
	AddPending(ctx context.Context, link, name string) error
	Members(ctx context.Context) ([]Member, error)
	Pending(ctx context.Context) ([]PendingDevice, error)
	Add(ctx context.Context, name, note string) (Bundle, error)
	Reissue(ctx context.Context, name string) (Bundle, error)
	Rename(ctx context.Context, old, new string) error
	Remove(ctx context.Context, name string) error
	Approve(ctx context.Context, id, member string) error
	Reject(ctx context.Context, id string) error
	SetReachEachOther(ctx context.Context, on bool) error
}

// bundles holds freshly made bundles for the one page that shows them; each is
// readable once per file and gone after ten minutes.
type bundles struct {
	mu sync.Mutex
	m  map[string]*heldBundle
}

type heldBundle struct {
	b       Bundle
	expires time.Time
}

func (bs *bundles) put(b Bundle, now time.Time) string {
	raw := make([]byte, 16)
	rand.Read(raw)
	id := base64.RawURLEncoding.EncodeToString(raw)
	bs.mu.Lock()
	defer bs.mu.Unlock()
	if bs.m == nil {
		bs.m = map[string]*heldBundle{}
	}
	for k, v := range bs.m {
		if now.After(v.expires) {
			delete(bs.m, k)
		}
	}
	bs.m[id] = &heldBundle{b: b, expires: now.Add(10 * time.Minute)}
	return id
}

func (bs *bundles) get(id string, now time.Time) (Bundle, bool) {
	bs.mu.Lock()
	defer bs.mu.Unlock()
	h, ok := bs.m[id]
	if !ok || now.After(h.expires) {
		delete(bs.m, id)
		return Bundle{}, false
	}
	return h.b, true
}

func (bs *bundles) drop(id string) {
	bs.mu.Lock()
	delete(bs.m, id)
	bs.mu.Unlock()
}

// teamView is the team page's data.
type teamView struct {
	Status  TeamStatus
	Members []Member
	Pending []PendingDevice
	Err     string
	// Values are the owner's answers, kept when a form is refused.
	Values map[string]string
}

// teamError is a team change's error as the page says it: a *FieldError's
// message as it is, anything else as a sentence.
func teamError(err error) (field, msg string) {
	var fe *FieldError
	if errors.As(err, &fe) {
		return fe.Field, sentence(fe.Message)
	}
	return "", sentence(err.Error())
}

// withTeam answers "no team mesh" on a box without one.
func (u *UI) withTeam(next func(http.ResponseWriter, *http.Request, *session)) func(http.ResponseWriter, *http.Request, *session) {
	return func(w http.ResponseWriter, r *http.Request, s *session) {
		if u.d.Team == nil {
			u.fail(w, r, http.StatusNotFound, "This box has no team mesh.")
			return
		}
		next(w, r, s)
	}
}

func (u *UI) teamPage(w http.ResponseWriter, r *http.Request, s *session) {
	u.renderTeam(w, r, s, http.StatusOK, nil, "", nil)
}

func (u *UI) renderTeam(w http.ResponseWriter, r *http.Request, s *session, status int, fields map[string]string, msg string, values map[string]string) {
	if u.d.Team == nil {
		u.fail(w, r, http.StatusNotFound, "This box has no team mesh.")
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), 15*time.Second)
	defer cancel()
	v := teamView{Values: values}
	if u.d.Team.Status().Configured {
		// Asking Headscale first: the status below is then what it just said.
		var err error
		if v.Members, err = u.d.Team.Members(ctx); err != nil {
			_, v.Err = teamError(err)
		}
		v.Pending, _ = u.d.Team.Pending(ctx)
	}
	v.Status = u.d.Team.Status()
	_, notice := u.sess.takeFlash(s)
	u.render(w, r, status, "team", view{Title: "Team", CSRF: s.csrf, SignedIn: true, Data: v, Fields: fields, Error: msg, Notice: notice})
}

func (u *UI) teamAdd(w http.ResponseWriter, r *http.Request, s *session) {
	ctx, cancel := context.WithTimeout(r.Context(), 30*time.Second)
	defer cancel()
	name := strings.ToLower(strings.TrimSpace(r.PostFormValue("name")))
	note := strings.TrimSpace(r.PostFormValue("note"))
	b, err := u.d.Team.Add(ctx, name, note)
	if err != nil {
		field, msg := teamError(err)
		kept := map[string]string{"name": r.PostFormValue("name"), "note": note}
		if field == "" {
			u.renderTeam(w, r, s, http.StatusUnprocessableEntity, nil, name+" could not be added: "+msg, kept)
			return
		}
		u.renderTeam(w, r, s, http.StatusUnprocessableEntity, map[string]string{field: msg}, "", kept)
		return
	}
	u.logf(r, "member added", "member", name)
	http.Redirect(w, r, "/team/bundle/"+u.bundles.put(b, u.d.Now()), http.StatusSeeOther)
}

func (u *UI) teamReissue(w http.ResponseWriter, r *http.Request, s *session) {
	ctx, cancel := context.WithTimeout(r.Context(), 30*time.Second)
	defer cancel()
	name := r.PostFormValue("member")
	b, err := u.d.Team.Reissue(ctx, name)
	if err != nil {
		_, msg := teamError(err)
		u.renderTeam(w, r, s, http.StatusUnprocessableEntity, nil, "A new invitation could not be made: "+msg, nil)
		return
	}
	u.logf(r, "member invitation reissued", "member", name)
	http.Redirect(w, r, "/team/bundle/"+u.bundles.put(b, u.d.Now()), http.StatusSeeOther)
}

// teamBundle shows a new member's invitation: scripts, QR code, steps.
func (u *UI) teamBundle(w http.ResponseWriter, r *http.Request, s *session) {
	id := r.PathValue("id")
	b, ok := u.bundles.get(id, u.d.Now())
	if !ok {
		u.fail(w, r, http.StatusGone, "This invitation is no longer shown here (invitations are shown once, for ten minutes). Make a new one from the team page: the old key stops working.")
		return
	}
	u.render(w, r, http.StatusOK, "bundle", view{Title: "Invite " + b.Member, CSRF: s.csrf, SignedIn: true, Data: struct {
		ID string
		Bundle
	}{id, b}})
}

// teamBundleFile serves one file of an invitation.
func (u *UI) teamBundleFile(w http.ResponseWriter, r *http.Request, s *session) {
	b, ok := u.bundles.get(r.PathValue("id"), u.d.Now())
	if !ok {
		http.NotFound(w, r)
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	switch r.PathValue("file") {
	case "join.sh":
		w.Header().Set("Content-Type", "text/x-shellscript; charset=utf-8")
		w.Header().Set("Content-Disposition", fmt.Sprintf(`attachment; filename="join-%s.sh"`, b.Member))
		fmt.Fprint(w, b.Shell)
	case "join.ps1":
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Header().Set("Content-Disposition", fmt.Sprintf(`attachment; filename="join-%s.ps1"`, b.Member))
		fmt.Fprint(w, b.PowerShell)
	case "qr.png":
		w.Header().Set("Content-Type", "image/png")
		w.Write(b.QR)
	default:
		http.NotFound(w, r)
	}
}

func (u *UI) teamDone(w http.ResponseWriter, r *http.Request, s *session) {
	u.bundles.drop(r.PathValue("id"))
	http.Redirect(w, r, "/team", http.StatusSeeOther)
}

func (u *UI) teamRename(w http.ResponseWriter, r *http.Request, s *session) {
	ctx, cancel := context.WithTimeout(r.Context(), 30*time.Second)
	defer cancel()
	old, next := r.PostFormValue("member"), strings.ToLower(strings.TrimSpace(r.PostFormValue("new_name")))
	if err := u.d.Team.Rename(ctx, old, next); err != nil {
		_, msg := teamError(err)
		u.renderTeam(w, r, s, http.StatusUnprocessableEntity, nil, "“"+old+"” could not be renamed: "+msg, map[string]string{"rename:" + old: r.PostFormValue("new_name")})
		return
	}
	u.logf(r, "member renamed", "member", old, "to", next)
	u.sess.setFlash(s, "team", old+" is now called "+next+".")
	http.Redirect(w, r, "/team", http.StatusSeeOther)
}

func (u *UI) teamRemove(w http.ResponseWriter, r *http.Request, s *session) {
	ctx, cancel := context.WithTimeout(r.Context(), 30*time.Second)
	defer cancel()
	name := r.PostFormValue("member")
	if r.PostFormValue("confirm") != name {
		u.renderTeam(w, r, s, http.StatusUnprocessableEntity, nil, "To remove "+name+", type their name in the box next to the button.", nil)
		return
	}
	if err := u.d.Team.Remove(ctx, name); err != nil {
		_, msg := teamError(err)
		u.renderTeam(w, r, s, http.StatusUnprocessableEntity, nil, name+" could not be removed: "+msg, nil)
		return
	}
	u.logf(r, "member removed", "member", name)
	u.sess.setFlash(s, "team", name+" is no longer in the team.")
	http.Redirect(w, r, "/team", http.StatusSeeOther)
}

func (u *UI) teamPending(w http.ResponseWriter, r *http.Request, s *session) {
	ctx, cancel := context.WithTimeout(r.Context(), 30*time.Second)
	defer cancel()
	id := r.PostFormValue("id")
	var err error
	if r.PostFormValue("reject") != "" {
		err = u.d.Team.Reject(ctx, id)
	} else {
		err = u.d.Team.Approve(ctx, id, r.PostFormValue("member"))
	}
	if err != nil {
		_, msg := teamError(err)
		u.renderTeam(w, r, s, http.StatusUnprocessableEntity, nil, "The device could not be handled: "+msg, nil)
		return
	}
	u.logf(r, "pending device handled", "id", id, "reject", r.PostFormValue("reject") != "")
	u.sess.setFlash(s, "team", "Done.")
	http.Redirect(w, r, "/team", http.StatusSeeOther)
}

func (u *UI) teamConfigure(w http.ResponseWriter, r *http.Request, s *session) {
	ctx, cancel := context.WithTimeout(r.Context(), 45*time.Second)
	defer cancel()
	server := strings.TrimSpace(r.PostFormValue("login_server"))
	if err := u.d.Team.Configure(ctx, server, strings.TrimSpace(r.PostFormValue("api_key"))); err != nil {
		field, msg := teamError(err)
		u.renderTeam(w, r, s, http.StatusUnprocessableEntity, map[string]string{nonEmpty(field, "login_server"): msg}, "", map[string]string{"login_server": server})
		return
	}
	u.logf(r, "team mesh configured")
	u.sess.setFlash(s, "team", "The box is joining the team mesh.")
	http.Redirect(w, r, "/team", http.StatusSeeOther)
}

func (u *UI) teamAddPending(w http.ResponseWriter, r *http.Request, s *session) {
	ctx, cancel := context.WithTimeout(r.Context(), 30*time.Second)
	defer cancel()
	link, device := strings.TrimSpace(r.PostFormValue("link")), strings.TrimSpace(r.PostFormValue("device"))
	if err := u.d.Team.AddPending(ctx, link, device); err != nil {
		field, msg := teamError(err)
		u.renderTeam(w, r, s, http.StatusUnprocessableEntity, map[string]string{nonEmpty(field, "link"): msg}, "", map[string]string{"link": link, "device": device})
		return
	}
	u.sess.setFlash(s, "team", "The device waits for your approval below.")
	http.Redirect(w, r, "/team", http.StatusSeeOther)
}

func (u *UI) teamPolicy(w http.ResponseWriter, r *http.Request, s *session) {
	ctx, cancel := context.WithTimeout(r.Context(), 30*time.Second)
	defer cancel()
	on := r.PostFormValue("each_other") == "on"
	if err := u.d.Team.SetReachEachOther(ctx, on); err != nil {
		_, msg := teamError(err)
		u.renderTeam(w, r, s, http.StatusUnprocessableEntity, nil, "The team's rules could not be changed: "+msg, nil)
		return
	}
	u.logf(r, "team policy changed", "reach_each_other", on)
	u.sess.setFlash(s, "team", "Saved.")
	http.Redirect(w, r, "/team", http.StatusSeeOther)
}
