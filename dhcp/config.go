package dhcp

import (
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"time"

	"github.com/redoubt/redoubt/dhcp/leases"
)

// Config is the [dhcp] section of the config file. The zero Config, with
// WithDefaults applied, serves the whole LAN prefix.
type Config struct {
	// PoolStart and PoolEnd bound, inclusive, the addresses given to devices.
	// Both must be inside the LAN prefix (lan.address). Default: every device
	// address of the prefix but the box's (10.201.86.2 to 10.201.86.254).
	PoolStart netip.Addr `toml:"pool_start"`
	PoolEnd   netip.Addr `toml:"pool_end"`
	// LeaseTime is how long a lease lasts; devices renew at half of it
	// (default 12h, from 10s to 365 days; below 2m only for tests).
	LeaseTime time.Duration `toml:"lease_time"`
	// Domain is the LAN's domain name (option 15) and the zone device names live
	// in (default home.arpa, RFC 8375).
	Domain string `toml:"domain"`
	// Search is the DNS search list (option 119; default: Domain alone).
	Search []string `toml:"search"`
	// MTU is the interface MTU devices are told to use (option 26; default
	// 1500, from 576 to 9000).
	MTU int `toml:"mtu"`
	// Reservations give a device, by MAC, a fixed address inside the LAN
	// prefix (in the pool or not). Nobody else gets it.
	Reservations []Reservation `toml:"reservation"`
}

// Reservation is one [[dhcp.reservation]] entry.
type Reservation struct {
	MAC     string     `toml:"mac"`
	Address netip.Addr `toml:"address"`
}

// Defaults and limits.
const (
	DefaultLeaseTime = 12 * time.Hour
	DefaultDomain    = "home.arpa"
	DefaultMTU       = 1500
	MinLeaseTime     = 10 * time.Second
	MaxLeaseTime     = 365 * 24 * time.Hour
	maxSearch        = 6
)

// DefaultPool returns the default pool of a LAN: every device address of the
// prefix but the box's.
func DefaultPool(lan netip.Prefix) (start, end netip.Addr) {
	network, bcast := bounds(lan)
	s, e := network+1, bcast-1
	box := be(lan.Addr())
	if box == s {
		s++
	}
	if box == e {
		e--
	}
	return addr(s), addr(e)
}

func be(a netip.Addr) uint32 { b := a.As4(); return binary.BigEndian.Uint32(b[:]) }

func addr(v uint32) netip.Addr {
	var b [4]byte
	binary.BigEndian.PutUint32(b[:], v)
	return netip.AddrFrom4(b)
}

// bounds returns a prefix's network and broadcast addresses as numbers.
func bounds(p netip.Prefix) (network, bcast uint32) {
	mask := ^uint32(0) << (32 - p.Bits())
	network = be(p.Addr()) & mask
	return network, network | ^mask
}

// WithDefaults fills unset fields; lan is the box's address with the LAN prefix
// (lan.address).
func (c Config) WithDefaults(lan netip.Prefix) Config {
	if lan.IsValid() && lan.Addr().Is4() && lan.Bits() < 31 {
		s, e := DefaultPool(lan)
		if !c.PoolStart.IsValid() {
			c.PoolStart = s
		}
		if !c.PoolEnd.IsValid() {
			c.PoolEnd = e
		}
	}
	if c.LeaseTime == 0 {
		c.LeaseTime = DefaultLeaseTime
	}
	if c.Domain == "" {
		c.Domain = DefaultDomain
	}
	c.Domain = strings.ToLower(strings.TrimSuffix(c.Domain, "."))
	if c.Search == nil {
		c.Search = []string{c.Domain}
	}
	if c.MTU == 0 {
		c.MTU = DefaultMTU
	}
	return c
}

// Validate names the first bad field, its value and what is accepted. lan is the
// box's address with the LAN prefix (lan.address).
func (c Config) Validate(lan netip.Prefix) error {
	network, bcast := bounds(lan)
	box := lan.Addr()
	device := func(a netip.Addr) bool {
		v := be(a)
		return a.Is4() && lan.Contains(a) && v != network && v != bcast && a != box
	}
	s, e := DefaultPool(lan)
	example := fmt.Sprintf("such as %v (the LAN is %v, from lan.address; the box is %v)", s, lan.Masked(), box)
	if !c.PoolStart.IsValid() || !device(c.PoolStart) {
		return fmt.Errorf("dhcp.pool_start %q: want a device address inside the LAN, %s", c.PoolStart, example)
	}
	example = fmt.Sprintf("such as %v (the LAN is %v, from lan.address; the box is %v)", e, lan.Masked(), box)
	if !c.PoolEnd.IsValid() || !device(c.PoolEnd) {
		return fmt.Errorf("dhcp.pool_end %q: want a device address inside the LAN, %s", c.PoolEnd, example)
	}
	if be(c.PoolEnd) < be(c.PoolStart) {
		return fmt.Errorf("dhcp.pool_end %v: comes before dhcp.pool_start %v", c.PoolEnd, c.PoolStart)
	}
	if be(c.PoolEnd) == be(c.PoolStart) && c.PoolStart == box {
		return fmt.Errorf("dhcp.pool_start %v: the pool holds only the box's own address", c.PoolStart)
	}
	if c.LeaseTime < MinLeaseTime || c.LeaseTime > MaxLeaseTime {
		return fmt.Errorf("dhcp.lease_time %q: want a duration from 10s to 8760h (365 days), such as \"12h\"", c.LeaseTime)
	}
	if err := checkDomain(c.Domain); err != nil {
		return fmt.Errorf("dhcp.domain %q: %v", c.Domain, err)
	}
	if len(c.Search) > maxSearch {
		return fmt.Errorf("dhcp.search: %d domains: at most %d", len(c.Search), maxSearch)
	}
	for i, d := range c.Search {
		if err := checkDomain(strings.TrimSuffix(d, ".")); err != nil {
			return fmt.Errorf("dhcp.search[%d] %q: %v", i, d, err)
		}
	}
	if c.MTU < 576 || c.MTU > 9000 {
		return fmt.Errorf("dhcp.mtu %d: want from 576 to 9000 (1500 on Ethernet)", c.MTU)
	}
	macs := map[[6]byte]int{}
	addrs := map[netip.Addr]int{}
	for i, r := range c.Reservations {
		mac, err := parseMAC(r.MAC)
		if err != nil {
			return fmt.Errorf("dhcp.reservation[%d].mac %q: %v", i, r.MAC, err)
		}
		if j, dup := macs[mac]; dup {
			return fmt.Errorf("dhcp.reservation[%d].mac %s: already reserved in dhcp.reservation[%d]", i, r.MAC, j)
		}
		macs[mac] = i
		if !r.Address.IsValid() || !device(r.Address) {
			return fmt.Errorf("dhcp.reservation[%d].address %q: want a device address inside the LAN %v (not the box's %v)",
				i, r.Address, lan.Masked(), box)
		}
		if j, dup := addrs[r.Address]; dup {
			return fmt.Errorf("dhcp.reservation[%d].address %v: already reserved in dhcp.reservation[%d]", i, r.Address, j)
		}
		addrs[r.Address] = i
	}
	return nil
}

func parseMAC(s string) ([6]byte, error) {
	m, err := net.ParseMAC(s)
	if err != nil || len(m) != 6 {
		return [6]byte{}, fmt.Errorf("want an Ethernet MAC address, such as 02:52:44:00:00:64")
	}
	if m[0]&1 != 0 {
		return [6]byte{}, fmt.Errorf("a group (multicast) address cannot be a device's")
	}
	return [6]byte(m), nil
}

// checkDomain accepts a DNS name of letters, digits and hyphens.
func checkDomain(d string) error {
	if d == "" || len(d) > 253 {
		return fmt.Errorf("want a domain name such as %s", DefaultDomain)
	}
	for _, l := range strings.Split(d, ".") {
		if l == "" || len(l) > 63 || l[0] == '-' || l[len(l)-1] == '-' {
			return fmt.Errorf("want a domain name such as %s (labels of 1-63 letters, digits, hyphens)", DefaultDomain)
		}
		for _, r := range l {
			if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-') {
				return fmt.Errorf("want a domain name such as %s (letters, digits and hyphens only)", DefaultDomain)
			}
		}
	}
	return nil
}

// tableConfig is what the lease table needs from c.
func (c Config) tableConfig(lan netip.Prefix) leases.Config {
	res := make(map[[6]byte]netip.Addr, len(c.Reservations))
	for _, r := range c.Reservations {
		if mac, err := parseMAC(r.MAC); err == nil {
			res[mac] = r.Address
		}
	}
	return leases.Config{LAN: lan, Start: c.PoolStart, End: c.PoolEnd, LeaseTime: c.LeaseTime, Reservations: res}
}
