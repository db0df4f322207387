package lab

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strings"
)

var csrfField = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

// page fetches base+path with c and returns the status and body.
func page(ctx context.Context, c *http.Client, method, url_ string, form url.Values) (int, string, error) {
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequestWithContext(ctx, method, url_, body)
	if err != nil {
		return 0, "", err
	}
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	resp, err := c.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	return resp.StatusCode, string(b), err
}

// SetUpBox walks the box's setup wizard as a new owner would, with client (one
// that keeps cookies, on the laptop): the setup code, the passphrase, the box's
// name, skipping every optional step, and finishing. base is the box's plain
// HTTP address ("http://10.201.86.1").
func SetUpBox(ctx context.Context, client *http.Client, base, code, passphrase, name string) error {
	return SetUpBoxWith(ctx, client, base, code, passphrase, name, nil)
}

// SetUpBoxWith is SetUpBox answering the optional steps in answers, by the step's
// ID ("vpn", "team"), and skipping the others.
func SetUpBoxWith(ctx context.Context, client *http.Client, base, code, passphrase, name string, answers map[string]url.Values) error {
	st, body, err := page(ctx, client, http.MethodPost, base+"/setup/code", url.Values{"code": {code}})
	if err != nil {
		return fmt.Errorf("entering the setup code: %w", err)
	}
	if st != http.StatusSeeOther {
		return fmt.Errorf("the setup code was refused (%d)", st)
	}
	for range 20 {
		st, body, err = page(ctx, client, http.MethodGet, base+"/setup", nil)
		if err != nil {
			return err
		}
		if st == http.StatusFound {
			return nil // setup is done
		}
		m := csrfField.FindStringSubmatch(body)
		if m == nil {
			return fmt.Errorf("no form on the setup page (%d):\n%s", st, body)
		}
		form := url.Values{"csrf": {m[1]}}
		var path string
		switch {
		case strings.Contains(body, `action="/setup/passphrase"`):
			path = "/setup/passphrase"
			form.Set("passphrase", passphrase)
			form.Set("confirm", passphrase)
		case strings.Contains(body, `action="/setup/name"`):
			path = "/setup/name"
			form.Set("name", name)
		case strings.Contains(body, `action="/setup/finish"`):
			path = "/setup/finish"
		default:
			m := regexp.MustCompile(`action="(/setup/step/[^"]+)"`).FindStringSubmatch(body)
			if m == nil {
				return fmt.Errorf("an unknown setup step:\n%s", body)
			}
			path = m[1]
			if a, ok := answers[strings.TrimPrefix(path, "/setup/step/")]; ok {
				for k, v := range a {
					form[k] = v
				}
			} else {
				form.Set("skip", "1")
			}
		}
		st, body, err = page(ctx, client, http.MethodPost, base+path, form)
		if err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
		if st != http.StatusSeeOther {
			return fmt.Errorf("%s was refused (%d):\n%s", path, st, body)
		}
		if path == "/setup/finish" {
			return nil
		}
	}
	return fmt.Errorf("setup did not finish")
}

// SignIn signs in to the box's pages over HTTPS and returns the dashboard's CSRF
// token.
func SignIn(ctx context.Context, client *http.Client, base, passphrase string) (string, error) {
	st, body, err := page(ctx, client, http.MethodPost, base+"/unlock", url.Values{"passphrase": {passphrase}})
	if err != nil {
		return "", err
	}
	if st != http.StatusSeeOther {
		return "", fmt.Errorf("sign-in refused (%d): %s", st, body)
	}
	st, body, err = page(ctx, client, http.MethodGet, base+"/", nil)
	if err != nil {
		return "", err
	}
	m := csrfField.FindStringSubmatch(body)
	if st != http.StatusOK || m == nil {
		return "", fmt.Errorf("the dashboard after sign-in (%d)", st)
	}
	return m[1], nil
}
