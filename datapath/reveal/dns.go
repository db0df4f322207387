package reveal

import "encoding/binary"

// dnsHeaderLen is the fixed header every DNS, mDNS, LLMNR and NetBIOS name service
// message opens with.
const dnsHeaderLen = 12

// DNSQuestion returns the first question name of a DNS message (also mDNS and LLMNR,
// which share the format), in the form Summary.Name holds. ok is false when the
// message has no question or the name is malformed; the root name is "" with ok true.
func DNSQuestion(msg []byte) (name string, ok bool) {
	if len(msg) < dnsHeaderLen || binary.BigEndian.Uint16(msg[4:6]) == 0 {
		return "", false
	}
	var buf [maxName]byte
	text, ok := readDNSName(msg, dnsHeaderLen, &buf)
	if !ok {
		return "", false
	}
	return cleanName(text), true
}

// dnsFirstName returns the first name in a DNS message: the first question's, or when
// there is none (an mDNS announcement, a response without its question) the owner of
// the first resource record, which starts where the question would have.
func dnsFirstName(msg []byte) string {
	if len(msg) < dnsHeaderLen {
		return ""
	}
	var records uint32
	for i := 4; i < dnsHeaderLen; i += 2 {
		records += uint32(binary.BigEndian.Uint16(msg[i:]))
	}
	if records == 0 {
		return ""
	}
	var buf [maxName]byte
	text, ok := readDNSName(msg, dnsHeaderLen, &buf)
	if !ok {
		return ""
	}
	return cleanName(text)
}

// readDNSName reads the name at off in msg, following compression pointers, and
// writes its text form (labels joined by dots, no trailing dot) into buf, stopping
// when buf is full. Every pointer must land strictly before the labels that led to
// it (and after the header), so pointer chains end, loops included, after at most
// len(msg) jumps; the text cap bounds the labels read. ok is false for a truncated or
// malformed name.
func readDNSName(msg []byte, off int, buf *[maxName]byte) (text []byte, ok bool) {
	n := 0
	start := off // where the run of labels being read began
	for {
		if off >= len(msg) {
			return nil, false
		}
		l := int(msg[off])
		switch {
		case l == 0:
			return buf[:n], true
		case l&0xc0 == 0xc0:
			if off+1 >= len(msg) {
				return nil, false
			}
			target := (l&0x3f)<<8 | int(msg[off+1])
			if target >= start || target < dnsHeaderLen {
				return nil, false // a loop, a pointer forward or into the header
			}
			start, off = target, target
			continue
		case l&0xc0 != 0:
			return nil, false // extended label types (RFC 6891 retired them)
		}
		off++
		if off+l > len(msg) {
			return nil, false
		}
		if n > 0 {
			if n == len(buf) {
				return buf[:n], true
			}
			buf[n] = '.'
			n++
		}
		c := copy(buf[n:], msg[off:off+l])
		n += c
		if c < l {
			return buf[:n], true // the text cap: keep what fits
		}
		off += l
	}
}
