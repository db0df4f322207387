package lab

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
)

// Forward listens on listen (on this machine, outside the lab) and carries every
// connection to target as if it came from node: a browser on the host machine sees
// the box as the lab's laptop does. It returns when ctx ends.
func (l *Lab) Forward(ctx context.Context, listen, node, target string) error {
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		return fmt.Errorf("forwarding %s: %w", listen, err)
	}
	go func() { <-ctx.Done(); ln.Close() }()
	dial := l.DialContext(node)
	var wg sync.WaitGroup
	defer wg.Wait()
	for {
		c, err := ln.Accept()
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
				return nil
			}
			return err
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer c.Close()
			up, err := dial(ctx, "tcp", target)
			if err != nil {
				return
			}
			defer up.Close()
			done := make(chan struct{}, 2)
			go func() { io.Copy(up, c); up.(*net.TCPConn).CloseWrite(); done <- struct{}{} }()
			go func() { io.Copy(c, up); c.(*net.TCPConn).CloseWrite(); done <- struct{}{} }()
			select {
			case <-done:
				<-done
			case <-ctx.Done():
			}
		}()
	}
}
