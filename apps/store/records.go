package store

import (
	"fmt"
	"slices"

	bolt "go.etcd.io/bbolt"

	"github.com/redoubt/redoubt/apps"
)

// records implements apps.Records. A record is two values in store.db under
// the HMAC of its key: the key itself sealed (so List needs no scan of the
// values) and the value sealed; each bound to its place.
type records struct{ s *Store }

func (r records) hash(key string) []byte { return hashName(r.s.recMAC, "record", key) }

func adOf(bucket, k []byte) []byte { return append(slices.Clone(bucket), k...) }

func (r records) Get(key string) ([]byte, error) {
	if err := checkName("record key", key); err != nil {
		return nil, err
	}
	s := r.s
	s.mu.RLock()
	defer s.mu.RUnlock()
	if err := s.errOf(); err != nil {
		return nil, err
	}
	h, ok := s.hashes[key]
	if !ok {
		return nil, fmt.Errorf("record %q: %w", truncate(key), apps.ErrNotFound)
	}
	var v []byte
	err := s.db.View(func(tx *bolt.Tx) error {
		sealed := tx.Bucket(bRecValues).Get(h)
		if sealed == nil {
			return fmt.Errorf("record %q: %w", truncate(key), apps.ErrNotFound)
		}
		var err error
		v, err = open(s.rec, sealed, adOf(bRecValues, h))
		if err != nil {
			return fmt.Errorf("record %q does not open (damaged or tampered with): %w", truncate(key), err)
		}
		return nil
	})
	return v, err
}

func (r records) Put(key string, value []byte) error {
	return r.Update(key, func([]byte, bool) ([]byte, error) {
		if value == nil {
			return []byte{}, nil
		}
		return value, nil
	})
}

func (r records) Delete(key string) error {
	return r.Update(key, func([]byte, bool) ([]byte, error) { return nil, nil })
}

func (r records) Update(key string, fn func(old []byte, exists bool) ([]byte, error)) error {
	if err := checkName("record key", key); err != nil {
		return err
	}
	s := r.s
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.errOf(); err != nil {
		return err
	}
	h := r.hash(key)
	_, existed := s.hashes[key]
	var fnErr error
	err := s.db.Update(func(tx *bolt.Tx) error {
		var old []byte
		if existed {
			sealed := tx.Bucket(bRecValues).Get(h)
			if sealed != nil {
				var err error
				if old, err = open(s.rec, sealed, adOf(bRecValues, h)); err != nil {
					return fmt.Errorf("record %q does not open (damaged or tampered with): %w", truncate(key), err)
				}
			}
		}
		next, err := fn(old, existed)
		if err != nil {
			fnErr = err
			return err
		}
		if next == nil {
			if err := tx.Bucket(bRecNames).Delete(h); err != nil {
				return err
			}
			return tx.Bucket(bRecValues).Delete(h)
		}
		if len(next) > MaxRecord {
			return fmt.Errorf("record %q: %d bytes: a record holds at most %d (use a blob)", truncate(key), len(next), MaxRecord)
		}
		sv, err := seal(s.rec, next, adOf(bRecValues, h))
		if err != nil {
			return err
		}
		if err := tx.Bucket(bRecValues).Put(h, sv); err != nil {
			return err
		}
		if !existed {
			sn, err := seal(s.rec, []byte(key), adOf(bRecNames, h))
			if err != nil {
				return err
			}
			return tx.Bucket(bRecNames).Put(h, sn)
		}
		return nil
	})
	if fnErr != nil {
		return fnErr
	}
	if err != nil {
		return diskErr("writing record "+truncate(key), err)
	}
	// Which way it went is in the bucket now.
	exists := false
	s.db.View(func(tx *bolt.Tx) error { exists = tx.Bucket(bRecNames).Get(h) != nil; return nil })
	switch {
	case exists && !existed:
		s.hashes[key] = h
		s.names = insertSorted(s.names, key)
	case !exists && existed:
		delete(s.hashes, key)
		s.names = removeSorted(s.names, key)
	}
	return nil
}

func (r records) List(prefix string) ([]string, error) {
	s := r.s
	s.mu.RLock()
	defer s.mu.RUnlock()
	if err := s.errOf(); err != nil {
		return nil, err
	}
	return prefixed(s.names, prefix), nil
}
