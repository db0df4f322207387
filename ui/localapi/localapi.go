// Package localapi is the box's local admin API: HTTP with JSON over a Unix socket
// that only root may open, used by the `redoubt` commands on the box and by tests.
// The daemon serves it; cmd/redoubt uses its Client.
package localapi

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"golang.org/x/sys/unix"

	"github.com/redoubt/redoubt/apps"
	"github.com/redoubt/redoubt/audit/auditlog"
	"github.com/redoubt/redoubt/backup"
	"github.com/redoubt/redoubt/clock"
	"github.com/redoubt/redoubt/datapath/lan"
	"github.com/redoubt/redoubt/datapath/leaklog"
	"github.com/redoubt/redoubt/datapath/link"
	"github.com/redoubt/redoubt/dhcp"
	"github.com/redoubt/redoubt/dns/querylog"
	"github.com/redoubt/redoubt/vpn/external"
)

// Status is the box at a glance.
type Status struct {
	Version string     `json:"version"`
	Started time.Time  `json:"started"`
	Owner   OwnerState `json:"owner"`
	LAN     LANStatus  `json:"lan"`
	DNS     DNSStatus  `json:"dns"`
	DHCP    dhcp.Stats `json:"dhcp"`
	// VPN is the external VPN's health.
	VPN *external.Status `json:"vpn,omitempty"`
	// Mesh is the team mesh's.
	Mesh *MeshStatus `json:"mesh,omitempty"`
	// Apps are the apps, each with its state and where it is published.
	Apps []apps.Status `json:"apps,omitempty"`
	// Clock is the box's time: synced through the VPN, or why not yet.
	Clock *clock.Status `json:"clock,omitempty"`
	// Audit is the tamper-evident log: its size, the latest signed
	// checkpoint, witnesses, forks seen.
	Audit *auditlog.Status `json:"audit,omitempty"`
	// Backup is the backups: targets, last runs, the next, the drill.
	Backup *backup.Status `json:"backup,omitempty"`
}

// MeshStatus describes the team mesh: the owner's Headscale as the box last
// found it, and the box's own node in the tailnet. It holds no secret.
type MeshStatus struct {
	// Configured is false until the owner gives Headscale's address and an
	// API key.
	Configured  bool   `json:"configured"`
	LoginServer string `json:"login_server,omitempty"`
	// Headscale is "reachable", "unreachable", "key rejected" or "not
	// configured"; HeadscaleDetail says what the box last found.
	Headscale       string    `json:"headscale"`
	HeadscaleDetail string    `json:"headscale_detail,omitempty"`
	NextTry         time.Time `json:"next_try,omitzero"`
	// Node is the box's node: "up", "connecting", "down" or "off" (locked,
	// not set up); Name and Addrs are its name and addresses in the tailnet.
	Node       string   `json:"node"`
	NodeDetail string   `json:"node_detail,omitempty"`
	Name       string   `json:"name,omitempty"`
	Addrs      []string `json:"addrs,omitempty"`
	Peers      int      `json:"peers"`
	// Strict: every tailnet packet goes over DERP inside the VPN.
	Strict bool `json:"strict"`
}

// DNSStatus describes the resolver.
type DNSStatus struct {
	Domain string `json:"domain"`
	Names  int    `json:"names"` // names the box answers for
	// Queries answered in all; Stopped, those for names that are not the
	// box's (answered NXDOMAIN, sent nowhere).
	Queries uint64 `json:"queries"`
	Stopped uint64 `json:"stopped"`
	// Dropped: datagrams shed from a client flooding a saturated server;
	// Malformed: datagrams and messages that could not be queries;
	// TCPRefused: connections beyond the limits, closed at once.
	Dropped    uint64 `json:"dropped"`
	Malformed  uint64 `json:"malformed"`
	TCPRefused uint64 `json:"tcp_refused"`
}

// LANStatus describes the LAN port.
type LANStatus struct {
	Interface string   `json:"interface"`
	Address   string   `json:"address"`
	MAC       string   `json:"mac"`
	Services  []string `json:"services"`
	Reveal    bool     `json:"reveal"`
	Dropped   uint64   `json:"dropped"`
	// Link counts frames on the wire; UDP, the datagrams of the UDP services
	// served without the netstack (DNS); StackDropped, packets the filter let
	// in that the netstack then refused (bad checksum, no listener).
	Link          link.Stats   `json:"link"`
	UDP           lan.UDPStats `json:"udp"`
	StackDropped  uint64       `json:"stack_dropped"`
	StackCounters []string     `json:"stack_counters,omitempty"`
}

// Leaks is the leak log: totals and the aggregated entries.
type Leaks struct {
	Counters leaklog.Counters `json:"counters"`
	Entries  []leaklog.Entry  `json:"entries"`
}

// Queries is the DNS query log: totals and the aggregated entries.
type Queries struct {
	Counters querylog.Counters `json:"counters"`
	Entries  []querylog.Entry  `json:"entries"`
}

// Deps are what the API reports on.
type Deps struct {
	Status  func() Status
	Leaks   *leaklog.Log
	Queries *querylog.Log
	Devices func() Devices
	// Owner locks, unlocks and reports on what the box keeps for its owner.
	Owner Owner
	// VPN reports on and configures the external VPN (GET/PUT/DELETE /v1/vpn).
	VPN VPN
	// Team manages the team's members and mesh (/v1/team…); Settings, the
	// owner's settings (/v1/settings). Nil: not served.
	Team     TeamAPI
	Settings SettingsAPI
	// Apps lists, starts, stops and configures the apps (/v1/apps).
	Apps Apps
	// Board serves /v1/board/ (updates, the health check) on a box started
	// from a Redoubt image; nil elsewhere.
	Board http.Handler
	// Audit serves the audit log's API (auditlog.Handler) under /v1/audit/.
	Audit http.Handler
	// Backup serves the backups' API (backup.Engine.Handler) under
	// /v1/backup/; Restore a whole restore onto a fresh box (POST
	// /v1/restore).
	Backup  http.Handler
	Restore http.Handler
	Logger  *slog.Logger
}

// Devices are the LAN's devices as the DHCP server knows them: every lease
// record (bound, expired, declined) and the server's counters.
type Devices struct {
	Leases   []dhcp.Lease `json:"leases"`
	Counters dhcp.Stats   `json:"counters"`
}

// Handler returns the API's HTTP handler.
func Handler(d Deps) http.Handler {
	mux := http.NewServeMux()
	if d.Board != nil {
		mux.Handle("/v1/board/", d.Board)
	}
	mux.HandleFunc("GET /v1/status", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, d.Status())
	})
	mux.HandleFunc("GET /v1/leaks", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, Leaks{Counters: d.Leaks.Counters(), Entries: d.Leaks.Entries()})
	})
	mux.HandleFunc("GET /v1/leaks/follow", func(w http.ResponseWriter, r *http.Request) {
		follow(w, r, d.Leaks.Subscribe)
	})
	mux.HandleFunc("GET /v1/devices", func(w http.ResponseWriter, r *http.Request) {
		if d.Devices == nil {
			http.Error(w, "no DHCP server", http.StatusNotFound)
			return
		}
		writeJSON(w, d.Devices())
	})
	mux.HandleFunc("GET /v1/queries", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, Queries{Counters: d.Queries.Counters(), Entries: d.Queries.Entries()})
	})
	mux.HandleFunc("GET /v1/queries/follow", func(w http.ResponseWriter, r *http.Request) {
		follow(w, r, d.Queries.Subscribe)
	})
	if d.Owner != nil {
		ownerRoutes(mux, d.Owner)
	}
	vpnRoutes(mux, d.VPN)
	teamRoutes(mux, d.Team)
	settingsRoutes(mux, d.Settings)
	appsRoutes(mux, d.Apps)
	if d.Audit != nil {
		mux.Handle("/v1/audit/", http.StripPrefix("/v1/audit", d.Audit))
	}
	if d.Backup != nil {
		mux.Handle("/v1/backup/", http.StripPrefix("/v1/backup", d.Backup))
	}
	if d.Restore != nil {
		mux.Handle("POST /v1/restore", d.Restore)
	}
	mux.HandleFunc("GET /v1/leaks.pcap", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/vnd.tcpdump.pcap")
		w.Header().Set("Content-Disposition", `attachment; filename="redoubt-drops.pcap"`)
		if err := d.Leaks.WritePcap(w); err != nil {
			d.Logger.Warn("writing pcap", "err", err)
		}
	})
	return mux
}

// follow streams entries (of the leak log, the query log) as they change, one JSON
// object per line.
func follow[E any](w http.ResponseWriter, r *http.Request, subscribe func(buf int) (<-chan E, func())) {
	fl, ok := w.(http.Flusher)
	if !ok {
		http.Error(w, "streaming unsupported", http.StatusInternalServerError)
		return
	}
	ch, cancel := subscribe(256)
	defer cancel()
	w.Header().Set("Content-Type", "application/x-ndjson")
	w.WriteHeader(http.StatusOK)
	fl.Flush()
	enc := json.NewEncoder(w)
	for {
		select {
		case <-r.Context().Done():
			return
		case e, ok := <-ch:
			if !ok {
				return
			}
			if enc.Encode(e) != nil {
				return
			}
			fl.Flush()
		}
	}
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

// Listen opens the API's Unix socket at path, readable and writable by root only,
// replacing a stale socket left by a previous run.
func Listen(path string) (net.Listener, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o750); err != nil {
		return nil, fmt.Errorf("making API socket directory: %w", err)
	}
	if fi, err := os.Lstat(path); err == nil {
		if fi.Mode()&os.ModeSocket == 0 {
			return nil, fmt.Errorf("api.socket %s exists and is not a socket: refusing to replace it", path)
		}
		if c, err := net.Dial("unix", path); err == nil {
			c.Close()
			return nil, fmt.Errorf("api.socket %s: another redoubt daemon is serving it", path)
		}
		os.Remove(path)
	}
	old := unix.Umask(0o077)
	ln, err := net.Listen("unix", path)
	unix.Umask(old)
	if err != nil {
		return nil, fmt.Errorf("listening on API socket: %w", err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		ln.Close()
		return nil, fmt.Errorf("restricting API socket: %w", err)
	}
	return &rootOnly{ln.(*net.UnixListener)}, nil
}

// rootOnly refuses connections from any user but root, whatever the socket's
// file permissions say.
type rootOnly struct{ *net.UnixListener }

func (l *rootOnly) Accept() (net.Conn, error) {
	for {
		c, err := l.AcceptUnix()
		if err != nil {
			return nil, err
		}
		if uid, err := peerUID(c); err == nil && uid == 0 {
			return c, nil
		}
		c.Close()
	}
}

func peerUID(c *net.UnixConn) (uint32, error) {
	raw, err := c.SyscallConn()
	if err != nil {
		return 0, err
	}
	var cred *unix.Ucred
	var cerr error
	err = raw.Control(func(fd uintptr) {
		cred, cerr = unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED)
	})
	if err != nil {
		return 0, err
	}
	if cerr != nil {
		return 0, cerr
	}
	return cred.Uid, nil
}

// ErrNoDaemon means nothing answers on the API socket.
var ErrNoDaemon = errors.New("the redoubt daemon is not running (nothing answers on its API socket)")
