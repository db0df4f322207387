package daemon

import (
	"time"

	"golang.org/x/sys/unix"
)

// setSystemTime sets the operating system's clock (clock.set_system, on a
// board with no real-time clock).
func setSystemTime(t time.Time) error {
	ts := unix.NsecToTimespec(t.UnixNano())
	return unix.ClockSettime(unix.CLOCK_REALTIME, &ts)
}
