package host

import (
	"os"
	"path/filepath"

	"github.com/redoubt/redoubt/apps"
)

// List returns every app's status, by ID.
func (h *Host) List() []apps.Status {
	out := make([]apps.Status, 0, len(h.ids))
	for _, id := range h.ids {
		out = append(out, h.status(h.apps[id]))
	}
	return out
}

// Status returns one app's status.
func (h *Host) Status(id string) (apps.Status, error) {
	in, err := h.app(id)
	if err != nil {
		return apps.Status{}, err
	}
	return h.status(in), nil
}

// Info returns an app in full.
func (h *Host) Info(id string) (apps.Info, error) {
	in, err := h.app(id)
	if err != nil {
		return apps.Info{}, err
	}
	info := apps.Info{Status: h.status(in), Manifest: in.m}
	if opts, err := in.options(); err == nil {
		info.Options = opts.Values()
	}
	return info, nil
}

func (h *Host) status(in *instance) apps.Status {
	st := apps.Status{ID: in.m.ID, Name: in.m.Name, Description: in.m.Description, Version: in.m.Version,
		Kind: "built-in", Installed: true, Published: h.net.origins(in)}
	if in.external != nil {
		st.Kind = "external"
	}
	if st.Published == nil {
		st.Published = []apps.Origin{}
	}
	in.mu.Lock()
	st.State, st.Problem = in.state, in.problem
	r := in.run
	in.mu.Unlock()
	st.Running = r != nil
	if r != nil {
		u := r.store.Blobs().Usage()
		st.Usage = &u
	}
	if !h.isUnlocked() && r == nil {
		st.State = "locked"
	}
	if opts, err := in.options(); err == nil {
		st.Autostart = opts.Bool(apps.OptAutostart)
	}
	st.Connect = apps.ConnectURLs(in.m, st.Published)
	return st
}

// CopyStores writes a consistent copy of each running app's store database
// into dir/<app id>/store.db (for backups; see store.Store.CopyRecords), and
// returns the apps copied. A stopped app's files do not change, and are
// taken as they are.
func (h *Host) CopyStores(dir string) ([]string, error) {
	var copied []string
	for _, id := range h.ids {
		in := h.apps[id]
		in.mu.Lock()
		r := in.run
		in.mu.Unlock()
		if r == nil || r.store == nil {
			continue
		}
		if err := os.MkdirAll(filepath.Join(dir, id), 0o700); err != nil {
			return copied, err
		}
		f, err := os.OpenFile(filepath.Join(dir, id, "store.db"), os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
		if err != nil {
			return copied, err
		}
		err = r.store.CopyRecords(f)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			os.Remove(filepath.Join(dir, id, "store.db"))
			continue // stopped meanwhile: its file is taken as it is
		}
		copied = append(copied, id)
	}
	return copied, nil
}
