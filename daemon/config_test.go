package daemon

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestExampleParses(t *testing.T) {
	cfg, err := ParseConfig(Example)
	if err != nil {
		t.Fatalf("the documented example does not load: %v", err)
	}
	if cfg.LAN.Interface != "eth1" || cfg.LAN.Address.String() != "10.201.86.1/24" || !cfg.LAN.RevealOn() {
		t.Errorf("example LAN section: %+v", cfg.LAN)
	}
	if cfg.DNS.Domain != "home.arpa" || cfg.DNS.Name != "redoubt" || len(cfg.DNS.Aliases) != 1 || cfg.DNS.QueryLog != 2048 {
		t.Errorf("example DNS section: %+v", cfg.DNS)
	}
}

func TestDefaults(t *testing.T) {
	cfg, err := ParseConfig("[lan]\ninterface = \"eth1\"\n")
	if err != nil {
		t.Fatal(err)
	}
	if cfg.LAN.Address.String() != "10.201.86.1/24" || cfg.State.Dir != DefaultStateDir || cfg.API.Socket != DefaultSocket ||
		cfg.Log.Level != "info" || cfg.Log.Format != "text" || cfg.Setup.Done {
		t.Errorf("defaults: %+v", cfg)
	}
}

// TestBadConfig checks that every mistake is refused with a message naming the
// setting, the bad value and what would be accepted.
func TestBadConfig(t *testing.T) {
	tests := []struct {
		name, text string
		want       []string
	}{
		{"no interface", "[lan]\n", []string{"lan.interface", "missing"}},
		{"long interface", "[lan]\ninterface = \"abcdefghijklmnopq\"\n", []string{"lan.interface", "15 characters"}},
		{"address without prefix", "[lan]\ninterface = \"eth1\"\naddress = \"10.201.86.1\"\n", []string{"line 3", "lan.address", "10.201.86.1"}},
		{"public address", "[lan]\ninterface = \"eth1\"\naddress = \"8.8.8.1/24\"\n", []string{"lan.address", "8.8.8.1/24", "private"}},
		{"network address", "[lan]\ninterface = \"eth1\"\naddress = \"10.1.2.0/24\"\n", []string{"lan.address", "10.1.2.0/24", "network or broadcast"}},
		{"tiny prefix", "[lan]\ninterface = \"eth1\"\naddress = \"10.1.2.1/30\"\n", []string{"lan.address", "/16 and /29"}},
		{"ipv6 address", "[lan]\ninterface = \"eth1\"\naddress = \"fd00::1/64\"\n", []string{"lan.address", "IPv4"}},
		{"reveal not a bool", "[lan]\ninterface = \"eth1\"\nreveal = \"yes\"\n", []string{"lan.reveal"}},
		{"typo", "[lan]\ninterface = \"eth1\"\nadress = \"10.1.2.1/24\"\n", []string{"lan.adress", "lan.address"}},
		{"unknown section", "[lan]\ninterface = \"eth1\"\n[wifi]\nssid = \"x\"\n", []string{`"wifi"`}},
		{"relative state dir", "[lan]\ninterface = \"eth1\"\n[state]\ndir = \"state\"\n", []string{"state.dir", "absolute"}},
		{"log level", "[lan]\ninterface = \"eth1\"\n[log]\nlevel = \"loud\"\n", []string{"log.level", "loud", "debug, info, warn or error"}},
		{"log format", "[lan]\ninterface = \"eth1\"\n[log]\nformat = \"xml\"\n", []string{"log.format", "xml", "text or json"}},
		{"not toml", "this is not a config file", []string{"line 1"}},
		{"dns .local", "[lan]\ninterface = \"eth1\"\n[dns]\ndomain = \"local\"\n", []string{"dns.domain", `"local"`, "home.arpa"}},
		{"dns name", "[lan]\ninterface = \"eth1\"\n[dns]\nname = \"my box\"\n", []string{"dns.name", `"my box"`, "one label"}},
		{"dns alias", "[lan]\ninterface = \"eth1\"\n[dns]\naliases = [\"ok\", \"no_way\"]\n", []string{"dns.aliases", `"no_way"`}},
		{"dns query log", "[lan]\ninterface = \"eth1\"\n[dns]\nquery_log = 5\n", []string{"dns.query_log", "5", "64 to 65536"}},
	}
	for _, tt := range tests {
		_, err := ParseConfig(tt.text)
		if err == nil {
			t.Errorf("%s: accepted", tt.name)
			continue
		}
		for _, w := range tt.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%s: error %q does not mention %q", tt.name, err, w)
			}
		}
	}
}

func TestLoadConfigFile(t *testing.T) {
	dir := t.TempDir()
	if _, err := LoadConfig(filepath.Join(dir, "missing.toml")); err == nil || !strings.Contains(err.Error(), "missing.toml") {
		t.Errorf("missing file: %v", err)
	}
	big := filepath.Join(dir, "big.toml")
	if err := os.WriteFile(big, make([]byte, maxConfigSize+1), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadConfig(big); err == nil || !strings.Contains(err.Error(), "at most") {
		t.Errorf("huge file: %v", err)
	}
	bad := filepath.Join(dir, "bad.toml")
	os.WriteFile(bad, []byte("[lan]\n"), 0o600)
	if _, err := LoadConfig(bad); err == nil || !strings.Contains(err.Error(), bad) {
		t.Errorf("bad file error should name the file: %v", err)
	}
}
