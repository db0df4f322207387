// Command extapp is an external app for the host's tests: it serves HTTP on
// the socket the host gives it, uses its Env over the other socket, and, when
// asked, tries to reach what its sandbox should keep from it.
package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"time"
)

func main() {
	env := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return net.Dial("unix", os.Getenv("REDOUBT_ENV_SOCKET"))
	}}}
	call := func(method, path string, body io.Reader, hdr ...string) (int, string) {
		req, _ := http.NewRequest(method, "http://env"+path, body)
		for i := 0; i+1 < len(hdr); i += 2 {
			req.Header.Set(hdr[i], hdr[i+1])
		}
		resp, err := env.Do(req)
		if err != nil {
			return 0, err.Error()
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		raw, _ := base64.RawURLEncoding.DecodeString(r.Header.Get("Redoubt-Caller"))
		var c struct {
			Owner  bool `json:"owner"`
			Member struct {
				Name string `json:"name"`
			} `json:"member"`
			Network string `json:"network"`
		}
		json.Unmarshal(raw, &c)
		who := c.Member.Name
		if c.Owner {
			who = "owner"
		}
		fmt.Fprintf(w, "hello %s on %s, uid %d", who, c.Network, os.Getuid())
	})
	mux.HandleFunc("GET /store", func(w http.ResponseWriter, r *http.Request) {
		var out []string
		st, _ := call("PUT", "/v1/records/notes/1", strings.NewReader("kept by extapp"))
		out = append(out, fmt.Sprint("put ", st))
		st, b := call("GET", "/v1/records/notes/1", nil)
		out = append(out, fmt.Sprint("get ", st, " ", b))
		data := bytes.Repeat([]byte("x"), 300000)
		st, _ = call("PUT", "/v1/blobs/big", bytes.NewReader(data))
		out = append(out, fmt.Sprint("blob ", st))
		st, b = call("GET", "/v1/blobs/big", nil, "Range", "bytes=100-104")
		out = append(out, fmt.Sprint("range ", st, " ", b))
		st, _ = call("GET", "/v1/records/missing", nil)
		out = append(out, fmt.Sprint("missing ", st))
		io.WriteString(w, strings.Join(out, "; "))
	})
	mux.HandleFunc("GET /read", func(w http.ResponseWriter, r *http.Request) {
		p := r.URL.Query().Get("path")
		if _, err := os.ReadDir(p); err == nil {
			fmt.Fprintf(w, "read %s", p)
			return
		}
		if _, err := os.ReadFile(p); err == nil {
			fmt.Fprintf(w, "read %s", p)
			return
		}
		fmt.Fprintf(w, "denied %s", p)
	})
	mux.HandleFunc("GET /dial", func(w http.ResponseWriter, r *http.Request) {
		c, err := net.DialTimeout("tcp", r.URL.Query().Get("addr"), 2*time.Second)
		if err != nil {
			fmt.Fprintf(w, "failed: %v", err)
			return
		}
		c.Close()
		io.WriteString(w, "connected")
	})
	ln, err := net.Listen("unix", os.Getenv("REDOUBT_APP_SOCKET"))
	if err != nil {
		fmt.Println(err)
		os.Exit(1)
	}
	fmt.Println("extapp serving")
	http.Serve(ln, mux)
}
