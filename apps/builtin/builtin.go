// Package builtin is the list of apps compiled into the box, as CoreDNS's
// plugin list is: one line per app. Adding an app is adding its package
// under apps/ and a line here. Only the daemon imports it.
package builtin

import (
	"github.com/redoubt/redoubt/apps"
	"github.com/redoubt/redoubt/apps/clipboard"
	"github.com/redoubt/redoubt/apps/home"
)

// Deps are what some built-in apps need from the box beyond their Env.
type Deps struct {
	// Home is what the members' page shows.
	Home home.Info
}

// Apps returns the built-in apps.
func Apps(d Deps) []apps.App {
	return []apps.App{
		home.New(d.Home),
		clipboard.New(),
	}
}
