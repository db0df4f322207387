package health

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"
)

func TestRun(t *testing.T) {
	c := &Checker{
		Probes: []Probe{
			{Name: "ok", Check: func(context.Context) error { return nil }},
			{Name: "broken", Check: func(context.Context) error { return errors.New("no answer") }},
			{Name: "slow", Check: func(ctx context.Context) error { <-ctx.Done(); return ctx.Err() }},
			{Name: "panics", Check: func(context.Context) error { panic("boom") }},
		},
		Vault:   func() string { return VaultLocked },
		Timeout: 50 * time.Millisecond,
	}
	r := c.Run(context.Background())
	if r.System || r.Vault != VaultLocked || r.Mesh != MeshOff || len(r.Checks) != 4 || !r.Checks[0].OK {
		t.Fatalf("%+v", r)
	}
	for _, want := range []string{"broken: no answer", "slow: ", "panics: probe panics panicked: boom"} {
		if !strings.Contains(r.Failed(), want) {
			t.Errorf("Failed() = %q, want %q in it", r.Failed(), want)
		}
	}
	c.Probes = c.Probes[:1]
	if r := c.Run(context.Background()); !r.System || r.Failed() != "" {
		t.Fatalf("%+v", r)
	}
}
