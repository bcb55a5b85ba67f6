package browser

import (
	"encoding/json"
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/letsbe/sysadmin-agent/executors"
)

func mustHosts(t testing.TB, entries ...string) hostList {
	t.Helper()
	h, err := newHostList(entries)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// flowJSON wraps steps (JSON objects) into a payload.
func flowJSON(steps ...string) string {
	return `{"flow": {"steps": [` + strings.Join(steps, ",") + `]}}`
}

func TestParseFlowAccepts(t *testing.T) {
	t.Parallel()
	type summary struct {
		Action, URL, Pattern, Selector, Value, State, Text, Name string
		Secret, Exact, FullPage                                  bool
		Timeout                                                  time.Duration
		Key                                                      rune
		Modifiers                                                int
	}
	sum := func(s step) summary {
		return summary{
			Action: s.action, URL: s.url, Pattern: s.pattern.src, Selector: s.selector, Value: s.value,
			State: s.state, Text: s.text, Name: s.name, Secret: s.secret, Exact: s.exact, FullPage: s.fullPage,
			Timeout: s.timeout, Key: s.key.key, Modifiers: len(s.key.modifiers),
		}
	}
	tests := []struct {
		name string
		step string
		want summary
	}{
		{"goto", `{"action": "goto", "url": "https://mail.example.com/admin"}`,
			summary{Action: "goto", URL: "https://mail.example.com/admin"}},
		{"click with timeout", `{"action": "click", "selector": "#submit", "timeout_seconds": 2.5}`,
			summary{Action: "click", Selector: "#submit", Timeout: 2500 * time.Millisecond}},
		{"fill secret", `{"action": "fill", "selector": "#pw", "value": "hunter2", "secret": true}`,
			summary{Action: "fill", Selector: "#pw", Value: "hunter2", Secret: true}},
		{"fill empty value", `{"action": "fill", "selector": "#q", "value": ""}`,
			summary{Action: "fill", Selector: "#q"}},
		{"press without selector", `{"action": "press", "key": "Enter"}`,
			summary{Action: "press", Key: '\r'}},
		{"press with modifiers", `{"action": "press", "selector": "#q", "key": "Control+Shift+a"}`,
			summary{Action: "press", Selector: "#q", Key: 'a', Modifiers: 2}},
		{"press plus", `{"action": "press", "key": "Shift++"}`,
			summary{Action: "press", Key: '+', Modifiers: 1}},
		{"press code name", `{"action": "press", "key": "ArrowDown"}`,
			summary{Action: "press", Key: '\u0301'}},
		{"select_option", `{"action": "select_option", "selector": "select", "value": "de"}`,
			summary{Action: "select_option", Selector: "select", Value: "de"}},
		{"wait_for default state", `{"action": "wait_for", "selector": ".ok"}`,
			summary{Action: "wait_for", Selector: ".ok", State: "visible"}},
		{"wait_for hidden", `{"action": "wait_for", "selector": ".spinner", "state": "hidden"}`,
			summary{Action: "wait_for", Selector: ".spinner", State: "hidden"}},
		{"wait_for_url url", `{"action": "wait_for_url", "url": "**/dashboard"}`,
			summary{Action: "wait_for_url", Pattern: "**/dashboard"}},
		{"wait_for_url pattern", `{"action": "wait_for_url", "pattern": "/dash(board)?$/i"}`,
			summary{Action: "wait_for_url", Pattern: "/dash(board)?$/i"}},
		{"expect_text exact", `{"action": "expect_text", "selector": "h1", "text": "Welcome", "exact": true}`,
			summary{Action: "expect_text", Selector: "h1", Text: "Welcome", Exact: true}},
		{"expect_url", `{"action": "expect_url", "pattern": "http://127.0.0.1:*/done"}`,
			summary{Action: "expect_url", Pattern: "http://127.0.0.1:*/done"}},
		{"screenshot", `{"action": "screenshot", "name": "after-login", "full_page": true}`,
			summary{Action: "screenshot", Name: "after-login", FullPage: true}},
		{"null optional fields", `{"action": "click", "selector": "a", "timeout_seconds": null}`,
			summary{Action: "click", Selector: "a"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f, err := parseFlow(json.RawMessage(flowJSON(tt.step)), hostList{})
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, sum(f.steps[0])); diff != "" {
				t.Errorf("step (-want +got):\n%s", diff)
			}
			if f.steps[0].index != 1 {
				t.Errorf("index = %d, want 1", f.steps[0].index)
			}
		})
	}
}

func TestParseFlowTimeoutAndSecrets(t *testing.T) {
	t.Parallel()
	payload := `{"timeout_seconds": 90, "flow": {"steps": [
		{"action": "fill", "selector": "#a", "value": "one", "secret": true},
		{"action": "fill", "selector": "#b", "value": "two"},
		{"action": "fill", "selector": "#c", "value": "one", "secret": true},
		{"action": "fill", "selector": "#d", "value": "", "secret": true}
	]}}`
	f, err := parseFlow(json.RawMessage(payload), hostList{})
	if err != nil {
		t.Fatal(err)
	}
	if f.timeout != 90*time.Second {
		t.Errorf("timeout = %v, want 90s", f.timeout)
	}
	if f.ignoreHTTPSErrors {
		t.Error("ignore_https_errors is on by default")
	}
	if diff := cmp.Diff([]string{"one"}, f.secrets); diff != "" {
		t.Errorf("secrets (-want +got):\n%s", diff)
	}
	if got := []int{f.steps[0].index, f.steps[3].index}; !cmp.Equal(got, []int{1, 4}) {
		t.Errorf("indexes = %v", got)
	}
}

func TestParseFlowIgnoreHTTPSErrors(t *testing.T) {
	t.Parallel()
	const steps = `"steps": [{"action": "goto", "url": "https://127.0.0.1:8443/"}]`
	tests := []struct {
		flow string
		want bool
	}{
		{`{` + steps + `}`, false},
		{`{"ignore_https_errors": null, ` + steps + `}`, false},
		{`{"ignore_https_errors": false, ` + steps + `}`, false},
		{`{"ignore_https_errors": true, ` + steps + `}`, true},
	}
	for _, tt := range tests {
		f, err := parseFlow(json.RawMessage(`{"flow": `+tt.flow+`}`), hostList{})
		if err != nil {
			t.Fatalf("%s: %v", tt.flow, err)
		}
		if f.ignoreHTTPSErrors != tt.want {
			t.Errorf("%s: ignoreHTTPSErrors = %v, want %v", tt.flow, f.ignoreHTTPSErrors, tt.want)
		}
	}
}

func TestParseFlowRejects(t *testing.T) {
	t.Parallel()
	hosts := mustHosts(t, "127.0.0.1", "*.example.com")
	tests := []struct {
		name    string
		payload string
		wantErr string
		refused bool
	}{
		{name: "not an object", payload: `[]`, wantErr: "invalid payload: must be a JSON object, got array"},
		{name: "no flow", payload: `{}`, wantErr: `invalid payload: field "flow" is required`},
		{name: "flow not an object", payload: `{"flow": []}`, wantErr: `invalid payload: field "flow": must be a JSON object, got array`},
		{name: "no steps", payload: `{"flow": {"steps": []}}`, wantErr: `invalid payload: field "flow.steps" needs at least one step`},
		{name: "steps not an array", payload: `{"flow": {"steps": {}}}`, wantErr: `invalid payload: field "flow": field "steps" must be an array, got object`},
		{name: "ignore_https_errors not bool", payload: `{"flow": {"ignore_https_errors": "yes", "steps": [{"action": "goto", "url": "https://127.0.0.1/"}]}}`,
			wantErr: `invalid payload: field "flow": field "ignore_https_errors" must be a boolean, got string`},
		{name: "negative timeout", payload: `{"timeout_seconds": -1, "flow": {"steps": [{"action": "goto", "url": "http://127.0.0.1/"}]}}`, wantErr: "invalid payload: timeout_seconds -1 is negative"},
		{name: "step not an object", payload: flowJSON(`"goto"`), wantErr: "invalid payload: step 1: must be an object"},
		{name: "no action", payload: flowJSON(`{"url": "x"}`), wantErr: `invalid payload: step 1: field "action" is required`},
		{name: "unknown action", payload: flowJSON(`{"action": "hover", "selector": "a"}`), wantErr: `invalid payload: step 1: unknown action "hover" (want one of click, expect_text, expect_url, fill, goto, press, screenshot, select_option, wait_for, wait_for_url)`},
		{name: "unknown field", payload: flowJSON(`{"action": "click", "selector": "a", "selecter": "b"}`), wantErr: `invalid payload: step 1 (click): unknown field "selecter"`},
		{name: "field of another action", payload: flowJSON(`{"action": "click", "selector": "a", "value": "b"}`), wantErr: `invalid payload: step 1 (click): unknown field "value"`},
		{name: "missing selector", payload: flowJSON(`{"action": "goto", "url": "http://127.0.0.1/"}`, `{"action": "click"}`), wantErr: `invalid payload: step 2 (click): field "selector" is required`},
		{name: "empty selector", payload: flowJSON(`{"action": "click", "selector": ""}`), wantErr: `invalid payload: step 1 (click): field "selector" must not be empty`},
		{name: "fill without value", payload: flowJSON(`{"action": "fill", "selector": "a"}`), wantErr: `invalid payload: step 1 (fill): field "value" is required`},
		{name: "secret not bool", payload: flowJSON(`{"action": "fill", "selector": "a", "value": "x", "secret": "yes"}`), wantErr: `invalid payload: step 1 (fill): field "secret" must be a boolean`},
		{name: "step timeout not number", payload: flowJSON(`{"action": "click", "selector": "a", "timeout_seconds": "5"}`), wantErr: `invalid payload: step 1 (click): field "timeout_seconds" must be a number`},
		{name: "step timeout negative", payload: flowJSON(`{"action": "click", "selector": "a", "timeout_seconds": -2}`), wantErr: `invalid payload: step 1 (click): timeout_seconds -2 is negative`},
		{name: "goto relative", payload: flowJSON(`{"action": "goto", "url": "/admin"}`), wantErr: `invalid payload: step 1 (goto "/admin"): want an absolute http or https URL`},
		{name: "goto file", payload: flowJSON(`{"action": "goto", "url": "file:///etc/shadow"}`), wantErr: `invalid payload: step 1 (goto "file:///etc/shadow"): want an absolute http or https URL`},
		{name: "goto javascript", payload: flowJSON(`{"action": "goto", "url": "javascript:alert(1)"}`), wantErr: `invalid payload: step 1 (goto "javascript:alert(1)"): want an absolute http or https URL`},
		{name: "goto host not allowed", payload: flowJSON(`{"action": "goto", "url": "http://127.0.0.1/"}`, `{"action": "goto", "url": "https://evil.test/x"}`),
			wantErr: `step 2 (goto "https://evil.test/x"): host "evil.test" is not in the browser host allowlist (AGENT_BROWSER_ALLOWED_HOSTS: *.example.com, 127.0.0.1)`, refused: true},
		{name: "goto apex of wildcard", payload: flowJSON(`{"action": "goto", "url": "https://example.com/"}`),
			wantErr: `step 1 (goto "https://example.com/"): host "example.com" is not in the browser host allowlist (AGENT_BROWSER_ALLOWED_HOSTS: *.example.com, 127.0.0.1)`, refused: true},
		{name: "bad state", payload: flowJSON(`{"action": "wait_for", "selector": "a", "state": "detached"}`), wantErr: `invalid payload: step 1 (wait_for): field "state" is "detached", want visible, hidden or attached`},
		{name: "url and pattern", payload: flowJSON(`{"action": "wait_for_url", "url": "a", "pattern": "b"}`), wantErr: `invalid payload: step 1 (wait_for_url): needs exactly one of the fields "url" and "pattern"`},
		{name: "neither url nor pattern", payload: flowJSON(`{"action": "expect_url"}`), wantErr: `invalid payload: step 1 (expect_url): needs exactly one of the fields "url" and "pattern"`},
		{name: "bad regexp", payload: flowJSON(`{"action": "expect_url", "pattern": "/a(/"}`), wantErr: "invalid payload: step 1 (expect_url): field \"pattern\": bad regular expression: error parsing regexp: missing closing ): `a(`"},
		{name: "unknown key", payload: flowJSON(`{"action": "press", "key": "Entr"}`), wantErr: `invalid payload: step 1 (press): unknown key "Entr" (want a key name such as Enter, Tab, Escape, ArrowDown, or one character)`},
		{name: "unknown modifier", payload: flowJSON(`{"action": "press", "key": "Hyper+a"}`), wantErr: `invalid payload: step 1 (press): key "Hyper+a": unknown modifier "Hyper" (want Alt, Control, ControlOrMeta, Meta or Shift)`},
		{name: "no screenshot name", payload: flowJSON(`{"action": "screenshot"}`), wantErr: `invalid payload: step 1 (screenshot): field "name" is required`},
		{name: "long screenshot name", payload: flowJSON(`{"action": "screenshot", "name": "` + strings.Repeat("n", 101) + `"}`), wantErr: `invalid payload: step 1 (screenshot): field "name" is longer than 100 bytes`},
		{name: "too many steps", payload: flowJSON(strings.Repeat(`{"action": "press", "key": "a"},`, maxSteps) + `{"action": "press", "key": "a"}`), wantErr: `invalid payload: field "flow.steps" has 501 steps, more than 500`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := parseFlow(json.RawMessage(tt.payload), hosts)
			if err == nil {
				t.Fatal("no error")
			}
			if err.Error() != tt.wantErr {
				t.Errorf("error\n got %s\nwant %s", err, tt.wantErr)
			}
			if !executors.IsPermanent(err) {
				t.Errorf("error is not permanent")
			}
			if got := errors.Is(err, executors.ErrRefused); got != tt.refused {
				t.Errorf("errors.Is(err, ErrRefused) = %v, want %v", got, tt.refused)
			}
		})
	}
}

// A fill value never appears in a decoding error, whatever is wrong around it.
func TestParseFlowErrorsKeepSecrets(t *testing.T) {
	t.Parallel()
	const secret = "Tr0ub4dor&3-secret"
	payloads := []string{
		flowJSON(`{"action": "fill", "selector": "#pw", "value": "` + secret + `", "secret": true, "bogus": 1}`),
		flowJSON(`{"action": "fill", "selector": "#pw", "value": "` + secret + `", "secret": "true"}`),
		flowJSON(`{"action": "fill", "value": "` + secret + `", "secret": true}`),
		flowJSON(`{"action": "fill", "selector": "#pw", "value": "`+secret+`", "secret": true}`, `{"action": "goto", "url": "ftp://x/"}`),
		flowJSON(`{"action": "fill", "selector": "#pw", "value": ["` + secret + `"], "secret": true}`),
		flowJSON(`{"action": "fill", "selector": "#pw", "value": "` + secret + `", "secret": true, "timeout_seconds": "` + secret + `"}`),
	}
	for _, p := range payloads {
		_, err := parseFlow(json.RawMessage(p), hostList{})
		if err == nil {
			t.Fatalf("%s: no error", p)
		}
		if strings.Contains(err.Error(), secret) {
			t.Errorf("error shows the secret: %v", err)
		}
	}
}

func TestURLPattern(t *testing.T) {
	t.Parallel()
	tests := []struct {
		pattern string
		url     string
		want    bool
	}{
		{"**/dashboard", "http://127.0.0.1:8080/dashboard", true},
		{"**/dashboard", "http://127.0.0.1:8080/dashboard?x=1", false},
		{"**/dashboard*", "http://127.0.0.1:8080/dashboard?x=1", true},
		{"http://127.0.0.1:*/login", "http://127.0.0.1:4242/login", true},
		{"http://127.0.0.1:*/login", "http://127.0.0.1:4242/a/login", false},
		{"http://127.0.0.1:*/**", "http://127.0.0.1:4242/a/b/c", true},
		{"https://mail.example.com/admin", "https://mail.example.com/admin", true},
		{"https://mail.example.com/admin", "https://mail.example.com/admin/", false},
		{"**/a.b", "http://x/aXb", false},
		{"**/a?b", "http://x/a?b", true},
		{"/dashboard$/", "http://x/dashboard", true},
		{"/DASHBOARD/i", "http://x/dashboard/more", true},
		{"/DASHBOARD/", "http://x/dashboard", false},
		{"/", "/", true},       // a glob, not an empty regexp
		{"/a/x", "/a/x", true}, // "x" is no flag: a glob
	}
	for _, tt := range tests {
		p, err := parseURLPattern(tt.pattern)
		if err != nil {
			t.Errorf("%s: %v", tt.pattern, err)
			continue
		}
		if got := p.match(tt.url); got != tt.want {
			t.Errorf("%q matches %q = %v, want %v", tt.pattern, tt.url, got, tt.want)
		}
	}
}

func TestHostList(t *testing.T) {
	t.Parallel()
	h := mustHosts(t, "127.0.0.1", "Admin.Example.COM.", "*.internal.test", "[::1]")
	tests := []struct {
		url  string
		want bool
	}{
		{"http://127.0.0.1:8080/x", true},
		{"http://localhost/", false},
		{"https://admin.example.com/", true},
		{"https://ADMIN.example.com./", true},
		{"https://other.example.com/", false},
		{"https://a.internal.test/", true},
		{"https://a.b.internal.test/", true},
		{"https://internal.test/", false},
		{"https://evilinternal.test/", false},
		{"http://[::1]:3000/", true},
		{"data:text/plain,hi", true},
		{"about:blank", true},
		{"blob:http://127.0.0.1/abc", true},
		{"file:///etc/passwd", false},
		{"ws://evil.test/", false},
		{"::::", false},
	}
	for _, tt := range tests {
		if got := h.allowsURL(tt.url); got != tt.want {
			t.Errorf("allowsURL(%q) = %v, want %v", tt.url, got, tt.want)
		}
	}
	if got, want := h.resolverRules(), "MAP * ~NOTFOUND, EXCLUDE *.internal.test, EXCLUDE 127.0.0.1, EXCLUDE [::1], EXCLUDE admin.example.com"; got != want {
		t.Errorf("resolverRules = %q, want %q", got, want)
	}
	if !(hostList{}).allowsURL("file:///x") || (hostList{}).resolverRules() != "" {
		t.Error("an empty list must allow everything and set no rules")
	}
	for _, bad := range []string{"", "host:8080", "http://x", "a/b", "*.127.0.0.1", "*", "a b"} {
		if _, err := newHostList([]string{bad}); err == nil {
			t.Errorf("newHostList(%q): no error", bad)
		}
	}
}

func TestRedactor(t *testing.T) {
	t.Parallel()
	r := newRedactor([]string{"p@ss word/1"})
	res := &Result{
		Steps:           []StepResult{{Error: `last text "hello p@ss word/1"`}},
		FinalURL:        "http://x/?pw=p%40ss+word%2F1&b=p%40ss%20word%2F1",
		Title:           "p@ss word/1",
		ConsoleErrors:   []string{"p%40ss%20word%2F1 p@ss%20word%2F1"},
		BlockedRequests: []string{"http://evil/p%40ss+word%2F1"},
	}
	r.apply(res)
	b, _ := json.Marshal(res)
	for _, leak := range []string{"p@ss", "p%40ss", "word"} {
		if strings.Contains(string(b), leak) {
			t.Errorf("result still holds %q: %s", leak, b)
		}
	}
	tilde := newRedactor([]string{"a~b c'd"})
	for _, spelled := range []string{"a%7Eb+c%27d", "a%7eb%20c%27d", "a~b+c'd", "a~b%20c'd", "a%7Eb%20c%27d", "a~b c'd"} {
		if got := tilde.String("u=" + spelled + "&x"); got != "u=[REDACTED]&x" {
			t.Errorf("%s: %q", spelled, got)
		}
	}
	if (redactor{}).String("x") != "x" {
		t.Error("an empty redactor changes text")
	}
}

// FuzzParseFlow checks that the decoder never panics, that everything it
// accepts is a valid flow, and that everything it refuses is a permanent
// error.
func FuzzParseFlow(f *testing.F) {
	seeds := []string{
		flowJSON(`{"action": "goto", "url": "http://127.0.0.1:8080/login"}`,
			`{"action": "fill", "selector": "#user", "value": "admin"}`,
			`{"action": "fill", "selector": "#pw", "value": "hunter2", "secret": true}`,
			`{"action": "press", "selector": "#pw", "key": "Control+Enter"}`,
			`{"action": "select_option", "selector": "#lang", "value": "de"}`,
			`{"action": "click", "selector": "#submit", "timeout_seconds": 5}`,
			`{"action": "wait_for", "selector": ".spinner", "state": "hidden"}`,
			`{"action": "wait_for_url", "url": "**/dashboard"}`,
			`{"action": "expect_text", "selector": "h1", "text": "Welcome", "exact": true}`,
			`{"action": "expect_url", "pattern": "/dash/i"}`,
			`{"action": "screenshot", "name": "done", "full_page": true}`),
		`{"timeout_seconds": 1e300, "flow": {"steps": [{"action": "goto", "url": "http://evil.test/"}]}}`,
		`{"flow": {"ignore_https_errors": true, "steps": [{"action": "goto", "url": "https://a.example.com:8443/"}]}}`,
		`{"flow": {"ignore_https_errors": "true", "steps": [{"action": "goto", "url": "https://127.0.0.1/"}]}}`,
		`{"flow": {"steps": [{"action": "press", "key": "+"}, {"action": "press", "key": "Shift+"}]}}`,
		`{"flow": {"steps": [null, 1, "x", []]}}`,
		`{"flow": null}`,
		`not json`,
	}
	for _, s := range seeds {
		f.Add(s)
	}
	hosts := mustHosts(f, "127.0.0.1", "*.example.com")
	f.Fuzz(func(t *testing.T, payload string) {
		fl, err := parseFlow(json.RawMessage(payload), hosts)
		if err != nil {
			if !executors.IsPermanent(err) {
				t.Fatalf("error is not permanent: %v", err)
			}
			return
		}
		if len(fl.steps) == 0 || len(fl.steps) > maxSteps || fl.timeout < 0 {
			t.Fatalf("accepted an invalid flow: %d steps, timeout %v", len(fl.steps), fl.timeout)
		}
		for i, s := range fl.steps {
			if s.index != i+1 || s.timeout < 0 {
				t.Fatalf("step %d: index %d, timeout %v", i, s.index, s.timeout)
			}
			if _, ok := fieldsOf[s.action]; !ok {
				t.Fatalf("step %d: unknown action %q accepted", i, s.action)
			}
			if s.action == actionGoto && !hosts.allowsURL(s.url) {
				t.Fatalf("step %d: goto %q to a host that is not allowed", i, s.url)
			}
			if s.action == actionFill && s.secret && s.value != "" && strings.Contains(s.describe(), s.value) && !strings.Contains(s.selector, s.value) {
				t.Fatalf("step %d: the description shows the secret", i)
			}
		}
	})
}

// The README's example flow is a valid flow.
func TestReadmeExample(t *testing.T) {
	t.Parallel()
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	var example string
	for _, block := range strings.Split(string(readme), "```json\n")[1:] {
		block = block[:strings.Index(block, "```")]
		if strings.Contains(block, `"PLAYWRIGHT"`) {
			example = block
		}
	}
	if example == "" {
		t.Fatal("no PLAYWRIGHT example in the README")
	}
	var task struct {
		Payload json.RawMessage `json:"payload"`
	}
	if err := json.Unmarshal([]byte(example), &task); err != nil {
		t.Fatalf("README example: %v", err)
	}
	f, err := parseFlow(task.Payload, mustHosts(t, "127.0.0.1"))
	if err != nil {
		t.Fatalf("README example: %v", err)
	}
	seen := map[string]bool{}
	for _, s := range f.steps {
		seen[s.action] = true
	}
	if len(seen) != len(fieldsOf) {
		t.Errorf("the README example uses %d of the %d actions", len(seen), len(fieldsOf))
	}
	if !f.steps[len(f.steps)-2].pattern.match("http://127.0.0.1:8080/admin/setup") {
		t.Error("the README's expect_url pattern does not match the setup page")
	}
}
