package mesh

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/redoubt/redoubt/lab"
	"github.com/redoubt/redoubt/lab/labtest"
	"github.com/redoubt/redoubt/ui/localapi"
)

const (
	passphrase = "harbor quill saffron tundra"
	boxName    = "kestrel"
	member     = "alex"
	device     = "alex-laptop"
)

var (
	plainBase  = "http://" + lab.BoxLAN.String()
	secureBase = "https://" + lab.BoxLAN.String()
)

// owner is the box's owner at the laptop, signed in over HTTPS.
type owner struct {
	t    testing.TB
	c    *http.Client
	csrf string
}

// do sends a form (nil: a GET) to the box's pages and returns the status, the
// redirect and the body.
func (o *owner) do(ctx context.Context, method, path string, form url.Values) (int, string, string) {
	o.t.Helper()
	var body io.Reader
	if form != nil {
		form.Set("csrf", o.csrf)
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequestWithContext(ctx, method, secureBase+path, body)
	if err != nil {
		o.t.Fatal(err)
	}
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	resp, err := o.c.Do(req)
	if err != nil {
		o.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header.Get("Location"), string(b)
}

// invite adds a member on the team page and returns their shell script.
func (o *owner) invite(ctx context.Context, name string) string {
	o.t.Helper()
	st, loc, body := o.do(ctx, http.MethodPost, "/team/add", url.Values{"name": {name}, "note": {"integration/mesh"}})
	if st != http.StatusSeeOther || !strings.HasPrefix(loc, "/team/bundle/") {
		o.t.Fatalf("adding %s: %d %s\n%s", name, st, loc, body)
	}
	st, _, script := o.do(ctx, http.MethodGet, loc+"/join.sh", nil)
	if st != http.StatusOK || !strings.HasPrefix(script, "#!") {
		o.t.Fatalf("%s's script: %d %.200s", name, st, script)
	}
	return script
}

// meshStatus is the box's team mesh as its console sees it.
func meshStatus(ctx context.Context, e *labtest.Env) (localapi.MeshStatus, error) {
	st, err := e.Box.API.Status(ctx)
	if err != nil {
		return localapi.MeshStatus{}, err
	}
	if st.Mesh == nil {
		return localapi.MeshStatus{}, fmt.Errorf("the status has no team mesh")
	}
	return *st.Mesh, nil
}

// fetchBox fetches the box's page for members from the teammate, over the
// tailnet, by the box's name, over HTTPS that the box's CA (which the
// enrollment script installed) verifies.
func fetchBox(ctx context.Context, m *lab.Mesh, host string, maxTime int) error {
	out, err := m.TeammateCurl(ctx, "--max-time", fmt.Sprint(maxTime), "https://"+host+"/")
	if err != nil {
		return err
	}
	if !strings.Contains(out, "<h1>"+boxName+"</h1>") {
		return fmt.Errorf("the box's page from the teammate: %.300s", out)
	}
	return nil
}

// TestTeamThroughTheBox is the team mesh's story end to end, in strict mode: the
// owner gives the box their Headscale in the setup wizard; the box joins the
// tailnet through its VPN; the owner invites a member, whose script enrolls the
// teammate; the teammate reaches the box's page by name and nothing else of the
// box or the laptop; the laptop reaches the teammate by name through the box and
// still nothing on the internet; the WAN carries only the VPN's flow throughout;
// removing the member cuts them off within seconds, re-adding works; a revoked
// API key and a stopped Headscale are shown to the owner.
func TestTeamThroughTheBox(t *testing.T) {
	e := labtest.SharedMesh(t)
	m := e.Lab.Mesh
	ctx := ctxT(t, 8*time.Minute)
	waitVPN(t, ctx, e)
	wan, err := e.Lab.CaptureWAN()
	if err != nil {
		t.Fatal(err)
	}
	keys := []string{m.APIKey}
	t.Cleanup(func() { forgetDevices(t, m) })
	tm := setUpTeam(t, ctx, e)
	o, ms := tm.o, tm.ms
	if out, err := cli(ctx, e, "status"); err != nil || !strings.Contains(out, "Headscale reachable; the box's node up as "+boxName) {
		t.Errorf("redoubt status: %v\n%s", err, out)
	}
	if err := fetchBox(ctx, m, boxName+"."+lab.TeamDomain, 5); err != nil {
		t.Errorf("by its full name: %v", err)
	}
	if out, err := m.TeammateCurl(ctx, "-o", "/dev/null", "-w", "%{http_code} %{redirect_url}", "http://"+boxName+"/"); err != nil || out != "301 https://"+boxName+"/" {
		t.Errorf("plain HTTP on the box's tailnet name: %v %q", err, out)
	}
	_, _, team := o.do(ctx, http.MethodGet, "/team", nil)
	if !ms.Strict {
		t.Error("the box's mesh is not in strict mode by default")
	}
	if !strings.Contains(team, device) {
		t.Errorf("the team page does not list %s's device", member)
	}

	// Nothing else of the box, and nothing of the laptop, from the tailnet.
	boxTailnet := ms.Addrs[0]
	stopLaptop := serveLaptop(t, e, 8081)
	defer stopLaptop()
	for _, u := range []string{
		"http://" + boxName + ":8081/",                          // a port the laptop serves on
		"http://" + lab.BoxLAN.String() + "/",                   // the box's LAN address
		"http://" + lab.LaptopStatic.Addr().String() + ":8081/", // the laptop itself
	} {
		if out, err := m.TeammateCurl(ctx, "--max-time", "4", "-k", u); err == nil {
			t.Errorf("the teammate reached %s: %.200s", u, out)
		}
	}
	for _, path := range []string{"/settings", "/unlock", "/team", "/setup", "/ca.crt"} {
		out, err := m.TeammateCurl(ctx, "--max-time", "4", "-o", "/dev/null", "-w", "%{http_code}", "https://"+boxName+path)
		if err != nil || strings.TrimSpace(out) != "404" {
			t.Errorf("the teammate asked the box's tailnet page for %s: %v %q", path, err, out)
		}
	}

	// The laptop reaches the teammate's server by name, through the box.
	stopTeammate, err := m.ServeTeammate(8080, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "hello from "+device+"\n")
	}))
	if err != nil {
		t.Fatal(err)
	}
	defer stopTeammate()
	name := device + ".team.home.arpa"
	var teammate netip.Addr
	waitFor(t, 20*time.Second, func() error {
		out, err := e.Lab.Exec(ctx, lab.Laptop, "dig", "+short", "+tries=1", "+time=2", "@"+lab.BoxLAN.String(), name, "A")
		if err != nil {
			return err
		}
		teammate, err = netip.ParseAddr(strings.TrimSpace(out))
		return err
	})
	out, err := e.Lab.Exec(ctx, lab.Laptop, "curl", "-sS", "--max-time", "10",
		"--resolve", name+":8080:"+teammate.String(), "http://"+name+":8080/")
	if err != nil || out != "hello from "+device+"\n" {
		t.Errorf("the laptop fetching %s through the box: %v %q", name, err, out)
	}
	if out, err := e.Lab.Exec(ctx, lab.Laptop, "curl", "-sS", "--max-time", "3", "http://"+lab.Tracker.String()+"/"); err == nil {
		t.Errorf("the laptop reached the internet: %q", out)
	}
	if _, err := e.Lab.Exec(ctx, lab.Laptop, "curl", "-sS", "--max-time", "3", "http://"+boxTailnet+"/"); err == nil {
		t.Errorf("the laptop reached the box's own tailnet page (%v)", boxTailnet)
	}

	// Removed, the member loses the box within seconds of the owner's click.
	if err := fetchBox(ctx, m, boxTailnet, 5); err != nil {
		t.Fatalf("by the box's tailnet address: %v", err)
	}
	removed := time.Now()
	st, _, body := o.do(ctx, http.MethodPost, "/team/remove", url.Values{"member": {member}, "confirm": {member}})
	if st != http.StatusSeeOther {
		t.Fatalf("removing %s: %d %s", member, st, body)
	}
	t.Logf("the team page took %v to remove %s", time.Since(removed).Round(100*time.Millisecond), member)
	waitFor(t, 30*time.Second, func() error {
		if fetchBox(ctx, m, boxTailnet, 2) == nil {
			return fmt.Errorf("the teammate still reaches the box")
		}
		return nil
	})
	t.Logf("removal to the teammate's first failed fetch: %v", time.Since(removed).Round(100*time.Millisecond))

	// Re-added, they are back.
	if err := m.ResetTeammate(ctx); err != nil {
		t.Fatal(err)
	}
	script := o.invite(ctx, member)
	if out, err := m.Enroll(ctx, script, "--hostname", device); err != nil {
		t.Fatalf("enrolling again: %v\n%s", err, out)
	}
	waitFor(t, 60*time.Second, func() error { return fetchBox(ctx, m, boxName, 5) })

	v, err := wan.Stop()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("WAN capture from setup to here: %v", v)
	if v.OtherCount > 0 {
		t.Errorf("strict mode: the WAN carried packets that are not the VPN's flow:\n%s", strings.Join(v.Other, "\n"))
	}

	// The API key revoked: the owner is told; the member keeps the box.
	if out, err := m.HeadscaleCLI(ctx, "apikeys", "expire", "--id", apiKeyID(t, ctx, m)); err != nil {
		t.Fatalf("expiring the API key: %v %s", err, out)
	}
	_, _, team = o.do(ctx, http.MethodGet, "/team", nil)
	waitFor(t, 10*time.Second, func() error {
		ms, err := meshStatus(ctx, e)
		if err != nil {
			return err
		}
		if ms.Headscale != "key rejected" {
			return fmt.Errorf("after the API key was revoked: %+v", ms)
		}
		return nil
	})
	if !strings.Contains(team, "refuses the box") {
		t.Errorf("the team page does not say the key was refused:\n%s", team)
	}
	if err := fetchBox(ctx, m, boxName, 5); err != nil {
		t.Errorf("with the API key revoked, the member lost the box: %v", err)
	}
	key, err := m.NewAPIKey(ctx)
	if err != nil {
		t.Fatal(err)
	}
	keys = append(keys, key)
	st, _, body = o.do(ctx, http.MethodPost, "/team/configure", url.Values{"login_server": {m.URL}, "api_key": {key}})
	if st != http.StatusSeeOther {
		t.Fatalf("a new API key: %d %s", st, body)
	}

	// Headscale stopped: the owner is told; it comes back by itself.
	if err := m.StopHeadscale(); err != nil {
		t.Fatal(err)
	}
	_, _, team = o.do(ctx, http.MethodGet, "/team", nil)
	waitFor(t, 15*time.Second, func() error {
		ms, err := meshStatus(ctx, e)
		if err != nil {
			return err
		}
		if ms.Headscale != "unreachable" {
			return fmt.Errorf("with Headscale stopped: %+v", ms)
		}
		return nil
	})
	if !strings.Contains(team, "does not answer") {
		t.Errorf("the team page with Headscale stopped does not say so:\n%s", team)
	}
	// The lab's relay (DERP) is Headscale's own: in strict mode the member's
	// connection to the box pauses with it.
	if err := fetchBox(ctx, m, boxTailnet, 3); err == nil {
		t.Log("with Headscale stopped, the member still reaches the box")
	} else {
		t.Logf("with Headscale (and its DERP) stopped, the member does not reach the box: %v", err)
	}
	if err := m.StartHeadscale(ctx); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 90*time.Second, func() error {
		ms, err := meshStatus(ctx, e)
		if err != nil {
			return err
		}
		if ms.Headscale != "reachable" || ms.Node != "up" {
			return fmt.Errorf("after Headscale came back: %+v", ms)
		}
		return fetchBox(ctx, m, boxName, 5)
	})

	// Locked at the console: the node stops, as after a restart, and the
	// member loses the box; unlocked, it comes back. The VPN, whose config
	// here comes from the config file, stays up (one kept in the vault would
	// close: vpn/external.TestLockedVault).
	if out, err := cli(ctx, e, "lock"); err != nil {
		t.Fatalf("redoubt lock: %v %s", err, out)
	}
	locked := time.Now()
	waitFor(t, 15*time.Second, func() error {
		ms, err := meshStatus(ctx, e)
		if err != nil {
			return err
		}
		if ms.Node != "off" {
			return fmt.Errorf("locked: node %q (%s)", ms.Node, ms.NodeDetail)
		}
		return nil
	})
	t.Logf("locked to the node down: %v", time.Since(locked).Round(100*time.Millisecond))
	if out, err := cli(ctx, e, "status"); err != nil || !strings.Contains(out, "the box is locked: unlock it to join the team mesh") {
		t.Errorf("redoubt status while locked: %v\n%s", err, out)
	}
	if vs, err := e.Box.API.VPNStatus(ctx); err != nil || vs.State != "up" {
		t.Errorf("locked, the VPN from the config file is %q (%v)", vs.State, err)
	}
	if err := fetchBox(ctx, m, boxName, 3); err == nil {
		t.Error("with the box locked, the member still reaches it")
	}
	unlock(t, ctx, e)
	waitFor(t, 60*time.Second, func() error { return fetchBox(ctx, m, boxName, 5) })

	// The box's node deleted on the server while the box was off: unlocked
	// again, the box finds its node unknown and joins again by itself.
	e.RestartBox(t, "")
	out, err = m.HeadscaleCLI(ctx, "nodes", "delete", "--identifier", nodeID(t, ctx, m, boxName), "--force")
	if err != nil {
		t.Fatalf("deleting the box's node: %v %s", err, out)
	}
	deleted := time.Now()
	unlock(t, ctx, e)
	waitFor(t, 2*time.Minute, func() error {
		ms, err := meshStatus(ctx, e)
		if err != nil {
			return err
		}
		if ms.Node != "up" {
			return fmt.Errorf("after its node was deleted: %+v", ms)
		}
		return fetchBox(ctx, m, boxName, 5)
	})
	t.Logf("unlocked with its node deleted on the server, to the member reaching the box again: %v", time.Since(deleted).Round(100*time.Millisecond))
	noAPIKeys(t, ctx, e, keys)
}

// noAPIKeys checks that no Headscale API key the owner gave the box shows in
// what the local API says, in the box's log or in its state directory: the
// key is sealed in the vault.
func noAPIKeys(t *testing.T, ctx context.Context, e *labtest.Env, keys []string) {
	var raw map[string]any
	if err := e.Box.API.GetJSON(ctx, "/v1/status", &raw); err != nil {
		t.Fatal(err)
	}
	status, log := fmt.Sprint(raw), e.Box.Output()
	for _, k := range keys {
		if strings.Contains(status, k) {
			t.Errorf("/v1/status reveals a Headscale API key")
		}
		if strings.Contains(log, k) {
			t.Errorf("the box's log holds a Headscale API key")
		}
	}
	n := 0
	err := filepath.WalkDir(filepath.Join(e.Lab.Dir, "box-state"), func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		n++
		for _, k := range keys {
			if bytes.Contains(b, []byte(k)) {
				t.Errorf("%s holds a Headscale API key in the clear", path)
			}
		}
		return nil
	})
	if err != nil || n == 0 {
		t.Errorf("reading the box's state directory: %d files, %v", n, err)
	}
}

// forgetDevices logs the teammate out and deletes the team devices the test
// enrolled, so the tests after it in the shared lab enroll under the same names.
func forgetDevices(t *testing.T, m *lab.Mesh) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := m.ResetTeammate(ctx); err != nil {
		t.Errorf("logging the teammate out: %v", err)
	}
	out, err := m.HeadscaleCLI(ctx, "nodes", "list", "--output", "json")
	if err != nil {
		t.Errorf("headscale nodes list: %v", err)
		return
	}
	var nodes []struct {
		ID        uint64 `json:"id"`
		GivenName string `json:"given_name"`
	}
	if err := json.Unmarshal([]byte(out), &nodes); err != nil {
		t.Errorf("headscale nodes list: %v\n%s", err, out)
		return
	}
	for _, n := range nodes {
		if n.GivenName == boxName {
			continue
		}
		if out, err := m.HeadscaleCLI(ctx, "nodes", "delete", "--identifier", fmt.Sprint(n.ID), "--force"); err != nil {
			t.Errorf("deleting node %s: %v %s", n.GivenName, err, out)
		}
	}
}

// nodeID is the Headscale ID of the node called name.
func nodeID(t *testing.T, ctx context.Context, m *lab.Mesh, name string) string {
	t.Helper()
	out, err := m.HeadscaleCLI(ctx, "nodes", "list", "--output", "json")
	if err != nil {
		t.Fatal(err)
	}
	var nodes []struct {
		ID        uint64 `json:"id"`
		GivenName string `json:"given_name"`
	}
	if err := json.Unmarshal([]byte(out), &nodes); err != nil {
		t.Fatalf("headscale nodes list: %v\n%s", err, out)
	}
	for _, n := range nodes {
		if n.GivenName == name {
			return fmt.Sprint(n.ID)
		}
	}
	t.Fatalf("no node %q in %s", name, out)
	return ""
}

// waitVPN waits for the box's VPN to be up.
func waitVPN(tb testing.TB, ctx context.Context, e *labtest.Env) {
	tb.Helper()
	waitFor(tb, 30*time.Second, func() error {
		st, err := e.Box.API.Status(ctx)
		if err != nil {
			return err
		}
		if st.VPN == nil || st.VPN.State != "up" {
			return fmt.Errorf("the box's VPN: %+v", st.VPN)
		}
		return nil
	})
}

// team is the shared lab's box set up with the team mesh, and one member
// enrolled from the teammate.
type team struct {
	o  *owner
	ms localapi.MeshStatus
	// joined is from the end of setup to the box's node up in the tailnet;
	// enrolled, from the start of the member's script to their first fetch
	// of the box's page.
	joined, enrolled time.Duration
}

// setUpTeam sets the box up as its owner would, with the team mesh step
// answered, waits for the box's node, and enrolls a member with the script the
// team page gives.
func setUpTeam(tb testing.TB, ctx context.Context, e *labtest.Env) *team {
	tb.Helper()
	m := e.Lab.Mesh
	if err := e.Lab.LaptopStatic(ctx); err != nil {
		tb.Fatal(err)
	}
	laptop := e.Lab.HTTPClient(lab.Laptop, nil)
	code, err := e.Box.API.SetupCode(ctx)
	if err != nil {
		tb.Fatal(err)
	}
	if err := lab.SetUpBoxWith(ctx, laptop, plainBase, code, passphrase, boxName,
		map[string]url.Values{"team": {"login_server": {m.URL}, "api_key": {m.APIKey}}}); err != nil {
		tb.Fatalf("setup with the team step: %v", err)
	}
	tm := &team{}
	start := time.Now()
	waitFor(tb, 90*time.Second, func() error {
		tm.ms, err = meshStatus(ctx, e)
		if err != nil {
			return err
		}
		if ms := tm.ms; ms.Headscale != "reachable" || ms.Node != "up" || ms.Name != boxName || len(ms.Addrs) == 0 {
			return fmt.Errorf("the box's mesh: %+v", ms)
		}
		return nil
	})
	tm.joined = time.Since(start)
	tb.Logf("setup to the box's node up in the tailnet: %v (%s %v, strict %v)", tm.joined.Round(time.Millisecond), tm.ms.Name, tm.ms.Addrs, tm.ms.Strict)

	resp, err := laptop.Get(plainBase + "/ca.crt")
	if err != nil {
		tb.Fatal(err)
	}
	caPEM, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	tm.o = &owner{t: tb, c: e.Lab.HTTPClient(lab.Laptop, caPEM)}
	if tm.o.csrf, err = lab.SignIn(ctx, tm.o.c, secureBase, passphrase); err != nil {
		tb.Fatal(err)
	}

	// A member, invited on the team page, enrolls with the script.
	script := tm.o.invite(ctx, member)
	start = time.Now()
	if out, err := m.Enroll(ctx, script, "--hostname", device); err != nil {
		tb.Fatalf("the enrollment script: %v\n%s\n%s", err, out, tailLines(m.TailscaledLog(), 30))
	}
	ran := time.Since(start)
	waitFor(tb, 60*time.Second, func() error { return fetchBox(ctx, m, boxName, 5) })
	tm.enrolled = time.Since(start)
	tb.Logf("enrollment script: %v; script start to the box's page: %v", ran.Round(time.Millisecond), tm.enrolled.Round(time.Millisecond))
	return tm
}

// serveLaptop serves a page on the laptop's LAN address, port port.
func serveLaptop(t *testing.T, e *labtest.Env, port int) (stop func()) {
	t.Helper()
	var ln net.Listener
	if err := e.Lab.Do(lab.Laptop, func() error {
		var err error
		ln, err = net.Listen("tcp", fmt.Sprintf(":%d", port))
		return err
	}); err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "the owner's laptop\n")
	}), ReadHeaderTimeout: 5 * time.Second}
	go srv.Serve(ln)
	return func() { srv.Close() }
}

// apiKeyID is the ID of the lab's API key, as Headscale lists it (with its
// prefix and the rest masked: "hskey-api-XXXX-***").
func apiKeyID(t *testing.T, ctx context.Context, m *lab.Mesh) string {
	t.Helper()
	out, err := m.HeadscaleCLI(ctx, "apikeys", "list", "--output", "json")
	if err != nil {
		t.Fatal(err)
	}
	var keys []struct {
		ID     uint64 `json:"id"`
		Prefix string `json:"prefix"`
	}
	if err := json.Unmarshal([]byte(out), &keys); err != nil {
		t.Fatalf("headscale apikeys list: %v\n%s", err, out)
	}
	for _, k := range keys {
		if p := strings.TrimSuffix(k.Prefix, "***"); p != "" && strings.HasPrefix(m.APIKey, p) {
			return fmt.Sprint(k.ID)
		}
	}
	t.Fatalf("the lab's API key (%.16s…) is not among %q", m.APIKey, out)
	return ""
}

// cli runs the redoubt command line against the box's socket.
func cli(ctx context.Context, e *labtest.Env, args ...string) (string, error) {
	bin, err := labtest.Binary()
	if err != nil {
		return "", err
	}
	return e.Lab.Exec(ctx, lab.Box, append([]string{bin}, append(args, "--socket", e.Box.Socket)...)...)
}
