package browser

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"

	"github.com/letsbe/sysadmin-agent/executors"
)

// Step actions.
const (
	actionGoto         = "goto"
	actionClick        = "click"
	actionFill         = "fill"
	actionPress        = "press"
	actionSelectOption = "select_option"
	actionWaitFor      = "wait_for"
	actionWaitForURL   = "wait_for_url"
	actionExpectText   = "expect_text"
	actionExpectURL    = "expect_url"
	actionScreenshot   = "screenshot"
)

// wait_for states.
const (
	stateVisible  = "visible"
	stateHidden   = "hidden"
	stateAttached = "attached"
)

// Limits of a flow.
const (
	maxSteps   = 500
	maxNameLen = 100
)

// fieldsOf lists the fields each action takes besides "action" and
// "timeout_seconds"; the first ones listed are required.
var fieldsOf = map[string]struct {
	required, optional []string
}{
	actionGoto:         {required: []string{"url"}},
	actionClick:        {required: []string{"selector"}},
	actionFill:         {required: []string{"selector", "value"}, optional: []string{"secret"}},
	actionPress:        {required: []string{"key"}, optional: []string{"selector"}},
	actionSelectOption: {required: []string{"selector", "value"}},
	actionWaitFor:      {required: []string{"selector"}, optional: []string{"state"}},
	actionWaitForURL:   {optional: []string{"url", "pattern"}}, // exactly one of them
	actionExpectText:   {required: []string{"selector", "text"}, optional: []string{"exact"}},
	actionExpectURL:    {optional: []string{"pattern", "url"}}, // exactly one of them
	actionScreenshot:   {required: []string{"name"}, optional: []string{"full_page"}},
}

// actionNames is the sorted list of actions, for error messages.
var actionNames = func() []string {
	names := make([]string, 0, len(fieldsOf))
	for name := range fieldsOf {
		names = append(names, name)
	}
	slices.Sort(names)
	return names
}()

// flow is a decoded and validated PLAYWRIGHT payload.
type flow struct {
	steps   []step
	timeout time.Duration // 0: none of its own
	secrets []string      // the values of secret fill steps, to keep out of results
	// ignoreHTTPSErrors makes the flow's browser accept any TLS certificate
	// (Playwright's ignoreHTTPSErrors, set on its browser context).
	ignoreHTTPSErrors bool
}

// step is one validated step of a flow.
type step struct {
	index    int // from 1
	action   string
	url      string     // goto
	pattern  urlPattern // wait_for_url, expect_url
	selector string     // click, fill, press (optional), select_option, wait_for, expect_text
	value    string     // fill, select_option
	secret   bool       // fill
	key      pressKey   // press
	state    string     // wait_for
	text     string     // expect_text
	exact    bool       // expect_text
	name     string     // screenshot
	fullPage bool       // screenshot
	timeout  time.Duration
}

// describe names the step for errors, e.g. `click "#submit"`. It never
// includes a fill value.
func (s *step) describe() string {
	var arg string
	switch s.action {
	case actionGoto:
		arg = s.url
	case actionWaitForURL, actionExpectURL:
		arg = s.pattern.src
	case actionScreenshot:
		arg = s.name
	case actionPress:
		if s.selector == "" {
			arg = s.key.src
		} else {
			arg = s.selector
		}
	default:
		arg = s.selector
	}
	return fmt.Sprintf("%s %s", s.action, quoteShort(arg))
}

// quoteShort quotes s for a message, shortened when long.
func quoteShort(s string) string {
	return fmt.Sprintf("%q", executors.Shorten(s, 80))
}

// flowPayload is the PLAYWRIGHT task payload.
type flowPayload struct {
	Flow           json.RawMessage `json:"flow"`
	TimeoutSeconds float64         `json:"timeout_seconds"`
}

// flowSpec is the "flow" object: the steps and the options of the browser
// they run in (Playwright's browser context).
type flowSpec struct {
	Steps             []json.RawMessage `json:"steps"`
	IgnoreHTTPSErrors bool              `json:"ignore_https_errors"`
}

// parseFlow decodes and validates a PLAYWRIGHT payload. A goto to a host that
// hosts does not allow is refused before anything runs. Every error it
// returns is permanent and free of fill values.
func parseFlow(payload json.RawMessage, hosts hostList) (*flow, error) {
	var p flowPayload
	if err := executors.DecodePayload(payload, &p); err != nil {
		return nil, err
	}
	timeout, err := executors.TimeoutSeconds("timeout_seconds", p.TimeoutSeconds)
	if err != nil {
		return nil, err
	}
	if isNull(p.Flow) {
		return nil, executors.InvalidPayloadf("field \"flow\" is required")
	}
	var spec flowSpec
	if err := executors.DecodePayload(p.Flow, &spec); err != nil {
		return nil, executors.InvalidPayloadf("field \"flow\": %w", unprefix(err))
	}
	switch {
	case len(spec.Steps) == 0:
		return nil, executors.InvalidPayloadf("field \"flow.steps\" needs at least one step")
	case len(spec.Steps) > maxSteps:
		return nil, executors.InvalidPayloadf("field \"flow.steps\" has %d steps, more than %d", len(spec.Steps), maxSteps)
	}
	f := &flow{timeout: timeout, steps: make([]step, 0, len(spec.Steps)), ignoreHTTPSErrors: spec.IgnoreHTTPSErrors}
	for i, raw := range spec.Steps {
		s, err := parseStep(i+1, raw, hosts)
		if err != nil {
			return nil, err
		}
		if s.secret && s.value != "" && !slices.Contains(f.secrets, s.value) {
			f.secrets = append(f.secrets, s.value)
		}
		f.steps = append(f.steps, s)
	}
	return f, nil
}

// unprefix drops the "invalid payload: " prefix of a nested DecodePayload error.
func unprefix(err error) error {
	msg := strings.TrimPrefix(err.Error(), executors.ErrInvalidPayload.Error()+": ")
	return fmt.Errorf("%s", msg)
}

func isNull(raw json.RawMessage) bool {
	trimmed := bytes.TrimSpace(raw)
	return len(trimmed) == 0 || string(trimmed) == "null"
}

// stepFields is the raw object of one step. Its own decoding keeps every
// value, secret or not, out of the error messages.
type stepFields struct {
	index  int
	action string
	raw    map[string]json.RawMessage
}

func (sf *stepFields) errorf(format string, args ...any) error {
	prefix := fmt.Sprintf("step %d", sf.index)
	if sf.action != "" {
		prefix += " (" + sf.action + ")"
	}
	return executors.InvalidPayloadf("%s: %s", prefix, fmt.Sprintf(format, args...))
}

func (sf *stepFields) has(name string) bool {
	raw, ok := sf.raw[name]
	return ok && !isNull(raw)
}

// str returns a string field; required fields must be present (an empty
// string is allowed only where allowEmpty).
func (sf *stepFields) str(name string, required, allowEmpty bool) (string, error) {
	if !sf.has(name) {
		if required {
			return "", sf.errorf("field %q is required", name)
		}
		return "", nil
	}
	var v string
	if err := json.Unmarshal(sf.raw[name], &v); err != nil {
		return "", sf.errorf("field %q must be a string", name)
	}
	if v == "" && !allowEmpty {
		return "", sf.errorf("field %q must not be empty", name)
	}
	return v, nil
}

func (sf *stepFields) boolean(name string) (bool, error) {
	if !sf.has(name) {
		return false, nil
	}
	var v bool
	if err := json.Unmarshal(sf.raw[name], &v); err != nil {
		return false, sf.errorf("field %q must be a boolean", name)
	}
	return v, nil
}

func (sf *stepFields) number(name string) (float64, error) {
	if !sf.has(name) {
		return 0, nil
	}
	var v float64
	if err := json.Unmarshal(sf.raw[name], &v); err != nil {
		return 0, sf.errorf("field %q must be a number", name)
	}
	return v, nil
}

// parseStep decodes and validates step number index (from 1).
func parseStep(index int, raw json.RawMessage, hosts hostList) (step, error) {
	sf := &stepFields{index: index}
	if trimmed := bytes.TrimSpace(raw); len(trimmed) == 0 || trimmed[0] != '{' {
		return step{}, sf.errorf("must be an object")
	}
	if err := json.Unmarshal(raw, &sf.raw); err != nil {
		return step{}, sf.errorf("must be an object")
	}
	action, err := sf.str("action", true, false)
	if err != nil {
		return step{}, err
	}
	fields, ok := fieldsOf[action]
	if !ok {
		return step{}, sf.errorf("unknown action %s (want one of %s)", quoteShort(action), strings.Join(actionNames, ", "))
	}
	sf.action = action
	names := make([]string, 0, len(sf.raw))
	for name := range sf.raw {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		if name != "action" && name != "timeout_seconds" &&
			!slices.Contains(fields.required, name) && !slices.Contains(fields.optional, name) {
			return step{}, sf.errorf("unknown field %s", quoteShort(name))
		}
	}

	s := step{index: index, action: action}
	secs, err := sf.number("timeout_seconds")
	if err != nil {
		return step{}, err
	}
	if s.timeout, err = executors.TimeoutSeconds("timeout_seconds", secs); err != nil {
		return step{}, sf.errorf("%s", unprefix(err))
	}
	if slices.Contains(fields.required, "selector") || slices.Contains(fields.optional, "selector") {
		if s.selector, err = sf.str("selector", slices.Contains(fields.required, "selector"), false); err != nil {
			return step{}, err
		}
	}

	switch action {
	case actionGoto:
		if s.url, err = sf.str("url", true, false); err != nil {
			return step{}, err
		}
		if err := checkGotoURL(&s, hosts); err != nil {
			return step{}, err
		}
	case actionFill:
		if s.value, err = sf.str("value", true, true); err != nil {
			return step{}, err
		}
		if s.secret, err = sf.boolean("secret"); err != nil {
			return step{}, err
		}
	case actionPress:
		src, err := sf.str("key", true, false)
		if err != nil {
			return step{}, err
		}
		if s.key, err = parseKey(src); err != nil {
			return step{}, sf.errorf("%v", err)
		}
	case actionSelectOption:
		if s.value, err = sf.str("value", true, true); err != nil {
			return step{}, err
		}
	case actionWaitFor:
		if s.state, err = sf.str("state", false, false); err != nil {
			return step{}, err
		}
		switch s.state {
		case "":
			s.state = stateVisible
		case stateVisible, stateHidden, stateAttached:
		default:
			return step{}, sf.errorf("field \"state\" is %s, want visible, hidden or attached", quoteShort(s.state))
		}
	case actionWaitForURL, actionExpectURL:
		if sf.has("url") == sf.has("pattern") {
			return step{}, sf.errorf("needs exactly one of the fields \"url\" and \"pattern\"")
		}
		name := "pattern"
		if sf.has("url") {
			name = "url"
		}
		src, err := sf.str(name, true, false)
		if err != nil {
			return step{}, err
		}
		if s.pattern, err = parseURLPattern(src); err != nil {
			return step{}, sf.errorf("field %q: %v", name, err)
		}
	case actionExpectText:
		if s.text, err = sf.str("text", true, true); err != nil {
			return step{}, err
		}
		if s.exact, err = sf.boolean("exact"); err != nil {
			return step{}, err
		}
	case actionScreenshot:
		if s.name, err = sf.str("name", true, false); err != nil {
			return step{}, err
		}
		if len(s.name) > maxNameLen {
			return step{}, sf.errorf("field \"name\" is longer than %d bytes", maxNameLen)
		}
		if s.fullPage, err = sf.boolean("full_page"); err != nil {
			return step{}, err
		}
	}
	return s, nil
}

// checkGotoURL accepts only absolute http and https URLs to allowed hosts.
func checkGotoURL(s *step, hosts hostList) error {
	u, err := url.Parse(s.url)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Hostname() == "" {
		return executors.InvalidPayloadf("step %d (%s): want an absolute http or https URL", s.index, s.describe())
	}
	if !hosts.allows(u.Hostname()) {
		return executors.Refusedf("step %d (%s): %s", s.index, s.describe(), hosts.refusal(u.Hostname()))
	}
	return nil
}

// urlPattern matches page URLs the way Playwright does: a glob where *
// matches any characters but "/" and ** any characters at all (a glob without
// wildcards is the exact URL), or a regular expression written /.../ with
// optional flags i, m, s, which matches anywhere in the URL.
type urlPattern struct {
	src string
	re  *regexp.Regexp
}

func parseURLPattern(src string) (urlPattern, error) {
	if len(src) >= 2 && src[0] == '/' {
		if end := strings.LastIndexByte(src, '/'); end > 0 {
			body, flags := src[1:end], src[end+1:]
			if strings.Trim(flags, "ims") == "" {
				if body == "" {
					return urlPattern{}, fmt.Errorf("empty regular expression")
				}
				expr := body
				if flags != "" {
					expr = "(?" + flags + ")" + body
				}
				re, err := regexp.Compile(expr)
				if err != nil {
					return urlPattern{}, fmt.Errorf("bad regular expression: %w", err)
				}
				return urlPattern{src: src, re: re}, nil
			}
		}
	}
	var b strings.Builder
	b.WriteString("^")
	for i := 0; i < len(src); i++ {
		if src[i] != '*' {
			start := i
			for i < len(src) && src[i] != '*' {
				i++
			}
			b.WriteString(regexp.QuoteMeta(src[start:i]))
			i--
			continue
		}
		if i+1 < len(src) && src[i+1] == '*' {
			b.WriteString(".*")
			for i+1 < len(src) && src[i+1] == '*' {
				i++
			}
		} else {
			b.WriteString("[^/]*")
		}
	}
	b.WriteString("$")
	return urlPattern{src: src, re: regexp.MustCompile(b.String())}, nil
}

func (p urlPattern) match(u string) bool { return p.re != nil && p.re.MatchString(u) }

// pressKey is a parsed key such as "Enter", "a" or "Control+Shift+A".
type pressKey struct {
	src       string
	key       rune
	modifiers []chromedp.Modifier
}

// keyNames maps key names (kb's Key and Code values, such as "Enter",
// "ArrowDown", "KeyA", "Digit1") to the rune chromedp types for them.
var keyNames = func() map[string]rune {
	names := map[string]rune{}
	runes := make([]rune, 0, len(kb.Keys))
	for r := range kb.Keys {
		runes = append(runes, r)
	}
	slices.Sort(runes)
	// Key values first (they name the character produced), then codes.
	for _, r := range runes {
		if k := kb.Keys[r]; utf8.RuneCountInString(k.Key) > 1 {
			if _, dup := names[k.Key]; !dup {
				names[k.Key] = r
			}
		}
	}
	for _, r := range runes {
		if k := kb.Keys[r]; utf8.RuneCountInString(k.Code) > 1 {
			if _, dup := names[k.Code]; !dup {
				names[k.Code] = r
			}
		}
	}
	return names
}()

var modifierNames = map[string]chromedp.Modifier{
	"Alt": chromedp.ModifierAlt, "Control": chromedp.ModifierCtrl, "Meta": chromedp.ModifierMeta,
	"Shift": chromedp.ModifierShift, "ControlOrMeta": chromedp.ModifierCtrl,
}

// parseKey parses a Playwright key description: a key name or a single
// character, optionally after modifiers joined with "+".
func parseKey(src string) (pressKey, error) {
	parts := strings.Split(src, "+")
	// "+" itself, and "Shift++", name the plus key.
	if n := len(parts); n >= 2 && parts[n-1] == "" && parts[n-2] == "" {
		parts = append(parts[:n-2], "+")
	}
	k := pressKey{src: src}
	for _, mod := range parts[:len(parts)-1] {
		m, ok := modifierNames[mod]
		if !ok {
			return pressKey{}, fmt.Errorf("key %s: unknown modifier %s (want Alt, Control, ControlOrMeta, Meta or Shift)", quoteShort(src), quoteShort(mod))
		}
		k.modifiers = append(k.modifiers, m)
	}
	name := parts[len(parts)-1]
	switch r, size := utf8.DecodeRuneInString(name); {
	case name == "":
		return pressKey{}, fmt.Errorf("key %s: missing key name", quoteShort(src))
	case size == len(name) && r != utf8.RuneError:
		k.key = r
	default:
		r, ok := keyNames[name]
		if !ok {
			return pressKey{}, fmt.Errorf("unknown key %s (want a key name such as Enter, Tab, Escape, ArrowDown, or one character)", quoteShort(name))
		}
		k.key = r
	}
	return k, nil
}
