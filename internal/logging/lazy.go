package logging

import (
	"sync"

	"github.com/go-logr/logr"
)

// Lazy returns log with a sink that defers WithValues, WithName and WithCallDepth until a
// line is written through the logger they made: a logger built for one task or one request
// (its id, its type) costs one small allocation instead of its sink's own (zapr encodes the
// values at once), and nothing more when it never writes, as at AGENT_LOG_LEVEL=error or for
// V(1) lines at info. What is written is the same as log would write, caller included. The
// key/value slices given to WithValues are kept, not copied: do not change them afterwards.
func Lazy(log logr.Logger) logr.Logger {
	sink := log.GetSink()
	if sink == nil {
		return log
	}
	if _, ok := sink.(*lazySink); ok {
		return log
	}
	if cd, ok := sink.(logr.CallDepthLogSink); ok {
		sink = cd.WithCallDepth(1) // lazySink's own Info and Error frames
	}
	return log.WithSink(&lazySink{root: sink, built: sink, done: true})
}

// lazySink is one deferred call on its parent's sink (the root's, at the top), built once on
// the first line written through it.
type lazySink struct {
	root   logr.LogSink // for Enabled: names, values and call depth do not change it
	parent *lazySink
	op     lazyOp
	name   string
	kv     []any
	depth  int

	mu    sync.Mutex
	done  bool
	built logr.LogSink
}

type lazyOp uint8

const (
	opValues lazyOp = iota
	opName
	opDepth
)

var (
	_ logr.LogSink          = (*lazySink)(nil)
	_ logr.CallDepthLogSink = (*lazySink)(nil)
)

// sink returns the real sink, building it (and its parents) on first use.
func (l *lazySink) sink() logr.LogSink {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.done {
		return l.built
	}
	s := l.parent.sink()
	switch l.op {
	case opValues:
		s = s.WithValues(l.kv...)
	case opName:
		s = s.WithName(l.name)
	case opDepth:
		if cd, ok := s.(logr.CallDepthLogSink); ok {
			s = cd.WithCallDepth(l.depth)
		}
	}
	l.built, l.done = s, true
	l.parent, l.kv = nil, nil // no longer needed
	return s
}

// Init implements logr.LogSink. The root sink was initialized by its own logger already.
func (l *lazySink) Init(logr.RuntimeInfo) {}

// Enabled implements logr.LogSink.
func (l *lazySink) Enabled(level int) bool { return l.root.Enabled(level) }

// Info implements logr.LogSink.
func (l *lazySink) Info(level int, msg string, keysAndValues ...any) {
	l.sink().Info(level, msg, keysAndValues...)
}

// Error implements logr.LogSink.
func (l *lazySink) Error(err error, msg string, keysAndValues ...any) {
	l.sink().Error(err, msg, keysAndValues...)
}

// WithValues implements logr.LogSink. No values, no new sink: controller-runtime's
// log.FromContext (ctrl.LoggerFrom) calls WithValues with none each time.
func (l *lazySink) WithValues(keysAndValues ...any) logr.LogSink {
	if len(keysAndValues) == 0 {
		return l
	}
	return &lazySink{root: l.root, parent: l, op: opValues, kv: keysAndValues}
}

// WithName implements logr.LogSink.
func (l *lazySink) WithName(name string) logr.LogSink {
	return &lazySink{root: l.root, parent: l, op: opName, name: name}
}

// WithCallDepth implements logr.CallDepthLogSink.
func (l *lazySink) WithCallDepth(depth int) logr.LogSink {
	return &lazySink{root: l.root, parent: l, op: opDepth, depth: depth}
}
