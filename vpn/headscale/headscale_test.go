package headscale_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/redoubt/redoubt/vpn/headscale"
	"github.com/redoubt/redoubt/vpn/internal/hstest"
)

func newClient(t *testing.T, s *hstest.Server) *headscale.Client {
	t.Helper()
	c, err := headscale.New(s.URL, s.APIKey, s.HTTP)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// TestAgainstHeadscale drives every call against a real Headscale and a real
// tailscaled.
func TestAgainstHeadscale(t *testing.T) {
	s := hstest.Start(t)
	c := newClient(t, s)
	ctx := ctxT(t)

	if err := c.Health(ctx); err != nil {
		t.Fatalf("health: %v", err)
	}
	// Users.
	u, err := c.CreateUser(ctx, "alice", "Alice A.")
	if err != nil {
		t.Fatal(err)
	}
	if u.ID == 0 || u.Name != "alice" || u.DisplayName != "Alice A." || u.Created.IsZero() {
		t.Fatalf("created %+v", u)
	}
	if _, err := c.CreateUser(ctx, "alice", ""); err == nil {
		t.Fatal("a second alice was created")
	}
	got, err := c.UserByName(ctx, "alice")
	if err != nil || got.ID != u.ID {
		t.Fatalf("UserByName = %+v, %v", got, err)
	}
	if _, err := c.UserByName(ctx, "nobody"); !errors.Is(err, headscale.ErrNotFound) {
		t.Fatalf("UserByName(nobody) = %v, want ErrNotFound", err)
	}
	// Pre-auth keys: whole key on creation, prefix in lists.
	exp := time.Now().Add(time.Hour).Truncate(time.Second)
	k, err := c.CreatePreAuthKey(ctx, headscale.KeyRequest{User: u.ID, Expiration: exp})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(k.Key, "hskey-auth-") || strings.HasSuffix(k.Key, "***") || k.Reusable || k.User == nil || k.User.ID != u.ID || !k.Expiration.Equal(exp) {
		t.Fatalf("created key %+v", k)
	}
	tagged, err := c.CreatePreAuthKey(ctx, headscale.KeyRequest{Tags: []string{"tag:redoubt-box"}, Expiration: exp})
	if err != nil {
		t.Fatal(err)
	}
	if tagged.User != nil || len(tagged.Tags) != 1 || tagged.Tags[0] != "tag:redoubt-box" {
		t.Fatalf("tagged key %+v", tagged)
	}
	keys, err := c.ListPreAuthKeys(ctx)
	if err != nil || len(keys) != 2 {
		t.Fatalf("ListPreAuthKeys = %+v, %v", keys, err)
	}
	if !strings.HasSuffix(keys[0].Key, "***") || !keys[0].Usable(time.Now()) {
		t.Fatalf("listed key %+v", keys[0])
	}

	// A real node enrolls with the key.
	n := s.StartNode("alice-laptop")
	if out, err := n.CLI(ctx, "up", "--login-server="+s.URL, "--authkey="+k.Key, "--hostname=alice-laptop"); err != nil {
		t.Fatalf("tailscale up: %v\n%s\n%s", err, out, n.Log())
	}
	nodes, err := c.ListNodes(ctx, "alice")
	if err != nil || len(nodes) != 1 {
		t.Fatalf("ListNodes(alice) = %+v, %v", nodes, err)
	}
	node := nodes[0]
	if node.Hostname != "alice-laptop" || node.GivenName != "alice-laptop" || node.User.Name != "alice" || len(node.Addrs) != 2 ||
		!node.Addrs[0].Is4() || !strings.HasPrefix(node.NodeKey, "nodekey:") || node.PreAuthKeyID != k.ID || node.Created.IsZero() {
		t.Fatalf("node %+v", node)
	}
	waitFor(t, 10*time.Second, func() error {
		n, err := c.GetNode(ctx, node.ID)
		if err != nil {
			return err
		}
		if !n.Online || n.LastSeen.IsZero() {
			return fmt.Errorf("node not online yet: %+v", n)
		}
		return nil
	})
	keys, _ = c.ListPreAuthKeys(ctx)
	if !keys[0].Used || keys[0].Usable(time.Now()) {
		t.Fatalf("the single-use key is still usable after use: %+v", keys[0])
	}
	if all, err := c.ListNodes(ctx, ""); err != nil || len(all) != 1 {
		t.Fatalf("ListNodes() = %+v, %v", all, err)
	}
	renamed, err := c.RenameNode(ctx, node.ID, "alice-work")
	if err != nil || renamed.GivenName != "alice-work" {
		t.Fatalf("RenameNode = %+v, %v", renamed, err)
	}
	// A user with nodes cannot be deleted.
	if err := c.DeleteUser(ctx, u.ID); err == nil {
		t.Fatal("deleted a user that has nodes")
	}
	ru, err := c.RenameUser(ctx, u.ID, "alicia")
	if err != nil || ru.Name != "alicia" || ru.ID != u.ID {
		t.Fatalf("RenameUser = %+v, %v", ru, err)
	}
	exn, err := c.ExpireNode(ctx, node.ID)
	if err != nil || exn.Expiry.IsZero() || exn.Expiry.After(time.Now()) {
		t.Fatalf("ExpireNode = %+v, %v", exn, err)
	}
	if err := c.DeleteNode(ctx, node.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := c.GetNode(ctx, node.ID); !errors.Is(err, headscale.ErrNotFound) {
		t.Fatalf("GetNode(deleted) = %v, want ErrNotFound", err)
	}
	if err := c.ExpirePreAuthKey(ctx, tagged.ID); err != nil {
		t.Fatal(err)
	}
	keys, _ = c.ListPreAuthKeys(ctx)
	for _, k := range keys {
		if k.ID == tagged.ID && k.Usable(time.Now()) {
			t.Fatalf("expired key still usable: %+v", k)
		}
	}
	if err := c.DeletePreAuthKey(ctx, tagged.ID); err != nil {
		t.Fatal(err)
	}
	if err := c.DeleteUser(ctx, u.ID); err != nil {
		t.Fatal(err)
	}
	if users, err := c.ListUsers(ctx); err != nil || len(users) != 0 {
		t.Fatalf("ListUsers after delete = %+v, %v", users, err)
	}
	if err := c.DeleteUser(ctx, u.ID); !errors.Is(err, headscale.ErrNotFound) {
		t.Fatalf("deleting a deleted user = %v, want ErrNotFound", err)
	}
}

// TestInteractiveRegistration: a device that logs in without a key waits with
// a URL; RegisterNode lets it in, RejectAuth turns it away.
func TestInteractiveRegistration(t *testing.T) {
	s := hstest.Start(t)
	c := newClient(t, s)
	ctx := ctxT(t)
	if _, err := c.CreateUser(ctx, "bob", ""); err != nil {
		t.Fatal(err)
	}

	// Approve.
	n := s.StartNode("bob-phone")
	authID, wait := interactiveLogin(t, n, s.URL, "bob-phone")
	if _, err := c.RegisterNode(ctx, "nobody", authID); err == nil {
		t.Fatal("registered a device for a user that does not exist")
	}
	node, err := c.RegisterNode(ctx, "bob", authID)
	if err != nil {
		t.Fatal(err)
	}
	if node.User.Name != "bob" || node.Hostname != "bob-phone" || node.RegisterMethod != "REGISTER_METHOD_CLI" {
		t.Fatalf("registered %+v", node)
	}
	if err := wait(); err != nil {
		t.Fatalf("tailscale up after approval: %v", err)
	}
	if _, err := c.RegisterNode(ctx, "bob", authID); !errors.Is(err, headscale.ErrNotFound) {
		t.Fatalf("registering the same request twice = %v, want ErrNotFound", err)
	}

	// Reject: the device is told no (and is offered a fresh request).
	m := s.StartNode("bob-tablet")
	authID2, _ := interactiveLogin(t, m, s.URL, "bob-tablet")
	if err := c.RejectAuth(ctx, authID2); err != nil {
		t.Fatal(err)
	}
	if err := c.RejectAuth(ctx, "hskey-authreq-AAAAAAAAAAAAAAAAAAAAAAAA"); !errors.Is(err, headscale.ErrNotFound) {
		t.Fatalf("rejecting an unknown request = %v, want ErrNotFound", err)
	}
	if err := c.ApproveAuth(ctx, "hskey-authreq-AAAAAAAAAAAAAAAAAAAAAAAA"); !errors.Is(err, headscale.ErrNotFound) {
		t.Fatalf("approving an unknown request = %v, want ErrNotFound", err)
	}
	nodes, err := c.ListNodes(ctx, "bob")
	if err != nil || len(nodes) != 1 {
		t.Fatalf("after reject, bob's nodes = %+v, %v", nodes, err)
	}
}

var authURL = regexp.MustCompile(`https://\S+/register/(hskey-authreq-[A-Za-z0-9_-]+)`)

// interactiveLogin starts `tailscale up` without a key and returns the auth ID
// it prints, and a func waiting for it to end.
func interactiveLogin(t *testing.T, n *hstest.Node, server, hostname string) (string, func() error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	cmd := n.Command(ctx, "up", "--login-server="+server, "--hostname="+hostname)
	pr, pw := io.Pipe()
	cmd.Stdout, cmd.Stderr = pw, pw
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait(); pw.Close() }()
	found := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			if m := authURL.FindStringSubmatch(sc.Text()); m != nil {
				select {
				case found <- m[1]:
				default:
				}
			}
		}
	}()
	select {
	case id := <-found:
		return id, func() error {
			select {
			case err := <-done:
				return err
			case <-time.After(30 * time.Second):
				return fmt.Errorf("tailscale up still waiting after 30s")
			}
		}
	case err := <-done:
		t.Fatalf("tailscale up ended without a URL: %v\n%s", err, n.Log())
	case <-time.After(30 * time.Second):
		t.Fatalf("tailscale up printed no registration URL within 30s\n%s", n.Log())
	}
	return "", nil
}

// TestPolicy: an empty server has no policy; check refuses a broken one; set
// stores a good one.
func TestPolicy(t *testing.T) {
	s := hstest.Start(t)
	c := newClient(t, s)
	ctx := ctxT(t)
	p, err := c.GetPolicy(ctx)
	if err != nil || p.Text != "" {
		t.Fatalf("GetPolicy on a new server = %+v, %v", p, err)
	}
	bad := `{"grants": [{"src": ["group:nope"], "dst": ["*"], "ip": ["*"]}]}`
	err = c.CheckPolicy(ctx, bad)
	var he *headscale.Error
	if !errors.As(err, &he) || he.Status != http.StatusBadRequest || !strings.Contains(he.Message, "group:nope") {
		t.Fatalf("CheckPolicy(bad) = %v", err)
	}
	if _, err := c.SetPolicy(ctx, bad); err == nil {
		t.Fatal("SetPolicy took a broken policy")
	}
	good := "// test\n{\"tagOwners\": {\"tag:redoubt-box\": []}, \"grants\": [{\"src\": [\"tag:redoubt-box\"], \"dst\": [\"tag:redoubt-box\"], \"ip\": [\"*\"]}]}"
	if err := c.CheckPolicy(ctx, good); err != nil {
		t.Fatal(err)
	}
	set, err := c.SetPolicy(ctx, good)
	if err != nil || set.Text != good || set.Updated.IsZero() {
		t.Fatalf("SetPolicy = %+v, %v", set, err)
	}
	if p, err := c.GetPolicy(ctx); err != nil || p.Text != good {
		t.Fatalf("GetPolicy = %+v, %v", p, err)
	}
}

// TestErrors: a wrong key and a stopped server say so, without the key.
func TestErrors(t *testing.T) {
	s := hstest.Start(t)
	ctx := ctxT(t)
	wrong, err := headscale.New(s.URL, "hskey-api-wrongwrongwr-notakeynotakeynotakey", s.HTTP)
	if err != nil {
		t.Fatal(err)
	}
	err = wrong.Health(ctx)
	if !errors.Is(err, headscale.ErrUnauthorized) || errors.Is(err, headscale.ErrUnreachable) {
		t.Fatalf("wrong key: %v", err)
	}
	if strings.Contains(err.Error(), "notakey") || !strings.Contains(err.Error(), "wrong or expired") {
		t.Fatalf("error text %q", err)
	}
	c := newClient(t, s)
	s.Stop()
	err = c.Health(ctx)
	if !errors.Is(err, headscale.ErrUnreachable) || errors.Is(err, headscale.ErrUnauthorized) {
		t.Fatalf("stopped server: %v", err)
	}
	if strings.Contains(err.Error(), s.APIKey) || strings.Contains(fmt.Sprintf("%v %+v %#v", c, c, c), s.APIKey) {
		t.Fatal("the API key shows in an error or in fmt output")
	}
	s.Start()
	if err := c.Health(ctx); err != nil {
		t.Fatalf("after restart: %v", err)
	}
}

func waitFor(t *testing.T, d time.Duration, f func() error) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		err := f()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %v: %v", d, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
