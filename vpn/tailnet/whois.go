package tailnet

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strings"
)

// Identity is who sends from a tailnet address, as the coordination server
// told the box's node: the device and the user (member) it belongs to.
type Identity struct {
	// Device is the device's name in the tailnet (its MagicDNS label).
	Device string
	// NodeKey is the device's node key ("nodekey:…").
	NodeKey string
	// UserID is the coordination server's id of the device's user (zero for
	// a tagged device, which belongs to no user).
	UserID uint64
	// User is the user's login name.
	User string
	// Tags are the device's tags; a tagged device belongs to no member.
	Tags []string
	OS   string
}

// ErrUnknownPeer: the address is no device the node knows.
var ErrUnknownPeer = errors.New("no device of the tailnet has this address")

// WhoIs returns who is behind a connection from remote, a tailnet address and
// port, by asking the node (tsnet's local API: what the coordination server
// said about its peers). Nothing leaves the box.
func (n *Node) WhoIs(ctx context.Context, remote netip.AddrPort) (Identity, error) {
	lc, err := n.srv.LocalClient()
	if err != nil {
		return Identity{}, fmt.Errorf("asking the box's node who is at %v: %w", remote, err)
	}
	w, err := lc.WhoIs(ctx, remote.String())
	if err != nil {
		if strings.Contains(err.Error(), "no match for IP") || strings.Contains(err.Error(), "404") {
			return Identity{}, fmt.Errorf("%v: %w", remote, ErrUnknownPeer)
		}
		return Identity{}, fmt.Errorf("asking the box's node who is at %v: %w", remote, err)
	}
	if w.Node == nil {
		return Identity{}, fmt.Errorf("%v: %w", remote, ErrUnknownPeer)
	}
	id := Identity{
		Device:  strings.SplitN(w.Node.Name, ".", 2)[0],
		NodeKey: w.Node.Key.String(),
		Tags:    w.Node.Tags,
	}
	if w.Node.Hostinfo.Valid() {
		id.OS = w.Node.Hostinfo.OS()
	}
	if len(id.Tags) == 0 && w.UserProfile != nil {
		id.UserID = uint64(w.UserProfile.ID)
		id.User = w.UserProfile.LoginName
	}
	return id, nil
}
