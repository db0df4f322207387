package localapi

import (
	"context"
	"net/http"
	"time"

	"github.com/redoubt/redoubt/vpn/external"
)

// The owner's settings over the local API (`redoubt settings`): what the
// settings page shows and changes.
//
//	GET  /v1/settings       every setting, with the VPN's and the team mesh's state
//	PUT  /v1/settings       {box_name, lan_address, lease_time, reservations}: the
//	                        fields given change, the others stay
//	POST /v1/vpn/test       test the VPN step by step (see /v1/vpn for the rest)

// Settings are the owner's settings.
type Settings struct {
	BoxName      string        `json:"box_name"`
	LANAddress   string        `json:"lan_address"`
	LeaseTime    string        `json:"lease_time"`
	Reservations []Reservation `json:"reservations"`
	// VPN and Team are their parts' state (changed with /v1/vpn and
	// /v1/team/mesh).
	VPN  VPNSummary `json:"vpn"`
	Team TeamStatus `json:"team"`
}

// Reservation keeps an address for a device.
type Reservation struct {
	MAC string `json:"mac"`
	IP  string `json:"ip"`
}

// VPNSummary is the VPN's state in a few words.
type VPNSummary struct {
	State    string `json:"state"`
	Reason   string `json:"reason,omitempty"`
	Endpoint string `json:"endpoint,omitempty"`
	Exit     string `json:"exit_address,omitempty"`
	FromFile bool   `json:"from_file"`
}

// SettingsChange changes the settings given (nil: unchanged).
type SettingsChange struct {
	BoxName      *string        `json:"box_name,omitempty"`
	LANAddress   *string        `json:"lan_address,omitempty"`
	LeaseTime    *string        `json:"lease_time,omitempty"`
	Reservations *[]Reservation `json:"reservations,omitempty"`
}

// SettingsAPI is what the local API does with the settings; the daemon
// implements it with the settings page's own rules.
type SettingsAPI interface {
	Settings() Settings
	// Change validates and applies a change; a *FieldError names the bad
	// field.
	Change(SettingsChange) (Settings, error)
}

func settingsRoutes(mux *http.ServeMux, s SettingsAPI) {
	if s == nil {
		return
	}
	mux.HandleFunc("GET /v1/settings", func(w http.ResponseWriter, r *http.Request) { writeJSON(w, s.Settings()) })
	mux.HandleFunc("PUT /v1/settings", func(w http.ResponseWriter, r *http.Request) {
		var ch SettingsChange
		if err := readBody(r, &ch); err != nil {
			writeErr(w, err)
			return
		}
		st, err := s.Change(ch)
		if err != nil {
			writeErr(w, err)
			return
		}
		writeJSON(w, st)
	})
}

// Settings fetches the settings.
func (c *Client) Settings(ctx context.Context) (Settings, error) {
	var s Settings
	return s, c.call(ctx, http.MethodGet, "/v1/settings", nil, &s)
}

// ChangeSettings changes the settings given and returns them all.
func (c *Client) ChangeSettings(ctx context.Context, ch SettingsChange) (Settings, error) {
	var s Settings
	return s, c.call(ctx, http.MethodPut, "/v1/settings", ch, &s)
}

// TestVPN asks the box to test its VPN now (it takes up to about 20 s).
func (c *Client) TestVPN(ctx context.Context) (external.TestResult, error) {
	ctx, cancel := context.WithTimeout(ctx, 40*time.Second)
	defer cancel()
	var res external.TestResult
	return res, c.call(ctx, http.MethodPost, "/v1/vpn/test", nil, &res)
}
