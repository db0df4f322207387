package dhcp

import (
	"bytes"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/insomniacslk/dhcp/rfc1035label"
)

// TestReplyDelivery checks where each reply goes, on the wire, for a client that
// asks for unicast (it cannot answer ARP for the offered address yet: the box
// must send to its MAC directly) and one that asks for broadcast.
func TestReplyDelivery(t *testing.T) {
	for _, bcast := range []bool{false, true} {
		name := "unicast"
		if bcast {
			name = "broadcast"
		}
		t.Run(name, func(t *testing.T) {
			r := newRig(t, Config{})
			c := &client{mac: laptopMAC, bcast: bcast}
			r.send(c.msg(dhcpv4.MessageTypeDiscover))
			offer := r.expect(dhcpv4.MessageTypeOffer)
			yi := addrOf(offer.msg.YourIPAddr)
			if !boxLAN.Contains(yi) || yi == boxLAN.Addr() {
				t.Fatalf("offered %v", yi)
			}
			wantMAC, wantDst := laptopMAC, netip.AddrPortFrom(yi, 68)
			if bcast {
				wantMAC, wantDst = bcastMAC, netip.AddrPortFrom(bcast4, 68)
			}
			for _, got := range []received{offer} {
				if !bytes.Equal(got.dstMAC, wantMAC) || got.dst != wantDst || got.src != netip.AddrPortFrom(boxLAN.Addr(), 67) {
					t.Fatalf("OFFER went %v→%v at %v; want →%v at %v", got.src, got.dst, got.dstMAC, wantDst, wantMAC)
				}
			}
			r.send(c.msg(dhcpv4.MessageTypeRequest, requestFor(offer.msg)...))
			ack := r.expect(dhcpv4.MessageTypeAck)
			if !bytes.Equal(ack.dstMAC, wantMAC) || ack.dst != wantDst {
				t.Fatalf("ACK went to %v at %v; want %v at %v", ack.dst, ack.dstMAC, wantDst, wantMAC)
			}
			if addrOf(ack.msg.YourIPAddr) != yi {
				t.Fatalf("ACK for %v, offer was %v", ack.msg.YourIPAddr, yi)
			}

			// RENEWING: unicast from the bound address; the ACK comes back
			// unicast to it.
			renew := c.msg(dhcpv4.MessageTypeRequest, dhcpv4.WithClientIP(yi.AsSlice()))
			renew.SetUnicast()
			r.sendFrom(renew, netip.AddrPortFrom(yi, 68), netip.AddrPortFrom(boxLAN.Addr(), 67), boxMAC)
			ack = r.expect(dhcpv4.MessageTypeAck)
			if !bytes.Equal(ack.dstMAC, laptopMAC) || ack.dst != netip.AddrPortFrom(yi, 68) || !ack.msg.ClientIPAddr.Equal(yi.AsSlice()) {
				t.Fatalf("renewal ACK went to %v at %v (ciaddr %v)", ack.dst, ack.dstMAC, ack.msg.ClientIPAddr)
			}

			// REBINDING: broadcast from the bound address; answered at it.
			rebind := c.msg(dhcpv4.MessageTypeRequest, dhcpv4.WithClientIP(yi.AsSlice()))
			r.sendFrom(rebind, netip.AddrPortFrom(yi, 68), netip.AddrPortFrom(bcast4, 67), bcastMAC)
			ack = r.expect(dhcpv4.MessageTypeAck)
			if ack.dst != netip.AddrPortFrom(yi, 68) {
				t.Fatalf("rebinding ACK went to %v", ack.dst)
			}

			// A NAK is always broadcast.
			r.send(c.msg(dhcpv4.MessageTypeRequest, dhcpv4.WithOption(dhcpv4.OptRequestedIPAddress(net.IP{10, 9, 9, 9}))))
			nak := r.expect(dhcpv4.MessageTypeNak)
			if !bytes.Equal(nak.dstMAC, bcastMAC) || nak.dst.Addr() != bcast4 {
				t.Fatalf("NAK went to %v at %v", nak.dst, nak.dstMAC)
			}
			st := r.waitStats(func(s Stats) bool { return s.Naks == 1 })
			if st.Offers != 1 || st.Acks != 3 || st.Naks != 1 || st.ActiveLeases != 1 {
				t.Fatalf("stats %+v", st)
			}
		})
	}
}

// TestOptions checks what an ACK tells the laptop.
func TestOptions(t *testing.T) {
	r := newRig(t, Config{LeaseTime: time.Hour, Domain: "lab.home.arpa", Search: []string{"lab.home.arpa", "home.arpa"}, MTU: 1400})
	c := &client{mac: laptopMAC}
	ack := r.bind(c).msg
	box := boxLAN.Addr().AsSlice()
	checks := []struct {
		name string
		got  any
		want any
	}{
		{"subnet mask", ack.SubnetMask().String(), net.CIDRMask(24, 32).String()},
		{"router", ack.Router(), []net.IP{box}},
		{"dns", ack.DNS(), []net.IP{box}},
		{"server id", ack.ServerIdentifier().String(), boxLAN.Addr().String()},
		{"domain", ack.DomainName(), "lab.home.arpa"},
		{"search", ack.DomainSearch().Labels, []string{"lab.home.arpa", "home.arpa"}},
		{"mtu", ack.Options[optMTU], []byte{0x05, 0x78}},
		{"lease time", ack.IPAddressLeaseTime(0), time.Hour},
		{"T1", ack.IPAddressRenewalTime(0), 30 * time.Minute},
		{"T2", ack.IPAddressRebindingTime(0), 52*time.Minute + 30*time.Second},
		{"broadcast", net.IP(ack.Options[optBroadcast]).String(), "10.201.86.255"},
		{"captive portal", string(ack.Options[optCaptivePortal]), "http://10.201.86.1/captive-portal/api"},
	}
	for _, c := range checks {
		if !equal(c.got, c.want) {
			t.Errorf("%s: got %v, want %v", c.name, c.got, c.want)
		}
	}
	// Setup finished: option 114 disappears.
	r.setCaptive("")
	r.send(c.msg(dhcpv4.MessageTypeRequest, dhcpv4.WithOption(dhcpv4.OptRequestedIPAddress(ack.YourIPAddr))))
	if got := r.expect(dhcpv4.MessageTypeAck).msg; got.Options.Has(dhcpv4.OptionURL) {
		t.Errorf("option 114 still sent after setup: %q", got.Options[optCaptivePortal])
	}
	// RFC 6842: the client identifier comes back.
	c2 := &client{mac: net.HardwareAddr{2, 0, 0, 0, 0, 9}, mods: []dhcpv4.Modifier{dhcpv4.WithOption(dhcpv4.OptClientIdentifier([]byte{1, 2, 0, 0, 0, 0, 9}))}}
	r.send(c2.msg(dhcpv4.MessageTypeDiscover))
	if got := r.expect(dhcpv4.MessageTypeOffer).msg; !bytes.Equal(got.Options[optClientID], []byte{1, 2, 0, 0, 0, 0, 9}) {
		t.Errorf("client identifier not echoed: %x", got.Options[optClientID])
	}
}

func equal(a, b any) bool {
	switch a := a.(type) {
	case []net.IP:
		b := b.([]net.IP)
		if len(a) != len(b) {
			return false
		}
		for i := range a {
			if !a[i].Equal(b[i]) {
				return false
			}
		}
		return true
	case []byte:
		return bytes.Equal(a, b.([]byte))
	case []string:
		b := b.([]string)
		if len(a) != len(b) {
			return false
		}
		for i := range a {
			if a[i] != b[i] {
				return false
			}
		}
		return true
	}
	return a == b
}

// TestHostNames checks the names published to the DNS room follow the leases.
func TestHostNames(t *testing.T) {
	r := newRig(t, Config{})
	c := &client{mac: laptopMAC, mods: []dhcpv4.Modifier{dhcpv4.WithOption(dhcpv4.OptHostName("Alice's MacBook Pro.local"))}}
	ack := r.bind(c).msg
	a := addrOf(ack.YourIPAddr)
	if got := r.names.get(a); got != "alice-s-macbook-pro" {
		t.Fatalf("published %q for %v", got, a)
	}
	ls := r.srv.Leases()
	if len(ls) != 1 || ls[0].Hostname != "alice-s-macbook-pro" || ls[0].MAC != laptopMAC.String() || ls[0].State != "bound" || !ls[0].Owner {
		t.Fatalf("leases %+v", ls)
	}
	rel := c.msg(dhcpv4.MessageTypeRelease, dhcpv4.WithClientIP(ack.YourIPAddr),
		dhcpv4.WithOption(dhcpv4.OptServerIdentifier(boxLAN.Addr().AsSlice())))
	r.sendFrom(rel, netip.AddrPortFrom(a, 68), netip.AddrPortFrom(boxLAN.Addr(), 67), boxMAC)
	r.waitStats(func(s Stats) bool { return s.Releases == 1 && s.ActiveLeases == 0 })
	if got := r.names.get(a); got != "" {
		t.Fatalf("name %q still published after release", got)
	}
	if ls := r.srv.Leases(); len(ls) != 1 || ls[0].State != "expired" {
		t.Fatalf("after release: %+v", ls)
	}
	// Back again: same address, name again.
	if got := addrOf(r.bind(c).msg.YourIPAddr); got != a || r.names.get(a) == "" {
		t.Fatalf("after release, got %v (name %q), want %v", got, r.names.get(a), a)
	}
}

func TestHostLabel(t *testing.T) {
	for in, want := range map[string]string{
		"laptop":                                "laptop",
		"Alice's MacBook Pro.local":             "alice-s-macbook-pro",
		"DESKTOP-4F2K9QX":                       "desktop-4f2k9qx",
		"--weird__name--":                       "weird-name",
		"näme":                                  "n-me",
		"...":                                   "",
		"":                                      "",
		"a.b.c":                                 "a",
		string(bytes.Repeat([]byte("x"), 100)):  string(bytes.Repeat([]byte("x"), 63)),
		string(bytes.Repeat([]byte("ab-"), 30)): "ab-ab-ab-ab-ab-ab-ab-ab-ab-ab-ab-ab-ab-ab-ab-ab-ab-ab-ab-ab-ab",
		"x\x00y\nz":                             "x-y-z",
	} {
		if got := HostLabel(in); got != want {
			t.Errorf("HostLabel(%q) = %q, want %q", in, got, want)
		}
		if got := HostLabel(in); len(got) > 63 || (got != "" && (got[0] == '-' || got[len(got)-1] == '-')) {
			t.Errorf("HostLabel(%q) = %q is not a DNS label", in, got)
		}
	}
}

// TestRestartKeepsLeases: the lease file brings the laptop's address back after
// the box restarts, for a DISCOVER that asks for nothing and for an INIT-REBOOT.
func TestRestartKeepsLeases(t *testing.T) {
	r := newRig(t, Config{})
	c := &client{mac: laptopMAC, mods: []dhcpv4.Modifier{dhcpv4.WithOption(dhcpv4.OptHostName("laptop"))}}
	a := addrOf(r.bind(c).msg.YourIPAddr)
	// Another device takes the address the laptop's MAC hashes to after it,
	// so that "same address" cannot come from hashing alone.
	other := &client{mac: net.HardwareAddr{2, 0, 0, 0, 0, 7}}
	r.bind(other)
	r.restart()
	if got := r.names.get(a); got != "laptop" {
		t.Fatalf("after restart, name %q for %v", got, a)
	}
	r.send(c.msg(dhcpv4.MessageTypeDiscover))
	if got := addrOf(r.expect(dhcpv4.MessageTypeOffer).msg.YourIPAddr); got != a {
		t.Fatalf("after restart, offered %v, want %v", got, a)
	}
	r.send(c.msg(dhcpv4.MessageTypeRequest, dhcpv4.WithOption(dhcpv4.OptRequestedIPAddress(a.AsSlice()))))
	r.expect(dhcpv4.MessageTypeAck)
}

// TestExpiryAndSameAddress: a lease that lapsed comes back to its device.
func TestExpiryAndSameAddress(t *testing.T) {
	r := newRig(t, Config{LeaseTime: time.Minute})
	start := time.Now()
	r.setClock(start)
	owner := &client{mac: net.HardwareAddr{2, 0, 0, 0, 0, 1}}
	r.bind(owner)
	c := &client{mac: laptopMAC}
	a := addrOf(r.bind(c).msg.YourIPAddr)
	r.setClock(start.Add(10 * time.Minute))
	if got := addrOf(r.bind(c).msg.YourIPAddr); got != a {
		t.Fatalf("after expiry got %v, want %v", got, a)
	}
}

// TestExhaustion: a full pool offers nothing, NAKs a request for a taken
// address, counts it, and still renews the devices it has.
func TestExhaustion(t *testing.T) {
	r := newRig(t, Config{PoolStart: netip.MustParseAddr("10.201.86.10"), PoolEnd: netip.MustParseAddr("10.201.86.11")})
	a := &client{mac: net.HardwareAddr{2, 0, 0, 0, 0, 1}}
	b := &client{mac: net.HardwareAddr{2, 0, 0, 0, 0, 2}}
	la := addrOf(r.bind(a).msg.YourIPAddr)
	lb := addrOf(r.bind(b).msg.YourIPAddr)
	late := &client{mac: net.HardwareAddr{2, 0, 0, 0, 0, 3}}
	r.send(late.msg(dhcpv4.MessageTypeDiscover))
	r.expectNothing(300 * time.Millisecond)
	r.send(late.msg(dhcpv4.MessageTypeRequest, dhcpv4.WithOption(dhcpv4.OptRequestedIPAddress(lb.AsSlice()))))
	r.expect(dhcpv4.MessageTypeNak)
	for _, x := range []struct {
		c *client
		a netip.Addr
	}{{a, la}, {b, lb}} {
		renew := x.c.msg(dhcpv4.MessageTypeRequest, dhcpv4.WithClientIP(x.a.AsSlice()))
		r.sendFrom(renew, netip.AddrPortFrom(x.a, 68), netip.AddrPortFrom(boxLAN.Addr(), 67), boxMAC)
		r.expect(dhcpv4.MessageTypeAck)
	}
	st := r.waitStats(func(s Stats) bool { return s.Acks == 4 })
	if st.PoolExhausted != 1 || st.Naks != 1 || st.PoolFree != 0 || st.PoolSize != 2 {
		t.Fatalf("stats %+v", st)
	}
}

// TestDeclineAndInform.
func TestDeclineAndInform(t *testing.T) {
	r := newRig(t, Config{})
	c := &client{mac: laptopMAC}
	r.send(c.msg(dhcpv4.MessageTypeDiscover))
	offer := r.expect(dhcpv4.MessageTypeOffer).msg
	bad := offer.YourIPAddr
	r.send(c.msg(dhcpv4.MessageTypeRequest, requestFor(offer)...))
	r.expect(dhcpv4.MessageTypeAck)
	r.send(c.msg(dhcpv4.MessageTypeDecline, requestFor(offer)...))
	r.waitStats(func(s Stats) bool { return s.Declines == 1 })
	// The laptop comes back: it gets another address.
	if got := r.bind(c).msg.YourIPAddr; got.Equal(bad) {
		t.Fatalf("declined address %v offered again", bad)
	}
	var declined bool
	for _, l := range r.srv.Leases() {
		declined = declined || (l.State == "declined" && l.Address == addrOf(bad))
	}
	if !declined {
		t.Fatalf("no declined record for %v: %+v", bad, r.srv.Leases())
	}
	// INFORM from a configured address: options, no lease.
	me := netip.MustParseAddr("10.201.86.200")
	inf := c.msg(dhcpv4.MessageTypeInform, dhcpv4.WithClientIP(me.AsSlice()))
	r.sendFrom(inf, netip.AddrPortFrom(me, 68), netip.AddrPortFrom(boxLAN.Addr(), 67), boxMAC)
	ack := r.expect(dhcpv4.MessageTypeAck).msg
	if ack.Options.Has(dhcpv4.OptionIPAddressLeaseTime) || !ack.YourIPAddr.IsUnspecified() || ack.DNS() == nil {
		t.Fatalf("INFORM answer: %s", ack.Summary())
	}
}

// TestRelay: a relay agent on the LAN (giaddr set, as perfdhcp sends) gets the
// replies at giaddr:67.
func TestRelay(t *testing.T) {
	r := newRig(t, Config{})
	relay := netip.MustParseAddr("10.201.86.100")
	c := &client{mac: net.HardwareAddr{2, 0, 0, 0, 0, 0x42}, mods: []dhcpv4.Modifier{dhcpv4.WithGatewayIP(relay.AsSlice())}}
	r.sendFrom(c.msg(dhcpv4.MessageTypeDiscover), netip.AddrPortFrom(relay, 67), netip.AddrPortFrom(boxLAN.Addr(), 67), boxMAC)
	got, err := r.recv(3*time.Second, 67)
	if err != nil {
		t.Fatal(err)
	}
	if got.dst != netip.AddrPortFrom(relay, 67) || got.msg.MessageType() != dhcpv4.MessageTypeOffer {
		t.Fatalf("relayed OFFER went to %v: %v", got.dst, got.msg.MessageType())
	}
	// A relay outside the LAN is not served.
	far := &client{mac: net.HardwareAddr{2, 0, 0, 0, 0, 0x43}, mods: []dhcpv4.Modifier{dhcpv4.WithGatewayIP(net.IP{192, 168, 7, 1})}}
	r.sendFrom(far.msg(dhcpv4.MessageTypeDiscover), netip.AddrPortFrom(relay, 67), netip.AddrPortFrom(boxLAN.Addr(), 67), boxMAC)
	r.waitStats(func(s Stats) bool { return s.Dropped["foreign-relay"] == 1 })
}

// TestHostilePackets: malformed packets are dropped and counted, and the server
// still serves afterwards.
func TestHostilePackets(t *testing.T) {
	r := newRig(t, Config{})
	c := &client{mac: laptopMAC}
	good := c.msg(dhcpv4.MessageTypeDiscover).ToBytes()
	mutate := func(f func(b []byte) []byte) []byte { return f(append([]byte(nil), good...)) }
	cases := map[string][]byte{
		"undecodable":     {1, 2, 3},
		"wrong op":        mutate(func(b []byte) []byte { b[0] = 2; return b }),
		"hardware length": mutate(func(b []byte) []byte { b[2] = 16; return b }),
		"hardware type":   mutate(func(b []byte) []byte { b[1] = 6; return b }),
		"magic cookie":    mutate(func(b []byte) []byte { b[236] = 0; return b }),
		"option overrun":  mutate(func(b []byte) []byte { return append(b[:240], 53, 200, 1) }),
		"no message type": mutate(func(b []byte) []byte { return append(b[:240], 255) }),
		"group MAC":       mutate(func(b []byte) []byte { b[28] = 1; return b }),
		"huge":            append(mutate(func(b []byte) []byte { return b[:len(b)-1] }), make([]byte, 1200)...),
	}
	for name, b := range cases {
		r.sendRaw(frame(t, laptopMAC, bcastMAC, netip.AddrPortFrom(netip.IPv4Unspecified(), 68), netip.AddrPortFrom(bcast4, 67), b))
		_ = name
	}
	st := r.waitStats(func(s Stats) bool { return s.Received >= uint64(len(cases)) })
	if st.Offers != 0 {
		t.Fatalf("a malformed packet was answered: %+v", st)
	}
	if st.Malformed < 8 {
		t.Fatalf("malformed %d, want at least 8: %+v", st.Malformed, st)
	}
	r.bind(c)
}

// TestFloodKeepsOwner: a flood of complete exchanges from random MACs fills a
// small pool but the owner's laptop, bound first, gets its address after its
// lease lapsed and keeps renewing.
func TestFloodKeepsOwner(t *testing.T) {
	r := newRig(t, Config{PoolStart: netip.MustParseAddr("10.201.86.10"), PoolEnd: netip.MustParseAddr("10.201.86.29"), LeaseTime: time.Minute})
	start := time.Now()
	r.setClock(start)
	laptop := &client{mac: laptopMAC}
	a := addrOf(r.bind(laptop).msg.YourIPAddr)
	r.setClock(start.Add(5 * time.Minute)) // the laptop slept; its lease lapsed
	// The flood: 60 devices at once, each completing its exchange.
	flood := map[string]*client{}
	for i := range 60 {
		c := &client{mac: net.HardwareAddr{2, 0xee, 0, 0, byte(i >> 8), byte(i)}}
		flood[c.mac.String()] = c
		r.send(c.msg(dhcpv4.MessageTypeDiscover))
	}
	for {
		got, err := r.recv(300*time.Millisecond, 68)
		if err != nil {
			break
		}
		if c := flood[got.msg.ClientHWAddr.String()]; c != nil && got.msg.MessageType() == dhcpv4.MessageTypeOffer {
			r.send(c.msg(dhcpv4.MessageTypeRequest, requestFor(got.msg)...))
		}
	}
	late := &client{mac: net.HardwareAddr{2, 0xee, 0, 0, 1, 0}}
	r.send(late.msg(dhcpv4.MessageTypeDiscover))
	r.expectNothing(200 * time.Millisecond)
	st := r.srv.Stats()
	if st.PoolFree != 0 || st.PoolExhausted == 0 || st.ActiveLeases != 19 {
		t.Fatalf("the flood did not fill the pool: %+v", st)
	}
	if got := addrOf(r.bind(laptop).msg.YourIPAddr); got != a {
		t.Fatalf("the owner's laptop got %v after the flood, want %v", got, a)
	}
}

func TestConfigValidate(t *testing.T) {
	lanP := boxLAN
	for _, tt := range []struct {
		cfg  Config
		want string
	}{
		{Config{PoolStart: netip.MustParseAddr("10.201.87.5")}, "dhcp.pool_start"},
		{Config{PoolEnd: netip.MustParseAddr("10.201.86.255")}, "dhcp.pool_end"},
		{Config{PoolStart: netip.MustParseAddr("10.201.86.50"), PoolEnd: netip.MustParseAddr("10.201.86.40")}, "comes before"},
		{Config{LeaseTime: time.Second}, "dhcp.lease_time"},
		{Config{Domain: "bad_domain"}, "dhcp.domain"},
		{Config{Search: []string{"ok", "-bad"}}, "dhcp.search[1]"},
		{Config{MTU: 100}, "dhcp.mtu"},
		{Config{Reservations: []Reservation{{MAC: "zz", Address: netip.MustParseAddr("10.201.86.5")}}}, "dhcp.reservation[0].mac"},
		{Config{Reservations: []Reservation{{MAC: "02:00:00:00:00:01", Address: netip.MustParseAddr("10.201.86.1")}}}, "dhcp.reservation[0].address"},
		{Config{Reservations: []Reservation{
			{MAC: "02:00:00:00:00:01", Address: netip.MustParseAddr("10.201.86.5")},
			{MAC: "02:00:00:00:00:02", Address: netip.MustParseAddr("10.201.86.5")}}}, "dhcp.reservation[1].address"},
	} {
		err := tt.cfg.WithDefaults(lanP).Validate(lanP)
		if err == nil || !bytes.Contains([]byte(err.Error()), []byte(tt.want)) {
			t.Errorf("%+v: error %v, want one naming %s", tt.cfg, err, tt.want)
		}
	}
	c := Config{}.WithDefaults(lanP)
	if err := c.Validate(lanP); err != nil {
		t.Fatal(err)
	}
	if c.PoolStart != netip.MustParseAddr("10.201.86.2") || c.PoolEnd != netip.MustParseAddr("10.201.86.254") ||
		c.LeaseTime != DefaultLeaseTime || c.Domain != DefaultDomain || len(c.Search) != 1 || c.MTU != 1500 {
		t.Fatalf("defaults %+v", c)
	}
	if s, e := DefaultPool(netip.MustParsePrefix("192.168.5.254/24")); s != netip.MustParseAddr("192.168.5.1") || e != netip.MustParseAddr("192.168.5.253") {
		t.Fatalf("default pool for a box at .254: %v-%v", s, e)
	}
	_ = rfc1035label.Labels{}
}

// TestReconfig: a new pool applies at once; a lease outside it is NAKed at its
// next renewal.
func TestReconfig(t *testing.T) {
	r := newRig(t, Config{PoolStart: netip.MustParseAddr("10.201.86.50"), PoolEnd: netip.MustParseAddr("10.201.86.60")})
	c := &client{mac: laptopMAC}
	a := addrOf(r.bind(c).msg.YourIPAddr)
	if err := r.srv.Reconfig(Config{PoolStart: netip.MustParseAddr("10.201.86.100"), PoolEnd: netip.MustParseAddr("10.201.86.110"), LeaseTime: 2 * time.Hour}); err != nil {
		t.Fatal(err)
	}
	if err := r.srv.Reconfig(Config{PoolStart: netip.MustParseAddr("10.1.1.1")}); err == nil {
		t.Fatal("Reconfig accepted a pool outside the LAN")
	}
	renew := c.msg(dhcpv4.MessageTypeRequest, dhcpv4.WithClientIP(a.AsSlice()))
	r.sendFrom(renew, netip.AddrPortFrom(a, 68), netip.AddrPortFrom(boxLAN.Addr(), 67), boxMAC)
	r.expect(dhcpv4.MessageTypeNak)
	ack := r.bind(c).msg
	if got := addrOf(ack.YourIPAddr); got.Compare(netip.MustParseAddr("10.201.86.100")) < 0 || ack.IPAddressLeaseTime(0) != 2*time.Hour {
		t.Fatalf("after reconfig: %v for %v", got, ack.IPAddressLeaseTime(0))
	}
}

// TestContinues: the reader puts requests ahead of DISCOVERs.
func TestContinues(t *testing.T) {
	c := &client{mac: laptopMAC}
	for _, tt := range []struct {
		b    []byte
		want bool
	}{
		{c.msg(dhcpv4.MessageTypeDiscover).ToBytes(), false},
		{c.msg(dhcpv4.MessageTypeRequest).ToBytes(), true},
		{c.msg(dhcpv4.MessageTypeRelease).ToBytes(), true},
		{c.msg(dhcpv4.MessageTypeInform, dhcpv4.WithOption(dhcpv4.OptHostName("x"))).ToBytes(), true},
		{nil, false},
		{make([]byte, 300), false},
		{append(c.msg(dhcpv4.MessageTypeRequest).ToBytes()[:240], 53), false},
		{append(c.msg(dhcpv4.MessageTypeRequest).ToBytes()[:240], 0, 0, 12, 200, 1), false},
	} {
		if got := continues(tt.b); got != tt.want {
			t.Errorf("continues(%x...) = %v, want %v", tt.b[:min(len(tt.b), 8)], got, tt.want)
		}
	}
}

// TestEncode: replies decode with the library they are meant to interoperate
// with, carry every option once, and put the relay agent's option last.
func TestEncode(t *testing.T) {
	req := (&client{mac: laptopMAC}).msg(dhcpv4.MessageTypeRequest,
		dhcpv4.WithGatewayIP(net.IP{10, 201, 86, 100}),
		dhcpv4.WithOption(dhcpv4.OptClientIdentifier([]byte{1, 2, 3})),
		dhcpv4.WithGeneric(dhcpv4.OptionRelayAgentInformation, []byte{1, 2, 'a', 'b'}))
	s := &Server{box: boxLAN.Addr().As4()}
	r := s.newReply(req, dhcpv4.MessageTypeAck)
	r.YourIPAddr = net.IP{10, 201, 86, 7}
	cfg := Config{Search: []string{"a.example", "b.example"}}.WithDefaults(boxLAN)
	bc := batchCtx{opts: compileOptions(cfg, boxLAN), captive: "http://x/"}
	bc.prepare()
	b := encode(r, bc.withLease)
	m, err := dhcpv4.FromBytes(b)
	if err != nil {
		t.Fatal(err)
	}
	if m.OpCode != dhcpv4.OpcodeBootReply || m.TransactionID != req.TransactionID || !m.YourIPAddr.Equal(net.IP{10, 201, 86, 7}) ||
		!m.GatewayIPAddr.Equal(net.IP{10, 201, 86, 100}) || !bytes.Equal(m.ClientHWAddr, laptopMAC) || len(b) < 300 {
		t.Fatalf("header: %s", m.Summary())
	}
	for code, want := range map[uint8][]byte{
		optMessageType: {5}, optServerID: {10, 201, 86, 1}, optClientID: {1, 2, 3}, optRelayInfo: {1, 2, 'a', 'b'},
		optCaptivePortal: []byte("http://x/"), optLeaseTime: {0, 0, 0xa8, 0xc0}, optMTU: {5, 0xdc},
	} {
		if !bytes.Equal(m.Options[code], want) {
			t.Errorf("option %d: %x, want %x", code, m.Options[code], want)
		}
	}
	if got := m.DomainSearch().Labels; len(got) != 2 || got[1] != "b.example" {
		t.Errorf("search %v", got)
	}
	// Walk the options: each once, 82 last.
	seen, last := map[byte]bool{}, byte(0)
	for i := 240; i < len(b) && b[i] != 255; i += 2 + int(b[i+1]) {
		if seen[b[i]] {
			t.Errorf("option %d twice", b[i])
		}
		seen[b[i]], last = true, b[i]
	}
	if last != optRelayInfo {
		t.Errorf("last option %d, want 82", last)
	}
}

// TestPerMACLimit: a client that sends far more than a client in trouble would is
// answered only up to its limit; others are not affected.
func TestPerMACLimit(t *testing.T) {
	r := newRig(t, Config{})
	chatty := &client{mac: net.HardwareAddr{2, 0, 0, 0, 0, 0x33}}
	for range 60 {
		r.send(chatty.msg(dhcpv4.MessageTypeDiscover))
	}
	st := r.waitStats(func(s Stats) bool { return s.Received >= 60 })
	if st.Dropped["rate-limited"] < 30 || st.Offers > perMACBurst+5 {
		t.Fatalf("60 DISCOVERs from one MAC at once: %d offers, %d rate-limited", st.Offers, st.Dropped["rate-limited"])
	}
	for {
		if _, err := r.recv(100*time.Millisecond, 68); err != nil {
			break // drain the offers
		}
	}
	r.bind(&client{mac: laptopMAC})
}
