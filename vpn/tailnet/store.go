package tailnet

import (
	"errors"

	"tailscale.com/ipn"

	"github.com/redoubt/redoubt/vault"
)

// stateBucket is where the node's state (its keys, its profile) lives in the vault.
const stateBucket = "tailnet"

// vaultStore keeps the node's state in the sealed vault, never in a plain file:
// tsnet accepts any ipn.StateStore.
type vaultStore struct{ v vault.Store }

var _ ipn.StateStore = vaultStore{}

func (s vaultStore) ReadState(id ipn.StateKey) ([]byte, error) {
	b, err := s.v.Get(stateBucket, string(id))
	if errors.Is(err, vault.ErrNotFound) {
		return nil, ipn.ErrStateNotExist
	}
	return b, err
}

func (s vaultStore) WriteState(id ipn.StateKey, bs []byte) error {
	return s.v.Put(stateBucket, string(id), bs)
}

// Forget deletes the node's state (leaving the team mesh, factory reset).
func Forget(v vault.Store) error {
	keys, err := v.List(stateBucket)
	if err != nil {
		return err
	}
	for _, k := range keys {
		if err := v.Delete(stateBucket, k); err != nil {
			return err
		}
	}
	return nil
}
