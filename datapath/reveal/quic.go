package reveal

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/sha256"
	"encoding/binary"
)

// QUIC versions whose Initial packets this package opens.
const (
	quicVersion1 = 0x00000001 // RFC 9000
	quicVersion2 = 0x6b3343cf // RFC 9369
)

// The salts Initial secrets are extracted with (RFC 9001 section 5.2, RFC 9369
// section 3.3.1).
const (
	quicSaltV1 = "\x38\x76\x2c\xf7\xf5\x59\x34\xb3\x4d\x17\x9a\xe6\xa4\xc8\x0c\xad\xcc\xbb\x7f\x0a"
	quicSaltV2 = "\x0d\xed\xe3\xde\xf7\x00\xa6\xdb\x81\x93\x81\xbe\x6e\x26\x9d\xcb\xf9\xbd\x2e\xd9"
)

const (
	quicMaxCIDLen       = 20 // RFC 9000 section 17.2, for versions 1 and 2
	quicPNMaxLen        = 4
	quicSampleLen       = 16
	quicTagLen          = 16
	quicMaxCryptoFrames = 64 // CRYPTO frames kept from one packet; Chrome sends a handful
)

// QUIC frame types an Initial packet from a client carries before its ClientHello is
// done (RFC 9000 section 12.4). Anything else ends the walk.
const (
	quicFramePadding = 0x00
	quicFramePing    = 0x01
	quicFrameACK     = 0x02
	quicFrameACKECN  = 0x03
	quicFrameCrypto  = 0x06
	quicACKFields    = 4 // largest acknowledged, delay, range count, first range
	quicACKECNCounts = 3
)

// QUICServerName returns the server name (SNI) in the ClientHello that the QUIC
// version 1 or 2 Initial packet opening datagram carries, in the form Summary.Name
// holds. Only the first packet of a coalesced datagram is read. ok is false when the
// packet is not a client Initial that opens with these keys, or when the ClientHello
// part it holds ends before the server_name extension does.
func QUICServerName(datagram []byte) (name string, ok bool) {
	var q quicOpener
	_, sni, ok := q.serverName(datagram)
	if !ok {
		return "", false
	}
	return cleanName(sni), true
}

// quicOpener removes the protection of client Initial packets. It keeps the keys of
// the last Destination Connection ID it saw, since a client resends its Initials with
// the same one, and the buffers of the last packet.
type quicOpener struct {
	version uint32
	dcid    [quicMaxCIDLen]byte
	dcidLen int
	aead    cipher.AEAD
	hp      cipher.Block
	iv      [12]byte

	// Scratch space, kept here rather than on the stack because it is handed to
	// interface methods and would escape anyway.
	nonce  [12]byte
	mask   [aes.BlockSize]byte
	packet []byte // a copy of the packet, decrypted in place
	crypto []byte // the CRYPTO stream from offset 0 on, as far as it is contiguous
	segs   [quicMaxCryptoFrames]quicCryptoSegment
}

// quicCryptoSegment is the data of one CRYPTO frame.
type quicCryptoSegment struct {
	off  uint64
	data []byte
}

// quicInitialHeader is what parseQUICInitial reads of a long header.
type quicInitialHeader struct {
	version  uint32
	dcid     []byte
	pnOffset int    // where the protected packet number starts
	length   uint64 // of packet number and payload, as the header claims
}

// parseQUICInitial reads the long header of a version 1 or 2 Initial packet at the
// start of b (RFC 9000 section 17.2.2, RFC 9369 section 3.2).
func parseQUICInitial(b []byte) (h quicInitialHeader, ok bool) {
	const versionEnd = 5
	if len(b) < versionEnd+1 || b[0]&0x80 == 0 {
		return h, false
	}
	h.version = binary.BigEndian.Uint32(b[1:versionEnd])
	typ := (b[0] >> 4) & 0x3
	switch {
	case h.version == quicVersion1 && typ == 0b00:
	case h.version == quicVersion2 && typ == 0b01:
	default:
		return h, false
	}
	off := versionEnd
	dcidLen := int(b[off])
	off++
	if dcidLen > quicMaxCIDLen || off+dcidLen >= len(b) {
		return h, false
	}
	h.dcid = b[off : off+dcidLen]
	off += dcidLen
	scidLen := int(b[off])
	off++
	if scidLen > quicMaxCIDLen || off+scidLen > len(b) {
		return h, false
	}
	off += scidLen
	tokenLen, n := readVarint(b[off:])
	if n == 0 || tokenLen > uint64(len(b)-off-n) {
		return h, false
	}
	off += n + int(tokenLen)
	h.length, n = readVarint(b[off:])
	if n == 0 {
		return h, false
	}
	h.pnOffset = off + n
	return h, true
}

// serverName opens the Initial packet at the start of datagram and returns the SNI of
// the ClientHello in it. isInitial reports whether the datagram opens with a version 1
// or 2 Initial long header, whatever became of the rest. sni points into q's buffers.
func (q *quicOpener) serverName(datagram []byte) (isInitial bool, sni []byte, ok bool) {
	h, isInitial := parseQUICInitial(datagram)
	if !isInitial {
		return false, nil, false
	}
	if h.length < quicPNMaxLen+quicSampleLen || h.length > uint64(len(datagram)-h.pnOffset) {
		return true, nil, false // too short to sample, or cut short
	}
	if !q.setKeys(h.version, h.dcid) {
		return true, nil, false
	}
	end := h.pnOffset + int(h.length)
	q.packet = append(q.packet[:0], datagram[:end]...)
	pkt := q.packet

	// Remove header protection (RFC 9001 section 5.4).
	sample := pkt[h.pnOffset+quicPNMaxLen : h.pnOffset+quicPNMaxLen+quicSampleLen]
	q.hp.Encrypt(q.mask[:], sample)
	pkt[0] ^= q.mask[0] & 0x0f
	pnLen := int(pkt[0]&0x3) + 1
	var pn uint64
	for i := range pnLen {
		pkt[h.pnOffset+i] ^= q.mask[1+i]
		pn = pn<<8 | uint64(pkt[h.pnOffset+i])
	}
	hdrEnd := h.pnOffset + pnLen
	if end-hdrEnd < quicTagLen {
		return true, nil, false
	}

	// A client's first packet numbers are small, so the truncated number is the full
	// one (RFC 9000 section 17.1 would need the largest acknowledged, which a dropped
	// packet does not come with).
	q.nonce = q.iv
	for i := range 8 {
		q.nonce[len(q.nonce)-1-i] ^= byte(pn >> (8 * i))
	}
	plain, err := q.aead.Open(pkt[hdrEnd:hdrEnd], q.nonce[:], pkt[hdrEnd:end], pkt[:hdrEnd])
	if err != nil {
		return true, nil, false
	}
	sni, ok = clientHelloServerName(q.cryptoStream(plain))
	return true, sni, ok
}

// setKeys derives the client Initial keys for dcid (RFC 9001 section 5.2) unless they
// are the ones already held.
func (q *quicOpener) setKeys(version uint32, dcid []byte) bool {
	if q.aead != nil && q.version == version && bytes.Equal(q.dcid[:q.dcidLen], dcid) {
		return true
	}
	q.aead = nil
	salt, keyLabel, ivLabel, hpLabel := quicSaltV1, "quic key", "quic iv", "quic hp"
	if version == quicVersion2 {
		salt, keyLabel, ivLabel, hpLabel = quicSaltV2, "quicv2 key", "quicv2 iv", "quicv2 hp"
	}
	initial, err := hkdf.Extract(sha256.New, dcid, []byte(salt))
	if err != nil {
		return false
	}
	client, err := hkdfExpandLabel(initial, "client in", sha256.Size)
	if err != nil {
		return false
	}
	key, err := hkdfExpandLabel(client, keyLabel, 16)
	if err != nil {
		return false
	}
	iv, err := hkdfExpandLabel(client, ivLabel, len(q.iv))
	if err != nil {
		return false
	}
	hpKey, err := hkdfExpandLabel(client, hpLabel, 16)
	if err != nil {
		return false
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return false
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return false
	}
	hp, err := aes.NewCipher(hpKey)
	if err != nil {
		return false
	}
	q.version = version
	q.dcidLen = copy(q.dcid[:], dcid)
	q.aead, q.hp = aead, hp
	copy(q.iv[:], iv)
	return true
}

// hkdfExpandLabel is TLS 1.3's HKDF-Expand-Label with an empty context (RFC 8446
// section 7.1), which QUIC derives its keys with.
func hkdfExpandLabel(secret []byte, label string, length int) ([]byte, error) {
	const prefix = "tls13 "
	info := make([]byte, 0, 2+1+len(prefix)+len(label)+1)
	info = binary.BigEndian.AppendUint16(info, uint16(length))
	info = append(info, byte(len(prefix)+len(label)))
	info = append(info, prefix...)
	info = append(info, label...)
	info = append(info, 0)
	return hkdf.Expand(sha256.New, secret, string(info), length)
}

// cryptoStream walks the frames of a decrypted Initial payload and returns the CRYPTO
// data from offset 0 on, as far as the CRYPTO frames in this packet make it
// contiguous. Frames may come in any order (Chrome shuffles them).
func (q *quicOpener) cryptoStream(p []byte) []byte {
	nseg := 0
walk:
	for len(p) > 0 {
		typ := p[0]
		p = p[1:]
		switch typ {
		case quicFramePadding, quicFramePing:
		case quicFrameACK, quicFrameACKECN:
			var ok bool
			if p, ok = skipACK(p, typ == quicFrameACKECN); !ok {
				break walk
			}
		case quicFrameCrypto:
			off, n := readVarint(p)
			if n == 0 {
				break walk
			}
			p = p[n:]
			length, n := readVarint(p)
			if n == 0 || length > uint64(len(p)-n) {
				break walk
			}
			p = p[n:]
			if nseg < len(q.segs) {
				q.segs[nseg] = quicCryptoSegment{off: off, data: p[:length]}
				nseg++
			}
			p = p[length:]
		default:
			break walk
		}
	}

	// Each pass appends the segment that continues the stream; a pass that finds
	// none ends it. At most nseg passes of nseg segments.
	q.crypto = q.crypto[:0]
	var end uint64
	for progress := true; progress; {
		progress = false
		for _, s := range q.segs[:nseg] {
			if s.off <= end && s.off+uint64(len(s.data)) > end {
				q.crypto = append(q.crypto, s.data[end-s.off:]...)
				end = s.off + uint64(len(s.data))
				progress = true
			}
		}
	}
	clear(q.segs[:nseg])
	return q.crypto
}

// skipACK skips the body of an ACK frame (RFC 9000 section 19.3).
func skipACK(p []byte, ecn bool) ([]byte, bool) {
	var ranges uint64
	for i := range quicACKFields {
		v, n := readVarint(p)
		if n == 0 {
			return nil, false
		}
		p = p[n:]
		if i == 2 {
			ranges = v
		}
	}
	// Each further range is a gap and a length of at least a byte each.
	if ranges > uint64(len(p))/2 {
		return nil, false
	}
	fields := 2 * int(ranges)
	if ecn {
		fields += quicACKECNCounts
	}
	for range fields {
		_, n := readVarint(p)
		if n == 0 {
			return nil, false
		}
		p = p[n:]
	}
	return p, true
}

// readVarint reads a QUIC variable-length integer (RFC 9000 section 16); n is 0 when
// b is too short to hold it.
func readVarint(b []byte) (v uint64, n int) {
	if len(b) == 0 {
		return 0, 0
	}
	n = 1 << (b[0] >> 6)
	if len(b) < n {
		return 0, 0
	}
	v = uint64(b[0] & 0x3f)
	for _, c := range b[1:n] {
		v = v<<8 | uint64(c)
	}
	return v, n
}
