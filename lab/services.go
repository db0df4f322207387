package lab

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"time"

	"github.com/redoubt/redoubt/lab/internet"
)

// startInternet runs the internet's tracker and resolver (`redoubt lab internet`)
// and waits until they answer.
func (l *Lab) startInternet(ctx context.Context) error {
	p, err := l.Start(Internet, "internet", l.Binary, "lab", "internet",
		"--tracker", Tracker.String(), "--name", TrackerName)
	if err != nil {
		return err
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		var dialErr error
		l.Do(Internet, func() error {
			c, err := net.DialTimeout("tcp", net.JoinHostPort(Tracker.String(), "80"), time.Second)
			if err == nil {
				c.Close()
			}
			dialErr = err
			return nil
		})
		if dialErr == nil {
			return nil
		}
		if done, err := p.Exited(); done {
			return fmt.Errorf("the lab's internet services exited (%v):\n%s", err, p.Output())
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the lab's internet services did not start: %v", dialErr)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// InternetHits returns every request the internet's services received.
func (l *Lab) InternetHits() ([]internet.Hit, error) {
	f, err := os.Open(l.Dir + "/internet.log")
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var hits []internet.Hit
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var h internet.Hit
		if json.Unmarshal(sc.Bytes(), &h) == nil && h.Proto != "" {
			hits = append(hits, h)
		}
	}
	return hits, sc.Err()
}
