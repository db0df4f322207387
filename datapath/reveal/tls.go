package reveal

import (
	"math"

	"golang.org/x/crypto/cryptobyte"
)

const (
	tlsRecordHandshake   = 22
	tlsRecordHeaderLen   = 5
	tlsHandshakeHeader   = 4
	tlsClientHello       = 1
	tlsExtServerName     = 0
	tlsServerNameHost    = 0
	tlsMaxRecordFragment = 1<<14 + 2048 // the largest fragment any TLS version allows
)

// TLSServerName returns the server name (SNI) from a TLS record holding a ClientHello,
// in the form Summary.Name holds. The bytes may stop anywhere, as the first TCP segment
// of a connection does: the name is returned when its extension is complete. A
// ClientHello split over several handshake records is joined first.
func TLSServerName(record []byte) (name string, ok bool) {
	hs, ok := tlsHandshake(record)
	if !ok {
		return "", false
	}
	sni, ok := clientHelloServerName(hs)
	if !ok {
		return "", false
	}
	return cleanName(sni), true
}

// isTLSClientHello reports whether b opens like a TLS record carrying a ClientHello, as
// far as b goes.
func isTLSClientHello(b []byte) bool {
	if len(b) < 3 || b[0] != tlsRecordHandshake || b[1] != 3 || b[2] > 4 {
		return false
	}
	return len(b) <= tlsRecordHeaderLen || b[tlsRecordHeaderLen] == tlsClientHello
}

// tlsHandshake returns the handshake bytes that the handshake records at the start of
// b carry, as far as b goes. It allocates only when the first handshake message
// continues into a further record.
func tlsHandshake(b []byte) ([]byte, bool) {
	frag, rest, ok := tlsRecordFragment(b)
	if !ok {
		return nil, false
	}
	if len(rest) == 0 || len(frag) >= tlsHandshakeMsgLen(frag) {
		return frag, true
	}
	// The message goes on in the next records (a client, or software that wants to
	// slip past inspection, split it): join their fragments. Every record takes at
	// least 6 bytes of b, so this is linear in len(b).
	joined := append([]byte(nil), frag...)
	for len(rest) > 0 && len(joined) < tlsHandshakeMsgLen(joined) {
		if frag, rest, ok = tlsRecordFragment(rest); !ok {
			break
		}
		joined = append(joined, frag...)
	}
	return joined, true
}

// tlsHandshakeMsgLen returns the length of the handshake message at the start of hs,
// header included, or the most an int holds while its header is incomplete.
func tlsHandshakeMsgLen(hs []byte) int {
	if len(hs) < tlsHandshakeHeader {
		return math.MaxInt
	}
	return tlsHandshakeHeader + (int(hs[1])<<16 | int(hs[2])<<8 | int(hs[3]))
}

// tlsRecordFragment splits the handshake record at the start of b into its fragment
// (cut short if b is) and the bytes after it.
func tlsRecordFragment(b []byte) (frag, rest []byte, ok bool) {
	if len(b) < tlsRecordHeaderLen || b[0] != tlsRecordHandshake || b[1] != 3 {
		return nil, nil, false
	}
	n := int(b[3])<<8 | int(b[4])
	if n == 0 || n > tlsMaxRecordFragment {
		return nil, nil, false
	}
	b = b[tlsRecordHeaderLen:]
	if n >= len(b) {
		return b, nil, true
	}
	return b[:n], b[n:], true
}

// clientHelloServerName returns the host_name of the server_name extension of the
// ClientHello handshake message at the start of hs, which TLS over TCP and QUIC's
// CRYPTO frames both carry. hs may be cut short: what matters is that everything up to
// and including the server_name extension is there.
func clientHelloServerName(hs []byte) ([]byte, bool) {
	if len(hs) < tlsHandshakeHeader || hs[0] != tlsClientHello {
		return nil, false
	}
	bodyLen := int(hs[1])<<16 | int(hs[2])<<8 | int(hs[3])
	body := hs[tlsHandshakeHeader:]
	if len(body) > bodyLen {
		body = body[:bodyLen]
	}
	s := cryptobyte.String(body)
	var sessionID, suites, compression cryptobyte.String
	if !s.Skip(2+32) || // legacy_version, random
		!s.ReadUint8LengthPrefixed(&sessionID) ||
		!s.ReadUint16LengthPrefixed(&suites) ||
		!s.ReadUint8LengthPrefixed(&compression) {
		return nil, false
	}
	var extLen uint16
	if !s.ReadUint16(&extLen) {
		return nil, false
	}
	exts := s
	if len(exts) > int(extLen) {
		exts = exts[:extLen]
	}
	for !exts.Empty() {
		var typ uint16
		var ext cryptobyte.String
		if !exts.ReadUint16(&typ) || !exts.ReadUint16LengthPrefixed(&ext) {
			return nil, false // cut short before the server_name extension ended
		}
		if typ != tlsExtServerName {
			continue
		}
		var list cryptobyte.String
		if !ext.ReadUint16LengthPrefixed(&list) {
			return nil, false
		}
		for !list.Empty() {
			var nameType uint8
			var host cryptobyte.String
			if !list.ReadUint8(&nameType) || !list.ReadUint16LengthPrefixed(&host) {
				return nil, false
			}
			if nameType == tlsServerNameHost && len(host) > 0 {
				return host, true
			}
		}
		return nil, false
	}
	return nil, false
}
