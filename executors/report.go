package executors

import "context"

// Reporter receives the conditions an executor sets on its running task (Deployment-like
// conditions of the Compose tasks: Progressing, Available, RolledBack). The caller (the
// reconciler) records them on the task; an executor never writes task status itself. Events
// and output go through [Progress].
type Reporter interface {
	// Condition sets a condition of the task: typ (e.g. "Available"), status true or false,
	// a CamelCase reason and a message without secrets.
	Condition(typ string, status bool, reason, message string)
}

type reporterKey struct{}

// WithReporter returns a context under which executors report conditions to r.
func WithReporter(ctx context.Context, r Reporter) context.Context {
	return context.WithValue(ctx, reporterKey{}, r)
}

// ReporterFrom returns ctx's Reporter, or one that drops everything.
func ReporterFrom(ctx context.Context) Reporter {
	if r, ok := ctx.Value(reporterKey{}).(Reporter); ok && r != nil {
		return r
	}
	return discardReporter{}
}

type discardReporter struct{}

func (discardReporter) Condition(string, bool, string, string) {}

// quiet returns ctx without its Progress: for commands whose output is read, not shown
// (docker inspect prints the containers' environment).
func quiet(ctx context.Context) context.Context {
	return WithProgress(ctx, discardProgress{})
}
