package tools

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestFind(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("REDOUBT_TOOLS", dir)
	if Dir() != dir {
		t.Fatalf("Dir() = %s", Dir())
	}
	_, err := Find()
	if err == nil || !strings.Contains(err.Error(), "scripts/tools.sh") || !strings.Contains(err.Error(), "headscale-"+HeadscaleVersion) {
		t.Fatalf("Find() with nothing built = %v", err)
	}
	os.MkdirAll(filepath.Join(dir, "tailscale-"+TailscaleVersion), 0o755)
	for _, f := range []string{"headscale-" + HeadscaleVersion, "tailscale-" + TailscaleVersion + "/tailscaled", "tailscale-" + TailscaleVersion + "/tailscale"} {
		os.WriteFile(filepath.Join(dir, f), []byte("#!/bin/sh\n"), 0o755)
	}
	p, err := Find()
	if err != nil || p.Tailscale != filepath.Join(dir, "tailscale-"+TailscaleVersion, "tailscale") {
		t.Fatalf("Find() = %+v, %v", p, err)
	}
	t.Setenv("REDOUBT_TOOLS", "")
	t.Setenv("XDG_CACHE_HOME", "/x")
	if Dir() != "/x/redoubt/tools" {
		t.Fatalf("Dir() = %s", Dir())
	}
}
