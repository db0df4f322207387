// Package mesh tests the team mesh in the lab: a real Headscale beside the
// lab's internet, a teammate running a real tailscaled behind its own NAT, and
// (later) the box's tailnet node. The lab is shared by the package's tests
// (labtest.SharedMesh) and built once.
package mesh

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/redoubt/redoubt/lab"
	"github.com/redoubt/redoubt/lab/coord"
	"github.com/redoubt/redoubt/lab/labtest"
	"github.com/redoubt/redoubt/vault"
	"github.com/redoubt/redoubt/vpn/headscale"
	"github.com/redoubt/redoubt/vpn/members"
)

func TestMain(m *testing.M) { labtest.Main(m) }

func ctxT(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

func waitFor(t testing.TB, d time.Duration, f func() error) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		err := f()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %v: %v", d, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestHeadscaleOverTLS: Headscale answers over TLS from the lab CA, from the
// internet and from the teammate behind its NAT; the API key the lab made
// works.
func TestHeadscaleOverTLS(t *testing.T) {
	e := labtest.SharedMesh(t)
	m := e.Lab.Mesh
	ctx := ctxT(t, time.Minute)
	t.Logf("headscale came up in %v, the teammate's tailscaled in %v", m.HeadscaleUp.Round(time.Millisecond), m.TailscaledUp.Round(time.Millisecond))
	if m.URL != "https://"+lab.Headscale.String() || !strings.HasPrefix(m.APIKey, "hskey-api-") {
		t.Fatalf("mesh %s %q", m.URL, m.APIKey)
	}

	// From the internet: the REST API with the lab's key.
	hc, err := headscale.New(m.URL, m.APIKey, m.HTTPClientFrom(lab.Internet))
	if err != nil {
		t.Fatal(err)
	}
	if err := hc.Health(ctx); err != nil {
		t.Fatalf("health from the internet: %v", err)
	}
	// Without the lab CA, TLS fails: the certificate is the run's own.
	out, err := e.Lab.Exec(ctx, lab.Internet, "curl", "-sS", "--max-time", "5", m.URL+"/health")
	if err == nil {
		t.Fatalf("curl trusted Headscale without the lab CA: %s", out)
	}
	out, err = e.Lab.Exec(ctx, lab.Internet, "curl", "-sS", "--max-time", "5", "--cacert", m.CAFile, m.URL+"/health")
	if err != nil || !strings.Contains(out, "pass") {
		t.Fatalf("curl with the lab CA: %v %s", err, out)
	}
	// From the teammate, through its NAT.
	out, err = m.Teammate(ctx, "curl", "-sS", "--max-time", "5", "--cacert", m.CAFile, m.URL+"/key?v=116")
	if err != nil || !strings.Contains(out, "publicKey") {
		t.Fatalf("the teammate reaching Headscale: %v %s", err, out)
	}
}

// TestTeammateEnrolls: a member added through vpn/members against the lab's
// Headscale gets a bundle; its shell script, run non-interactively in the
// teammate, installs the box's CA there (and only there), brings tailscaled
// up, and the teammate shows online, with a path to Headscale's DERP.
func TestTeammateEnrolls(t *testing.T) {
	e := labtest.SharedMesh(t)
	m := e.Lab.Mesh
	ctx := ctxT(t, 2*time.Minute)
	hc, err := headscale.New(m.URL, m.APIKey, m.HTTPClientFrom(lab.Internet))
	if err != nil {
		t.Fatal(err)
	}
	v, err := vault.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { v.Close() }) // after the member's removal below
	if err := v.Init([]byte("lab test passphrase"), vault.Params{Time: 1, MemoryKiB: 8 << 10, Threads: 1}); err != nil {
		t.Fatal(err)
	}
	boxCA, err := coord.NewCA("the box's CA (lab test)")
	if err != nil {
		t.Fatal(err)
	}
	mgr, err := members.New(members.Config{LoginServer: m.URL, BoxName: "lab box"}, members.Deps{
		Headscale: hc, Store: v, CACert: func() ([]byte, error) { return boxCA.PEM, nil },
	})
	if err != nil {
		t.Fatal(err)
	}
	const name = "labcheck"
	b, err := mgr.Add(ctx, name, "integration/mesh")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := mgr.Remove(ctx, name); err != nil {
			t.Errorf("removing the test's member: %v", err)
		}
		m.ResetTeammate(ctx)
	})

	start := time.Now()
	out, err := m.Enroll(ctx, b.Shell, "--hostname", "teammate-laptop")
	if err != nil {
		t.Fatalf("the enrollment script: %v\n%s\n%s", err, out, tailLines(m.TailscaledLog(), 30))
	}
	var online time.Duration
	waitFor(t, 30*time.Second, func() error {
		st, err := m.TeammateStatus(ctx)
		if err != nil {
			return err
		}
		if st.BackendState != "Running" || st.Self == nil || !st.Self.Online || len(st.Self.TailscaleIPs) == 0 {
			return fmt.Errorf("teammate: %s %+v", st.BackendState, st.Self)
		}
		if !strings.HasPrefix(st.Self.DNSName, "teammate-laptop."+lab.TeamDomain) {
			return fmt.Errorf("teammate's name %q", st.Self.DNSName)
		}
		online = time.Since(start)
		return nil
	})
	t.Logf("script to online: %v", online.Round(time.Millisecond))
	ms, err := mgr.Members(ctx)
	if err != nil || len(ms) != 1 || len(ms[0].Devices) != 1 || ms[0].Devices[0].Name != "teammate-laptop" {
		t.Fatalf("members %+v, %v", ms, err)
	}

	// The box's CA went into the teammate's own trust store, not this machine's.
	line := strings.Split(string(boxCA.PEM), "\n")[1]
	if out, err := m.Teammate(ctx, "grep", "-c", line, "/etc/ssl/certs/ca-certificates.crt"); err != nil || strings.TrimSpace(out) != "1" {
		t.Fatalf("the box's CA in the teammate's store: %v %q", err, out)
	}
	host, _ := os.ReadFile("/etc/ssl/certs/ca-certificates.crt")
	if strings.Contains(string(host), line) {
		t.Fatal("the enrollment script changed this machine's trust store")
	}

	// tailscaled found Headscale's DERP and STUN.
	out, err = m.Tailscale(ctx, "netcheck")
	if err != nil || !strings.Contains(out, "UDP: true") || !strings.Contains(out, "lab") {
		t.Fatalf("netcheck in the teammate: %v\n%s", err, out)
	}
}

// TestTeammateServes: the helper HTTP server in the teammate answers on its
// loopback, where userspace tailscaled delivers tailnet connections.
func TestTeammateServes(t *testing.T) {
	e := labtest.SharedMesh(t)
	m := e.Lab.Mesh
	stop, err := m.ServeTeammate(8080, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "hello from the teammate\n")
	}))
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	out, err := m.Teammate(ctxT(t, 20*time.Second), "curl", "-sS", "--max-time", "5", "http://127.0.0.1:8080/")
	if err != nil || out != "hello from the teammate\n" {
		t.Fatalf("%v %q", err, out)
	}
}

func tailLines(s string, n int) string {
	l := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(l) > n {
		l = l[len(l)-n:]
	}
	return strings.Join(l, "\n")
}
