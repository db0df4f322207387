package members

import (
	"crypto/sha256"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"net/url"
	"regexp"
	"strings"
	"time"

	"github.com/redoubt/redoubt/vpn/headscale"
)

// scriptInput is what goes into an enrollment script. Everything in it has
// been checked (checkInput) before it is quoted into one: the scripts' text
// outside their first lines is constant.
type scriptInput struct {
	Member      string
	BoxName     string
	LoginServer string
	Key         string
	Expires     time.Time
	AppsURL     string // "" skips opening it
	CAPEM       string // one CERTIFICATE block, re-encoded
	CAFile      string // base name for the trust store: redoubt-<8 hex>
	CAPrint     string // SHA-256 fingerprint, AB:CD:…
}

var (
	keyPattern = regexp.MustCompile(`^[A-Za-z0-9_-]{8,200}$`)
	// safeURLChars are the URL characters the scripts carry: no quotes of
	// any kind, no backquote, dollar, backslash, space or parentheses.
	safeURLChars = regexp.MustCompile(`^[A-Za-z0-9._~:/?#\[\]@!&+,;=%-]+$`)
)

// caInfo re-encodes the first certificate in pemText and fingerprints it.
func caInfo(pemText []byte) (pemOut, file, print string, err error) {
	block, _ := pem.Decode(pemText)
	if block == nil || block.Type != "CERTIFICATE" {
		return "", "", "", errors.New("the box's CA certificate is not a PEM CERTIFICATE")
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		return "", "", "", fmt.Errorf("the box's CA certificate: %w", err)
	}
	if !cert.IsCA {
		return "", "", "", errors.New("the box's CA certificate is not a CA certificate")
	}
	sum := sha256.Sum256(cert.Raw)
	hexs := make([]string, len(sum))
	for i, b := range sum {
		hexs[i] = fmt.Sprintf("%02X", b)
	}
	out := strings.TrimSpace(string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Raw})))
	return out, fmt.Sprintf("redoubt-%x", sum[:4]), strings.Join(hexs, ":"), nil
}

// checkURL accepts an https URL made of safeURLChars. The login server is
// also a Headscale URL (no query or fragment).
func checkURL(what, s string) error {
	u, err := url.Parse(s)
	switch {
	case err != nil:
		return fmt.Errorf("%s %q: %v", what, s, err)
	case u.Scheme != "https" || u.Host == "" || u.Hostname() == "":
		return fmt.Errorf("%s %q: want an https:// URL with a host", what, s)
	case u.User != nil:
		return fmt.Errorf("%s %q: user information is not allowed in it", what, s)
	case !safeURLChars.MatchString(s):
		return fmt.Errorf("%s %q: has characters the enrollment scripts do not carry (quotes, spaces, parentheses, $, `, \\)", what, s)
	}
	return nil
}

func checkLoginServer(what, s string) error {
	if err := checkURL(what, s); err != nil {
		return err
	}
	if _, err := headscale.ParseURL(s); err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	return nil
}

func (in scriptInput) check() error {
	if err := ValidateName(in.Member); err != nil {
		return err
	}
	if !keyPattern.MatchString(in.Key) {
		return errors.New("the pre-auth key Headscale gave is not one (letters, digits, - and _ expected)")
	}
	if err := checkLoginServer("the login server", in.LoginServer); err != nil {
		return err
	}
	if in.AppsURL != "" {
		if err := checkURL("the apps page", in.AppsURL); err != nil {
			return err
		}
	}
	if !strings.HasPrefix(in.CAPEM, "-----BEGIN CERTIFICATE-----\n") || !regexp.MustCompile(`^redoubt-[0-9a-f]{8}$`).MatchString(in.CAFile) {
		return errors.New("the box's CA certificate was not prepared")
	}
	return nil
}

// shQuote quotes s for a POSIX shell: single quotes, each ' written '\”.
func shQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// psQuote quotes s as a PowerShell single-quoted string. PowerShell also
// takes the typographic single quotes ‘ ’ ‚ ‛ as quote characters, so those
// are doubled too.
func psQuote(s string) string {
	var b strings.Builder
	b.WriteByte('\'')
	for _, r := range s {
		switch r {
		case '\'', '\u2018', '\u2019', '\u201a', '\u201b':
			b.WriteRune(r)
		}
		b.WriteRune(r)
	}
	b.WriteByte('\'')
	return b.String()
}

// displayName keeps the box's name printable and on one line for the scripts'
// messages.
func displayName(s string) string {
	s = strings.Map(func(r rune) rune {
		if r < ' ' || r == 0x7f || (r >= 0x80 && r < 0xa0) || r == '\u2028' || r == '\u2029' {
			return ' '
		}
		return r
	}, strings.TrimSpace(s))
	if len([]rune(s)) > 64 {
		s = string([]rune(s)[:64])
	}
	if s == "" {
		s = "Redoubt"
	}
	return s
}

// ShellScript is the Linux/macOS enrollment script.
func shellScript(in scriptInput) string {
	var b strings.Builder
	b.WriteString("#!/bin/sh\n")
	fmt.Fprintf(&b, "# Joins this computer to a Redoubt box's team as a device of member %s.\n", in.Member)
	fmt.Fprintf(&b, "# The key in it works once, until %s.\n", in.Expires.UTC().Format("2006-01-02 15:04 UTC"))
	b.WriteString(`#
#   sh redoubt-join.sh                 shows what it will do, asks, then does it
#   sh redoubt-join.sh --yes           does it without asking (and opens no browser)
#   sh redoubt-join.sh --no-ca         leaves the system's certificates alone
#   sh redoubt-join.sh --hostname NAME names this device in the team
#
# TAILSCALE names the tailscale command and TAILSCALE_SOCKET tailscaled's socket,
# when they are not the usual ones.
`)
	for _, kv := range [][2]string{
		{"MEMBER", in.Member},
		{"BOX_NAME", displayName(in.BoxName)},
		{"LOGIN_SERVER", in.LoginServer},
		{"AUTH_KEY", in.Key},
		{"KEY_EXPIRES", in.Expires.UTC().Format("2006-01-02 15:04 UTC")},
		{"APPS_URL", in.AppsURL},
		{"CA_FILE_NAME", in.CAFile},
		{"CA_FINGERPRINT", in.CAPrint},
		{"CA_PEM", in.CAPEM},
	} {
		fmt.Fprintf(&b, "%s=%s\n", kv[0], shQuote(kv[1]))
	}
	b.WriteString(shellBody)
	return b.String()
}

const shellBody = `
set -eu
YES=0
NO_CA=0
DEVICE=''
usage() {
  echo 'Usage: sh redoubt-join.sh [--yes] [--no-ca] [--hostname NAME]'
  echo '  --yes            do it without asking, and without opening a browser'
  echo '  --no-ca          do not install the box'"'"'s certificate authority'
  echo '  --hostname NAME  this device'"'"'s name in the team (default: member-computer)'
}
while [ $# -gt 0 ]; do
  case $1 in
    -y|--yes) YES=1 ;;
    --no-ca) NO_CA=1 ;;
    --hostname) [ $# -ge 2 ] || { usage >&2; exit 2; }; DEVICE=$2; shift ;;
    --hostname=*) DEVICE=${1#--hostname=} ;;
    -h|--help) usage; exit 0 ;;
    *) printf 'unknown option: %s\n' "$1" >&2; usage >&2; exit 2 ;;
  esac
  shift
done

say() { printf '%s\n' "$*"; }
fail() { printf 'redoubt-join: %s\n' "$*" >&2; exit 1; }

# This device's name in the team: lowercase letters, digits and hyphens.
if [ -z "$DEVICE" ]; then
  DEVICE=$MEMBER-$(uname -n 2>/dev/null | cut -d. -f1)
fi
DEVICE=$(printf '%s' "$DEVICE" | tr 'A-Z' 'a-z' | tr -c 'a-z0-9-' '-' | cut -c1-63 | sed 's/^-*//; s/-*$//')
[ -n "$DEVICE" ] || DEVICE=$MEMBER

# The tailscale command.
TS=${TAILSCALE:-}
if [ -z "$TS" ]; then
  if command -v tailscale >/dev/null 2>&1; then
    TS=tailscale
  elif [ -x /Applications/Tailscale.app/Contents/MacOS/Tailscale ]; then
    TS=/Applications/Tailscale.app/Contents/MacOS/Tailscale
  else
    fail "Tailscale is not installed: install it (https://tailscale.com/download, or your system's packages), then run this again."
  fi
fi

OS=$(uname -s)
SUDO=''
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null 2>&1 || fail "this needs root: run it as root (there is no sudo here)"
  SUDO=sudo
fi

say "This will, on this computer:"
n=1
if [ "$NO_CA" -eq 0 ]; then
  say "  $n. Trust the certificate authority of the Redoubt box \"$BOX_NAME\", so its pages open"
  say "     without warnings (SHA-256 fingerprint $CA_FINGERPRINT)."
  n=$((n + 1))
fi
say "  $n. Connect Tailscale to the team's coordination server $LOGIN_SERVER as the device"
say "     \"$DEVICE\" of member \"$MEMBER\" (the key in this script works once, until $KEY_EXPIRES)."
n=$((n + 1))
if [ -n "$APPS_URL" ] && [ "$YES" -eq 0 ]; then
  say "  $n. Open the box's apps page, $APPS_URL"
fi
if [ "$YES" -eq 0 ]; then
  printf 'Continue? [y/N] '
  answer=''
  if [ -t 0 ]; then
    read -r answer || true
  elif (exec </dev/tty) 2>/dev/null; then
    read -r answer </dev/tty || true
  else
    say
    fail "there is nobody to ask: run it again with --yes to go ahead"
  fi
  case $answer in
    y|Y|yes|Yes|YES) ;;
    *) say "Nothing was changed."; exit 1 ;;
  esac
fi

tmp=''
cleanup() { [ -z "$tmp" ] || rm -f "$tmp"; }
trap cleanup EXIT
trap 'exit 130' INT TERM

if [ "$NO_CA" -eq 0 ]; then
  tmp=$(mktemp "${TMPDIR:-/tmp}/redoubt-ca.XXXXXX")
  printf '%s\n' "$CA_PEM" >"$tmp"
  case $OS in
    Darwin)
      $SUDO security add-trusted-cert -d -r trustRoot -k /Library/Keychains/System.keychain "$tmp"
      ;;
    Linux)
      if command -v update-ca-certificates >/dev/null 2>&1; then
        # Debian, Ubuntu and their kin.
        $SUDO mkdir -p /usr/local/share/ca-certificates
        $SUDO cp "$tmp" "/usr/local/share/ca-certificates/$CA_FILE_NAME.crt"
        $SUDO chmod 644 "/usr/local/share/ca-certificates/$CA_FILE_NAME.crt"
        $SUDO update-ca-certificates >/dev/null
      elif command -v update-ca-trust >/dev/null 2>&1; then
        # Fedora, RHEL and their kin.
        $SUDO cp "$tmp" "/etc/pki/ca-trust/source/anchors/$CA_FILE_NAME.pem"
        $SUDO chmod 644 "/etc/pki/ca-trust/source/anchors/$CA_FILE_NAME.pem"
        $SUDO update-ca-trust extract
      elif command -v trust >/dev/null 2>&1; then
        # Arch and others with p11-kit.
        $SUDO trust anchor --store "$tmp"
      else
        fail "this system has none of update-ca-certificates, update-ca-trust or trust: run again with --no-ca, and add the box's certificate to your browser by hand"
      fi
      ;;
    *)
      fail "this script knows Linux and macOS, not $OS: run again with --no-ca"
      ;;
  esac
  rm -f "$tmp"
  tmp=''
  say "The box's certificate authority is trusted. (Firefox, and Chromium on Linux, keep lists of"
  say "their own: if they still warn, import the certificate in their settings.)"
fi

# tailscale up, with the key in a private file rather than on the command line
# where other users of this computer could read it (Linux; the macOS app's
# command cannot read files elsewhere).
set -- "$TS"
if [ -n "${TAILSCALE_SOCKET:-}" ]; then
  set -- "$@" --socket="$TAILSCALE_SOCKET"
fi
TS_SUDO=$SUDO
KEY_ARG=--auth-key=$AUTH_KEY
case $OS in
  Darwin) TS_SUDO='' ;;
  Linux)
    tmp=$(mktemp "${TMPDIR:-/tmp}/redoubt-key.XXXXXX")
    printf '%s' "$AUTH_KEY" >"$tmp"
    KEY_ARG=--auth-key=file:$tmp
    ;;
esac
say "Connecting to $LOGIN_SERVER ..."
if ! $TS_SUDO "$@" up --login-server="$LOGIN_SERVER" "$KEY_ARG" --hostname="$DEVICE"; then
  say "Tailscale could not join the team. If this computer is in another tailnet already, log out"
  say "of it first (tailscale logout), then run this again; if the key expired or was used, ask the"
  say "box's owner for a new one."
  exit 1
fi
cleanup
tmp=''
say "Done: this computer is in the team as \"$DEVICE\"."

if [ -n "$APPS_URL" ]; then
  if [ "$YES" -eq 1 ]; then
    say "The box's apps: $APPS_URL"
  elif [ "$OS" = Darwin ] && command -v open >/dev/null 2>&1; then
    open "$APPS_URL" || say "Open $APPS_URL in your browser."
  elif { [ -n "${DISPLAY:-}" ] || [ -n "${WAYLAND_DISPLAY:-}" ]; } && command -v xdg-open >/dev/null 2>&1; then
    if [ "$(id -u)" -eq 0 ] && [ -n "${SUDO_USER:-}" ]; then
      sudo -u "$SUDO_USER" xdg-open "$APPS_URL" >/dev/null 2>&1 || say "Open $APPS_URL in your browser."
    else
      xdg-open "$APPS_URL" >/dev/null 2>&1 || say "Open $APPS_URL in your browser."
    fi
  else
    say "Open $APPS_URL in your browser."
  fi
fi
`

// powerShellScript is the Windows enrollment script.
func powerShellScript(in scriptInput) string {
	var b strings.Builder
	fmt.Fprintf(&b, "# Joins this computer to a Redoubt box's team as a device of member %s.\n", in.Member)
	fmt.Fprintf(&b, "# The key in it works once, until %s.\n", in.Expires.UTC().Format("2006-01-02 15:04 UTC"))
	b.WriteString(`#
# In PowerShell run as administrator:
#   powershell -ExecutionPolicy Bypass -File .\redoubt-join.ps1            shows what it will do, asks, does it
#   powershell -ExecutionPolicy Bypass -File .\redoubt-join.ps1 -Yes       does it without asking (no browser)
#   ... -NoCA leaves the certificate store alone; -Hostname NAME names this device in the team
#
# $env:TAILSCALE names tailscale.exe and $env:TAILSCALE_SOCKET tailscaled's socket, when they
# are not the usual ones.
[CmdletBinding()]
param(
  [switch]$Yes,
  [switch]$NoCA,
  [string]$Hostname = ''
)
$ErrorActionPreference = 'Stop'
`)
	for _, kv := range [][2]string{
		{"Member", in.Member},
		{"BoxName", displayName(in.BoxName)},
		{"LoginServer", in.LoginServer},
		{"AuthKey", in.Key},
		{"KeyExpires", in.Expires.UTC().Format("2006-01-02 15:04 UTC")},
		{"AppsUrl", in.AppsURL},
		{"CaFingerprint", in.CAPrint},
		{"CaPem", in.CAPEM},
	} {
		fmt.Fprintf(&b, "$%s = %s\n", kv[0], psQuote(kv[1]))
	}
	b.WriteString(powerShellBody)
	return b.String()
}

const powerShellBody = `
if (-not $Hostname) {
  $Hostname = $Member + '-' + $env:COMPUTERNAME
}
$Hostname = ($Hostname.ToLowerInvariant() -replace '[^a-z0-9-]', '-').Trim('-')
if ($Hostname.Length -gt 63) { $Hostname = $Hostname.Substring(0, 63).Trim('-') }
if (-not $Hostname) { $Hostname = $Member }

$Tailscale = $env:TAILSCALE
if (-not $Tailscale) { $Tailscale = Join-Path $env:ProgramFiles 'Tailscale\tailscale.exe' }
if (-not (Test-Path -LiteralPath $Tailscale)) {
  Write-Host 'Tailscale is not installed: install it (https://tailscale.com/download/windows), then run this again.'
  exit 1
}
$TsArgs = @()
if ($env:TAILSCALE_SOCKET) { $TsArgs += ('--socket=' + $env:TAILSCALE_SOCKET) }

Write-Host 'This will, on this computer:'
$n = 1
if (-not $NoCA) {
  Write-Host ('  ' + $n + '. Trust the certificate authority of the Redoubt box "' + $BoxName + '", so its pages open')
  Write-Host ('     without warnings (SHA-256 fingerprint ' + $CaFingerprint + ').')
  $n++
}
Write-Host ('  ' + $n + '. Connect Tailscale to the team''s coordination server ' + $LoginServer + ' as the device')
Write-Host ('     "' + $Hostname + '" of member "' + $Member + '" (the key in this script works once, until ' + $KeyExpires + ').')
$n++
if ($AppsUrl -and -not $Yes) {
  Write-Host ('  ' + $n + '. Open the box''s apps page, ' + $AppsUrl)
}
if (-not $Yes) {
  $answer = Read-Host 'Continue? [y/N]'
  if ($answer -notmatch '^(y|yes)$') {
    Write-Host 'Nothing was changed.'
    exit 1
  }
}

$identity = [Security.Principal.WindowsIdentity]::GetCurrent()
$principal = New-Object Security.Principal.WindowsPrincipal($identity)
if (-not $principal.IsInRole([Security.Principal.WindowsBuiltInRole]::Administrator)) {
  Write-Host 'This needs an administrator: open PowerShell with "Run as administrator" and run it again.'
  exit 1
}

if (-not $NoCA) {
  $tmp = Join-Path ([IO.Path]::GetTempPath()) ('redoubt-ca-' + [guid]::NewGuid().ToString() + '.crt')
  try {
    Set-Content -LiteralPath $tmp -Value $CaPem -Encoding Ascii
    Import-Certificate -FilePath $tmp -CertStoreLocation 'Cert:\LocalMachine\Root' | Out-Null
  } finally {
    Remove-Item -LiteralPath $tmp -ErrorAction SilentlyContinue
  }
  Write-Host 'The box''s certificate authority is trusted. (Firefox keeps a list of its own: if it still warns, import the certificate in its settings.)'
}

Write-Host ('Connecting to ' + $LoginServer + ' ...')
& $Tailscale @TsArgs up ('--login-server=' + $LoginServer) ('--auth-key=' + $AuthKey) ('--hostname=' + $Hostname)
if ($LASTEXITCODE -ne 0) {
  Write-Host 'Tailscale could not join the team. If this computer is in another tailnet already, log out of it first (tailscale logout), then run this again; if the key expired or was used, ask the box''s owner for a new one.'
  exit 1
}
Write-Host ('Done: this computer is in the team as "' + $Hostname + '".')

if ($AppsUrl) {
  if ($Yes) {
    Write-Host ('The box''s apps: ' + $AppsUrl)
  } else {
    Start-Process $AppsUrl
  }
}
`
