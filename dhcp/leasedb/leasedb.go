// Package leasedb keeps the DHCP lease table on disk, in a bbolt file in the box's
// state directory, so leases survive restarts and crashes.
//
// Each Commit is one bbolt transaction, written and fsynced before it returns: the
// DHCP server acknowledges a lease only after the Commit that holds it, so a crash
// (kill -9, power loss) at any moment keeps every lease the laptop was granted, and
// the file is never left half-written (bbolt writes pages copy-on-write and
// switches to them with a checksummed meta page). The file is deliberately not
// encrypted: DHCP must keep working while the box's other state is locked.
//
// Only the dhcp room imports it.
package leasedb

import (
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/redoubt/redoubt/dhcp/leases"
)

// FileName is the lease file's name in the state directory.
const FileName = "dhcp-leases.db"

var (
	bucketLeases = []byte("leases") // 4-byte address → JSON record
	bucketMeta   = []byte("meta")
	keyVersion   = []byte("version")
)

const version = "1"

// DB is the open lease file.
type DB struct {
	db   *bolt.DB
	path string
}

// Open opens or creates the lease file at path. A file that is not a lease
// database (corrupt beyond what bbolt recovers, or from a future version) is moved
// aside to path.corrupt-<time> and a new one is started: the box keeps serving
// addresses, and the returned note says what happened.
func Open(path string) (db *DB, note string, err error) {
	db, err = open(path)
	if err == nil {
		return db, "", nil
	}
	if errors.Is(err, bolt.ErrTimeout) || errors.Is(err, os.ErrPermission) {
		return nil, "", err
	}
	if _, serr := os.Stat(path); serr != nil {
		return nil, "", err
	}
	aside := fmt.Sprintf("%s.corrupt-%s", path, time.Now().UTC().Format("20060102T150405Z"))
	if rerr := os.Rename(path, aside); rerr != nil {
		return nil, "", fmt.Errorf("%w (and moving it aside: %v)", err, rerr)
	}
	db, err2 := open(path)
	if err2 != nil {
		return nil, "", err2
	}
	return db, fmt.Sprintf("lease file unreadable (%v); moved to %s and started a new one", err, aside), nil
}

func open(path string) (*DB, error) {
	b, err := bolt.Open(path, 0o600, &bolt.Options{
		Timeout: 3 * time.Second, // the previous box may still be exiting
		// The freelist is rebuilt on open by scanning a small file instead of
		// being written on every commit.
		NoFreelistSync: true,
		FreelistType:   bolt.FreelistMapType,
	})
	if err != nil {
		return nil, fmt.Errorf("opening lease file %s: %w", path, err)
	}
	err = b.Update(func(tx *bolt.Tx) error {
		meta, err := tx.CreateBucketIfNotExists(bucketMeta)
		if err != nil {
			return err
		}
		if v := meta.Get(keyVersion); v != nil && string(v) != version {
			return fmt.Errorf("lease file version %q: this build reads version %s", v, version)
		}
		if err := meta.Put(keyVersion, []byte(version)); err != nil {
			return err
		}
		_, err = tx.CreateBucketIfNotExists(bucketLeases)
		return err
	})
	if err != nil {
		b.Close()
		return nil, fmt.Errorf("preparing lease file %s: %w", path, err)
	}
	return &DB{db: b, path: path}, nil
}

// Path is the lease file's path.
func (d *DB) Path() string { return d.path }

// Load reads every lease. Records that do not decode are skipped and counted.
func (d *DB) Load() (ls []leases.Lease, bad int, err error) {
	err = d.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketLeases).ForEach(func(k, v []byte) error {
			l, err := Decode(v)
			if err != nil || len(k) != 4 || l.Addr != netip.AddrFrom4([4]byte(k)) {
				bad++
				return nil
			}
			ls = append(ls, l)
			return nil
		})
	})
	if err != nil {
		return nil, 0, fmt.Errorf("reading lease file %s: %w", d.path, err)
	}
	return ls, bad, nil
}

// Commit writes put and removes del in one transaction, durable when it returns.
func (d *DB) Commit(put []leases.Lease, del []netip.Addr) error {
	if len(put) == 0 && len(del) == 0 {
		return nil
	}
	err := d.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketLeases)
		for _, a := range del {
			k := a.As4()
			if err := b.Delete(k[:]); err != nil {
				return err
			}
		}
		for i := range put {
			k := put[i].Addr.As4()
			if err := b.Put(k[:], Encode(&put[i])); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("writing lease file %s: %w", d.path, err)
	}
	return nil
}

// Close closes the file.
func (d *DB) Close() error { return d.db.Close() }

// record is a lease as stored: JSON, so the file can be inspected with bbolt's
// tools and read by later versions.
type record struct {
	Addr        netip.Addr `json:"addr"`
	MAC         string     `json:"mac"`
	ClientID    string     `json:"client_id,omitempty"`
	Hostname    string     `json:"hostname,omitempty"`
	VendorClass string     `json:"vendor_class,omitempty"`
	Expiry      time.Time  `json:"expiry"`
	FirstSeen   time.Time  `json:"first_seen"`
	Declined    bool       `json:"declined,omitempty"`
	Owner       bool       `json:"owner,omitempty"`
}

// Encode returns a lease's stored form.
func Encode(l *leases.Lease) []byte {
	b, _ := json.Marshal(record{
		Addr: l.Addr, MAC: net.HardwareAddr(l.MAC[:]).String(), ClientID: hex.EncodeToString(l.ClientID),
		Hostname: l.Hostname, VendorClass: l.VendorClass, Expiry: l.Expiry.UTC(), FirstSeen: l.FirstSeen.UTC(),
		Declined: l.Declined, Owner: l.Owner,
	})
	return b
}

// Decode parses a lease's stored form.
func Decode(b []byte) (leases.Lease, error) {
	var r record
	if err := json.Unmarshal(b, &r); err != nil {
		return leases.Lease{}, err
	}
	mac, err := net.ParseMAC(r.MAC)
	if err != nil || len(mac) != 6 {
		return leases.Lease{}, fmt.Errorf("lease record mac %q: want a 6-byte MAC", r.MAC)
	}
	if !r.Addr.Is4() {
		return leases.Lease{}, fmt.Errorf("lease record addr %v: want an IPv4 address", r.Addr)
	}
	id, err := hex.DecodeString(r.ClientID)
	if err != nil {
		return leases.Lease{}, fmt.Errorf("lease record client_id %q: %w", r.ClientID, err)
	}
	if len(id) == 0 {
		id = nil
	}
	return leases.Lease{
		Addr: r.Addr, MAC: [6]byte(mac), ClientID: id, Hostname: r.Hostname, VendorClass: r.VendorClass,
		Expiry: r.Expiry, FirstSeen: r.FirstSeen, Declined: r.Declined, Owner: r.Owner,
	}, nil
}
