// Command redoubt is the Redoubt box: the daemon (`redoubt serve`), the commands
// that talk to it on the box, and the lab that runs it on one machine.
package main

import (
	"fmt"
	"os"

	"github.com/redoubt/redoubt/board/initd"
)

func main() {
	if os.Getpid() == 1 {
		// Started by the kernel on a Redoubt image: be its init.
		initd.Main(initd.Options{})
		return
	}
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "redoubt:", err)
		os.Exit(1)
	}
}
