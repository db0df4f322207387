package setup

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestCodeIsSingleUseAndBindsTheBrowser(t *testing.T) {
	dir := t.TempDir()
	codeFile := filepath.Join(dir, "boot", "code.txt")
	s, err := Open(dir, codeFile)
	if err != nil {
		t.Fatal(err)
	}
	code := s.Code()
	if len(code) != 14 || strings.Count(code, "-") != 2 {
		t.Fatalf("code %q", code)
	}
	b, _ := os.ReadFile(codeFile)
	if !strings.Contains(string(b), code) {
		t.Fatalf("code file lacks the code:\n%s", b)
	}
	if _, err := s.Enter("AAAA-BBBB-CCCC"); !errors.Is(err, ErrWrongCode) {
		t.Fatalf("wrong code: %v", err)
	}
	// Typed loosely: lower case, spaces, O for 0.
	loose := strings.ToLower(strings.ReplaceAll(strings.ReplaceAll(code, "-", " "), "0", "o"))
	tok, err := s.Enter(loose)
	if err != nil {
		t.Fatalf("right code typed loosely: %v", err)
	}
	if !s.Session(tok) || s.Session("other") || s.Session("") {
		t.Fatal("the session does not bind the browser that entered the code")
	}
	if s.Code() == code {
		t.Fatal("the code was not replaced after use")
	}
	if _, err := s.Enter(code); !errors.Is(err, ErrWrongCode) {
		t.Fatalf("a used code worked again: %v", err)
	}
	b, _ = os.ReadFile(codeFile)
	if !strings.Contains(string(b), s.Code()) {
		t.Fatal("the code file does not hold the new code")
	}

	// Progress survives a restart.
	s.SetStep("passphrase")
	s.SetBoxName("kestrel")
	s2, err := Open(dir, codeFile)
	if err != nil {
		t.Fatal(err)
	}
	if s2.Step() != "passphrase" || s2.BoxName() != "kestrel" || !s2.Session(tok) {
		t.Fatalf("after restart: step %q name %q session %v", s2.Step(), s2.BoxName(), s2.Session(tok))
	}

	if err := s2.Finish(); err != nil {
		t.Fatal(err)
	}
	if !s2.Done() || s2.Code() != "" || s2.Session(tok) {
		t.Fatal("finish left setup open")
	}
	if _, err := os.Stat(codeFile); !os.IsNotExist(err) {
		t.Error("the code file is still there after setup")
	}
	if _, err := s2.Enter("anything"); !errors.Is(err, ErrDone) {
		t.Fatalf("enter after setup: %v", err)
	}
	if err := s2.Reset(); err != nil {
		t.Fatal(err)
	}
	if s2.Done() || s2.Code() == "" || s2.BoxName() != "" {
		t.Fatal("reset did not return to first boot")
	}
}

func TestWrongCodesDelay(t *testing.T) {
	s, err := Open(t.TempDir(), "")
	if err != nil {
		t.Fatal(err)
	}
	now := time.Unix(1_800_000_000, 0)
	s.now = func() time.Time { return now }
	for range 5 {
		if _, err := s.Enter("nope"); !errors.Is(err, ErrWrongCode) {
			t.Fatal(err)
		}
	}
	var soon *TooSoonError
	if _, err := s.Enter(s.Code()); !errors.As(err, &soon) || soon.Wait != 2*time.Second {
		t.Fatalf("sixth try at once: %v", err)
	}
	now = now.Add(2 * time.Second)
	if _, err := s.Enter(s.Code()); err != nil {
		t.Fatalf("after the wait the right code should work: %v", err)
	}
}

func TestDamagedStateFile(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "setup.json"), []byte("{not json"), 0o600)
	if _, err := Open(dir, ""); err == nil || !strings.Contains(err.Error(), "damaged") {
		t.Fatalf("damaged file: %v", err)
	}
}
