// Package setup owns the box's first-boot state: whether the owner has finished
// setting it up, the setup code only someone holding the box can read, the browser
// that proved it knows the code, and how far setup got.
//
// The setup code is printed by `redoubt setup-code` on the box's console and written
// to a file on the boot partition. Entering it in the setup page binds setup to that
// browser and uses the code up: a new one replaces it at once, so a code seen over
// the owner's shoulder is worthless. Wrong codes cost growing delays, counted on
// disk. Nothing here is secret once setup is done, and all of it is needed before
// the vault exists, so it lives in a plain 0600 file in the state directory.
// ui imports this package; the daemon wires it.
package setup

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"
)

// DefaultCodeFile is where the setup code is written for whoever holds the box:
// the boot partition, readable by taking out the SD card or plugging the disk
// into another computer.
const DefaultCodeFile = "/boot/firmware/redoubt-setup-code.txt"

// codeAlphabet has no letters that read like digits (no I, L, O, U).
const codeAlphabet = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"

// Errors callers tell apart.
var (
	ErrWrongCode = errors.New("that is not the setup code")
	ErrDone      = errors.New("setup is already done")
)

// TooSoonError says how long to wait before trying another code.
type TooSoonError struct{ Wait time.Duration }

func (e *TooSoonError) Error() string {
	return fmt.Sprintf("too many wrong codes: try again in %s", e.Wait.Round(time.Second))
}

// state is the file's content.
type state struct {
	Done        bool      `json:"done"`
	BoxName     string    `json:"box_name,omitempty"`
	Step        string    `json:"step,omitempty"`
	Code        string    `json:"code,omitempty"`
	Session     []byte    `json:"session,omitempty"` // SHA-256 of the setup browser's token
	Failures    int       `json:"failures,omitempty"`
	LastFailure time.Time `json:"last_failure,omitzero"`
	Finished    time.Time `json:"finished,omitzero"`
}

// Setup is the first-boot state.
type Setup struct {
	path     string
	codeFile string
	now      func() time.Time

	mu sync.Mutex
	st state
}

// Open loads the setup state in stateDir, creating it (with a fresh code) on a
// new box, and writes the current code to codeFile ("" to skip).
func Open(stateDir, codeFile string) (*Setup, error) {
	s := &Setup{path: filepath.Join(stateDir, "setup.json"), codeFile: codeFile, now: time.Now}
	b, err := os.ReadFile(s.path)
	switch {
	case errors.Is(err, os.ErrNotExist):
	case err != nil:
		return nil, fmt.Errorf("reading setup state: %w", err)
	default:
		if err := json.Unmarshal(b, &s.st); err != nil {
			return nil, fmt.Errorf("setup state %s is damaged: %w", s.path, err)
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.st.Done && s.st.Code == "" {
		s.st.Code = newCode()
	}
	if err := s.saveLocked(); err != nil {
		return nil, err
	}
	return s, nil
}

func newCode() string {
	b := make([]byte, 12)
	rand.Read(b)
	out := make([]byte, 0, 14)
	for i, c := range b {
		if i == 4 || i == 8 {
			out = append(out, '-')
		}
		out = append(out, codeAlphabet[int(c)%len(codeAlphabet)])
	}
	return string(out)
}

// normalize makes a typed code comparable: upper case, no spaces or dashes, and
// the letters people confuse with digits read as those digits.
func normalize(code string) string {
	r := strings.NewReplacer("-", "", " ", "", "O", "0", "I", "1", "L", "1")
	return r.Replace(strings.ToUpper(strings.TrimSpace(code)))
}

// Done reports whether setup is finished.
func (s *Setup) Done() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.st.Done
}

// BoxName is the name the owner gave the box ("" before that step).
func (s *Setup) BoxName() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.st.BoxName
}

// Step is the setup step the owner reached ("" before entering the code).
func (s *Setup) Step() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.st.Step
}

// Code is the current setup code, for `redoubt setup-code` ("" once setup is done).
func (s *Setup) Code() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.st.Done {
		return ""
	}
	return s.st.Code
}

// delayAfter is the wait before the next try after n wrong codes in a row.
func delayAfter(n int) time.Duration {
	if n < 5 {
		return 0
	}
	return min(2*time.Second<<min(n-5, 10), 15*time.Minute)
}

// Enter checks a setup code. The right code starts a setup session: it returns a
// token for the browser's cookie, and a new code replaces the used one.
func (s *Setup) Enter(code string) (token string, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.st.Done {
		return "", ErrDone
	}
	if wait := s.st.LastFailure.Add(delayAfter(s.st.Failures)).Sub(s.now()); wait > 0 && s.st.Failures >= 5 {
		return "", &TooSoonError{Wait: wait}
	}
	if subtle.ConstantTimeCompare([]byte(normalize(code)), []byte(normalize(s.st.Code))) != 1 {
		s.st.Failures++
		s.st.LastFailure = s.now()
		if err := s.saveLocked(); err != nil {
			return "", err
		}
		return "", ErrWrongCode
	}
	raw := make([]byte, 32)
	rand.Read(raw)
	token = base64.RawURLEncoding.EncodeToString(raw)
	sum := sha256.Sum256([]byte(token))
	s.st.Session = sum[:]
	s.st.Failures = 0
	s.st.LastFailure = time.Time{}
	s.st.Code = newCode()
	if s.st.Step == "" {
		s.st.Step = "start"
	}
	return token, s.saveLocked()
}

// Session reports whether token is the browser that entered the code.
func (s *Setup) Session(token string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.st.Done || len(s.st.Session) == 0 || token == "" {
		return false
	}
	sum := sha256.Sum256([]byte(token))
	return subtle.ConstantTimeCompare(sum[:], s.st.Session) == 1
}

// SetStep records how far setup got, so a reload resumes there.
func (s *Setup) SetStep(step string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.st.Step = step
	return s.saveLocked()
}

// SetBoxName records the box's name.
func (s *Setup) SetBoxName(name string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.st.BoxName = name
	return s.saveLocked()
}

// Finish marks setup done and ends the setup session.
func (s *Setup) Finish() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.st.Done = true
	s.st.Session = nil
	s.st.Code = ""
	s.st.Step = ""
	s.st.Finished = s.now()
	return s.saveLocked()
}

// Reset returns the box to first boot (a factory reset): a new code, no owner.
func (s *Setup) Reset() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.st = state{Code: newCode()}
	return s.saveLocked()
}

func (s *Setup) saveLocked() error {
	b, err := json.MarshalIndent(s.st, "", "  ")
	if err != nil {
		return err
	}
	if err := writeAtomic(s.path, b); err != nil {
		return fmt.Errorf("saving setup state: %w", err)
	}
	if s.codeFile == "" {
		return nil
	}
	if s.st.Done {
		os.Remove(s.codeFile)
		return nil
	}
	note := fmt.Sprintf("Redoubt setup code: %s\n\nType it in the setup page that opens when a computer is plugged into the box.\nIt works once; the box then writes a new one here.\n", s.st.Code)
	if err := os.MkdirAll(filepath.Dir(s.codeFile), 0o755); err != nil {
		return fmt.Errorf("writing the setup code file: %w", err)
	}
	if err := writeAtomic(s.codeFile, []byte(note)); err != nil {
		return fmt.Errorf("writing the setup code file: %w", err)
	}
	return nil
}

func writeAtomic(path string, data []byte) error {
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(tmp)
		return err
	}
	return os.Rename(tmp, path)
}
