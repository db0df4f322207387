package members

import (
	"fmt"
	"time"

	qrcode "github.com/skip2/go-qrcode"
)

// Bundle is what a new member (or a member's new device) needs to join: shown
// to the owner once, right after Add or Reissue. The box keeps no copy of the
// key; Reissue makes a new bundle and revokes the old key.
type Bundle struct {
	Member string
	// Key is the single-use pre-auth key inside the scripts.
	Key     string
	Expires time.Time
	// LoginServer is the coordination server's URL (Headscale's server_url).
	LoginServer string
	// Shell is the script for Linux and macOS (sh redoubt-join.sh [--yes]).
	Shell string
	// PowerShell is the script for Windows (-File redoubt-join.ps1 [-Yes]).
	PowerShell string
	// QR is a PNG of the login server's URL, for a phone's Tailscale app
	// (its "custom coordination server" / "alternate server" field).
	QR []byte
	// MobileSteps tell a member how to join from iPhone, iPad or Android: the
	// app logs in interactively and the device waits, pending, until the
	// owner approves it (AddPending, Approve).
	MobileSteps []string
	// CAFingerprint is the SHA-256 fingerprint of the box's CA certificate,
	// which the scripts install.
	CAFingerprint string
}

// qrSize is the QR code's width and height in pixels.
const qrSize = 320

func makeBundle(in scriptInput) (Bundle, error) {
	if err := in.check(); err != nil {
		return Bundle{}, err
	}
	png, err := qrcode.Encode(in.LoginServer, qrcode.Medium, qrSize)
	if err != nil {
		return Bundle{}, fmt.Errorf("making the QR code: %w", err)
	}
	return Bundle{
		Member:        in.Member,
		Key:           in.Key,
		Expires:       in.Expires,
		LoginServer:   in.LoginServer,
		Shell:         shellScript(in),
		PowerShell:    powerShellScript(in),
		QR:            png,
		MobileSteps:   mobileSteps(in),
		CAFingerprint: in.CAPrint,
	}, nil
}

// mobileSteps are the phone and tablet instructions (the Tailscale apps'
// custom server settings, as Headscale documents them for v0.29).
func mobileSteps(in scriptInput) []string {
	steps := []string{
		"Install the Tailscale app: App Store (iPhone, iPad), Google Play or F-Droid (Android).",
		fmt.Sprintf("iPhone and iPad: open Tailscale, tap the account icon (top right), then Log in…; in the options menu (top right) choose \"Use custom coordination server\" and enter %s (or scan the QR code with the camera and copy the address).", in.LoginServer),
		fmt.Sprintf("Android: open Tailscale, tap the settings icon (top right), then Accounts; in the ⋮ menu choose \"Use an alternate server\" and enter %s (or scan the QR code and copy the address).", in.LoginServer),
		fmt.Sprintf("Tap Log in. A page opens with a link that ends in a code starting with hskey-authreq-: send that link (or the code) to the box's owner, who adds it on the box's Members page and approves it as a device of %s. The app connects by itself once it is approved (within 15 minutes, else log in again for a new code).", in.Member),
		fmt.Sprintf("So that the box's pages open without warnings, install its certificate authority (the owner can send you the file; check its SHA-256 fingerprint %s): on iPhone and iPad open the file, install the profile in Settings, then turn it on under Settings > General > About > Certificate Trust Settings; on Android, Settings > Security > Encryption & credentials > Install a certificate > CA certificate.", in.CAPrint),
	}
	if in.AppsURL != "" {
		steps = append(steps, "Then open the box's apps page: "+in.AppsURL)
	}
	return steps
}
