package memory_test

import (
	"errors"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	apierrors "k8s.io/apimachinery/pkg/api/errors"

	"github.com/letsbe/sysadmin-agent/api/store"
	"github.com/letsbe/sysadmin-agent/api/store/memory"
	agentv1 "github.com/letsbe/sysadmin-agent/api/v1alpha1"
	"github.com/letsbe/sysadmin-agent/internal/testpoll"
)

// gatedPersister records each change handed to it and holds its durability until the gate
// opens.
type gatedPersister struct {
	gate      chan struct{}
	persisted chan store.Event
}

func (g gatedPersister) Persist(ev store.Event) func() error {
	g.persisted <- ev
	return func() error { <-g.gate; return nil }
}

func receive[T any](t *testing.T, ch <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(20 * time.Second):
		t.Fatalf("no %s", what)
		panic("unreachable")
	}
}

// With a persister, a creation is announced while it becomes durable; any other change only
// once durable; and every write returns only once durable. The first status write of a new
// Task is persisted as its creation: one change, the Task with that status.
func TestMemoryAnnouncesCreationsBeforeDurableOtherChangesAfter(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	p := gatedPersister{gate: make(chan struct{}), persisted: make(chan store.Event, 10)}
	m := memory.New(memory.WithPersister(p))
	events := make(chan store.Event, 10)
	m.Subscribe(func(ev store.Event) { events <- ev })

	created := make(chan error, 1)
	go func() { created <- m.Create(ctx, newTask("t-1")) }()
	if ev := receive(t, events, "announcement of the creation"); ev.Type != store.Added || ev.Task.Name != "t-1" {
		t.Fatalf("first event %s %s, want ADDED t-1", ev.Type, ev.Task.Name)
	}
	select {
	case err := <-created:
		t.Fatalf("Create returned (%v) before the creation was durable", err)
	default:
	}

	task, err := m.Get(ctx, "t-1")
	if err != nil {
		t.Fatal(err)
	}
	task.Status.Phase = agentv1.TaskRunning
	updated := make(chan error, 1)
	go func() { updated <- m.UpdateStatus(ctx, task) }()
	if ev := receive(t, p.persisted, "persisted creation"); ev.Type != store.Added || ev.Task.Status.Phase != agentv1.TaskRunning {
		t.Fatalf("change handed to the persister: %s %q, want ADDED Running (the creation with the update)", ev.Type, ev.Task.Status.Phase)
	}
	// The update waits for durability before it is announced: nothing may be heard yet.
	select {
	case ev := <-events:
		t.Fatalf("%s announced before it was durable", ev.Type)
	case err := <-updated:
		t.Fatalf("UpdateStatus returned (%v) before the change was durable", err)
	default:
	}

	close(p.gate)
	if err := receive(t, created, "Create's return"); err != nil {
		t.Fatal(err)
	}
	if err := receive(t, updated, "UpdateStatus's return"); err != nil {
		t.Fatal(err)
	}
	if ev := receive(t, events, "announcement of the update"); ev.Type != store.Modified || ev.Task.Status.Phase != agentv1.TaskRunning {
		t.Fatalf("second event %s %s, want MODIFIED Running", ev.Type, ev.Task.Status.Phase)
	}
	select {
	case ev := <-p.persisted:
		t.Fatalf("another change handed to the persister: %s", ev.Type)
	default:
	}
}

// A creation no status write follows is persisted alone, and Create returns once it is
// durable.
func TestMemoryCreationAlone(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	p := gatedPersister{gate: make(chan struct{}), persisted: make(chan store.Event, 10)}
	close(p.gate)
	m := memory.New(memory.WithPersister(p))
	if err := m.Create(ctx, newTask("t-1")); err != nil {
		t.Fatal(err)
	}
	if ev := receive(t, p.persisted, "persisted creation"); ev.Type != store.Added || ev.Task.Status.Phase != "" {
		t.Fatalf("change handed to the persister: %s %q, want ADDED without status", ev.Type, ev.Task.Status.Phase)
	}
	// A later write is a change of its own.
	if _, err := store.MutateStatus(ctx, m, "t-1", func(t *agentv1.Task) bool { t.Status.Phase = agentv1.TaskRunning; return true }); err != nil {
		t.Fatal(err)
	}
	if ev := receive(t, p.persisted, "persisted update"); ev.Type != store.Modified {
		t.Fatalf("change handed to the persister: %s, want MODIFIED", ev.Type)
	}
	// So is a deletion during a creation: the creation goes first.
	created := make(chan error, 1)
	go func() { created <- m.Create(ctx, newTask("t-2")) }()
	testpoll.Until(t, 20*time.Second, "t-2 stored", func() bool { _, err := m.View(ctx, "t-2"); return err == nil })
	if err := m.Delete(ctx, "t-2"); err != nil {
		t.Fatal(err)
	}
	if err := receive(t, created, "Create's return"); err != nil {
		t.Fatal(err)
	}
	var got []store.EventType
	for range 2 {
		got = append(got, receive(t, p.persisted, "persisted change").Type)
	}
	if diff := cmp.Diff([]store.EventType{store.Added, store.Deleted}, got); diff != "" {
		t.Errorf("persisted (-want +got):\n%s", diff)
	}
}

// failingPersister fails the changes fail selects, and records every change in order.
type failingPersister struct {
	mu   sync.Mutex
	fail func(ev store.Event) error
	// hold, when set, is waited for before a creation's result is returned.
	hold    chan struct{}
	changes []store.EventType
}

func (f *failingPersister) Persist(ev store.Event) func() error {
	f.mu.Lock()
	f.changes = append(f.changes, ev.Type)
	f.mu.Unlock()
	err := f.fail(ev)
	return func() error {
		if ev.Type == store.Added && f.hold != nil {
			<-f.hold
		}
		return err
	}
}

func (f *failingPersister) seen() []store.EventType {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.changes)
}

var errDiskFull = errors.New("write journal: no space left on device")

// A creation that cannot be made durable fails with ErrNotDurable and leaves nothing behind:
// the Task is gone, subscribers that heard of it hear of its deletion, and the deletion is
// persisted too.
func TestMemoryCreateNotDurableKeepsNothing(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	p := &failingPersister{fail: func(ev store.Event) error {
		if ev.Type == store.Added {
			return errDiskFull
		}
		return nil
	}}
	m := memory.New(memory.WithPersister(p))
	var mu sync.Mutex
	var heard []store.EventType
	m.Subscribe(func(ev store.Event) { mu.Lock(); heard = append(heard, ev.Type); mu.Unlock() })

	err := m.Create(ctx, newTask("t-1"))
	if !errors.Is(err, store.ErrNotDurable) || !errors.Is(err, errDiskFull) {
		t.Fatalf("Create = %v, want ErrNotDurable wrapping the persister's error", err)
	}
	if want := "agent cannot persist tasks: write journal: no space left on device"; err.Error() != want {
		t.Errorf("error %q, want %q", err, want)
	}
	if _, err := m.Get(ctx, "t-1"); !apierrors.IsNotFound(err) {
		t.Errorf("Get after a failed create = %v, want NotFound", err)
	}
	if m.Len() != 0 {
		t.Errorf("store holds %d tasks after a failed create", m.Len())
	}
	mu.Lock()
	got := slices.Clone(heard)
	mu.Unlock()
	if diff := cmp.Diff([]store.EventType{store.Added, store.Deleted}, got); diff != "" {
		t.Errorf("subscribers heard (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]store.EventType{store.Added, store.Deleted}, p.seen()); diff != "" {
		t.Errorf("persisted (-want +got):\n%s", diff)
	}
	// The name is free again, and a durable create works.
	p.fail = func(store.Event) error { return nil }
	if err := m.Create(ctx, newTask("t-1")); err != nil {
		t.Fatalf("Create after recovery: %v", err)
	}
}

// A write made while the creation is announced but not durable yet (a controller marking the
// new Task Running) waits for the creation and fails with it: nothing runs on a Task whose
// creation is not durable.
func TestMemoryUpdateWaitsForItsCreation(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	p := &failingPersister{hold: make(chan struct{}), fail: func(ev store.Event) error {
		if ev.Type == store.Added {
			return errDiskFull
		}
		return nil
	}}
	m := memory.New(memory.WithPersister(p))
	added := make(chan struct{}, 1)
	m.Subscribe(func(ev store.Event) {
		if ev.Type == store.Added {
			added <- struct{}{}
		}
	})
	created := make(chan error, 1)
	go func() { created <- m.Create(ctx, newTask("t-1")) }()
	receive(t, added, "announcement of the creation")
	task, err := m.Get(ctx, "t-1")
	if err != nil {
		t.Fatal(err)
	}
	task.Status.Phase = agentv1.TaskRunning
	updated := make(chan error, 1)
	go func() { updated <- m.UpdateStatus(ctx, task) }()
	// The update is handed to the persister as the creation, and cannot return before its
	// outcome is known.
	for len(p.seen()) < 1 {
		runtime.Gosched()
	}
	if diff := cmp.Diff([]store.EventType{store.Added}, p.seen()); diff != "" {
		t.Errorf("persisted (-want +got):\n%s", diff)
	}
	select {
	case err := <-updated:
		t.Fatalf("UpdateStatus returned (%v) before its creation was durable", err)
	default:
	}
	close(p.hold)
	if err := receive(t, created, "Create's return"); !errors.Is(err, store.ErrNotDurable) {
		t.Fatalf("Create = %v, want ErrNotDurable", err)
	}
	if err := receive(t, updated, "UpdateStatus's return"); !errors.Is(err, store.ErrNotDurable) {
		t.Fatalf("UpdateStatus = %v, want ErrNotDurable", err)
	}
	if _, err := m.Get(ctx, "t-1"); !apierrors.IsNotFound(err) {
		t.Errorf("Get = %v, want NotFound", err)
	}
}

// A status change that cannot be made durable fails with ErrNotDurable; the store keeps it and
// announces it (so that a result still reaches the orchestrator; the persister writes it again
// when it can).
func TestMemoryUpdateNotDurable(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	var failing atomic.Bool
	p := &failingPersister{fail: func(ev store.Event) error {
		if failing.Load() {
			return errDiskFull
		}
		return nil
	}}
	m := memory.New(memory.WithPersister(p))
	if err := m.Create(ctx, newTask("t-1")); err != nil {
		t.Fatal(err)
	}
	modified := make(chan agentv1.TaskPhase, 1)
	m.Subscribe(func(ev store.Event) { modified <- ev.Task.Status.Phase })
	failing.Store(true)
	_, err := store.MutateStatus(ctx, m, "t-1", func(t *agentv1.Task) bool {
		t.Status.Phase = agentv1.TaskFailed
		return true
	})
	if !errors.Is(err, store.ErrNotDurable) {
		t.Fatalf("UpdateStatus = %v, want ErrNotDurable", err)
	}
	if got := receive(t, modified, "announcement"); got != agentv1.TaskFailed {
		t.Errorf("announced phase %s, want Failed", got)
	}
	got, err := m.Get(ctx, "t-1")
	if err != nil || got.Status.Phase != agentv1.TaskFailed {
		t.Errorf("Get = %v, %v; want the change kept", got, err)
	}
}
