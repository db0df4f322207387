package guard

import (
	"net"
	"sync"
)

// Listener wraps the TCP listener of a DNS server: connections beyond the limits
// are closed as soon as they are accepted.
func (g *Guard) Listener(ln net.Listener) net.Listener {
	return &listener{Listener: ln, g: g}
}

type listener struct {
	net.Listener
	g *Guard
}

func (l *listener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		ip := ipOf(c.RemoteAddr())
		if !l.g.admitConn(ip) {
			c.Close()
			continue
		}
		return &conn{Conn: c, addr: &Addr{Addr: c.RemoteAddr(), ip: ip, g: l.g}}, nil
	}
}

type conn struct {
	net.Conn
	addr *Addr
	once sync.Once
}

func (c *conn) RemoteAddr() net.Addr { return c.addr }

// Write sends one answer: a DNS server writes the two-byte length and the message
// in one call.
func (c *conn) Write(b []byte) (int, error) {
	if len(b) > 2 {
		c.addr.wrote(b[2:])
	}
	return c.Conn.Write(b)
}

func (c *conn) Close() error {
	err := c.Conn.Close()
	c.once.Do(func() { c.addr.g.releaseConn(c.addr.ip) })
	return err
}
