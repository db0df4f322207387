// Package initd is PID 1 of a Redoubt image: it mounts what the kernel does
// not (proc, sys, dev, run, the boot partition, the data partition, made and
// grown at the first start), takes the owner's files from the boot partition
// (board/headless), starts the daemon and restarts it if it stops, says on
// the console and the LEDs what the box is doing (board/status), runs an
// update's trial (board/update: health check, keep or go back), answers the
// console (status, setup code, factory reset), feeds the hardware watchdog,
// and restarts or powers off cleanly. cmd/redoubt runs it when it is PID 1;
// nothing else imports it.
package initd

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/redoubt/redoubt/board/bootloader"
	"github.com/redoubt/redoubt/board/datapart"
	"github.com/redoubt/redoubt/board/gadget"
	"github.com/redoubt/redoubt/board/headless"
	"github.com/redoubt/redoubt/board/health"
	"github.com/redoubt/redoubt/board/layout"
	"github.com/redoubt/redoubt/board/profile"
	"github.com/redoubt/redoubt/board/status"
	"github.com/redoubt/redoubt/board/update"
	"github.com/redoubt/redoubt/ui/localapi"
	"golang.org/x/sys/unix"
)

// Options are what init runs. The zero value is a real box.
type Options struct {
	// Daemon is the command line of the daemon (default: this program with
	// "serve --config /perm/redoubt.toml").
	Daemon []string
}

// requestFile says what the daemon asks for with SIGUSR1 (none: a restart into
// the staged update's trial).
const requestFile = "/run/redoubt/init-request"

// Main runs init; it returns only if the box could not even start, after
// which the kernel panics and restarts (panic=10).
func Main(opts Options) {
	con := openConsole()
	log := slog.New(slog.NewTextHandler(con, &slog.HandlerOptions{Level: slog.LevelInfo})).With("room", "init")
	in := &Init{opts: opts, con: con, log: log, leds: status.LEDs{}}
	err := in.run()
	fmt.Fprintf(con, "redoubt: init failed: %v\n", err)
	if in.bootedOnTrial() {
		// A trial that cannot start: the previous slot comes back.
		in.reboot(false, "going back to the previous version")
	}
	// Otherwise restarting would only fail again: stay up, say so, and keep
	// the console for a factory reset.
	in.show(status.Failing)
	go in.console()
	select {}
}

// bootedOnTrial says, from the boot partition alone, whether this boot is an
// update's trial: systemd-boot has spent the running slot's try, or the Pi's
// config.txt names the other slot.
func (in *Init) bootedOnTrial() bool {
	if in.load == nil || in.image.Slot == "" {
		return false
	}
	st, err := in.load.State()
	if err != nil {
		return false
	}
	return st.Failed == in.image.Slot || st.Default != in.image.Slot
}

// Init is the running init.
type Init struct {
	opts  Options
	con   io.Writer
	log   *slog.Logger
	leds  status.LEDs
	board layout.Board
	image update.Image
	disk  datapart.Disk
	load  bootloader.Loader
	store update.Store
	cfg   fileConfig

	once     sync.Once // the one restart or power-off
	mu       sync.Mutex
	daemon   *exec.Cmd
	stopping bool
	state    status.State
	trial    *update.Staged
}

// say prints a line for whoever watches the console.
func (in *Init) say(format string, args ...any) {
	fmt.Fprintf(in.con, "redoubt: "+format+"\n", args...)
}

func (in *Init) run() error {
	if err := mountEarly(); err != nil {
		return err
	}
	in.leds = status.FindLEDs("/sys/class/leds")
	in.show(status.Booting)
	cmdline, _ := os.ReadFile("/proc/cmdline")
	img, err := update.ReadImage("/", string(cmdline))
	if err != nil {
		return err
	}
	in.image, in.board = img, img.Board
	in.say("booting %s %s (slot %s)", img.Board, img.Version, img.Slot)
	if in.disk, err = datapart.Find("/"); err != nil {
		return err
	}
	if err := mountBoot(in.disk); err != nil {
		return err
	}
	in.load = bootloader.New(in.board, layout.BootMount)
	if err := in.factoryResetFromCard(); err != nil {
		in.say("factory reset from the card failed: %v", err)
	}
	if err := in.mountData(); err != nil {
		return err
	}
	in.store = update.NewStore(layout.StateDir)
	res, err := headless.Import(layout.BootMount, layout.Config, layout.StateDir)
	if err != nil {
		in.say("reading the boot partition's settings: %v", err)
	}
	if res.Config {
		in.say("took redoubt.toml from the boot partition")
	}
	for _, p := range res.Pending {
		in.say("took %s from the boot partition: it will be sealed into the vault at setup", p)
	}
	for _, p := range res.Problems {
		in.say("left on the boot partition: %s", p)
	}
	if _, err := os.Stat(layout.Config); errors.Is(err, os.ErrNotExist) {
		if err := os.WriteFile(layout.Config, []byte(profile.DefaultConfig(in.board)), 0o600); err != nil {
			return err
		}
	}
	if in.cfg, err = readConfig(layout.Config); err != nil {
		in.say("config: %v (the daemon will say more)", err)
		in.cfg.Update = in.cfg.Update.WithDefaults()
		in.cfg.API.Socket = "/run/redoubt/redoubt.sock"
	}
	boot, err := update.OnBoot(in.store, in.image, in.load, time.Now())
	if err != nil {
		in.say("reading the update state: %v", err)
	}
	if boot.RolledBack != nil {
		in.say("the update to %s did not pass its trial: back on %s (slot %s)", boot.RolledBack.Version, in.image.Version, in.image.Slot)
	}
	in.trial = boot.Trial
	if err := bringUpLoopback(); err != nil {
		in.say("loopback: %v", err)
	}
	if in.cfg.Board.Gadget != "" {
		if fn, err := gadget.Setup("/sys/kernel/config", "/sys/class/udc", gadget.Config{Function: gadget.Function(in.cfg.Board.Gadget), Serial: boardSerial()}); err != nil {
			in.say("USB gadget: %v", err)
		} else if name, err := gadget.Interface(fn); err == nil {
			in.say("USB gadget %s: the laptop's port is %s", in.cfg.Board.Gadget, name)
		}
	}
	if in.cfg.Board.WatchdogOn() {
		go in.watchdog()
	}
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, unix.SIGUSR1, unix.SIGUSR2, unix.SIGTERM, unix.SIGINT)
	go in.supervise()
	go in.console()
	go in.watchStatus()
	if in.trial != nil {
		go in.runTrial(*in.trial)
	}
	for s := range sigs {
		switch s {
		case unix.SIGUSR1: // the daemon asks: a trial restart, or a factory reset
			req, _ := os.ReadFile(requestFile)
			os.Remove(requestFile)
			if strings.TrimSpace(string(req)) == "factory-reset" {
				go in.factoryReset("the owner's pages")
				continue
			}
			in.reboot(true, "restarting into the update's trial")
		case unix.SIGUSR2:
			in.poweroff()
		default:
			in.reboot(false, "restarting")
		}
	}
	return nil
}

func (in *Init) show(s status.State) {
	in.mu.Lock()
	changed := in.state != s
	in.state = s
	in.mu.Unlock()
	if changed {
		in.say("state: %s", s)
		in.leds.Show(s)
		if s == status.WaitingSetup {
			in.sayCode()
		}
	}
}

// sayCode prints the setup code: whoever sees the console holds the box.
func (in *Init) sayCode() {
	b, err := os.ReadFile(filepath.Join(layout.BootMount, layout.SetupCodeFile))
	if err != nil {
		in.say("no setup code (setup is done, or the daemon has not written it yet)")
		return
	}
	code := strings.TrimSpace(string(b))
	if f := strings.Fields(strings.SplitN(code, "\n", 2)[0]); len(f) > 0 {
		code = f[len(f)-1] // "Redoubt setup code: XXXX"
	}
	in.say("setup code: %s (also in %s on the boot partition)", code, layout.SetupCodeFile)
}

// mountData mounts the data partition, making it at the first start: grown
// to the end of the disk, with a fresh ext4.
func (in *Init) mountData() error {
	part := in.disk.PartPath(layout.PartData)
	if err := os.MkdirAll(layout.DataMount, 0o755); err != nil && !errors.Is(err, unix.EROFS) {
		return err
	}
	if err := unix.Mount(part, layout.DataMount, "ext4", unix.MS_NOATIME|unix.MS_NODEV|unix.MS_NOSUID|unix.MS_NOEXEC, ""); err == nil {
		return os.MkdirAll(layout.StateDir, 0o700)
	} else if hasExt4(part) {
		// A file system is there but does not mount: never wipe it by ourselves.
		in.say("the data partition does not mount (%v): the box runs without its state; a factory reset starts over", err)
		return unix.Mount("tmpfs", layout.DataMount, "tmpfs", 0, "mode=0700,size=64m")
	}
	in.say("first start: making the data partition")
	start := time.Now()
	if grown, err := in.disk.Grow(); err != nil {
		in.say("could not grow the data partition: %v", err)
	} else if grown {
		in.say("the data partition now fills the disk")
	}
	if err := in.disk.MakeFS(); err != nil {
		return err
	}
	if err := unix.Mount(part, layout.DataMount, "ext4", unix.MS_NOATIME|unix.MS_NODEV|unix.MS_NOSUID|unix.MS_NOEXEC, ""); err != nil {
		return fmt.Errorf("mounting the new data partition: %w", err)
	}
	in.say("data partition ready in %.1fs", time.Since(start).Seconds())
	return os.MkdirAll(layout.StateDir, 0o700)
}

func hasExt4(dev string) bool {
	f, err := os.Open(dev)
	if err != nil {
		return false
	}
	defer f.Close()
	var m [2]byte
	if _, err := f.ReadAt(m[:], 1024+0x38); err != nil {
		return false
	}
	return m[0] == 0x53 && m[1] == 0xef
}

// supervise runs the daemon and starts it again when it stops, waiting
// longer each time it stops soon after starting.
func (in *Init) supervise() {
	backoff := time.Second
	for {
		in.mu.Lock()
		if in.stopping {
			in.mu.Unlock()
			return
		}
		args := in.opts.Daemon
		if len(args) == 0 {
			args = []string{layout.Binary, "serve", "--config", layout.Config}
		}
		cmd := exec.Command(args[0], args[1:]...)
		cmd.Stdout, cmd.Stderr = in.con, in.con
		cmd.Env = append(os.Environ(), "REDOUBT_STATE_DIR="+layout.StateDir, "PATH=/bin", "HOME=/perm")
		in.daemon = cmd
		in.mu.Unlock()
		start := time.Now()
		err := cmd.Start()
		if err == nil {
			err = cmd.Wait()
		}
		in.mu.Lock()
		stopping := in.stopping
		in.daemon = nil
		in.mu.Unlock()
		if stopping {
			return
		}
		in.say("the daemon stopped (%v); starting it again in %s", err, backoff)
		in.show(status.Failing)
		time.Sleep(backoff)
		if time.Since(start) > 5*time.Minute {
			backoff = time.Second
		} else {
			backoff = min(backoff*2, 30*time.Second)
		}
	}
}

// watchStatus follows the daemon's status for the console and the LEDs.
func (in *Init) watchStatus() {
	c := localapi.NewClient(in.cfg.API.Socket)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		st, err := c.Status(ctx)
		cancel()
		in.mu.Lock()
		onTrial := in.trial != nil
		in.mu.Unlock()
		switch {
		case err != nil:
			// Not up yet, or stopped: supervise says which.
		case onTrial:
			in.show(status.Trial)
		default:
			vpn := "not configured"
			if st.VPN != nil {
				vpn = st.VPN.State
			}
			in.show(status.Of(st.Owner.SetupDone, st.Owner.Locked, vpn))
		}
		time.Sleep(2 * time.Second)
	}
}

// runTrial judges the running update: the system within TrialSystem; then,
// if the box has a vault, the owner's unlock within TrialUnlock; then the
// team mesh's node within TrialMesh. It keeps the slot or goes back.
func (in *Init) runTrial(t update.Staged) {
	cfg := in.cfg.Update
	in.say("update %s on trial: the box keeps it once it is healthy", t.Version)
	start := time.Now()
	c := update.Client{Socket: in.cfg.API.Socket}
	var last health.Report
	var lastErr error
	probe := func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		defer cancel()
		last, lastErr = c.Health(ctx)
		return lastErr == nil
	}
	fail := func(why string) {
		in.say("update %s failed its trial: %s", t.Version, why)
		if err := update.Fail(in.store, in.image, time.Now(), why); err != nil {
			in.say("recording the failure: %v", err)
		}
		in.reboot(false, "going back to the previous version")
	}
	// 1. The system.
	for !(probe() && last.System) {
		if time.Since(start) > cfg.TrialSystem {
			why := "no answer from the daemon"
			if lastErr == nil {
				why = last.Failed()
			} else {
				why += ": " + lastErr.Error()
			}
			fail(fmt.Sprintf("not healthy within %s (%s)", cfg.TrialSystem, why))
			return
		}
		time.Sleep(2 * time.Second)
	}
	detail := fmt.Sprintf("system healthy after %.1fs", time.Since(start).Seconds())
	// 2. The owner's unlock, when there is a vault.
	if last.Vault == health.VaultLocked {
		in.say("update %s: unlock the box to keep it (within %s)", t.Version, cfg.TrialUnlock)
		for !(probe() && last.Vault == health.VaultUnlocked) {
			if time.Since(start) > cfg.TrialUnlock {
				fail(fmt.Sprintf("the box was not unlocked within %s", cfg.TrialUnlock))
				return
			}
			time.Sleep(2 * time.Second)
		}
		detail += fmt.Sprintf(", unlocked after %.1fs", time.Since(start).Seconds())
		// 3. The team mesh, when it is set up.
		unlocked := time.Now()
		for last.Mesh != health.MeshOff && last.Mesh != health.MeshUp {
			if time.Since(unlocked) > cfg.TrialMesh {
				fail(fmt.Sprintf("the team mesh did not reconnect within %s (%s)", cfg.TrialMesh, last.Detail))
				return
			}
			time.Sleep(2 * time.Second)
			probe()
		}
		if last.Mesh == health.MeshUp {
			detail += fmt.Sprintf(", team mesh up after %.1fs", time.Since(unlocked).Seconds())
		}
		if !last.System {
			fail("unhealthy after the unlock: " + last.Failed())
			return
		}
	}
	if err := update.Keep(in.store, in.image, in.load, time.Now(), detail); err != nil {
		fail("keeping it: " + err.Error())
		return
	}
	in.mu.Lock()
	in.trial = nil
	in.mu.Unlock()
	in.say("update %s kept (%s)", t.Version, detail)
}

// watchdog feeds the hardware watchdog while init runs; if init hangs, the
// board restarts.
func (in *Init) watchdog() {
	f, err := os.OpenFile("/dev/watchdog", os.O_WRONLY, 0)
	if err != nil {
		return // no watchdog on this board
	}
	in.say("hardware watchdog on")
	for {
		in.mu.Lock()
		stopping := in.stopping
		in.mu.Unlock()
		if stopping {
			f.Write([]byte("V")) // magic close: stop it for a clean restart
			f.Close()
			return
		}
		f.Write([]byte{0})
		time.Sleep(5 * time.Second)
	}
}

// console answers commands typed on the consoles: physical access to the box.
func (in *Init) console() {
	for _, f := range openConsoles(os.O_RDONLY) {
		go in.commands(f)
	}
}

func (in *Init) commands(f *os.File) {
	sc := bufio.NewScanner(f)
	confirm := false
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if confirm {
			confirm = false
			if line == "erase everything" {
				in.factoryReset("the console")
				continue
			}
			in.say("factory reset cancelled")
			continue
		}
		switch line {
		case "":
		case "help":
			in.say("commands: status, setup-code, factory-reset, reboot, poweroff")
		case "status":
			in.mu.Lock()
			s, d := in.state, in.daemon
			in.mu.Unlock()
			in.say("%s %s slot %s: %s", in.board, in.image.Version, in.image.Slot, s)
			daemonRSS := int64(0)
			if d != nil && d.Process != nil {
				daemonRSS = rss(fmt.Sprintf("/proc/%d/status", d.Process.Pid))
			}
			in.say("memory: init %d KiB, daemon %d KiB resident; %d KiB available", rss("/proc/self/status"), daemonRSS, memAvailable())
		case "setup-code":
			in.sayCode()
		case "factory-reset":
			in.say("factory reset: everything on the box is erased for good (the vault's keys first). Type 'erase everything' to go on.")
			confirm = true
		case "reboot":
			in.reboot(false, "restarting (console)")
		case "poweroff":
			in.poweroff()
		default:
			in.say("unknown command %q (help lists them)", line)
		}
	}
}

// rss reads VmRSS (KiB) from a /proc status file.
func rss(path string) int64 { return procField(path, "VmRSS:") }

// memAvailable reads MemAvailable (KiB).
func memAvailable() int64 { return procField("/proc/meminfo", "MemAvailable:") }

func procField(path, field string) int64 {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, field); ok {
			var n int64
			fmt.Sscan(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), &n)
			return n
		}
	}
	return 0
}

// boardSerial is the board's serial number (a Pi's, else the machine id).
func boardSerial() string {
	for _, p := range []string{"/sys/firmware/devicetree/base/serial-number", "/sys/class/dmi/id/product_uuid"} {
		if b, err := os.ReadFile(p); err == nil {
			if s := strings.Trim(strings.TrimSpace(string(b)), "\x00"); s != "" {
				return s
			}
		}
	}
	return "redoubt"
}

// stopDaemon asks the daemon to stop and waits up to 20 s.
func (in *Init) stopDaemon() {
	in.mu.Lock()
	in.stopping = true
	cmd := in.daemon
	in.mu.Unlock()
	if cmd == nil || cmd.Process == nil {
		return
	}
	cmd.Process.Signal(unix.SIGTERM)
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		in.mu.Lock()
		gone := in.daemon == nil
		in.mu.Unlock()
		if gone {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	cmd.Process.Kill()
}

// restart restarts cleanly into the default slot.
func (in *Init) restart(why string) { in.reboot(false, why) }

// reboot stops everything cleanly and restarts; trial restarts into the
// staged slot (a Pi's firmware needs to be told).
func (in *Init) reboot(trial bool, why string) {
	in.once.Do(func() {
		in.say("%s", why)
		in.stopDaemon()
		unmountAll()
		arg := ""
		if trial && in.load != nil {
			arg = in.load.RebootArg()
		}
		if arg != "" {
			rebootWithArg(arg)
		}
		unix.Reboot(unix.LINUX_REBOOT_CMD_RESTART)
	})
	select {}
}

func (in *Init) poweroff() {
	in.once.Do(func() {
		in.say("powering off")
		in.stopDaemon()
		unmountAll()
		unix.Reboot(unix.LINUX_REBOOT_CMD_POWER_OFF)
	})
	select {}
}

// openConsoles opens where init speaks and listens: the kernel's console
// (the last console= on the command line, a serial port) and the screen's
// (tty0), once each when they are the same device.
func openConsoles(flag int) []*os.File {
	var out []*os.File
	seen := map[uint64]bool{}
	for _, p := range [...]string{"/dev/console", "/dev/tty0"} {
		f, err := os.OpenFile(p, flag|unix.O_NOCTTY, 0)
		if err != nil {
			continue
		}
		var st unix.Stat_t
		if unix.Fstat(int(f.Fd()), &st) == nil && seen[st.Rdev] {
			f.Close()
			continue
		}
		seen[st.Rdev] = true
		out = append(out, f)
	}
	return out
}

func openConsole() io.Writer {
	fs := openConsoles(os.O_WRONLY)
	if len(fs) == 0 {
		return os.Stderr
	}
	ws := make(bestEffort, len(fs))
	for i, f := range fs {
		ws[i] = f
	}
	return ws
}

// bestEffort writes to every console; one that fails does not stop the others.
type bestEffort []io.Writer

func (b bestEffort) Write(p []byte) (int, error) {
	for _, w := range b {
		w.Write(p)
	}
	return len(p), nil
}
