package reveal

// maxName is the longest Name a Summary carries: the longest DNS name in text form.
const maxName = 253

// cleanName turns the bytes a protocol carried as a name into the form a Summary
// holds: ASCII letters lower-cased, trailing dots dropped, at most maxName bytes, and
// every byte that is not printable ASCII other than space (control bytes, DEL, space,
// anything above 0x7e) replaced by '?', so that a name can go into a log line as it is.
// It returns "" when nothing is left.
func cleanName(b []byte) string {
	for len(b) > 0 && b[len(b)-1] == '.' {
		b = b[:len(b)-1]
	}
	if len(b) > maxName {
		b = b[:maxName]
	}
	if len(b) == 0 {
		return ""
	}
	clean := true
	for _, c := range b {
		if c <= ' ' || c >= 0x7f || ('A' <= c && c <= 'Z') {
			clean = false
			break
		}
	}
	if clean {
		return string(b)
	}
	var buf [maxName]byte
	for i, c := range b {
		switch {
		case 'A' <= c && c <= 'Z':
			c += 'a' - 'A'
		case c <= ' ' || c >= 0x7f:
			c = '?'
		}
		buf[i] = c
	}
	return string(buf[:len(b)])
}
