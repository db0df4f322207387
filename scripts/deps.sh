#!/usr/bin/env bash
# Installs what building, testing and demonstrating Redoubt needs on a Debian machine.
# Idempotent: a second run installs nothing and takes a second or two.
#
#   scripts/deps.sh          Debian packages (as root, or through sudo), Go modules, and the
#                            lab's Headscale and tailscaled (scripts/tools.sh)
#
# The lab's peer programs (dhclient, udhcpc, dig, curl, nft, wireguard-go, tcpdump, …) are
# real Debian packages; nothing is mocked.
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(
  # building
  ca-certificates git make
  # the lab: namespaces, veth, NAT, captures
  iproute2 nftables tcpdump iputils-ping procps
  # the laptop's programs
  isc-dhcp-client busybox dnsutils curl ncat
  # the lab's VPN provider (wireguard-go, wg) and the home router's DHCP server (dnsmasq)
  wireguard-go wireguard-tools dnsmasq-base
  # the laptop's browser (lab/browser): headless Chromium, certutil for trusting the box's CA
  chromium libnss3-tools
  # the sandbox external apps run in (apps/host)
  bubblewrap
  # benchmarks: the same job done by the usual tools, side by side
  kea-admin dnsperf dnsmasq-base
  # backups: an independent Shamir implementation to check ours against
  # (gfsplit/gfcombine), restic for the backup benchmark, zbarimg to read the
  # shares' QR codes back
  libgfshare-bin restic zbar-tools
  # the board: the PC image's boot loader (make image), and the image booted in
  # a VM with UEFI firmware (integration/board)
  systemd-boot-efi qemu-system-x86 ovmf
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done

if ((${#missing[@]})); then
  sudo=""
  if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null || { echo "deps: need root (or sudo) to install: ${missing[*]}" >&2; exit 1; }
    sudo="sudo"
  fi
  echo "deps: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get update -q </dev/null >/dev/null
  $sudo apt-get install -y -q --no-install-recommends "${missing[@]}" </dev/null >/dev/null
fi

command -v go >/dev/null || { echo "deps: Go 1.26 is needed (https://go.dev/dl/); put it on PATH" >&2; exit 1; }
go mod download
# The lab's coordination server and team member: Headscale and tailscaled/tailscale
# at pinned versions, built once from the Go module proxy into a cache (a few
# minutes the first time; nothing afterwards).
scripts/tools.sh >/dev/null
