package host

import (
	"slices"
	"time"

	"github.com/redoubt/redoubt/apps"
)

// memberCache is the team's members as last read from the directory (the
// vault): asked again every 10 seconds, and at once (at most every second)
// when a device's user is not among them.
type memberCache struct {
	entries []DirectoryEntry
	byUser  map[uint64]DirectoryEntry
	loaded  time.Time
	missed  time.Time
}

const (
	memberRefresh = 10 * time.Second
	memberMiss    = time.Second
)

// directory returns the members, reading them again if the copy is old.
func (h *Host) directory(force bool) memberCache {
	h.mu.Lock()
	defer h.mu.Unlock()
	now := h.d.Now()
	fresh := now.Sub(h.members.loaded) < memberRefresh
	if h.d.Directory == nil || (fresh && !force) || (force && now.Sub(h.members.missed) < memberMiss) {
		return h.members
	}
	if force {
		h.members.missed = now
	}
	entries, err := h.d.Directory.Members()
	if err != nil {
		h.log.Debug("reading the team's members", "err", err)
		return h.members
	}
	c := memberCache{entries: entries, byUser: make(map[uint64]DirectoryEntry, len(entries)), loaded: now, missed: h.members.missed}
	for _, e := range entries {
		c.byUser[e.UserID] = e
	}
	h.members = c
	return c
}

// memberForUser is the member whose devices carry the coordination server's
// user id uid.
func (h *Host) memberForUser(uid uint64) (DirectoryEntry, bool) {
	if uid == 0 {
		return DirectoryEntry{}, false
	}
	if e, ok := h.directory(false).byUser[uid]; ok {
		return e, true
	}
	e, ok := h.directory(true).byUser[uid]
	return e, ok
}

// memberList is the members with their devices in the tailnet.
func (h *Host) memberList() []apps.Member {
	c := h.directory(false)
	peers := h.net.tailnetPeers()
	out := make([]apps.Member, 0, len(c.entries))
	for _, e := range c.entries {
		m := apps.Member{ID: e.ID, Name: e.Name}
		for _, p := range peers {
			if p.UserID == e.UserID && !p.Tagged {
				m.Devices = append(m.Devices, apps.Device{Name: p.Name, Addrs: p.Addrs, OS: p.OS, Online: p.Online})
			}
		}
		out = append(out, m)
	}
	slices.SortFunc(out, func(a, b apps.Member) int {
		if a.Name < b.Name {
			return -1
		}
		if a.Name > b.Name {
			return 1
		}
		return 0
	})
	return out
}

// MemberRemoved ends a removed member's use of the apps at once: their
// connections are closed (requests, WebSockets, WebDAV), and every running
// app is told, to drop what it holds for them. The daemon calls it from
// vpn/members' OnRemoved.
func (h *Host) MemberRemoved(id, name string) {
	h.mu.Lock()
	h.members = memberCache{}
	h.mu.Unlock()
	n := h.net.closeConns(func(c *connInfo) bool { return c.memberID() == id })
	h.log.Info("member removed: their connections to the apps are closed", "member", name, "connections", n)
	m := apps.Member{ID: id, Name: name}
	for _, in := range h.apps {
		in.memberRemoved(m)
	}
}
