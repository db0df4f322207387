package backup

import (
	"errors"
	"fmt"
	"regexp"
	"strings"
	"time"

	"github.com/redoubt/redoubt/backup/repo"
	"github.com/redoubt/redoubt/backup/target/s3"
)

// Settings are the owner's backup settings, sealed in the vault.
type Settings struct {
	// S3 is an S3-compatible bucket (nil: none).
	S3 *s3.Config `json:"s3,omitempty"`
	// Peers are teammates' boxes that keep a store for this box.
	Peers []PeerTarget `json:"peers,omitempty"`
	// At is the daily time of the scheduled backup, "HH:MM" in UTC
	// (default 03:30). "" with Every set: every Every instead.
	At string `json:"at,omitempty"`
	// Every runs backups at this interval instead of daily (1h to 7 days).
	Every time.Duration `json:"every,omitempty"`
	// Keep is how many of the latest, daily, weekly and monthly snapshots
	// are kept (default 3, 7, 4, 12).
	Keep repo.Keep `json:"keep"`
	// Paused stops scheduled backups (on-demand ones still run).
	Paused bool `json:"paused,omitempty"`
}

// PeerTarget is a teammate's box.
type PeerTarget struct {
	// Name is what the owner calls it.
	Name string `json:"name"`
	// Address is its name or address in the team's tailnet.
	Address string `json:"address"`
	// Code is the invitation code its owner gave.
	Code string `json:"code"`
}

var (
	atPattern   = regexp.MustCompile(`^([01][0-9]|2[0-3]):[0-5][0-9]$`)
	namePattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9 ._-]{0,62}$`)
)

// WithDefaults fills unset fields.
func (s Settings) WithDefaults() Settings {
	if s.At == "" && s.Every == 0 {
		s.At = "03:30"
	}
	if s.Keep == (repo.Keep{}) {
		s.Keep = repo.Keep{Last: 3, Daily: 7, Weekly: 4, Monthly: 12}
	}
	return s
}

// FieldError names the setting that is wrong, for the settings page.
type FieldError struct{ Field, Message string }

func (e *FieldError) Error() string { return e.Field + ": " + e.Message }

// Validate names the bad field.
func (s Settings) Validate() error {
	if s.S3 != nil {
		if err := s.S3.Validate(); err != nil {
			return &FieldError{"s3", err.Error()}
		}
	}
	seen := map[string]bool{}
	for _, p := range s.Peers {
		if !namePattern.MatchString(p.Name) {
			return &FieldError{"peers", fmt.Sprintf("peer name %q: want 1 to 63 letters, digits, spaces, dots, dashes", p.Name)}
		}
		if seen[strings.ToLower(p.Name)] {
			return &FieldError{"peers", fmt.Sprintf("two peers are named %q", p.Name)}
		}
		seen[strings.ToLower(p.Name)] = true
		if p.Address == "" || strings.ContainsAny(p.Address, "/ ") {
			return &FieldError{"peers", fmt.Sprintf("peer %s: address %q: want its name or address in the tailnet", p.Name, p.Address)}
		}
		if len(p.Code) < 32 {
			return &FieldError{"peers", fmt.Sprintf("peer %s: the invitation code is too short: paste all of it", p.Name)}
		}
	}
	if len(s.Peers) > 8 {
		return &FieldError{"peers", fmt.Sprintf("%d peers: at most 8", len(s.Peers))}
	}
	if s.At != "" && !atPattern.MatchString(s.At) {
		return &FieldError{"at", fmt.Sprintf("%q: want a time of day, HH:MM (UTC)", s.At)}
	}
	if s.Every != 0 && (s.Every < time.Hour || s.Every > 7*24*time.Hour) {
		return &FieldError{"every", fmt.Sprintf("%s: want 1h to 168h", s.Every)}
	}
	k := s.Keep
	if k.Last < 0 || k.Daily < 0 || k.Weekly < 0 || k.Monthly < 0 || k.Last+k.Daily+k.Weekly+k.Monthly == 0 || k.Last > 100 || k.Daily > 366 || k.Weekly > 520 || k.Monthly > 240 {
		return &FieldError{"keep", "keep some of the latest, daily, weekly or monthly snapshots (at most 100, 366, 520, 240)"}
	}
	return nil
}

// Targets are the configured targets' names: "s3" and "peer:<name>".
func (s Settings) Targets() []string {
	var out []string
	if s.S3 != nil {
		out = append(out, "s3")
	}
	for _, p := range s.Peers {
		out = append(out, "peer:"+p.Name)
	}
	return out
}

// next is when the scheduled backup after t runs.
func (s Settings) next(t time.Time) time.Time {
	if s.At == "" {
		return t.Add(s.Every)
	}
	hm, _ := time.Parse("15:04", s.At)
	t = t.UTC()
	n := time.Date(t.Year(), t.Month(), t.Day(), hm.Hour(), hm.Minute(), 0, 0, time.UTC)
	if !n.After(t) {
		n = n.AddDate(0, 0, 1)
	}
	return n
}

// ErrNotConfigured: no target is set.
var ErrNotConfigured = errors.New("backups are not set up: give an S3 bucket or a teammate's box in the backup settings")
