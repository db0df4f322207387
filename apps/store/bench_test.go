package store

import (
	"io"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// benchSize is what each benchmark operation writes or reads.
const benchSize = 64 << 20

// cpuTime is the process's user and system CPU time so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// reportCPU adds the CPU seconds per GB the benchmark spent.
func reportCPU(b *testing.B, start time.Duration) {
	gb := float64(b.N) * benchSize / (1 << 30)
	b.ReportMetric((cpuTime()-start).Seconds()/gb, "cpu-s/GB")
}

// BenchmarkWrite compares committing a 64 MiB blob (XChaCha20-Poly1305 in 64
// KiB chunks, fsynced, indexed) with writing and fsyncing the same bytes to a
// plain file, on the same disk, in 64 KiB writes. bench/store.sh records it.
func BenchmarkWrite(b *testing.B) {
	data := pattern("bench", ChunkSize)
	b.Run("blob", func(b *testing.B) {
		s := openT(b, b.TempDir(), testKey())
		defer s.Close(nil)
		bl := s.Blobs()
		b.SetBytes(benchSize)
		start := cpuTime()
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			u, err := bl.Create()
			if err != nil {
				b.Fatal(err)
			}
			for n := 0; n < benchSize; n += len(data) {
				if _, err := u.Write(data); err != nil {
					b.Fatal(err)
				}
			}
			if _, err := u.Commit("bench"); err != nil {
				b.Fatal(err)
			}
		}
		b.StopTimer()
		reportCPU(b, start)
	})
	b.Run("plain", func(b *testing.B) {
		dir := b.TempDir()
		b.SetBytes(benchSize)
		start := cpuTime()
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			tmp := filepath.Join(dir, "tmp")
			f, err := os.Create(tmp)
			if err != nil {
				b.Fatal(err)
			}
			for n := 0; n < benchSize; n += len(data) {
				if _, err := f.Write(data); err != nil {
					b.Fatal(err)
				}
			}
			if err := f.Sync(); err != nil {
				b.Fatal(err)
			}
			f.Close()
			if err := os.Rename(tmp, filepath.Join(dir, "bench")); err != nil {
				b.Fatal(err)
			}
		}
		b.StopTimer()
		reportCPU(b, start)
	})
}

// BenchmarkRead compares reading a 64 MiB blob back (decrypting) with reading
// a plain file of the same size, both from the page cache, in 64 KiB reads.
func BenchmarkRead(b *testing.B) {
	data := pattern("bench", benchSize)
	buf := make([]byte, ChunkSize)
	b.Run("blob", func(b *testing.B) {
		s := openT(b, b.TempDir(), testKey())
		defer s.Close(nil)
		putBlob(b, s.Blobs(), "bench", data)
		b.SetBytes(benchSize)
		start := cpuTime()
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			r, err := s.Blobs().Open("bench")
			if err != nil {
				b.Fatal(err)
			}
			if _, err := io.CopyBuffer(io.Discard, struct{ io.Reader }{r}, buf); err != nil {
				b.Fatal(err)
			}
			r.Close()
		}
		b.StopTimer()
		reportCPU(b, start)
	})
	b.Run("plain", func(b *testing.B) {
		path := filepath.Join(b.TempDir(), "bench")
		os.WriteFile(path, data, 0o600)
		b.SetBytes(benchSize)
		start := cpuTime()
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			f, err := os.Open(path)
			if err != nil {
				b.Fatal(err)
			}
			if _, err := io.CopyBuffer(io.Discard, struct{ io.Reader }{f}, buf); err != nil {
				b.Fatal(err)
			}
			f.Close()
		}
		b.StopTimer()
		reportCPU(b, start)
	})
}
