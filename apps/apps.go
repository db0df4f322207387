// Package apps is the contract between the box and the apps it hosts for the
// team (files, chat, documents, calls, and programs added later): what an app
// declares about itself (its Manifest), what it is given when it runs (an Env),
// and who is calling it (CallerFrom). It holds types and parsing only; it runs
// nothing.
//
// The host (apps/host) runs apps: it owns their listeners on the LAN netstack,
// the tailnet node and the box itself, gives each app its own web origin with
// HTTPS from the box's CA, puts the caller in every request's context, and
// starts and stops apps with the box's lock and the owner's choices. An app is
// built in (a Go package under apps/, listed in apps/builtin, its manifest
// embedded) or external (a program with its own files, run isolated by the
// host); both are described by the same manifest format (ParseManifest).
//
// Any app package imports this one; it imports nothing of the box but the
// egress dialer's interface. See README.md for how to write an app.
package apps

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"time"

	"github.com/redoubt/redoubt/vpn/egress"
)

// App is a built-in app: a Go package compiled into the box.
type App interface {
	// Manifest describes the app. Built-in apps embed their manifest.toml
	// and return MustParseManifest's result.
	Manifest() Manifest
	// Start runs the app and returns the handler of its web origin. ctx ends
	// when the app must stop: the box is locked, the owner disables the app
	// or changes an option that is not live, or the box stops. What the app
	// started must end with ctx; the host waits a few seconds for its
	// requests to finish, then closes their connections. An app whose
	// manifest has no web listener returns a nil handler.
	Start(ctx context.Context, env Env) (http.Handler, error)
}

// Env is what the host gives a running app. Every method is safe for
// concurrent use. Values stay valid until the app's context ends; after it,
// storage fails with ErrLocked or ErrStopped.
type Env interface {
	// Manifest is the app's manifest.
	Manifest() Manifest
	// Logger is the app's logger (room "apps", app <id>).
	Logger() *slog.Logger
	// Options are the owner's values for the app's options, now. Options
	// marked live change while the app runs (see WatchOptions); a change to
	// any other option restarts the app.
	Options() Options
	// WatchOptions calls fn with the new values whenever the owner changes a
	// live option, until the app stops or cancel is called.
	WatchOptions(fn func(Options)) (cancel func())

	// Records is the app's sealed key-value store.
	Records() Records
	// Blobs is the app's encrypted store for large data.
	Blobs() Blobs

	// Members lists the team's members and their devices (for sharing UIs).
	Members() []Member
	// OnMemberRemoved calls fn when the owner removes a member, after the
	// host has closed the member's connections to the app. The app ends
	// anything else it holds for them (queued messages, call legs).
	OnMemberRemoved(fn func(Member)) (cancel func())

	// Origins are the app's web origins now, one per network it is
	// published on ("https://files.kestrel.home.arpa",
	// "https://kestrel.team.example:8443"). They change when the box is
	// renamed or its node's name changes; ask again rather than keep them.
	Origins() []Origin
	// Listen returns a TCP listener the manifest declares (other than "web")
	// on network; it carries on across the LAN moving and the node
	// restarting. ErrNotPublished if the app is not published there.
	Listen(listener string, network Network) (net.Listener, error)
	// ListenPacket returns a UDP socket the manifest declares, on network,
	// likewise carrying on across moves and restarts; its LocalAddr is the
	// current address.
	ListenPacket(listener string, network Network) (net.PacketConn, error)
	// Egress is the app's way out to the hosts its manifest declares under
	// egress, through the box's VPN, when the owner allows it (the
	// allow-egress option); it refuses everything else.
	Egress() egress.Dialer
}

// Network is where a caller reaches an app.
type Network string

// The networks an app may be published on (its manifest's exposure).
const (
	// LAN is the owner's LAN port: the owner's laptop.
	LAN Network = "lan"
	// Tailnet is the team's mesh: members' devices.
	Tailnet Network = "tailnet"
	// Box is the box itself: a Unix socket for its console
	// (/run/redoubt/apps/<id>.sock), the owner's only.
	Box Network = "box"
)

// Origin is one of an app's web origins.
type Origin struct {
	Network Network `json:"network"`
	// URL is the origin, "https://host[:port]", without a path.
	URL string `json:"url"`
}

// Member is a member of the team.
type Member struct {
	// ID is the member's stable identifier on this box: it survives a
	// rename and is never given to another member. Key what the app keeps
	// for a member by it.
	ID      string   `json:"id"`
	Name    string   `json:"name"`
	Devices []Device `json:"devices,omitempty"`
}

// Device is one of a member's devices in the tailnet.
type Device struct {
	Name   string       `json:"name"` // its name in the tailnet (MagicDNS label)
	Addrs  []netip.Addr `json:"addrs,omitempty"`
	OS     string       `json:"os,omitempty"`
	Online bool         `json:"online"`
}

// Caller is who sent a request.
type Caller struct {
	// Owner is true for the box's owner: on the LAN, a browser the owner
	// opened the app in from the box's pages, or a native client with an
	// app password the owner made; on the box, its console.
	Owner bool `json:"owner,omitempty"`
	// Member is the team member on the tailnet (zero for the owner).
	Member Member `json:"member,omitzero"`
	// Device is the tailnet device's name, or the app password's label.
	Device string `json:"device,omitempty"`
	// Network is where the request came from.
	Network Network `json:"network"`
	// Addr is the sending address.
	Addr netip.AddrPort `json:"addr,omitzero"`
}

// ID is a stable key for what the app keeps for the caller: "owner", or
// "member:" and the member's ID.
func (c Caller) ID() string {
	if c.Owner {
		return "owner"
	}
	return "member:" + c.Member.ID
}

// Name is the caller's name to show: "owner" or the member's name.
func (c Caller) Name() string {
	if c.Owner {
		return "owner"
	}
	return c.Member.Name
}

type callerKey struct{}

// WithCaller returns ctx carrying c. The host calls it for every request;
// tests of apps use it to stand in for the host.
func WithCaller(ctx context.Context, c Caller) context.Context {
	return context.WithValue(ctx, callerKey{}, c)
}

// CallerFrom returns the caller of the request whose context is ctx. Every
// request the host passes to an app has one; false means the request did not
// come through the host.
func CallerFrom(ctx context.Context) (Caller, bool) {
	c, ok := ctx.Value(callerKey{}).(Caller)
	return c, ok
}

// Errors of the app's storage, which apps tell apart with errors.Is.
var (
	// ErrLocked: the box is locked; nothing of the app's data can be read.
	ErrLocked = errors.New("the box is locked")
	// ErrStopped: the app was stopped (disabled, restarted).
	ErrStopped = errors.New("the app is stopped")
	// ErrNotFound: no record or blob by that name.
	ErrNotFound = errors.New("not found")
	// ErrQuota: the write would take the app past its storage quota.
	ErrQuota = errors.New("the app's storage quota is used up")
	// ErrDiskFull: the box's disk is full.
	ErrDiskFull = errors.New("the box's disk is full")
	// ErrNotPublished: the app is not published on that network now.
	ErrNotPublished = errors.New("the app is not published on that network")
	// ErrNoApp: the box has no app by that name.
	ErrNoApp = errors.New("no such app")
)

// Records is an app's sealed key-value store, for small values (settings,
// metadata, indexes up to a few hundred kilobytes a value). Keys are 1 to
// 1024 bytes of UTF-8 without NUL, and are sealed too: the disk shows neither
// keys nor values. Every change is durable when the call returns.
type Records interface {
	Get(key string) ([]byte, error)
	Put(key string, value []byte) error
	Delete(key string) error
	// Update reads key and writes what fn returns, atomically with respect
	// to other changes of the store (fn runs with the store's write lock:
	// keep it short). fn gets nil, false for a missing key; returning nil
	// deletes the key; returning an error changes nothing.
	Update(key string, fn func(old []byte, exists bool) ([]byte, error)) error
	// List returns the keys that start with prefix, sorted.
	List(prefix string) ([]string, error)
}

// Blobs is an app's store for large data, encrypted at rest with
// XChaCha20-Poly1305 in 64 KiB chunks: written and read as streams (a 4 GB
// file never sits in memory), with random access for range requests. A blob
// becomes visible under its name only when its upload commits, atomically:
// a crash (kill -9, power cut) mid-write leaves the previous blob of that
// name, or none, and the upload resumable from what reached the disk.
type Blobs interface {
	// Create starts an upload.
	Create() (Upload, error)
	// Resume continues the upload with this ID where what reached the disk
	// ends (Upload.Size).
	Resume(id string) (Upload, error)
	// Uploads lists the uploads not yet committed or aborted.
	Uploads() ([]UploadInfo, error)
	// Open opens the blob called name for reading.
	Open(name string) (Blob, error)
	Stat(name string) (BlobInfo, error)
	// List returns the blobs whose names start with prefix, sorted by name.
	List(prefix string) ([]BlobInfo, error)
	// Rename gives a blob another name, replacing a blob of that name.
	Rename(old, new string) error
	Delete(name string) error
	// Usage is what the app's data takes on disk and may take.
	Usage() Usage
}

// Upload is a blob being written. It is not safe for concurrent use.
type Upload interface {
	io.Writer
	// ID names the upload for Resume.
	ID() string
	// Size is how many bytes the upload holds.
	Size() int64
	// Flush puts everything written so far on disk.
	Flush() error
	// Commit ends the upload and publishes it as name, replacing a blob of
	// that name, atomically and durably.
	Commit(name string) (BlobInfo, error)
	// Close flushes and stops writing; the upload stays, to be resumed or
	// aborted.
	Close() error
	// Abort throws the upload away.
	Abort() error
}

// Blob is a blob open for reading: http.ServeContent serves it with ranges.
type Blob interface {
	io.Reader
	io.ReaderAt
	io.Seeker
	io.Closer
	Info() BlobInfo
}

// BlobInfo describes a committed blob.
type BlobInfo struct {
	Name string `json:"name"`
	Size int64  `json:"size"`
	// Modified is when it was committed (or renamed into place).
	Modified time.Time `json:"modified"`
	// ETag changes whenever the content does.
	ETag string `json:"etag"`
}

// UploadInfo describes an upload in progress.
type UploadInfo struct {
	ID      string    `json:"id"`
	Size    int64     `json:"size"`
	Created time.Time `json:"created"`
}

// Usage is the app's storage on disk.
type Usage struct {
	// Bytes is what the app's blobs and uploads take on disk (with the
	// encryption's overhead, about 0.06 %), and Blobs how many there are.
	Bytes int64 `json:"bytes"`
	Blobs int   `json:"blobs"`
	// Quota is the most the app may take (the owner's quota option); 0
	// for no limit but the disk.
	Quota int64 `json:"quota"`
	// DiskFree is what is left on the box's disk for anyone.
	DiskFree int64 `json:"disk_free"`
}

// Available is how many more bytes the app may write: the least of its
// quota's rest and the disk's free space.
func (u Usage) Available() int64 {
	if u.Quota > 0 {
		return max(0, min(u.Quota-u.Bytes, u.DiskFree))
	}
	return max(0, u.DiskFree)
}
