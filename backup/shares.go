package backup

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/redoubt/redoubt/audit"
	"github.com/redoubt/redoubt/backup/recovery"
	"github.com/redoubt/redoubt/vault"
)

// shareSet is how the recovery key is split, kept in the vault.
type shareSet struct {
	K       int           `json:"k"`
	N       int           `json:"n"`
	Holders []ShareHolder `json:"holders"`
	Set     string        `json:"set"`
}

// Split splits the recovery key k of len(members) ways, one share per
// member, replacing any earlier split (those shares then no longer combine
// with the new ones: a new set). Each member sees their share on their
// members' page until they say they have saved it.
func (e *Engine) Split(k int, members []string) ([]ShareHolder, error) {
	key, err := e.RecoveryKey()
	if err != nil {
		return nil, err
	}
	if len(members) < 2 || k < 2 || k > len(members) {
		return nil, &FieldError{"shares", fmt.Sprintf("%d of %d members: choose at least 2 members, and between 2 and %d of them needed", k, len(members), len(members))}
	}
	seen := map[string]bool{}
	for _, m := range members {
		if m == "" || seen[m] {
			return nil, &FieldError{"shares", fmt.Sprintf("member %q is listed twice or empty", m)}
		}
		seen[m] = true
	}
	shares, err := recovery.Split(key, len(members), k)
	if err != nil {
		return nil, &FieldError{"shares", err.Error()}
	}
	old, _ := e.shares()
	for _, h := range old.Holders {
		e.d.Vault.Delete(bucket, sharePrefix+h.Member)
	}
	set := shareSet{K: k, N: len(members), Set: fmt.Sprintf("%X", key.SetID())}
	for i, m := range members {
		if err := e.d.Vault.Put(bucket, sharePrefix+m, []byte(shares[i].String())); err != nil {
			return nil, err
		}
		set.Holders = append(set.Holders, ShareHolder{Member: m, Number: shares[i].Number})
	}
	if err := e.putShares(set); err != nil {
		return nil, err
	}
	e.d.Audit.Record(audit.Event{Kind: audit.KindBackup, Action: "split the recovery key", Actor: audit.ActorOwner,
		Subject: fmt.Sprintf("%d of %d", k, len(members)), Detail: "held by " + strings.Join(members, ", ")})
	return set.Holders, nil
}

func (e *Engine) shares() (shareSet, error) {
	var s shareSet
	b, err := e.d.Vault.Get(bucket, keyShares)
	if errors.Is(err, vault.ErrNotFound) {
		return s, nil
	}
	if err != nil {
		return s, err
	}
	return s, json.Unmarshal(b, &s)
}

func (e *Engine) putShares(s shareSet) error {
	b, _ := json.Marshal(s)
	if err := e.d.Vault.Put(bucket, keyShares, b); err != nil {
		return err
	}
	e.mu.Lock()
	e.status.SharesK, e.status.SharesN, e.status.ShareHolders = s.K, s.N, slices.Clone(s.Holders)
	e.mu.Unlock()
	e.saveStatus()
	return nil
}

// MemberShare is what a member's page shows them.
type MemberShare struct {
	Share  string // "" once saved (the box forgot it)
	Number int
	K, N   int
	Set    string
	Saved  bool
}

// ShareFor returns a member's share, if they hold one.
func (e *Engine) ShareFor(member string) (MemberShare, bool, error) {
	s, err := e.shares()
	if err != nil {
		return MemberShare{}, false, err
	}
	for _, h := range s.Holders {
		if h.Member == member {
			ms := MemberShare{Number: h.Number, K: s.K, N: s.N, Set: s.Set, Saved: h.Saved}
			if !h.Saved {
				b, err := e.d.Vault.Get(bucket, sharePrefix+member)
				if err != nil {
					return ms, true, err
				}
				ms.Share = string(b)
			}
			return ms, true, nil
		}
	}
	return MemberShare{}, false, nil
}

// ShareSaved records that a member keeps their share: the box forgets it.
func (e *Engine) ShareSaved(member string) error {
	s, err := e.shares()
	if err != nil {
		return err
	}
	for i, h := range s.Holders {
		if h.Member == member && !h.Saved {
			s.Holders[i].Saved = true
			if err := e.d.Vault.Delete(bucket, sharePrefix+member); err != nil {
				return err
			}
			if err := e.putShares(s); err != nil {
				return err
			}
			e.d.Audit.Record(audit.Event{Kind: audit.KindBackup, Action: "share saved", Actor: "member:" + member,
				Detail: fmt.Sprintf("share %d of set %s; the box no longer keeps it", h.Number, s.Set)})
			return nil
		}
	}
	return fmt.Errorf("%s holds no share the box still keeps", member)
}
