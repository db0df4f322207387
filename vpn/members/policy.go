package members

import (
	"encoding/json"
	"fmt"
	"regexp"
	"strings"
)

// DefaultBoxTag is the tag the box's own tailnet node carries. The box's node
// is a tagged node (owned by no member: Headscale lists it under its special
// user "tagged-devices"), registered with a key from BoxKey, so that the policy
// can name it apart from every member's devices.
const DefaultBoxTag = "tag:redoubt-box"

// MembersGroup is the policy's group of the members this box added.
const MembersGroup = "group:redoubt-members"

// Policy is what the owner decides about who reaches whom in the tailnet. The
// box writes it as Headscale's policy (see Render); members' devices reach
// nothing that it does not name.
type Policy struct {
	// BoxTag is the tag of the box's own node (default DefaultBoxTag). The
	// tailnet room registers the box's node with a key from BoxKey, which
	// carries it.
	BoxTag string `json:"box_tag"`
	// MembersReachEachOther lets members' devices reach one another (off by
	// default: each member reaches only the box).
	MembersReachEachOther bool `json:"members_reach_each_other"`
}

var tagPattern = regexp.MustCompile(`^tag:[a-z][a-z0-9-]{0,62}$`)

// Validate names the bad field.
func (p Policy) Validate() error {
	if p.BoxTag != "" && !tagPattern.MatchString(p.BoxTag) {
		return fmt.Errorf("policy box_tag %q: want tag: and a lowercase name (letters, digits, hyphens, starting with a letter), such as %s", p.BoxTag, DefaultBoxTag)
	}
	return nil
}

func (p Policy) withDefaults() Policy {
	if p.BoxTag == "" {
		p.BoxTag = DefaultBoxTag
	}
	return p
}

// Render writes p as Headscale v0.29's policy (HuJSON, grants) for the given
// members (Headscale user names, already validated):
//
//   - every member's devices reach the box's node, on any port and protocol
//     (what answers there is the box's business: only the services it serves
//     on its tailnet address);
//   - the box's node reaches every member's devices (the owner's laptop reaches
//     team devices through the box, which forwards from its own node);
//   - with MembersReachEachOther, members' devices reach each other;
//   - nothing else: a grant list denies what it does not allow, so devices of
//     users this box did not add reach nothing, and nobody reaches them.
//
// The box's tag has no owners: only a key the box makes (BoxKey) can put a node
// under it, never a member's `tailscale up --advertise-tags`.
func Render(p Policy, boxName string, members []string) string {
	p = p.withDefaults()
	q := func(s string) string { b, _ := json.Marshal(s); return string(b) }
	users := make([]string, 0, len(members))
	for _, m := range members {
		users = append(users, q(m+"@"))
	}
	var b strings.Builder
	fmt.Fprintf(&b, "// Written by the Redoubt box %s from its members page: edits made here\n", oneLine(boxName))
	b.WriteString("// are replaced at the next member change.\n{\n")
	fmt.Fprintf(&b, "  \"groups\": {\n    %s: [%s],\n  },\n", q(MembersGroup), strings.Join(users, ", "))
	fmt.Fprintf(&b, "  \"tagOwners\": {\n    // Only keys the box makes put a node under its tag.\n    %s: [],\n  },\n", q(p.BoxTag))
	b.WriteString("  \"grants\": [\n")
	b.WriteString("    // Members reach the box.\n")
	fmt.Fprintf(&b, "    {\"src\": [%s], \"dst\": [%s], \"ip\": [\"*\"]},\n", q(MembersGroup), q(p.BoxTag))
	b.WriteString("    // The box reaches members (the owner's laptop reaches them through it).\n")
	fmt.Fprintf(&b, "    {\"src\": [%s], \"dst\": [%s], \"ip\": [\"*\"]},\n", q(p.BoxTag), q(MembersGroup))
	if p.MembersReachEachOther {
		b.WriteString("    // Members reach each other (the owner allowed it).\n")
		fmt.Fprintf(&b, "    {\"src\": [%s], \"dst\": [%s], \"ip\": [\"*\"]},\n", q(MembersGroup), q(MembersGroup))
	}
	b.WriteString("  ],\n}\n")
	return b.String()
}

// oneLine keeps a name on the comment's line.
func oneLine(s string) string {
	s = strings.Map(func(r rune) rune {
		if r < ' ' || r == 0x7f || r == '\u2028' || r == '\u2029' {
			return ' '
		}
		return r
	}, s)
	if len(s) > 80 {
		s = s[:80]
	}
	return fmt.Sprintf("%q", s)
}
