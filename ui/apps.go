package ui

import (
	"errors"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/skip2/go-qrcode"

	"github.com/redoubt/redoubt/apps"
)

// Apps is the apps as the owner manages them (the apps' host); nil on a box
// without apps.
type Apps interface {
	List() []apps.Status
	Info(id string) (apps.Info, error)
	// Enable starts an app now; Disable stops it.
	Enable(id string) error
	Disable(id string) error
	// SetOption checks and applies an option; an *apps.OptionError says
	// what is accepted.
	SetOption(id, name, value string) (string, error)
	Passwords(id string) ([]apps.Password, error)
	AddPassword(id, label string) (string, error)
	RevokePassword(id, label string) error
	// Handoff returns a one-time link that signs the owner's browser into
	// the app's own origin.
	Handoff(id, next string) (string, error)
}

// appsRoutes adds the Apps page and what it posts.
func (u *UI) appsRoutes(mux *http.ServeMux) {
	mux.HandleFunc("GET /apps", u.signedIn(u.withApps(u.appsPage)))
	mux.HandleFunc("GET /apps/{id}", u.signedIn(u.withApps(u.appPage)))
	mux.HandleFunc("GET /apps/{id}/open", u.signedIn(u.withApps(u.appOpen)))
	mux.HandleFunc("GET /apps/{id}/qr.png", u.signedIn(u.withApps(u.appQR)))
	mux.HandleFunc("POST /apps/{id}/enable", u.signedIn(u.changed(u.withApps(u.appEnable))))
	mux.HandleFunc("POST /apps/{id}/disable", u.signedIn(u.changed(u.withApps(u.appDisable))))
	mux.HandleFunc("POST /apps/{id}/options", u.signedIn(u.changed(u.withApps(u.appOptions))))
	mux.HandleFunc("POST /apps/{id}/passwords", u.signedIn(u.changed(u.withApps(u.appPasswordAdd))))
	mux.HandleFunc("POST /apps/{id}/passwords/revoke", u.signedIn(u.changed(u.withApps(u.appPasswordRevoke))))
}

func (u *UI) withApps(next func(http.ResponseWriter, *http.Request, *session)) func(http.ResponseWriter, *http.Request, *session) {
	return func(w http.ResponseWriter, r *http.Request, s *session) {
		if u.d.Apps == nil {
			u.fail(w, r, http.StatusNotFound, "This box hosts no apps.")
			return
		}
		next(w, r, s)
	}
}

func (u *UI) appsPage(w http.ResponseWriter, r *http.Request, s *session) {
	u.render(w, r, http.StatusOK, "apps", view{Title: "Apps", CSRF: s.csrf, SignedIn: true, Data: u.d.Apps.List(),
		Notice: r.URL.Query().Get("done")})
}

// appView is one app's page.
type appView struct {
	apps.Info
	Options   []optionView
	Passwords []apps.Password
	// NewPassword is a password just made, shown this once.
	NewPassword, NewLabel string
	LAN                   bool
}

type optionView struct {
	apps.Option
	Value   string
	Accepts string
	Choices []string
}

func (u *UI) renderApp(w http.ResponseWriter, r *http.Request, s *session, status int, fields map[string]string, msg string, extra func(*appView)) {
	info, err := u.d.Apps.Info(r.PathValue("id"))
	if err != nil {
		u.notFound(w, r) // Info fails only for an unknown app
		return
	}
	v := appView{Info: info, LAN: info.Manifest.Exposed(apps.LAN)}
	for _, o := range info.Manifest.Options {
		ov := optionView{Option: o, Value: info.Options[o.Name], Accepts: o.Accepts(), Choices: o.Choices}
		if o.Type == apps.Bool {
			ov.Choices = []string{"true", "false"}
		}
		v.Options = append(v.Options, ov)
	}
	v.Passwords, _ = u.d.Apps.Passwords(info.ID)
	if extra != nil {
		extra(&v)
	}
	u.render(w, r, status, "app", view{Title: info.Name, CSRF: s.csrf, SignedIn: true, Data: v, Fields: fields, Error: msg,
		Notice: r.URL.Query().Get("done")})
}

func (u *UI) appPage(w http.ResponseWriter, r *http.Request, s *session) {
	u.renderApp(w, r, s, http.StatusOK, nil, "", nil)
}

// appOpen sends the signed-in owner to the app's own origin with a one-time
// link: no password on the way.
func (u *UI) appOpen(w http.ResponseWriter, r *http.Request, s *session) {
	link, err := u.d.Apps.Handoff(r.PathValue("id"), r.URL.Query().Get("next"))
	if err != nil {
		u.fail(w, r, http.StatusConflict, "The app could not be opened: "+err.Error())
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Referrer-Policy", "no-referrer")
	http.Redirect(w, r, link, http.StatusSeeOther)
}

// appQR is the QR code of one of the app's connect URLs (?n= its index).
func (u *UI) appQR(w http.ResponseWriter, r *http.Request, s *session) {
	info, err := u.d.Apps.Info(r.PathValue("id"))
	n, nerr := strconv.Atoi(r.URL.Query().Get("n"))
	if err != nil || nerr != nil || n < 0 || n >= len(info.Connect) {
		http.NotFound(w, r)
		return
	}
	png, err := qrcode.Encode(info.Connect[n].URL, qrcode.Medium, 256)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "image/png")
	w.Header().Set("Cache-Control", "no-store")
	w.Write(png)
}

func (u *UI) appEnable(w http.ResponseWriter, r *http.Request, s *session) {
	id := r.PathValue("id")
	if err := u.d.Apps.Enable(id); err != nil {
		u.renderApp(w, r, s, http.StatusConflict, nil, "The app did not start: "+err.Error(), nil)
		return
	}
	u.logf(r, "app started", "app", id)
	http.Redirect(w, r, "/apps?done="+url.QueryEscape("Started."), http.StatusSeeOther)
}

func (u *UI) appDisable(w http.ResponseWriter, r *http.Request, s *session) {
	id := r.PathValue("id")
	if err := u.d.Apps.Disable(id); err != nil {
		u.renderApp(w, r, s, http.StatusConflict, nil, err.Error(), nil)
		return
	}
	u.logf(r, "app stopped", "app", id)
	http.Redirect(w, r, "/apps?done="+url.QueryEscape("Stopped."), http.StatusSeeOther)
}

// appOptions applies the options form: every value that changed, each
// checked; the first refused is shown next to its field, the others kept.
func (u *UI) appOptions(w http.ResponseWriter, r *http.Request, s *session) {
	id := r.PathValue("id")
	info, err := u.d.Apps.Info(id)
	if err != nil {
		u.notFound(w, r) // Info fails only for an unknown app
		return
	}
	fields := map[string]string{}
	changed := 0
	for _, o := range info.Manifest.Options {
		v, ok := r.PostForm["opt-"+o.Name]
		if !ok {
			if o.Type != apps.Bool {
				continue
			}
			v = []string{"false"} // an unticked box sends nothing
		}
		val := strings.TrimSpace(v[len(v)-1])
		if o.Type == apps.Bool && val == "on" {
			val = "true"
		}
		if canon, err := o.Parse(val); err == nil && canon == info.Options[o.Name] {
			continue
		}
		if _, err := u.d.Apps.SetOption(id, o.Name, val); err != nil {
			var oe *apps.OptionError
			if errors.As(err, &oe) {
				fields["opt-"+o.Name] = "Want " + o.Accepts() + "."
			} else {
				fields["opt-"+o.Name] = err.Error()
			}
			continue
		}
		changed++
	}
	if len(fields) > 0 {
		u.renderApp(w, r, s, http.StatusUnprocessableEntity, fields, "Some options were not changed: see below.", nil)
		return
	}
	u.logf(r, "app options changed", "app", id, "changed", changed)
	http.Redirect(w, r, "/apps/"+url.PathEscape(id)+"?done="+url.QueryEscape("Saved."), http.StatusSeeOther)
}

func (u *UI) appPasswordAdd(w http.ResponseWriter, r *http.Request, s *session) {
	id := r.PathValue("id")
	label := strings.TrimSpace(r.PostFormValue("label"))
	pw, err := u.d.Apps.AddPassword(id, label)
	if err != nil {
		u.renderApp(w, r, s, http.StatusUnprocessableEntity, map[string]string{"label": err.Error()}, "", nil)
		return
	}
	u.logf(r, "app password added", "app", id, "label", label)
	w.Header().Set("Cache-Control", "no-store")
	u.renderApp(w, r, s, http.StatusOK, nil, "", func(v *appView) { v.NewPassword, v.NewLabel = pw, label })
}

func (u *UI) appPasswordRevoke(w http.ResponseWriter, r *http.Request, s *session) {
	id := r.PathValue("id")
	label := r.PostFormValue("label")
	if err := u.d.Apps.RevokePassword(id, label); err != nil {
		u.renderApp(w, r, s, http.StatusUnprocessableEntity, nil, err.Error(), nil)
		return
	}
	u.logf(r, "app password revoked", "app", id, "label", label)
	http.Redirect(w, r, "/apps/"+url.PathEscape(id)+"?done="+url.QueryEscape("Revoked."), http.StatusSeeOther)
}

// lanOrigin is the app's LAN origin among the published ones ("" if none).
func lanOrigin(os []apps.Origin) string {
	i := slices.IndexFunc(os, func(o apps.Origin) bool { return o.Network == apps.LAN })
	if i < 0 {
		return ""
	}
	return os[i].URL
}
