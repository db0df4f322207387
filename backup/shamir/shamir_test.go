package shamir

import (
	"bytes"
	"crypto/rand"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

func TestField(t *testing.T) {
	for a := 1; a < 256; a++ {
		if got := mul(byte(a), inv(byte(a))); got != 1 {
			t.Fatalf("%d × %d⁻¹ = %d", a, a, got)
		}
		if mul(byte(a), 1) != byte(a) || mul(byte(a), 0) != 0 {
			t.Fatalf("identity for %d", a)
		}
	}
	// x (2) generates the multiplicative group modulo 0x11d, as in libgfshare.
	seen := map[byte]bool{}
	v := byte(1)
	for i := 0; i < 255; i++ {
		seen[v] = true
		v = mul(v, 2)
	}
	if len(seen) != 255 || v != 1 {
		t.Fatalf("2 generates %d elements", len(seen))
	}
}

func TestSplitCombine(t *testing.T) {
	secret := []byte("the recovery key: 32 bytes long!")
	shares, err := Split(secret, 5, 3, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	// Every subset of 3 or more rebuilds it.
	for mask := 0; mask < 1<<5; mask++ {
		var sub []Share
		for i := range shares {
			if mask&(1<<i) != 0 {
				sub = append(sub, shares[i])
			}
		}
		got, err := Combine(sub)
		if len(sub) == 0 {
			if err == nil {
				t.Fatal("no shares combined")
			}
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		if ok := bytes.Equal(got, secret); ok != (len(sub) >= 3) {
			t.Fatalf("%d shares (mask %05b): rebuilt %v", len(sub), mask, ok)
		}
	}
	// An altered share gives another secret.
	bad := append([]Share{}, shares[:3]...)
	bad[1] = Share{X: bad[1].X, Y: bytes.Clone(bad[1].Y)}
	bad[1].Y[0] ^= 1
	if got, _ := Combine(bad); bytes.Equal(got, secret) {
		t.Fatal("an altered share rebuilt the secret")
	}
	if _, err := Combine([]Share{shares[0], shares[0]}); err == nil {
		t.Fatal("a share twice")
	}
	for _, c := range []struct{ n, k int }{{3, 1}, {2, 3}, {256, 3}} {
		if _, err := Split(secret, c.n, c.k, rand.Reader); err == nil {
			t.Errorf("%d of %d accepted", c.k, c.n)
		}
	}
}

// Fewer than k shares say nothing: with k = 2, one share is consistent with
// every secret byte, each through exactly one polynomial.
func TestOneShareRevealsNothing(t *testing.T) {
	for x := 1; x < 256; x++ {
		for y := 0; y < 256; y += 17 {
			seen := map[byte]int{}
			for slope := 0; slope < 256; slope++ {
				// p(x) = s + slope·x = y  ⇒  s = y ^ slope·x
				seen[byte(y)^mul(byte(slope), byte(x))]++
			}
			if len(seen) != 256 {
				t.Fatalf("x=%d y=%d: %d secrets possible, want all 256", x, y, len(seen))
			}
		}
	}
}

// Interoperability with Debian's libgfshare (gfsplit, gfcombine).
func TestAgainstLibgfshare(t *testing.T) {
	gfsplit, err1 := exec.LookPath("gfsplit")
	gfcombine, err2 := exec.LookPath("gfcombine")
	if err1 != nil || err2 != nil {
		t.Skip("libgfshare-bin (gfsplit, gfcombine) is not installed: scripts/deps.sh installs it")
	}
	dir := t.TempDir()
	secret := make([]byte, 32)
	rand.Read(secret)
	for round := 0; round < 3; round++ {
		// gfsplit's shares, combined here.
		in := filepath.Join(dir, fmt.Sprintf("secret%d", round))
		os.WriteFile(in, secret, 0o600)
		if out, err := exec.Command(gfsplit, "-n", "3", "-m", "5", in).CombinedOutput(); err != nil {
			t.Fatalf("gfsplit: %v\n%s", err, out)
		}
		files, _ := filepath.Glob(in + ".*")
		if len(files) != 5 {
			t.Fatalf("gfsplit made %d shares", len(files))
		}
		var shares []Share
		for _, f := range files[:3] {
			x, _ := strconv.Atoi(f[strings.LastIndexByte(f, '.')+1:])
			y, _ := os.ReadFile(f)
			shares = append(shares, Share{X: byte(x), Y: y})
		}
		got, err := Combine(shares)
		if err != nil || !bytes.Equal(got, secret) {
			t.Fatalf("combining gfsplit's shares: %x %v, want %x", got, err, secret)
		}
		// Ours, combined by gfcombine.
		ours, err := Split(secret, 5, 3, rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, s := range []Share{ours[4], ours[0], ours[2]} {
			name := filepath.Join(dir, fmt.Sprintf("ours%d.%03d", round, s.X))
			os.WriteFile(name, s.Y, 0o600)
			names = append(names, name)
		}
		out := filepath.Join(dir, fmt.Sprintf("combined%d", round))
		if o, err := exec.Command(gfcombine, append([]string{"-o", out}, names...)...).CombinedOutput(); err != nil {
			t.Fatalf("gfcombine: %v\n%s", err, o)
		}
		if got, _ := os.ReadFile(out); !bytes.Equal(got, secret) {
			t.Fatalf("gfcombine rebuilt %x from our shares, want %x", got, secret)
		}
	}
}

func FuzzCombine(f *testing.F) {
	f.Add([]byte{1, 2, 3, 2, 4, 5})
	f.Fuzz(func(t *testing.T, b []byte) {
		var shares []Share
		for len(b) >= 3 {
			shares = append(shares, Share{X: b[0], Y: b[1:3]})
			b = b[3:]
		}
		Combine(shares)
	})
}

func BenchmarkSplit32of5(b *testing.B) {
	secret := make([]byte, 32)
	for i := 0; i < b.N; i++ {
		Split(secret, 5, 3, rand.Reader)
	}
}
