package localapi

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/redoubt/redoubt/vpn/external"
	"github.com/redoubt/redoubt/vpn/wgconfig"
)

type fakeVPN struct {
	fromFile bool
	set      []byte
}

func (f *fakeVPN) Status() external.Status {
	return external.Status{State: external.StateUp, FromFile: f.fromFile}
}
func (f *fakeVPN) Set(text []byte) (*wgconfig.Config, error) {
	if f.fromFile {
		return nil, external.ErrFromFile
	}
	c, err := wgconfig.Parse(text)
	if err == nil {
		f.set = text
	}
	return c, err
}
func (f *fakeVPN) Clear() error {
	if f.fromFile {
		return external.ErrFromFile
	}
	return nil
}
func (f *fakeVPN) Test(context.Context) external.TestResult {
	return external.TestResult{OK: true, Checks: []external.Check{{Name: "config", OK: true, Detail: "A config."}}}
}
func (f *fakeVPN) Fetch(_ context.Context, url string, _ int) (external.FetchResult, error) {
	return external.FetchResult{URL: url, Status: 200, Bytes: 5}, nil
}

func TestVPNRoutes(t *testing.T) {
	v := &fakeVPN{}
	mux := http.NewServeMux()
	vpnRoutes(mux, v)
	do := func(method, path, body string) (int, string) {
		rec := httptest.NewRecorder()
		mux.ServeHTTP(rec, httptest.NewRequest(method, path, strings.NewReader(body)))
		return rec.Code, rec.Body.String()
	}
	if code, body := do("GET", "/v1/vpn", ""); code != 200 || !strings.Contains(body, `"state": "up"`) {
		t.Errorf("GET: %d %s", code, body)
	}
	code, body := do("PUT", "/v1/vpn", "[Interface]\nPrivateKey = short\n")
	var ve VPNError
	if code != 400 || json.Unmarshal([]byte(body), &ve) != nil || ve.Line != 2 || ve.Key != "PrivateKey" || ve.Section != "Interface" {
		t.Errorf("PUT a bad config: %d %s", code, body)
	}
	if code, body := do("PUT", "/v1/vpn", strings.Repeat("#", wgconfig.MaxSize+10)); code != 400 || !strings.Contains(body, "at most") {
		t.Errorf("PUT a huge config: %d %s", code, body)
	}
	good := "[Interface]\nPrivateKey = yAnz5TF+lXXJte14tji3zlMNq+hd2rYUIgJBgB3fBmk=\nAddress = 10.64.0.2/32\n[Peer]\nPublicKey = xTIBA5rboUvnH4htodjb6e697QjLERt1NAB4mZqp8Dg=\nEndpoint = 192.0.2.2:51820\nAllowedIPs = 0.0.0.0/0\n"
	if code, body := do("PUT", "/v1/vpn", good); code != 200 || strings.Contains(body, "yAnz5") {
		t.Errorf("PUT a good config: %d %s", code, body)
	}
	if code, body := do("POST", "/v1/vpn/fetch", `{"url":"http://example.com/"}`); code != 200 || !strings.Contains(body, `"bytes": 5`) {
		t.Errorf("fetch: %d %s", code, body)
	}
	v.fromFile = true
	if code, body := do("PUT", "/v1/vpn", good); code != 409 || !strings.Contains(body, "config file") {
		t.Errorf("PUT with a file config: %d %s", code, body)
	}
	if code, _ := do("DELETE", "/v1/vpn", ""); code != 409 {
		t.Errorf("DELETE with a file config: %d", code)
	}
}
