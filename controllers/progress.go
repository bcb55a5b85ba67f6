package controllers

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"sync"
	"time"
	"unicode/utf8"

	"k8s.io/utils/clock"

	"github.com/letsbe/sysadmin-agent/api/progress"
	agentv1 "github.com/letsbe/sysadmin-agent/api/v1alpha1"
	"github.com/letsbe/sysadmin-agent/executors"
)

// Defaults of [ProgressOptions].
const (
	DefaultProgressInterval = time.Second
	DefaultProgressMaxBytes = 64 << 10
)

const (
	// progressMask replaces a masked value in progress, as DOCKER_RELOAD does in its result.
	progressMask = "***"
	// maxPending bounds a stream's redacted output waiting to be sent (as much as a result
	// keeps, or 4 batches if more): beyond it the oldest bytes are dropped, a gap in the
	// offsets; the final result keeps its head and tail as always.
	maxPending     = executors.DefaultMaxOutputBytes
	pendingBatches = 4
	// batchOverhead is what a report needs besides its events and output data.
	batchOverhead = 512
	// eventOverhead is what an event needs besides its message (time, type, JSON).
	eventOverhead = 96
	// chunkOverhead is what an output chunk needs besides its data.
	chunkOverhead = 64
	// maxFinalEvents bounds the executor's events kept in the Task's final status.
	maxFinalEvents = 16
)

// ProgressOptions configure the live progress of running Tasks: what executors report
// through [executors.Progress] is redacted, cut into batches of at most MaxBytes and offered
// to Hub at most once per Interval per Task. Nothing of it is written to the store while the
// Task runs; the executor's events join the Task's final status.
type ProgressOptions struct {
	// Hub receives the batches. Without one, executors get no Progress at all.
	Hub *progress.Hub
	// Interval is the least time between two batches of one Task. Default 1s.
	Interval time.Duration
	// MaxBytes bounds the JSON size of a batch's events and output. Default 64 KiB.
	MaxBytes int
	// Masks are masked in every Task's progress (the agent's own secrets), besides what each
	// executor masks.
	Masks []string
	// Clock is the time source; the real clock when nil.
	Clock clock.Clock
}

func (o ProgressOptions) withDefaults() ProgressOptions {
	if o.Interval <= 0 {
		o.Interval = DefaultProgressInterval
	}
	if o.MaxBytes <= 0 {
		o.MaxBytes = DefaultProgressMaxBytes
	}
	o.MaxBytes = max(o.MaxBytes, batchOverhead+eventOverhead+chunkOverhead+utf8.UTFMax*6)
	if o.Clock == nil {
		o.Clock = clock.RealClock{}
	}
	return o
}

// startProgress gives the execution of a Task its Progress, when a hub is configured. stop
// ends it (nothing of the Task is offered after it returns) and returns the events the
// executor reported, for the final status.
func (o ProgressOptions) startProgress(ctx context.Context, task string) (_ context.Context, stop func() []progress.Event) {
	if o.Hub == nil {
		return ctx, func() []progress.Event { return nil }
	}
	tp := newTaskProgress(o.withDefaults(), task)
	return executors.WithProgress(ctx, tp), tp.stop
}

// taskProgress is the Progress of one execution. The executor's calls only buffer and wake
// the flusher goroutine, which offers a batch at most once per interval. The flusher starts
// with the first event or output: most executions (ECHO, FILE_WRITE, ...) have none, and
// cost no goroutine.
type taskProgress struct {
	opts ProgressOptions
	task string
	// Made, and the flusher started, by the first signal (under mu); fixed from then on.
	wake chan struct{}
	quit chan struct{}
	done chan struct{}

	mu      sync.Mutex
	masks   []string  // longest first
	first   [256]bool // first bytes of the masks
	events  []progress.Event
	history []progress.Event // the last maxFinalEvents events
	streams []*stream        // by order of first output
	stopped bool
}

// stream is one output stream of a Task on its way out.
type stream struct {
	name   string
	raw    []byte // not redacted yet: it may be the start of a masked value
	out    []byte // redacted, not sent yet
	offset int64  // offset of out[0] in the redacted stream
}

func newTaskProgress(opts ProgressOptions, task string) *taskProgress {
	tp := &taskProgress{opts: opts, task: task}
	tp.Mask(opts.Masks...)
	return tp
}

// Event implements executors.Progress.
func (tp *taskProgress) Event(reason, message string) {
	tp.mu.Lock()
	defer tp.mu.Unlock()
	if tp.stopped {
		return
	}
	ev := progress.Event{Time: tp.opts.Clock.Now().UTC(), Type: tp.redactString(reason), Message: tp.redactString(message)}
	tp.events = append(tp.events, ev)
	if n := len(tp.events); n > 4*maxFinalEvents {
		tp.events = slices.Delete(tp.events, 0, n-4*maxFinalEvents) // nobody takes them: keep the newest
	}
	tp.history = append(tp.history, ev)
	if n := len(tp.history); n > maxFinalEvents {
		tp.history = slices.Delete(tp.history, 0, n-maxFinalEvents)
	}
	tp.signal()
}

// Output implements executors.Progress.
func (tp *taskProgress) Output(name string, p []byte) {
	if len(p) == 0 {
		return
	}
	tp.mu.Lock()
	defer tp.mu.Unlock()
	if tp.stopped {
		return
	}
	s := tp.stream(name)
	s.raw = append(s.raw, p...)
	tp.redact(s, false)
	if limit := max(maxPending, pendingBatches*tp.opts.MaxBytes); len(s.out) > limit {
		drop := len(s.out) - limit
		for drop < len(s.out) && !utf8.RuneStart(s.out[drop]) {
			drop++
		}
		s.out = s.out[drop:] // no copy: the next growth of s.out leaves the dropped bytes behind
		s.offset += int64(drop)
	}
	tp.signal()
}

// Mask implements executors.Progress.
func (tp *taskProgress) Mask(values ...string) {
	tp.mu.Lock()
	defer tp.mu.Unlock()
	for _, v := range values {
		if v != "" && !slices.Contains(tp.masks, v) {
			tp.masks = append(tp.masks, v)
			tp.first[v[0]] = true
		}
	}
	// Longest first, as the executors' replacers do: where two values match, the longer wins.
	slices.SortStableFunc(tp.masks, func(a, b string) int { return cmp.Compare(len(b), len(a)) })
}

func (tp *taskProgress) stream(name string) *stream {
	for _, s := range tp.streams {
		if s.name == name {
			return s
		}
	}
	s := &stream{name: name}
	tp.streams = append(tp.streams, s)
	return s
}

// signal wakes the flusher, starting it first if need be; called with tp.mu held.
func (tp *taskProgress) signal() {
	if tp.wake == nil {
		tp.wake, tp.quit, tp.done = make(chan struct{}, 1), make(chan struct{}), make(chan struct{})
		go tp.run()
	}
	tp.wakeUp()
}

// wakeUp wakes the started flusher.
func (tp *taskProgress) wakeUp() {
	select {
	case tp.wake <- struct{}{}:
	default:
	}
}

// redact moves s.raw to s.out with the masks applied, keeping back a tail that may be the
// start of a masked value unless final. The result equals masking the whole stream at once.
func (tp *taskProgress) redact(s *stream, final bool) {
	raw := s.raw
	if len(tp.masks) == 0 {
		s.out = append(s.out, raw...)
		s.raw = s.raw[:0]
		return
	}
	i, last := 0, 0
scan:
	for i < len(raw) {
		if !tp.first[raw[i]] {
			i++
			continue
		}
		rest := raw[i:]
		for _, m := range tp.masks {
			switch {
			case len(rest) >= len(m):
				if string(rest[:len(m)]) == m {
					s.out = append(s.out, raw[last:i]...)
					s.out = append(s.out, progressMask...)
					i += len(m)
					last = i
					continue scan
				}
			case !final && string(rest) == m[:len(rest)]:
				break scan // more bytes decide
			}
		}
		i++
	}
	s.out = append(s.out, raw[last:i]...)
	s.raw = append(s.raw[:0], raw[i:]...)
}

// redactString masks the values in a whole string.
func (tp *taskProgress) redactString(v string) string {
	if len(tp.masks) == 0 {
		return v
	}
	s := &stream{raw: []byte(v)}
	tp.redact(s, true)
	return string(s.out)
}

// run offers batches until stop: on news, but at most once per interval.
func (tp *taskProgress) run() {
	defer close(tp.done)
	defer tp.recoverFlusher()
	var last time.Time
	for {
		select {
		case <-tp.quit:
			return
		case <-tp.wake:
		}
		if !last.IsZero() {
			if wait := tp.opts.Interval - tp.opts.Clock.Since(last); wait > 0 {
				t := tp.opts.Clock.NewTimer(wait)
				select {
				case <-tp.quit:
					t.Stop()
					return
				case <-t.C():
				}
			}
		}
		last = tp.opts.Clock.Now()
		if tp.offer() {
			tp.wakeUp() // more waits: go again after the interval
		}
	}
}

// recoverFlusher ends this Task's live progress, not the agent, when the flusher panicked:
// nothing more is offered, and the Task's final status says so in an event.
func (tp *taskProgress) recoverFlusher() {
	p := recover()
	if p == nil {
		return
	}
	tp.mu.Lock()
	defer tp.mu.Unlock()
	tp.stopped = true
	tp.history = append(tp.history, progress.Event{
		Time: time.Now().UTC(), Type: agentv1.EventWarning, // not the clock: it may be what panicked
		Message: tp.redactString(fmt.Sprintf("live progress stopped after an internal error (panic: %v)", p)),
	})
	if n := len(tp.history); n > maxFinalEvents {
		tp.history = slices.Delete(tp.history, 0, n-maxFinalEvents)
	}
}

// offer hands the hub the next batch and reports whether anything is left to send.
func (tp *taskProgress) offer() (more bool) {
	tp.mu.Lock()
	defer tp.mu.Unlock()
	if tp.stopped {
		return false
	}
	if !tp.opts.Hub.Enabled() {
		// Nobody wants progress now: drop what waits, keeping the offsets right.
		tp.events = nil
		for _, s := range tp.streams {
			s.offset += int64(len(s.out))
			s.out = s.out[:0]
		}
		return false
	}
	b, sizes, nEvents := tp.next()
	if b.Empty() {
		return false
	}
	if !tp.opts.Hub.Offer(tp.task, b) {
		return true // the previous batch is still waiting: try again later
	}
	tp.events = slices.Delete(tp.events, 0, nEvents)
	for i, s := range tp.streams {
		s.out = append(s.out[:0], s.out[sizes[i]:]...)
		s.offset += int64(sizes[i])
	}
	if len(tp.events) > 0 {
		return true
	}
	for _, s := range tp.streams {
		if len(s.out) > 0 {
			return true
		}
	}
	return false
}

// next builds the next batch within MaxBytes: events first, then the output, the budget
// shared by the streams that have some. It returns how many bytes of each stream and how
// many events it holds.
func (tp *taskProgress) next() (progress.Batch, []int, int) {
	budget := tp.opts.MaxBytes - batchOverhead
	var b progress.Batch
	nEvents := 0
	for _, ev := range tp.events {
		size := eventOverhead + jsonLen([]byte(ev.Type)) + jsonLen([]byte(ev.Message))
		if size > budget {
			break
		}
		budget -= size
		b.Events = append(b.Events, ev)
		nEvents++
	}
	sizes := make([]int, len(tp.streams))
	waiting := 0
	for _, s := range tp.streams {
		if len(s.out) > 0 {
			waiting++
		}
	}
	for i, s := range tp.streams {
		if len(s.out) == 0 || budget <= chunkOverhead {
			continue
		}
		share := (budget - chunkOverhead) / waiting
		if i == len(tp.streams)-1 || waiting == 1 {
			share = budget - chunkOverhead // the last one takes what the others left
		}
		waiting--
		n := jsonCut(s.out, share)
		if n < len(s.out) {
			n = len(trimPartialRune(s.out[:n]))
		}
		if n == 0 {
			continue
		}
		budget -= chunkOverhead + jsonLen(s.out[:n])
		sizes[i] = n
		b.Output = append(b.Output, progress.Chunk{Stream: s.name, Offset: s.offset, Data: string(s.out[:n])})
	}
	return b, sizes, nEvents
}

// stop ends the Progress: the flusher is gone and the hub holds nothing of the Task when it
// returns. It returns the executor's last events.
func (tp *taskProgress) stop() []progress.Event {
	tp.mu.Lock()
	tp.stopped = true // no signal after this: no flusher starts
	started := tp.wake != nil
	tp.mu.Unlock()
	if started {
		close(tp.quit)
		<-tp.done
	}
	tp.opts.Hub.Close(tp.task)
	tp.mu.Lock()
	defer tp.mu.Unlock()
	return slices.Clone(tp.history)
}

// jsonLen is the length of b as a JSON string's content, as encoding/json writes it
// (HTML-safe escaping).
func jsonLen(b []byte) int {
	size := 0
	for _, c := range b {
		size += escapedLen(c)
	}
	return size
}

// jsonCut returns the length of the longest prefix of b whose JSON length is at most limit.
func jsonCut(b []byte, limit int) int {
	size := 0
	for n, c := range b {
		if size += escapedLen(c); size > limit {
			return n
		}
	}
	return len(b)
}

// escapedLen is the JSON length of one byte of a string (a multi-byte rune counts its bytes;
// invalid bytes and U+2028/2029 cost a little more, which batchOverhead absorbs).
func escapedLen(c byte) int {
	switch {
	case c == '"' || c == '\\' || c == '\n' || c == '\r' || c == '\t':
		return 2
	case c < 0x20 || c == '<' || c == '>' || c == '&':
		return 6
	}
	return 1
}

// trimPartialRune drops an incomplete UTF-8 sequence at the end of p.
func trimPartialRune(p []byte) []byte {
	for i := 1; i <= utf8.UTFMax && i <= len(p); i++ {
		if c := p[len(p)-i]; utf8.RuneStart(c) {
			if c >= utf8.RuneSelf && !utf8.FullRune(p[len(p)-i:]) {
				return p[:len(p)-i]
			}
			return p
		}
	}
	return p
}
