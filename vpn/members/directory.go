package members

import (
	"fmt"
	"strconv"
)

// id is a member's stable identifier: the coordination server's user id and
// when the box added the member. Renames keep both; a member added again
// later, even under a reused user id, gets another.
func (r record) id() string {
	return strconv.FormatUint(r.UserID, 10) + "-" + strconv.FormatInt(r.Created.UnixNano(), 36)
}

// Entry is a member as the apps see them: who, and which of the
// coordination server's users their devices belong to.
type Entry struct {
	ID     string
	Name   string
	UserID uint64
}

// Directory lists the members from the box's own records, without asking
// Headscale: the apps look callers up in it on every request.
func (m *Manager) Directory() ([]Entry, error) {
	recs, err := m.records()
	if err != nil {
		return nil, fmt.Errorf("listing the members: %w", err)
	}
	out := make([]Entry, len(recs))
	for i, r := range recs {
		out[i] = Entry{ID: r.id(), Name: r.Name, UserID: r.UserID}
	}
	return out, nil
}
