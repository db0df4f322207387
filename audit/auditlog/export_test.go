package auditlog

import (
	bolt "go.etcd.io/bbolt"
	"golang.org/x/mod/sumdb/tlog"
)

// Rebuild replaces the log's whole history with leaves and signs a checkpoint
// of it: what an attacker holding the unlocked box could do, for the tests
// that must catch it.
func (l *Log) Rebuild(leaves [][]byte) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	err := l.db.Update(func(tx *bolt.Tx) error {
		for _, b := range [][]byte{bucketHashes, bucketRecords} {
			if err := tx.DeleteBucket(b); err != nil {
				return err
			}
			if _, err := tx.CreateBucket(b); err != nil {
				return err
			}
		}
		for n, data := range leaves {
			hs, err := tlog.StoredHashes(int64(n), data, txHashes(tx))
			if err != nil {
				return err
			}
			for i, h := range hs {
				if err := tx.Bucket(bucketHashes).Put(u64(tlog.StoredHashIndex(0, int64(n))+int64(i)), h[:]); err != nil {
					return err
				}
			}
			sealed, err := l.seal(data)
			if err != nil {
				return err
			}
			if err := tx.Bucket(bucketRecords).Put(u64(int64(n)), sealed); err != nil {
				return err
			}
		}
		return tx.Bucket(bucketMeta).Put(metaSize, u64(int64(len(leaves))))
	})
	if err != nil {
		return err
	}
	l.size = int64(len(leaves))
	l.signed = nil
	if l.size == 0 {
		return nil
	}
	return l.signLocked()
}

// Leaves returns every record's bytes.
func (l *Log) Leaves() ([][]byte, error) {
	es, err := l.Entries(0, l.Size(), l.Size())
	if err != nil {
		return nil, err
	}
	var out [][]byte
	for _, e := range es {
		out = append(out, e.Data)
	}
	return out, nil
}
