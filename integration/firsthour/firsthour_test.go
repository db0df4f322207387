// Package firsthour_test is the owner's first hour with a new box, in Debian's
// Chromium inside the lab's laptop, with the lab's VPN provider and team
// Headscale beside it: setup, trusting the box's certificate, HTTPS by the box's
// name, the dashboard saying the laptop is protected and updating live, the VPN
// and the team mesh set up afterwards from Settings, the apps chosen in setup on
// the Apps page, the leak self-test from the browser and from the laptop's own
// sockets (`redoubt selftest`), the Stopped page's filters and plain words, and
// the console's `redoubt team` and `redoubt settings`. Every page is looked at 1280 and 390 pixels wide: the screenshots
// stay under out/test/screenshots/, and no page may scroll sideways on a phone.
package firsthour_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/redoubt/redoubt/lab"
	"github.com/redoubt/redoubt/lab/browser"
	"github.com/redoubt/redoubt/lab/labtest"
)

func TestMain(m *testing.M) { labtest.Main(m) }

const (
	ownerPass = "lichen compass marmot velvet"
	boxName   = "kestrel"
	boxHost   = boxName + ".home.arpa"
)

var (
	plainIP   = "http://" + lab.BoxLAN.String()
	secureIP  = "https://" + lab.BoxLAN.String()
	secureBox = "https://" + boxHost
)

// boxConfig is the shared lab's box with its WAN on the home network and no VPN
// yet: the owner gives it one in Settings. vpn.exit_check asks the lab's
// internet where the box's traffic appears from.
func boxConfig(l *lab.Lab) string {
	return l.BoxConfig(fmt.Sprintf(`
[wan]
interface = %q
addressing = "dhcp"

[vpn]
exit_check = "http://%s/exit"
`, lab.BoxWANIface, lab.Tracker))
}

// restarted is done once the shared box runs with boxConfig.
var restarted sync.Once

// env is the package's lab: VPN provider and Headscale, and the box above,
// restarted with boxConfig the first time.
func env(t *testing.T) *labtest.Env {
	t.Helper()
	if err := lab.RequireDHCPClients(); err != nil {
		t.Skip(err)
	}
	e := labtest.SharedMesh(t)
	restarted.Do(func() { e.RestartBox(t, boxConfig(e.Lab)) })
	return e
}

// browserEnv is env for a test that needs Chromium.
func browserEnv(t *testing.T) *labtest.Env {
	t.Helper()
	if err := browser.Available(browser.Options{}); err != nil {
		t.Skipf("browser test skipped: %v", err)
	}
	return env(t)
}

// owner is the owner at the laptop's browser.
type owner struct {
	t *testing.T
	e *labtest.Env
	b *browser.Browser
}

func (o *owner) must(err error) {
	o.t.Helper()
	if err != nil {
		txt, _ := o.b.PageText()
		u, _ := o.b.URL()
		o.t.Fatalf("%v\n(at %s)\n%.1500s", err, u, txt)
	}
}

func (o *owner) open(u string) {
	o.t.Helper()
	if _, err := o.b.Navigate(u); err != nil {
		o.t.Fatalf("opening %s: %v", u, err)
	}
}

// submit submits the form sel and waits for the page it leads to.
func (o *owner) submit(sel string) {
	o.t.Helper()
	if _, err := o.b.Submit(sel); err != nil {
		o.must(fmt.Errorf("submitting %s: %w", sel, err))
	}
}

// click clicks sel and waits for the page it leads to.
func (o *owner) click(sel string) {
	o.t.Helper()
	if _, err := o.b.ClickAndWait(sel); err != nil {
		o.must(fmt.Errorf("clicking %s: %w", sel, err))
	}
}

// widths are the two the pages are looked at.
var widths = []struct {
	name          string
	width, height int
	mobile        bool
}{{"1280", 1280, 900, false}, {"390", 390, 844, true}}

// look takes the page's screenshots at both widths, and fails the test if the
// page scrolls sideways at either.
func (o *owner) look(step string) {
	o.t.Helper()
	for _, w := range widths {
		o.must(o.b.Viewport(w.width, w.height, w.mobile))
		var m struct {
			SW, CW, IW int
			Worst      string
		}
		err := o.b.Eval(`(() => {
			const de = document.documentElement, iw = window.innerWidth;
			let worst = "", right = 0;
			for (const el of document.querySelectorAll("body *")) {
				const r = el.getBoundingClientRect();
				if (r.width > 0 && r.right > de.clientWidth + 1 && r.right > right) {
					right = r.right;
					worst = el.tagName.toLowerCase() + (el.className ? "." + String(el.className).replace(/ /g, ".") : "") + " “" + (el.textContent || "").trim().slice(0, 50) + "”";
				}
			}
			return {SW: de.scrollWidth, CW: de.clientWidth, IW: iw, Worst: worst};
		})()`, &m)
		o.must(err)
		if limit := min(m.CW, w.width); m.SW > limit {
			o.t.Errorf("%s at %d px scrolls sideways: the page is %d px wide (widest: %s)", step, w.width, m.SW, m.Worst)
		}
		if p, err := o.b.Screenshot(step + "-" + w.name); err != nil {
			o.t.Errorf("screenshot %s: %v", step, err)
		} else {
			o.t.Logf("screenshot: %s", p)
		}
	}
	o.must(o.b.Viewport(1280, 900, false))
}

// text is the page's visible text.
func (o *owner) text() string {
	o.t.Helper()
	txt, err := o.b.PageText()
	o.must(err)
	return txt
}

func (o *owner) wantText(s string) {
	o.t.Helper()
	o.must(o.b.WaitText(s))
}

// upload gives the file input sel the file at path.
func (o *owner) upload(sel, path string) {
	o.t.Helper()
	ctx, cancel := context.WithTimeout(o.b.Context(), 10*time.Second)
	defer cancel()
	_, err := chromedp.Run(ctx, chromedp.SetUploadFiles(sel, []string{path}))
	o.must(err)
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

func waitFor(d time.Duration, cond func() bool) bool {
	for deadline := time.Now().Add(d); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		if cond() {
			return true
		}
	}
	return cond()
}

// leak makes the laptop try to reach the internet, as software on it would.
func leak(ctx context.Context, e *labtest.Env, name string) {
	e.Lab.Exec(ctx, lab.Laptop, "curl", "-sS", "--max-time", "3", "--resolve", name+":443:"+lab.Tracker.String(), "https://"+name+"/")
}

// readFile returns a file's content or fails.
func readFile(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
