package lab_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/redoubt/redoubt/lab"
	"github.com/redoubt/redoubt/lab/labtest"
)

func TestMain(m *testing.M) { labtest.Main(m) }

// TestExitedProcessForgotten: a lab process that has ended is dropped from the
// lab's record, so removing the lab never signals a process that reused its pid.
func TestExitedProcessForgotten(t *testing.T) {
	e := labtest.SharedLab(t)
	p, err := e.Lab.Start(lab.Laptop, "short-lived", "true")
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Wait(5 * time.Second); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(2 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		b, err := os.ReadFile(filepath.Join(e.Lab.Dir, "lab.json"))
		if err != nil {
			t.Fatal(err)
		}
		var st lab.State
		if err := json.Unmarshal(b, &st); err != nil {
			t.Fatal(err)
		}
		if !slices.Contains(st.Pids, p.Pid()) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("pid %d of an exited process is still recorded: %v", p.Pid(), st.Pids)
		}
	}
}
