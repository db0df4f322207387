package headless

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/redoubt/redoubt/board/layout"
)

func TestImport(t *testing.T) {
	boot, data := t.TempDir(), t.TempDir()
	state := filepath.Join(data, "redoubt")
	files := map[string]string{
		layout.HeadlessConfig:    "[lan]\ninterface = \"eth1\"\n",
		layout.HeadlessVPN:       "[Interface]\nPrivateKey = x\n[Peer]\n",
		layout.HeadlessHeadscale: "url = \"https://hs.example\"\napi_key = \"secret-key\"\n",
		layout.HeadlessWiFi:      "ssid = \"home\"\npsk = \"long enough\"\ncountry = \"DE\"\n",
	}
	for n, c := range files {
		os.WriteFile(filepath.Join(boot, n), []byte(c), 0o644)
	}
	cfg := filepath.Join(data, "redoubt.toml")
	r, err := Import(boot, cfg, state)
	if err != nil {
		t.Fatal(err)
	}
	if !r.Config || !r.WiFi || len(r.Pending) != 2 || len(r.Problems) != 0 {
		t.Fatalf("%+v", r)
	}
	for n := range files {
		if _, err := os.Stat(filepath.Join(boot, n)); err == nil {
			t.Errorf("%s left on the card", n)
		}
	}
	if b, _ := os.ReadFile(cfg); string(b) != files[layout.HeadlessConfig] {
		t.Fatalf("config: %q", b)
	}
	b, ok, err := Pending(state, layout.HeadlessHeadscale)
	if !ok || err != nil || !strings.Contains(string(b), "secret-key") {
		t.Fatalf("pending: %q %v %v", b, ok, err)
	}
	if fi, _ := os.Stat(filepath.Join(PendingDir(state), layout.HeadlessVPN)); fi.Mode().Perm() != 0o600 {
		t.Fatalf("pending secret mode %v", fi.Mode())
	}
	if err := Done(state, layout.HeadlessHeadscale); err != nil {
		t.Fatal(err)
	}
	if _, ok, _ := Pending(state, layout.HeadlessHeadscale); ok {
		t.Fatal("still pending after Done")
	}
}

func TestImportRefusesBadFiles(t *testing.T) {
	boot, data := t.TempDir(), t.TempDir()
	os.WriteFile(filepath.Join(boot, layout.HeadlessConfig), []byte("[lan\n"), 0o644)
	os.WriteFile(filepath.Join(boot, layout.HeadlessHeadscale), []byte("url = \"http://plain\"\napi_key = \"k\"\n"), 0o644)
	os.WriteFile(filepath.Join(boot, layout.HeadlessVPN), []byte("hello"), 0o644)
	os.WriteFile(filepath.Join(boot, layout.HeadlessWiFi), []byte("ssid = \"x\"\npsk = \"short\"\n"), 0o644)
	r, err := Import(boot, filepath.Join(data, "redoubt.toml"), filepath.Join(data, "redoubt"))
	if err != nil {
		t.Fatal(err)
	}
	if r.Config || r.WiFi || len(r.Pending) != 0 || len(r.Problems) != 4 {
		t.Fatalf("%+v", r)
	}
	for _, p := range r.Problems {
		if strings.Contains(p, "short") && !strings.Contains(p, "psk is 5") {
			t.Errorf("problem says the passphrase: %s", p)
		}
	}
	for _, n := range []string{layout.HeadlessConfig, layout.HeadlessHeadscale, layout.HeadlessVPN, layout.HeadlessWiFi} {
		if _, err := os.Stat(filepath.Join(boot, n)); err != nil {
			t.Errorf("a refused %s was removed from the card", n)
		}
	}
}

func TestParseWiFi(t *testing.T) {
	for in, ok := range map[string]bool{
		"ssid = \"a\"\n":                        true,
		"ssid = \"a\"\npsk = \"12345678\"\n":    true,
		"ssid = \"\"\n":                         false,
		"ssid = \"a\"\nbssid = \"x\"\n":         false,
		"ssid = \"a\"\ncountry = \"germany\"\n": false,
	} {
		if _, err := ParseWiFi([]byte(in)); (err == nil) != ok {
			t.Errorf("%q: %v", in, err)
		}
	}
}

func FuzzParseHeadscale(f *testing.F) {
	f.Add([]byte("url = \"https://hs.example\"\napi_key = \"k\"\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		h, err := ParseHeadscale(b)
		if err == nil && (!strings.HasPrefix(h.URL, "https://") || h.APIKey == "") {
			t.Fatalf("accepted %+v", h)
		}
		if err != nil && h.APIKey != "" && len(h.APIKey) > 3 && strings.Contains(err.Error(), h.APIKey) {
			t.Fatalf("the error shows the key: %v", err)
		}
	})
}
