package apps

import "time"

// Status is an app as its owner sees it: `redoubt app list` and `status`,
// the local API, the Apps page.
type Status struct {
	ID          string `json:"id"`
	Name        string `json:"name"`
	Description string `json:"description"`
	Version     string `json:"version"`
	// Kind is "built-in" or "external".
	Kind string `json:"kind"`
	// Installed: the box has the app (built in, or its files in the
	// external apps' directory).
	Installed bool `json:"installed"`
	// Running: started and not stopped.
	Running bool `json:"running"`
	// State is "running", "starting", "stopped", "failed" or "locked";
	// Problem says why it failed.
	State   string `json:"state"`
	Problem string `json:"problem,omitempty"`
	// Published are the origins it is served on now: running, allowed on
	// the network, and the network up.
	Published []Origin `json:"published"`
	Autostart bool     `json:"autostart"`
	// Connect are the ways to connect, on each published origin.
	Connect []ConnectURL `json:"connect,omitempty"`
	// Usage is the app's storage (while it runs).
	Usage *Usage `json:"usage,omitempty"`
}

// ConnectURL is a way to connect, with its URL on one network.
type ConnectURL struct {
	Label   string  `json:"label"`
	URL     string  `json:"url"`
	Network Network `json:"network"`
	QR      bool    `json:"qr,omitempty"`
}

// Info is an app in full: its status, manifest and option values.
type Info struct {
	Status
	Manifest Manifest `json:"manifest"`
	// Options are the option values by name (absent while locked).
	Options map[string]string `json:"options,omitempty"`
}

// ConnectURLs are m's connect entries on the given origins.
func ConnectURLs(m Manifest, origins []Origin) []ConnectURL {
	var out []ConnectURL
	for _, o := range origins {
		if o.Network == Box {
			continue
		}
		for _, c := range m.Connect {
			u := o.URL + c.Path
			if c.Scheme != "" {
				u = c.Scheme + u[len("https"):]
			}
			out = append(out, ConnectURL{Label: c.Label, URL: u, Network: o.Network, QR: c.QR})
		}
	}
	return out
}

// Password is an app password, as the owner sees it (never the secret): for
// a native client of the app on the LAN (a WebDAV client, rclone).
type Password struct {
	// Label names the device or program it is for ("macbook finder").
	Label    string    `json:"label"`
	Created  time.Time `json:"created"`
	LastUsed time.Time `json:"last_used,omitzero"`
}
