package agenttest

import (
	"context"
	"testing"
	"time"

	"github.com/letsbe/sysadmin-agent/orchestratorsync/orchestratortest"
)

// WaitTask waits up to timeout until the orchestrator's state of task id satisfies pred,
// woken by the orchestrator's own notifications (no polling), and returns that state. On
// timeout it fails the test naming what was awaited and the last state seen (its payload
// left out: it may be megabytes).
func WaitTask(t testing.TB, o *orchestratortest.Server, id, what string, timeout time.Duration, pred func(orchestratortest.TaskState) bool) orchestratortest.TaskState {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), timeout)
	defer cancel()
	st, err := o.WaitTask(ctx, id, pred)
	if err != nil {
		got, _ := o.Task(id)
		got.Payload = nil
		t.Fatalf("task %s: timed out after %s waiting for %s: %v (state %+v)", id, timeout, what, err, got)
	}
	return st
}
