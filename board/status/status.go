// Package status tells whoever stands next to the box what it is doing, with
// no screen needed: one of a few states (booting, waiting for setup, locked,
// running, VPN down, and an update's trial), shown as a line on the console and
// as a pattern on the board's LEDs (/sys/class/leds: a Pi's green ACT and red
// PWR lights, a PC's keyboard or case lights when there are any). Only
// board/initd imports it.
package status

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// State is what the box is doing.
type State string

// The states, in the words the console prints.
const (
	Booting      State = "booting"
	WaitingSetup State = "waiting for setup"
	Locked       State = "locked"
	Running      State = "running"
	VPNDown      State = "VPN down"
	Trial        State = "update on trial"
	Failing      State = "not working" // the daemon is not answering
	Resetting    State = "factory reset"
)

// Of derives the state from what the daemon reports: setupDone, locked,
// vpnState ("up", "connecting", "down", "not configured").
func Of(setupDone, locked bool, vpnState string) State {
	switch {
	case !setupDone:
		return WaitingSetup
	case locked:
		return Locked
	case vpnState != "up":
		return VPNDown
	}
	return Running
}

// Pattern is how a LED shows a state: the kernel's "timer" trigger with on
// and off times, or steady on or off.
type Pattern struct {
	Trigger    string // "none" or "timer"
	On, Off    int    // milliseconds, for "timer"
	Brightness int    // for "none": 0 or 1
}

// Patterns of the activity LED (ACT, green) and the power LED (PWR, red).
func Patterns(s State) (act, pwr Pattern) {
	steady := func(on bool) Pattern {
		if on {
			return Pattern{Trigger: "none", Brightness: 1}
		}
		return Pattern{Trigger: "none"}
	}
	blink := func(on, off int) Pattern { return Pattern{Trigger: "timer", On: on, Off: off} }
	switch s {
	case Booting:
		return blink(100, 100), steady(true)
	case WaitingSetup:
		return blink(1000, 1000), steady(true)
	case Locked:
		return blink(100, 1900), steady(true)
	case Running:
		return steady(true), steady(false)
	case VPNDown:
		return steady(true), blink(500, 500)
	case Trial:
		return blink(250, 250), blink(250, 250)
	case Resetting:
		return blink(50, 50), blink(50, 50)
	}
	return steady(false), blink(100, 100) // failing
}

// LEDs drives the board's LEDs under a sysfs tree (/sys/class/leds).
type LEDs struct {
	Dir string
	// ACT and PWR are the LED names found (empty: none).
	ACT, PWR string
}

// FindLEDs looks for the Pi's LED names under dir ("ACT" or "led0",
// "PWR" or "led1"); boards without them get none.
func FindLEDs(dir string) LEDs {
	l := LEDs{Dir: dir}
	for _, n := range []string{"ACT", "led0"} {
		if _, err := os.Stat(filepath.Join(dir, n)); err == nil {
			l.ACT = n
			break
		}
	}
	for _, n := range []string{"PWR", "led1"} {
		if _, err := os.Stat(filepath.Join(dir, n)); err == nil {
			l.PWR = n
			break
		}
	}
	return l
}

// Show sets the LEDs for s.
func (l LEDs) Show(s State) error {
	act, pwr := Patterns(s)
	var errs []string
	for _, x := range []struct {
		name string
		p    Pattern
	}{{l.ACT, act}, {l.PWR, pwr}} {
		if x.name == "" {
			continue
		}
		if err := l.set(x.name, x.p); err != nil {
			errs = append(errs, err.Error())
		}
	}
	if errs != nil {
		return fmt.Errorf("setting LEDs: %s", strings.Join(errs, "; "))
	}
	return nil
}

func (l LEDs) set(name string, p Pattern) error {
	dir := filepath.Join(l.Dir, name)
	write := func(file, v string) error {
		return os.WriteFile(filepath.Join(dir, file), []byte(v), 0o644)
	}
	if err := write("trigger", p.Trigger); err != nil {
		return err
	}
	if p.Trigger == "timer" {
		// The timer trigger creates delay_on and delay_off when selected.
		if err := write("delay_on", fmt.Sprint(p.On)); err != nil {
			return err
		}
		return write("delay_off", fmt.Sprint(p.Off))
	}
	return write("brightness", fmt.Sprint(p.Brightness))
}
