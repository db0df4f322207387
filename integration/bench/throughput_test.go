// Package bench_test measures the LAN port in the lab against the kernel doing the
// same job on the same veth pair, in the same run: TCP throughput both ways, and
// the box's idle memory. bench/netstack.sh turns the numbers into ratios.
package bench_test

import (
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redoubt/redoubt/datapath/lan"
	"github.com/redoubt/redoubt/datapath/leaklog"
	"github.com/redoubt/redoubt/lab"
	"github.com/redoubt/redoubt/lab/labtest"
)

func TestMain(m *testing.M) { labtest.Main(m) }

const (
	port      = 5201
	chunk     = 32 << 20 // bytes moved per iteration
	kernelLAN = "10.201.86.2/24"
)

// serve answers requests on ln: 'D'+n sends n bytes, 'U'+n reads n bytes and
// answers one byte.
func serve(ln net.Listener) {
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		go func() {
			defer c.Close()
			buf := make([]byte, 256<<10)
			var req [9]byte
			for {
				if _, err := io.ReadFull(c, req[:]); err != nil {
					return
				}
				n := int64(binary.BigEndian.Uint64(req[1:]))
				switch req[0] {
				case 'D':
					for n > 0 {
						w, err := c.Write(buf[:min(int64(len(buf)), n)])
						if err != nil {
							return
						}
						n -= int64(w)
					}
				case 'U':
					for n > 0 {
						r, err := c.Read(buf[:min(int64(len(buf)), n)])
						if err != nil {
							return
						}
						n -= int64(r)
					}
					c.Write([]byte{1})
				}
			}
		}()
	}
}

// transfer moves chunk bytes over c in direction dir ('D' or 'U').
func transfer(c net.Conn, dir byte, buf []byte) error {
	var req [9]byte
	req[0] = dir
	binary.BigEndian.PutUint64(req[1:], chunk)
	if _, err := c.Write(req[:]); err != nil {
		return err
	}
	if dir == 'D' {
		// Read with the big buffer itself: io.Discard would read 8 KiB at a time
		// and make the laptop, not the box, the bottleneck.
		for n := int64(chunk); n > 0; {
			r, err := c.Read(buf[:min(int64(len(buf)), n)])
			if err != nil {
				return err
			}
			n -= int64(r)
		}
		return nil
	}
	for n := int64(chunk); n > 0; {
		w, err := c.Write(buf[:min(int64(len(buf)), n)])
		if err != nil {
			return err
		}
		n -= int64(w)
	}
	_, err := io.ReadFull(c, req[:1])
	return err
}

// dialFromLaptop opens a kernel TCP connection from the laptop's namespace.
func dialFromLaptop(b *testing.B, e *labtest.Env, addr string) net.Conn {
	var c net.Conn
	err := e.Lab.Do(lab.Laptop, func() error {
		var err error
		c, err = net.DialTimeout("tcp", addr, 5*time.Second)
		return err
	})
	if err != nil {
		b.Fatalf("dialling %s from the laptop: %v", addr, err)
	}
	return c
}

func run(b *testing.B, e *labtest.Env, addr string, dir byte) {
	c := dialFromLaptop(b, e, addr)
	defer c.Close()
	buf := make([]byte, 256<<10)
	if err := transfer(c, dir, buf); err != nil { // warm up: slow start, buffers
		b.Fatal(err)
	}
	b.SetBytes(chunk)
	b.ResetTimer()
	for range b.N {
		if err := transfer(c, dir, buf); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkTCP runs each direction through the netstack and through the kernel,
// back to back on the same veth pair.
func BenchmarkTCP(b *testing.B) {
	e := labtest.SharedLab(b)
	ctx := context.Background()
	if err := e.Lab.LaptopStatic(ctx); err != nil {
		b.Fatal(err)
	}
	for _, dir := range []struct {
		name string
		op   byte
	}{{"download", 'D'}, {"upload", 'U'}} {
		b.Run(dir.name+"/netstack", func(b *testing.B) {
			var l *lan.LAN
			err := e.Lab.Do(lab.Box, func() error {
				var err error
				l, err = lan.Open(lan.Config{Interface: lab.BoxLANIface},
					lan.Deps{Logger: slog.New(slog.DiscardHandler), Leaks: leaklog.New(leaklog.Config{})})
				return err
			})
			if err != nil {
				b.Fatal(err)
			}
			defer l.Close()
			ln, err := l.ListenTCP(port)
			if err != nil {
				b.Fatal(err)
			}
			defer ln.Close()
			go serve(ln)
			run(b, e, net.JoinHostPort(lab.BoxLAN.String(), strconv.Itoa(port)), dir.op)
			b.StopTimer()
			st := l.Stats().Link
			b.ReportMetric(float64(st.TxWaits)/float64(b.N), "txwaits/op")
			b.ReportMetric(float64(st.TxDropped), "txdropped")
			if st.TxFrames > 0 {
				b.ReportMetric(float64(st.TxBytes)/float64(st.TxFrames), "B/txframe")
			}
			if st.RxFrames > 0 {
				b.ReportMetric(float64(st.RxBytes)/float64(st.RxFrames), "B/rxframe")
			}
		})
		b.Run(dir.name+"/kernel", func(b *testing.B) {
			// The kernel answers ARP on the port again (the netstack runs
			// turn that off) and holds an address there.
			for _, c := range [][]string{
				{"sysctl", "-qw", "net.ipv4.conf." + lab.BoxLANIface + ".arp_ignore=0"},
				{"ip", "addr", "add", kernelLAN, "dev", lab.BoxLANIface},
			} {
				if _, err := e.Lab.Exec(ctx, lab.Box, c...); err != nil {
					b.Fatal(err)
				}
			}
			defer e.Lab.Exec(ctx, lab.Box, "ip", "addr", "del", kernelLAN, "dev", lab.BoxLANIface)
			var ln net.Listener
			err := e.Lab.Do(lab.Box, func() error {
				var err error
				ln, err = net.Listen("tcp", net.JoinHostPort(strings.Split(kernelLAN, "/")[0], strconv.Itoa(port)))
				return err
			})
			if err != nil {
				b.Fatal(err)
			}
			defer ln.Close()
			go serve(ln)
			run(b, e, ln.Addr().String(), dir.op)
		})
	}
}

// BenchmarkIdleRSS starts `redoubt serve` in the lab, lets it settle, and reports
// its resident memory.
func BenchmarkIdleRSS(b *testing.B) {
	e := labtest.SharedLab(b)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for range b.N {
		box, err := e.Lab.StartBox(ctx, e.Lab.BoxConfig(""))
		if err != nil {
			b.Fatal(err)
		}
		time.Sleep(3 * time.Second)
		// ip netns exec runs the daemon as its child; find the daemon itself.
		pid := daemonPid(b, box.Pid())
		rss := rssKiB(b, pid)
		box.Stop(10 * time.Second)
		b.ReportMetric(float64(rss)/1024, "MiB-rss")
	}
}

// daemonPid finds the redoubt process started under `ip netns exec` (which execs
// it, so it is usually the same pid).
func daemonPid(b *testing.B, pid int) int {
	comm, err := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid))
	if err != nil {
		b.Fatal(err)
	}
	if strings.TrimSpace(string(comm)) == "redoubt" {
		return pid
	}
	kids, _ := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", pid, pid))
	for _, f := range strings.Fields(string(kids)) {
		if p, err := strconv.Atoi(f); err == nil {
			return p
		}
	}
	b.Fatalf("no redoubt process under pid %d (%s)", pid, comm)
	return 0
}

func rssKiB(b *testing.B, pid int) int {
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		b.Fatal(err)
	}
	for _, line := range strings.Split(string(status), "\n") {
		if strings.HasPrefix(line, "VmRSS:") {
			f := strings.Fields(line)
			n, _ := strconv.Atoi(f[1])
			return n
		}
	}
	b.Fatal("no VmRSS")
	return 0
}
