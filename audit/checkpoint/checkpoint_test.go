package checkpoint

import (
	"crypto/ed25519"
	"crypto/rand"
	"strings"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

func TestBody(t *testing.T) {
	c := Checkpoint{Origin: "redoubt.box/audit/1", Size: 20852163, Hash: tlog.RecordHash([]byte("x"))}
	got, err := ParseBody(c.Body())
	if err != nil || got != c {
		t.Fatalf("round trip: %v %v", got, err)
	}
	for _, bad := range []string{
		"", "o\n1\n", "o\n01\n" + strings.Repeat("A", 43) + "=\n", "o\n-1\nAAAA\n", "o o\n1\n" + b64(c.Hash) + "\n",
		"o+x\n1\n" + b64(c.Hash) + "\n", "o\n1\n" + b64(c.Hash) + "\next\n", "o\n1\nAAAA\n",
	} {
		if _, err := ParseBody([]byte(bad)); err == nil {
			t.Errorf("%q parsed", bad)
		}
	}
}

func b64(h tlog.Hash) string {
	return strings.TrimSuffix(string(Checkpoint{Origin: "o", Hash: h}.Body()[4:]), "\n")
}

func TestSignOpenCosign(t *testing.T) {
	skey, vkey, _ := note.GenerateKey(rand.Reader, "redoubt.box/audit/1")
	signer, _ := note.NewSigner(skey)
	c := Checkpoint{Origin: "redoubt.box/audit/1", Size: 3, Hash: tlog.RecordHash([]byte("x"))}
	signed, err := Sign(c, signer)
	if err != nil {
		t.Fatal(err)
	}
	got, _, err := Open(signed, vkey)
	if err != nil || got != c {
		t.Fatalf("%v %v", got, err)
	}
	if _, err := Sign(Checkpoint{Origin: "other"}, signer); err == nil {
		t.Fatal("signed another origin")
	}
	_, vkey2, _ := note.GenerateKey(rand.Reader, "redoubt.box/audit/1")
	if _, _, err := Open(signed, vkey2); err == nil || !strings.Contains(err.Error(), "not signed by the log's key") {
		t.Fatalf("another key: %v", err)
	}
	pub, priv, _ := ed25519.GenerateKey(rand.Reader)
	w := Witness{Name: "witness.redoubt/alice/1", Key: pub}
	w2, err := ParseWitnessKey(w.VerifierKey())
	if err != nil || w2.Name != w.Name || !w2.Key.Equal(w.Key) {
		t.Fatalf("witness key round trip: %v", err)
	}
	at := time.Unix(1679315147, 0)
	cosigned := append(signed, Cosign(c, w, priv, at)...)
	_, n, err := Open(cosigned, vkey, w)
	if err != nil {
		t.Fatal(err)
	}
	cs := Cosignatures(n, []Witness{w})
	if len(cs) != 1 || !cs[0].Time.Equal(at) {
		t.Fatalf("cosignatures %+v", cs)
	}
	// The cosignature signs the header, the time and the body, nothing else.
	msg := CosignedMessage(c.Body(), at.Unix())
	if !strings.HasPrefix(string(msg), "cosignature/v1\ntime 1679315147\nredoubt.box/audit/1\n3\n") {
		t.Fatalf("%q", msg)
	}
	for _, bad := range []string{"", "a+b", "a+00000000+AAAA", w.Name + "+00000000+" + strings.SplitN(w.VerifierKey(), "+", 3)[2]} {
		if _, err := ParseWitnessKey(bad); err == nil {
			t.Errorf("witness key %q parsed", bad)
		}
	}
}

func TestConsistencyErrors(t *testing.T) {
	a := Checkpoint{Origin: "o", Size: 5, Hash: tlog.RecordHash([]byte("a"))}
	if err := CheckConsistency(a, Checkpoint{Origin: "p", Size: 6}, nil); err == nil {
		t.Error("other origin")
	}
	if err := CheckConsistency(a, Checkpoint{Origin: "o", Size: 4}, nil); err == nil {
		t.Error("shrunk")
	}
	if err := CheckConsistency(a, Checkpoint{Origin: "o", Size: 5}, nil); err == nil {
		t.Error("same size, other root")
	}
	if err := CheckConsistency(a, Checkpoint{Origin: "o", Size: 9}, nil); err == nil {
		t.Error("no proof")
	}
}

// FuzzOpen: checkpoints and witness keys come from the network.
func FuzzOpen(f *testing.F) {
	skey, vkey, _ := note.GenerateKey(rand.Reader, "o")
	signer, _ := note.NewSigner(skey)
	signed, _ := Sign(Checkpoint{Origin: "o", Size: 1}, signer)
	f.Add(signed, "w+00000000+AAAA")
	f.Add([]byte("o\n1\n\n— o AAAA\n"), "")
	f.Fuzz(func(t *testing.T, msg []byte, wkey string) {
		ParseBody(msg)
		w, err := ParseWitnessKey(wkey)
		if err == nil {
			Open(msg, vkey, w)
		} else {
			Open(msg, vkey)
		}
		SplitNote(msg)
	})
}
