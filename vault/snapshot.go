package vault

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"

	bolt "go.etcd.io/bbolt"
	"golang.org/x/crypto/argon2"
)

// snapshot is the vault as a backup keeps it: its data key and every sealed
// record as they are on disk (names hidden, values sealed). A backup
// encrypts it under its own key; restoring it onto a fresh box puts the same
// records back under a passphrase chosen then.
type snapshot struct {
	Version int                          `json:"version"`
	DataKey []byte                       `json:"data_key"`
	Buckets map[string]map[string][]byte `json:"buckets"` // hidden bucket name → hidden key name (hex) → sealed record
}

// Snapshot returns the vault's whole contents with its data key: a secret,
// for the backup to encrypt at once. The vault must be unlocked.
func (v *Vault) Snapshot() ([]byte, error) {
	k, _, err := v.keys()
	if err != nil {
		return nil, err
	}
	s := snapshot{Version: formatV1, DataKey: k, Buckets: map[string]map[string][]byte{}}
	err = v.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(dataBucket).ForEachBucket(func(name []byte) error {
			b := map[string][]byte{}
			err := tx.Bucket(dataBucket).Bucket(name).ForEach(func(slot, sealed []byte) error {
				b[hex.EncodeToString(slot)] = append([]byte(nil), sealed...)
				return nil
			})
			s.Buckets[hex.EncodeToString(name)] = b
			return err
		})
	})
	if err != nil {
		return nil, fmt.Errorf("vault: snapshot: %w", err)
	}
	return json.Marshal(s)
}

// RestoreSnapshot gives a vault that has no owner yet the contents of a
// snapshot, under a new passphrase, and leaves it unlocked. Every record is
// opened once to check the snapshot is whole.
func (v *Vault) RestoreSnapshot(passphrase []byte, p Params, snap []byte) error {
	if err := p.Validate(); err != nil {
		return err
	}
	if len(passphrase) == 0 {
		return errors.New("vault: the passphrase is empty")
	}
	var s snapshot
	if err := json.Unmarshal(snap, &s); err != nil {
		return fmt.Errorf("vault: the backup's vault does not read: %w", err)
	}
	if s.Version != formatV1 || len(s.DataKey) != keyLen {
		return fmt.Errorf("vault: the backup's vault is of version %d with a %d-byte key: not one this box reads", s.Version, len(s.DataKey))
	}
	raw := map[string]map[string][]byte{}
	for name, b := range s.Buckets {
		bn, err := hex.DecodeString(name)
		if err != nil {
			return errors.New("vault: the backup's vault is damaged: a bucket name is not hex")
		}
		raw[string(bn)] = map[string][]byte{}
		for slot, sealed := range b {
			sl, err := hex.DecodeString(slot)
			if err != nil {
				return errors.New("vault: the backup's vault is damaged: a key name is not hex")
			}
			if _, err := openRecord(s.DataKey, sl, sealed); err != nil {
				return fmt.Errorf("vault: the backup's vault is damaged: %w", err)
			}
			raw[string(bn)][string(sl)] = sealed
		}
	}
	salt := make([]byte, 16)
	rand.Read(salt)
	kek := argon2.IDKey(passphrase, salt, p.Time, p.MemoryKiB, p.Threads, keyLen)
	wrapped, err := seal(kek, s.DataKey, []byte(wrapContext))
	if err != nil {
		return err
	}
	h := header{Version: formatV1, Params: p, Salt: salt, WrappedKey: wrapped, Created: v.now().Unix()}
	err = v.db.Update(func(tx *bolt.Tx) error {
		m := tx.Bucket(metaBucket)
		if m.Get(metaHeader) != nil {
			return ErrInitialized
		}
		data := tx.Bucket(dataBucket)
		for name, recs := range raw {
			b, err := data.CreateBucketIfNotExists([]byte(name))
			if err != nil {
				return err
			}
			for slot, sealed := range recs {
				if err := b.Put([]byte(slot), sealed); err != nil {
					return err
				}
			}
		}
		hb, _ := json.Marshal(h)
		return m.Put(metaHeader, hb)
	})
	if err != nil {
		return err
	}
	v.setKey(s.DataKey)
	return nil
}
