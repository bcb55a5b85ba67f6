package executors

import "context"

// Reporter receives what an executor tells about a running task besides its result: events
// (one line each, no secrets) and conditions. The caller (the reconciler) records them on the
// task; an executor never writes task status itself.
type Reporter interface {
	// Event records an event of type typ (e.g. "Pulled") with a message.
	Event(typ, message string)
	// Condition sets a condition of the task: typ (e.g. "Available"), status true or false,
	// a CamelCase reason and a message.
	Condition(typ string, status bool, reason, message string)
}

type reporterKey struct{}

// WithReporter returns a context under which executors report events and conditions to r.
func WithReporter(ctx context.Context, r Reporter) context.Context {
	return context.WithValue(ctx, reporterKey{}, r)
}

// reporterFrom returns ctx's Reporter, or one that drops everything.
func reporterFrom(ctx context.Context) Reporter {
	if r, ok := ctx.Value(reporterKey{}).(Reporter); ok && r != nil {
		return r
	}
	return discardReporter{}
}

type discardReporter struct{}

func (discardReporter) Event(string, string)                   {}
func (discardReporter) Condition(string, bool, string, string) {}
