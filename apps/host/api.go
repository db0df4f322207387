package host

import (
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
