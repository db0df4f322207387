package ui

import (
	"encoding/json"
	"errors"
	"net/http"
	"os"
	"regexp"
	"strings"

	"github.com/redoubt/redoubt/ui/pki"
	"github.com/redoubt/redoubt/ui/setup"
	"github.com/redoubt/redoubt/vault"
)

// The wizard's own steps, around the ones other rooms add.
const (
	stepPassphrase = "passphrase"
	stepName       = "name"
	stepFinish     = "finish"
)

// wizardStep is one step as the page shows it.
type wizardStep struct {
	ID, Title string
	Done      bool
	Current   bool
}

// stepIDs lists every step after the code, in order.
func (u *UI) stepIDs() []string {
	ids := []string{stepPassphrase, stepName}
	for _, s := range u.d.Steps {
		ids = append(ids, s.ID())
	}
	return append(ids, stepFinish)
}

func (u *UI) stepTitle(id string) string {
	switch id {
	case stepPassphrase:
		return "Passphrase"
	case stepName:
		return "Name"
	case stepFinish:
		return "Finish"
	}
	if s := u.extStep(id); s != nil {
		return s.Title()
	}
	return id
}

func (u *UI) extStep(id string) Step {
	for _, s := range u.d.Steps {
		if s.ID() == id {
			return s
		}
	}
	return nil
}

// next is the step after id.
func (u *UI) next(id string) string {
	ids := u.stepIDs()
	for i, s := range ids {
		if s == id && i+1 < len(ids) {
			return ids[i+1]
		}
	}
	return stepFinish
}

// current is the step the owner is on; an unknown one (a step that went away)
// restarts from the passphrase.
func (u *UI) current() string {
	st := u.d.Setup.Step()
	for _, id := range u.stepIDs() {
		if id == st {
			return st
		}
	}
	return stepPassphrase
}

// setupView is the wizard page's data.
type setupView struct {
	Step     string
	Steps    []wizardStep
	Ext      Step
	Values   map[string]string
	Strength *Strength
	Locked   bool
	Name     string
}

func (u *UI) setupSession(r *http.Request) bool {
	return u.d.Setup.Session(cookieValue(r, setupCookie))
}

// csrfForSetup is the setup browser's CSRF token, made when first needed.
func (u *UI) csrfForSetup() string {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.setupCSRF == "" {
		u.setupCSRF = randomToken()
	}
	return u.setupCSRF
}

func (u *UI) setupPage(w http.ResponseWriter, r *http.Request) {
	if u.d.Setup.Done() {
		http.Redirect(w, r, "/", http.StatusFound)
		return
	}
	if !u.setupSession(r) {
		u.render(w, r, http.StatusOK, "setup-code", view{Title: "Set up your Redoubt box"})
		return
	}
	u.renderStep(w, r, http.StatusOK, u.current(), nil, "", nil)
}

func (u *UI) renderStep(w http.ResponseWriter, r *http.Request, status int, step string, values map[string]string, msg string, fields map[string]string) {
	sv := setupView{Step: step, Values: values, Name: u.d.Setup.BoxName()}
	reached := true
	for _, id := range u.stepIDs() {
		if id == step {
			reached = false
		}
		sv.Steps = append(sv.Steps, wizardStep{ID: id, Title: u.stepTitle(id), Done: reached, Current: id == step})
	}
	if step != stepPassphrase && u.d.Vault.Initialized() && u.d.Vault.Locked() {
		// The box restarted during setup: the rest needs the vault open.
		sv.Locked = true
	}
	sv.Ext = u.extStep(step)
	u.render(w, r, status, "setup", view{Title: "Set up: " + u.stepTitle(step), CSRF: u.csrfForSetup(), Data: sv, Error: msg, Fields: fields})
}

func (u *UI) setupCode(w http.ResponseWriter, r *http.Request) {
	if u.d.Setup.Done() {
		http.Redirect(w, r, "/", http.StatusFound)
		return
	}
	if err := formValues(w, r); err != nil {
		u.fail(w, r, http.StatusBadRequest, "The form could not be read.")
		return
	}
	tok, err := u.d.Setup.Enter(r.PostFormValue("code"))
	if err != nil {
		msg := "That is not the setup code. It is printed by “redoubt setup-code” on the box, and written to the file redoubt-setup-code.txt on its boot card."
		var soon *setup.TooSoonError
		if errors.As(err, &soon) {
			msg = "Too many wrong codes. " + waitWords(soon.Wait)
		}
		u.logf(r, "wrong setup code")
		u.render(w, r, http.StatusForbidden, "setup-code", view{Title: "Set up your Redoubt box", Error: msg})
		return
	}
	u.mu.Lock()
	u.setupCSRF = randomToken() // a new setup browser: a new token
	u.mu.Unlock()
	setCookie(w, r, setupCookie, tok, cookieAge)
	if u.d.Setup.Step() == "start" {
		u.d.Setup.SetStep(stepPassphrase)
	}
	u.logf(r, "setup code accepted")
	http.Redirect(w, r, "/setup", http.StatusSeeOther)
}

// setupOnly requires the browser that entered the setup code, and the setup
// CSRF token.
func (u *UI) setupOnly(next http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if u.d.Setup.Done() {
			http.Redirect(w, r, "/", http.StatusFound)
			return
		}
		if !u.setupSession(r) {
			u.fail(w, r, http.StatusForbidden, "Setup continues only in the browser where the setup code was entered. Enter the current code to continue here.")
			return
		}
		if err := formValues(w, r); err != nil {
			u.fail(w, r, http.StatusBadRequest, "The form could not be read.")
			return
		}
		if !validCSRF(u.csrfForSetup(), r.PostFormValue("csrf")) {
			u.fail(w, r, http.StatusForbidden, "This form has expired. Reload the page and try again.")
			return
		}
		next(w, r)
	}
}

// strength answers the page's passphrase meter with the rules the box applies.
func (u *UI) strength(w http.ResponseWriter, r *http.Request) {
	s := Evaluate(r.PostFormValue("passphrase"))
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(map[string]any{"score": s.Score, "bits": s.Bits, "reason": s.Reason, "hint": s.Hint, "ok": s.Reason == ""})
}

func (u *UI) setupPassphrase(w http.ResponseWriter, r *http.Request) {
	if u.d.Vault.Initialized() {
		// Already chosen (a reload or a second click): go on.
		u.d.Setup.SetStep(u.next(stepPassphrase))
		http.Redirect(w, r, "/setup", http.StatusSeeOther)
		return
	}
	pass, confirm := r.PostFormValue("passphrase"), r.PostFormValue("confirm")
	s := Evaluate(pass)
	fields := map[string]string{}
	switch {
	case s.Reason != "":
		fields["passphrase"] = s.Reason + " " + s.Hint
	case pass != confirm:
		fields["confirm"] = "The two passphrases differ. Type the same one twice."
	}
	if len(fields) > 0 {
		u.renderStep(w, r, http.StatusUnprocessableEntity, stepPassphrase, nil, "", fields)
		return
	}
	if err := u.d.Vault.Init([]byte(pass), u.d.KDF()); err != nil {
		u.d.Logger.Error("creating the vault", "err", err)
		u.renderStep(w, r, http.StatusInternalServerError, stepPassphrase, nil, "The box could not store the passphrase: "+err.Error(), nil)
		return
	}
	u.d.Box.Unlocked()
	u.logf(r, "owner passphrase set")
	u.d.Setup.SetStep(u.next(stepPassphrase))
	http.Redirect(w, r, "/setup", http.StatusSeeOther)
}

// labelRE is a DNS label: the box's name becomes <name>.home.arpa.
var labelRE = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$`)

// ValidateBoxName says what is wrong with a box name, or "".
func ValidateBoxName(name string) string {
	switch {
	case name == "":
		return "Give the box a name."
	case len(name) > 63:
		return "Use at most 63 characters."
	case !labelRE.MatchString(name):
		return "Use lower-case letters, digits and hyphens only (like “kestrel” or “office-box”), not starting or ending with a hyphen."
	}
	return ""
}

func (u *UI) setupName(w http.ResponseWriter, r *http.Request) {
	name := strings.ToLower(strings.TrimSpace(r.PostFormValue("name")))
	if msg := ValidateBoxName(name); msg != "" {
		u.renderStep(w, r, http.StatusUnprocessableEntity, stepName, map[string]string{"name": name}, "", map[string]string{"name": msg})
		return
	}
	if err := u.d.Setup.SetBoxName(name); err != nil {
		u.renderStep(w, r, http.StatusInternalServerError, stepName, nil, err.Error(), nil)
		return
	}
	// The box answers to its name from now on, so the certificate setup
	// ends with covers it.
	u.d.Box.Renamed()
	u.d.Setup.SetStep(u.next(stepName))
	http.Redirect(w, r, "/setup", http.StatusSeeOther)
}

func (u *UI) setupStep(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	s := u.extStep(id)
	if s == nil {
		u.fail(w, r, http.StatusNotFound, "There is no such setup step.")
		return
	}
	if u.d.Vault.Locked() {
		u.renderStep(w, r, http.StatusConflict, id, nil, "Unlock the box first.", nil)
		return
	}
	if r.PostFormValue("skip") != "" && s.Optional() {
		u.d.Setup.SetStep(u.next(id))
		http.Redirect(w, r, "/setup", http.StatusSeeOther)
		return
	}
	values, err := sectionValues(r, s.Fields())
	if err != nil {
		var fe *FieldError
		errors.As(err, &fe)
		u.renderStep(w, r, http.StatusUnprocessableEntity, id, values, "", map[string]string{fe.Field: fe.Message})
		return
	}
	for _, f := range s.Fields() {
		if !f.Optional && strings.TrimSpace(values[f.Name]) == "" && f.Type != "checkbox" {
			u.renderStep(w, r, http.StatusUnprocessableEntity, id, values, "", map[string]string{f.Name: "This is needed."})
			return
		}
	}
	if err := s.Submit(values); err != nil {
		var fe *FieldError
		if errors.As(err, &fe) {
			u.renderStep(w, r, http.StatusUnprocessableEntity, id, values, "", map[string]string{fe.Field: fe.Message})
			return
		}
		u.renderStep(w, r, http.StatusUnprocessableEntity, id, values, sentence(err.Error()), nil)
		return
	}
	u.d.Setup.SetStep(u.next(id))
	http.Redirect(w, r, "/setup", http.StatusSeeOther)
}

// setupFinish creates the box's certificate authority and its HTTPS certificate
// (for the names the box answers to once setup is done, its own among them),
// and ends setup.
func (u *UI) setupFinish(w http.ResponseWriter, r *http.Request) {
	if u.d.Vault.Locked() || u.d.Setup.BoxName() == "" {
		u.renderStep(w, r, http.StatusConflict, u.current(), nil, "A step is still open.", nil)
		return
	}
	ca, err := pki.LoadCA(u.d.Vault)
	if err != nil {
		ca, err = pki.CreateCA(u.d.Vault, u.d.Setup.BoxName())
	}
	if err == nil {
		err = writeFile(u.caPath(), ca.PEM())
	}
	if err == nil {
		// The name first (a box restarted during setup has not taken it yet),
		// then the certificate for it.
		u.d.Box.Renamed()
		err = u.ensureServerCert()
	}
	if err == nil {
		err = u.d.Setup.Finish()
	}
	if err != nil {
		u.d.Logger.Error("finishing setup", "err", err)
		u.renderStep(w, r, http.StatusInternalServerError, stepFinish, nil, "Setup could not be finished: "+err.Error(), nil)
		return
	}
	setCookie(w, r, setupCookie, "", -1)
	u.mu.Lock()
	u.setupCSRF = ""
	u.mu.Unlock()
	u.d.Box.SetupDone()
	u.logf(r, "setup finished", "box", u.d.Setup.BoxName())
	http.Redirect(w, r, "/setup/done", http.StatusSeeOther)
}

func writeFile(path string, b []byte) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// caView is what the CA pages show.
type caView struct {
	Fingerprint string
	Host        string
	Finished    bool
	// Continue is where the trust page goes on to over HTTPS, and Check what
	// its script asks to learn whether this browser already trusts the box.
	Continue, Check string
	// Auto: a browser that trusts the box goes on by itself (a plain visit).
	Auto bool
}

// caData is what the CA pages show to r. The page's script asks the host r came
// by over HTTPS whether the browser trusts the box (the certificate covers the
// box's names and address alike; another host would be another origin, which the
// pages' policy forbids).
func (u *UI) caData(r *http.Request, finished bool) caView {
	host := u.canonicalHost()
	v := caView{Host: host, Finished: finished, Continue: "https://" + host + "/", Check: u.httpsOrigin(r) + "/trust-check"}
	if ca, err := pki.LoadCA(u.d.Vault); err == nil {
		v.Fingerprint = ca.Fingerprint()
	} else if b := u.caPEM(); b != nil {
		v.Fingerprint = pemFingerprint(b)
	}
	return v
}

func (u *UI) setupDone(w http.ResponseWriter, r *http.Request) {
	if !u.d.Setup.Done() {
		http.Redirect(w, r, "/setup", http.StatusFound)
		return
	}
	u.render(w, r, http.StatusOK, "ca", view{Title: "Your box is set up", Data: u.caData(r, true)})
}

func (u *UI) caPage(w http.ResponseWriter, r *http.Request) {
	if u.caPEM() == nil {
		http.Redirect(w, r, "/setup", http.StatusFound)
		return
	}
	u.render(w, r, http.StatusOK, "ca", view{Title: "Trust your box", Data: u.caData(r, false), SignedIn: u.signedInView(r), CSRF: u.csrfOf(r)})
}

// unlockPage asks for the passphrase: to unlock a locked box, or to sign in.
func (u *UI) unlockPage(w http.ResponseWriter, r *http.Request) {
	if !u.d.Setup.Done() && !u.setupSession(r) {
		http.Redirect(w, r, "/setup", http.StatusFound)
		return
	}
	u.render(w, r, http.StatusOK, "unlock", view{Title: unlockTitle(u.d.Vault.Locked()), Data: unlockView{Locked: u.d.Vault.Locked(), Next: safeNext(r.URL.Query().Get("next"))}})
}

type unlockView struct {
	Locked bool
	Next   string
}

func unlockTitle(locked bool) string {
	if locked {
		return "Unlock your box"
	}
	return "Sign in"
}

// safeNext keeps a redirect on the box.
func safeNext(p string) string {
	if p == "" || !strings.HasPrefix(p, "/") || strings.HasPrefix(p, "//") || strings.ContainsAny(p, "\\\r\n") {
		return "/"
	}
	return p
}

func (u *UI) unlock(w http.ResponseWriter, r *http.Request) {
	if err := formValues(w, r); err != nil {
		u.fail(w, r, http.StatusBadRequest, "The form could not be read.")
		return
	}
	inSetup := !u.d.Setup.Done()
	if inSetup && !u.setupSession(r) {
		http.Redirect(w, r, "/setup", http.StatusFound)
		return
	}
	wasLocked := u.d.Vault.Locked()
	next := safeNext(r.PostFormValue("next"))
	err := u.d.Vault.Unlock([]byte(r.PostFormValue("passphrase")))
	if err != nil {
		msg := "That passphrase is not the box's."
		var soon *vault.TooSoonError
		if errors.As(err, &soon) {
			msg = "Too many wrong passphrases. " + waitWords(soon.Wait)
		} else if !errors.Is(err, vault.ErrWrongPass) {
			msg = "The box could not be unlocked: " + sentence(err.Error())
		}
		u.logf(r, "wrong passphrase")
		u.render(w, r, http.StatusForbidden, "unlock", view{Title: unlockTitle(wasLocked), Error: msg, Data: unlockView{Locked: wasLocked, Next: next}})
		return
	}
	if wasLocked {
		u.logf(r, "box unlocked")
		u.d.Box.Unlocked()
		if !inSetup {
			if err := u.ensureServerCert(); err != nil {
				u.d.Logger.Error("renewing the UI certificate", "err", err)
			}
		}
	}
	if inSetup {
		http.Redirect(w, r, "/setup", http.StatusSeeOther)
		return
	}
	setCookie(w, r, sessionCookie, u.sess.create(), cookieAge)
	http.Redirect(w, r, next, http.StatusSeeOther)
}
