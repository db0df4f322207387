package leaklog

import (
	"fmt"
	"io"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/gopacket/gopacket/pcapgo"
)

// WritePcap writes the most recent dropped frames, oldest first, as a pcap file
// that Wireshark and tcpdump read.
func (l *Log) WritePcap(w io.Writer) error {
	l.mu.Lock()
	frames := make([]frame, 0, len(l.frames))
	for i := range l.frames {
		f := l.frames[(l.next+i)%len(l.frames)]
		if f.data == nil {
			continue
		}
		f.data = append([]byte(nil), f.data...)
		frames = append(frames, f)
	}
	snap := l.cfg.SnapLen
	l.mu.Unlock()

	pw := pcapgo.NewWriter(w)
	if err := pw.WriteFileHeader(uint32(snap), layers.LinkTypeEthernet); err != nil {
		return fmt.Errorf("writing pcap header: %w", err)
	}
	for _, f := range frames {
		ci := gopacket.CaptureInfo{Timestamp: f.at, CaptureLength: len(f.data), Length: f.size}
		if err := pw.WritePacket(ci, f.data); err != nil {
			return fmt.Errorf("writing pcap record: %w", err)
		}
	}
	return nil
}

// subscriber is one live-feed reader.
type subscriber struct {
	ch      chan Entry
	dropped uint64
}

// offer sends without blocking: a slow reader misses updates (it can re-read
// Entries) rather than slowing the datapath.
func (s *subscriber) offer(e Entry) {
	select {
	case s.ch <- e:
	default:
		s.dropped++
	}
}

// Subscribe returns a channel that receives each entry as it is created or
// updated, and a function that ends the subscription and closes the channel.
// buf is the channel's capacity; updates beyond it are skipped.
func (l *Log) Subscribe(buf int) (<-chan Entry, func()) {
	if buf < 1 {
		buf = 1
	}
	s := &subscriber{ch: make(chan Entry, buf)}
	l.mu.Lock()
	l.subs[s] = struct{}{}
	l.mu.Unlock()
	var once bool
	return s.ch, func() {
		l.mu.Lock()
		defer l.mu.Unlock()
		if once {
			return
		}
		once = true
		delete(l.subs, s)
		close(s.ch)
	}
}
