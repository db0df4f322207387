// Command brokenfw is a deliberately broken Redoubt build for the update
// tests: as PID 1 it is the real init, but its daemon exits at once, so a
// trial boot of it never becomes healthy.
package main

import (
	"fmt"
	"os"

	"github.com/redoubt/redoubt/board/initd"
)

func main() {
	if os.Getpid() == 1 {
		initd.Main(initd.Options{})
		return
	}
	fmt.Fprintln(os.Stderr, "brokenfw: this build cannot serve")
	os.Exit(1)
}
