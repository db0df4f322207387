package lan

import (
	"log/slog"
	"net/netip"

	"github.com/redoubt/redoubt/datapath/filter"
	"github.com/redoubt/redoubt/datapath/leaklog"
	"github.com/redoubt/redoubt/datapath/link"
)

// Inbound implements link.Gate. It runs on the link's single reader goroutine.
func (l *LAN) Inbound(f *link.Frame) bool {
	rules := l.rules.Load()
	v := rules.Check(f.Head, f.Len, f.GSO, f.VLAN)
	if v == malformed && len(f.Head) < f.Len {
		// A header beyond the head (a long IPv6 extension chain): look again
		// at the whole frame.
		v = rules.Check(f.Bytes(), f.Len, f.GSO, f.VLAN)
	}
	if f.Truncated {
		v = malformed
	}
	if v.Action == filter.Accept {
		if c := l.udpServiceFor(f.Head); c != nil {
			// A UDP service served without the netstack (udpconn.go): it
			// checks the datagram's checksum itself.
			l.serveUDP(c, f)
			return false
		}
	}
	if v.Action != filter.Drop && !f.ChecksumOK && !filter.TransportChecksumOK(f.Bytes()) {
		v = malformed
	}
	switch v.Action {
	case filter.Accept, filter.Reveal, filter.Relay:
		// For Reveal, the responder records the attempt once it has read
		// what the connection reveals.
		l.learn(f.Head)
		return true
	}
	l.recordFrame(f.Bytes(), v.Kind)
	return false
}

var malformed = filter.Verdict{Action: filter.Drop, Kind: filter.Malformed}

// Outbound implements link.Gate: the tripwire on what the box transmits.
func (l *LAN) Outbound(hdr []byte) bool {
	if l.rules.Load().CheckOutbound(hdr) {
		return true
	}
	if ok, n := l.logRate.Allow(l.now()); ok {
		l.log.Error("refused to transmit a frame the LAN port must never send",
			slog.Int("header_bytes", len(hdr)), slog.Int("suppressed", n))
	}
	return false
}

// recordFrame decodes a dropped frame and records it in the leak log.
func (l *LAN) recordFrame(frame []byte, kind filter.Kind) {
	s := l.dec.Decode(frame)
	a := leaklog.Attempt{
		Kind:    kind,
		MAC:     s.SrcMAC,
		Src:     s.Src,
		Dst:     s.Dst,
		Proto:   s.Proto,
		DstPort: s.DstPort,
		App:     s.App,
		Name:    s.Name,
	}
	l.record(a, frame)
}

// record adds an attempt to the leak log and logs it, rate-limited.
func (l *LAN) record(a leaklog.Attempt, frame []byte) {
	l.leaks.Record(a, frame)
	if a.Kind != filter.Egress && a.Name == "" {
		return // routine link chatter: counted, not logged
	}
	if ok, n := l.logRate.Allow(l.now()); ok {
		l.log.Info("stopped",
			slog.String("kind", a.Kind.String()),
			slog.String("proto", a.Proto),
			slog.String("src", addrString(a.Src)),
			slog.String("dst", addrString(a.Dst)),
			slog.Int("port", int(a.DstPort)),
			slog.String("app", a.App),
			slog.String("name", a.Name),
			slog.Int("suppressed", n))
	}
}

func addrString(a netip.Addr) string {
	if !a.IsValid() {
		return ""
	}
	return a.String()
}
