package dhcp_test

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"

	"github.com/redoubt/redoubt/lab"
	"github.com/redoubt/redoubt/lab/labtest"
)

// relayLoad is a DHCP load generator in the laptop's namespace acting as a relay
// agent (giaddr = the laptop's static address, as perfdhcp does): many clients,
// each binding an address and then renewing it again and again, so that the box
// commits lease changes continuously. It records every ACK it receives.
type relayLoad struct {
	conn   *net.UDPConn
	relay  netip.Addr
	server *net.UDPAddr
	sid    net.IP
	pace   time.Duration

	mu      sync.Mutex
	clients []*loadClient
	byXID   map[uint32]*loadClient
	acked   map[string]netip.Addr // MAC → last ACKed address
	acks    int
	xid     uint32
}

type loadClient struct {
	mac      net.HardwareAddr
	addr     netip.Addr // bound address, once ACKed
	offered  net.IP
	xid      uint32
	msg      []byte
	sent     time.Time
	nextSend time.Time
}

func newRelayLoad(e *labtest.Env, n int, pace time.Duration) (*relayLoad, error) {
	r := &relayLoad{
		relay:  lab.LaptopStatic.Addr(),
		server: &net.UDPAddr{IP: lab.BoxLAN.AsSlice(), Port: 67},
		sid:    lab.BoxLAN.AsSlice(),
		pace:   pace,
		byXID:  map[uint32]*loadClient{},
		acked:  map[string]netip.Addr{},
	}
	err := e.Lab.Do(lab.Laptop, func() error {
		c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: r.relay.AsSlice(), Port: 67})
		r.conn = c
		return err
	})
	if err != nil {
		return nil, err
	}
	for i := range n {
		r.clients = append(r.clients, &loadClient{mac: net.HardwareAddr{0x02, 0x4c, 0x4f, 0x41, byte(i >> 8), byte(i)}})
	}
	return r, nil
}

func (r *relayLoad) message(c *loadClient, mt dhcpv4.MessageType, mods ...dhcpv4.Modifier) {
	r.xid++
	c.xid = r.xid
	m := &dhcpv4.DHCPv4{
		OpCode: dhcpv4.OpcodeBootRequest, HWType: 1, HopCount: 1, ClientHWAddr: c.mac,
		TransactionID: dhcpv4.TransactionID{byte(c.xid >> 24), byte(c.xid >> 16), byte(c.xid >> 8), byte(c.xid)},
		ClientIPAddr:  net.IPv4zero, YourIPAddr: net.IPv4zero, ServerIPAddr: net.IPv4zero,
		GatewayIPAddr: r.relay.AsSlice(), Options: dhcpv4.Options{},
	}
	m.UpdateOption(dhcpv4.OptMessageType(mt))
	for _, f := range mods {
		f(m)
	}
	c.msg = m.ToBytes()
	r.byXID[c.xid] = c
}

// run drives the clients until ctx ends.
func (r *relayLoad) run(ctx context.Context) {
	go r.receive(ctx)
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-tick.C:
			r.mu.Lock()
			for _, c := range r.clients {
				switch {
				case c.msg == nil: // start: DISCOVER
					r.message(c, dhcpv4.MessageTypeDiscover)
				case now.Before(c.nextSend):
					continue
				case now.Sub(c.sent) < 300*time.Millisecond:
					continue // waiting for an answer
				}
				c.sent, c.nextSend = now, now
				r.conn.WriteTo(c.msg, r.server)
			}
			r.mu.Unlock()
		}
	}
}

func (r *relayLoad) receive(ctx context.Context) {
	buf := make([]byte, 2048)
	for ctx.Err() == nil {
		r.conn.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
		n, _, err := r.conn.ReadFrom(buf)
		if err != nil {
			continue
		}
		m, err := dhcpv4.FromBytes(buf[:n])
		if err != nil {
			continue
		}
		xid := uint32(m.TransactionID[0])<<24 | uint32(m.TransactionID[1])<<16 | uint32(m.TransactionID[2])<<8 | uint32(m.TransactionID[3])
		r.mu.Lock()
		c := r.byXID[xid]
		if c == nil || c.xid != xid {
			r.mu.Unlock()
			continue
		}
		delete(r.byXID, xid)
		now := time.Now()
		switch m.MessageType() {
		case dhcpv4.MessageTypeOffer:
			c.offered = m.YourIPAddr
			r.message(c, dhcpv4.MessageTypeRequest,
				dhcpv4.WithOption(dhcpv4.OptRequestedIPAddress(c.offered)), dhcpv4.WithOption(dhcpv4.OptServerIdentifier(r.sid)))
			c.sent, c.nextSend = now, now
			r.conn.WriteTo(c.msg, r.server)
		case dhcpv4.MessageTypeAck:
			a, _ := netip.AddrFromSlice(m.YourIPAddr.To4())
			c.addr = a
			r.acked[c.mac.String()] = a
			r.acks++
			// Renew, paced under the box's per-MAC limit.
			r.message(c, dhcpv4.MessageTypeRequest, dhcpv4.WithClientIP(a.AsSlice()))
			c.sent, c.nextSend = time.Time{}, now.Add(r.pace)
		case dhcpv4.MessageTypeNak:
			r.message(c, dhcpv4.MessageTypeDiscover)
			c.sent, c.nextSend = time.Time{}, now
		}
		r.mu.Unlock()
	}
}

func (r *relayLoad) snapshot() (map[string]netip.Addr, int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	m := make(map[string]netip.Addr, len(r.acked))
	for k, v := range r.acked {
		m[k] = v
	}
	return m, r.acks
}

// TestKill9DuringLeaseTraffic kills the box with SIGKILL while 200 clients bind
// and renew as fast as the box lets them, restarts it, and checks that every
// lease a client was granted (got an ACK for) is there, on the address it was
// granted, and that the lease file was not damaged. Twice.
func TestKill9DuringLeaseTraffic(t *testing.T) {
	e := env(t, "")
	ctx := context.Background()
	if err := e.Lab.LaptopStatic(ctx); err != nil {
		t.Fatal(err)
	}
	load, err := newRelayLoad(e, 200, 150*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	defer load.conn.Close()
	lctx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { load.run(lctx); close(done) }()
	defer func() { stop(); <-done }()

	for round := range 2 {
		// Let the traffic build up: wait for this round's share of ACKs.
		_, before := load.snapshot()
		deadline := time.Now().Add(20 * time.Second)
		for {
			_, acks := load.snapshot()
			if acks-before >= 1500 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("round %d: only %d ACKs in 20s (box counters %+v)", round, acks-before, devices(t, e).Counters)
			}
			time.Sleep(20 * time.Millisecond)
		}
		if err := e.Box.Signal(syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		if err := e.Box.Wait(5 * time.Second); err == nil || !isKilled(err) {
			t.Fatalf("round %d: the box did not die of SIGKILL: %v", round, err)
		}
		granted, acks := load.snapshot()
		t.Logf("round %d: killed the box after %d ACKs to %d clients", round, acks, len(granted))

		e.Box = nil // dead: start a new one
		e.RestartBox(t, e.Lab.BoxConfig(boxDHCP))
		d := devices(t, e)
		have := map[string]netip.Addr{}
		for _, l := range d.Leases {
			if l.State == "bound" || l.State == "expired" {
				have[l.MAC] = l.Address
			}
		}
		lost := 0
		for mac, a := range granted {
			if have[mac] != a {
				lost++
				if lost <= 5 {
					t.Errorf("round %d: %s was granted %v; after kill -9 the box has %v", round, mac, a, have[mac])
				}
			}
		}
		if lost > 0 {
			t.Fatalf("round %d: %d of %d granted leases lost", round, lost, len(granted))
		}
		if m, _ := filepath.Glob(filepath.Join(e.Lab.Dir, "box-state", "dhcp-leases.db.corrupt-*")); len(m) > 0 {
			t.Fatalf("round %d: the lease file was found damaged: %v", round, m)
		}
		t.Logf("round %d: all %d granted leases back after restart (%d records)", round, len(granted), len(d.Leases))
	}
}

func isKilled(err error) bool {
	var ee interface{ Sys() any }
	if errors.As(err, &ee) {
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok {
			return ws.Signaled() && ws.Signal() == syscall.SIGKILL
		}
	}
	return false
}
