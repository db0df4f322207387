package browser

import (
	"fmt"
	"strings"
	"sync"

	"github.com/chromedp/cdproto/log"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/runtime"
)

// Problem is something that went wrong in the page, as a test asserting a clean
// page wants to know: a console error, an uncaught exception, an error in the
// browser's log (a Content-Security-Policy violation, a resource that failed to
// load, a mixed-content block, a security header ignored), or a request that
// failed or was blocked. Not problems: requests the page abandoned itself, and
// a missing /favicon.ico, which the browser asks for on its own.
type Problem struct {
	// Kind is "console", "exception", "log" or "request".
	Kind string
	// Source is, for "log", the part of the browser that logged it
	// ("security" for CSP, "network", "javascript", …); for "request", the
	// resource type; for "console", the console call ("error", "assert").
	Source string
	// Text says what happened; for a request, the network error and the
	// reason it was blocked, if it was ("csp", "mixed-content", …).
	Text string
	// URL is the page, script or request it concerns, when known.
	URL string
}

func (p Problem) String() string {
	s := p.Kind
	if p.Source != "" {
		s += "/" + p.Source
	}
	s += ": " + p.Text
	if p.URL != "" {
		s += " (" + p.URL + ")"
	}
	return s
}

// IsCSP reports whether p is a Content-Security-Policy violation, logged or
// as a blocked request.
func (p Problem) IsCSP() bool {
	return strings.Contains(p.Text, "Content Security Policy") || strings.Contains(p.Text, "blocked: csp")
}

// maxProblems bounds what a browser keeps; a page in a loop cannot exhaust
// memory.
const maxProblems = 1000

// problems collects Problems from the tab's events. record runs in chromedp's
// event loop: it must not block or call into the browser.
type problems struct {
	mu       sync.Mutex
	list     []Problem
	dropped  int
	requests map[network.RequestID]string // URL of each request in flight
}

func (p *problems) init() { p.requests = map[network.RequestID]string{} }

func (p *problems) add(pr Problem) {
	if len(p.list) >= maxProblems {
		p.dropped++
		return
	}
	p.list = append(p.list, pr)
}

func (p *problems) record(ev any) {
	p.mu.Lock()
	defer p.mu.Unlock()
	switch ev := ev.(type) {
	case *network.EventRequestWillBeSent:
		if len(p.requests) < 10000 && ev.Request != nil {
			p.requests[ev.RequestID] = ev.Request.URL
		}
	case *network.EventLoadingFinished:
		delete(p.requests, ev.RequestID)
	case *network.EventLoadingFailed:
		url := p.requests[ev.RequestID]
		delete(p.requests, ev.RequestID)
		// A request the page itself abandoned (navigating away from an
		// open event stream) is not a problem.
		if ev.Canceled && ev.BlockedReason == "" {
			return
		}
		var text []string
		if ev.ErrorText != "" {
			text = append(text, ev.ErrorText)
		}
		if ev.BlockedReason != "" {
			text = append(text, "blocked: "+string(ev.BlockedReason))
		}
		if ev.CorsErrorStatus != nil {
			text = append(text, "cors: "+string(ev.CorsErrorStatus.CorsError))
		}
		p.add(Problem{Kind: "request", Source: string(ev.Type), Text: strings.Join(text, ", "), URL: url})
	case *runtime.EventConsoleAPICalled:
		if ev.Type != runtime.ConsoleAPICalledTypeError && ev.Type != runtime.ConsoleAPICalledTypeAssert {
			return
		}
		var parts []string
		for _, a := range ev.Args {
			switch {
			case a.Value != nil:
				parts = append(parts, strings.Trim(string(a.Value), `"`))
			case a.Description != "":
				parts = append(parts, a.Description)
			default:
				parts = append(parts, string(a.Type))
			}
		}
		url := ""
		if ev.StackTrace != nil && len(ev.StackTrace.CallFrames) > 0 {
			url = ev.StackTrace.CallFrames[0].URL
		}
		p.add(Problem{Kind: "console", Source: string(ev.Type), Text: strings.Join(parts, " "), URL: url})
	case *runtime.EventExceptionThrown:
		d := ev.ExceptionDetails
		if d == nil {
			return
		}
		text := d.Text
		if d.Exception != nil && d.Exception.Description != "" {
			text += " " + d.Exception.Description
		}
		p.add(Problem{Kind: "exception", Text: text, URL: fmt.Sprintf("%s:%d", d.URL, d.LineNumber+1)})
	case *log.EventEntryAdded:
		e := ev.Entry
		if e == nil || e.Level != log.EntryLevelError {
			return
		}
		// The browser asks for /favicon.ico by itself; a page without one
		// has no problem.
		if e.Source == log.EntrySourceNetwork && strings.HasSuffix(e.URL, "/favicon.ico") {
			return
		}
		p.add(Problem{Kind: "log", Source: string(e.Source), Text: e.Text, URL: e.URL})
	}
}

// Problems returns what went wrong in the page since the browser started or
// since ClearProblems.
func (b *Browser) Problems() []Problem {
	b.problems.mu.Lock()
	defer b.problems.mu.Unlock()
	out := append([]Problem(nil), b.problems.list...)
	if b.problems.dropped > 0 {
		out = append(out, Problem{Kind: "dropped", Text: fmt.Sprintf("%d more problems not kept", b.problems.dropped)})
	}
	return out
}

// ClearProblems forgets the problems seen so far, for a test that provoked
// some on purpose.
func (b *Browser) ClearProblems() {
	b.problems.mu.Lock()
	defer b.problems.mu.Unlock()
	b.problems.list, b.problems.dropped = nil, 0
}
