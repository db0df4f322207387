// Command redoubt is the Redoubt box: the daemon (`redoubt serve`), the commands
// that talk to it on the box, and the lab that runs it on one machine.
package main

import (
	"fmt"
	"os"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "redoubt:", err)
		os.Exit(1)
	}
}
