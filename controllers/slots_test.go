package controllers_test

import (
	"context"
	"encoding/json"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/letsbe/sysadmin-agent/api/store/memory"
	"github.com/letsbe/sysadmin-agent/controllers"
	"github.com/letsbe/sysadmin-agent/controllers/controllertest"
	"github.com/letsbe/sysadmin-agent/executors"
)

// TestMaxConcurrentTasksIsOneLimit: with 3 workers per type and MaxConcurrentTasks 2, at most
// two Tasks of two types execute at once, and all of them complete.
func TestMaxConcurrentTasksIsOneLimit(t *testing.T) {
	t.Parallel()
	mem := memory.New()
	var running, peak atomic.Int32
	exec := controllertest.Func(func(ctx context.Context, _ json.RawMessage) (any, error) {
		n := running.Add(1)
		defer running.Add(-1)
		for {
			p := peak.Load()
			if n <= p || peak.CompareAndSwap(p, n) {
				break
			}
		}
		select {
		case <-time.After(20 * time.Millisecond): // long enough for the others to pile up
		case <-ctx.Done():
		}
		return "ok", nil
	})
	r, err := controllers.NewRunner(controllers.Options{
		Store: mem, Notifier: mem, Executors: map[string]executors.Executor{"A": exec, "B": exec},
		MaxConcurrentReconciles: 3, MaxConcurrentTasks: 2, MaxTimeout: time.Minute,
		Logger: testLogger(t), SkipNameValidation: true,
	})
	if err != nil {
		t.Fatal(err)
	}
	controllertest.Start(t, r.Start)

	var names []string
	for i := range 12 {
		name := fmt.Sprintf("t-%d", i)
		controllertest.CreatePending(t, mem, name, []string{"A", "B"}[i%2], `{}`, 0)
		names = append(names, name)
	}
	for _, name := range names {
		if task := controllertest.WaitFor(t, mem, name, 30*time.Second, controllertest.Final); task.Status.Error != "" {
			t.Errorf("%s: %s", name, task.Status.Error)
		}
	}
	if p := peak.Load(); p != 2 {
		t.Errorf("at most %d Tasks executed at once, want exactly 2 (the limit, reached)", p)
	}
}
