package backup

import (
	"bufio"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redoubt/redoubt/lab"
	"github.com/redoubt/redoubt/lab/labtest"
	"github.com/redoubt/redoubt/lab/tools"
)

// BenchmarkBackupVsRestic backs up the same mixed data to the same S3 server
// (versitygw on the lab's internet) with the box and with Debian's restic, in
// the same run: a first backup, an incremental one after 1 % of the bytes
// changed, and a restore. The box's path: its backup engine in `redoubt
// serve`, through its VPN (wireguard-go in the box's process, the lab's VPN
// provider, NAT) to the server. restic's: from the VPN provider's namespace
// straight to the server (no VPN: restic cannot use the box's tunnel). Both
// read the same files from the box's state directory. Reported per phase:
// MB/s of the data's size, and CPU seconds per GB (the box's whole process —
// its VPN included — against restic's).
//
// $REDOUBT_BENCH_MB sets the data's size (default 24, which make test runs
// once; bench/backup.sh uses 1024).
func BenchmarkBackupVsRestic(b *testing.B) {
	restic, err := exec.LookPath("restic")
	if err != nil {
		b.Skip("restic is not installed (scripts/deps.sh installs it)")
	}
	if _, err := tools.S3Server(); err != nil {
		b.Skipf("lab S3 benchmark skipped: %v", err)
	}
	e := labtest.SharedVPN(b)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Minute)
	defer cancel()
	mb := 24
	if v, err := strconv.Atoi(os.Getenv("REDOUBT_BENCH_MB")); err == nil && v > 0 {
		mb = v
	}
	o := setUpPlain(b, ctx, e)
	s3, err := e.Lab.StartS3(ctx)
	if err != nil {
		b.Fatal(err)
	}
	dataDir := filepath.Join(boxState(e), "apps", "bench")
	total := mixedData(b, dataDir, int64(mb)<<20, 1)
	caFile := filepath.Join(e.Lab.Dir, "s3-ca.pem")
	os.WriteFile(caFile, s3.CA, 0o644)
	form := map[string][]string{"s3_endpoint": {s3.Endpoint}, "s3_bucket": {s3.Bucket}, "s3_prefix": {"redoubt/"}, "s3_access_key": {s3.AccessKey},
		"s3_secret_key": {s3.SecretKey}, "s3_ca": {string(s3.CA)}, "at": {"03:30"}, "keep_last": {"3"}, "keep_daily": {"7"}, "keep_weekly": {"4"}, "keep_monthly": {"12"}}
	if st, _, body := o.do(ctx, "POST", "/backups/settings", form); st != 303 {
		b.Fatalf("backup settings: %d\n%.2000s", st, body)
	}
	resticEnv := []string{"AWS_ACCESS_KEY_ID=" + s3.AccessKey, "AWS_SECRET_ACCESS_KEY=" + s3.SecretKey, "RESTIC_PASSWORD=bench",
		"RESTIC_REPOSITORY=s3:" + s3.Endpoint + "/" + s3.Bucket + "/restic", "RESTIC_CACHE_DIR=" + filepath.Join(e.Lab.Dir, "restic-cache")}
	runRestic := func(args ...string) (time.Duration, time.Duration) {
		cmd := e.Lab.Cmd(ctx, lab.VPN, append([]string{restic, "--quiet", "--no-lock", "--cacert", caFile}, args...)...)
		cmd.Env = append(cmd.Env, resticEnv...)
		start := time.Now()
		out, err := cmd.CombinedOutput()
		if err != nil {
			b.Fatalf("restic %v: %v\n%s", args, err, out)
		}
		return time.Since(start), cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()
	}
	runRestic("init")
	// The box: a backup asked for on the console, waited for.
	runBox := func(args ...string) (time.Duration, time.Duration) {
		cpu0 := procCPU(b, e.Box.Pid())
		start := time.Now()
		if out, err := cli(ctx, e, "", args...); err != nil {
			b.Fatalf("redoubt %v: %v\n%s", args, err, out)
		}
		return time.Since(start), procCPU(b, e.Box.Pid()) - cpu0
	}
	report := func(name string, tool string, wall, cpu time.Duration) {
		b.Run(name+"/"+tool, func(b *testing.B) {
			b.ReportMetric(float64(total)/(1<<20)/wall.Seconds(), "MB/s")
			b.ReportMetric(cpu.Seconds()/(float64(total)/(1<<30)), "CPU-s/GB")
			b.ReportMetric(wall.Seconds(), "s")
		})
	}

	w, c := runBox("backup", "now", "--wait")
	report("first", "redoubt", w, c)
	w, c = runRestic("backup", dataDir)
	report("first", "restic", w, c)

	changed := touchOnePercent(b, dataDir, total)
	b.Logf("changed %d bytes of %d", changed, total)
	w, c = runBox("backup", "now", "--wait")
	report("incremental", "redoubt", w, c)
	w, c = runRestic("backup", dataDir)
	report("incremental", "restic", w, c)

	w, c = runBox("backup", "restore-item", "state/apps/bench")
	report("restore", "redoubt", w, c)
	w, c = runRestic("restore", "latest", "--target", filepath.Join(e.Lab.Dir, "restic-restore"))
	report("restore", "restic", w, c)

	var st int64
	filepath.Walk(filepath.Join(s3.Dir, s3.Bucket, "redoubt"), func(_ string, fi os.FileInfo, err error) error {
		if err == nil && fi.Mode().IsRegular() {
			st += fi.Size()
		}
		return nil
	})
	var rs int64
	filepath.Walk(filepath.Join(s3.Dir, s3.Bucket, "restic"), func(_ string, fi os.FileInfo, err error) error {
		if err == nil && fi.Mode().IsRegular() {
			rs += fi.Size()
		}
		return nil
	})
	b.Run("stored", func(b *testing.B) {
		b.ReportMetric(float64(st)/(1<<20), "redoubt-MB")
		b.ReportMetric(float64(rs)/(1<<20), "restic-MB")
		b.ReportMetric(float64(total)/(1<<20), "data-MB")
	})
}

// setUpPlain sets the box up without the team mesh and signs in.
func setUpPlain(b *testing.B, ctx context.Context, e *labtest.Env) *browser {
	waitFor(b, 30*time.Second, func() error {
		st, err := e.Box.API.Status(ctx)
		if err != nil || st.VPN == nil || st.VPN.State != "up" || st.Clock == nil || !st.Clock.Synced {
			return fmt.Errorf("the box's VPN and clock: %v", err)
		}
		return nil
	})
	if err := e.Lab.LaptopStatic(ctx); err != nil {
		b.Fatal(err)
	}
	laptop := e.Lab.HTTPClient(lab.Laptop, nil)
	code, err := e.Box.API.SetupCode(ctx)
	if err != nil {
		b.Fatal(err)
	}
	if err := lab.SetUpBox(ctx, laptop, plainBase, code, passphrase, boxName); err != nil {
		b.Fatal(err)
	}
	caPEM := fetch(b, ctx, laptop, plainBase+"/ca.crt")
	o := &browser{t: b, c: e.Lab.HTTPClient(lab.Laptop, caPEM), base: secureBase}
	o.signIn(ctx, passphrase)
	return o
}

// mixedData writes size bytes of files like a team's: photos and videos
// (random, 35 %), documents and logs (text, 35 %), copies of the same files
// (15 %) and many small files (15 %).
func mixedData(tb testing.TB, dir string, size int64, seed uint64) int64 {
	r := rand.New(rand.NewPCG(seed, seed*7))
	var total int64
	write := func(name string, data []byte) {
		p := filepath.Join(dir, name)
		os.MkdirAll(filepath.Dir(p), 0o700)
		if err := os.WriteFile(p, data, 0o600); err != nil {
			tb.Fatal(err)
		}
		total += int64(len(data))
	}
	random := func(n int) []byte {
		b := make([]byte, n)
		for i := 0; i+8 <= n; i += 8 {
			v := r.Uint64()
			for j := 0; j < 8; j++ {
				b[i+j] = byte(v >> (8 * j))
			}
		}
		return b
	}
	words := strings.Fields("the team met at the office and agreed that the report on the water contracts goes out on monday with the documents from the ministry and the interviews")
	text := func(n int) []byte {
		var sb strings.Builder
		for sb.Len() < n {
			sb.WriteString(words[r.IntN(len(words))])
			if r.IntN(12) == 0 {
				sb.WriteString(".\n")
			} else {
				sb.WriteByte(' ')
			}
		}
		return []byte(sb.String()[:n])
	}
	var originals [][]byte
	for i := 0; total < size*35/100; i++ {
		d := random(1<<20 + r.IntN(3<<20))
		write(fmt.Sprintf("files/media/photo-%04d.jpg", i), d)
		if i%4 == 0 {
			originals = append(originals, d)
		}
	}
	for i := 0; total < size*70/100; i++ {
		write(fmt.Sprintf("documents/report-%04d.txt", i), text(256<<10+r.IntN(1<<20)))
	}
	for i := 0; total < size*85/100 && len(originals) > 0; i++ {
		write(fmt.Sprintf("files/shared/copy-%04d.jpg", i), originals[i%len(originals)])
	}
	for i := 0; total < size; i++ {
		if i%2 == 0 {
			write(fmt.Sprintf("chat/room-%02d/msg-%05d.json", i%16, i), text(2048+r.IntN(6<<10)))
		} else {
			write(fmt.Sprintf("files/small/thumb-%05d.bin", i), random(4096+r.IntN(12<<10)))
		}
	}
	return total
}

// touchOnePercent rewrites 1 % of the data's bytes, spread over a few files.
func touchOnePercent(tb testing.TB, dir string, total int64) int64 {
	want := total / 100
	var changed int64
	filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		if err != nil || !fi.Mode().IsRegular() || changed >= want || fi.Size() < 64<<10 || !strings.Contains(p, "report-") {
			return nil
		}
		b, _ := os.ReadFile(p)
		n := min(int64(len(b))/4, want-changed)
		off := int64(len(b)) / 2
		for i := off; i < off+n; i++ {
			b[i] ^= 0x20
		}
		os.WriteFile(p, b, 0o600)
		changed += n
		return nil
	})
	return changed
}

// procCPU is a process's user and system CPU time so far.
func procCPU(tb testing.TB, pid int) time.Duration {
	f, err := os.Open(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		tb.Fatal(err)
	}
	defer f.Close()
	line, _ := bufio.NewReader(f).ReadString('\n')
	// Fields after the command's closing parenthesis: utime is the 14th
	// field of the line, stime the 15th.
	rest := line[strings.LastIndexByte(line, ')')+2:]
	fs := strings.Fields(rest)
	ut, _ := strconv.ParseInt(fs[11], 10, 64)
	st, _ := strconv.ParseInt(fs[12], 10, 64)
	return time.Duration(ut+st) * time.Second / 100 // USER_HZ
}
