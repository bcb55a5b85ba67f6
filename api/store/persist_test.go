package store_test

import (
	"testing"
	"time"

	"github.com/letsbe/sysadmin-agent/api/store"
	agentv1 "github.com/letsbe/sysadmin-agent/api/v1alpha1"
)

// gatedPersister records each change handed to it and holds its durability until the gate
// opens.
type gatedPersister struct {
	gate      chan struct{}
	persisted chan store.Event
}

func (g gatedPersister) Persist(ev store.Event) func() {
	g.persisted <- ev
	return func() { <-g.gate }
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
// once durable; and every write returns only once durable.
func TestMemoryAnnouncesCreationsBeforeDurableOtherChangesAfter(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	p := gatedPersister{gate: make(chan struct{}), persisted: make(chan store.Event, 10)}
	m := store.NewMemory(store.WithPersister(p))
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
	receive(t, p.persisted, "persisted creation")
	if ev := receive(t, p.persisted, "persisted update"); ev.Type != store.Modified {
		t.Fatalf("second change handed to the persister: %s, want MODIFIED", ev.Type)
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
}
