package dhcp

import "strings"

// HostLabel reduces a name a device sent in option 12 to one DNS label: the part
// before the first dot, lower case, with every run of characters other than
// letters and digits turned into one hyphen, no hyphen at either end, at most 63
// characters. "Alice's MacBook Pro.local" becomes "alice-s-macbook-pro". It
// returns "" when nothing usable is left.
func HostLabel(name string) string {
	if i := strings.IndexByte(name, '.'); i >= 0 {
		name = name[:i]
	}
	var b strings.Builder
	hyphen := false
	for i := 0; i < len(name) && b.Len() < 63; i++ {
		c := name[i]
		switch {
		case c >= 'a' && c <= 'z', c >= '0' && c <= '9':
		case c >= 'A' && c <= 'Z':
			c += 'a' - 'A'
		default:
			if b.Len() > 0 {
				hyphen = true
			}
			continue
		}
		if hyphen {
			if b.Len() >= 62 {
				break
			}
			b.WriteByte('-')
			hyphen = false
		}
		b.WriteByte(c)
	}
	return b.String()
}

// printable keeps the printable ASCII of a string a device sent (vendor class),
// at most n bytes of it.
func printable(s string, n int) string {
	ok := true
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] > 0x7e {
			ok = false
			break
		}
	}
	if ok && len(s) <= n {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s) && b.Len() < n; i++ {
		if s[i] >= 0x20 && s[i] <= 0x7e {
			b.WriteByte(s[i])
		}
	}
	return b.String()
}
