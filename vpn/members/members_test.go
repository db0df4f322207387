package members

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redoubt/redoubt/lab/coord"
	"github.com/redoubt/redoubt/vault"
	"github.com/redoubt/redoubt/vpn/headscale"
	"github.com/redoubt/redoubt/vpn/internal/hstest"
)

type env struct {
	s       *hstest.Server
	hc      *headscale.Client
	m       *Manager
	removed chan Member
	boxCA   []byte
}

func newVault(t *testing.T) *vault.Vault {
	t.Helper()
	v, err := vault.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { v.Close() })
	if err := v.Init([]byte("correct horse battery staple"), vault.Params{Time: 1, MemoryKiB: 8 << 10, Threads: 1}); err != nil {
		t.Fatal(err)
	}
	return v
}

func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(tlogWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type tlogWriter struct{ t *testing.T }

func (w tlogWriter) Write(b []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(b), "\n"))
	return len(b), nil
}

func newEnv(t *testing.T, tm *timing) *env {
	t.Helper()
	s := hstest.Start(t)
	hc, err := headscale.New(s.URL, s.APIKey, s.HTTP)
	if err != nil {
		t.Fatal(err)
	}
	ca, err := coord.NewCA("box CA")
	if err != nil {
		t.Fatal(err)
	}
	e := &env{s: s, hc: hc, removed: make(chan Member, 4), boxCA: ca.PEM}
	e.m, err = New(Config{LoginServer: s.URL, BoxName: "Newsroom's \"box\""}, Deps{
		Headscale: hc, Store: newVault(t), Logger: testLogger(t),
		CACert:    func() ([]byte, error) { return ca.PEM, nil },
		AppsURL:   func() string { return "https://redoubt.team.lab/" },
		OnRemoved: func(m Member) { e.removed <- m },
		DeviceOS:  func(string) string { return "linux" },
		timing:    tm,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.m.Close)
	return e
}

func ctxT(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// enroll runs the bundle's shell script, for real, against node n: as a
// member would with --yes. Where it can (root, unshare), the script installs
// the box's CA for real, in a private mount namespace whose certificate
// directories are copies, and the test checks it did; elsewhere it runs with
// --no-ca.
func enroll(t *testing.T, b Bundle, n *hstest.Node, hostname string) (string, error) {
	t.Helper()
	dir := t.TempDir()
	script := filepath.Join(dir, "redoubt-join.sh")
	if err := os.WriteFile(script, []byte(b.Shell), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx := ctxT(t, 60*time.Second)
	var cmd *exec.Cmd
	canCA := os.Geteuid() == 0
	for _, p := range []string{"unshare", "update-ca-certificates", "/usr/local/share/ca-certificates", "/etc/ssl/certs"} {
		if _, err := os.Stat(p); err != nil {
			if _, err := exec.LookPath(p); err != nil {
				canCA = false
			}
		}
	}
	if canCA {
		certs := filepath.Join(dir, "certs")
		if out, err := exec.Command("cp", "-a", "/etc/ssl/certs", certs).CombinedOutput(); err != nil {
			t.Fatalf("copying /etc/ssl/certs: %v %s", err, out)
		}
		inner := `set -e
mount -t tmpfs redoubt-test /usr/local/share/ca-certificates
mount --bind "$1" /etc/ssl/certs
sh "$2" --yes --hostname "$3"
ls /etc/ssl/certs | grep -q "^redoubt-[0-9a-f]*\.pem$" || { echo "test: the CA is not in the trust store" >&2; exit 9; }
grep -q "$(sed -n 2p "$4")" /etc/ssl/certs/ca-certificates.crt || { echo "test: the CA is not in the bundle" >&2; exit 9; }
echo "test: the box's CA is trusted"`
		caFile := filepath.Join(dir, "ca.pem")
		os.WriteFile(caFile, []byte(caPEMFromScript(t, b.Shell)), 0o600)
		cmd = exec.CommandContext(ctx, "unshare", "--mount", "--propagation", "private", "sh", "-c", inner, "sh", certs, script, hostname, caFile)
	} else {
		cmd = exec.CommandContext(ctx, "sh", script, "--yes", "--no-ca", "--hostname", hostname)
	}
	cmd.Env = append(os.Environ(), n.Env...)
	cmd.WaitDelay = time.Second
	out, err := cmd.CombinedOutput()
	if canCA && err == nil && !strings.Contains(string(out), "test: the box's CA is trusted") {
		t.Fatalf("the CA step did not run:\n%s", out)
	}
	if host, _ := os.ReadFile("/etc/ssl/certs/ca-certificates.crt"); strings.Contains(string(host), strings.Split(caPEMFromScript(t, b.Shell), "\n")[1]) {
		t.Fatal("the enrollment script changed this machine's trust store")
	}
	return string(out), err
}

func caPEMFromScript(t *testing.T, script string) string {
	i := strings.Index(script, "-----BEGIN CERTIFICATE-----")
	j := strings.Index(script, "-----END CERTIFICATE-----")
	if i < 0 || j < 0 {
		t.Fatal("no CA in the script")
	}
	return script[i:j+len("-----END CERTIFICATE-----")] + "\n"
}

// TestLifecycle: add → bundle → a real tailscaled enrolls with the generated
// script → the device appears under the member; reissue revokes the old key;
// rename; remove deletes user, nodes and keys and calls OnRemoved; every
// change is in the audit trail.
func TestLifecycle(t *testing.T) {
	checkGoroutines(t)
	e := newEnv(t, nil)
	ctx := ctxT(t, 3*time.Minute)
	m := e.m

	if _, err := m.Add(ctx, "Alice", ""); err == nil || !strings.Contains(err.Error(), "lowercase") {
		t.Fatalf("Add(Alice) = %v", err)
	}
	start := time.Now()
	b, err := m.Add(WithActor(ctx, "owner (admin UI)"), "alice", "field reporter")
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("Add took %v", time.Since(start).Round(time.Millisecond))
	if b.Member != "alice" || !strings.HasPrefix(b.Key, "hskey-auth-") || b.LoginServer != e.s.URL || len(b.QR) == 0 ||
		time.Until(b.Expires) < 23*time.Hour || time.Until(b.Expires) > 25*time.Hour {
		t.Fatalf("bundle %+v", b)
	}
	if _, err := m.Add(ctx, "alice", ""); !errors.Is(err, ErrExists) {
		t.Fatalf("second Add(alice) = %v", err)
	}
	if _, err := e.hc.CreateUser(ctx, "mallory", ""); err != nil {
		t.Fatal(err)
	}
	if _, err := m.Add(ctx, "mallory", ""); !errors.Is(err, ErrExists) || !strings.Contains(err.Error(), "did not add") {
		t.Fatalf("Add of a user the box did not make = %v", err)
	}
	pol, err := e.hc.GetPolicy(ctx)
	if err != nil || !strings.Contains(pol.Text, `"group:redoubt-members": ["alice@"]`) {
		t.Fatalf("policy after Add: %v\n%s", err, pol.Text)
	}

	// The member runs the script.
	n := e.s.StartNode("alice-laptop")
	start = time.Now()
	out, err := enroll(t, b, n, "alice-laptop")
	if err != nil {
		t.Fatalf("enrollment script: %v\n%s\n%s", err, out, n.Log())
	}
	t.Logf("enrollment script ran in %v:\n%s", time.Since(start).Round(time.Millisecond), out)
	waitFor(t, 20*time.Second, func() error {
		ms, err := m.Members(ctx)
		if err != nil {
			return err
		}
		if len(ms) != 1 || ms[0].Name != "alice" || ms[0].Note != "field reporter" || len(ms[0].Devices) != 1 {
			return fmt.Errorf("members %+v", ms)
		}
		d := ms[0].Devices[0]
		if d.Name != "alice-laptop" || len(d.Addrs) != 2 || d.OS != "linux" || !d.Online || d.LastSeen.IsZero() {
			return fmt.Errorf("device %+v", d)
		}
		return nil
	})
	st := tsStatus(t, n)
	if st.BackendState != "Running" || st.CurrentTailnet == nil {
		t.Fatalf("the member's tailscaled: %+v", st)
	}
	// The key worked once: running the script again fails.
	m2 := e.s.StartNode("alice-second")
	if out, err := enroll(t, b, m2, "alice-second"); err == nil {
		t.Fatalf("a used key enrolled a second device:\n%s", out)
	}

	// Reissue revokes the unused key first.
	bob, err := m.Add(ctx, "bob", "")
	if err != nil {
		t.Fatal(err)
	}
	bob2, err := m.Reissue(ctx, "bob")
	if err != nil {
		t.Fatal(err)
	}
	if bob2.Key == bob.Key {
		t.Fatal("reissue gave the same key")
	}
	nb := e.s.StartNode("bob-old")
	if out, err := enroll(t, bob, nb, "bob-old"); err == nil {
		t.Fatalf("the revoked key still enrolls:\n%s", out)
	}
	usable := 0
	keys, _ := e.hc.ListPreAuthKeys(ctx)
	for _, k := range keys {
		if k.User != nil && k.User.Name == "bob" && k.Usable(time.Now()) {
			usable++
		}
	}
	if usable != 1 {
		t.Fatalf("bob has %d usable keys after reissue, want 1", usable)
	}
	if _, err := m.Reissue(ctx, "carol"); !errors.Is(err, ErrNoMember) {
		t.Fatalf("Reissue(carol) = %v", err)
	}

	// Rename.
	if err := m.Rename(ctx, "bob", "robert"); err != nil {
		t.Fatal(err)
	}
	if err := m.Rename(ctx, "robert", "alice"); !errors.Is(err, ErrExists) {
		t.Fatalf("Rename onto alice = %v", err)
	}
	if err := m.Rename(ctx, "robert", "Bob!"); err == nil {
		t.Fatal("renamed to a bad name")
	}
	if _, err := e.hc.UserByName(ctx, "robert"); err != nil {
		t.Fatal(err)
	}
	pol, _ = e.hc.GetPolicy(ctx)
	if !strings.Contains(pol.Text, `["alice@", "robert@"]`) {
		t.Fatalf("policy after rename:\n%s", pol.Text)
	}

	// Remove alice: her device is expired and deleted, keys and user gone.
	start = time.Now()
	if err := m.Remove(ctx, "alice"); err != nil {
		t.Fatal(err)
	}
	t.Logf("Remove took %v", time.Since(start).Round(time.Millisecond))
	select {
	case gone := <-e.removed:
		if gone.Name != "alice" || len(gone.Devices) != 1 || gone.Devices[0].Name != "alice-laptop" {
			t.Fatalf("OnRemoved(%+v)", gone)
		}
	default:
		t.Fatal("OnRemoved was not called")
	}
	if _, err := e.hc.UserByName(ctx, "alice"); !errors.Is(err, headscale.ErrNotFound) {
		t.Fatalf("alice's user after Remove: %v", err)
	}
	nodes, _ := e.hc.ListNodes(ctx, "")
	for _, nd := range nodes {
		if nd.Hostname == "alice-laptop" {
			t.Fatalf("alice's node is still there: %+v", nd)
		}
	}
	keys, _ = e.hc.ListPreAuthKeys(ctx)
	for _, k := range keys {
		if k.User != nil && k.User.Name == "alice" {
			t.Fatalf("alice's key is still there: %+v", k)
		}
	}
	pol, _ = e.hc.GetPolicy(ctx)
	if strings.Contains(pol.Text, "alice@") {
		t.Fatalf("policy still names alice:\n%s", pol.Text)
	}
	waitFor(t, 20*time.Second, func() error {
		if st := tsStatus(t, n); st.BackendState != "NeedsLogin" {
			return fmt.Errorf("alice's tailscaled is %s, want NeedsLogin", st.BackendState)
		}
		return nil
	})
	if err := m.Remove(ctx, "alice"); !errors.Is(err, ErrNoMember) {
		t.Fatalf("second Remove = %v", err)
	}
	ms, err := m.Members(ctx)
	if err != nil || len(ms) != 1 || ms[0].Name != "robert" {
		t.Fatalf("members at the end: %+v, %v", ms, err)
	}

	// The audit trail, with who.
	want := []string{"add member alice", "add member bob", "reissue key bob", "rename member robert", "remove member alice"}
	var got []string
	for _, ev := range m.Audit() {
		if ev.Member != "" {
			got = append(got, ev.Action+" "+ev.Member)
		}
		if ev.Time.IsZero() || ev.Actor == "" {
			t.Errorf("event %+v", ev)
		}
	}
	if strings.Join(got, ", ") != strings.Join(want, ", ") {
		t.Fatalf("audit %q, want %q", got, want)
	}
	if a := m.Audit()[0]; a.Actor != "owner (admin UI)" || !strings.Contains(a.Detail, "field reporter") {
		t.Fatalf("first event %+v", a)
	}
	// The trail is in the vault: a new manager over the same store sees it.
	m3, _ := New(Config{LoginServer: e.s.URL}, Deps{Headscale: e.hc, Store: m.deps.Store, CACert: m.deps.CACert})
	if len(m3.Audit()) != len(m.Audit()) {
		t.Fatalf("a new manager reads %d events, want %d", len(m3.Audit()), len(m.Audit()))
	}
}

type tsState struct {
	BackendState   string
	CurrentTailnet *struct{ Name string }
	Self           struct {
		Online       bool
		TailscaleIPs []string
	}
}

func tsStatus(t *testing.T, n *hstest.Node) tsState {
	t.Helper()
	out, err := n.CLI(ctxT(t, 10*time.Second), "status", "--json")
	var st tsState
	if jerr := json.Unmarshal([]byte(out), &st); jerr != nil {
		t.Fatalf("tailscale status --json: %v %v\n%s", err, jerr, out)
	}
	return st
}

var authURL = regexp.MustCompile(`https://\S+/register/hskey-authreq-[A-Za-z0-9_-]+`)

// startInteractive runs `tailscale up` without a key and returns the link it
// prints and a func waiting for it to end.
func startInteractive(t *testing.T, n *hstest.Node, server string) (string, func(time.Duration) error) {
	t.Helper()
	ctx := ctxT(t, 90*time.Second)
	cmd := n.Command(ctx, "up", "--login-server="+server, "--hostname="+n.Name)
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
			if l := authURL.FindString(sc.Text()); l != "" {
				select {
				case found <- l:
				default:
				}
			}
		}
	}()
	wait := func(d time.Duration) error {
		select {
		case err := <-done:
			return err
		case <-time.After(d):
			return errors.New("still waiting")
		}
	}
	select {
	case l := <-found:
		return l, wait
	case err := <-done:
		t.Fatalf("tailscale up ended without a link: %v", err)
	case <-time.After(30 * time.Second):
		t.Fatal("tailscale up printed no link in 30s")
	}
	return "", nil
}

// TestPendingDevices: a phone-style interactive login, pasted in as pending,
// approved as a member's device; another rejected.
func TestPendingDevices(t *testing.T) {
	e := newEnv(t, nil)
	ctx := ctxT(t, 3*time.Minute)
	m := e.m
	if _, err := m.Add(ctx, "carol", ""); err != nil {
		t.Fatal(err)
	}
	phone := e.s.StartNode("carol-phone")
	link, wait := startInteractive(t, phone, e.s.URL)
	if _, err := m.AddPending(ctx, strings.Replace(link, "127.0.0.1", "127.0.0.2", 1), ""); !errors.Is(err, ErrBadRequest) {
		t.Fatalf("a link to another server = %v", err)
	}
	p, err := m.AddPending(ctx, link, "Carol's phone")
	if err != nil {
		t.Fatal(err)
	}
	ps, err := m.Pending(ctx)
	if err != nil || len(ps) != 1 || ps[0].ID != p.ID || ps[0].Name != "Carol's phone" {
		t.Fatalf("Pending = %+v, %v", ps, err)
	}
	if err := m.Approve(ctx, p.ID, "dave"); !errors.Is(err, ErrNoMember) {
		t.Fatalf("Approve for a non-member = %v", err)
	}
	if err := m.Approve(ctx, p.ID, "carol"); err != nil {
		t.Fatal(err)
	}
	if err := wait(30 * time.Second); err != nil {
		t.Fatalf("the phone's login after approval: %v", err)
	}
	if ps, _ := m.Pending(ctx); len(ps) != 0 {
		t.Fatalf("still pending: %+v", ps)
	}
	ms, _ := m.Members(ctx)
	if len(ms) != 1 || len(ms[0].Devices) != 1 || ms[0].Devices[0].Name != "carol-phone" {
		t.Fatalf("members %+v", ms)
	}

	tablet := e.s.StartNode("carol-tablet")
	link2, wait2 := startInteractive(t, tablet, e.s.URL)
	p2, err := m.AddPending(ctx, link2[strings.LastIndex(link2, "/")+1:], "")
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Reject(ctx, p2.ID); err != nil {
		t.Fatal(err)
	}
	if err := m.Approve(ctx, p2.ID, "carol"); !errors.Is(err, ErrNoRequest) {
		t.Fatalf("Approve after Reject = %v", err)
	}
	if _, err := m.AddPending(ctx, link2, ""); err == nil || !strings.Contains(err.Error(), "rejected") {
		t.Fatalf("AddPending of a rejected request = %v", err)
	}
	if err := wait2(2 * time.Second); err == nil {
		t.Fatal("the rejected tablet's login ended as if it was let in")
	}
	ms, _ = m.Members(ctx)
	if len(ms[0].Devices) != 1 {
		t.Fatalf("the rejected tablet joined: %+v", ms[0].Devices)
	}
	var acts []string
	for _, ev := range m.Audit() {
		acts = append(acts, ev.Action)
	}
	if got := strings.Join(acts, ","); got != "add member,device request,approve device,device request,reject device" {
		t.Fatalf("audit %s", got)
	}
}

// TestPolicyAndBoxKey: SetPolicy validates, checks with Headscale, applies;
// the box's own key makes a tagged node that no member owns.
func TestPolicyAndBoxKey(t *testing.T) {
	e := newEnv(t, nil)
	ctx := ctxT(t, 2*time.Minute)
	m := e.m
	if err := m.SetPolicy(ctx, Policy{BoxTag: "tag:Bad"}); err == nil {
		t.Fatal("SetPolicy took a bad tag")
	}
	if _, err := m.Add(ctx, "dan", ""); err != nil {
		t.Fatal(err)
	}
	if err := m.SetPolicy(ctx, Policy{MembersReachEachOther: true}); err != nil {
		t.Fatal(err)
	}
	pol, _ := e.hc.GetPolicy(ctx)
	if !strings.Contains(pol.Text, "Members reach each other") || !strings.Contains(pol.Text, `["dan@"]`) {
		t.Fatalf("policy:\n%s", pol.Text)
	}
	if p, _ := m.Policy(); !p.MembersReachEachOther || p.BoxTag != DefaultBoxTag {
		t.Fatalf("Policy() = %+v", p)
	}
	key, exp, err := m.BoxKey(ctx)
	if err != nil || time.Until(exp) > BoxKeyLifetime+time.Minute {
		t.Fatalf("BoxKey = %q %v %v", key, exp, err)
	}
	box := e.s.StartNode("redoubt")
	if out, err := box.CLI(ctx, "up", "--login-server="+e.s.URL, "--auth-key="+key, "--hostname=redoubt"); err != nil {
		t.Fatalf("the box's node: %v\n%s", err, out)
	}
	nodes, _ := e.hc.ListNodes(ctx, "")
	if len(nodes) != 1 || len(nodes[0].Tags) != 1 || nodes[0].Tags[0] != DefaultBoxTag {
		t.Fatalf("nodes %+v", nodes)
	}
	ms, _ := m.Members(ctx)
	if len(ms) != 1 || len(ms[0].Devices) != 0 {
		t.Fatalf("the box's node shows as a member's device: %+v", ms)
	}
	// Headscale's check refuses what it cannot take; nothing is applied.
	if err := m.setPolicy(ctx, e.hc, m.cfg, Policy{BoxTag: "tag:1bad"}, nil); err == nil || !strings.Contains(err.Error(), "refused the policy") {
		t.Fatalf("a policy Headscale refuses: %v", err)
	}
	if pol2, _ := e.hc.GetPolicy(ctx); pol2.Text != pol.Text {
		t.Fatal("a refused policy was applied")
	}
}

// TestStatus: Headscale stopped, or the key refused: the status says so,
// retries back off; the status recovers.
func TestStatus(t *testing.T) {
	checkGoroutines(t)
	e := newEnv(t, &timing{every: 200 * time.Millisecond, retryFirst: 100 * time.Millisecond, retryMax: 800 * time.Millisecond, expireGrace: time.Second})
	m := e.m
	m.Start()
	waitFor(t, 10*time.Second, func() error {
		if st := m.Status(); !st.Reachable || st.LastOK.IsZero() {
			return fmt.Errorf("%+v", st)
		}
		return nil
	})
	e.s.Stop()
	var gaps []time.Duration
	var mu sync.Mutex
	waitFor(t, 15*time.Second, func() error {
		st := m.Status()
		mu.Lock()
		defer mu.Unlock()
		if st.Reachable || !strings.Contains(st.Detail, "does not answer") || !strings.Contains(st.Detail, "stay connected") {
			return fmt.Errorf("%+v", st)
		}
		if g := st.NextTry.Sub(st.LastTry); len(gaps) == 0 || gaps[len(gaps)-1] != g {
			gaps = append(gaps, g)
		}
		if st.ConsecutiveFails < 5 {
			return fmt.Errorf("only %d failures so far", st.ConsecutiveFails)
		}
		return nil
	})
	if len(gaps) < 3 || gaps[len(gaps)-1] != 800*time.Millisecond || gaps[0] >= gaps[len(gaps)-1] {
		t.Fatalf("retry gaps %v: want growing to 800ms", gaps)
	}
	if _, err := m.Add(ctxT(t, 20*time.Second), "erin", ""); !errors.Is(err, headscale.ErrUnreachable) {
		t.Fatalf("Add while Headscale is down = %v", err)
	}
	e.s.Start()
	waitFor(t, 10*time.Second, func() error {
		if st := m.Status(); !st.Reachable || st.ConsecutiveFails != 0 {
			return fmt.Errorf("%+v", st)
		}
		return nil
	})
	// A revoked key.
	if out, err := e.s.CLI("apikeys", "expire", "--id", "1"); err != nil { // the server's only key
		t.Fatalf("expiring the API key: %v\n%s", err, out)
	}
	waitFor(t, 10*time.Second, func() error {
		if st := m.Status(); !st.KeyRejected || !strings.Contains(st.Detail, "API key") {
			return fmt.Errorf("%+v", st)
		}
		return nil
	})
	// A new key, given to the box.
	out, err := e.s.CLI("apikeys", "create")
	if err != nil {
		t.Fatal(err)
	}
	f := strings.Fields(out)
	hc, err := headscale.New(e.s.URL, f[len(f)-1], e.s.HTTP)
	if err != nil {
		t.Fatal(err)
	}
	m.SetHeadscale(hc)
	waitFor(t, 10*time.Second, func() error {
		if st := m.Status(); !st.Reachable || st.KeyRejected {
			return fmt.Errorf("%+v", st)
		}
		return nil
	})
	m.SetHeadscale(nil)
	if st := m.Status(); st.Configured || !strings.Contains(st.Detail, "not set up") {
		t.Fatalf("unconfigured: %+v", st)
	}
	if _, err := m.Members(context.Background()); !errors.Is(err, ErrNotReady) {
		t.Fatalf("Members unconfigured = %v", err)
	}
	m.Close()
}

// checkGoroutines fails t if goroutines started during the test (the status
// checks, HTTP connections) are still running a few seconds after it ends.
func checkGoroutines(t *testing.T) {
	before := runtime.NumGoroutine()
	t.Cleanup(func() {
		deadline := time.Now().Add(5 * time.Second)
		for runtime.NumGoroutine() > before {
			if time.Now().After(deadline) {
				buf := make([]byte, 1<<20)
				n := runtime.Stack(buf, true)
				t.Errorf("%d goroutines left behind (%d before):\n%s", runtime.NumGoroutine()-before, before, buf[:n])
				return
			}
			time.Sleep(50 * time.Millisecond)
		}
	})
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
		time.Sleep(50 * time.Millisecond)
	}
}
