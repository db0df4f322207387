package daemon

import (
	"strings"
	"testing"

	"github.com/redoubt/redoubt/board/layout"
	"github.com/redoubt/redoubt/board/profile"
)

// The config a box writes at its first start is one the daemon accepts.
func TestBoardDefaultConfig(t *testing.T) {
	for _, b := range layout.Boards {
		cfg, err := ParseConfig(profile.DefaultConfig(b))
		if err != nil {
			t.Fatalf("%s: %v", b, err)
		}
		if cfg.State.Dir != layout.StateDir || !strings.HasPrefix(cfg.Setup.CodeFile, layout.BootMount) {
			t.Fatalf("%s: state %s, code file %s", b, cfg.State.Dir, cfg.Setup.CodeFile)
		}
	}
	if _, err := ParseConfig("[lan]\ninterface = \"eth1\"\n[board]\ngadget = \"ecm\"\n"); err == nil || !strings.Contains(err.Error(), "board.gadget") {
		t.Fatalf("a wrong gadget: %v", err)
	}
	if _, err := ParseConfig("[lan]\ninterface = \"eth1\"\n[update]\ntrial_system = \"1s\"\n"); err == nil || !strings.Contains(err.Error(), "update.trial_system") {
		t.Fatalf("a trial bound too short: %v", err)
	}
}
