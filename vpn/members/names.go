package members

import (
	"fmt"
	"strings"
	"unicode/utf8"
)

// MaxNameLen is the longest member name.
const MaxNameLen = 32

// NameRule says what a member name may be, for forms and errors.
const NameRule = "1 to 32 characters: lowercase letters a-z, digits and hyphens, starting with a letter and not ending with a hyphen, such as \"alice\" or \"field-team-2\""

// reserved are names Headscale or the policy give a meaning.
var reserved = map[string]string{
	"tagged-devices": "Headscale lists tagged devices (the box's own node among them) under it",
	"autogroup":      "the policy uses it for built-in groups",
}

// ValidateName checks a member name. It becomes a Headscale user name, a word
// in the tailnet's policy and a quoted value in the enrollment scripts, so it
// is strict: see NameRule.
func ValidateName(name string) error {
	bad := func(why string) error {
		return fmt.Errorf("member name %s: %s; a name is %s", quoteName(name), why, NameRule)
	}
	switch {
	case name == "":
		return bad("empty")
	case len(name) > MaxNameLen:
		return bad(fmt.Sprintf("%d characters long", utf8.RuneCountInString(name)))
	case name[0] < 'a' || name[0] > 'z':
		return bad("does not start with a lowercase letter")
	case strings.HasSuffix(name, "-"):
		return bad("ends with a hyphen")
	}
	for i, r := range name {
		if (r < 'a' || r > 'z') && (r < '0' || r > '9') && r != '-' {
			if r >= 'A' && r <= 'Z' {
				return bad(fmt.Sprintf("has an uppercase letter at position %d (try %q)", i+1, strings.ToLower(name)))
			}
			return bad(fmt.Sprintf("has %q at position %d", r, i+1))
		}
	}
	if why, ok := reserved[name]; ok {
		return bad("is reserved: " + why)
	}
	return nil
}

// quoteName shows a (possibly hostile) name safely in a message.
func quoteName(s string) string {
	if len(s) > 40 {
		s = s[:40] + "…"
	}
	return fmt.Sprintf("%q", s)
}
