package browser_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/redoubt/redoubt/lab"
	"github.com/redoubt/redoubt/lab/browser"
	"github.com/redoubt/redoubt/lab/labtest"
)

const ownerPass = "lichen compass marmot velvet"

// TestOwnerInChromium is the owner's first hour, in Debian's Chromium inside the
// laptop's namespace, with a screenshot of every step: the laptop gets its lease,
// an arbitrary address lands on the setup page, a wrong code is refused, the
// wizard runs to the end, the box's CA is offered; with the CA trusted, the
// dashboard shows the laptop and, live, a leak the test causes; a restart brings
// the unlock page; and a cross-site form cannot lock the box.
func TestOwnerInChromium(t *testing.T) {
	if err := browser.Available(browser.Options{}); err != nil {
		t.Skipf("browser test skipped: %v", err)
	}
	if err := lab.RequireDHCPClients(); err != nil {
		t.Skip(err)
	}
	e := labtest.Shared(t)
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()

	// The laptop gets its address, router and resolver from the box.
	dc, err := e.Lab.StartDHClient(ctx, lab.DHCPOptions{Hostname: "reporter-laptop"})
	if err != nil {
		t.Fatal(err)
	}
	defer dc.Stop()
	if _, _, err := dc.WaitLease(ctx, 0); err != nil {
		t.Fatal(err)
	}
	waitFor(10*time.Second, func() bool {
		r, err := e.Lab.LaptopDefaultRoute(ctx)
		return err == nil && r.IsValid()
	})

	b := browser.ForTest(t, e.Lab, browser.Options{Timeout: 20 * time.Second})
	shot := func(step string) {
		t.Helper()
		if p, err := b.Screenshot(step); err != nil {
			t.Errorf("screenshot %s: %v", step, err)
		} else {
			t.Logf("screenshot: %s", p)
		}
	}

	// 1. An operating system's connectivity check, an address the laptop did
	// not choose: the box's answer leads to its setup page.
	if _, err := b.Navigate("http://connectivitycheck.gstatic.com/generate_204"); err != nil {
		t.Fatalf("opening a captive-portal probe: %v", err)
	}
	if err := b.WaitText("Set up your Redoubt box"); err != nil {
		txt, _ := b.PageText()
		t.Fatalf("an arbitrary address did not land on setup: %v\n%s", err, txt)
	}
	if u, _ := b.URL(); !strings.HasPrefix(u, "http://"+lab.BoxLAN.String()+"/setup") {
		t.Errorf("landed on %s", u)
	}
	shot("01-setup-code")

	// 2. A wrong code.
	must(t, b.Fill("#code", "AAAA-BBBB-CCCC"))
	if _, err := b.Submit("#code"); err != nil {
		t.Fatal(err)
	}
	must(t, b.WaitText("not the setup code"))
	shot("02-wrong-code")

	// 3. The right code, from the box's console.
	code, err := e.Box.API.SetupCode(ctx)
	if err != nil {
		t.Fatal(err)
	}
	must(t, b.Fill("#code", code))
	if _, err := b.Submit("#code"); err != nil {
		t.Fatal(err)
	}
	must(t, b.WaitText("Choose a passphrase"))
	// The meter judges as the box will.
	must(t, b.Fill("#passphrase", "password1234"))
	must(t, b.WaitTextIn("[data-meter-text]", "most common"))
	shot("03-weak-passphrase")
	must(t, b.Fill("#passphrase", ownerPass))
	must(t, b.WaitTextIn("[data-meter-text]", "Strong"))
	must(t, b.Fill("#confirm", ownerPass))
	shot("04-passphrase")
	if _, err := b.Submit("#passphrase"); err != nil {
		t.Fatal(err)
	}
	must(t, b.WaitText("Name your box"))
	// A reload resumes where setup was.
	if _, err := b.Navigate("http://" + lab.BoxLAN.String() + "/setup"); err != nil {
		t.Fatal(err)
	}
	must(t, b.WaitText("Name your box"))
	must(t, b.Fill("#name", "kestrel"))
	shot("05-name")
	if _, err := b.Submit("#name"); err != nil {
		t.Fatal(err)
	}
	// Any further steps (VPN, team mesh) are optional: skip them.
	for range 5 {
		txt, _ := b.PageText()
		if strings.Contains(txt, "Finish setup") {
			break
		}
		shot("06-optional-step")
		if _, err := b.Submit(`button[name="skip"]`); err != nil {
			t.Fatalf("skipping a step: %v\n%s", err, txt)
		}
	}
	must(t, b.WaitText("Finish setup"))
	if _, err := b.Submit(`form[action="/setup/finish"]`); err != nil {
		t.Fatal(err)
	}
	must(t, b.WaitText("Your box is set up"))
	must(t, b.WaitText("Download the box's certificate"))
	shot("07-ca-offered")

	// 4. The owner installs the CA (this browser trusts it from now on) and
	// signs in over HTTPS.
	caPEM := fetchCA(t, e)
	b.Close()
	b = browser.ForTest(t, e.Lab, browser.Options{Name: t.Name() + "-with-ca", TrustCA: caPEM, Timeout: 20 * time.Second})
	if _, err := b.Navigate("https://" + lab.BoxLAN.String() + "/"); err != nil {
		t.Fatalf("HTTPS with the box's CA trusted: %v", err)
	}
	must(t, b.WaitText("Sign in"))
	must(t, b.Fill("#passphrase", ownerPass))
	if _, err := b.Submit("#passphrase"); err != nil {
		t.Fatal(err)
	}
	must(t, b.WaitText("Stopped just now"))
	must(t, b.WaitText("reporter-laptop")) // the laptop's lease, by the name it gave
	shot("08-dashboard")

	// 5. A leak, while the dashboard is open: it appears without a reload.
	marker := fmt.Sprintf("live-%d.tracker.example", time.Now().UnixNano()%100000)
	e.Lab.Exec(ctx, lab.Laptop, "curl", "-sS", "--max-time", "3", "--resolve", marker+":443:"+lab.Tracker.String(), "https://"+marker+"/")
	if err := b.WaitTextIn("[data-feed]", marker); err != nil {
		t.Fatalf("the leak did not appear live: %v", err)
	}
	shot("09-live-leak")
	var chartOK bool
	if err := b.Eval(`document.querySelector("[data-chart]").complete && document.querySelector("[data-chart]").naturalWidth > 0`, &chartOK); err != nil || !chartOK {
		t.Errorf("the chart did not load: %v", err)
	}
	for _, p := range b.Problems() {
		t.Errorf("the dashboard had a problem: %v", p)
	}

	// 6. A cross-site page posts a form to the box: refused, and the box stays
	// unlocked.
	attack := `data:text/html,<form id=f method=post action="https://` + lab.BoxLAN.String() + `/lock"><input name=x value=1></form><script>document.getElementById("f").submit()</script>`
	b.Navigate(attack)
	time.Sleep(time.Second)
	txt, _ := b.PageText()
	shot("10-cross-site-post")
	if st, err := e.Box.API.Status(ctx); err != nil || st.Owner.Locked {
		t.Fatalf("a cross-site form locked the box (status %+v, %v)", st.Owner, err)
	}
	if !strings.Contains(txt, "another site") && !strings.Contains(txt, "not signed in") {
		t.Errorf("the cross-site post was not refused with a reason:\n%s", txt)
	}

	// 7. Restart from the settings page: the browser waits, then shows the
	// unlock page; unlocking brings the dashboard back.
	if _, err := b.Navigate("https://" + lab.BoxLAN.String() + "/settings"); err != nil {
		t.Fatal(err)
	}
	must(t, b.WaitText("Factory reset"))
	shot("11-settings")
	b.Submit(`form[action="/reboot"] button`)
	must(t, b.WaitText("restarting"))
	shot("12-restarting")
	old := b.SetTimeout(60 * time.Second)
	if err := b.WaitText("Unlock your box"); err != nil {
		t.Fatalf("after the restart the unlock page did not come: %v", err)
	}
	b.SetTimeout(old)
	shot("13-unlock")
	if st, err := e.Box.API.Status(ctx); err != nil || !st.Owner.Locked {
		t.Fatalf("after the restart the box should be locked: %+v %v", st.Owner, err)
	}
	must(t, b.Fill("#passphrase", ownerPass))
	if _, err := b.Submit("#passphrase"); err != nil {
		t.Fatal(err)
	}
	must(t, b.WaitText("Stopped just now"))
	shot("14-unlocked")

	// The phone-size view of the dashboard.
	must(t, b.Viewport(390, 844, true))
	shot("15-phone")
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// fetchCA downloads the box's CA certificate as the laptop does.
func fetchCA(t *testing.T, e *labtest.Env) []byte {
	t.Helper()
	c := e.Lab.HTTPClient(lab.Laptop, nil)
	resp, err := c.Get((&url.URL{Scheme: "http", Host: lab.BoxLAN.String(), Path: "/ca.crt"}).String())
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(b), "BEGIN CERTIFICATE") {
		t.Fatalf("CA download: %d", resp.StatusCode)
	}
	return b
}
