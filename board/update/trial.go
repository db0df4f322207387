package update

import (
	"fmt"
	"time"

	"github.com/redoubt/redoubt/board/bootloader"
	"github.com/redoubt/redoubt/board/bundle"
)

// Boot is what init learns at start about updates.
type Boot struct {
	// Trial is the update this boot is the trial of (nil if none).
	Trial *Staged
	// RolledBack is the update whose trial did not pass, so this boot is on
	// the previous slot (nil if none).
	RolledBack *Staged
}

// OnBoot reads the update state at start: a trial in progress, or a trial
// that did not come back (the boot loader went back to this slot by
// itself), which it records and whose slot it discards.
func OnBoot(store Store, running Image, loader bootloader.Loader, now time.Time) (Boot, error) {
	st, err := store.Load()
	if err != nil {
		return Boot{}, err
	}
	var b Boot
	switch {
	case st.Staged == nil:
		if st.LastGood == "" || bundleNewer(running.Version, st.LastGood) {
			st.LastGood = running.Version // the first image, or a slot written by hand
		}
	case st.Staged.Slot == running.Slot:
		st.Staged.Failed = "" // a trial (again, if the box lost power during it)
		b.Trial = st.Staged
	default:
		b.RolledBack = st.Staged
		why := st.Staged.Failed
		if why == "" {
			why = "the trial boot never came up (the kernel or init failed, or the power was cut)"
		}
		st.add(Event{At: now, Outcome: OutcomeRolledBack, Version: st.Staged.Version, Hash: st.Staged.Hash, Slot: running.Slot,
			Detail: fmt.Sprintf("back on slot %s (%s): %s", running.Slot, running.Version, why)})
		if err := loader.Discard(st.Staged.Slot); err != nil {
			st.add(Event{At: now, Outcome: OutcomeRolledBack, Version: st.Staged.Version, Detail: "discarding the failed slot: " + err.Error()})
		}
		st.Staged = nil
	}
	return b, store.Save(st)
}

func bundleNewer(a, b string) bool { return semverCompare(a, b) > 0 }

// Keep makes the running trial slot the default and the new last good
// version.
func Keep(store Store, running Image, loader bootloader.Loader, now time.Time, detail string) error {
	st, err := store.Load()
	if err != nil {
		return err
	}
	if st.Staged == nil || st.Staged.Slot != running.Slot {
		return fmt.Errorf("slot %s is not on trial", running.Slot)
	}
	if err := loader.Bless(running.Slot); err != nil {
		return err
	}
	st.LastGood = running.Version
	st.add(Event{At: now, Outcome: OutcomeKept, Version: running.Version, Hash: st.Staged.Hash, Slot: running.Slot, Detail: detail})
	st.Staged = nil
	return store.Save(st)
}

// Fail records why the trial failed; init then restarts, and the boot
// loader starts the previous slot.
func Fail(store Store, running Image, now time.Time, reason string) error {
	st, err := store.Load()
	if err != nil {
		return err
	}
	if st.Staged == nil || st.Staged.Slot != running.Slot {
		return fmt.Errorf("slot %s is not on trial", running.Slot)
	}
	st.Staged.Failed = reason
	st.add(Event{At: now, Outcome: OutcomeFailed, Version: running.Version, Hash: st.Staged.Hash, Slot: running.Slot, Detail: reason})
	return store.Save(st)
}

func semverCompare(a, b string) int { return bundle.Compare(a, b) }
