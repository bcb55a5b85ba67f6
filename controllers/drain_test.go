package controllers_test

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/letsbe/sysadmin-agent/api/store"
	"github.com/letsbe/sysadmin-agent/api/store/memory"
	agentv1 "github.com/letsbe/sysadmin-agent/api/v1alpha1"
	"github.com/letsbe/sysadmin-agent/controllers"
	"github.com/letsbe/sysadmin-agent/controllers/controllertest"
	"github.com/letsbe/sysadmin-agent/internal/testpoll"
)

// countingStore counts List calls.
type countingStore struct {
	store.Store
	lists atomic.Int64
}

func (c *countingStore) List(ctx context.Context) (*agentv1.TaskList, error) {
	c.lists.Add(1)
	return c.Store.List(ctx)
}

// TestWaitIdleFollowsNotifications: WaitIdle lists once and then only after changes (never
// on a timer), returns when CancelPending has failed every unfinished Task, and returns false
// when its context ends first.
func TestWaitIdleFollowsNotifications(t *testing.T) {
	t.Parallel()
	mem := memory.New()
	counting := &countingStore{Store: mem}
	controllertest.CreatePending(t, mem, "t-1", "ECHO", "", 0)
	controllertest.CreatePending(t, mem, "t-2", "ECHO", "", 0)

	done := make(chan bool, 1)
	go func() { done <- controllers.WaitIdle(t.Context(), counting, mem) }()
	testpoll.Until(t, 10*time.Second, "WaitIdle's first List", func() bool { return counting.lists.Load() > 0 })
	// Nothing changes: WaitIdle must not list again while it waits.
	select {
	case <-done:
		t.Fatal("WaitIdle returned with two unfinished Tasks")
	case <-time.After(200 * time.Millisecond):
	}
	if n := counting.lists.Load(); n != 1 {
		t.Errorf("WaitIdle listed %d times while nothing changed, want 1", n)
	}
	controllers.CancelPending(t.Context(), mem, controllers.NewRegistry(), controllers.ErrShuttingDown)
	if !<-done {
		t.Fatal("WaitIdle = false after every Task was cancelled")
	}
	// One List at the start, at most one per change after it (two cancellations).
	if n := counting.lists.Load(); n > 3 {
		t.Errorf("WaitIdle listed %d times for two changes, want at most 3", n)
	}
	for _, name := range []string{"t-1", "t-2"} {
		task, err := mem.Get(t.Context(), name)
		if err != nil || task.Status.Phase != agentv1.TaskFailed {
			t.Errorf("%s after CancelPending: %v %v, want Failed", name, task.Status.Phase, err)
		}
	}

	controllertest.CreatePending(t, mem, "t-3", "ECHO", "", 0)
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if controllers.WaitIdle(ctx, mem, mem) {
		t.Error("WaitIdle = true with an unfinished Task and an ended context")
	}
}
