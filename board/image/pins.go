package image

// The boot loader of the PC image: Debian 12's systemd-boot-efi package
// (scripts/deps.sh installs it), pinned by the hash of systemd-bootx64.efi so
// that a different build is noticed rather than put on a disk. The kernels and
// the Pi firmware are pinned by go.mod and go.sum
// (github.com/gokrazy/kernel.amd64, kernel.rpi, firmware).
const (
	SystemdBootPath    = "/usr/lib/systemd/boot/efi/systemd-bootx64.efi"
	SystemdBootVersion = "252.39-1~deb12u2"
	SystemdBootSHA256  = "10288fece5e90ce3ba3e7160f49695b022d648f7ef41774678db8c77774db167"
)
