// Package lan_test runs the box in the lab and checks, with real programs in the
// laptop's namespace (curl, dig, ping, ncat, raw frames), that the box serves its
// page and lets nothing else leave.
package lan_test

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"golang.org/x/net/dns/dnsmessage"

	"github.com/redoubt/redoubt/datapath/leaklog"
	"github.com/redoubt/redoubt/lab"
	"github.com/redoubt/redoubt/lab/labtest"
)

func TestMain(m *testing.M) { labtest.Main(m) }

// env returns the shared lab with the laptop on its static address.
func env(t *testing.T) *labtest.Env {
	t.Helper()
	e := labtest.Shared(t)
	if err := e.Lab.LaptopStatic(context.Background()); err != nil {
		t.Fatal(err)
	}
	return e
}

func laptop(t *testing.T, e *labtest.Env, argv ...string) (string, error) {
	t.Helper()
	out, err := e.Lab.Exec(context.Background(), lab.Laptop, argv...)
	t.Logf("laptop$ %s\n%s", strings.Join(argv, " "), strings.TrimSpace(out))
	return out, err
}

func TestBoxPageAndPing(t *testing.T) {
	e := env(t)
	// A new box leads the laptop to its setup page.
	out, err := laptop(t, e, "curl", "-sSL", "--max-time", "5", "http://"+lab.BoxLAN.String()+"/")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, "Set up your Redoubt box") {
		t.Errorf("the box's page does not lead to setup:\n%s", out)
	}
	hdrs, err := laptop(t, e, "curl", "-sS", "-D", "-", "-o", "/dev/null", "--max-time", "5", "http://"+lab.BoxLAN.String()+"/")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(hdrs, "Content-Security-Policy: default-src 'none'") {
		t.Errorf("the page lacks its Content-Security-Policy:\n%s", hdrs)
	}
	if _, err := laptop(t, e, "ping", "-c", "2", "-W", "2", lab.BoxLAN.String()); err != nil {
		t.Errorf("the box does not answer ping: %v", err)
	}
}

func TestKernelHasNoAddressOnLANPort(t *testing.T) {
	e := env(t)
	out, err := e.Lab.Exec(context.Background(), lab.Box, "ip", "-o", "addr", "show", "dev", lab.BoxLANIface)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(out, "inet") {
		t.Errorf("the kernel holds an address on the LAN port:\n%s", out)
	}
	for file, want := range map[string]string{
		"/proc/sys/net/ipv6/conf/" + lab.BoxLANIface + "/disable_ipv6": "1",
		"/proc/sys/net/ipv4/conf/" + lab.BoxLANIface + "/forwarding":   "0",
		"/proc/sys/net/ipv4/conf/" + lab.BoxLANIface + "/arp_ignore":   "8",
	} {
		got, err := e.Lab.Exec(context.Background(), lab.Box, "cat", file)
		if err != nil || strings.TrimSpace(got) != want {
			t.Errorf("%s = %q (%v), want %s", file, strings.TrimSpace(got), err, want)
		}
	}
}

// egressAttempt is one way the laptop tries to reach beyond the box, and the leak
// log entry it must leave.
type egressAttempt struct {
	name string
	run  func(t *testing.T, e *labtest.Env)
	want func(leaklog.Entry) bool
}

func TestNothingLeaves(t *testing.T) {
	e := env(t)
	ctx := context.Background()
	boxMAC := macOf(t, e, lab.Box, lab.BoxLANIface)
	laptopMAC := macOf(t, e, lab.Laptop, lab.LaptopIface)
	tracker := lab.Tracker.String()
	// IPv6 toward the internet: a route via a link-local router whose address
	// resolves to the box, so the laptop's kernel really sends the packets.
	for _, c := range [][]string{
		{"ip", "-6", "neigh", "replace", "fe80::1", "lladdr", boxMAC.String(), "dev", lab.LaptopIface, "nud", "permanent"},
		{"ip", "-6", "route", "replace", "2001:db8::/32", "via", "fe80::1", "dev", lab.LaptopIface},
	} {
		if _, err := e.Lab.Exec(ctx, lab.Laptop, c...); err != nil {
			t.Fatal(err)
		}
	}
	for _, node := range []string{lab.HomeRouter, lab.Internet} {
		if err := e.Lab.ResetIngress(ctx, node); err != nil {
			t.Fatal(err)
		}
	}
	hitsBefore, _ := e.Lab.InternetHits()

	attempts := []egressAttempt{
		{"tcp http with host", func(t *testing.T, e *labtest.Env) {
			laptop(t, e, "curl", "-sS", "--max-time", "3", "-H", "Host: ads.tracker.example", "http://"+tracker+"/pixel.gif")
		}, match("egress", "tcp", "http", tracker, 80, "ads.tracker.example")},
		{"https with sni", func(t *testing.T, e *labtest.Env) {
			laptop(t, e, "curl", "-sS", "--max-time", "3", "--resolve", lab.TrackerName+":443:"+tracker, "https://"+lab.TrackerName+"/")
		}, match("egress", "tcp", "tls", tracker, 443, lab.TrackerName)},
		{"tcp to an odd port", func(t *testing.T, e *labtest.Env) {
			laptop(t, e, "ncat", "-w", "2", tracker, "5222")
		}, match("egress", "tcp", "", tracker, 5222, "")},
		{"udp", func(t *testing.T, e *labtest.Env) {
			laptop(t, e, "sh", "-c", "echo hello | ncat -u -w 1 "+tracker+" 9999")
		}, match("egress", "udp", "", tracker, 9999, "")},
		{"icmp echo", func(t *testing.T, e *labtest.Env) {
			laptop(t, e, "ping", "-c", "2", "-W", "1", tracker)
		}, match("egress", "icmp", "", tracker, 0, "")},
		{"dns to an internet resolver", func(t *testing.T, e *labtest.Env) {
			laptop(t, e, "dig", "+tries=1", "+time=1", "@"+lab.Resolver.String(), "telemetry.vendor.example", "A")
		}, match("egress", "udp", "dns", lab.Resolver.String(), 53, "telemetry.vendor.example")},
		{"dns over tcp", func(t *testing.T, e *labtest.Env) {
			laptop(t, e, "dig", "+tcp", "+tries=1", "+time=2", "@"+lab.Resolver.String(), "tcp-query.vendor.example", "A")
		}, match("egress", "tcp", "dns", lab.Resolver.String(), 53, "tcp-query.vendor.example")},
		{"ipv6 to the internet", func(t *testing.T, e *labtest.Env) {
			laptop(t, e, "curl", "-sS", "--max-time", "2", "http://[2001:db8::10]/")
		}, match("egress", "tcp", "", "2001:db8::10", 80, "")},
		{"broadcast", func(t *testing.T, e *labtest.Env) {
			sendUDP(t, e, "10.201.86.255:9999", true, []byte("anyone?"))
		}, match("broadcast", "udp", "", "10.201.86.255", 9999, "")},
		{"mdns discovery", func(t *testing.T, e *labtest.Env) {
			sendUDP(t, e, "224.0.0.251:5353", false, dnsQuery(t, "_googlecast._tcp.local."))
		}, match("discovery", "udp", "mdns", "224.0.0.251", 5353, "_googlecast._tcp.local")},
		{"spoofed source", func(t *testing.T, e *labtest.Env) {
			f := buildFrame(t, laptopMAC, boxMAC, net.IP{198, 51, 100, 7}, lab.Tracker.AsSlice(), &layers.TCP{SrcPort: 4000, DstPort: 80, SYN: true, Window: 100})
			if err := e.Lab.SendFrames(lab.Laptop, lab.LaptopIface, [][]byte{f}); err != nil {
				t.Fatal(err)
			}
		}, match("spoofed", "tcp", "", tracker, 80, "")},
	}
	for _, a := range attempts {
		a.run(t, e)
	}

	// Every attempt is in the leak log, with its kind and, where it had one, its name.
	deadline := time.Now().Add(10 * time.Second)
	var missing []string
	var entries []leaklog.Entry
	for {
		leaks, err := e.Box.API.Leaks(ctx)
		if err != nil {
			t.Fatal(err)
		}
		entries = leaks.Entries
		missing = missing[:0]
		for _, a := range attempts {
			found := false
			for _, en := range entries {
				if a.want(en) {
					found = true
					break
				}
			}
			if !found {
				missing = append(missing, a.name)
			}
		}
		if len(missing) == 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	if len(missing) > 0 {
		var b strings.Builder
		for _, en := range entries {
			fmt.Fprintf(&b, "  %+v\n", en)
		}
		t.Errorf("not in the leak log: %v\nleak log:\n%s", missing, b.String())
	}

	// And nothing left the box's WAN port (the home router saw nothing: this
	// box has no VPN, so not even a VPN flow), nor reached the internet.
	for _, node := range []string{lab.HomeRouter, lab.Internet} {
		c, err := e.Lab.Ingress(ctx, node)
		if err != nil {
			t.Fatal(err)
		}
		if c.All != 0 || c.FromLAN != 0 || c.FromLaptopMAC != 0 {
			t.Errorf("packets reached the %s namespace: %+v", node, c)
		}
	}
	hits, _ := e.Lab.InternetHits()
	if len(hits) != len(hitsBefore) {
		t.Errorf("the internet's services were reached: %+v", hits[len(hitsBefore):])
	}
}

// TestBadFrames puts malformed, truncated, oversized, fragmented, tagged and
// garbage frames on the wire: each is dropped and counted, and the box goes on.
func TestBadFrames(t *testing.T) {
	e := env(t)
	ctx := context.Background()
	boxMAC := macOf(t, e, lab.Box, lab.BoxLANIface)
	laptopMAC := macOf(t, e, lab.Laptop, lab.LaptopIface)
	before, err := e.Box.API.Leaks(ctx)
	if err != nil {
		t.Fatal(err)
	}
	ethHdr := func(et uint16) []byte {
		return append(append(append([]byte{}, boxMAC...), laptopMAC...), byte(et>>8), byte(et))
	}
	syn := &layers.TCP{SrcPort: 4000, DstPort: 80, SYN: true, Window: 100}
	good := buildFrame(t, laptopMAC, boxMAC, lab.LaptopStatic.Addr().AsSlice(), lab.BoxLAN.AsSlice(), syn)
	var frames [][]byte
	frames = append(frames,
		ethHdr(0x0800), // IPv4 with no header
		append(ethHdr(0x0800), 0x45, 0, 0xff, 0xff),                 // truncated, claims 64 KiB
		append(ethHdr(0x0806), 1, 2, 3),                             // truncated ARP
		append(ethHdr(0x88cc), make([]byte, 46)...),                 // LLDP
		append(ethHdr(0x0004), make([]byte, 46)...),                 // 802.3 length field
		append(ethHdr(0x0800), bytes.Repeat([]byte{0xa5}, 1500)...), // garbage, as large as the link allows
		good[:len(good)-10],                                         // truncated TCP
	)
	frag := append([]byte(nil), good...)
	frag[14+6] = 0x20 // more fragments
	fixIPChecksum(frag)
	frames = append(frames, frag)
	tagged := append(append(append([]byte{}, good[:12]...), 0x81, 0x00, 0x00, 0x07), good[12:]...)
	frames = append(frames, tagged)
	badSum := append([]byte(nil), good...)
	badSum[14+20+16] ^= 0xff // TCP checksum
	frames = append(frames, badSum)
	for i := range 200 {
		g := make([]byte, 14+i%120)
		for j := range g {
			g[j] = byte(i*31 + j*17)
		}
		copy(g, boxMAC)
		frames = append(frames, g)
	}
	if err := e.Lab.SendFrames(lab.Laptop, lab.LaptopIface, frames); err != nil {
		t.Fatal(err)
	}
	var after localapiLeaks
	waitUntil(t, "the bad frames counted", func() bool {
		l, err := e.Box.API.Leaks(ctx)
		after = localapiLeaks{l.Counters.Total, l.Counters.ByKind}
		return err == nil && after.total >= before.Counters.Total+200
	})
	for _, k := range []string{"malformed", "non-ip", "fragment", "vlan"} {
		if after.byKind[k] <= before.Counters.ByKind[k] {
			t.Errorf("no new %s drop: before %v after %v", k, before.Counters.ByKind, after.byKind)
		}
	}
	st, err := e.Box.API.Status(ctx)
	if err != nil {
		t.Fatalf("the box stopped answering: %v", err)
	}
	t.Logf("box status after bad frames: %+v", st.LAN)
	if _, err := laptop(t, e, "curl", "-sS", "--max-time", "5", "-o", "/dev/null", "http://"+lab.BoxLAN.String()+"/"); err != nil {
		t.Errorf("the box stopped serving after bad frames: %v", err)
	}
	if done, err := e.Box.Exited(); done {
		t.Fatalf("the box exited: %v\n%s", err, e.Box.Output())
	}
}

type localapiLeaks struct {
	total  uint64
	byKind map[string]uint64
}

func TestPcapExport(t *testing.T) {
	e := env(t)
	laptop(t, e, "ping", "-c", "1", "-W", "1", lab.Tracker.String())
	pcap := filepath.Join(t.TempDir(), "drops.pcap")
	bin, err := labtest.Binary()
	if err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(bin, "leaks", "--socket", e.Box.Socket, "--pcap", pcap).CombinedOutput()
	if err != nil {
		t.Fatalf("redoubt leaks --pcap: %v\n%s", err, out)
	}
	// tcpdump itself must read it.
	dump, err := exec.Command("tcpdump", "-nr", pcap).CombinedOutput()
	if err != nil {
		t.Fatalf("tcpdump cannot read the export: %v\n%s", err, dump)
	}
	if !strings.Contains(string(dump), lab.Tracker.String()) {
		t.Errorf("the export lacks the dropped ping:\n%s", dump)
	}
}

func TestCLI(t *testing.T) {
	e := env(t)
	bin, err := labtest.Binary()
	if err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{
		{"version"},
		{"status", "--socket", e.Box.Socket},
		{"leaks", "--socket", e.Box.Socket},
		{"leaks", "--json", "--socket", e.Box.Socket},
	} {
		out, err := exec.Command(bin, args...).CombinedOutput()
		if err != nil {
			t.Errorf("redoubt %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		t.Logf("redoubt %s\n%s", strings.Join(args, " "), out)
	}
	out, _ := exec.Command(bin, "version").CombinedOutput()
	if !strings.HasPrefix(string(out), "redoubt ") || !strings.Contains(string(out), "go1.") {
		t.Errorf("version output %q", out)
	}
	out, err = exec.Command(bin, "status", "--socket", filepath.Join(t.TempDir(), "none.sock")).CombinedOutput()
	if err == nil || !strings.Contains(string(out), "not running") {
		t.Errorf("status without a daemon: %v %q", err, out)
	}
}

// TestShutdownAndRestart stops the box with SIGTERM (it must exit cleanly and
// remove its socket) and starts it again.
func TestShutdownAndRestart(t *testing.T) {
	e := env(t)
	if err := e.Box.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := e.Box.Wait(10 * time.Second); err != nil {
		t.Fatalf("the box did not exit cleanly on SIGTERM: %v\n%s", err, e.Box.Output())
	}
	if _, err := os.Stat(e.Box.Socket); !os.IsNotExist(err) {
		t.Errorf("the API socket is still there after shutdown: %v", err)
	}
	e.RestartBox(t, "")
	if _, err := laptop(t, e, "curl", "-sS", "--max-time", "5", "-o", "/dev/null", "http://"+lab.BoxLAN.String()+"/"); err != nil {
		t.Errorf("the restarted box does not serve: %v", err)
	}
}

func TestBadConfigStopsStartup(t *testing.T) {
	bin, err := labtest.Binary()
	if err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(t.TempDir(), "bad.toml")
	os.WriteFile(cfg, []byte("[lan]\ninterface = \"eth1\"\naddress = \"300.1.2.3/24\"\n"), 0o600)
	out, err := exec.Command(bin, "serve", "--config", cfg).CombinedOutput()
	if err == nil {
		t.Fatal("a bad config was accepted")
	}
	for _, w := range []string{"lan.address", "300.1.2.3", "10.201.86.1/24"} {
		if !strings.Contains(string(out), w) {
			t.Errorf("error %q does not mention %q", out, w)
		}
	}
}

func match(kind, proto, app, dst string, port uint16, name string) func(leaklog.Entry) bool {
	return func(e leaklog.Entry) bool {
		return e.Kind == kind && e.Proto == proto && e.App == app && e.Dst == dst && e.DstPort == port && e.Name == name
	}
}

func macOf(t *testing.T, e *labtest.Env, node, iface string) net.HardwareAddr {
	t.Helper()
	var mac net.HardwareAddr
	err := e.Lab.Do(node, func() error {
		ifi, err := net.InterfaceByName(iface)
		if err == nil {
			mac = ifi.HardwareAddr
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return mac
}

// sendUDP sends one datagram from the laptop with its own socket.
func sendUDP(t *testing.T, e *labtest.Env, to string, broadcast bool, payload []byte) {
	t.Helper()
	err := e.Lab.Do(lab.Laptop, func() error {
		c, err := net.ListenPacket("udp4", ":0")
		if err != nil {
			return err
		}
		defer c.Close()
		if broadcast {
			raw, _ := c.(*net.UDPConn).SyscallConn()
			raw.Control(func(fd uintptr) { syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_BROADCAST, 1) })
		}
		addr, err := net.ResolveUDPAddr("udp4", to)
		if err != nil {
			return err
		}
		_, err = c.WriteTo(payload, addr)
		return err
	})
	if err != nil {
		t.Fatalf("sending to %s: %v", to, err)
	}
}

func dnsQuery(t *testing.T, name string) []byte {
	b := dnsmessage.NewBuilder(nil, dnsmessage.Header{})
	b.StartQuestions()
	b.Question(dnsmessage.Question{Name: dnsmessage.MustNewName(name), Type: dnsmessage.TypePTR, Class: dnsmessage.ClassINET})
	msg, err := b.Finish()
	if err != nil {
		t.Fatal(err)
	}
	return msg
}

func buildFrame(t *testing.T, src, dst net.HardwareAddr, srcIP, dstIP net.IP, tcp *layers.TCP) []byte {
	t.Helper()
	ip := &layers.IPv4{Version: 4, IHL: 5, TTL: 64, Protocol: layers.IPProtocolTCP, SrcIP: srcIP, DstIP: dstIP}
	tcp.SetNetworkLayerForChecksum(ip)
	buf := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true},
		&layers.Ethernet{SrcMAC: src, DstMAC: dst, EthernetType: layers.EthernetTypeIPv4}, ip, tcp); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func fixIPChecksum(f []byte) {
	h := f[14:34]
	h[10], h[11] = 0, 0
	var sum uint32
	for i := 0; i < 20; i += 2 {
		sum += uint32(h[i])<<8 | uint32(h[i+1])
	}
	for sum > 0xffff {
		sum = sum>>16 + sum&0xffff
	}
	h[10], h[11] = byte(^sum>>8), byte(^sum)
}

func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestNoIPv6FromTheBox solicits a router and a neighbour the way a laptop's kernel
// does, and listens on the laptop's wire: the box must send no IPv6 at all, and so
// never a router advertisement.
func TestNoIPv6FromTheBox(t *testing.T) {
	e := env(t)
	boxMAC := macOf(t, e, lab.Box, lab.BoxLANIface)
	laptopMAC := macOf(t, e, lab.Laptop, lab.LaptopIface)
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	capture := e.Lab.Cmd(ctx, lab.Laptop, "timeout", "4", "tcpdump", "-i", lab.LaptopIface, "-n", "-l",
		"ether src "+boxMAC.String()+" and ip6")
	var out bytes.Buffer
	capture.Stdout, capture.Stderr = &out, &out
	if err := capture.Start(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Second) // tcpdump is listening
	src := net.ParseIP("fe80::52:44ff:fe00:64")
	rs := &layers.ICMPv6{TypeCode: layers.CreateICMPv6TypeCode(layers.ICMPv6TypeRouterSolicitation, 0)}
	ns := &layers.ICMPv6{TypeCode: layers.CreateICMPv6TypeCode(layers.ICMPv6TypeNeighborSolicitation, 0)}
	var frames [][]byte
	for _, m := range []struct {
		icmp *layers.ICMPv6
		dst  net.IP
		body gopacket.Payload
	}{
		{rs, net.ParseIP("ff02::2"), make([]byte, 4)},
		{ns, net.ParseIP("ff02::1:ff00:1"), append(make([]byte, 4), net.ParseIP("fe80::1")...)},
	} {
		ip := &layers.IPv6{Version: 6, NextHeader: layers.IPProtocolICMPv6, HopLimit: 255, SrcIP: src, DstIP: m.dst}
		m.icmp.SetNetworkLayerForChecksum(ip)
		buf := gopacket.NewSerializeBuffer()
		dstMAC := net.HardwareAddr{0x33, 0x33, m.dst[12], m.dst[13], m.dst[14], m.dst[15]}
		if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true},
			&layers.Ethernet{SrcMAC: laptopMAC, DstMAC: dstMAC, EthernetType: layers.EthernetTypeIPv6}, ip, m.icmp, m.body); err != nil {
			t.Fatal(err)
		}
		frames = append(frames, buf.Bytes())
	}
	for range 3 {
		if err := e.Lab.SendFrames(lab.Laptop, lab.LaptopIface, frames); err != nil {
			t.Fatal(err)
		}
		time.Sleep(300 * time.Millisecond)
	}
	capture.Wait()
	if !strings.Contains(out.String(), "0 packets captured") {
		t.Errorf("the box sent IPv6:\n%s", out.String())
	}
}
