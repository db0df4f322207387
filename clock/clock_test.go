package clock

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// loopDialer is an egress.Dialer on loopback, counting dials.
type loopDialer struct{ dials atomic.Int32 }

func (d *loopDialer) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	d.dials.Add(1)
	var nd net.Dialer
	return nd.DialContext(ctx, network, addr)
}
func (d *loopDialer) ListenPacket(context.Context, string, string) (net.PacketConn, error) {
	return nil, errors.New("no")
}
func (d *loopDialer) LookupNetIP(context.Context, string) ([]netip.Addr, error) {
	return nil, errors.New("no")
}

// ntpServer answers with its clock skew ahead of ours; bad makes it send
// junk first.
func ntpServer(t *testing.T, skew time.Duration, mangle func([]byte) []byte) string {
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close() })
	go func() {
		buf := make([]byte, 512)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			rx := time.Now().Add(skew)
			resp := Answer(buf[:n], rx, time.Now().Add(skew))
			if mangle != nil {
				resp = mangle(resp)
			}
			if resp != nil {
				pc.WriteTo(resp, from)
			}
		}
	}()
	return pc.LocalAddr().String()
}

func TestQuery(t *testing.T) {
	d := &loopDialer{}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	off, err := Query(ctx, d, ntpServer(t, 3*time.Hour, nil))
	if err != nil {
		t.Fatal(err)
	}
	if off < 3*time.Hour-time.Second || off > 3*time.Hour+time.Second {
		t.Fatalf("offset %s, want about 3h", off)
	}
	// An answer that does not echo our request is ignored (then: timeout).
	forged := ntpServer(t, 0, func(b []byte) []byte { b[24] ^= 0xff; return b })
	qctx, qcancel := context.WithTimeout(ctx, 300*time.Millisecond)
	defer qcancel()
	if _, err := Query(qctx, d, forged); err == nil || !strings.Contains(err.Error(), "no answer") {
		t.Fatalf("a forged answer: %v", err)
	}
	kod := ntpServer(t, 0, func(b []byte) []byte { b[1] = 0; copy(b[12:], "RATE"); return b })
	if _, err := Query(ctx, d, kod); err == nil || !strings.Contains(err.Error(), "kiss") {
		t.Fatalf("kiss-o'-death: %v", err)
	}
	unsynced := ntpServer(t, 0, func(b []byte) []byte { b[0] |= 3 << 6; return b })
	if _, err := Query(ctx, d, unsynced); err == nil || !strings.Contains(err.Error(), "not synchronized") {
		t.Fatalf("unsynchronized server: %v", err)
	}
}

func TestClockWaitsThenSyncs(t *testing.T) {
	d := &loopDialer{}
	good := ntpServer(t, 2*time.Hour, nil)
	var set atomic.Int64
	c, err := New(Config{Servers: []string{good, good, "127.0.0.1:9"}, SetSystem: true}, Deps{Dialer: d,
		SetSystemTime: func(t time.Time) error { set.Store(t.Unix()); return errors.New("not on a test machine") }})
	if err != nil {
		t.Fatal(err)
	}
	if c.Synced() {
		t.Fatal("synced before asking")
	}
	if st := c.Status(); !strings.Contains(st.Waiting, "not yet synced through the VPN") {
		t.Fatalf("status %+v", st)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	if err := c.Wait(ctx); !errors.Is(err, ErrNotSynced) {
		t.Fatalf("wait: %v", err)
	}
	cancel()
	run, stop := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { c.Run(run); close(done) }()
	wctx, wcancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer wcancel()
	if err := c.Wait(wctx); err != nil {
		t.Fatal(err)
	}
	stop()
	<-done
	if d := c.Now().Sub(time.Now()); d < 2*time.Hour-time.Second || d > 2*time.Hour+time.Second {
		t.Fatalf("Now is %s ahead, want 2h", d)
	}
	if set.Load() == 0 {
		t.Error("SetSystem did not try to set the system clock")
	}
	if st := c.Status(); !st.Synced || st.Server != good {
		t.Fatalf("status %+v", st)
	}
}

func TestConfig(t *testing.T) {
	for _, bad := range []Config{{Source: "gps"}, {Servers: []string{":"}}, {Every: Duration{time.Second}}} {
		if err := bad.WithDefaults().Validate(); err == nil {
			t.Errorf("%+v accepted", bad)
		}
	}
	c, err := New(Config{Source: "system"}, Deps{})
	if err != nil || !c.Synced() {
		t.Fatalf("system clock: %v", err)
	}
	if _, err := New(Config{}, Deps{}); err == nil {
		t.Fatal("ntp without a dialer")
	}
}

func TestNTPTime(t *testing.T) {
	for _, tm := range []time.Time{time.Date(2026, 12, 6, 10, 0, 0, 500_000_000, time.UTC), time.Date(2040, 1, 1, 0, 0, 0, 0, time.UTC)} {
		if got := ntpTime(NTPTime(tm)); got.Sub(tm).Abs() > time.Microsecond {
			t.Errorf("%s came back as %s", tm, got)
		}
	}
}

// FuzzAnswer: NTP answers come from the network.
func FuzzAnswer(f *testing.F) {
	req := make([]byte, 48)
	req[0] = 0x23
	f.Add(Answer(req, time.Now(), time.Now()))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		parseAnswer(b, req[40:48], time.Now(), time.Now())
	})
}
