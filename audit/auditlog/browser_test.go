package auditlog_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/transparency-dev/merkle/compact"
	"github.com/transparency-dev/merkle/rfc6962"

	"github.com/redoubt/redoubt/audit"
)

// TestBrowserVerifier runs the members' browser check (apps/home/assets/
// audit.mjs) under Node's test runner against this log, served as the
// members' page serves it, with a harness that tampers with it as a
// compromised box would.
func TestBrowserVerifier(t *testing.T) {
	node, err := exec.LookPath("node")
	if err != nil {
		t.Skip("node is not installed: the browser verifier's tests need Node.js ≥ 20")
	}
	h := &harness{t: t, honestRig: newRig(t), otherRig: newRig(t)}
	h.honestRig.setup()
	h.otherRig.setup()
	h.otherRig.add(3)
	h.cur = h.honestRig
	api := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h.mu.Lock()
		l := h.cur.log
		h.mu.Unlock()
		http.StripPrefix("/audit/api", l.Handler(func(*http.Request) (string, bool) { return "alice", true })).ServeHTTP(w, r)
	}))
	defer api.Close()
	ctl := httptest.NewServer(h)
	defer ctl.Close()

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, "--test", "--test-reporter=spec", filepath.Join("..", "..", "apps", "home", "audit_test.mjs"))
	cmd.Env = append(os.Environ(), "AUDIT_API="+api.URL+"/audit/api/", "AUDIT_CONTROL="+ctl.URL+"/")
	out, err := cmd.CombinedOutput()
	t.Logf("node --test:\n%s", out)
	if err != nil {
		t.Fatalf("the browser verifier's tests failed: %v", err)
	}
	if !bytes.Contains(out, []byte("pass 3")) {
		t.Fatal("node ran fewer tests than the three expected")
	}
}

// harness is the control the Node tests drive.
type harness struct {
	t                   *testing.T
	mu                  sync.Mutex
	honestRig, otherRig *rig
	cur                 *rig
	honest              [][]byte // the true history while the log is tampered with
	tampered            bool
}

func (h *harness) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h.mu.Lock()
	defer h.mu.Unlock()
	l := h.honestRig.log
	n, _ := strconv.Atoi(r.URL.Query().Get("n"))
	fail := func(err error) { http.Error(w, err.Error(), http.StatusInternalServerError) }
	tamper := func() [][]byte {
		if !h.tampered {
			h.honest, _ = l.Leaves()
			h.tampered = true
		}
		return append([][]byte{}, h.honest...)
	}
	junk := func(s string) []byte {
		return audit.NewRecord(audit.Event{Kind: audit.KindAdmin, Action: s, Actor: audit.ActorOwner}, time.Now(), true).Marshal()
	}
	switch r.URL.Path {
	case "/reset":
		// A new log (and key) with n records and no witnesses.
		h.honestRig = newRig(h.t)
		h.honestRig.setup()
		h.tampered, h.cur = false, h.honestRig
		h.honestRig.add(n)
	case "/append":
		h.honestRig.add(n)
	case "/truncate":
		if err := l.Rebuild(tamper()[:n]); err != nil {
			fail(err)
			return
		}
	case "/rewrite":
		leaves := tamper()
		i, _ := strconv.Atoi(r.URL.Query().Get("i"))
		leaves[i] = junk("nothing to see")
		if err := l.Rebuild(append(leaves, junk("more"))); err != nil {
			fail(err)
			return
		}
	case "/fork":
		leaves := tamper()
		leaves[len(leaves)-1] = junk("another ending")
		if err := l.Rebuild(leaves); err != nil {
			fail(err)
			return
		}
	case "/honest":
		if h.tampered {
			if err := l.Rebuild(h.honest); err != nil {
				fail(err)
				return
			}
		}
		h.tampered, h.cur = false, h.honestRig
	case "/otherkey":
		h.cur = h.otherRig
	case "/roots":
		// Roots at every size, by transparency-dev/merkle.
		leaves, err := l.Leaves()
		if err != nil {
			fail(err)
			return
		}
		rf := compact.RangeFactory{Hash: rfc6962.DefaultHasher.HashChildren}
		cr := rf.NewEmptyRange(0)
		var roots []string
		for _, d := range leaves {
			cr.Append(rfc6962.DefaultHasher.HashLeaf(d), nil)
			root, _ := cr.GetRootHash(nil)
			roots = append(roots, base64.StdEncoding.EncodeToString(root))
		}
		json.NewEncoder(w).Encode(roots)
		return
	default:
		http.NotFound(w, r)
		return
	}
	w.Write([]byte("ok"))
}
