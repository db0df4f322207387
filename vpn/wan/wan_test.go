package wan

import (
	"net/netip"
	"strings"
	"testing"
)

func TestConfigDefaults(t *testing.T) {
	if c := (Config{}).WithDefaults(); c.Addressing != System || !c.FirewallOn() {
		t.Errorf("no interface: %+v", c)
	}
	if c := (Config{Interface: "eth0"}).WithDefaults(); c.Addressing != DHCP {
		t.Errorf("an interface: %+v", c)
	}
	off := false
	if (Config{Firewall: &off}).FirewallOn() {
		t.Error("firewall = false is on")
	}
}

// TestConfigValidate checks that every mistake names the setting, the value and
// what would be accepted.
func TestConfigValidate(t *testing.T) {
	p := netip.MustParsePrefix
	a := netip.MustParseAddr
	for _, tc := range []struct {
		cfg  Config
		want []string
	}{
		{Config{Interface: "averyveryverylongname", Addressing: DHCP}, []string{"wan.interface", "15 characters"}},
		{Config{Addressing: DHCP}, []string{"wan.addressing", "dhcp", "needs wan.interface"}},
		{Config{Interface: "eth0", Addressing: "pppoe"}, []string{"wan.addressing", "pppoe", `"dhcp", "static" or "system"`}},
		{Config{Interface: "eth0", Addressing: Static}, []string{"wan.address", "192.168.1.2/24"}},
		{Config{Interface: "eth0", Addressing: Static, Address: p("fd00::2/64"), Gateway: a("fd00::1")}, []string{"wan.address", "IPv4"}},
		{Config{Interface: "eth0", Addressing: Static, Address: p("192.168.1.0/24"), Gateway: a("192.168.1.1")}, []string{"wan.address", "network's own address", "192.168.1.1"}},
		{Config{Interface: "eth0", Addressing: Static, Address: p("192.168.1.2/24")}, []string{"wan.gateway", "192.168.1.0/24"}},
		{Config{Interface: "eth0", Addressing: Static, Address: p("192.168.1.2/24"), Gateway: a("10.0.0.1")}, []string{"wan.gateway", "10.0.0.1", "inside 192.168.1.0/24"}},
		{Config{Interface: "eth0", Addressing: Static, Address: p("192.168.1.2/24"), Gateway: a("192.168.1.2")}, []string{"wan.gateway"}},
		{Config{Interface: "eth0", Addressing: DHCP, Address: p("192.168.1.2/24")}, []string{"wan.address", "only static"}},
		{Config{Interface: "eth0", Addressing: DHCP, Gateway: a("192.168.1.1")}, []string{"wan.gateway", "only static"}},
	} {
		err := tc.cfg.Validate()
		if err == nil {
			t.Errorf("%+v: accepted", tc.cfg)
			continue
		}
		for _, w := range tc.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%+v: %q does not mention %q", tc.cfg, err, w)
			}
		}
	}
	for _, ok := range []Config{
		{},
		{Interface: "eth0", Addressing: DHCP},
		{Interface: "eth0", Addressing: Static, Address: p("192.168.1.2/24"), Gateway: a("192.168.1.1")},
		{Interface: "eth0", Addressing: Static, Address: p("100.64.7.2/31"), Gateway: a("100.64.7.3")},
		{Interface: "eth0", Addressing: System},
	} {
		if err := ok.WithDefaults().Validate(); err != nil {
			t.Errorf("%+v: %v", ok, err)
		}
	}
}

func TestBroadcast(t *testing.T) {
	if b := broadcast(netip.MustParsePrefix("192.168.1.2/24")); b.String() != "192.168.1.255" {
		t.Errorf("broadcast %v", b)
	}
	if b := broadcast(netip.MustParsePrefix("10.0.0.2/31")); b != nil {
		t.Errorf("a /31 has no broadcast: %v", b)
	}
}
