package controllers_test

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/go-logr/logr/testr"
	"github.com/google/go-cmp/cmp"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/letsbe/sysadmin-agent/api/store"
	"github.com/letsbe/sysadmin-agent/api/store/memory"
	agentv1 "github.com/letsbe/sysadmin-agent/api/v1alpha1"
	"github.com/letsbe/sysadmin-agent/controllers"
	"github.com/letsbe/sysadmin-agent/controllers/controllertest"
)

func TestTaskCollector(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)
	at := func(ago time.Duration) metav1.Time { return metav1.NewTime(now.Add(-ago)) }
	mem := memory.New()
	ctx := t.Context()
	add := func(name string, mutate func(s *agentv1.TaskStatus)) {
		t.Helper()
		task := &agentv1.Task{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: agentv1.TaskSpec{Type: agentv1.TypeEcho}}
		task.Status.MarkPending(at(3*time.Hour), 1)
		mutate(&task.Status)
		if err := mem.Create(ctx, task); err != nil {
			t.Fatal(err)
		}
	}
	add("pending", func(*agentv1.TaskStatus) {})
	add("running", func(s *agentv1.TaskStatus) { s.MarkRunning(at(2*time.Hour), 1) })
	add("failed-unreported", func(s *agentv1.TaskStatus) { s.MarkFailed(at(2*time.Hour), 1, agentv1.ReasonFailed, "boom") })
	add("reported-long-ago", func(s *agentv1.TaskStatus) {
		s.MarkSucceeded(at(2*time.Hour), 1)
		s.MarkReported(at(2*time.Hour), false, "")
	})
	add("rejected-long-ago", func(s *agentv1.TaskStatus) {
		s.MarkFailed(at(2*time.Hour), 1, agentv1.ReasonFailed, "boom")
		s.MarkReported(at(90*time.Minute), true, "409")
	})
	add("finished-long-ago-reported-lately", func(s *agentv1.TaskStatus) {
		s.MarkSucceeded(at(2*time.Hour), 1)
		s.MarkReported(at(10*time.Minute), false, "")
	})
	add("reported-no-time", func(s *agentv1.TaskStatus) {
		s.MarkSucceeded(at(2*time.Hour), 1)
		s.MarkReported(at(0), false, "")
		s.Report.ReportedAt = nil // an older status: the completion time counts
	})

	c := &controllers.TaskCollector{Store: mem, Retention: time.Hour, Now: func() time.Time { return now }}
	n, err := c.Collect(ctx)
	if err != nil || n != 3 {
		t.Fatalf("Collect = %d, %v; want 3 deleted", n, err)
	}
	list, err := mem.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var left []string
	for _, task := range list.Items {
		left = append(left, task.Name)
	}
	slices.Sort(left)
	want := []string{"failed-unreported", "finished-long-ago-reported-lately", "pending", "running"}
	if diff := cmp.Diff(want, left); diff != "" {
		t.Errorf("tasks left (-want +got):\n%s", diff)
	}
	if n, err := c.Collect(ctx); n != 0 || err != nil {
		t.Errorf("second pass = %d, %v; want nothing to do", n, err)
	}
}

// TestTaskCollectorRuns checks the loop: it collects at once and on every tick, and stops
// with its context.
func TestTaskCollectorRuns(t *testing.T) {
	t.Parallel()
	mem := memory.New()
	deleted := make(chan string, 4)
	mem.Subscribe(func(ev store.Event) {
		if ev.Type == store.Deleted {
			deleted <- ev.Task.Name
		}
	})
	old := metav1.NewTime(time.Now().Add(-time.Hour))
	for _, name := range []string{"a", "b"} {
		task := &agentv1.Task{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: agentv1.TaskSpec{Type: agentv1.TypeEcho}}
		task.Status.MarkPending(old, 1)
		task.Status.MarkSucceeded(old, 1)
		task.Status.MarkReported(old, false, "")
		if name == "b" {
			task.Status.MarkReported(metav1.Now(), false, "") // reported just now: kept a while
		}
		if err := mem.Create(t.Context(), task); err != nil {
			t.Fatal(err)
		}
	}
	c := &controllers.TaskCollector{Store: mem, Retention: time.Second, Interval: 50 * time.Millisecond, Logger: testr.New(t)}
	if !c.NeedLeaderElection() {
		t.Error("the collector must run on the leader only")
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- c.Start(ctx) }()
	for _, want := range []string{"a", "b"} {
		if got := <-deleted; got != want {
			t.Errorf("deleted %s, want %s", got, want)
		}
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Start = %v", err)
	}
	if err := (&controllers.TaskCollector{}).Start(t.Context()); err == nil {
		t.Error("a collector without store and retention started")
	}
}

// Both limits: beyond MaxRetained the oldest reported Tasks go too, however recent; Tasks not
// reported yet never count and are never touched.
func TestTaskCollectorKeepsAtMostMaxRetained(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)
	mem := memory.New()
	ctx := t.Context()
	for i := range 6 {
		task := &agentv1.Task{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("r-%d", i)}, Spec: agentv1.TaskSpec{Type: agentv1.TypeEcho}}
		at := metav1.NewTime(now.Add(time.Duration(i-10) * time.Minute))
		task.Status.MarkPending(at, 1)
		task.Status.MarkSucceeded(at, 1)
		task.Status.MarkReported(at, false, "")
		if err := mem.Create(ctx, task); err != nil {
			t.Fatal(err)
		}
	}
	for _, name := range []string{"unreported-1", "unreported-2", "unreported-3"} {
		task := &agentv1.Task{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: agentv1.TaskSpec{Type: agentv1.TypeEcho}}
		task.Status.MarkPending(metav1.NewTime(now.Add(-time.Hour)), 1)
		task.Status.MarkFailed(metav1.NewTime(now.Add(-time.Hour)), 1, agentv1.ReasonFailed, "boom")
		if err := mem.Create(ctx, task); err != nil {
			t.Fatal(err)
		}
	}
	c := &controllers.TaskCollector{Store: mem, Retention: time.Hour, MaxRetained: 2, Now: func() time.Time { return now }}
	if n, err := c.Collect(ctx); n != 4 || err != nil {
		t.Fatalf("Collect = %d, %v; want the 4 oldest reported deleted", n, err)
	}
	list, _ := mem.List(ctx)
	var left []string
	for _, task := range list.Items {
		left = append(left, task.Name)
	}
	want := []string{"r-4", "r-5", "unreported-1", "unreported-2", "unreported-3"}
	if diff := cmp.Diff(want, left); diff != "" {
		t.Errorf("tasks left (-want +got):\n%s", diff)
	}
}

// With a notifier, a burst of reported Tasks is collected without waiting for the interval.
func TestTaskCollectorCollectsABurst(t *testing.T) {
	t.Parallel()
	mem := memory.New()
	deleted := make(chan struct{}, 100)
	mem.Subscribe(func(ev store.Event) {
		if ev.Type == store.Deleted {
			deleted <- struct{}{}
		}
	})
	c := &controllers.TaskCollector{Store: mem, Notifier: mem, Retention: time.Hour, MaxRetained: 10, Interval: time.Hour, Logger: testr.New(t)}
	ctx := controllertest.Start(t, c.Start)
	for i := range 30 {
		name := fmt.Sprintf("t-%02d", i)
		controllertest.CreatePending(t, mem, name, agentv1.TypeEcho, "", 0)
		if _, err := store.MutateStatus(ctx, mem, name, func(x *agentv1.Task) bool {
			x.Status.MarkSucceeded(metav1.Now(), 1)
			x.Status.MarkReported(metav1.Now(), false, "")
			return true
		}); err != nil {
			t.Fatal(err)
		}
	}
	// Every tenth report starts a pass: 10 are left once the last one is done.
	for mem.Len() > 10 {
		select {
		case <-deleted:
		case <-time.After(20 * time.Second):
			t.Fatalf("%d tasks left, want 10", mem.Len())
		}
	}
}
