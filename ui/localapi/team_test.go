package localapi

import (
	"context"
	"errors"
	"net"
	"net/http"
	"path/filepath"
	"testing"
	"time"
)

type fakeTeam struct{ locked bool }

func (f *fakeTeam) Team(context.Context) (Team, error) {
	if f.locked {
		return Team{}, &Conflict{"the box is locked: unlock it first (redoubt unlock)"}
	}
	return Team{Status: TeamStatus{Configured: true, LoginServer: "https://hs.example"}, Members: []TeamMember{{Name: "alice"}}}, nil
}
func (f *fakeTeam) Add(_ context.Context, name, note string) (Invitation, error) {
	if name != "bob" {
		return Invitation{}, &FieldError{Field: "name", Message: "Use 1 to 32 lower-case letters."}
	}
	return Invitation{Member: name, Shell: "#!/bin/sh\n", QR: []byte{0x89, 'P', 'N', 'G'}, Expires: time.Now().Add(time.Hour)}, nil
}
func (f *fakeTeam) Reissue(_ context.Context, name string) (Invitation, error) {
	return Invitation{Member: name}, nil
}
func (f *fakeTeam) Rename(_ context.Context, old, new string) error {
	if old != "alice" {
		return errors.New("there is no member called “" + old + "”")
	}
	return nil
}
func (f *fakeTeam) Remove(context.Context, string) error { return nil }
func (f *fakeTeam) Pending(context.Context) ([]PendingDevice, error) {
	return nil, nil
}
func (f *fakeTeam) AddPending(context.Context, string, string) error { return nil }
func (f *fakeTeam) Approve(context.Context, string, string) error    { return nil }
func (f *fakeTeam) Reject(context.Context, string) error             { return nil }
func (f *fakeTeam) SetMesh(_ context.Context, s MeshSettings) error {
	if s.APIKey == "" {
		return &FieldError{Field: "api_key", Message: "Give the API key."}
	}
	return nil
}
func (f *fakeTeam) TestMesh(context.Context) (string, error) { return "Headscale answered.", nil }

type fakeSettings struct{ s Settings }

func (f *fakeSettings) Settings() Settings { return f.s }
func (f *fakeSettings) Change(ch SettingsChange) (Settings, error) {
	if ch.LeaseTime != nil && *ch.LeaseTime == "forever" {
		return f.s, &FieldError{Field: "lease_time", Message: "Write a duration such as 12h."}
	}
	if ch.LeaseTime != nil {
		f.s.LeaseTime = *ch.LeaseTime
	}
	if ch.BoxName != nil {
		f.s.BoxName = *ch.BoxName
	}
	return f.s, nil
}

// serve runs the API on a Unix socket in a temporary directory, as the daemon
// does, and returns a client for it.
func serve(t *testing.T, d Deps) *Client {
	t.Helper()
	path := filepath.Join(t.TempDir(), "api.sock")
	ln, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: Handler(d)}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return NewClient(path)
}

func TestTeamAndSettingsOverTheSocket(t *testing.T) {
	team := &fakeTeam{}
	set := &fakeSettings{s: Settings{BoxName: "kestrel", LeaseTime: "12h", Reservations: []Reservation{}}}
	c := serve(t, Deps{Team: team, Settings: set})
	ctx := context.Background()

	tm, err := c.Team(ctx)
	if err != nil || !tm.Status.Configured || len(tm.Members) != 1 {
		t.Fatalf("team: %+v %v", tm, err)
	}
	inv, err := c.AddMember(ctx, "bob", "field desk")
	if err != nil || inv.Member != "bob" || string(inv.QR) != "\x89PNG" {
		t.Fatalf("add: %+v %v", inv, err)
	}
	var fe *FieldError
	if _, err := c.AddMember(ctx, "Bob", ""); !errors.As(err, &fe) || fe.Field != "name" || fe.Message == "" {
		t.Errorf("a bad name: %#v", err)
	}
	if err := c.RenameMember(ctx, "nobody", "x"); err == nil || err.Error() != "there is no member called “nobody”" {
		t.Errorf("renaming nobody: %v", err)
	}
	if err := c.SetMesh(ctx, MeshSettings{LoginServer: "https://hs.example"}); !errors.As(err, &fe) || fe.Field != "api_key" {
		t.Errorf("a mesh without a key: %v", err)
	}
	if msg, err := c.TestMesh(ctx); err != nil || msg != "Headscale answered." {
		t.Errorf("test: %q %v", msg, err)
	}
	if p, err := c.Pending(ctx); err != nil || p == nil || len(p) != 0 {
		t.Errorf("no pending devices is an empty list: %#v %v", p, err)
	}
	team.locked = true
	var ce *Conflict
	if _, err := c.Team(ctx); !errors.As(err, &ce) {
		t.Errorf("a locked box: %#v", err)
	}

	s, err := c.Settings(ctx)
	if err != nil || s.BoxName != "kestrel" {
		t.Fatalf("settings: %+v %v", s, err)
	}
	six := "6h"
	if s, err = c.ChangeSettings(ctx, SettingsChange{LeaseTime: &six}); err != nil || s.LeaseTime != "6h" || s.BoxName != "kestrel" {
		t.Errorf("a change: %+v %v", s, err)
	}
	bad := "forever"
	if _, err := c.ChangeSettings(ctx, SettingsChange{LeaseTime: &bad}); !errors.As(err, &fe) || fe.Field != "lease_time" {
		t.Errorf("a bad change: %v", err)
	}
}
