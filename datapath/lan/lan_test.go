package lan

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/adapters/gonet"
	"gvisor.dev/gvisor/pkg/tcpip/link/fdbased"
	"gvisor.dev/gvisor/pkg/tcpip/network/arp"
	"gvisor.dev/gvisor/pkg/tcpip/network/ipv4"
	"gvisor.dev/gvisor/pkg/tcpip/stack"
	"gvisor.dev/gvisor/pkg/tcpip/transport/icmp"
	"gvisor.dev/gvisor/pkg/tcpip/transport/tcp"
	"gvisor.dev/gvisor/pkg/tcpip/transport/udp"

	"github.com/redoubt/redoubt/datapath/filter"
	"github.com/redoubt/redoubt/datapath/leaklog"
)

var (
	boxMAC    = net.HardwareAddr{0x02, 0x52, 0x44, 0, 0, 0x01}
	laptopMAC = net.HardwareAddr{0x02, 0x52, 0x44, 0, 0, 0x64}
	laptopIP  = netip.MustParseAddr("10.201.86.100")
)

// testLogger routes a component's log to t.Log.
func testLogger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(tWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type tWriter struct{ t testing.TB }

func (w tWriter) Write(p []byte) (int, error) {
	w.t.Helper()
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// rig is a box LAN and a laptop netstack joined by a socketpair: the whole
// datapath, in process, without root.
type rig struct {
	lan    *LAN
	leaks  *leaklog.Log
	laptop *stack.Stack
	wire   int // the laptop's end of the socketpair, for raw frames
}

func newRig(t testing.TB) *rig {
	t.Helper()
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, fd := range fds {
		unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_SNDBUF, 4<<20)
		unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUF, 4<<20)
	}
	leaks := leaklog.New(leaklog.Config{})
	l, err := OpenFD(fds[0], boxMAC, Config{}, Deps{Logger: testLogger(t), Leaks: leaks})
	if err != nil {
		t.Fatal(err)
	}
	laptop := newLaptop(t, fds[1])
	t.Cleanup(func() {
		laptop.Close()
		l.Close()
		laptop.Wait()
		unix.Close(fds[0])
		unix.Close(fds[1])
	})
	return &rig{lan: l, leaks: leaks, laptop: laptop, wire: fds[1]}
}

// newLaptop is a plain gVisor stack standing in for the laptop's kernel.
func newLaptop(t testing.TB, fd int) *stack.Stack {
	t.Helper()
	ep, err := fdbased.New(&fdbased.Options{FDs: []int{fd}, MTU: 1500, EthernetHeader: true, Address: tcpip.LinkAddress(laptopMAC)})
	if err != nil {
		t.Fatal(err)
	}
	s := stack.New(stack.Options{
		NetworkProtocols:   []stack.NetworkProtocolFactory{ipv4.NewProtocol, arp.NewProtocol},
		TransportProtocols: []stack.TransportProtocolFactory{tcp.NewProtocol, udp.NewProtocol, icmp.NewProtocol4},
	})
	if err := s.CreateNIC(1, ep); err != nil {
		t.Fatal(err)
	}
	s.AddProtocolAddress(1, tcpip.ProtocolAddress{
		Protocol:          ipv4.ProtocolNumber,
		AddressWithPrefix: tcpip.AddrFrom4(laptopIP.As4()).WithPrefix(),
	}, stack.AddressProperties{})
	s.SetRouteTable([]tcpip.Route{{Destination: header0(), NIC: 1, Gateway: tcpip.AddrFrom4(DefaultAddress.Addr().As4())}})
	return s
}

func header0() tcpip.Subnet {
	sn, _ := tcpip.NewSubnet(tcpip.AddrFrom4([4]byte{}), tcpip.MaskFromBytes([]byte{0, 0, 0, 0}))
	return sn
}

func (r *rig) dial(ctx context.Context, addr netip.AddrPort) (net.Conn, error) {
	return gonet.DialContextTCP(ctx, r.laptop, tcpip.FullAddress{NIC: 1, Addr: tcpip.AddrFrom4(addr.Addr().As4()), Port: addr.Port()}, ipv4.ProtocolNumber)
}

func TestServiceReachable(t *testing.T) {
	r := newRig(t)
	ln, err := r.lan.ListenTCP(80)
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { fmt.Fprint(w, "box page") })}
	go srv.Serve(ln)
	defer srv.Close()

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	hc := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, addr string) (net.Conn, error) {
		return r.dial(ctx, netip.MustParseAddrPort(addr))
	}}}
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://10.201.86.1/", nil)
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatalf("fetching the box's page: %v (stats %+v)", err, r.lan.Stats())
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(body) != "box page" {
		t.Fatalf("body %q", body)
	}
	if got := r.lan.Services(); len(got) != 1 || got[0] != (filter.Service{Proto: filter.TCP, Port: 80}) {
		t.Fatalf("services %v, want tcp/80", got)
	}
}
