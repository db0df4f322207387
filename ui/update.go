package ui

import (
	"context"
	"errors"
	"io"
	"mime/multipart"
	"net/http"
	"time"

	"github.com/redoubt/redoubt/board/bundle"
	"github.com/redoubt/redoubt/board/update"
)

// Updates applies the owner's uploaded updates (board/update); nil on a box
// not started from a Redoubt image.
type Updates interface {
	Status() (update.Status, error)
	Apply(ctx context.Context, r io.Reader, source string) (bundle.Manifest, error)
	Restart() error
}

// uploadTime bounds an update's upload and its writing to the slot.
const uploadTime = 10 * time.Minute

type updateView struct {
	Status  update.Status
	Error   string
	Applied string
}

func (u *UI) updatePage(w http.ResponseWriter, r *http.Request, s *session) {
	u.renderUpdate(w, r, s, http.StatusOK, "", "")
}

func (u *UI) renderUpdate(w http.ResponseWriter, r *http.Request, s *session, code int, msg, applied string) {
	if u.d.Updates == nil {
		u.fail(w, r, http.StatusNotFound, "This box was not started from a Redoubt image: update it as you installed it.")
		return
	}
	st, err := u.d.Updates.Status()
	if err != nil && msg == "" {
		msg = err.Error()
	}
	// Newest first.
	h := st.History
	rev := make([]update.Event, len(h))
	for i := range h {
		rev[len(h)-1-i] = h[i]
	}
	st.History = rev
	u.render(w, r, code, "update", view{Title: "Update", CSRF: s.csrf, SignedIn: true, Data: updateView{Status: st, Error: msg, Applied: applied}})
}

// updateUpload takes the update file from a multipart form whose CSRF token is
// in the URL (the file streams to the slot; it is never held whole).
func (u *UI) updateUpload(w http.ResponseWriter, r *http.Request, s *session) {
	if !validCSRF(s.csrf, r.URL.Query().Get("csrf")) {
		u.fail(w, r, http.StatusForbidden, "This form has expired or did not come from the box. Reload the page and try again.")
		return
	}
	if u.d.Updates == nil {
		u.fail(w, r, http.StatusNotFound, "This box was not started from a Redoubt image.")
		return
	}
	// An update is tens of MB, written to the slot as it arrives: more than
	// the server's read timeout for ordinary forms allows on a slow link or
	// card. This request alone gets longer.
	rc := http.NewResponseController(w)
	rc.SetReadDeadline(time.Now().Add(uploadTime))
	rc.SetWriteDeadline(time.Now().Add(uploadTime + time.Minute))
	r.Body = http.MaxBytesReader(w, r.Body, update.MaxUpload)
	mr, err := r.MultipartReader()
	if err != nil {
		u.renderUpdate(w, r, s, http.StatusBadRequest, "Choose the update file (redoubt-….rdu).", "")
		return
	}
	var part *multipart.Part
	for {
		p, err := mr.NextPart()
		if err != nil {
			u.renderUpdate(w, r, s, http.StatusBadRequest, "Choose the update file (redoubt-….rdu).", "")
			return
		}
		if p.FormName() == "file" {
			part = p
			break
		}
	}
	u.logf(r, "update uploaded")
	ctx, cancel := context.WithTimeout(r.Context(), uploadTime)
	defer cancel()
	m, err := u.d.Updates.Apply(ctx, part, "upload")
	if err != nil {
		code := http.StatusUnprocessableEntity
		if errors.Is(err, bundle.ErrSignature) {
			code = http.StatusForbidden
		}
		u.renderUpdate(w, r, s, code, "The update was refused: "+err.Error(), "")
		return
	}
	u.render(w, r, http.StatusOK, "message", view{Title: "Updating to " + m.Version,
		Notice: "The update is written. The box restarts into it now, on trial: it keeps " + m.Version +
			" once it is healthy and, if it has your data, once you unlock it. If anything is wrong it comes back on the version it has now, by itself.",
		Data: "reboot"})
	go func() {
		time.Sleep(500 * time.Millisecond) // let the page reach the browser
		if err := u.d.Updates.Restart(); err != nil {
			u.d.Logger.Error("restart into the update", "err", err)
		}
	}()
}
