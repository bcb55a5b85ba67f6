package browser

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"time"

	"github.com/letsbe/sysadmin-agent/executors"
)

// Defaults of [Config].
const (
	DefaultStepTimeout        = 30 * time.Second
	DefaultMaxScreenshotBytes = 2 << 20
	DefaultMaxConcurrent      = 1
)

// chromiumNames are the programs looked up on PATH when Config.ChromiumPath
// is empty: Debian's package, then the name other distributions use.
var chromiumNames = []string{"chromium", "chromium-browser"}

// Config configures an [Playwright].
type Config struct {
	// ChromiumPath is the browser to run: a path, or a program name looked
	// up on PATH. Empty means "chromium" or "chromium-browser" on PATH. The
	// executor never downloads a browser.
	ChromiumPath string
	// AllowedHosts, when not empty, are the only hosts the browser may
	// reach: exact host names or IP addresses, or "*.example.com" for the
	// subdomains of example.com.
	AllowedHosts []string
	// MaxConcurrent is the number of flows (browsers) at once; others wait
	// their turn. Default 1.
	MaxConcurrent int
	// StepTimeout is the default time a step may take, within the task's
	// own timeout. Default 30s.
	StepTimeout time.Duration
	// MaxScreenshotBytes caps each screenshot (PNG bytes); a larger one is
	// dropped with a note. All screenshots of a flow together are capped at
	// four times this. Default 2 MiB.
	MaxScreenshotBytes int
	// TempDir is where the temporary browser profiles are made; empty
	// means os.TempDir().
	TempDir string
}

// Playwright is the PLAYWRIGHT executor. It implements [executors.Executor].
type Playwright struct {
	cfg   Config
	hosts hostList
	slots chan struct{}

	// waiting, when set (by tests), is called when a flow starts waiting
	// for a free slot.
	waiting func()
}

var _ executors.Executor = (*Playwright)(nil)

// New returns a PLAYWRIGHT executor. It fails on an invalid allowed host; a
// missing browser is reported by each task, not here, so that the agent
// runs the other task types on a server without Chromium.
func New(cfg Config) (*Playwright, error) {
	if cfg.MaxConcurrent <= 0 {
		cfg.MaxConcurrent = DefaultMaxConcurrent
	}
	if cfg.StepTimeout <= 0 {
		cfg.StepTimeout = DefaultStepTimeout
	}
	if cfg.MaxScreenshotBytes <= 0 {
		cfg.MaxScreenshotBytes = DefaultMaxScreenshotBytes
	}
	hosts, err := newHostList(cfg.AllowedHosts)
	if err != nil {
		return nil, err
	}
	return &Playwright{cfg: cfg, hosts: hosts, slots: make(chan struct{}, cfg.MaxConcurrent)}, nil
}

// Execute implements [executors.Executor] for a payload
// {"flow": {"steps": [...], "ignore_https_errors"?: false}, "timeout_seconds"?: 120}. The result is a
// [*Result], also when a step fails: the error then names the step, and the
// result holds the steps so far and a screenshot of the page at the failure.
func (e *Playwright) Execute(ctx context.Context, payload json.RawMessage) (any, error) {
	f, err := parseFlow(payload, e.hosts)
	if err != nil {
		return nil, err
	}
	ctx, cancel := executors.WithTimeout(ctx, f.timeout)
	defer cancel()
	path, err := e.chromium()
	if err != nil {
		return nil, err
	}
	if err := e.acquire(ctx); err != nil {
		return nil, err
	}
	defer func() { <-e.slots }()
	res, err := e.run(ctx, f, path)
	if res == nil {
		return nil, err
	}
	return res, err
}

// ErrNoBrowser is returned when no Chromium can be found.
var ErrNoBrowser = errors.New("chromium not found")

// chromium finds the browser to run.
func (e *Playwright) chromium() (string, error) {
	names := chromiumNames
	if e.cfg.ChromiumPath != "" {
		names = []string{e.cfg.ChromiumPath}
	}
	var firstErr error
	for _, name := range names {
		path, err := exec.LookPath(name)
		if err == nil {
			return path, nil
		}
		if firstErr == nil {
			firstErr = err
		}
	}
	if e.cfg.ChromiumPath != "" {
		return "", fmt.Errorf("%w: AGENT_CHROMIUM_PATH is %q: %w", ErrNoBrowser, e.cfg.ChromiumPath, firstErr)
	}
	return "", fmt.Errorf("%w: install Debian's chromium package or set AGENT_CHROMIUM_PATH: %w", ErrNoBrowser, firstErr)
}

// acquire waits for a free browser slot, or for the end of ctx.
func (e *Playwright) acquire(ctx context.Context) error {
	select {
	case e.slots <- struct{}{}:
		return nil
	default:
	}
	if e.waiting != nil {
		e.waiting()
	}
	select {
	case e.slots <- struct{}{}:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("waiting for a free browser (AGENT_MAX_BROWSER_TASKS is %d): %w", e.cfg.MaxConcurrent, context.Cause(ctx))
	}
}

// run starts a browser, runs the steps and tears the browser down.
func (e *Playwright) run(ctx context.Context, f *flow, path string) (*Result, error) {
	red := newRedactor(f.secrets)
	plog := &pageLog{redact: red}
	s, err := e.launch(ctx, path, f, plog)
	if err != nil {
		return nil, err
	}
	defer s.close()

	prog := executors.ProgressFrom(ctx)
	prog.Mask(f.secrets...)
	res := &Result{Steps: []StepResult{}, Screenshots: []Screenshot{}, ConsoleErrors: []string{}, BlockedRequests: []string{}}
	shots := &screenshots{max: e.cfg.MaxScreenshotBytes, maxTotal: 4 * e.cfg.MaxScreenshotBytes, res: res}
	var failed error
	for i := range f.steps {
		st := &f.steps[i]
		timeout := st.timeout
		if timeout == 0 {
			timeout = e.cfg.StepTimeout
		}
		start := time.Now()
		err := s.runStep(ctx, st, timeout, shots, red)
		sr := StepResult{Index: st.index, Action: st.action, OK: err == nil, DurationMS: time.Since(start).Milliseconds()}
		if err != nil {
			sf := newStepFailure(ctx, st, timeout, err, red)
			sr.Error = sf.detail
			failed = sf
		}
		res.Steps = append(res.Steps, sr)
		prog.Event(EventStep, stepEvent(st, len(f.steps), sr, red))
		if failed != nil {
			break
		}
	}
	// A cancelled task (the agent shutting down, say) ends at once; a
	// timed-out one still shows where it was stuck.
	var timeout *executors.TimeoutError
	if ctx.Err() == nil || errors.As(context.Cause(ctx), &timeout) {
		if failed != nil {
			if png, err := s.screenshot(false); err == nil {
				shots.add("failure", png)
			}
		}
		u, title := s.location()
		// Redacted before they are cut short, so that no part of a
		// secret is left.
		res.FinalURL, res.Title = executors.Shorten(red.String(u), maxURLLen), executors.Shorten(red.String(title), maxTitleLen)
	}
	if res.FinalURL == "" {
		res.FinalURL = executors.Shorten(plog.url(), maxURLLen)
	}
	plog.fill(res)
	red.apply(res)
	return res, failed
}

// EventStep is the reason of the progress event each step reports.
const EventStep = "Step"

// stepEvent is the progress line of a step that ran: `step 3/10 click "#login" ok, 120 ms`,
// or `step 3/10 click "#login" failed after 30000 ms: timed out ...`. It is redacted.
func stepEvent(st *step, total int, sr StepResult, red redactor) string {
	if sr.OK {
		return red.String(fmt.Sprintf("step %d/%d %s ok, %d ms", st.index, total, st.describe(), sr.DurationMS))
	}
	return red.String(fmt.Sprintf("step %d/%d %s failed after %d ms: %s", st.index, total, st.describe(), sr.DurationMS, sr.Error))
}

// stepFailure is the error of a failing step: `step 3 (click "#submit"):
// timed out after 30s waiting for selector`. It wraps the cause (a
// [*executors.TimeoutError] for a timeout) for errors.As.
type stepFailure struct {
	msg    string
	detail string // the message without the "step N (...): " prefix
	cause  error
}

func (e *stepFailure) Error() string { return e.msg }
func (e *stepFailure) Unwrap() error { return e.cause }

// newStepFailure builds the error of step st from the error of its action.
// ctx is the task's context: when it ended, its cause (the task timeout or a
// cancellation) is what stopped the step.
func newStepFailure(ctx context.Context, st *step, timeout time.Duration, err error, red redactor) *stepFailure {
	var detail string
	var cause error
	var te *stepTimeout
	switch {
	case ctx.Err() != nil:
		cause = context.Cause(ctx)
		detail = cause.Error()
	case errors.As(err, &te):
		cause = &executors.TimeoutError{After: timeout}
		detail = fmt.Sprintf("%s %s", cause.Error(), te.waitingFor)
	default:
		detail = err.Error()
	}
	detail = red.String(detail)
	return &stepFailure{
		msg:    fmt.Sprintf("step %d (%s): %s", st.index, st.describe(), detail),
		detail: detail,
		cause:  cause,
	}
}

// stepTimeout reports that a step's own timeout passed while it was waiting
// for something (waitingFor, e.g. "waiting for selector").
type stepTimeout struct {
	waitingFor string
}

func (e *stepTimeout) Error() string { return "step timed out " + e.waitingFor }

// removeAllRetry removes dir, retrying for a while: a dying browser process can
// still write into its profile.
func removeAllRetry(dir string) error {
	deadline := time.Now().Add(5 * time.Second)
	for {
		err := os.RemoveAll(dir)
		if err == nil || time.Now().After(deadline) {
			return err
		}
		time.Sleep(20 * time.Millisecond)
	}
}
