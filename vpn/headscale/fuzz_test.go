package headscale

import (
	"encoding/json"
	"strings"
	"testing"
	"unicode/utf8"
)

// FuzzDecode feeds Headscale's answers — untrusted bytes from the network —
// to every decoder: error bodies and the user, key and node shapes.
func FuzzDecode(f *testing.F) {
	for _, s := range []string{
		`{"code":5, "message":"node not found", "details":[]}`,
		`Unauthorized`,
		`{"users":[{"id":"1","name":"alice","createdAt":"2026-11-22T12:00:30.084146134Z"}]}`,
		`{"preAuthKey":{"user":null,"id":"2","key":"hskey-auth-x","aclTags":["tag:a"],"expiration":"2026-11-22T13:00:00Z"}}`,
		`{"nodes":[{"id":"7","ipAddresses":["100.64.0.1","fd7a:115c:a1e0::1","bad"],"user":{"id":1},"preAuthKey":{"id":"3"},"lastSeen":null}]}`,
		`{"id": 18446744073709551615}`, `{"id": "-1"}`, `{"code":"x"}`, "\x00\xff",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		e := decodeError("op", 500, b)
		msg := e.Error()
		if strings.ContainsAny(msg, "\n\r\x00") || len(e.Message) > 310 {
			t.Fatalf("error message not cleaned: %q", msg)
		}
		if utf8.Valid(b) && !utf8.ValidString(msg) {
			t.Fatalf("valid input made invalid text: %q", msg)
		}
		var users struct{ Users []wireUser }
		if json.Unmarshal(b, &users) == nil {
			for i := range users.Users {
				_ = users.Users[i].user()
			}
		}
		var key struct{ PreAuthKey wireKey }
		if json.Unmarshal(b, &key) == nil {
			_ = key.PreAuthKey.key()
		}
		var nodes struct{ Nodes []wireNode }
		if json.Unmarshal(b, &nodes) == nil {
			for i := range nodes.Nodes {
				n := nodes.Nodes[i].node()
				for _, a := range n.Addrs {
					if !a.IsValid() {
						t.Fatal("invalid address kept")
					}
				}
			}
		}
	})
}

func TestDecodeError(t *testing.T) {
	for _, tc := range []struct {
		status          int
		body            string
		unauth, missing bool
		want            string
	}{
		{401, "Unauthorized", true, false, "wrong or expired (HTTP 401)"},
		{403, "", true, false, "wrong or expired (HTTP 403)"},
		{404, `{"code":5,"message":"node not found"}`, false, true, "Headscale says: node not found (HTTP 404)"},
		{500, `{"code":2,"message":"user not found"}`, false, true, "user not found"},
		{500, `{"code":13,"message":"creating user: UNIQUE constraint failed: users.name"}`, false, false, "UNIQUE"},
		{502, "<html>\nbad gateway</html>", false, false, "<html> bad gateway</html>"},
	} {
		e := decodeError("doing it", tc.status, []byte(tc.body))
		if e.Is(ErrUnauthorized) != tc.unauth || e.Is(ErrNotFound) != tc.missing || !strings.Contains(e.Error(), tc.want) || !strings.HasPrefix(e.Error(), "doing it: ") {
			t.Errorf("%d %q: %q unauth=%v missing=%v", tc.status, tc.body, e.Error(), e.Is(ErrUnauthorized), e.Is(ErrNotFound))
		}
	}
}

func TestNewRefuses(t *testing.T) {
	for _, tc := range []struct{ url, key, want string }{
		{"ftp://h", "k", "want https://"},
		{"https://", "k", "no host"},
		{"https://u:p@h", "k", "user information"},
		{"https://h/?x=1", "k", "no query"},
		{"https://h", "", "empty"},
		{"https://h", "a b", "characters"},
		{"https://h", "a\r\nX-Evil: 1", "characters"},
	} {
		_, err := New(tc.url, tc.key, nil)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("New(%q, %q) = %v, want %q", tc.url, tc.key, err, tc.want)
		}
	}
}
