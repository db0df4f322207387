// Command redoubt-image builds Redoubt's disk images and signed updates
// (board/image); `make image` runs it.
package main

import (
	"os"

	"github.com/redoubt/redoubt/board/image"
)

func main() { os.Exit(image.Main(os.Args[1:], os.Stdout, os.Stderr)) }
