package host

import (
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

const extManifest = `
id = "extapp"
name = "External"
description = "An external app the host's tests run."
version = "0.1.0"
exposure = ["lan"]

[[listeners]]
name = "web"
proto = "tcp"
port = 8450

[program]
command = ["bin/extapp", "--quiet"]
`

// TestExternalApp runs a program as an external app, in bubblewrap: it is
// reached by name on the LAN with the caller, keeps data through its Env,
// and can reach neither another app's data, the box's state, nor any
// network — not even the box's own loopback.
func TestExternalApp(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("external apps run in bubblewrap namespaces, which need root here (make test runs as root in CI)")
	}
	bwrap, err := exec.LookPath("bwrap")
	if err != nil {
		t.Skip("bubblewrap is not installed (scripts/deps.sh installs it)")
	}
	ext := t.TempDir()
	appDir := filepath.Join(ext, "extapp")
	os.MkdirAll(filepath.Join(appDir, "bin"), 0o755)
	os.WriteFile(filepath.Join(appDir, "manifest.toml"), []byte(extManifest), 0o644)
	build := exec.Command("go", "build", "-o", filepath.Join(appDir, "bin", "extapp"), "./testdata/extapp")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("building the test app: %v\n%s", err, out)
	}
	r := newRigWith(t, Config{ExternalDir: ext, Bwrap: bwrap})
	r.unlock() // the probe app too: its data is what extapp must not see
	rt := r.h.apps["probe"].current()
	rt.store.Records().Put("secret", []byte("the probe's"))
	if err := r.h.Enable("extapp"); err != nil {
		t.Fatal(err)
	}
	if st, _ := r.h.Status("extapp"); st.Kind != "external" || !st.Running {
		t.Fatalf("status: %+v", st)
	}
	// A service on the box's own loopback, which the app must not reach.
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	defer ln.Close()

	c := r.lanClient()
	link, _ := r.h.Handoff("extapp", "/")
	get(t, c, link)
	app := "https://extapp.kestrel.home.arpa"
	if _, body := get(t, c, app+"/"); body != "hello owner on lan, uid 65534" {
		t.Errorf("the caller: %q", body)
	}
	if _, body := get(t, c, app+"/store"); body != "put 204; get 200 kept by extapp; blob 201; range 206 xxxxx; missing 404" {
		t.Errorf("its Env: %q", body)
	}
	if v, err := r.h.apps["extapp"].current().store.Records().Get("notes/1"); err != nil || string(v) != "kept by extapp" {
		t.Errorf("its record, sealed on the box: %q %v", v, err)
	}
	for _, p := range []string{r.h.dataDir("probe"), r.state, filepath.Join(r.state, "vault", "vault.db"), "/root", "/etc/passwd", "/home"} {
		if _, body := get(t, c, app+"/read?path="+p); !strings.HasPrefix(body, "denied") {
			t.Errorf("the app reads %s: %q", p, body)
		}
	}
	if _, body := get(t, c, app+"/read?path=/app/manifest.toml"); !strings.HasPrefix(body, "read") {
		t.Errorf("the app cannot read its own files: %q", body)
	}
	for _, addr := range []string{ln.Addr().String(), "198.51.100.1:80", "[2001:db8::1]:443"} {
		if _, body := get(t, c, app+"/dial?addr="+addr); !strings.HasPrefix(body, "failed") {
			t.Errorf("the app reached %s: %q", addr, body)
		}
	}
	// Stopped, its program is gone.
	r.h.Disable("extapp")
	if _, err := os.Stat(r.h.sockDir("extapp")); !os.IsNotExist(err) {
		t.Errorf("its sockets are left: %v", err)
	}
}
