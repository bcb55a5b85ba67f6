package executors

import (
	"context"
	"io"
)

// Streams of [Progress.Output].
const (
	StreamStdout = "stdout"
	StreamStderr = "stderr"
)

// Progress receives what a running task reports as it goes: events (a phase, a step) and the
// bytes of its output streams as they come. The caller of an executor puts one in the context
// ([WithProgress]); an executor takes it with [ProgressFrom], which never returns nil.
//
// Everything given to a Progress may leave the agent while the task runs, after the masks
// given to [Progress.Mask] are applied (also to a secret split across two Output calls). An
// executor registers the values it masks in its result before it writes output that may hold
// them. Batching, rate and size limits are the caller's; a Progress never blocks for long
// and never fails, and what it drops is still in the task's final result.
//
// Implementations are safe for concurrent use.
type Progress interface {
	// Event records a step or a phase: reason is a short CamelCase word ("Pulling",
	// "Step"), message a human-readable line without secrets.
	Event(reason, message string)
	// Output appends p to the named stream (StreamStdout or StreamStderr). p is not kept.
	Output(stream string, p []byte)
	// Mask names values that must never leave the agent (.env values, secret fill values):
	// they are replaced, in events and output alike, before anything is sent.
	Mask(values ...string)
}

type progressKey struct{}

// WithProgress returns a context carrying p for the executors.
func WithProgress(ctx context.Context, p Progress) context.Context {
	return context.WithValue(ctx, progressKey{}, p)
}

// ProgressFrom returns the Progress of ctx, or one that discards everything. Use it as
//
//	executors.ProgressFrom(ctx).Event("Pulling", "docker compose pull web")
func ProgressFrom(ctx context.Context) Progress {
	if p, ok := ctx.Value(progressKey{}).(Progress); ok && p != nil {
		return p
	}
	return discardProgress{}
}

// ProgressWriter returns an io.Writer that appends to one stream of p. It never fails.
func ProgressWriter(p Progress, stream string) io.Writer {
	return progressWriter{p: p, stream: stream}
}

type progressWriter struct {
	p      Progress
	stream string
}

func (w progressWriter) Write(b []byte) (int, error) {
	w.p.Output(w.stream, b)
	return len(b), nil
}

// streaming reports whether ctx carries a Progress that keeps anything.
func streaming(ctx context.Context) bool {
	_, discard := ProgressFrom(ctx).(discardProgress)
	return !discard
}

type discardProgress struct{}

func (discardProgress) Event(string, string)  {}
func (discardProgress) Output(string, []byte) {}
func (discardProgress) Mask(...string)        {}
