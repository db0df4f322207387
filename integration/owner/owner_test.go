// Package owner_test runs the box in the lab and checks the owner's side end to
// end: setup from the laptop with the setup code, the captive-portal signals that
// stop once setup is done, HTTPS from the box's own CA, a box that comes back
// locked and keeps routing while locked, the console's unlock and lock, nothing of
// the owner's in plain text on disk, and the admin pages reachable from nowhere
// but the LAN port.
package owner_test

import (
	"context"
	"errors"
	"io"
	"io/fs"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/redoubt/redoubt/lab"
	"github.com/redoubt/redoubt/lab/labtest"
	"github.com/redoubt/redoubt/ui/localapi"
)

func TestMain(m *testing.M) { labtest.Main(m) }

const passphrase = "harbor quill saffron tundra"

var (
	plainBase  = "http://" + lab.BoxLAN.String()
	secureBase = "https://" + lab.BoxLAN.String()
)

// waitAddr waits until the laptop's DHCP client script has configured addr (it
// records the lease first, then configures the interface).
func waitAddr(t *testing.T, e *labtest.Env, addr netip.Prefix) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if got, err := e.Lab.LaptopAddr(context.Background()); err == nil && got == addr {
			if r, err := e.Lab.LaptopDefaultRoute(context.Background()); err == nil && r.IsValid() {
				return
			}
		}
	}
	t.Fatalf("the laptop never configured %v", addr)
}

func get(t *testing.T, c *http.Client, u string) (int, string) {
	t.Helper()
	resp, err := c.Get(u)
	if err != nil {
		t.Fatalf("GET %s: %v", u, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestOwnerLifecycle is one owner's story, in order: the laptop arrives at a new
// box, sets it up, uses it, the box restarts, the owner unlocks it.
func TestOwnerLifecycle(t *testing.T) {
	e := labtest.Shared(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	if err := lab.RequireDHCPClients(); err != nil {
		t.Skip(err)
	}

	// A new box: the laptop's lease names the captive-portal API, and every
	// page leads to setup.
	// busybox udhcpc renews when asked (dhclient only at half the lease).
	dc, err := e.Lab.StartUDHCPC(ctx, lab.DHCPOptions{Hostname: "laptop"})
	if err != nil {
		t.Fatal(err)
	}
	defer dc.Stop()
	lease, n, err := dc.WaitLease(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	waitAddr(t, e, lease.Addr)
	if lease.Captive == "" {
		t.Errorf("a new box's lease does not name its captive portal: %+v", lease)
	}
	laptop := e.Lab.HTTPClient(lab.Laptop, nil)
	if st, body := get(t, laptop, plainBase+"/captive-portal/api"); st != http.StatusOK || !strings.Contains(body, `"captive":true`) {
		t.Errorf("captive API on a new box: %d %s", st, body)
	}

	// Wrong codes are refused, then slowed down.
	for i := range 6 {
		resp, err := laptop.PostForm(plainBase+"/setup/code", url.Values{"code": {"ZZZZ-ZZZZ-ZZZZ"}})
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusForbidden {
			t.Fatalf("wrong code %d: %d", i, resp.StatusCode)
		}
		if i == 5 && !strings.Contains(string(b), "Too many wrong codes") {
			t.Errorf("the sixth wrong code was not slowed down")
		}
	}
	time.Sleep(2100 * time.Millisecond) // the delay after five wrong codes

	// The code from the box's console sets it up.
	code, err := e.Box.API.SetupCode(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := lab.SetUpBox(ctx, laptop, plainBase, code, passphrase, "kestrel"); err != nil {
		t.Fatalf("setup: %v", err)
	}
	if _, err := e.Box.API.SetupCode(ctx); err == nil {
		t.Error("the box still hands out a setup code after setup")
	}

	// Setup done: the portal signals stop, plain HTTP leads to HTTPS, and HTTPS
	// verifies against the box's CA alone.
	if st, body := get(t, laptop, plainBase+"/captive-portal/api"); !strings.Contains(body, `"captive":false`) {
		t.Errorf("captive API after setup: %d %s", st, body)
	}
	if err := dc.Renew(); err != nil {
		t.Fatal(err)
	}
	if lease2, _, err := dc.WaitLease(ctx, n); err != nil {
		t.Fatal(err)
	} else if lease2.Captive != "" {
		t.Errorf("after setup the lease still names a captive portal: %q", lease2.Captive)
	}
	_, caPEM := get(t, laptop, plainBase+"/ca.crt")
	if !strings.Contains(caPEM, "BEGIN CERTIFICATE") {
		t.Fatalf("CA download: %s", caPEM)
	}
	// A plain visit explains the certificate, offers it, and leads on to HTTPS
	// on the same host; a plain change is sent to HTTPS.
	if st, body := get(t, laptop, plainBase+"/"); st != http.StatusOK || !strings.Contains(body, "Trust your box") ||
		!strings.Contains(body, `href="`+secureBase+`/"`) || !strings.Contains(body, "/ca.crt") {
		t.Errorf("plain HTTP after setup: %d\n%s", st, body)
	}
	resp, err := laptop.PostForm(plainBase+"/lock", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != secureBase+"/lock" {
		t.Errorf("a plain change after setup: %d %s", resp.StatusCode, resp.Header.Get("Location"))
	}
	owner := e.Lab.HTTPClient(lab.Laptop, []byte(caPEM))
	if _, err := lab.SignIn(ctx, owner, secureBase, passphrase); err != nil {
		t.Fatalf("sign in over HTTPS with the box's CA: %v", err)
	}
	if _, err := lab.SignIn(ctx, owner, "https://kestrel.home.arpa", passphrase); err == nil {
		// The name needs the laptop's resolver, which is the box: reaching it
		// by name is a bonus the DNS tests cover; here only the certificate
		// matters, so a failure to resolve is not an error.
	}

	// A restart: locked, and still the laptop's router and resolver.
	e.RestartBox(t, "")
	st, err := e.Box.API.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !st.Owner.Locked || !st.Owner.SetupDone {
		t.Fatalf("after a restart: %+v", st.Owner)
	}
	if err := dc.Renew(); err != nil {
		t.Fatal(err)
	}
	if _, _, err := dc.WaitLease(ctx, 0); err != nil {
		t.Errorf("a locked box gave no lease: %v", err)
	}
	if out, err := e.Lab.Exec(ctx, lab.Laptop, "dig", "+short", "+tries=1", "+time=2", "@"+lab.BoxLAN.String(), "kestrel.home.arpa"); err != nil || strings.TrimSpace(out) != lab.BoxLAN.String() {
		t.Errorf("a locked box does not resolve its own name: %q %v", out, err)
	}
	owner = e.Lab.HTTPClient(lab.Laptop, []byte(caPEM))
	resp, err = owner.Get(secureBase + "/settings")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusFound || resp.Header.Get("Location") != "/unlock" {
		t.Errorf("a locked box's settings: %d %s", resp.StatusCode, resp.Header.Get("Location"))
	}

	// The console: a wrong passphrase is refused, the right one unlocks.
	bin, _ := labtest.Binary()
	unlock := func(pass string) (string, error) {
		cmd := exec.Command(bin, "unlock", "--socket", e.Box.Socket)
		cmd.Stdin = strings.NewReader(pass + "\n")
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	if out, err := unlock("not the passphrase"); err == nil || !strings.Contains(out, "wrong passphrase") {
		t.Errorf("redoubt unlock with a wrong passphrase: %v %s", err, out)
	}
	if out, err := unlock(passphrase); err != nil {
		t.Fatalf("redoubt unlock: %v %s", err, out)
	}
	if st, _ := e.Box.API.Status(ctx); st.Owner.Locked {
		t.Fatal("still locked after redoubt unlock")
	}
	csrf, err := lab.SignIn(ctx, owner, secureBase, passphrase)
	if err != nil {
		t.Fatalf("sign in after unlock: %v", err)
	}

	// The owner moves the box to another LAN from the settings page, and back:
	// no restart, and the laptop finds the box again at the new address.
	moved := netip.MustParsePrefix("10.77.0.1/24")
	dc, csrf = moveLAN(t, ctx, e, owner, dc, secureBase, csrf, moved, caPEM)
	dc, _ = moveLAN(t, ctx, e, owner, dc, "https://"+moved.Addr().String(), csrf, netip.PrefixFrom(lab.BoxLAN, lab.LANPrefix.Bits()), caPEM)
	defer dc.Stop()
	owner = e.Lab.HTTPClient(lab.Laptop, []byte(caPEM))
	if _, err := lab.SignIn(ctx, owner, secureBase, passphrase); err != nil {
		t.Fatalf("sign in after moving back: %v", err)
	}
	if out, err := exec.Command(bin, "lock", "--socket", e.Box.Socket).CombinedOutput(); err != nil {
		t.Fatalf("redoubt lock: %v %s", err, out)
	}
	if st, _ := e.Box.API.Status(ctx); !st.Owner.Locked {
		t.Fatal("not locked after redoubt lock")
	}
	// Locking signed the browser out.
	resp, err = owner.Get(secureBase + "/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusFound {
		t.Errorf("a browser stayed signed in through a lock: %d", resp.StatusCode)
	}

	// Nothing of the owner's in plain text under the state directory.
	stateDir := filepath.Join(e.Lab.Dir, "box-state")
	needles := []string{passphrase, "harbor quill", "BEGIN PRIVATE KEY", "BEGIN EC PRIVATE KEY"}
	filepath.WalkDir(stateDir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		if strings.HasPrefix(d.Name(), "ui-key") || filepath.Base(filepath.Dir(path)) == ".certs" {
			return nil // the HTTPS keys (the owner's pages', the apps') are kept outside the vault on purpose (ARCHITECTURE.md)
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		for _, n := range needles {
			if strings.Contains(string(b), n) {
				t.Errorf("%s holds %q in plain text", path, n)
			}
		}
		return nil
	})
}

// moveLAN changes the box's LAN address on the settings page at base and
// follows the box like a laptop does: the link drops and returns, the laptop asks
// DHCP again, and the box answers at the new address, by name too, with a
// certificate for it. It returns the laptop's new DHCP client and the CSRF token
// of a session at the new address.
func moveLAN(t *testing.T, ctx context.Context, e *labtest.Env, owner *http.Client, dc *lab.DHCPClient,
	base, csrf string, to netip.Prefix, caPEM string) (*lab.DHCPClient, string) {
	t.Helper()
	status := func() localapi.Status {
		st, err := e.Box.API.Status(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return st
	}
	from := status().LAN.Address
	form := url.Values{"csrf": {csrf}, "box_name": {"kestrel"}, "lan_address": {to.String()}, "lease_time": {"12h"}, "reservations": {""}}
	resp, err := owner.PostForm(base+"/settings", form)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), "moves to "+to.Addr().String()) {
		t.Fatalf("moving to %v: %d %s", to, resp.StatusCode, body)
	}

	// The laptop sees its link go down and come back.
	operstate := func() string {
		out, _ := e.Lab.Exec(ctx, lab.Laptop, "cat", "/sys/class/net/"+lab.LaptopIface+"/operstate")
		return strings.TrimSpace(out)
	}
	waitState := func(want func(string) bool, what string) {
		for deadline := time.Now().Add(15 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
			if want(operstate()) {
				return
			}
		}
		t.Fatalf("moving to %v: the laptop's link never %s (%s)", to, what, operstate())
	}
	waitState(func(s string) bool { return s != "up" }, "went down")
	start := time.Now()
	waitState(func(s string) bool { return s == "up" }, "came back")
	t.Logf("moving to %v: the laptop's link was down for %v", to, time.Since(start).Round(100*time.Millisecond))

	// As a laptop does on a link that returns, it asks DHCP afresh.
	dc.Stop()
	next, err := e.Lab.StartUDHCPC(ctx, lab.DHCPOptions{Hostname: "laptop"})
	if err != nil {
		t.Fatal(err)
	}
	lease, _, err := next.WaitLease(ctx, 0)
	if err != nil {
		t.Fatalf("no lease after moving to %v: %v", to, err)
	}
	box := to.Addr()
	if !to.Masked().Contains(lease.Addr.Addr()) || len(lease.Router) == 0 || lease.Router[0] != box || len(lease.DNS) == 0 || lease.DNS[0] != box {
		t.Fatalf("the lease after moving to %v: %+v", to, lease)
	}
	waitAddr(t, e, lease.Addr)
	if st := status(); st.LAN.Address != to.String() {
		t.Errorf("the box's status after moving to %v says %s", to, st.LAN.Address)
	}
	if out, err := e.Lab.Exec(ctx, lab.Laptop, "dig", "+short", "+tries=1", "+time=2", "@"+box.String(), "kestrel.home.arpa"); err != nil || strings.TrimSpace(out) != box.String() {
		t.Errorf("after moving to %v the box's name resolves to %q (%v)", to, out, err)
	}
	if out, err := e.Lab.Exec(ctx, lab.Laptop, "dig", "+short", "+tries=1", "+time=1", "@"+netip.MustParsePrefix(from).Addr().String(), "kestrel.home.arpa"); err == nil && strings.TrimSpace(out) != "" {
		t.Errorf("after moving to %v the old address %s still answers: %q", to, from, out)
	}
	// The certificate now names the new address, and the owner signs in there.
	c := e.Lab.HTTPClient(lab.Laptop, []byte(caPEM))
	newCSRF, err := lab.SignIn(ctx, c, "https://"+box.String(), passphrase)
	if err != nil {
		t.Fatalf("signing in at %v after the move: %v", box, err)
	}
	*owner = *c
	return next, newCSRF
}

// TestAdminOnlyOnTheLAN tries the admin ports from everywhere but the LAN port:
// the box's WAN network (the home router, its neighbour there), and the box's own
// kernel.
func TestAdminOnlyOnTheLAN(t *testing.T) {
	e := labtest.Shared(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	wanIP := lab.BoxWAN.Addr().String()
	for _, try := range []struct{ node, url string }{
		{lab.HomeRouter, "http://" + wanIP + "/"},
		{lab.HomeRouter, "https://" + wanIP + "/"},
		{lab.Box, "http://127.0.0.1/"},
		{lab.Box, "https://127.0.0.1/"},
		{lab.Box, "http://" + wanIP + "/"},
	} {
		c := e.Lab.HTTPClient(try.node, nil)
		c.Timeout = 3 * time.Second
		resp, err := c.Get(try.url)
		if err == nil {
			resp.Body.Close()
			t.Errorf("%s reached the admin pages at %s: %d", try.node, try.url, resp.StatusCode)
			continue
		}
		var ne interface{ Timeout() bool }
		t.Logf("%s → %s: %v (timeout %v)", try.node, try.url, err, errors.As(err, &ne) && ne.Timeout())
	}
	// And from the laptop they answer.
	c := e.Lab.HTTPClient(lab.Laptop, nil)
	if err := e.Lab.LaptopStatic(ctx); err != nil {
		t.Fatal(err)
	}
	resp, err := c.Get(plainBase + "/captive-portal/api")
	if err != nil {
		t.Fatalf("the laptop cannot reach the box's pages: %v", err)
	}
	resp.Body.Close()
}
