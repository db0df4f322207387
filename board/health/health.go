// Package health is the box's own health check, as a trial boot is judged:
// named probes the daemon wires (the LAN's services listening, the owner's
// pages answering, DNS answering, the vault readable), and the states a
// trial waits on (the vault unlocked, the team mesh's node up). The daemon
// builds the checker and serves its report on the local API; board/initd reads
// it. Any board package may import it.
package health

import (
	"context"
	"fmt"
	"time"
)

// Probe is one check.
type Probe struct {
	Name  string
	Check func(ctx context.Context) error
}

// Result is one probe's outcome.
type Result struct {
	Name   string `json:"name"`
	OK     bool   `json:"ok"`
	Detail string `json:"detail,omitempty"`
}

// Vault and mesh states in a report.
const (
	VaultNone     = "none" // not set up yet: nothing to unlock
	VaultLocked   = "locked"
	VaultUnlocked = "unlocked"
	MeshOff       = "off" // not set up
	MeshUp        = "up"
	MeshDown      = "down" // set up, not (yet) connected
)

// Report is the box's health now.
type Report struct {
	At time.Time `json:"at"`
	// System is true when every probe passed.
	System bool     `json:"system"`
	Checks []Result `json:"checks"`
	Vault  string   `json:"vault"`
	Mesh   string   `json:"mesh"`
	Detail string   `json:"detail,omitempty"` // the mesh's or the vault's detail
}

// Checker runs the probes.
type Checker struct {
	Probes []Probe
	// Vault and Mesh report the states above.
	Vault func() string
	Mesh  func() (state, detail string)
	// Timeout bounds each probe (default 5s).
	Timeout time.Duration
}

// Run runs every probe, each within the timeout.
func (c *Checker) Run(ctx context.Context) Report {
	r := Report{At: time.Now(), System: true, Vault: VaultNone, Mesh: MeshOff}
	to := c.Timeout
	if to == 0 {
		to = 5 * time.Second
	}
	for _, p := range c.Probes {
		pctx, cancel := context.WithTimeout(ctx, to)
		err := runProbe(pctx, p)
		cancel()
		res := Result{Name: p.Name, OK: err == nil}
		if err != nil {
			res.Detail = err.Error()
			r.System = false
		}
		r.Checks = append(r.Checks, res)
	}
	if c.Vault != nil {
		r.Vault = c.Vault()
	}
	if c.Mesh != nil {
		r.Mesh, r.Detail = c.Mesh()
	}
	return r
}

func runProbe(ctx context.Context, p Probe) error {
	done := make(chan error, 1)
	go func() {
		defer func() {
			if v := recover(); v != nil {
				done <- fmt.Errorf("probe %s panicked: %v", p.Name, v)
			}
		}()
		done <- p.Check(ctx)
	}()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		return fmt.Errorf("no answer within the probe's time: %w", ctx.Err())
	}
}

// Failed lists the failed probes as one line.
func (r Report) Failed() string {
	s := ""
	for _, c := range r.Checks {
		if !c.OK {
			if s != "" {
				s += "; "
			}
			s += c.Name + ": " + c.Detail
		}
	}
	return s
}
