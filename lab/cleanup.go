package lab

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// nsPattern matches the namespaces labs create.
var nsPattern = regexp.MustCompile(`^(rdt[0-9a-f]{6})-[a-z]+$`)

// List returns the labs recorded under StateRoot.
func List() ([]State, error) {
	dirs, err := os.ReadDir(StateRoot)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []State
	for _, d := range dirs {
		b, err := os.ReadFile(filepath.Join(StateRoot, d.Name(), "lab.json"))
		if err != nil {
			continue
		}
		var s State
		if json.Unmarshal(b, &s) == nil && s.Prefix == d.Name() {
			out = append(out, s)
		}
	}
	return out, nil
}

// Find returns the lab commands like `redoubt lab shell` act on: the newest
// demo (persistent) lab, else the newest lab.
func Find() (State, error) {
	labs, err := List()
	if err != nil {
		return State{}, err
	}
	if len(labs) == 0 {
		return State{}, errors.New("no lab is running (start one with `make demo` or `redoubt lab up`)")
	}
	best := labs[0]
	for _, s := range labs[1:] {
		if s.Persistent != best.Persistent {
			if s.Persistent {
				best = s
			}
			continue
		}
		if s.Created > best.Created {
			best = s
		}
	}
	return best, nil
}

// Sweep removes labs left behind: those whose owner process is gone and that were
// not started to persist, or every lab when all is true. Namespaces that look like
// a lab's but have no record are removed too when their prefix has no live lab.
func Sweep(all bool, logf func(string, ...any)) error { return sweep(all, false, logf) }

// Down removes the demo's labs (those started to persist) and whatever crashed
// runs left, but not a lab another process is still using (a test run).
func Down(logf func(string, ...any)) error { return sweep(false, true, logf) }

func sweep(all, persistent bool, logf func(string, ...any)) error {
	if logf == nil {
		logf = func(string, ...any) {}
	}
	labs, err := List()
	if err != nil {
		return err
	}
	live := map[string]bool{}
	var errs []error
	for _, s := range labs {
		if !all && !(persistent && s.Persistent) && (s.Persistent || alive(s.Owner)) {
			live[s.Prefix] = true
			continue
		}
		if err := remove(filepath.Join(StateRoot, s.Prefix), logf); err != nil {
			errs = append(errs, err)
		}
	}
	out, err := run(context.Background(), "ip", "netns", "list")
	if err == nil {
		for _, line := range strings.Split(out, "\n") {
			f := strings.Fields(line)
			if len(f) == 0 {
				continue
			}
			m := nsPattern.FindStringSubmatch(f[0])
			if m == nil || live[m[1]] {
				continue
			}
			if _, err := os.Stat(filepath.Join(StateRoot, m[1])); err == nil && !all {
				continue // recorded and kept above
			}
			logf("removing stray namespace %s", f[0])
			killNamespace(f[0])
			if _, err := run(context.Background(), "ip", "netns", "del", f[0]); err != nil {
				errs = append(errs, err)
			}
			os.RemoveAll(filepath.Join("/etc/netns", f[0]))
		}
	}
	return errors.Join(errs...)
}

// remove tears down the lab recorded in dir: its processes, its namespaces (and
// with them every veth), its per-namespace /etc files, and dir itself.
func remove(dir string, logf func(string, ...any)) error {
	b, err := os.ReadFile(filepath.Join(dir, "lab.json"))
	if err != nil {
		return os.RemoveAll(dir)
	}
	var s State
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("reading %s: %w", dir, err)
	}
	logf("lab %s: removing", s.Prefix)
	for _, pid := range s.Pids {
		syscall.Kill(pid, syscall.SIGTERM)
	}
	for _, ns := range s.Namespaces {
		killNamespace(ns)
	}
	var errs []error
	for _, ns := range s.Namespaces {
		if _, err := os.Stat(filepath.Join("/run/netns", ns)); err != nil {
			continue
		}
		if _, err := run(context.Background(), "ip", "netns", "del", ns); err != nil {
			errs = append(errs, err)
		}
		os.RemoveAll(filepath.Join("/etc/netns", ns))
	}
	if err := os.RemoveAll(dir); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// killNamespace ends every process inside ns: SIGTERM, then SIGKILL for what is
// still there a moment later.
func killNamespace(ns string) {
	pids := func() []int {
		out, err := run(context.Background(), "ip", "netns", "pids", ns)
		if err != nil {
			return nil
		}
		var ps []int
		for _, f := range strings.Fields(out) {
			if p, err := strconv.Atoi(f); err == nil {
				ps = append(ps, p)
			}
		}
		return ps
	}
	self := os.Getpid()
	pids0 := pids
	pids = func() []int { // never ourselves, whatever thread of ours is where
		var out []int
		for _, p := range pids0() {
			if p != self {
				out = append(out, p)
			}
		}
		return out
	}
	ps := pids()
	for _, p := range ps {
		syscall.Kill(p, syscall.SIGTERM)
	}
	deadline := time.Now().Add(3 * time.Second)
	for len(ps) > 0 && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
		ps = pids()
	}
	for _, p := range ps {
		syscall.Kill(p, syscall.SIGKILL)
	}
}

func alive(pid int) bool {
	if pid <= 0 {
		return false
	}
	err := syscall.Kill(pid, 0)
	return err == nil || errors.Is(err, syscall.EPERM)
}

// Attach returns a handle on a running lab another process built (for `redoubt
// lab forward` and the like); it does not own the lab and never removes it.
func Attach(s State) *Lab {
	return &Lab{Prefix: s.Prefix, Dir: filepath.Join(StateRoot, s.Prefix), logf: func(string, ...any) {}, state: s, down: true}
}
