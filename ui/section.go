package ui

import (
	"context"
	"errors"
	"io"
	"mime/multipart"
	"net/http"
	"strings"
	"time"
)

// Section is a part of the settings page that another room adds (the VPN, the
// team mesh, apps): its state in plain words, a form, and buttons. The settings
// page lists every section in Deps.Sections, in order, after the box's own name
// and address; each is reached at /settings#<ID> and posts to /settings/<ID>. A
// room whose choice the setup wizard also asks gives the wizard a Step with the
// same fields, so whatever the wizard set can be changed here later.
type Section interface {
	// ID names the section: a lower-case word, unique on the page.
	ID() string
	Title() string
	// Intro says in plain words what the part of the box is for.
	Intro() string
	// State says how the part is doing and, when it is not well, what to do.
	// It must be quick: the page asks every section each time it is shown.
	State() SectionState
	// Fields are the form's inputs, with their current values (never a
	// secret's).
	Fields() []Field
	// Actions are the form's buttons; the first is the one Enter presses.
	Actions() []Action
	// Submit does the action the owner chose with the form's values (only
	// the fields when the action takes them). It returns what to tell the
	// owner, or an error: a *FieldError is shown next to its field, any other
	// error above the form.
	Submit(ctx context.Context, action string, values map[string]string) (notice string, err error)
}

// SectionState is how a part of the box is doing.
type SectionState struct {
	// State is "up", "connecting", "down", "not configured" or "off" (it
	// picks the colour); Label says it to the owner ("Up", "Not set up").
	State, Label string
	// Detail says what is going on; Todo what to do about it ("" when all is
	// well).
	Detail, Todo string
	// Facts are details worth seeing: the VPN's exit address, a server.
	Facts []Fact
}

// Fact is one labelled detail of a section's state.
type Fact struct{ Label, Value string }

// Action is a button of a section.
type Action struct {
	Name, Label string
	// Style is "" (the main action), "secondary" or "danger".
	Style string
	// Fields: the action sends the form's fields (Save); the others (Test,
	// Remove) send none, and the browser does not check the fields first.
	Fields bool
	// Confirm, when set, is what the owner must tick first (Remove): the
	// button sits apart, behind a disclosure.
	Confirm string
}

// sectionTimeout bounds a section's Submit (a test of a server through the VPN
// can take a while).
const sectionTimeout = 60 * time.Second

// maxUpload bounds a file given in a section's form (a WireGuard config is a few
// hundred bytes).
const maxUpload = 64 << 10

// sectionView is a section as the settings page shows it.
type sectionView struct {
	ID, Title, Intro string
	State            SectionState
	Fields           []Field
	Actions          []Action
	Confirms         []Action
	Error, Notice    string
	Errors           map[string]string
	Values           map[string]string
}

func viewSection(s Section) sectionView {
	v := sectionView{ID: s.ID(), Title: s.Title(), Intro: s.Intro(), State: s.State(), Fields: s.Fields()}
	for _, a := range s.Actions() {
		if a.Confirm != "" {
			v.Confirms = append(v.Confirms, a)
		} else {
			v.Actions = append(v.Actions, a)
		}
	}
	return v
}

func (u *UI) section(id string) Section {
	for _, s := range u.d.Sections {
		if s.ID() == id {
			return s
		}
	}
	return nil
}

// sectionValues reads a section's fields from the form: a file given for a
// field that takes one wins over its text.
func sectionValues(r *http.Request, fields []Field) (map[string]string, error) {
	values := map[string]string{}
	for _, f := range fields {
		values[f.Name] = r.PostFormValue(f.Name)
		if !f.Upload || r.MultipartForm == nil {
			continue
		}
		fhs := r.MultipartForm.File[f.Name+"_file"]
		if len(fhs) == 0 || fhs[0].Size == 0 {
			continue
		}
		text, err := readUpload(fhs[0])
		if err != nil {
			return values, &FieldError{f.Name, err.Error()}
		}
		values[f.Name] = text
	}
	return values, nil
}

func readUpload(fh *multipart.FileHeader) (string, error) {
	if fh.Size > maxUpload {
		return "", errors.New("That file is too large for this (at most 64 KiB).")
	}
	f, err := fh.Open()
	if err != nil {
		return "", errors.New("The file could not be read. Try again, or paste its text.")
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxUpload+1))
	if err != nil || len(b) > maxUpload {
		return "", errors.New("The file could not be read. Try again, or paste its text.")
	}
	return string(b), nil
}

// sectionSubmit handles a section's form.
func (u *UI) sectionSubmit(w http.ResponseWriter, r *http.Request, s *session) {
	sec := u.section(r.PathValue("id"))
	if sec == nil {
		u.notFound(w, r)
		return
	}
	name := r.PostFormValue("action")
	var act *Action
	for _, a := range sec.Actions() {
		if a.Name == name {
			act = &a
			break
		}
	}
	if act == nil {
		u.renderSettings(w, r, s, http.StatusUnprocessableEntity, nil, func(v *settingsView) {
			v.setSection(sec.ID(), func(sv *sectionView) {
				sv.Error = "That button is not part of this form. Reload the page and try again."
			})
		})
		return
	}
	fields := sec.Fields()
	values := map[string]string{}
	if act.Fields {
		var err error
		if values, err = sectionValues(r, fields); err != nil {
			u.sectionFailed(w, r, s, sec, values, err)
			return
		}
		for _, f := range fields {
			if !f.Optional && f.Type != "checkbox" && strings.TrimSpace(values[f.Name]) == "" {
				u.sectionFailed(w, r, s, sec, values, &FieldError{f.Name, "This is needed."})
				return
			}
		}
	}
	if act.Confirm != "" && r.PostFormValue("confirm") != "on" {
		u.sectionFailed(w, r, s, sec, values, errors.New("Tick the box to confirm first: "+act.Confirm))
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), sectionTimeout)
	defer cancel()
	notice, err := sec.Submit(ctx, act.Name, values)
	if err != nil {
		u.sectionFailed(w, r, s, sec, values, err)
		return
	}
	u.logf(r, "settings: "+sec.ID()+" "+act.Name)
	u.sess.setFlash(s, sec.ID(), nonEmpty(notice, "Done."))
	http.Redirect(w, r, "/settings#"+sec.ID(), http.StatusSeeOther)
}

// sectionFailed shows the settings page again with the section's error, and the
// owner's answers kept (never a password's).
func (u *UI) sectionFailed(w http.ResponseWriter, r *http.Request, s *session, sec Section, values map[string]string, err error) {
	kept := map[string]string{}
	for _, f := range sec.Fields() {
		if f.Type != "password" {
			kept[f.Name] = values[f.Name]
		}
	}
	u.renderSettings(w, r, s, http.StatusUnprocessableEntity, nil, func(v *settingsView) {
		v.setSection(sec.ID(), func(sv *sectionView) {
			sv.Values = kept
			var fe *FieldError
			if errors.As(err, &fe) {
				sv.Errors = map[string]string{fe.Field: sentence(fe.Message)}
			} else {
				sv.Error = sentence(err.Error())
			}
		})
	})
}

func (v *settingsView) setSection(id string, fn func(*sectionView)) {
	for i := range v.Sections {
		if v.Sections[i].ID == id {
			fn(&v.Sections[i])
		}
	}
}
