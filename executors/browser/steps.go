package browser

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/input"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"

	"github.com/letsbe/sysadmin-agent/executors"
)

// pollInterval is the pause between two checks of a waiting step.
const pollInterval = 50 * time.Millisecond

// maxFullPageHeight caps a full-page screenshot, in CSS pixels.
const maxFullPageHeight = 16384

// jsLib is the prelude of every page check: q finds the first element
// matching a CSS selector (an invalid selector is an error, not a miss),
// visible is Playwright's notion (a non-empty box, not visibility:hidden).
const jsLib = `
const q = (sel) => {
	try { return {el: document.querySelector(sel)}; }
	catch (e) { return {err: "invalid selector: " + e.message}; }
};
const visible = (el) => {
	if (!el || !el.isConnected) return false;
	const st = getComputedStyle(el);
	if (st.visibility === "hidden" || st.visibility === "collapse") return false;
	const r = el.getBoundingClientRect();
	return r.width > 0 && r.height > 0;
};
`

// probe is what a page check returns.
type probe struct {
	OK     bool    `json:"ok"`
	Err    string  `json:"err"`    // a failure that waiting cannot fix
	Detail string  `json:"detail"` // why it is not done yet
	Found  bool    `json:"found"`
	Text   string  `json:"text"`
	URL    string  `json:"url"`
	Ready  bool    `json:"ready"`
	X      float64 `json:"x"`
	Y      float64 `json:"y"`
}

// jsCall returns an expression that calls the function fn (JavaScript source
// using jsLib) with the JSON-encoded args.
func jsCall(fn string, args ...any) (string, error) {
	encoded := make([]string, len(args))
	for i, a := range args {
		b, err := json.Marshal(a)
		if err != nil {
			return "", err
		}
		encoded[i] = string(b)
	}
	return fmt.Sprintf("(() => {%s\nreturn (%s)(%s);\n})()", jsLib, fn, strings.Join(encoded, ", ")), nil
}

// check evaluates a page check once.
func check(ctx context.Context, fn string, args ...any) (probe, error) {
	expr, err := jsCall(fn, args...)
	if err != nil {
		return probe{}, err
	}
	return chromedp.Run(ctx, chromedp.Evaluate[probe](expr))
}

// poll runs the page check fn until done says so, an error that waiting
// cannot fix, or the end of ctx (a *stepTimeout: waitingFor plus the last
// detail). Evaluation errors (a navigation in progress) are retried.
func poll(ctx context.Context, waitingFor string, done func(probe) (bool, string, error), fn string, args ...any) (probe, error) {
	var last string
	for {
		p, err := check(ctx, fn, args...)
		if err == nil {
			if p.Err != "" {
				return p, errors.New(p.Err)
			}
			ok, detail, err := done(p)
			if err != nil || ok {
				return p, err
			}
			last = detail
		}
		select {
		case <-ctx.Done():
			if last != "" {
				waitingFor += " (" + last + ")"
			}
			return p, &stepTimeout{waitingFor: waitingFor}
		case <-time.After(pollInterval):
		}
	}
}

// okDone is the done func of checks that decide in the page.
func okDone(p probe) (bool, string, error) { return p.OK, p.Detail, nil }

const jsState = `(sel, state) => {
	const r = q(sel);
	if (r.err) return {err: r.err};
	if (state === "attached") return {ok: !!r.el};
	if (state === "visible") return {ok: visible(r.el), detail: r.el ? "the element is not visible" : ""};
	return {ok: !visible(r.el)};
}`

// jsClickPoint scrolls the element into view and returns the point to click,
// once no other element covers it.
const jsClickPoint = `(sel) => {
	const r = q(sel);
	if (r.err) return {err: r.err};
	const el = r.el;
	if (!visible(el)) return {ok: false, detail: el ? "the element is not visible" : ""};
	el.scrollIntoView({block: "center", inline: "center", behavior: "instant"});
	const b = el.getBoundingClientRect();
	const x = b.left + b.width / 2, y = b.top + b.height / 2;
	const hit = document.elementFromPoint(x, y);
	if (hit && hit !== el && !el.contains(hit)) {
		return {ok: false, detail: "another element would receive the click: <" + hit.tagName.toLowerCase() + ">"};
	}
	return {ok: true, x: x, y: y};
}`

// jsFocusForFill focuses an editable element and selects its content, so that
// the text inserted next replaces it.
const jsFocusForFill = `(sel) => {
	const r = q(sel);
	if (r.err) return {err: r.err};
	const el = r.el;
	if (!visible(el)) return {ok: false, detail: el ? "the element is not visible" : ""};
	const tag = el.tagName;
	if (tag === "INPUT") {
		const bad = ["checkbox", "radio", "file", "button", "submit", "reset", "image", "range", "color", "hidden"];
		if (bad.includes(el.type)) return {err: "cannot fill an <input type=" + el.type + ">"};
	} else if (tag !== "TEXTAREA" && !el.isContentEditable) {
		return {err: "the element is not an <input>, <textarea> or [contenteditable] element"};
	}
	if (el.disabled || el.readOnly) return {ok: false, detail: "the element is not editable"};
	el.focus();
	if (tag === "INPUT" || tag === "TEXTAREA") {
		el.select();
	} else {
		const range = document.createRange();
		range.selectNodeContents(el);
		const s = window.getSelection();
		s.removeAllRanges();
		s.addRange(range);
	}
	return {ok: true};
}`

const jsFocus = `(sel) => {
	const r = q(sel);
	if (r.err) return {err: r.err};
	if (!visible(r.el)) return {ok: false, detail: r.el ? "the element is not visible" : ""};
	r.el.focus();
	return {ok: true};
}`

const jsSelectOption = `(sel, v) => {
	const r = q(sel);
	if (r.err) return {err: r.err};
	const el = r.el;
	if (!visible(el)) return {ok: false, detail: el ? "the element is not visible" : ""};
	if (el.tagName !== "SELECT") return {err: "the element is not a <select>"};
	if (el.disabled) return {ok: false, detail: "the element is disabled"};
	const opts = Array.from(el.options);
	const o = opts.find((o) => o.value === v) || opts.find((o) => o.label === v || o.text.trim() === v);
	if (!o) return {ok: false, detail: "no option has this value or label"};
	o.selected = true;
	el.dispatchEvent(new Event("input", {bubbles: true}));
	el.dispatchEvent(new Event("change", {bubbles: true}));
	return {ok: true};
}`

const jsText = `(sel) => {
	const r = q(sel);
	if (r.err) return {err: r.err};
	if (!r.el) return {found: false};
	return {found: true, text: (r.el.textContent || "").replace(/\s+/g, " ").trim().slice(0, 100000)};
}`

const jsLocation = `() => ({url: location.href, ready: document.readyState === "complete"})`

// runStep runs one step with its own timeout inside the task's ctx.
func (s *session) runStep(ctx context.Context, st *step, timeout time.Duration, shots *screenshots, red redactor) error {
	if err := context.Cause(ctx); err != nil {
		return err
	}
	sctx, cancel := context.WithTimeout(s.ctx, timeout)
	defer cancel()
	stop := context.AfterFunc(ctx, cancel)
	defer stop()
	err := s.do(sctx, st, shots, red)
	if err != nil && sctx.Err() != nil {
		var te *stepTimeout
		if !errors.As(err, &te) {
			err = &stepTimeout{waitingFor: waitingFor(st)}
		}
	}
	return err
}

// waitingFor says what a step that timed out was waiting for.
func waitingFor(st *step) string {
	switch st.action {
	case actionGoto:
		return "waiting for the page to load"
	case actionWaitFor:
		return "waiting for selector to be " + st.state
	case actionWaitForURL, actionExpectURL:
		return "waiting for the URL"
	case actionExpectText:
		return "waiting for the text"
	case actionScreenshot:
		return "taking the screenshot"
	case actionPress:
		if st.selector == "" {
			return "pressing the key"
		}
	}
	return "waiting for selector"
}

func (s *session) do(ctx context.Context, st *step, shots *screenshots, red redactor) error {
	switch st.action {
	case actionGoto:
		_, err := chromedp.Run(ctx, chromedp.Navigate(st.url))
		var le *chromedp.LoadError
		// Chromium aborts a load when the host's network interfaces change (Docker adding a
		// bridge for a Compose deploy on the same host, say); the goto is a GET, so it is
		// loaded again, as a reload would, twice at most.
		for try := 0; try < 2 && errors.As(err, &le) && le.ErrorText == "net::ERR_NETWORK_CHANGED" && ctx.Err() == nil; try++ {
			_, err = chromedp.Run(ctx, chromedp.Navigate(st.url))
		}
		switch {
		case errors.As(err, &le) && strings.Contains(le.ErrorText, "ERR_BLOCKED_BY_CLIENT"):
			return fmt.Errorf("%w (blocked by the browser host allowlist)", err)
		case errors.As(err, &le) && strings.HasPrefix(le.ErrorText, "net::ERR_CERT_"):
			return fmt.Errorf("%w (the server's TLS certificate is not trusted; set \"ignore_https_errors\": true in the flow to accept it)", err)
		}
		return err

	case actionClick:
		p, err := poll(ctx, "waiting for selector", okDone, jsClickPoint, st.selector)
		if err != nil {
			return err
		}
		_, err = chromedp.Run(ctx, chromedp.MouseClickXY(p.X, p.Y))
		return err

	case actionFill:
		if _, err := poll(ctx, "waiting for selector", okDone, jsFocusForFill, st.selector); err != nil {
			return err
		}
		if st.value == "" {
			_, err := chromedp.Run(ctx, chromedp.KeyEvent(kb.Delete))
			return err
		}
		_, err := chromedp.Run(ctx, func(ctx context.Context, t *chromedp.Target) (struct{}, error) {
			_, err := cdp.Call(ctx, t, input.InsertText, input.InsertTextParams{Text: st.value})
			return struct{}{}, err
		})
		if err != nil {
			// Never the value: only that the typing failed.
			return errors.New("typing the value failed")
		}
		return nil

	case actionPress:
		if st.selector != "" {
			if _, err := poll(ctx, "waiting for selector", okDone, jsFocus, st.selector); err != nil {
				return err
			}
		}
		_, err := chromedp.Run(ctx, chromedp.KeyEvent(string(st.key.key), chromedp.KeyModifiers(st.key.modifiers...)))
		return err

	case actionSelectOption:
		_, err := poll(ctx, "waiting for selector", okDone, jsSelectOption, st.selector, st.value)
		return err

	case actionWaitFor:
		_, err := poll(ctx, waitingFor(st), okDone, jsState, st.selector, st.state)
		return err

	case actionWaitForURL, actionExpectURL:
		needLoad := st.action == actionWaitForURL
		_, err := poll(ctx, "waiting for the URL", func(p probe) (bool, string, error) {
			if st.pattern.match(p.URL) && (p.Ready || !needLoad) {
				return true, "", nil
			}
			return false, "last URL " + quoteShort(red.String(p.URL)), nil
		}, jsLocation)
		return err

	case actionExpectText:
		_, err := poll(ctx, "waiting for the text", func(p probe) (bool, string, error) {
			if !p.Found {
				return false, "no element matches the selector", nil
			}
			want := strings.Join(strings.Fields(st.text), " ")
			if (st.exact && p.Text == want) || (!st.exact && strings.Contains(p.Text, want)) {
				return true, "", nil
			}
			return false, "last text " + quoteShort(executors.Shorten(red.String(p.Text), maxTextInError)), nil
		}, jsText, st.selector)
		return err

	case actionScreenshot:
		png, err := s.capture(ctx, st.fullPage)
		if err != nil {
			return err
		}
		shots.add(st.name, png)
		return nil
	}
	return fmt.Errorf("unknown action %q", st.action)
}

// capture takes a PNG of the viewport, or of the whole page.
func (s *session) capture(ctx context.Context, fullPage bool) ([]byte, error) {
	return chromedp.Run(ctx, func(ctx context.Context, t *chromedp.Target) ([]byte, error) {
		params := page.CaptureScreenshotParams{Format: page.CaptureScreenshotFormatPng, FromSurface: ptr(true)}
		if fullPage {
			m, err := cdp.Call(ctx, t, page.GetLayoutMetrics, cdp.Empty{})
			if err != nil {
				return nil, err
			}
			if cs := m.CSSContentSize; cs != nil && cs.Width > 0 && cs.Height > 0 {
				params.CaptureBeyondViewport = ptr(true)
				params.Clip = &page.Viewport{
					Width: math.Ceil(cs.Width), Height: math.Ceil(min(cs.Height, maxFullPageHeight)), Scale: 1,
				}
			}
		}
		r, err := cdp.Call(ctx, t, page.CaptureScreenshot, params)
		if err != nil {
			return nil, err
		}
		return r.Data, nil
	})
}

// screenshot takes a viewport screenshot for the result, outside any step.
func (s *session) screenshot(fullPage bool) ([]byte, error) {
	ctx, cancel := context.WithTimeout(s.ctx, infoTimeout)
	defer cancel()
	return s.capture(ctx, fullPage)
}

// location returns the page's URL and title at the end of the flow, or
// nothing when the page does not answer.
func (s *session) location() (string, string) {
	ctx, cancel := context.WithTimeout(s.ctx, infoTimeout)
	defer cancel()
	type loc struct {
		URL   string `json:"url"`
		Title string `json:"title"`
	}
	l, err := chromedp.Run(ctx, chromedp.Evaluate[loc](`({url: location.href, title: document.title})`))
	if err != nil {
		return "", ""
	}
	return l.URL, l.Title
}

// screenshots adds screenshots to a result within the caps.
type screenshots struct {
	max, maxTotal, total int
	res                  *Result
}

func (c *screenshots) add(name string, png []byte) {
	shot := Screenshot{Name: name}
	switch {
	case len(png) > c.max:
		shot.Note = fmt.Sprintf("dropped: the PNG is %s, over the cap of %s per screenshot", mib(len(png)), mib(c.max))
	case c.total+len(png) > c.maxTotal:
		shot.Note = fmt.Sprintf("dropped: the screenshots of this flow would pass %s together", mib(c.maxTotal))
	default:
		c.total += len(png)
		shot.PNGBase64 = base64.StdEncoding.EncodeToString(png)
	}
	c.res.Screenshots = append(c.res.Screenshots, shot)
}

func mib(n int) string { return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20)) }

func ptr[T any](v T) *T { return &v }
