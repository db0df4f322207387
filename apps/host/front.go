package host

import (
	"bytes"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"sync"
	"time"
)

// front splits the LAN's HTTPS listener (tcp/443) by the TLS server name
// each client asks for: an app's name goes to the apps' HTTPS server, and
// everything else (the box's own names, its address, no name, not TLS at
// all) to the owner's pages, untouched: the bytes read to find the name are
// handed on with the connection.
type front struct {
	ln    net.Listener
	isApp func(serverName string) bool
	admin *chanListener
	apps  *chanListener
	sem   chan struct{}
}

// sniffWait bounds how long a client may take to send its ClientHello.
const sniffWait = 10 * time.Second

func newFront(ln net.Listener, isApp func(string) bool) *front {
	f := &front{ln: ln, isApp: isApp, admin: newChanListener(ln.Addr()), apps: newChanListener(ln.Addr()), sem: make(chan struct{}, 128)}
	go f.loop()
	return f
}

func (f *front) loop() {
	for {
		c, err := f.ln.Accept()
		if err != nil {
			f.admin.fail(err)
			f.apps.fail(err)
			return
		}
		f.sem <- struct{}{}
		go func() {
			defer func() { <-f.sem }()
			f.classify(c)
		}()
	}
}

func (f *front) classify(c net.Conn) {
	c.SetReadDeadline(time.Now().Add(sniffWait))
	name, seen, err := serverName(c)
	c.SetReadDeadline(time.Time{})
	pc := &prefixConn{Conn: c, r: io.MultiReader(bytes.NewReader(seen), c)}
	if err == nil && name != "" && f.isApp(name) {
		f.apps.put(pc)
		return
	}
	f.admin.put(pc)
}

// close stops the split; the listener it splits is the LAN's to close.
func (f *front) close() {
	f.ln.Close()
	f.admin.Close()
	f.apps.Close()
}

var errSniffed = errors.New("sniffed")

// serverName reads a TLS ClientHello from c and returns the server name it
// asks for, with the bytes read.
func serverName(c net.Conn) (string, []byte, error) {
	rec := &recordingConn{Conn: c}
	var name string
	err := tls.Server(rec, &tls.Config{GetConfigForClient: func(h *tls.ClientHelloInfo) (*tls.Config, error) {
		name = h.ServerName
		return nil, errSniffed
	}}).Handshake()
	if errors.Is(err, errSniffed) {
		err = nil
	}
	return name, rec.buf.Bytes(), err
}

// recordingConn keeps what is read and writes nothing (the sniffing TLS
// server's alert never reaches the client).
type recordingConn struct {
	net.Conn
	buf bytes.Buffer
}

func (r *recordingConn) Read(p []byte) (int, error) {
	n, err := r.Conn.Read(p)
	r.buf.Write(p[:n])
	return n, err
}

func (r *recordingConn) Write(p []byte) (int, error) { return len(p), nil }

// prefixConn reads what was sniffed first, then the connection.
type prefixConn struct {
	net.Conn
	r io.Reader
}

func (p *prefixConn) Read(b []byte) (int, error) { return p.r.Read(b) }

// chanListener is a net.Listener fed connections by someone else.
type chanListener struct {
	addr net.Addr
	ch   chan net.Conn
	done chan struct{}

	once sync.Once
	mu   sync.Mutex
	err  error
}

func newChanListener(addr net.Addr) *chanListener {
	return &chanListener{addr: addr, ch: make(chan net.Conn), done: make(chan struct{})}
}

func (l *chanListener) put(c net.Conn) {
	select {
	case l.ch <- c:
	case <-l.done:
		c.Close()
	}
}

func (l *chanListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.ch:
		return c, nil
	case <-l.done:
		l.mu.Lock()
		defer l.mu.Unlock()
		return nil, l.err
	}
}

// fail ends the listener with err (the listener it was fed from failed).
func (l *chanListener) fail(err error) {
	l.once.Do(func() {
		l.mu.Lock()
		l.err = err
		l.mu.Unlock()
		close(l.done)
	})
}

func (l *chanListener) Close() error {
	l.fail(net.ErrClosed)
	return nil
}

func (l *chanListener) Addr() net.Addr { return l.addr }
