package browser

import (
	"fmt"
	"net/url"
	"strings"
	"sync"

	"github.com/letsbe/sysadmin-agent/executors"
)

// Result is the result of a PLAYWRIGHT task, on success and on failure alike.
type Result struct {
	// Steps are the steps that ran, in order; on a failure the last one
	// failed and the steps after it did not run.
	Steps []StepResult `json:"steps"`
	// FinalURL and Title describe the page when the flow ended.
	FinalURL string `json:"final_url"`
	Title    string `json:"title"`
	// Screenshots are those the flow took, plus one named "failure" of the
	// page when a step failed.
	Screenshots []Screenshot `json:"screenshots"`
	// ConsoleErrors are the page's console.error messages, uncaught
	// exceptions and browser errors (a resource that failed to load).
	ConsoleErrors []string `json:"console_errors"`
	// BlockedRequests are the URLs that the host allowlist blocked.
	BlockedRequests []string `json:"blocked_requests"`
}

// StepResult is the outcome of one step.
type StepResult struct {
	Index      int    `json:"index"` // from 1, as in the error messages
	Action     string `json:"action"`
	OK         bool   `json:"ok"`
	DurationMS int64  `json:"duration_ms"`
	Error      string `json:"error,omitempty"`
}

// Screenshot is a PNG image. One over the size cap has no image, only a Note.
type Screenshot struct {
	Name      string `json:"name"`
	PNGBase64 string `json:"png_base64"`
	Note      string `json:"note,omitempty"`
}

// Caps on what the page can put into a result.
const (
	maxConsoleErrors   = 50
	maxConsoleErrorLen = 1000
	maxBlocked         = 100
	maxTextInError     = 200
	maxURLLen          = 4096
	maxTitleLen        = 1000
)

// redactor replaces the values of secret fill steps, also URL-encoded, with
// [REDACTED].
type redactor struct {
	r *strings.Replacer
}

const redacted = "[REDACTED]"

func newRedactor(secrets []string) redactor {
	if len(secrets) == 0 {
		return redactor{}
	}
	var pairs []string
	seen := map[string]bool{}
	add := func(s string) {
		if s != "" && !seen[s] {
			seen[s] = true
			pairs = append(pairs, s, redacted)
		}
	}
	// Longer forms first: strings.Replacer prefers the earlier of two
	// matches at the same position.
	for _, s := range secrets {
		for _, enc := range encodings(s) {
			add(enc)
		}
	}
	for _, s := range secrets {
		add(s)
	}
	return redactor{r: strings.NewReplacer(pairs...)}
}

// encodings returns the spellings a value takes in URLs and form bodies:
// Go's query and path escaping, JavaScript's encodeURIComponent, HTML form
// encoding (spaces as "+"), and every byte outside the unreserved set
// escaped (so "~" as %7E), each with upper- and lower-case hex digits.
func encodings(s string) []string {
	keep := func(extra string) func(byte) bool {
		return func(c byte) bool {
			return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte(extra, c) >= 0
		}
	}
	escape := func(s string, unreserved func(byte) bool, space string) string {
		var b strings.Builder
		for i := 0; i < len(s); i++ {
			c := s[i]
			switch {
			case c == ' ' && space != "":
				b.WriteString(space)
			case unreserved(c):
				b.WriteByte(c)
			default:
				fmt.Fprintf(&b, "%%%02X", c)
			}
		}
		return b.String()
	}
	strict := keep("-._")             // even "~" escaped
	uriComponent := keep("-_.!~*'()") // JavaScript's encodeURIComponent
	forms := []string{
		url.QueryEscape(s),
		url.PathEscape(s),
		strings.ReplaceAll(url.QueryEscape(s), "+", "%20"),
		escape(s, uriComponent, ""),
		escape(s, uriComponent, "+"),
		escape(s, strict, ""),
		escape(s, strict, "+"),
		escape(s, keep("-._~"), ""),
		escape(s, keep("-._~"), "+"),
	}
	out := make([]string, 0, 2*len(forms))
	for _, f := range forms {
		out = append(out, f, lowerHex(f))
	}
	return out
}

// lowerHex turns the hex digits of every %XX escape to lower case.
func lowerHex(s string) string {
	b := []byte(s)
	for i := 0; i+2 < len(b); i++ {
		if b[i] == '%' {
			b[i+1], b[i+2] = toLower(b[i+1]), toLower(b[i+2])
		}
	}
	return string(b)
}

func toLower(c byte) byte {
	if c >= 'A' && c <= 'F' {
		return c + 'a' - 'A'
	}
	return c
}

func (r redactor) String(s string) string {
	if r.r == nil {
		return s
	}
	return r.r.Replace(s)
}

// apply redacts every text of a result.
func (r redactor) apply(res *Result) {
	if r.r == nil {
		return
	}
	for i := range res.Steps {
		res.Steps[i].Error = r.String(res.Steps[i].Error)
	}
	res.FinalURL = r.String(res.FinalURL)
	res.Title = r.String(res.Title)
	for i := range res.Screenshots {
		res.Screenshots[i].Name = r.String(res.Screenshots[i].Name)
		res.Screenshots[i].Note = r.String(res.Screenshots[i].Note)
	}
	for i := range res.ConsoleErrors {
		res.ConsoleErrors[i] = r.String(res.ConsoleErrors[i])
	}
	for i := range res.BlockedRequests {
		res.BlockedRequests[i] = r.String(res.BlockedRequests[i])
	}
}

// pageLog collects what the page reports while the flow runs; the event
// goroutines write it, the flow reads it at the end.
type pageLog struct {
	redact        redactor // applied before anything is truncated or kept
	mu            sync.Mutex
	consoleErrors []string
	droppedErrors int
	blocked       []string
	blockedSeen   map[string]bool
	droppedBlocks int
	lastURL       string
}

func (l *pageLog) consoleError(msg string) {
	msg = l.redact.String(msg)
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.consoleErrors) >= maxConsoleErrors {
		l.droppedErrors++
		return
	}
	l.consoleErrors = append(l.consoleErrors, executors.Shorten(msg, maxConsoleErrorLen))
}

func (l *pageLog) blockedRequest(u string) {
	u = executors.Shorten(l.redact.String(u), maxConsoleErrorLen)
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.blockedSeen[u] {
		return
	}
	if len(l.blocked) >= maxBlocked {
		l.droppedBlocks++
		return
	}
	if l.blockedSeen == nil {
		l.blockedSeen = map[string]bool{}
	}
	l.blockedSeen[u] = true
	l.blocked = append(l.blocked, u)
}

func (l *pageLog) navigated(u string) {
	u = l.redact.String(u)
	l.mu.Lock()
	defer l.mu.Unlock()
	l.lastURL = u
}

func (l *pageLog) url() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.lastURL
}

// fill copies the collected entries into res.
func (l *pageLog) fill(res *Result) {
	l.mu.Lock()
	defer l.mu.Unlock()
	res.ConsoleErrors = append(res.ConsoleErrors, l.consoleErrors...)
	if l.droppedErrors > 0 {
		res.ConsoleErrors = append(res.ConsoleErrors, "... and more console errors not kept")
	}
	res.BlockedRequests = append(res.BlockedRequests, l.blocked...)
	if l.droppedBlocks > 0 {
		res.BlockedRequests = append(res.BlockedRequests, "... and more blocked requests not kept")
	}
}
