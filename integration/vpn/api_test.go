package vpn_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/redoubt/redoubt/lab"
	"github.com/redoubt/redoubt/lab/labtest"
	"github.com/redoubt/redoubt/vpn/external"
)

const passphrase = "harbor quill saffron tundra"

// TestConfigSetByTheOwner: a box whose config file names no VPN, on a static WAN
// address. Nothing leaves; the VPN config cannot be kept before setup; the owner
// pastes it in the setup wizard's VPN step and it comes up; after a restart the
// box is locked and the VPN down until the owner unlocks it; `redoubt vpn`
// sets, reports and clears it. The box then gets its usual config back.
func TestConfigSetByTheOwner(t *testing.T) {
	e := env(t)
	defer func() {
		e.RestartBox(t, "")
		waitVPN(t, e, external.StateUp, 30*time.Second)
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	bin, err := labtest.Binary()
	if err != nil {
		t.Fatal(err)
	}
	// cli runs a redoubt command against the lab's box: flags go after the
	// command's words ("vpn set"), before its arguments.
	cli := func(args ...string) (string, error) {
		n := 1
		if args[0] == "vpn" {
			n = 2
		}
		argv := append(append(append([]string{}, args[:n]...), "--socket", e.Box.Socket), args[n:]...)
		out, err := exec.CommandContext(ctx, bin, argv...).CombinedOutput()
		t.Logf("redoubt %s\n%s", strings.Join(args, " "), strings.TrimSpace(string(out)))
		return string(out), err
	}
	static := e.Lab.BoxConfig(fmt.Sprintf(`
[wan]
interface = %q
addressing = "static"
address = %q
gateway = %q
`, lab.BoxWANIface, lab.BoxWAN, lab.Upstream.Addr()))
	e.RestartBox(t, static)
	st := waitVPN(t, e, external.StateNotConfigured, 10*time.Second)
	if !strings.Contains(st.Reason, "redoubt vpn set") || st.WAN.Addressing != "static" || st.WAN.Address != lab.BoxWAN || !st.WAN.Ready {
		t.Errorf("status without a VPN: %+v", st)
	}
	if out, _ := e.Lab.Exec(ctx, lab.Box, "ip", "-4", "route"); strings.Contains(out, "default") || strings.Contains(out, lab.VPNEndpoint.Addr().String()) {
		t.Errorf("routes without a VPN:\n%s", out)
	}

	// A broken config is refused with the line and key; no config is kept
	// before setup (there is no vault yet).
	bad := filepath.Join(t.TempDir(), "bad.conf")
	os.WriteFile(bad, []byte("[Interface]\nPrivateKey = bm90IGEga2V5\nAddress = 10.66.0.2/32\n"), 0o600)
	if out, err := cli("vpn", "set", bad); err == nil || !strings.Contains(out, "line 2") || !strings.Contains(out, "PrivateKey") {
		t.Errorf("a bad config: %v", err)
	}
	resp := putRaw(t, e, "[Peer]\nEndpoint = vpn.example.com:51820\n")
	if resp.code != http.StatusBadRequest || !strings.Contains(resp.body, `"line"`) {
		t.Errorf("PUT /v1/vpn with a bad config: %d %s", resp.code, resp.body)
	}
	if out, err := cli("vpn", "set", e.Lab.VPN.ClientConfig); err == nil || !strings.Contains(out, "finish setup") {
		t.Errorf("setting the VPN before setup: %v", err)
	}

	// The setup wizard's VPN step.
	if err := e.Lab.LaptopStatic(ctx); err != nil {
		t.Fatal(err)
	}
	code, err := e.Box.API.SetupCode(ctx)
	if err != nil {
		t.Fatal(err)
	}
	conf, err := os.ReadFile(e.Lab.VPN.ClientConfig)
	if err != nil {
		t.Fatal(err)
	}
	if err := setUpWithVPN(ctx, e.Lab.HTTPClient(lab.Laptop, nil), code, string(conf)); err != nil {
		t.Fatalf("setup with the VPN step: %v", err)
	}
	st = waitVPN(t, e, external.StateUp, 20*time.Second)
	if st.FromFile || !strings.Contains(st.Source, "vault") {
		t.Errorf("source: %q", st.Source)
	}
	if res, err := fetch(e, "http://"+lab.Tracker.String()+"/after-wizard", 10*time.Second); err != nil || res.Status != 200 {
		t.Errorf("fetch after the wizard: %+v %v", res, err)
	}
	if out, err := cli("vpn", "status"); err != nil || !regexp.MustCompile(`VPN +up `).MatchString(out) || !strings.Contains(out, lab.VPNEndpoint.String()) {
		t.Errorf("redoubt vpn status: %v", err)
	}
	if out, err := cli("status"); err != nil || !strings.Contains(out, "VPN") {
		t.Errorf("redoubt status: %v", err)
	}
	// Never a secret in what the API says.
	key := privateKeyLine(string(conf))
	for _, path := range []string{"/v1/vpn", "/v1/status"} {
		var raw map[string]any
		if err := e.Box.API.GetJSON(ctx, path, &raw); err != nil {
			t.Fatal(err)
		}
		if b := fmt.Sprint(raw); strings.Contains(b, key) {
			t.Errorf("%s reveals the private key", path)
		}
	}
	if strings.Contains(e.Box.Output(), key) {
		t.Error("the box's log holds the private key")
	}
	// Nor on the box's disk, as text or as its 32 bytes: the config is sealed
	// in the vault.
	raw, err := base64.StdEncoding.DecodeString(key)
	if err != nil || len(raw) != 32 {
		t.Fatalf("the lab's VPN key %q: %v", key, err)
	}
	filepath.WalkDir(filepath.Join(e.Lab.Dir, "box-state"), func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		if bytes.Contains(b, []byte(key)) || bytes.Contains(b, raw) {
			t.Errorf("%s holds the VPN's private key in the clear", path)
		}
		return nil
	})

	// A restart: the box is locked, the sealed config unreadable, the VPN down;
	// the owner unlocks it at the console and it comes up.
	e.RestartBox(t, static)
	st = waitVPN(t, e, external.StateDown, 10*time.Second)
	if !strings.Contains(st.Reason, "locked") {
		t.Errorf("after a restart: %+v", st)
	}
	if _, err := e.Box.API.Unlock(ctx, []byte(passphrase)); err != nil {
		t.Fatal(err)
	}
	waitVPN(t, e, external.StateUp, 20*time.Second)

	// Cleared: back to nothing; set again with the command.
	if _, err := cli("vpn", "clear"); err != nil {
		t.Error(err)
	}
	waitVPN(t, e, external.StateNotConfigured, 5*time.Second)
	if res, err := fetch(e, "http://"+lab.Tracker.String()+"/after-clear", 3*time.Second); err == nil {
		t.Errorf("a fetch with the VPN cleared: %+v", res)
	}
	if _, err := cli("vpn", "set", e.Lab.VPN.ClientConfig); err != nil {
		t.Error(err)
	}
	waitVPN(t, e, external.StateUp, 20*time.Second)

	// With the config file naming the VPN, the API refuses changes.
	e.RestartBox(t, "")
	waitVPN(t, e, external.StateUp, 20*time.Second)
	if out, err := cli("vpn", "clear"); err == nil || !strings.Contains(out, "config file") {
		t.Errorf("clear with a file config: %v", err)
	}
}

type rawResp struct {
	code int
	body string
}

func putRaw(t *testing.T, e *labtest.Env, text string) rawResp {
	t.Helper()
	c := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "unix", e.Box.Socket)
	}}}
	req, _ := http.NewRequest(http.MethodPut, "http://redoubt/v1/vpn", strings.NewReader(text))
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return rawResp{resp.StatusCode, string(b)}
}

func privateKeyLine(conf string) string {
	for _, l := range strings.Split(conf, "\n") {
		if k, v, ok := strings.Cut(l, "="); ok && strings.TrimSpace(k) == "PrivateKey" {
			return strings.TrimSpace(v) // Cut splits at the first "=", so the key's padding stays
		}
	}
	return "no key"
}

var csrfRE = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

// setUpWithVPN walks the setup wizard as the owner would, pasting conf in the
// VPN step.
func setUpWithVPN(ctx context.Context, c *http.Client, code, conf string) error {
	base := "http://" + lab.BoxLAN.String()
	post := func(path string, form url.Values) (int, string, error) {
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, base+path, strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		resp, err := c.Do(req)
		if err != nil {
			return 0, "", err
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b), nil
	}
	if st, _, err := post("/setup/code", url.Values{"code": {code}}); err != nil || st != http.StatusSeeOther {
		return fmt.Errorf("the setup code: %d %v", st, err)
	}
	sawVPN := false
	for range 20 {
		resp, err := c.Get(base + "/setup")
		if err != nil {
			return err
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		body := string(b)
		if resp.StatusCode == http.StatusFound {
			break
		}
		m := csrfRE.FindStringSubmatch(body)
		if m == nil {
			return fmt.Errorf("no form on the setup page (%d)", resp.StatusCode)
		}
		form := url.Values{"csrf": {m[1]}}
		var path string
		switch {
		case strings.Contains(body, `action="/setup/passphrase"`):
			path = "/setup/passphrase"
			form.Set("passphrase", passphrase)
			form.Set("confirm", passphrase)
		case strings.Contains(body, `action="/setup/name"`):
			path = "/setup/name"
			form.Set("name", "kestrel")
		case strings.Contains(body, `action="/setup/step/vpn"`):
			path = "/setup/step/vpn"
			form.Set("config", conf)
			sawVPN = true
		case strings.Contains(body, `action="/setup/finish"`):
			path = "/setup/finish"
		default:
			m := regexp.MustCompile(`action="(/setup/step/[^"]+)"`).FindStringSubmatch(body)
			if m == nil {
				return fmt.Errorf("an unknown setup step:\n%s", body)
			}
			path = m[1]
			form.Set("skip", "1")
		}
		st, body, err := post(path, form)
		if err != nil {
			return err
		}
		if st != http.StatusSeeOther {
			return fmt.Errorf("%s was refused (%d):\n%s", path, st, body)
		}
		if path == "/setup/finish" {
			break
		}
	}
	if !sawVPN {
		return fmt.Errorf("the wizard had no VPN step")
	}
	return nil
}
