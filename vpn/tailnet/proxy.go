package tailnet

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"sync"
	"time"

	"tailscale.com/net/tshttpproxy"

	"github.com/redoubt/redoubt/vpn/egress"
)

// Proxy is an HTTP CONNECT proxy on the box's loopback that opens every
// connection through the VPN egress. The tailnet node's control and DERP
// connections use it (tailscale honours an HTTP proxy for both), so they leave the
// box only through the VPN, and a name like the Headscale server's is resolved
// inside the tunnel, never by the local network.
type Proxy struct {
	egress egress.Dialer
	log    *slog.Logger
	ln     net.Listener
	wg     sync.WaitGroup

	mu    sync.Mutex
	conns map[net.Conn]struct{}
}

// StartProxy listens on 127.0.0.1 (a port of the kernel's choosing).
func StartProxy(d egress.Dialer, log *slog.Logger) (*Proxy, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("starting the tailnet's proxy: %w", err)
	}
	p := &Proxy{egress: d, log: log, ln: ln, conns: make(map[net.Conn]struct{})}
	p.wg.Add(1)
	go p.serve()
	return p, nil
}

// URL is the proxy's address as a proxy URL.
func (p *Proxy) URL() *url.URL { return &url.URL{Scheme: "http", Host: p.ln.Addr().String()} }

// Install makes tailscale's own HTTP clients (control, DERP) use the proxy for
// every URL. Tailscale keeps this setting process-wide and accepts it once, so
// the daemon installs one Proxy for its whole life.
func (p *Proxy) Install() error {
	u := p.URL()
	return tshttpproxy.SetProxyFunc(func(*url.URL) (*url.URL, error) { return u, nil })
}

// Close stops the proxy and the connections it carries.
func (p *Proxy) Close() error {
	err := p.ln.Close()
	p.mu.Lock()
	for c := range p.conns {
		c.Close()
	}
	p.mu.Unlock()
	p.wg.Wait()
	return err
}

// track remembers c until it is closed, so Close can end it.
func (p *Proxy) track(c net.Conn, on bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if on {
		p.conns[c] = struct{}{}
	} else {
		delete(p.conns, c)
	}
}

func (p *Proxy) serve() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			p.handle(c)
		}()
	}
}

// handle serves one CONNECT: only CONNECT, only from this machine.
func (p *Proxy) handle(c net.Conn) {
	p.track(c, true)
	defer p.track(c, false)
	defer c.Close()
	c.SetDeadline(time.Now().Add(30 * time.Second))
	br := bufio.NewReaderSize(c, 4096)
	req, err := http.ReadRequest(br)
	if err != nil {
		return
	}
	if req.Method != http.MethodConnect {
		io.WriteString(c, "HTTP/1.1 405 Method Not Allowed\r\nContent-Length: 0\r\n\r\n")
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	up, err := p.egress.DialContext(ctx, "tcp", req.Host)
	cancel()
	if err != nil {
		status := "502 Bad Gateway"
		if errors.Is(err, egress.ErrNoEgress) {
			status = "503 Service Unavailable"
		}
		p.log.Debug("tailnet proxy: no connection", "to", req.Host, "err", err)
		fmt.Fprintf(c, "HTTP/1.1 %s\r\nContent-Length: 0\r\n\r\n", status)
		return
	}
	p.track(up, true)
	defer p.track(up, false)
	defer up.Close()
	io.WriteString(c, "HTTP/1.1 200 Connection Established\r\n\r\n")
	c.SetDeadline(time.Time{})
	done := make(chan struct{}, 2)
	go func() {
		if n := br.Buffered(); n > 0 {
			b, _ := br.Peek(n)
			up.Write(b)
		}
		io.Copy(up, c)
		closeWrite(up)
		done <- struct{}{}
	}()
	go func() {
		io.Copy(c, up)
		closeWrite(c)
		done <- struct{}{}
	}()
	<-done
	<-done
}

func closeWrite(c net.Conn) {
	if cw, ok := c.(interface{ CloseWrite() error }); ok {
		cw.CloseWrite()
	}
}
