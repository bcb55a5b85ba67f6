package orchestratortest

import (
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// FaultOptions say how often a Faulty orchestrator misbehaves. Rates are shares of requests,
// from 0 to 1.
type FaultOptions struct {
	// ErrorRate: answered 500, 502, 503 or 429 (with Retry-After: 0 or 1) without reaching
	// the orchestrator.
	ErrorRate float64
	// ResetRate: the connection is dropped. For reports and heartbeats, half of these are
	// dropped after the orchestrator handled the request (the agent does not hear that it was
	// accepted); next-task requests are always dropped before, since a task answered 200 is
	// the agent's by contract.
	ResetRate float64
	// SlowRate and SlowDelay: the answer is delayed.
	SlowRate  float64
	SlowDelay time.Duration
	// Seed makes the faults repeatable; 0 picks one.
	Seed uint64
}

// FaultStats counts injected faults.
type FaultStats struct {
	Requests      int64
	Errors        int64
	ResetsBefore  int64
	ResetsAfter   int64
	Slow          int64
	OutageDropped int64
}

// Total is the number of faults injected.
func (s FaultStats) Total() int64 {
	return s.Errors + s.ResetsBefore + s.ResetsAfter + s.Slow + s.OutageDropped
}

// Faulty wraps an orchestrator handler with injected faults: errors, dropped connections,
// slow answers, full outages and (through the wrapped Server) revoked tokens. The /dev
// endpoints are never disturbed.
type Faulty struct {
	next http.Handler

	mu   sync.Mutex
	opts FaultOptions
	rnd  *rand.Rand

	outage atomic.Bool
	stats  struct {
		requests, errors, resetsBefore, resetsAfter, slow, outage atomic.Int64
	}
}

// NewFaulty wraps next.
func NewFaulty(next http.Handler, opts FaultOptions) *Faulty {
	seed := opts.Seed
	if seed == 0 {
		seed = rand.Uint64()
	}
	return &Faulty{next: next, opts: opts, rnd: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))}
}

// SetFaults replaces the fault rates.
func (f *Faulty) SetFaults(opts FaultOptions) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.opts = opts
}

// SetOutage starts (true) or ends (false) a full outage: every request's connection is
// dropped.
func (f *Faulty) SetOutage(on bool) { f.outage.Store(on) }

// Stats returns the faults injected so far.
func (f *Faulty) Stats() FaultStats {
	return FaultStats{
		Requests:      f.stats.requests.Load(),
		Errors:        f.stats.errors.Load(),
		ResetsBefore:  f.stats.resetsBefore.Load(),
		ResetsAfter:   f.stats.resetsAfter.Load(),
		Slow:          f.stats.slow.Load(),
		OutageDropped: f.stats.outage.Load(),
	}
}

type fault int

const (
	faultNone fault = iota
	faultError
	faultResetBefore
	faultResetAfter
)

func (f *Faulty) pick(r *http.Request) (fault, int, time.Duration) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var delay time.Duration
	if f.rnd.Float64() < f.opts.SlowRate {
		delay = f.opts.SlowDelay
	}
	x := f.rnd.Float64()
	switch {
	case x < f.opts.ErrorRate:
		codes := []int{500, 502, 503, 429}
		return faultError, codes[f.rnd.IntN(len(codes))], delay
	case x < f.opts.ErrorRate+f.opts.ResetRate:
		if r.Method != http.MethodGet && f.rnd.IntN(2) == 0 {
			return faultResetAfter, 0, delay
		}
		return faultResetBefore, 0, delay
	}
	return faultNone, 0, delay
}

// ServeHTTP implements http.Handler.
func (f *Faulty) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if strings.HasPrefix(r.URL.Path, "/dev/") {
		f.next.ServeHTTP(w, r)
		return
	}
	f.stats.requests.Add(1)
	if f.outage.Load() {
		f.stats.outage.Add(1)
		drop(w)
		return
	}
	kind, code, delay := f.pick(r)
	if delay > 0 {
		f.stats.slow.Add(1)
		select {
		case <-time.After(delay):
		case <-r.Context().Done():
			return
		}
	}
	switch kind {
	case faultError:
		f.stats.errors.Add(1)
		if code == http.StatusTooManyRequests {
			w.Header().Set("Retry-After", []string{"0", "1"}[rand.IntN(2)])
		}
		http.Error(w, "injected fault", code)
	case faultResetBefore:
		f.stats.resetsBefore.Add(1)
		drop(w)
	case faultResetAfter:
		f.stats.resetsAfter.Add(1)
		rec := httptest.NewRecorder()
		f.next.ServeHTTP(rec, r.WithContext(r.Context()))
		drop(w)
	default:
		f.next.ServeHTTP(w, r)
	}
}

// drop closes the connection without an answer.
func drop(w http.ResponseWriter) {
	hj, ok := w.(http.Hijacker)
	if !ok {
		panic(http.ErrAbortHandler)
	}
	conn, _, err := hj.Hijack()
	if err != nil {
		panic(http.ErrAbortHandler)
	}
	conn.Close()
}
