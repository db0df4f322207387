package tailnet

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/redoubt/redoubt/vault"
)

const markHelperEnv = "REDOUBT_TAILNET_MARK_HELPER"

// TestMagicsockSocketMark starts the box's node (strict off, as root) in a network
// namespace of its own, with nothing but loopback, and checks that its
// WireGuard socket — magicsock's, bound to the node's port — carries SocketMark:
// the socket vpn/wanfw's direct paths let out and vpn/wan routes. It lists the
// node's other inet sockets too.
func TestMagicsockSocketMark(t *testing.T) {
	if os.Getenv(markHelperEnv) != "" {
		markHelper(t)
		return
	}
	if os.Geteuid() != 0 {
		t.Skip("socket mark test skipped: tailscale marks its sockets only as root, and the test needs a network namespace")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		t.Skip("socket mark test skipped: no ip command")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^TestMagicsockSocketMark$", "-test.v")
	cmd.Env = append(os.Environ(), markHelperEnv+"=1")
	// A namespace of its own: the node's sockets can reach nothing outside.
	cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWNET, Pdeathsig: syscall.SIGKILL}
	out, err := cmd.CombinedOutput()
	var sockets []string
	for _, l := range strings.Split(string(out), "\n") {
		if i := strings.Index(l, "socket: "); i >= 0 {
			sockets = append(sockets, l[i+len("socket: "):])
		}
	}
	t.Logf("the node's inet sockets:\n%s", strings.Join(sockets, "\n"))
	if err != nil {
		t.Fatalf("the node in its namespace: %v\n%s", err, out)
	}
	found := false
	for _, s := range sockets {
		f := strings.Fields(s) // "udp4 0.0.0.0:41641 mark 0x80000"
		if len(f) == 4 && f[0] == "udp4" && strings.HasSuffix(f[1], fmt.Sprintf(":%d", DefaultPort)) {
			found = true
			if f[3] != fmt.Sprintf("0x%x", SocketMark) {
				t.Errorf("magicsock's socket %s carries mark %s, want 0x%x", f[1], f[3], SocketMark)
			}
		}
	}
	if !found {
		t.Errorf("no UDP socket on port %d:\n%s", DefaultPort, out)
	}
}

// markHelper runs in the child: starts the node and prints its inet sockets.
func markHelper(t *testing.T) {
	if out, err := exec.Command("ip", "link", "set", "lo", "up").CombinedOutput(); err != nil {
		t.Fatalf("loopback: %v: %s", err, out)
	}
	off := false
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	// Headscale is nowhere (a closed port on loopback): the node stays
	// unjoined, its sockets open all the same.
	n, err := Start(ctx, Config{ControlURL: "http://127.0.0.1:9", Hostname: "marktest", Strict: &off},
		Deps{Store: newMemStore(), AuthKey: func(context.Context) (string, error) { return "tskey-auth-none", nil }})
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	if mark, port := n.DirectPath(); mark != SocketMark || port != DefaultPort {
		t.Errorf("DirectPath = 0x%x, %d", mark, port)
	}
	var lines []string
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		lines = inetSockets()
		if strings.Contains(strings.Join(lines, "\n"), fmt.Sprintf(":%d ", DefaultPort)) || time.Now().After(deadline) {
			break
		}
	}
	for _, l := range lines {
		t.Logf("socket: %s", l)
	}
}

// inetSockets describes this process's IPv4 and IPv6 sockets: kind, local
// address and socket mark.
func inetSockets() []string {
	fds, _ := os.ReadDir("/proc/self/fd")
	var out []string
	for _, e := range fds {
		link, err := os.Readlink(filepath.Join("/proc/self/fd", e.Name()))
		if err != nil || !strings.HasPrefix(link, "socket:") {
			continue
		}
		fd, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		sa, err := unix.Getsockname(fd)
		if err != nil {
			continue
		}
		typ, _ := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_TYPE)
		mark, _ := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_MARK)
		kind := map[int]string{unix.SOCK_DGRAM: "udp", unix.SOCK_STREAM: "tcp", unix.SOCK_RAW: "raw"}[typ]
		switch a := sa.(type) {
		case *unix.SockaddrInet4:
			out = append(out, fmt.Sprintf("%s4 %v mark 0x%x", kind, netip.AddrPortFrom(netip.AddrFrom4(a.Addr), uint16(a.Port)), mark))
		case *unix.SockaddrInet6:
			out = append(out, fmt.Sprintf("%s6 %v mark 0x%x", kind, netip.AddrPortFrom(netip.AddrFrom16(a.Addr), uint16(a.Port)), mark))
		}
	}
	return out
}

// memStore is a vault.Store in memory.
type memStore struct {
	mu sync.Mutex
	m  map[string][]byte
}

func newMemStore() *memStore { return &memStore{m: map[string][]byte{}} }

func (s *memStore) Get(b, k string) ([]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	v, ok := s.m[b+"/"+k]
	if !ok {
		return nil, vault.ErrNotFound
	}
	return v, nil
}

func (s *memStore) Put(b, k string, v []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.m[b+"/"+k] = append([]byte(nil), v...)
	return nil
}

func (s *memStore) Delete(b, k string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.m, b+"/"+k)
	return nil
}

func (s *memStore) List(b string) ([]string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var keys []string
	for k := range s.m {
		if rest, ok := strings.CutPrefix(k, b+"/"); ok {
			keys = append(keys, rest)
		}
	}
	return keys, nil
}
