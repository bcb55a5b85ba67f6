package browser

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"html"
	"image/png"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/letsbe/sysadmin-agent/executors"
)

// testPassword is the secret of the test site's login form: spaces, @, / and
// a non-ASCII letter, so that URL-encoded forms of it show up too.
const testPassword = "S3cr3t p@ss/wörd"

// site is a small admin UI on loopback.
type site struct {
	*httptest.Server
	mu        sync.Mutex
	forms     []url.Values
	hostsSeen map[string]bool
	holdGate  chan struct{} // /hold answers once it is closed
	holding   chan struct{} // /hold was entered
	inHold    int
	maxInHold int
	holds     int
}

func newSite(t *testing.T) *site {
	t.Helper()
	s := &site{hostsSeen: map[string]bool{}, holdGate: make(chan struct{}), holding: make(chan struct{}, 16)}
	mux := http.NewServeMux()
	page := func(w http.ResponseWriter, title, body string) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		fmt.Fprintf(w, "<!doctype html><html><head><title>%s</title></head><body>%s</body></html>", html.EscapeString(title), body)
	}
	mux.HandleFunc("GET /favicon.ico", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusNoContent) })
	mux.HandleFunc("GET /login", func(w http.ResponseWriter, r *http.Request) {
		page(w, "Sign in", `<form method="post" action="/session">
			<input id="user" name="user"> <input id="password" name="password" type="password">
			<select id="lang" name="lang"><option value="en">English</option><option value="de">Deutsch</option></select>
			<button id="submit" type="submit">Sign in</button></form>`)
	})
	mux.HandleFunc("POST /session", func(w http.ResponseWriter, r *http.Request) {
		_ = r.ParseForm()
		s.mu.Lock()
		s.forms = append(s.forms, r.PostForm)
		s.mu.Unlock()
		if r.PostForm.Get("user") != "admin" || r.PostForm.Get("password") != testPassword {
			http.Redirect(w, r, "/login?failed=1", http.StatusSeeOther)
			return
		}
		http.SetCookie(w, &http.Cookie{Name: "session", Value: "ok", Path: "/"})
		http.Redirect(w, r, "/dashboard", http.StatusSeeOther)
	})
	mux.HandleFunc("GET /dashboard", func(w http.ResponseWriter, r *http.Request) {
		if c, err := r.Cookie("session"); err != nil || c.Value != "ok" {
			http.Redirect(w, r, "/login", http.StatusSeeOther)
			return
		}
		page(w, "Dashboard", `<h1 id="welcome">Welcome, admin</h1>
			<button id="show" onclick="document.getElementById('details').style.display='block'">Details</button>
			<div id="details" style="display:none">Mail   server
			ready</div>
			<div style="height: 3000px"></div>
			<script>console.error("dashboard: widget failed")</script>`)
	})
	// /reflect shows everything it gets, as a careless page would.
	mux.HandleFunc("GET /reflect", func(w http.ResponseWriter, r *http.Request) {
		pw := r.URL.Query().Get("password")
		page(w, "pw="+pw, `<p id="out">You typed: `+html.EscapeString(pw)+`</p>
			<script>console.error("password is", `+jsString(pw)+`); alert("hi");</script>`)
	})
	mux.HandleFunc("GET /reflect-form", func(w http.ResponseWriter, r *http.Request) {
		page(w, "Reflect", `<form method="get" action="/reflect"><input id="password" name="password">
			<button id="go">Go</button></form>`)
	})
	mux.HandleFunc("GET /hang", func(w http.ResponseWriter, r *http.Request) {
		s.signalHolding()
		<-r.Context().Done()
	})
	mux.HandleFunc("GET /hold", func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		s.holds++
		s.inHold++
		s.maxInHold = max(s.maxInHold, s.inHold)
		s.mu.Unlock()
		s.signalHolding()
		select {
		case <-s.holdGate:
		case <-r.Context().Done():
		}
		s.mu.Lock()
		s.inHold--
		s.mu.Unlock()
		page(w, "Held", `<h1>held</h1>`)
	})
	mux.HandleFunc("GET /mixed", func(w http.ResponseWriter, r *http.Request) {
		page(w, "Mixed", `<h1 id="t">mixed content</h1><img src="`+s.localhostURL("/pixel.png")+`">`)
	})
	mux.HandleFunc("GET /redirect-out", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, s.localhostURL("/login"), http.StatusFound)
	})
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		s.hostsSeen[strings.Split(r.Host, ":")[0]] = true
		s.mu.Unlock()
		mux.ServeHTTP(w, r)
	}))
	t.Cleanup(s.Close)
	return s
}

func jsString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

func (s *site) signalHolding() {
	select {
	case s.holding <- struct{}{}:
	default:
	}
}

// localhostURL is a URL of the same server under the name localhost, which
// the tests' allowlist (127.0.0.1) does not allow.
func (s *site) localhostURL(path string) string {
	return strings.Replace(s.URL, "127.0.0.1", "localhost", 1) + path
}

func (s *site) sawHost(host string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.hostsSeen[host]
}

// stepJSON renders one step as JSON.
func stepJSON(fields ...any) string {
	m := map[string]any{}
	for i := 0; i+1 < len(fields); i += 2 {
		m[fields[i].(string)] = fields[i+1]
	}
	b, _ := json.Marshal(m)
	return string(b)
}

// checkPNG fails unless b64 is a PNG image, and returns its width.
func checkPNG(t *testing.T, name, b64 string) int {
	t.Helper()
	raw, err := base64.StdEncoding.DecodeString(b64)
	if err != nil {
		t.Fatalf("screenshot %s: %v", name, err)
	}
	cfg, err := png.DecodeConfig(bytes.NewReader(raw))
	if err != nil {
		t.Fatalf("screenshot %s is not a PNG: %v", name, err)
	}
	return cfg.Width
}

func TestLoginFlow(t *testing.T) {
	t.Parallel()
	s := newSite(t)
	e, dir := newTestExecutor(t, Config{AllowedHosts: []string{"127.0.0.1"}})
	payload := flowJSON(
		stepJSON("action", "goto", "url", s.URL+"/login"),
		stepJSON("action", "fill", "selector", "#user", "value", "admin"),
		stepJSON("action", "fill", "selector", "#password", "value", testPassword, "secret", true),
		stepJSON("action", "select_option", "selector", "#lang", "value", "Deutsch"),
		stepJSON("action", "press", "selector", "#password", "key", "Enter"),
		stepJSON("action", "wait_for_url", "url", "**/dashboard"),
		stepJSON("action", "expect_text", "selector", "#welcome", "text", "Welcome, admin", "exact", true),
		stepJSON("action", "expect_url", "pattern", `/\/DASHBOARD$/i`),
		stepJSON("action", "click", "selector", "#show"),
		stepJSON("action", "wait_for", "selector", "#details"),
		stepJSON("action", "expect_text", "selector", "#details", "text", "server ready"),
		stepJSON("action", "wait_for", "selector", "#nothing", "state", "hidden"),
		stepJSON("action", "wait_for", "selector", "h1", "state", "attached"),
		stepJSON("action", "screenshot", "name", "dashboard", "full_page", true),
	)
	res, err := execute(t.Context(), t, e, dir, payload)
	if err != nil {
		t.Fatalf("flow failed: %v", err)
	}
	actions := []string{"goto", "fill", "fill", "select_option", "press", "wait_for_url", "expect_text",
		"expect_url", "click", "wait_for", "expect_text", "wait_for", "wait_for", "screenshot"}
	if len(res.Steps) != len(actions) {
		t.Fatalf("%d steps, want %d: %+v", len(res.Steps), len(actions), res.Steps)
	}
	for i, sr := range res.Steps {
		if sr.Index != i+1 || sr.Action != actions[i] || !sr.OK || sr.Error != "" || sr.DurationMS < 0 {
			t.Errorf("step %d = %+v", i+1, sr)
		}
	}
	if res.FinalURL != s.URL+"/dashboard" || res.Title != "Dashboard" {
		t.Errorf("final URL %q, title %q", res.FinalURL, res.Title)
	}
	if len(res.Screenshots) != 1 || res.Screenshots[0].Name != "dashboard" || res.Screenshots[0].Note != "" {
		t.Fatalf("screenshots = %+v", res.Screenshots)
	}
	if w := checkPNG(t, "dashboard", res.Screenshots[0].PNGBase64); w != windowWidth {
		t.Errorf("screenshot width %d, want %d", w, windowWidth)
	}
	if diff := cmp.Diff([]string{"dashboard: widget failed"}, res.ConsoleErrors); diff != "" {
		t.Errorf("console errors (-want +got):\n%s", diff)
	}
	if len(res.BlockedRequests) != 0 {
		t.Errorf("blocked requests: %v", res.BlockedRequests)
	}
	// The browser typed the values (the password only once, as a whole).
	s.mu.Lock()
	forms := s.forms
	s.mu.Unlock()
	if len(forms) != 1 || forms[0].Get("user") != "admin" || forms[0].Get("password") != testPassword || forms[0].Get("lang") != "de" {
		t.Errorf("forms posted: %v", forms)
	}
	b, _ := json.Marshal(res)
	if bytes.Contains(b, []byte(testPassword)) {
		t.Error("the result holds the secret")
	}
}

func TestFailingStep(t *testing.T) {
	t.Parallel()
	s := newSite(t)
	tests := []struct {
		name    string
		step    string
		wantErr string
		timeout bool
	}{
		{
			name:    "missing element",
			step:    stepJSON("action", "click", "selector", "#missing", "timeout_seconds", 1),
			wantErr: `step 2 (click "#missing"): timed out after 1s waiting for selector`,
			timeout: true,
		},
		{
			name:    "text differs",
			step:    stepJSON("action", "expect_text", "selector", "button", "text", "Log in", "timeout_seconds", 2),
			wantErr: `step 2 (expect_text "button"): timed out after 2s waiting for the text (last text "Sign in")`,
			timeout: true,
		},
		{
			name:    "invalid selector",
			step:    stepJSON("action", "fill", "selector", "#a[", "value", "x"),
			wantErr: `step 2 (fill "#a["): invalid selector: Failed to execute 'querySelector' on 'Document': '#a[' is not a valid selector.`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e, dir := newTestExecutor(t, Config{})
			res, err := execute(t.Context(), t, e, dir, flowJSON(stepJSON("action", "goto", "url", s.URL+"/login"), tt.step))
			if err == nil || err.Error() != tt.wantErr {
				t.Fatalf("error\n got %v\nwant %s", err, tt.wantErr)
			}
			var te *executors.TimeoutError
			if got := errors.As(err, &te); got != tt.timeout {
				t.Errorf("errors.As(err, *TimeoutError) = %v, want %v", got, tt.timeout)
			}
			if res == nil {
				t.Fatal("no result with the error")
			}
			if len(res.Steps) != 2 || !res.Steps[0].OK || res.Steps[1].OK || res.Steps[1].Index != 2 ||
				res.Steps[1].Error == "" || !strings.HasSuffix(tt.wantErr, "): "+res.Steps[1].Error) {
				t.Errorf("steps = %+v", res.Steps)
			}
			if len(res.Screenshots) != 1 || res.Screenshots[0].Name != "failure" {
				t.Fatalf("screenshots = %+v", res.Screenshots)
			}
			checkPNG(t, "failure", res.Screenshots[0].PNGBase64)
			if res.FinalURL != s.URL+"/login" || res.Title != "Sign in" {
				t.Errorf("final URL %q, title %q", res.FinalURL, res.Title)
			}
		})
	}
}

func TestTaskTimeoutAndCancel(t *testing.T) {
	t.Parallel()
	// The payload's timeout_seconds: it may pass while the browser starts
	// or on the page, but it is a timeout either way.
	t.Run("timeout_seconds", func(t *testing.T) {
		t.Parallel()
		s := newSite(t)
		e, dir := newTestExecutor(t, Config{})
		payload := `{"timeout_seconds": 1, "flow": {"steps": [` + stepJSON("action", "goto", "url", s.URL+"/hang") + `]}}`
		_, err := execute(t.Context(), t, e, dir, payload)
		var te *executors.TimeoutError
		if err == nil || !strings.HasSuffix(err.Error(), ": timed out after 1s") || !errors.As(err, &te) || te.After != time.Second {
			t.Fatalf("error = %v, want a 1s timeout", err)
		}
	})
	// The task's context ends while a step waits: as the controller's task
	// deadline does, and as the orchestrator's cancellation does.
	for _, tt := range []struct {
		name    string
		cause   error
		timeout bool
	}{
		{"task deadline", &executors.TimeoutError{After: time.Minute}, true},
		{"cancel", errors.New("task cancelled by the orchestrator"), false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s := newSite(t)
			e, dir := newTestExecutor(t, Config{})
			ctx, cancel := context.WithCancelCause(t.Context())
			defer cancel(nil)
			go func() {
				select {
				case <-s.holding:
					cancel(tt.cause)
				case <-ctx.Done():
				}
			}()
			res, err := execute(ctx, t, e, dir, flowJSON(stepJSON("action", "goto", "url", s.URL+"/hang")))
			want := fmt.Sprintf(`step 1 (goto %q): %s`, s.URL+"/hang", tt.cause)
			if err == nil || err.Error() != want || !errors.Is(err, tt.cause) {
				t.Fatalf("error\n got %v\nwant %s", err, want)
			}
			if res == nil || len(res.Steps) != 1 || res.Steps[0].OK || res.Steps[0].Error != tt.cause.Error() {
				t.Fatalf("result = %+v", res)
			}
			// A timed-out flow still shows the page; a cancelled one ends at once.
			if got := len(res.Screenshots) == 1; got != tt.timeout {
				t.Errorf("failure screenshot taken = %v, want %v", got, tt.timeout)
			}
		})
	}
}

func TestHostAllowlist(t *testing.T) {
	t.Parallel()
	s := newSite(t)
	t.Run("subresource", func(t *testing.T) {
		t.Parallel()
		e, dir := newTestExecutor(t, Config{AllowedHosts: []string{"127.0.0.1"}, MaxScreenshotBytes: 100})
		res, err := execute(t.Context(), t, e, dir, flowJSON(
			stepJSON("action", "goto", "url", s.URL+"/mixed"),
			stepJSON("action", "expect_text", "selector", "#t", "text", "mixed"),
			stepJSON("action", "screenshot", "name", "too-big"),
		))
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff([]string{s.localhostURL("/pixel.png")}, res.BlockedRequests); diff != "" {
			t.Errorf("blocked requests (-want +got):\n%s", diff)
		}
		if len(res.Screenshots) != 1 || res.Screenshots[0].PNGBase64 != "" ||
			!strings.HasPrefix(res.Screenshots[0].Note, "dropped: the PNG is ") {
			t.Errorf("screenshots = %+v", res.Screenshots)
		}
	})
	t.Run("redirect", func(t *testing.T) {
		t.Parallel()
		e, dir := newTestExecutor(t, Config{AllowedHosts: []string{"127.0.0.1"}})
		res, err := execute(t.Context(), t, e, dir, flowJSON(stepJSON("action", "goto", "url", s.URL+"/redirect-out")))
		want := fmt.Sprintf(`step 1 (goto %q): page load error net::ERR_BLOCKED_BY_CLIENT (blocked by the browser host allowlist)`, s.URL+"/redirect-out")
		if err == nil || err.Error() != want {
			t.Fatalf("error\n got %v\nwant %s", err, want)
		}
		if res == nil || !cmp.Equal(res.BlockedRequests, []string{s.localhostURL("/login")}) {
			t.Errorf("result = %+v", res)
		}
	})
	t.Run("goto", func(t *testing.T) {
		t.Parallel()
		e, dir := newTestExecutor(t, Config{AllowedHosts: []string{"127.0.0.1"}})
		res, err := execute(t.Context(), t, e, dir, flowJSON(
			stepJSON("action", "goto", "url", s.URL+"/login"),
			stepJSON("action", "goto", "url", s.localhostURL("/login")),
		))
		want := fmt.Sprintf(`step 2 (goto %q): host "localhost" is not in the browser host allowlist (AGENT_BROWSER_ALLOWED_HOSTS: 127.0.0.1)`, s.localhostURL("/login"))
		if err == nil || err.Error() != want || !errors.Is(err, executors.ErrRefused) {
			t.Fatalf("error\n got %v\nwant %s", err, want)
		}
		if res != nil {
			t.Errorf("a refused flow has a result: %+v", res)
		}
	})
	t.Cleanup(func() {
		if s.sawHost("localhost") {
			t.Error("a request to a blocked host reached the server")
		}
	})
}

// An admin UI with a self-signed certificate: refused with a clear error at
// the goto, accepted with the flow's ignore_https_errors.
func TestIgnoreHTTPSErrors(t *testing.T) {
	t.Parallel()
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		fmt.Fprint(w, `<!doctype html><html><head><title>Admin</title></head><body><h1 id="t">TLS admin</h1></body></html>`)
	}))
	srv.Config.ErrorLog = log.New(io.Discard, "", 0) // the refused handshakes
	srv.StartTLS()
	t.Cleanup(srv.Close)
	steps := `"steps": [` + stepJSON("action", "goto", "url", srv.URL+"/admin") + `,` +
		stepJSON("action", "expect_text", "selector", "#t", "text", "TLS admin") + `]`

	t.Run("refused", func(t *testing.T) {
		t.Parallel()
		e, dir := newTestExecutor(t, Config{AllowedHosts: []string{"127.0.0.1"}})
		res, err := execute(t.Context(), t, e, dir, `{"flow": {`+steps+`}}`)
		want := fmt.Sprintf(`step 1 (goto %q): page load error net::ERR_CERT_AUTHORITY_INVALID `+
			`(the server's TLS certificate is not trusted; set "ignore_https_errors": true in the flow to accept it)`, srv.URL+"/admin")
		if err == nil || err.Error() != want {
			t.Fatalf("error\n got %v\nwant %s", err, want)
		}
		var te *executors.TimeoutError
		if errors.As(err, &te) {
			t.Error("the certificate error is a timeout")
		}
		if res == nil || len(res.Steps) != 1 || res.Steps[0].OK || !strings.HasSuffix(want, "): "+res.Steps[0].Error) {
			t.Errorf("result = %+v", res)
		}
	})
	t.Run("accepted", func(t *testing.T) {
		t.Parallel()
		e, dir := newTestExecutor(t, Config{AllowedHosts: []string{"127.0.0.1"}})
		res, err := execute(t.Context(), t, e, dir, `{"flow": {"ignore_https_errors": true, `+steps+`}}`)
		if err != nil {
			t.Fatal(err)
		}
		if len(res.Steps) != 2 || !res.Steps[1].OK || res.FinalURL != srv.URL+"/admin" || res.Title != "Admin" {
			t.Errorf("result = %+v", res)
		}
	})
}

func TestSecretStaysOut(t *testing.T) {
	t.Parallel()
	s := newSite(t)
	e, dir := newTestExecutor(t, Config{})
	// The page puts the secret into its URL, title, text and console; the
	// flow then fails on a text check that shows the text.
	res, err := execute(t.Context(), t, e, dir, flowJSON(
		stepJSON("action", "goto", "url", s.URL+"/reflect-form"),
		stepJSON("action", "fill", "selector", "#password", "value", testPassword, "secret", true),
		stepJSON("action", "click", "selector", "#go"),
		stepJSON("action", "wait_for_url", "url", "**/reflect?**"),
		stepJSON("action", "expect_text", "selector", "#out", "text", "something else", "timeout_seconds", 2),
	))
	if err == nil || !strings.Contains(err.Error(), `step 5 (expect_text "#out"): timed out after 2s waiting for the text (last text "You typed: [REDACTED]")`) {
		t.Fatalf("error = %v", err)
	}
	b, _ := json.Marshal(res)
	for _, form := range []string{testPassword, url.QueryEscape(testPassword), url.PathEscape(testPassword), "p@ss", "p%40ss", "w%C3%B6rd", "wörd"} {
		if strings.Contains(string(b), form) || strings.Contains(err.Error(), form) {
			t.Errorf("%q appears in the result or the error:\n%s\n%v", form, b, err)
		}
	}
	if !strings.Contains(res.FinalURL, "password="+redacted) || res.Title != "pw="+redacted {
		t.Errorf("final URL %q, title %q", res.FinalURL, res.Title)
	}
	if !slicesContainsPrefix(res.ConsoleErrors, "password is "+redacted) {
		t.Errorf("console errors = %q", res.ConsoleErrors)
	}
}

func slicesContainsPrefix(list []string, prefix string) bool {
	for _, s := range list {
		if strings.HasPrefix(s, prefix) {
			return true
		}
	}
	return false
}

func TestConcurrencyLimit(t *testing.T) {
	t.Parallel()
	s := newSite(t)
	e, dir := newTestExecutor(t, Config{MaxConcurrent: 1})
	waiting := make(chan struct{}, 4)
	e.waiting = func() { waiting <- struct{}{} }
	payload := flowJSON(stepJSON("action", "goto", "url", s.URL+"/hold"))

	type outcome struct {
		res *Result
		err error
	}
	first, second := make(chan outcome, 1), make(chan outcome, 1)
	go func() {
		got, err := e.Execute(t.Context(), json.RawMessage(payload))
		res, _ := got.(*Result)
		first <- outcome{res, err}
	}()
	select {
	case <-s.holding: // the first flow's browser is on /hold
	case o := <-first:
		t.Fatalf("the first flow ended before its page answered: %+v, %v", o.res, o.err)
	}
	go func() {
		got, err := e.Execute(t.Context(), json.RawMessage(payload))
		res, _ := got.(*Result)
		second <- outcome{res, err}
	}()
	select {
	case <-waiting: // the second flow waits for the browser slot
	case o := <-second:
		t.Fatalf("the second flow did not wait: %+v, %v", o.res, o.err)
	}

	// A third one gives up when its context ends, without a browser.
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if _, err := e.Execute(ctx, json.RawMessage(payload)); err == nil ||
		!strings.HasPrefix(err.Error(), "waiting for a free browser (AGENT_MAX_BROWSER_TASKS is 1): ") {
		t.Errorf("cancelled while waiting: %v", err)
	}
	s.mu.Lock()
	holds := s.holds
	s.mu.Unlock()
	if holds != 1 {
		t.Errorf("%d flows reached the page while one browser was allowed", holds)
	}

	close(s.holdGate)
	for _, ch := range []chan outcome{first, second} {
		o := <-ch
		if o.err != nil || o.res == nil || len(o.res.Steps) != 1 || !o.res.Steps[0].OK {
			t.Errorf("flow: %+v, %v", o.res, o.err)
		}
	}
	assertNoBrowserLeft(t, dir)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.holds != 2 || s.maxInHold != 1 {
		t.Errorf("holds %d, at once %d; want 2 and 1", s.holds, s.maxInHold)
	}
}

func TestMissingBrowser(t *testing.T) {
	t.Parallel()
	e, err := New(Config{ChromiumPath: "/nonexistent/chromium"})
	if err != nil {
		t.Fatal(err)
	}
	_, err = e.Execute(t.Context(), json.RawMessage(flowJSON(stepJSON("action", "goto", "url", "http://127.0.0.1/"))))
	if !errors.Is(err, ErrNoBrowser) || !strings.Contains(err.Error(), `AGENT_CHROMIUM_PATH is "/nonexistent/chromium"`) {
		t.Errorf("error = %v", err)
	}
	// The payload is checked first: a bad one says so, browser or not.
	_, err = e.Execute(t.Context(), json.RawMessage(`{"flow": {}}`))
	if !executors.IsPermanent(err) {
		t.Errorf("bad payload: %v", err)
	}
}

func TestNewRejectsBadHosts(t *testing.T) {
	t.Parallel()
	if _, err := New(Config{AllowedHosts: []string{"http://example.com"}}); err == nil {
		t.Error("no error for a URL as an allowed host")
	}
}
