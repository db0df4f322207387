package daemon

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"time"

	"github.com/redoubt/redoubt/dhcp"
)

// overrides are the settings the owner changed on the settings page. They live in
// state.dir/settings.json, outside the vault (the DHCP server needs them while the
// box is locked), and win over the config file's values.
type overrides struct {
	// LANAddress is the box's LAN address and prefix, over lan.address.
	LANAddress   string             `json:"lan_address,omitempty"`
	LeaseTime    string             `json:"lease_time,omitempty"`
	Reservations []dhcp.Reservation `json:"reservations"`
}

func (b *Box) overridesPath() string {
	return filepath.Join(b.config().State.Dir, "settings.json")
}

// saveOverrides keeps what the settings page controls, atomically.
func (b *Box) saveOverrides(cfg Config) error {
	o := overrides{LANAddress: cfg.LAN.Address.String(), LeaseTime: cfg.DHCP.LeaseTime.String(), Reservations: cfg.DHCP.Reservations}
	data, err := json.MarshalIndent(o, "", "  ")
	if err != nil {
		return err
	}
	path := b.overridesPath()
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// applyOverrides lays the owner's settings over a config read from the file. A
// damaged settings file is reported and ignored: the box starts on its config.
func applyOverrides(cfg Config) (Config, error) {
	data, err := os.ReadFile(filepath.Join(cfg.State.Dir, "settings.json"))
	if errors.Is(err, os.ErrNotExist) {
		return cfg, nil
	}
	if err != nil {
		return cfg, fmt.Errorf("reading the owner's settings: %w", err)
	}
	var o overrides
	if err := json.Unmarshal(data, &o); err != nil {
		return cfg, fmt.Errorf("the owner's settings file is damaged (%v); using the config file alone", err)
	}
	next := cfg
	if o.LANAddress != "" {
		addr, err := netip.ParsePrefix(o.LANAddress)
		if err != nil {
			return cfg, fmt.Errorf("the owner's settings: lan_address %q: %v", o.LANAddress, err)
		}
		next = onLAN(next, addr)
	}
	if o.LeaseTime != "" {
		d, err := time.ParseDuration(o.LeaseTime)
		if err != nil {
			return cfg, fmt.Errorf("the owner's settings: lease_time %q: %v", o.LeaseTime, err)
		}
		next.DHCP.LeaseTime = d
	}
	next.DHCP.Reservations = o.Reservations
	if err := next.Validate(); err != nil {
		return cfg, fmt.Errorf("the owner's settings no longer fit the config (%v); using the config file alone", err)
	}
	return next, nil
}

// onLAN returns cfg with the box at addr (its address and the LAN prefix). A DHCP
// pool that was the old prefix's default, or that the new prefix cannot hold,
// becomes the new prefix's default pool.
func onLAN(cfg Config, addr netip.Prefix) Config {
	old := cfg.LAN.Address
	cfg.LAN.Address = addr
	if addr == old {
		return cfg
	}
	if old.IsValid() {
		if s, e := dhcp.DefaultPool(old); cfg.DHCP.PoolStart == s && cfg.DHCP.PoolEnd == e {
			cfg.DHCP.PoolStart, cfg.DHCP.PoolEnd = dhcp.DefaultPool(addr)
		}
	}
	probe := cfg.DHCP
	probe.Reservations = nil
	if probe.Validate(addr) != nil {
		cfg.DHCP.PoolStart, cfg.DHCP.PoolEnd = dhcp.DefaultPool(addr)
	}
	return cfg
}
