package daemon

import (
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/redoubt/redoubt/dhcp"
)

// TestOnLAN checks where the DHCP pool goes when the box moves: a default pool
// follows the prefix, an explicit pool the new prefix still holds stays, and one
// it cannot hold becomes the new default.
func TestOnLAN(t *testing.T) {
	base, err := ParseConfig("[lan]\ninterface = \"eth1\"\n")
	if err != nil {
		t.Fatal(err)
	}
	to := netip.MustParsePrefix("10.77.0.1/24")
	got := onLAN(base, to)
	if s, e := dhcp.DefaultPool(to); got.DHCP.PoolStart != s || got.DHCP.PoolEnd != e || got.LAN.Address != to {
		t.Errorf("default pool after the move: %v-%v at %v", got.DHCP.PoolStart, got.DHCP.PoolEnd, got.LAN.Address)
	}
	if err := got.Validate(); err != nil {
		t.Errorf("the moved config does not validate: %v", err)
	}

	narrow, err := ParseConfig("[lan]\ninterface = \"eth1\"\naddress = \"10.201.0.1/16\"\n[dhcp]\npool_start = \"10.201.86.10\"\npool_end = \"10.201.86.50\"\n")
	if err != nil {
		t.Fatal(err)
	}
	same := onLAN(narrow, netip.MustParsePrefix("10.201.0.2/16"))
	if same.DHCP.PoolStart.String() != "10.201.86.10" || same.DHCP.PoolEnd.String() != "10.201.86.50" {
		t.Errorf("a pool the new prefix holds moved: %v-%v", same.DHCP.PoolStart, same.DHCP.PoolEnd)
	}
	away := onLAN(narrow, to)
	if s, e := dhcp.DefaultPool(to); away.DHCP.PoolStart != s || away.DHCP.PoolEnd != e {
		t.Errorf("a pool outside the new prefix: %v-%v", away.DHCP.PoolStart, away.DHCP.PoolEnd)
	}
}

// TestOverridesRoundTrip keeps the owner's settings and lays them over the config
// file again, as a restart does; a damaged file leaves the config file in force.
func TestOverridesRoundTrip(t *testing.T) {
	dir := t.TempDir()
	cfg, err := ParseConfig("[lan]\ninterface = \"eth1\"\n[state]\ndir = \"" + dir + "\"\n")
	if err != nil {
		t.Fatal(err)
	}
	b := &Box{cfg: cfg}
	want := onLAN(cfg, netip.MustParsePrefix("172.20.5.1/24"))
	want.DHCP.LeaseTime = 90 * time.Minute
	want.DHCP.Reservations = []dhcp.Reservation{{MAC: "02:00:00:00:00:07", Address: netip.MustParseAddr("172.20.5.7")}}
	if err := b.saveOverrides(want); err != nil {
		t.Fatal(err)
	}
	got, err := applyOverrides(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if got.LAN.Address != want.LAN.Address || got.DHCP.LeaseTime != want.DHCP.LeaseTime ||
		got.DHCP.PoolStart != want.DHCP.PoolStart || len(got.DHCP.Reservations) != 1 {
		t.Errorf("after a restart: lan %v lease %v pool %v reservations %v", got.LAN.Address, got.DHCP.LeaseTime, got.DHCP.PoolStart, got.DHCP.Reservations)
	}

	if err := os.WriteFile(filepath.Join(dir, "settings.json"), []byte(`{"lan_address": "8.8.8.1/24"}`), 0o600); err != nil {
		t.Fatal(err)
	}
	got, err = applyOverrides(cfg)
	if err == nil || !strings.Contains(err.Error(), "private") || got.LAN.Address != cfg.LAN.Address {
		t.Errorf("a public LAN address in the settings file: %v, %v", err, got.LAN.Address)
	}
	if err := os.WriteFile(filepath.Join(dir, "settings.json"), []byte(`{"lan_address": 7`), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := applyOverrides(cfg); err == nil || !strings.Contains(err.Error(), "damaged") {
		t.Errorf("a damaged settings file: %v", err)
	}
}

// TestOwnerNameSurvivesReload: the config file's dns.name, re-read on SIGHUP,
// does not undo the name the owner gave the box.
func TestOwnerNameSurvivesReload(t *testing.T) {
	cfg, err := ParseConfig("[lan]\ninterface = \"eth1\"\n[dns]\naliases = [\"box\"]\n")
	if err != nil {
		t.Fatal(err)
	}
	b := &Box{cfg: cfg}
	if got := b.dnsConfig(cfg); got.Name != cfg.DNS.Name {
		t.Errorf("no owner's name: %q", got.Name)
	}
	b.boxName = "kestrel"
	got := b.dnsConfig(cfg)
	if got.Name != "kestrel" || strings.Join(got.Aliases, ",") != "box,redoubt" || strings.Join(cfg.DNS.Aliases, ",") != "box" {
		t.Errorf("with the owner's name: %q %v (config's aliases now %v)", got.Name, got.Aliases, cfg.DNS.Aliases)
	}
}
