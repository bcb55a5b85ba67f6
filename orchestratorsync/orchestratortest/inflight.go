package orchestratortest

import (
	"net/http"
	"sync"
)

// InFlight wraps an orchestrator handler and counts the requests to one path (the next-task
// requests, say) in flight at once: from their arrival (any latency injected behind it
// included) until their answer starts, which is before the agent can see it (Server flushes
// its answer before its handler returns); and the most of them at once. Other paths pass
// through uncounted.
type InFlight struct {
	next http.Handler
	path string

	mu      sync.Mutex
	n, peak int
}

// NewInFlight counts the requests to path that next serves.
func NewInFlight(next http.Handler, path string) *InFlight {
	return &InFlight{next: next, path: path}
}

func (c *InFlight) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != c.path {
		c.next.ServeHTTP(w, r)
		return
	}
	c.mu.Lock()
	c.n++
	c.peak = max(c.peak, c.n)
	c.mu.Unlock()
	aw := &answerStart{ResponseWriter: w, started: func() { c.mu.Lock(); c.n--; c.mu.Unlock() }}
	defer aw.start()
	c.next.ServeHTTP(aw, r)
}

// Counts returns the requests in flight now and the most at once since the start or the
// last ResetPeak.
func (c *InFlight) Counts() (now, peak int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n, c.peak
}

// ResetPeak starts a new peak from the requests in flight now.
func (c *InFlight) ResetPeak() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.peak = c.n
}

// answerStart calls started once, when the answer starts (or the handler ends without one).
type answerStart struct {
	http.ResponseWriter
	started func()
	once    sync.Once
}

func (a *answerStart) start() { a.once.Do(a.started) }

func (a *answerStart) WriteHeader(code int) { a.start(); a.ResponseWriter.WriteHeader(code) }

func (a *answerStart) Write(b []byte) (int, error) { a.start(); return a.ResponseWriter.Write(b) }

// Unwrap lets http.ResponseController reach the connection's Flush and Hijack.
func (a *answerStart) Unwrap() http.ResponseWriter { return a.ResponseWriter }
