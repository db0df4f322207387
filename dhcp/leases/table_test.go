package leases

import (
	"errors"
	"fmt"
	"net/netip"
	"testing"
	"time"
)

var (
	t0  = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	lan = netip.MustParsePrefix("10.201.86.1/24")
)

func ip(s string) netip.Addr { return netip.MustParseAddr(s) }

func mac(n byte) [6]byte { return [6]byte{0x02, 0x52, 0x44, 0, 0, n} }

func dev(n byte) Client { return Client{MAC: mac(n)} }

func newTable(t testing.TB, start, end string, res map[[6]byte]netip.Addr) *Table {
	t.Helper()
	tb, err := New(Config{LAN: lan, Start: ip(start), End: ip(end), LeaseTime: time.Hour, Reservations: res})
	if err != nil {
		t.Fatal(err)
	}
	return tb
}

// step is one thing a device does to the table, and what should come of it.
type step struct {
	at      time.Duration // since t0
	op      string        // offer, request, release, decline, cancel, sweep
	who     Client
	addr    string // requested or named address
	want    string // address offered or bound ("" for none)
	wantErr error
}

func run(t *testing.T, tb *Table, steps []step) {
	t.Helper()
	for i, s := range steps {
		now := t0.Add(s.at)
		var a netip.Addr
		if s.addr != "" {
			a = ip(s.addr)
		}
		var got netip.Addr
		var err error
		switch s.op {
		case "offer":
			got, err = tb.Offer(s.who, a, now)
		case "request":
			var l Lease
			l, err = tb.Request(s.who, a, now)
			got = l.Addr
			if err == nil && !l.Expiry.Equal(now.Add(time.Hour)) {
				t.Fatalf("step %d: expiry %v, want %v", i, l.Expiry, now.Add(time.Hour))
			}
		case "release":
			if _, ok := tb.Release(s.who, a, now); ok {
				got = a
			}
		case "decline":
			if _, ok := tb.Decline(s.who, a, now); ok {
				got = a
			}
		case "cancel":
			tb.CancelOffer(s.who)
		case "sweep":
			tb.Sweep(now)
		default:
			t.Fatalf("step %d: unknown op %q", i, s.op)
		}
		if !errors.Is(err, s.wantErr) {
			t.Fatalf("step %d (%s by %x at +%v): error %v, want %v", i, s.op, s.who.MAC, s.at, err, s.wantErr)
		}
		want := netip.Addr{}
		if s.want != "" {
			want = ip(s.want)
		}
		if got != want {
			t.Fatalf("step %d (%s by %x at +%v): got %v, want %v", i, s.op, s.who.MAC, s.at, got, want)
		}
		checkInvariants(t, tb, now)
	}
}

// checkInvariants verifies what must hold whatever happened: one live lease per
// address and per device, every address inside the LAN, the occupancy bitmap
// matching the entries.
func checkInvariants(t *testing.T, tb *Table, now time.Time) {
	t.Helper()
	devices := map[string]netip.Addr{}
	for _, l := range tb.Leases() {
		if !tb.onLAN(l.Addr) {
			t.Fatalf("lease %v is not on the LAN", l.Addr)
		}
		if l.Declined {
			continue
		}
		k := leaseKey(&l)
		if prev, dup := devices[k]; dup {
			t.Fatalf("device %x holds two records: %v and %v", l.MAC, prev, l.Addr)
		}
		devices[k] = l.Addr
	}
	var used uint32
	for a := range tb.byAddr {
		if tb.inPool(a) {
			used++
		}
	}
	if used != tb.used {
		t.Fatalf("bitmap counts %d used pool addresses, entries say %d", tb.used, used)
	}
	for k, a := range tb.offerOf {
		if e := tb.byAddr[a]; e == nil || e.offerKey != k {
			t.Fatalf("offerOf[%q] = %v, but the entry does not hold that offer", k, a)
		}
	}
}

func TestAllocation(t *testing.T) {
	a, b := dev(1), dev(2)
	withID := Client{MAC: mac(1), ClientID: []byte{1, 2, 0x52, 0x44, 0, 0, 1}}
	tests := []struct {
		name  string
		pool  [2]string
		res   map[[6]byte]netip.Addr
		steps []step
	}{
		{"discover then request binds the offered address", [2]string{"10.201.86.10", "10.201.86.20"}, nil, []step{
			{op: "offer", who: a, want: "10.201.86.18"},
			{op: "request", who: a, addr: "10.201.86.18", want: "10.201.86.18"},
			{op: "offer", who: a, want: "10.201.86.18"}, // DISCOVER again: same address
		}},
		{"requested address honoured when free", [2]string{"10.201.86.10", "10.201.86.20"}, nil, []step{
			{op: "offer", who: a, addr: "10.201.86.12", want: "10.201.86.12"},
			{op: "offer", who: b, addr: "10.201.86.12", want: "10.201.86.17"}, // offered to a: b gets another
		}},
		{"requested address outside the pool is not offered", [2]string{"10.201.86.10", "10.201.86.20"}, nil, []step{
			{op: "offer", who: a, addr: "10.201.86.99", want: "10.201.86.18"},
		}},
		{"renewal extends the same lease", [2]string{"10.201.86.10", "10.201.86.20"}, nil, []step{
			{op: "request", who: a, addr: "10.201.86.11", want: "10.201.86.11"},
			{at: 30 * time.Minute, op: "request", who: a, addr: "10.201.86.11", want: "10.201.86.11"},
			{at: 89 * time.Minute, op: "request", who: a, addr: "10.201.86.11", want: "10.201.86.11"},
		}},
		{"a live lease is never given to another device", [2]string{"10.201.86.10", "10.201.86.20"}, nil, []step{
			{op: "request", who: a, addr: "10.201.86.11", want: "10.201.86.11"},
			{op: "request", who: b, addr: "10.201.86.11", wantErr: ErrTaken},
			{op: "offer", who: b, addr: "10.201.86.11", want: "10.201.86.17"},
		}},
		{"same address back after expiry", [2]string{"10.201.86.10", "10.201.86.20"}, nil, []step{
			{op: "request", who: b, addr: "10.201.86.10", want: "10.201.86.10"}, // b is the owner
			{op: "request", who: a, addr: "10.201.86.11", want: "10.201.86.11"},
			{at: 5 * time.Hour, op: "offer", who: a, want: "10.201.86.11"},
			{at: 5 * time.Hour, op: "request", who: a, addr: "10.201.86.11", want: "10.201.86.11"},
		}},
		{"expired lease of another device is reclaimable by request", [2]string{"10.201.86.10", "10.201.86.20"}, nil, []step{
			{op: "request", who: dev(9), addr: "10.201.86.10", want: "10.201.86.10"}, // the owner
			{op: "request", who: a, addr: "10.201.86.11", want: "10.201.86.11"},
			{at: 30 * time.Minute, op: "request", who: b, addr: "10.201.86.11", wantErr: ErrTaken},
			{at: 2 * time.Hour, op: "request", who: b, addr: "10.201.86.11", want: "10.201.86.11"},
			{at: 2 * time.Hour, op: "offer", who: a, want: "10.201.86.18"}, // a lost it; gets its hash address
		}},
		{"release keeps the record: same address next time", [2]string{"10.201.86.10", "10.201.86.20"}, nil, []step{
			{op: "request", who: a, addr: "10.201.86.13", want: "10.201.86.13"},
			{at: time.Minute, op: "release", who: b, addr: "10.201.86.13"}, // not b's
			{at: time.Minute, op: "release", who: a, addr: "10.201.86.13", want: "10.201.86.13"},
			{at: time.Minute, op: "release", who: a, addr: "10.201.86.13"}, // already released
			{at: 2 * time.Minute, op: "offer", who: a, want: "10.201.86.13"},
		}},
		{"INIT-REBOOT: request without offer, authoritative", [2]string{"10.201.86.10", "10.201.86.20"}, nil, []step{
			{op: "request", who: a, addr: "10.201.86.15", want: "10.201.86.15"},
			{op: "request", who: b, addr: "10.201.85.15", wantErr: ErrNotOnLAN},
			{op: "request", who: b, addr: "10.201.86.1", wantErr: ErrNotOnLAN},   // the box
			{op: "request", who: b, addr: "10.201.86.255", wantErr: ErrNotOnLAN}, // broadcast
			{op: "request", who: b, addr: "10.201.86.50", wantErr: ErrNotInPool},
		}},
		{"a device that moves keeps one record", [2]string{"10.201.86.10", "10.201.86.20"}, nil, []step{
			{op: "request", who: a, addr: "10.201.86.15", want: "10.201.86.15"},
			{op: "request", who: a, addr: "10.201.86.16", want: "10.201.86.16"},
			{op: "request", who: b, addr: "10.201.86.15", want: "10.201.86.15"},
		}},
		{"reservation: only its MAC gets it, even outside the pool", [2]string{"10.201.86.10", "10.201.86.20"},
			map[[6]byte]netip.Addr{mac(1): ip("10.201.86.50"), mac(3): ip("10.201.86.12")}, []step{
				{op: "offer", who: a, want: "10.201.86.50"},
				{op: "request", who: a, addr: "10.201.86.50", want: "10.201.86.50"},
				{op: "request", who: b, addr: "10.201.86.12", wantErr: ErrReserved},
				{op: "request", who: b, addr: "10.201.86.50", wantErr: ErrReserved},
				{op: "offer", who: b, addr: "10.201.86.12", want: "10.201.86.17"},
				{op: "offer", who: dev(3), want: "10.201.86.12"},
			}},
		{"client identifier and MAC identify the same laptop", [2]string{"10.201.86.10", "10.201.86.20"}, nil, []step{
			{op: "request", who: withID, addr: "10.201.86.17", want: "10.201.86.17"},
			{op: "offer", who: a, want: "10.201.86.17"}, // same MAC, no client ID (another DHCP client)
			{op: "request", who: a, addr: "10.201.86.17", want: "10.201.86.17"},
		}},
		{"decline holds the address back, then frees it", [2]string{"10.201.86.10", "10.201.86.11"}, nil, []step{
			{op: "request", who: dev(9), addr: "10.201.86.10", want: "10.201.86.10"}, // the owner
			{op: "offer", who: a, want: "10.201.86.11"},
			{op: "decline", who: b, addr: "10.201.86.11"}, // not offered to b
			{op: "decline", who: a, addr: "10.201.86.11", want: "10.201.86.11"},
			{op: "offer", who: a, wantErr: ErrExhausted}, // nothing left: .10 is the owner's, .11 declined
			{op: "request", who: b, addr: "10.201.86.11", wantErr: ErrDeclined},
			{at: 11 * time.Minute, op: "sweep"},
			{at: 11 * time.Minute, op: "offer", who: b, want: "10.201.86.11"},
		}},
		{"exhaustion: no offer, live leases keep renewing", [2]string{"10.201.86.10", "10.201.86.11"}, nil, []step{
			{op: "request", who: a, addr: "10.201.86.10", want: "10.201.86.10"},
			{op: "request", who: b, addr: "10.201.86.11", want: "10.201.86.11"},
			{op: "offer", who: dev(3), wantErr: ErrExhausted},
			{op: "request", who: dev(3), addr: "10.201.86.11", wantErr: ErrTaken},
			{at: 40 * time.Minute, op: "request", who: a, addr: "10.201.86.10", want: "10.201.86.10"},
			{at: 40 * time.Minute, op: "request", who: b, addr: "10.201.86.11", want: "10.201.86.11"},
		}},
		{"exhaustion: an expired lease is reclaimed, the owner's is not", [2]string{"10.201.86.10", "10.201.86.11"}, nil, []step{
			{op: "request", who: a, addr: "10.201.86.10", want: "10.201.86.10"}, // a: owner
			{at: 10 * time.Minute, op: "request", who: b, addr: "10.201.86.11", want: "10.201.86.11"},
			{at: 3 * time.Hour, op: "offer", who: dev(3), want: "10.201.86.11"},
			{at: 3 * time.Hour, op: "offer", who: dev(4), wantErr: ErrExhausted},
			{at: 3 * time.Hour, op: "request", who: dev(4), addr: "10.201.86.10", wantErr: ErrReserved},
			{at: 3 * time.Hour, op: "offer", who: a, want: "10.201.86.10"},
		}},
		{"offers are taken back oldest first when nothing else is free", [2]string{"10.201.86.10", "10.201.86.11"}, nil, []step{
			{op: "request", who: dev(9), addr: "10.201.86.10", want: "10.201.86.10"},
			{op: "offer", who: a, want: "10.201.86.11"},
			{at: time.Second, op: "offer", who: b, want: "10.201.86.11"},                             // a's offer taken back
			{at: 2 * time.Second, op: "request", who: a, addr: "10.201.86.11", want: "10.201.86.11"}, // a REQUEST wins over b's offer
			{at: 2 * time.Second, op: "request", who: b, addr: "10.201.86.11", wantErr: ErrTaken},
		}},
		{"cancelled and lapsed offers free the address", [2]string{"10.201.86.10", "10.201.86.11"}, nil, []step{
			{op: "request", who: dev(9), addr: "10.201.86.10", want: "10.201.86.10"},
			{op: "offer", who: a, want: "10.201.86.11"},
			{op: "cancel", who: a},
			{op: "offer", who: b, want: "10.201.86.11"},
			{at: time.Minute, op: "sweep"},
			{at: time.Minute, op: "offer", who: a, want: "10.201.86.11"},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			run(t, newTable(t, tt.pool[0], tt.pool[1], tt.res), tt.steps)
		})
	}
}

// TestFloodCannotStarveOwner: a flood of complete exchanges from random MACs
// takes every free address, but not the owner's, and not a reservation; and the
// owner gets its address back after its lease lapsed.
// TestBoxInsidePool: the box's own address, inside the pool, is never offered.
func TestBoxInsidePool(t *testing.T) {
	tb, err := New(Config{LAN: netip.MustParsePrefix("10.201.86.2/24"), Start: ip("10.201.86.1"), End: ip("10.201.86.3"), LeaseTime: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	run(t, tb, []step{
		{op: "offer", who: dev(10), want: "10.201.86.3"},
		{op: "request", who: dev(10), addr: "10.201.86.3", want: "10.201.86.3"},
		{op: "offer", who: dev(11), want: "10.201.86.1"},
		{op: "request", who: dev(11), addr: "10.201.86.1", want: "10.201.86.1"},
		{op: "offer", who: dev(12), wantErr: ErrExhausted},
		{op: "request", who: dev(12), addr: "10.201.86.2", wantErr: ErrNotOnLAN},
	})
	if c := tb.Counts(t0); c.PoolSize != 2 || c.Free != 0 {
		t.Fatalf("counts %+v, want a pool of 2 with none free", c)
	}
}

func TestFloodCannotStarveOwner(t *testing.T) {
	res := map[[6]byte]netip.Addr{mac(200): ip("10.201.86.40")}
	tb := newTable(t, "10.201.86.10", "10.201.86.60", res)
	owner := dev(1)
	l, err := tb.Request(owner, ip("10.201.86.30"), t0)
	if err != nil || !l.Owner {
		t.Fatalf("owner's first lease: %+v %v", l, err)
	}
	now := t0.Add(2 * time.Hour) // the owner's lease has lapsed
	bound := 0
	for i := range 5000 {
		c := Client{MAC: [6]byte{0x02, 0xee, byte(i >> 16), byte(i >> 8), byte(i), 1}}
		a, err := tb.Offer(c, netip.Addr{}, now)
		if err != nil {
			continue
		}
		if _, err := tb.Request(c, a, now); err == nil {
			bound++
		}
	}
	if bound != 49 { // 51 addresses, less the owner's and the reservation
		t.Fatalf("flood bound %d addresses, want 49", bound)
	}
	if a, err := tb.Offer(owner, netip.Addr{}, now); err != nil || a != ip("10.201.86.30") {
		t.Fatalf("owner after the flood: offered %v, %v; want 10.201.86.30", a, err)
	}
	if a, err := tb.Offer(dev(200), netip.Addr{}, now); err != nil || a != ip("10.201.86.40") {
		t.Fatalf("reserved device after the flood: offered %v, %v; want 10.201.86.40", a, err)
	}
	checkInvariants(t, tb, now)
}

// TestDiscoverFloodCannotBlockBinding: offers to random MACs never keep a device
// from binding.
func TestDiscoverFloodCannotBlockBinding(t *testing.T) {
	tb := newTable(t, "10.201.86.10", "10.201.86.20", nil)
	laptop := dev(1)
	a, err := tb.Offer(laptop, netip.Addr{}, t0)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 1000 {
		c := Client{MAC: [6]byte{0x02, 0xee, 0, byte(i >> 8), byte(i), 1}}
		tb.Offer(c, netip.Addr{}, t0.Add(time.Millisecond))
	}
	if _, err := tb.Request(laptop, a, t0.Add(time.Second)); err != nil {
		t.Fatalf("laptop's REQUEST after a DISCOVER flood: %v", err)
	}
	if got := len(tb.offerOf); got > 11 {
		t.Fatalf("%d offers outstanding for an 11-address pool", got)
	}
	checkInvariants(t, tb, t0.Add(time.Second))
}

func TestChangesAndLoad(t *testing.T) {
	tb := newTable(t, "10.201.86.10", "10.201.86.20", nil)
	if _, err := tb.Request(dev(1), ip("10.201.86.10"), t0); err != nil {
		t.Fatal(err)
	}
	tb.Offer(dev(2), netip.Addr{}, t0) // offers are not persisted
	put, del := tb.Changes()
	if len(put) != 1 || len(del) != 0 || put[0].Addr != ip("10.201.86.10") || !put[0].Owner {
		t.Fatalf("changes after one binding: put %+v del %v", put, del)
	}
	tb.MarkClean()
	if tb.Dirty() {
		t.Fatal("dirty after MarkClean")
	}
	// The device moves: the old record goes, the new one comes.
	if _, err := tb.Request(dev(1), ip("10.201.86.12"), t0.Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	put, del = tb.Changes()
	if len(put) != 1 || len(del) != 1 || del[0] != ip("10.201.86.10") {
		t.Fatalf("changes after a move: put %+v del %v", put, del)
	}

	// A new table loaded from the records knows the device and its owner flag.
	tb2 := newTable(t, "10.201.86.10", "10.201.86.20", nil)
	skipped := tb2.Load(append(tb.Leases(), Lease{Addr: ip("192.168.1.5"), MAC: mac(7), Expiry: t0.Add(time.Hour)}))
	if len(skipped) != 1 {
		t.Fatalf("skipped %v, want the off-LAN record", skipped)
	}
	if a, err := tb2.Offer(dev(1), netip.Addr{}, t0.Add(3*time.Hour)); err != nil || a != ip("10.201.86.12") {
		t.Fatalf("after reload: %v %v", a, err)
	}
	if l, _ := tb2.Lookup(ip("10.201.86.12")); !l.Owner {
		t.Fatal("owner flag lost on reload")
	}
	checkInvariants(t, tb2, t0)
}

func TestSetConfigShrinksPool(t *testing.T) {
	tb := newTable(t, "10.201.86.10", "10.201.86.20", nil)
	if _, err := tb.Request(dev(1), ip("10.201.86.20"), t0); err != nil {
		t.Fatal(err)
	}
	if err := tb.SetConfig(Config{LAN: lan, Start: ip("10.201.86.10"), End: ip("10.201.86.15"), LeaseTime: time.Hour}); err != nil {
		t.Fatal(err)
	}
	if _, err := tb.Request(dev(1), ip("10.201.86.20"), t0.Add(time.Minute)); !errors.Is(err, ErrNotInPool) {
		t.Fatalf("renewing outside the new pool: %v, want ErrNotInPool", err)
	}
	if a, err := tb.Offer(dev(1), netip.Addr{}, t0.Add(time.Minute)); err != nil || !tb.inPool(a) {
		t.Fatalf("offer after shrinking: %v %v", a, err)
	}
	tb.Sweep(t0.Add(2 * time.Hour))
	if _, ok := tb.Lookup(ip("10.201.86.20")); ok {
		t.Fatal("a lapsed record outside the pool was kept")
	}
	checkInvariants(t, tb, t0)
}

func TestConfigErrors(t *testing.T) {
	for _, c := range []Config{
		{LAN: lan, Start: ip("10.201.86.10"), End: ip("10.201.86.9"), LeaseTime: time.Hour},
		{LAN: lan, Start: ip("10.201.86.0"), End: ip("10.201.86.9"), LeaseTime: time.Hour},
		{LAN: lan, Start: ip("10.201.86.2"), End: ip("10.201.87.9"), LeaseTime: time.Hour},
		{LAN: lan, Start: ip("10.201.86.2"), End: ip("10.201.86.9")},
		{LAN: lan, Start: ip("10.201.86.2"), End: ip("10.201.86.9"), LeaseTime: time.Hour,
			Reservations: map[[6]byte]netip.Addr{mac(1): ip("10.201.86.1")}},
	} {
		if _, err := New(c); err == nil {
			t.Errorf("New(%+v) accepted", c)
		}
	}
}

// TestLargePool: a /16 pool fills and empties at a steady cost.
func TestLargePool(t *testing.T) {
	tb, err := New(Config{LAN: netip.MustParsePrefix("10.201.0.1/16"), Start: ip("10.201.0.2"), End: ip("10.201.255.254"), LeaseTime: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	seen := map[netip.Addr]bool{}
	n := 65533
	for i := range n {
		c := Client{MAC: [6]byte{0x02, 0, 0, byte(i >> 16), byte(i >> 8), byte(i)}}
		a, err := tb.Offer(c, netip.Addr{}, t0)
		if err != nil {
			t.Fatalf("offer %d: %v", i, err)
		}
		if seen[a] {
			t.Fatalf("offer %d: %v offered twice", i, a)
		}
		seen[a] = true
		if _, err := tb.Request(c, a, t0); err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
	}
	if _, err := tb.Offer(dev(1), netip.Addr{}, t0); !errors.Is(err, ErrExhausted) {
		t.Fatalf("full /16: %v, want ErrExhausted", err)
	}
	if c := tb.Counts(t0); c.Free != 0 || c.Active != n {
		t.Fatalf("counts %+v", c)
	}
}

func BenchmarkOfferRequest(b *testing.B) {
	tb, err := New(Config{LAN: netip.MustParsePrefix("10.201.0.1/16"), Start: ip("10.201.0.2"), End: ip("10.201.255.254"), LeaseTime: time.Hour})
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for i := range b.N {
		c := Client{MAC: [6]byte{0x02, 0, 0, byte(i >> 16), byte(i >> 8), byte(i)}}
		a, err := tb.Offer(c, netip.Addr{}, t0)
		if err != nil {
			b.Fatal(fmt.Errorf("offer %d: %w", i, err))
		}
		if _, err := tb.Request(c, a, t0); err != nil {
			b.Fatal(err)
		}
		if i%60000 == 59999 {
			tb.Sweep(t0.Add(2 * time.Hour)) // nothing to sweep; keeps the loop honest
			b.StopTimer()
			tb, _ = New(tb.Config())
			b.StartTimer()
		}
	}
}
