package browser

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"
)

// The helpers below act on the browser's tab. Selectors are CSS selectors; each
// call is bounded by Options.Timeout, and its error says what it was doing.

// Navigate loads url and waits for its load event. It returns the document's
// response (nil for a page with none, such as about:blank); a page that cannot
// load (refused, reset, certificate rejected) is an error naming the network
// error, such as net::ERR_CONNECTION_RESET.
//
// A navigation that Chromium aborts with net::ERR_NETWORK_CHANGED — it watches
// the namespace's addresses, and a lab node's change while tests configure it
// (an address added, IPv6 duplicate-address detection ending) — is tried again
// within the timeout, as a person would reload.
func (b *Browser) Navigate(url string) (*network.Response, error) {
	ctx, cancel := b.actx()
	defer cancel()
	for {
		resp, err := chromedp.Run(ctx, chromedp.NavigateResponse(url))
		if netErr, _ := IsLoadError(err); netErr == "net::ERR_NETWORK_CHANGED" && ctx.Err() == nil {
			b.logf("navigating to %s: %s, trying again", url, netErr)
			time.Sleep(100 * time.Millisecond)
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("navigating to %s: %w", url, err)
		}
		return resp, nil
	}
}

// Open loads url and waits until the element sel is visible.
func (b *Browser) Open(url, sel string) error {
	if _, err := b.Navigate(url); err != nil {
		return err
	}
	return b.WaitVisible(sel)
}

// WaitVisible waits until the element sel is present and visible.
func (b *Browser) WaitVisible(sel string) error {
	ctx, cancel := b.actx()
	defer cancel()
	if err := chromedp.Do(ctx, chromedp.WaitVisible(chromedp.CSS(sel))); err != nil {
		return fmt.Errorf("waiting for %s to be visible on %s: %w", sel, b.url(), err)
	}
	return nil
}

// WaitGone waits until no element matches sel.
func (b *Browser) WaitGone(sel string) error {
	ctx, cancel := b.actx()
	defer cancel()
	if err := chromedp.Do(ctx, chromedp.WaitNotPresent(chromedp.CSS(sel))); err != nil {
		return fmt.Errorf("waiting for %s to go from %s: %w", sel, b.url(), err)
	}
	return nil
}

// WaitText waits until the page's visible text contains text: after a
// navigation, or as live updates (server-sent events, fetches) change it.
func (b *Browser) WaitText(text string) error {
	return b.WaitTextIn("body", text)
}

// WaitTextIn waits until the visible text of the element sel contains text.
func (b *Browser) WaitTextIn(sel, text string) error {
	expr := fmt.Sprintf(`(() => { const e = document.querySelector(%s); return !!e && e.innerText.includes(%s) })()`, jsString(sel), jsString(text))
	if err := b.WaitFor(expr); err != nil {
		got, _ := b.Text(sel)
		return fmt.Errorf("waiting for %q in %s on %s: %w; its text is:\n%s", text, sel, b.url(), err, clip(got, 2000))
	}
	return nil
}

// WaitFor waits until the JavaScript expression js is truthy. It polls, so it
// lives through navigations (while the page changes, evaluation fails and is
// tried again).
func (b *Browser) WaitFor(js string) error {
	ctx, cancel := b.actx()
	defer cancel()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	var lastErr error
	for {
		ok, err := chromedp.Run(ctx, chromedp.Evaluate[bool](js))
		if err == nil && ok {
			return nil
		}
		if err != nil && ctx.Err() == nil {
			lastErr = err
		}
		select {
		case <-ctx.Done():
			if lastErr != nil {
				return fmt.Errorf("%w (last evaluation: %v)", ctx.Err(), lastErr)
			}
			return ctx.Err()
		case <-tick.C:
		}
	}
}

// Text returns the visible text of the element sel.
func (b *Browser) Text(sel string) (string, error) {
	return b.evalString(fmt.Sprintf(`(() => { const e = document.querySelector(%s); if (!e) throw new Error("no element matches " + %[1]s); return e.innerText })()`, jsString(sel)), "reading the text of "+sel)
}

// PageText returns the visible text of the whole page.
func (b *Browser) PageText() (string, error) {
	return b.evalString(`document.body ? document.body.innerText : ""`, "reading the page's text")
}

// Title returns the page's title.
func (b *Browser) Title() (string, error) {
	return b.evalString(`document.title`, "reading the page's title")
}

// URL returns the page's URL, after any redirects.
func (b *Browser) URL() (string, error) {
	return b.evalString(`location.href`, "reading the page's URL")
}

// Value returns the current value of the form field sel.
func (b *Browser) Value(sel string) (string, error) {
	return b.evalString(fmt.Sprintf(`(() => { const e = document.querySelector(%s); if (!e) throw new Error("no element matches " + %[1]s); return e.value })()`, jsString(sel)), "reading the value of "+sel)
}

func (b *Browser) evalString(js, what string) (string, error) {
	ctx, cancel := b.actx()
	defer cancel()
	s, err := chromedp.Run(ctx, chromedp.Evaluate[string](js))
	if err != nil {
		return "", fmt.Errorf("%s: %w", what, err)
	}
	return s, nil
}

// url is the page's URL for error messages, or "the page".
func (b *Browser) url() string {
	ctx, cancel := context.WithTimeout(b.ctx, time.Second)
	defer cancel()
	u, err := chromedp.Run(ctx, chromedp.Evaluate[string](`location.href`))
	if err != nil {
		return "the page"
	}
	return u
}

// Fill types value into the field sel as a person would — focus, clear, then
// one key event per character, so the page's input handlers run.
func (b *Browser) Fill(sel, value string) error {
	clear := fmt.Sprintf(`(() => { const e = document.querySelector(%s); e.value = ""; e.dispatchEvent(new Event("input", {bubbles: true})) })()`, jsString(sel))
	ctx, cancel := b.actx()
	defer cancel()
	if err := chromedp.Do(ctx,
		chromedp.WaitVisible(chromedp.CSS(sel)),
		chromedp.Evaluate[chromedp.Void](clear),
		chromedp.SendKeys(chromedp.CSS(sel), value),
	); err != nil {
		return fmt.Errorf("filling %s on %s: %w", sel, b.url(), err)
	}
	return nil
}

// Select chooses the option with value in the <select> sel, and fires its
// change event.
func (b *Browser) Select(sel, value string) error {
	js := fmt.Sprintf(`(() => { const e = document.querySelector(%s); if (!e) throw new Error("no element matches " + %[1]s);
		e.value = %s; if (e.value !== %[2]s) throw new Error("no option " + %[2]s);
		e.dispatchEvent(new Event("input", {bubbles: true})); e.dispatchEvent(new Event("change", {bubbles: true})); return true })()`, jsString(sel), jsString(value))
	return b.Eval(js, nil)
}

// Click clicks the element sel with the mouse, as a person would. It does not
// wait for a navigation the click starts; ClickAndWait does.
func (b *Browser) Click(sel string) error {
	ctx, cancel := b.actx()
	defer cancel()
	if err := chromedp.Do(ctx, chromedp.Click(chromedp.CSS(sel))); err != nil {
		return fmt.Errorf("clicking %s on %s: %w", sel, b.url(), err)
	}
	return nil
}

// ClickAndWait clicks sel and waits for the page it leads to, returning that
// page's response.
func (b *Browser) ClickAndWait(sel string) (*network.Response, error) {
	ctx, cancel := b.actx()
	defer cancel()
	resp, err := chromedp.RunResponse(ctx, chromedp.Click(chromedp.CSS(sel)))
	if err != nil {
		return nil, fmt.Errorf("clicking %s and waiting for the next page: %w", sel, err)
	}
	return resp, nil
}

// Submit submits the form sel (or the form of the element sel, which, if it is
// a submit button, is the submitter) the way pressing its button does — its
// validation and submit handlers run — and waits for the page it leads to.
func (b *Browser) Submit(sel string) (*network.Response, error) {
	js := fmt.Sprintf(`(() => { const e = document.querySelector(%s); if (!e) throw new Error("no element matches " + %[1]s);
		const f = e instanceof HTMLFormElement ? e : e.form; if (!f) throw new Error(%[1]s + " is not in a form");
		const submitter = (e !== f && (e.type === "submit" || e.type === "image")) ? e : undefined;
		f.requestSubmit(submitter) })()`, jsString(sel))
	ctx, cancel := b.actx()
	defer cancel()
	resp, err := chromedp.RunResponse(ctx,
		chromedp.WaitReady(chromedp.CSS(sel)),
		chromedp.Evaluate[chromedp.Void](js),
	)
	if err != nil {
		return nil, fmt.Errorf("submitting %s and waiting for the next page: %w", sel, err)
	}
	return resp, nil
}

// Eval evaluates the JavaScript expression js in the page and decodes its
// result (JSON) into out, unless out is nil. A promise is awaited. DevTools
// evaluation is not subject to the page's Content-Security-Policy, but what the
// script then does (load an image, connect somewhere) is.
func (b *Browser) Eval(js string, out any) error {
	ctx, cancel := b.actx()
	defer cancel()
	if out == nil {
		if err := chromedp.Do(ctx, chromedp.Evaluate[chromedp.Void](js, chromedp.EvalAwaitPromise)); err != nil {
			return fmt.Errorf("evaluating %s: %w", clip(js, 80), err)
		}
		return nil
	}
	raw, err := chromedp.Run(ctx, chromedp.Evaluate[[]byte](js, chromedp.EvalAwaitPromise))
	if err != nil {
		return fmt.Errorf("evaluating %s: %w", clip(js, 80), err)
	}
	if err := json.Unmarshal(raw, out); err != nil {
		return fmt.Errorf("decoding the result of %s: %w", clip(js, 80), err)
	}
	return nil
}

// Viewport sets the page's viewport, e.g. 390×844 for a phone; mobile also
// emulates touch and a mobile layout viewport.
func (b *Browser) Viewport(width, height int, mobile bool) error {
	ctx, cancel := b.actx()
	defer cancel()
	var opts []chromedp.EmulateViewportOption
	if mobile {
		opts = append(opts, chromedp.EmulateMobile, chromedp.EmulateTouch)
	}
	if err := chromedp.Do(ctx, chromedp.EmulateViewport(int64(width), int64(height), opts...)); err != nil {
		return fmt.Errorf("setting the viewport to %dx%d: %w", width, height, err)
	}
	return nil
}

// Cookies returns the browser's cookies for urls (default: the current page's).
func (b *Browser) Cookies(urls ...string) ([]*network.Cookie, error) {
	ctx, cancel := b.actx()
	defer cancel()
	res, err := chromedp.Call(ctx, network.GetCookies, network.GetCookiesParams{URLs: urls})
	if err != nil {
		return nil, fmt.Errorf("reading cookies: %w", err)
	}
	return res.Cookies, nil
}

// SetCookie sets a cookie, as a page or another site would have.
func (b *Browser) SetCookie(p network.SetCookieParams) error {
	ctx, cancel := b.actx()
	defer cancel()
	if _, err := chromedp.Call(ctx, network.SetCookie, p); err != nil {
		return fmt.Errorf("setting cookie %s: %w", p.Name, err)
	}
	return nil
}

// Screenshot saves a full-page PNG of the tab as <Artifacts>/<step>.png and
// returns its path. An empty step is numbered.
func (b *Browser) Screenshot(step string) (string, error) {
	if step == "" {
		step = fmt.Sprintf("step-%02d", b.shots.Add(1))
	}
	// A page still committing (an error page, just after its navigation
	// failed) has no size yet, and a full-page capture of it fails.
	ready := `document.readyState === "complete" && !!document.documentElement && document.documentElement.scrollWidth > 0`
	wctx, wcancel := context.WithTimeout(b.ctx, min(b.timeout, 2*time.Second))
	for wctx.Err() == nil {
		if ok, err := chromedp.Run(wctx, chromedp.Evaluate[bool](ready)); err == nil && ok {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	wcancel()
	ctx, cancel := b.actx()
	defer cancel()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil && ctx.Err() == nil {
		// Fall back to the viewport.
		png, err = chromedp.Run(ctx, chromedp.CaptureScreenshot())
	}
	if err != nil {
		return "", fmt.Errorf("taking screenshot %q: %w", step, err)
	}
	path := filepath.Join(b.Artifacts, sanitize(step)+".png")
	if err := os.WriteFile(path, png, 0o644); err != nil {
		return "", fmt.Errorf("saving screenshot %q: %w", step, err)
	}
	return path, nil
}

// jsString quotes s as a JavaScript string literal.
func jsString(s string) string {
	q, _ := json.Marshal(s)
	return string(q)
}

func clip(s string, n int) string {
	s = strings.TrimSpace(s)
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}

// IsLoadError reports whether err is a page that could not load, and with which
// network error (net::ERR_…).
func IsLoadError(err error) (string, bool) {
	var le *chromedp.LoadError
	if errors.As(err, &le) {
		return le.ErrorText, true
	}
	return "", false
}
