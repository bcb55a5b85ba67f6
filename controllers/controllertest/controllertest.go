// Package controllertest holds test helpers for the Task reconcilers that work over any store
// (in memory, or on an API server): a function-backed executor, running a controller until the
// test ends, creating a pending Task, and waiting (woken by the store's notifications) until a
// Task reaches a state. It is for tests only.
package controllertest

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/letsbe/sysadmin-agent/api/store"
	agentv1 "github.com/letsbe/sysadmin-agent/api/v1alpha1"
)

// Func adapts a function to executors.Executor.
type Func func(ctx context.Context, payload json.RawMessage) (any, error)

// Execute implements executors.Executor.
func (f Func) Execute(ctx context.Context, p json.RawMessage) (any, error) { return f(ctx, p) }

// Store is a Task store with notifications.
type Store interface {
	store.Store
	store.Notifier
}

// Start runs start (a Runner's, a collector's or a manager's Start) in a goroutine of its own
// until the test ends, then cancels its context, waits for it to return and fails the test if
// it returned an error. It returns start's context.
func Start(t testing.TB, start func(context.Context) error) context.Context {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- start(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Start: %v", err)
		}
	})
	return ctx
}

// CreatePending creates a new Task with the orchestrator's task id id, as intake does: named
// by agentv1.TaskName(id), without status. An empty payload leaves it unset; a zero timeout
// leaves the agent's maximum. It returns the Task's name.
func CreatePending(t testing.TB, s store.Store, id, typ, payload string, timeout time.Duration) string {
	t.Helper()
	task := &agentv1.Task{
		ObjectMeta: metav1.ObjectMeta{Name: agentv1.TaskName(id)},
		Spec:       agentv1.TaskSpec{TaskID: id, Type: typ},
	}
	if payload != "" {
		task.Spec.Payload = &runtime.RawExtension{Raw: []byte(payload)}
	}
	if timeout > 0 {
		task.Spec.Timeout = &metav1.Duration{Duration: timeout}
	}
	if err := s.Create(t.Context(), task); err != nil {
		t.Fatal(err)
	}
	return task.Name
}

// WaitFor waits, woken by the store's notifications, until the Task with the orchestrator's
// id id satisfies pred, and returns it; it fails the test after timeout.
func WaitFor(t testing.TB, s Store, id string, timeout time.Duration, pred func(*agentv1.Task) bool) *agentv1.Task {
	t.Helper()
	name := agentv1.TaskName(id)
	wake := make(chan struct{}, 1)
	defer s.Subscribe(func(ev store.Event) {
		if ev.Task.Name == name {
			select {
			case wake <- struct{}{}:
			default:
			}
		}
	})()
	ctx, cancel := context.WithTimeout(t.Context(), timeout)
	defer cancel()
	for {
		task, err := s.Get(ctx, name)
		if err == nil && pred(task) {
			return task
		}
		select {
		case <-wake:
		case <-ctx.Done():
			t.Fatalf("task %s: condition not reached; last %+v (%v)", name, task, err)
			return nil
		}
	}
}

// Final reports whether the Task reached a final phase.
func Final(t *agentv1.Task) bool { return t.Status.Phase.IsFinal() }
