package daemon

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"time"

	"github.com/miekg/dns"
	"golang.org/x/sys/unix"

	"github.com/redoubt/redoubt/audit"
	"github.com/redoubt/redoubt/board/bootloader"
	"github.com/redoubt/redoubt/board/datapart"
	"github.com/redoubt/redoubt/board/headless"
	"github.com/redoubt/redoubt/board/health"
	"github.com/redoubt/redoubt/board/layout"
	"github.com/redoubt/redoubt/board/update"
	"github.com/redoubt/redoubt/ui"
	"github.com/redoubt/redoubt/vpn/egress"
	"github.com/redoubt/redoubt/vpn/mesh"
)

// onBoard says whether the daemon runs on a box started from a Redoubt image
// (its init is PID 1 and the image's identity is in the root).
func onBoard() bool {
	_, err := os.Stat(layout.ImageInfo)
	return err == nil && os.Getppid() == 1
}

// startBoard builds the updater on a box started from an image.
func (b *Box) startBoard(cfg Config) error {
	if !onBoard() {
		return nil
	}
	cmdline, _ := os.ReadFile("/proc/cmdline")
	img, err := update.ReadImage("/", string(cmdline))
	if err != nil {
		return err
	}
	v, err := update.ReadVerifier("/")
	if err != nil {
		return err
	}
	disk, err := datapart.Find("/")
	if err != nil {
		return err
	}
	b.updater = update.New(cfg.Update, update.Deps{
		Running:  img,
		Verifier: v,
		Disk:     disk,
		Loader:   bootloader.New(img.Board, layout.BootMount),
		Store:    update.NewStore(cfg.State.Dir),
		Fetch: func() *http.Client {
			if b.vpn == nil {
				return nil
			}
			return egress.HTTPClient(b.egress(), 5*time.Minute)
		},
		Audit: func(action, subject, detail string) {
			b.log.Info("audit", "kind", "update", "action", action, "subject", subject, "detail", detail)
			b.record(audit.Event{Kind: audit.KindUpdate, Action: trimAction(action), Actor: audit.ActorBox, Subject: subject, Detail: detail})
		},
		// Init restarts the box into the trial on SIGUSR1.
		Restart: func() error { return unix.Kill(1, unix.SIGUSR1) },
		Logger:  b.log.With("room", "update"),
	})
	b.updater.FlushAudit()
	// The files the owner left on the boot partition are sealed into the
	// vault at each unlock until they are taken.
	b.life.Register("board", boardRoom{b})
	b.log.Info("board", "board", img.Board, "version", img.Version, "slot", img.Slot)
	return nil
}

// boardAPI is the local API's /v1/board/: the health check everywhere, and
// updates on a box started from an image.
func (b *Box) boardAPI(cfg Config) http.Handler {
	return update.API{Updater: b.updater, Health: b.healthChecker()}.Handler()
}

// uiUpdates is the updater as the owner's pages see it (nil when there is none).
func (b *Box) uiUpdates() ui.Updates {
	if b.updater == nil {
		return nil
	}
	return b.updater
}

// healthChecker is what a trial boot is judged by.
func (b *Box) healthChecker() *health.Checker {
	return &health.Checker{
		Probes: []health.Probe{
			{Name: "lan", Check: func(ctx context.Context) error {
				l := b.lan.Load()
				if l == nil {
					return errors.New("the LAN port is not open")
				}
				have := map[string]bool{}
				for _, s := range l.Services() {
					have[fmt.Sprintf("%s/%d", s.Proto, s.Port)] = true
				}
				for _, want := range []string{"udp/53", "tcp/53", "udp/67", "tcp/80"} {
					if !have[want] {
						return fmt.Errorf("%s is not listening on the LAN port (listening: %v)", want, l.Services())
					}
				}
				return nil
			}},
			{Name: "ui", Check: func(ctx context.Context) error {
				b.moveMu.Lock()
				web := b.web
				b.moveMu.Unlock()
				if web == nil {
					return errors.New("the owner's pages are not served")
				}
				req := httptest.NewRequestWithContext(ctx, http.MethodGet, "http://"+b.lan.Load().Addr().String()+"/", nil)
				rec := httptest.NewRecorder()
				web.Handler.ServeHTTP(rec, req)
				if rec.Code >= 500 {
					return fmt.Errorf("the owner's pages answered %d", rec.Code)
				}
				return nil
			}},
			{Name: "dns", Check: func(ctx context.Context) error {
				srv := b.dns.Load()
				if srv == nil {
					return errors.New("the resolver is not running")
				}
				name := b.dnsConfig(b.config()).Name + "." + b.config().DNS.Domain + "."
				q := new(dns.Msg)
				q.SetQuestion(name, dns.TypeA)
				r, err := srv.Exchange(ctx, q)
				if err != nil {
					return err
				}
				if r.Rcode != dns.RcodeSuccess || len(r.Answer) == 0 {
					return fmt.Errorf("%s: %s with %d answers", name, dns.RcodeToString[r.Rcode], len(r.Answer))
				}
				return nil
			}},
			{Name: "vault", Check: func(ctx context.Context) error {
				if b.vault == nil {
					return errors.New("the vault is not open")
				}
				// After setup the vault's header must read: a version that
				// cannot read it could never unlock the box.
				if b.setup.Done() && !b.vault.Initialized() {
					return errors.New("setup is done but the vault's header does not read (damaged, or a format this version does not know)")
				}
				return nil
			}},
		},
		Vault: func() string {
			switch {
			case b.vault == nil || !b.vault.Initialized():
				return health.VaultNone
			case b.vault.Locked():
				return health.VaultLocked
			}
			return health.VaultUnlocked
		},
		Mesh: func() (string, string) {
			st, detail := b.meshState()
			switch st {
			case "up":
				return health.MeshUp, detail
			case "off", "not configured":
				return health.MeshOff, detail
			}
			return health.MeshDown, detail
		},
	}
}

// boardRoom is the board's part of the lock and unlock.
type boardRoom struct{ b *Box }

// Unlocked implements vault.Sealed: the boot partition's secrets go into the
// vault, in the background.
func (r boardRoom) Unlocked() { go r.b.sealHeadless() }

// Locked implements vault.Sealed: sealHeadless stops trying by itself once the
// vault is locked.
func (r boardRoom) Locked() {}

// sealHeadless puts the VPN config and Headscale details the owner left on
// the boot partition into the vault, once it is open, and deletes them.
func (b *Box) sealHeadless() {
	if !b.sealing.CompareAndSwap(false, true) {
		return // an earlier unlock's is still trying
	}
	defer b.sealing.Store(false)
	dir := b.config().State.Dir
	if raw, ok, err := headless.Pending(dir, layout.HeadlessVPN); err != nil {
		b.log.Warn("reading the boot partition's VPN config", "err", err)
	} else if ok && b.vpn != nil {
		if _, err := b.vpn.Set(raw); err != nil {
			b.log.Warn("the boot partition's VPN config was refused", "err", err)
		} else {
			headless.Done(dir, layout.HeadlessVPN)
			b.log.Info("sealed the boot partition's VPN config into the vault")
		}
	}
	raw, ok, err := headless.Pending(dir, layout.HeadlessHeadscale)
	if err != nil || !ok {
		return
	}
	h, err := headless.ParseHeadscale(raw)
	if err != nil {
		b.log.Warn("the boot partition's headscale.toml", "err", err)
		return
	}
	// Headscale is reached through the VPN, which may take a moment.
	for i := 0; i < 10; i++ {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		err = errors.New("the box has no team mesh")
		if b.mesh != nil {
			err = b.mesh.Configure(ctx, mesh.Settings{LoginServer: h.URL, APIKey: h.APIKey})
		}
		cancel()
		if err == nil {
			headless.Done(dir, layout.HeadlessHeadscale)
			b.log.Info("sealed the boot partition's Headscale details into the vault", "url", h.URL)
			return
		}
		if b.vault.Locked() {
			return
		}
		time.Sleep(time.Duration(i+1) * 10 * time.Second)
	}
	b.log.Warn("the boot partition's Headscale details did not work; they wait for the next unlock", "err", err)
}

// boardFactoryReset asks init to wipe the data partition and restart, after
// the daemon's own reset.
func (b *Box) boardFactoryReset() error {
	if b.updater == nil {
		return nil
	}
	if err := os.WriteFile("/run/redoubt/init-request", []byte("factory-reset\n"), 0o600); err != nil {
		return err
	}
	return unix.Kill(1, unix.SIGUSR1)
}
