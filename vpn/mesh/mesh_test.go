package mesh

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/redoubt/redoubt/vault"
	"github.com/redoubt/redoubt/vpn/egress"
)

// TestCheckKeepsNothing: the owner's Headscale settings are refused naming the
// bad field before anything is sent, are tried only through the box's egress
// (here closed: no VPN), and neither a check nor a refused change keeps them.
func TestCheckKeepsNothing(t *testing.T) {
	v, err := vault.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { v.Close() })
	if err := v.Init([]byte("correct horse battery staple"), vault.Params{Time: 1, MemoryKiB: 8 << 10, Threads: 1}); err != nil {
		t.Fatal(err)
	}
	m := &Mesh{d: Deps{Vault: v, Egress: egress.Closed{Reason: "the box has no VPN"}}, log: slog.New(slog.DiscardHandler)}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	good := Settings{LoginServer: "https://headscale.example.org", APIKey: "hskey-api-abcdefgh"}
	for _, c := range []struct {
		s    Settings
		want string
	}{
		{Settings{LoginServer: "http://headscale.example.org", APIKey: good.APIKey}, "login server"},
		{Settings{LoginServer: "https://user@headscale.example.org", APIKey: good.APIKey}, "login server"},
		{Settings{LoginServer: "headscale.example.org", APIKey: good.APIKey}, "login server"},
		{Settings{LoginServer: good.LoginServer, APIKey: "short"}, "API key"},
		{Settings{LoginServer: good.LoginServer, APIKey: "hskey api with spaces"}, "API key"},
	} {
		err := m.Check(ctx, c.s)
		if err == nil || !strings.Contains(err.Error(), c.want) || errors.Is(err, egress.ErrNoEgress) {
			t.Errorf("Check(%+v) = %v, want a refusal naming the %s before any connection", c.s, err, c.want)
		}
	}

	// Well-formed settings go out only through the egress, which says why
	// it cannot.
	err = m.Check(ctx, good)
	if err == nil || !errors.Is(err, egress.ErrNoEgress) || !strings.Contains(err.Error(), "cannot use this Headscale") {
		t.Errorf("Check through a closed egress = %v", err)
	}
	if err := m.Configure(ctx, good); err == nil || !errors.Is(err, egress.ErrNoEgress) {
		t.Errorf("Configure through a closed egress = %v", err)
	}
	if _, ok, err := m.Settings(); ok || err != nil {
		t.Errorf("settings kept after a check and a refused change: %v %v", ok, err)
	}
}
