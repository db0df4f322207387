package headscale

import (
	"context"
	"fmt"
	"net/http"
	"net/netip"
	"net/url"
	"time"
)

// User is a Headscale user: a team member, for the box.
type User struct {
	ID          uint64
	Name        string
	DisplayName string
	Email       string
	Created     time.Time
}

// PreAuthKey is a pre-authentication key. Key is the whole key only in the
// answer to CreatePreAuthKey; lists show a prefix ("hskey-auth-XXXX-***").
type PreAuthKey struct {
	ID         uint64
	Key        string
	User       *User // nil for a key that makes tagged nodes
	Reusable   bool
	Ephemeral  bool
	Used       bool
	Expiration time.Time
	Created    time.Time
	Tags       []string
}

// Expired reports whether the key can no longer be used at now.
func (k PreAuthKey) Expired(now time.Time) bool {
	return !k.Expiration.IsZero() && !k.Expiration.After(now)
}

// Usable reports whether the key could still register a node at now.
func (k PreAuthKey) Usable(now time.Time) bool {
	return !k.Expired(now) && (k.Reusable || !k.Used)
}

// Node is a device in the tailnet. Headscale's API carries no operating
// system: that comes from the tailnet's own peer list.
type Node struct {
	ID uint64
	// Hostname is what the device calls itself; GivenName is its name in the
	// tailnet (MagicDNS), unique there.
	Hostname, GivenName string
	// User owns the node; for a tagged node Headscale reports the special
	// user "tagged-devices".
	User           User
	Addrs          []netip.Addr
	Online         bool
	LastSeen       time.Time
	Expiry         time.Time
	Created        time.Time
	Tags           []string
	RegisterMethod string // REGISTER_METHOD_AUTH_KEY, _CLI, _OIDC
	NodeKey        string // "nodekey:…"
	MachineKey     string // "mkey:…"
	PreAuthKeyID   uint64 // the key it registered with, if any
}

// Policy is the tailnet's policy file as stored in Headscale's database.
type Policy struct {
	Text    string // HuJSON; "" when none is set (Headscale then allows everything)
	Updated time.Time
}

// Wire shapes (protojson: 64-bit integers as strings, timestamps RFC 3339).
type (
	wireUser struct {
		ID          u64       `json:"id"`
		Name        string    `json:"name"`
		DisplayName string    `json:"displayName"`
		Email       string    `json:"email"`
		CreatedAt   time.Time `json:"createdAt"`
	}
	wireKey struct {
		ID         u64       `json:"id"`
		Key        string    `json:"key"`
		User       *wireUser `json:"user"`
		Reusable   bool      `json:"reusable"`
		Ephemeral  bool      `json:"ephemeral"`
		Used       bool      `json:"used"`
		Expiration time.Time `json:"expiration"`
		CreatedAt  time.Time `json:"createdAt"`
		ACLTags    []string  `json:"aclTags"`
	}
	wireNode struct {
		ID             u64       `json:"id"`
		MachineKey     string    `json:"machineKey"`
		NodeKey        string    `json:"nodeKey"`
		IPAddresses    []string  `json:"ipAddresses"`
		Name           string    `json:"name"`
		User           *wireUser `json:"user"`
		LastSeen       time.Time `json:"lastSeen"`
		Expiry         time.Time `json:"expiry"`
		PreAuthKey     *wireKey  `json:"preAuthKey"`
		CreatedAt      time.Time `json:"createdAt"`
		RegisterMethod string    `json:"registerMethod"`
		GivenName      string    `json:"givenName"`
		Online         bool      `json:"online"`
		Tags           []string  `json:"tags"`
	}
)

func (w *wireUser) user() User {
	if w == nil {
		return User{}
	}
	return User{ID: uint64(w.ID), Name: w.Name, DisplayName: w.DisplayName, Email: w.Email, Created: w.CreatedAt}
}

func (w *wireKey) key() PreAuthKey {
	k := PreAuthKey{ID: uint64(w.ID), Key: w.Key, Reusable: w.Reusable, Ephemeral: w.Ephemeral, Used: w.Used,
		Expiration: w.Expiration, Created: w.CreatedAt, Tags: w.ACLTags}
	if w.User != nil {
		u := w.User.user()
		k.User = &u
	}
	return k
}

func (w *wireNode) node() Node {
	n := Node{ID: uint64(w.ID), Hostname: w.Name, GivenName: w.GivenName, User: w.User.user(), Online: w.Online,
		LastSeen: w.LastSeen, Expiry: w.Expiry, Created: w.CreatedAt, Tags: w.Tags, RegisterMethod: w.RegisterMethod,
		NodeKey: w.NodeKey, MachineKey: w.MachineKey}
	for _, s := range w.IPAddresses {
		if a, err := netip.ParseAddr(s); err == nil {
			n.Addrs = append(n.Addrs, a)
		}
	}
	if w.PreAuthKey != nil {
		n.PreAuthKeyID = uint64(w.PreAuthKey.ID)
	}
	return n
}

// Health asks Headscale whether it is up and its database answers. It needs
// a valid API key, so it checks the key too.
func (c *Client) Health(ctx context.Context) error {
	var out struct {
		DatabaseConnectivity bool `json:"databaseConnectivity"`
	}
	if err := c.do(ctx, "checking Headscale's health", http.MethodGet, p("health"), nil, nil, &out); err != nil {
		return err
	}
	if !out.DatabaseConnectivity {
		return &Error{Op: "checking Headscale's health", Status: http.StatusOK, Message: "its database does not answer"}
	}
	return nil
}

// ListUsers returns every user.
func (c *Client) ListUsers(ctx context.Context) ([]User, error) {
	var out struct {
		Users []wireUser `json:"users"`
	}
	if err := c.do(ctx, "listing users", http.MethodGet, p("user"), nil, nil, &out); err != nil {
		return nil, err
	}
	users := make([]User, 0, len(out.Users))
	for i := range out.Users {
		users = append(users, out.Users[i].user())
	}
	return users, nil
}

// UserByName returns the user called name, or an error that Is ErrNotFound.
func (c *Client) UserByName(ctx context.Context, name string) (User, error) {
	op := fmt.Sprintf("looking up user %q", name)
	var out struct {
		Users []wireUser `json:"users"`
	}
	if err := c.do(ctx, op, http.MethodGet, p("user"), url.Values{"name": {name}}, nil, &out); err != nil {
		return User{}, err
	}
	for i := range out.Users {
		if out.Users[i].Name == name {
			return out.Users[i].user(), nil
		}
	}
	return User{}, &Error{Op: op, Status: http.StatusNotFound, Message: "user not found"}
}

// CreateUser makes a user.
func (c *Client) CreateUser(ctx context.Context, name, displayName string) (User, error) {
	in := map[string]string{"name": name}
	if displayName != "" {
		in["displayName"] = displayName
	}
	var out struct {
		User wireUser `json:"user"`
	}
	if err := c.do(ctx, fmt.Sprintf("creating user %q", name), http.MethodPost, p("user"), nil, in, &out); err != nil {
		return User{}, err
	}
	return out.User.user(), nil
}

// RenameUser renames user id to newName.
func (c *Client) RenameUser(ctx context.Context, id uint64, newName string) (User, error) {
	var out struct {
		User wireUser `json:"user"`
	}
	op := fmt.Sprintf("renaming user %d to %q", id, newName)
	if err := c.do(ctx, op, http.MethodPost, p("user", idPath(id), "rename", newName), nil, nil, &out); err != nil {
		return User{}, err
	}
	return out.User.user(), nil
}

// DeleteUser deletes user id and its pre-auth keys. Headscale refuses while
// the user still has nodes.
func (c *Client) DeleteUser(ctx context.Context, id uint64) error {
	return c.do(ctx, fmt.Sprintf("deleting user %d", id), http.MethodDelete, p("user", idPath(id)), nil, nil, nil)
}

// KeyRequest asks for a pre-auth key.
type KeyRequest struct {
	// User owns the nodes the key registers; 0 with Tags makes tagged nodes.
	User       uint64
	Reusable   bool
	Ephemeral  bool
	Expiration time.Time
	Tags       []string
}

// CreatePreAuthKey makes a pre-auth key; the answer holds the whole key, which
// Headscale never shows again.
func (c *Client) CreatePreAuthKey(ctx context.Context, r KeyRequest) (PreAuthKey, error) {
	in := struct {
		User       u64        `json:"user,omitempty"`
		Reusable   bool       `json:"reusable"`
		Ephemeral  bool       `json:"ephemeral"`
		Expiration *time.Time `json:"expiration,omitempty"`
		ACLTags    []string   `json:"aclTags,omitempty"`
	}{User: u64(r.User), Reusable: r.Reusable, Ephemeral: r.Ephemeral, ACLTags: r.Tags}
	if !r.Expiration.IsZero() {
		e := r.Expiration.UTC()
		in.Expiration = &e
	}
	var out struct {
		PreAuthKey wireKey `json:"preAuthKey"`
	}
	op := fmt.Sprintf("creating a pre-auth key for user %d", r.User)
	if r.User == 0 {
		op = fmt.Sprintf("creating a pre-auth key for tags %v", r.Tags)
	}
	if err := c.do(ctx, op, http.MethodPost, p("preauthkey"), nil, in, &out); err != nil {
		return PreAuthKey{}, err
	}
	return out.PreAuthKey.key(), nil
}

// ListPreAuthKeys returns every pre-auth key (with prefixes, not whole keys).
func (c *Client) ListPreAuthKeys(ctx context.Context) ([]PreAuthKey, error) {
	var out struct {
		PreAuthKeys []wireKey `json:"preAuthKeys"`
	}
	if err := c.do(ctx, "listing pre-auth keys", http.MethodGet, p("preauthkey"), nil, nil, &out); err != nil {
		return nil, err
	}
	keys := make([]PreAuthKey, 0, len(out.PreAuthKeys))
	for i := range out.PreAuthKeys {
		keys = append(keys, out.PreAuthKeys[i].key())
	}
	return keys, nil
}

// ExpirePreAuthKey makes key id unusable from now on.
func (c *Client) ExpirePreAuthKey(ctx context.Context, id uint64) error {
	in := map[string]u64{"id": u64(id)}
	return c.do(ctx, fmt.Sprintf("expiring pre-auth key %d", id), http.MethodPost, p("preauthkey", "expire"), nil, in, nil)
}

// DeletePreAuthKey removes key id.
func (c *Client) DeletePreAuthKey(ctx context.Context, id uint64) error {
	return c.do(ctx, fmt.Sprintf("deleting pre-auth key %d", id), http.MethodDelete, p("preauthkey"), url.Values{"id": {idPath(id)}}, nil, nil)
}

// ListNodes returns the nodes of user (every node when user is "").
func (c *Client) ListNodes(ctx context.Context, user string) ([]Node, error) {
	var q url.Values
	op := "listing nodes"
	if user != "" {
		q = url.Values{"user": {user}}
		op = fmt.Sprintf("listing the nodes of user %q", user)
	}
	var out struct {
		Nodes []wireNode `json:"nodes"`
	}
	if err := c.do(ctx, op, http.MethodGet, p("node"), q, nil, &out); err != nil {
		return nil, err
	}
	nodes := make([]Node, 0, len(out.Nodes))
	for i := range out.Nodes {
		nodes = append(nodes, out.Nodes[i].node())
	}
	return nodes, nil
}

// GetNode returns node id.
func (c *Client) GetNode(ctx context.Context, id uint64) (Node, error) {
	var out struct {
		Node wireNode `json:"node"`
	}
	if err := c.do(ctx, fmt.Sprintf("getting node %d", id), http.MethodGet, p("node", idPath(id)), nil, nil, &out); err != nil {
		return Node{}, err
	}
	return out.Node.node(), nil
}

// RenameNode sets node id's name in the tailnet (its MagicDNS name).
func (c *Client) RenameNode(ctx context.Context, id uint64, newName string) (Node, error) {
	var out struct {
		Node wireNode `json:"node"`
	}
	op := fmt.Sprintf("renaming node %d to %q", id, newName)
	if err := c.do(ctx, op, http.MethodPost, p("node", idPath(id), "rename", newName), nil, nil, &out); err != nil {
		return Node{}, err
	}
	return out.Node.node(), nil
}

// ExpireNode expires node id's key now: it is logged out of the tailnet and
// its peers drop it.
func (c *Client) ExpireNode(ctx context.Context, id uint64) (Node, error) {
	var out struct {
		Node wireNode `json:"node"`
	}
	if err := c.do(ctx, fmt.Sprintf("expiring node %d", id), http.MethodPost, p("node", idPath(id), "expire"), nil, nil, &out); err != nil {
		return Node{}, err
	}
	return out.Node.node(), nil
}

// DeleteNode removes node id from the tailnet.
func (c *Client) DeleteNode(ctx context.Context, id uint64) error {
	return c.do(ctx, fmt.Sprintf("deleting node %d", id), http.MethodDelete, p("node", idPath(id)), nil, nil, nil)
}

// RegisterNode completes an interactive registration: the device that was
// given authID (the last part of the URL it showed, "hskey-authreq-…") joins as
// a node of user. This is `headscale auth register`.
func (c *Client) RegisterNode(ctx context.Context, user, authID string) (Node, error) {
	in := map[string]string{"user": user, "authId": authID}
	var out struct {
		Node wireNode `json:"node"`
	}
	op := fmt.Sprintf("registering device %s as user %q", authID, user)
	if err := c.do(ctx, op, http.MethodPost, p("auth", "register"), nil, in, &out); err != nil {
		return Node{}, err
	}
	return out.Node.node(), nil
}

// RejectAuth refuses a pending auth request (a registration or an SSH check):
// the waiting device is told no.
func (c *Client) RejectAuth(ctx context.Context, authID string) error {
	in := map[string]string{"authId": authID}
	return c.do(ctx, "rejecting request "+authID, http.MethodPost, p("auth", "reject"), nil, in, nil)
}

// ApproveAuth approves a pending auth request without registering anything:
// in Headscale v0.29 that finishes SSH check-mode requests. A device's
// registration is approved with RegisterNode instead, which names its user.
func (c *Client) ApproveAuth(ctx context.Context, authID string) error {
	in := map[string]string{"authId": authID}
	return c.do(ctx, "approving request "+authID, http.MethodPost, p("auth", "approve"), nil, in, nil)
}

// GetPolicy returns the policy stored in Headscale's database; Text is ""
// when none was ever set.
func (c *Client) GetPolicy(ctx context.Context) (Policy, error) {
	var out struct {
		Policy    string    `json:"policy"`
		UpdatedAt time.Time `json:"updatedAt"`
	}
	err := c.do(ctx, "getting the policy", http.MethodGet, p("policy"), nil, nil, &out)
	if err != nil {
		if e, ok := err.(*Error); ok && e.Err == nil && isNotFoundMessage(e.Message) {
			return Policy{}, nil
		}
		return Policy{}, err
	}
	return Policy{Text: out.Policy, Updated: out.UpdatedAt}, nil
}

// SetPolicy replaces the policy. Headscale must keep its policy in its
// database (policy.mode: database) for this to work.
func (c *Client) SetPolicy(ctx context.Context, text string) (Policy, error) {
	var out struct {
		Policy    string    `json:"policy"`
		UpdatedAt time.Time `json:"updatedAt"`
	}
	if err := c.do(ctx, "setting the policy", http.MethodPut, p("policy"), nil, map[string]string{"policy": text}, &out); err != nil {
		return Policy{}, err
	}
	return Policy{Text: out.Policy, Updated: out.UpdatedAt}, nil
}

// CheckPolicy asks Headscale whether text is a policy it would accept, against
// its current users and nodes; nothing is stored.
func (c *Client) CheckPolicy(ctx context.Context, text string) error {
	return c.do(ctx, "checking a policy", http.MethodPost, p("policy", "check"), nil, map[string]string{"policy": text}, nil)
}
