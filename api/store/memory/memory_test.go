package memory_test

import (
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/letsbe/sysadmin-agent/api/store"
	"github.com/letsbe/sysadmin-agent/api/store/memory"
	"github.com/letsbe/sysadmin-agent/api/store/storetest"
	agentv1 "github.com/letsbe/sysadmin-agent/api/v1alpha1"
)

func newTask(name string) *agentv1.Task {
	return &agentv1.Task{
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{"a": "b"}},
		Spec:       agentv1.TaskSpec{Type: agentv1.TypeEcho, Payload: &runtime.RawExtension{Raw: []byte(`{"m":1}`)}},
	}
}

// TestMemoryStore: the memory store passes the store conformance suite.
func TestMemoryStore(t *testing.T) {
	t.Parallel()
	storetest.Run(t, func(*testing.T) storetest.Store { return memory.New() })
}

// TestMemoryNotificationsAreSynchronous: the memory store's handlers run inside the write,
// before it returns.
func TestMemoryNotificationsAreSynchronous(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	m := memory.New()
	type seen struct {
		Type  store.EventType
		Name  string
		Phase agentv1.TaskPhase
	}
	var mu sync.Mutex
	var got []seen
	unsubscribe := m.Subscribe(func(ev store.Event) {
		mu.Lock()
		defer mu.Unlock()
		got = append(got, seen{ev.Type, ev.Task.Name, ev.Task.Status.Phase})
	})
	if err := m.Create(ctx, newTask("t-1")); err != nil {
		t.Fatal(err)
	}
	if _, err := store.MutateStatus(ctx, m, "t-1", func(t *agentv1.Task) bool { t.Status.Phase = agentv1.TaskSucceeded; return true }); err != nil {
		t.Fatal(err)
	}
	if err := m.Delete(ctx, "t-1"); err != nil {
		t.Fatal(err)
	}
	if err := m.Delete(ctx, "t-1"); !apierrors.IsNotFound(err) {
		t.Fatalf("second Delete: got %v, want NotFound", err)
	}
	unsubscribe()
	if err := m.Create(ctx, newTask("t-2")); err != nil {
		t.Fatal(err)
	}
	want := []seen{
		{store.Added, "t-1", ""},
		{store.Modified, "t-1", agentv1.TaskSucceeded},
		{store.Deleted, "t-1", agentv1.TaskSucceeded},
	}
	mu.Lock()
	defer mu.Unlock()
	if diff := cmp.Diff(want, got); diff != "" {
		t.Fatalf("notifications (-want +got):\n%s", diff)
	}
}

func BenchmarkMemoryCreateGetUpdate(b *testing.B) {
	ctx := b.Context()
	m := memory.New()
	m.Subscribe(func(store.Event) {})
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		name := "t-" + string(rune(i%1000)) + string(rune(i/1000))
		i++
		_ = m.Create(ctx, newTask(name))
		t, _ := m.Get(ctx, name)
		t.Status.Phase = agentv1.TaskSucceeded
		_ = m.UpdateStatus(ctx, t)
		_ = m.Delete(ctx, name)
	}
}

// A Task whose final report was accepted keeps no payload and no result: the memory of
// reported Tasks does not depend on their size.
func TestMemoryCompactsReportedTasks(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	m := memory.New()
	task := newTask("t-1")
	if err := m.Create(ctx, task); err != nil {
		t.Fatal(err)
	}
	now := metav1.Now()
	final, err := store.MutateStatus(ctx, m, "t-1", func(t *agentv1.Task) bool {
		t.Status.MarkRunning(now, 1)
		t.Status.Result = &runtime.RawExtension{Raw: []byte(`{"out":"big"}`)}
		t.Status.MarkFailed(now, 1, agentv1.ReasonFailed, "boom")
		return true
	})
	if err != nil {
		t.Fatal(err)
	}
	if final.Spec.Payload == nil || final.Status.Result == nil {
		t.Fatal("an unreported final Task lost its payload or result")
	}
	_, err = store.MutateStatus(ctx, m, "t-1", func(t *agentv1.Task) bool {
		t.Status.MarkReported(now, false, "")
		return true
	})
	if err != nil {
		t.Fatal(err)
	}
	got, _ := m.Get(ctx, "t-1")
	if got.Spec.Payload != nil || got.Status.Result != nil {
		t.Errorf("reported Task keeps payload %v, result %v", got.Spec.Payload, got.Status.Result)
	}
	if got.Spec.Type != agentv1.TypeEcho || got.Status.Phase != agentv1.TaskFailed || got.Status.Error != "boom" ||
		got.Status.StartTime == nil || got.Status.CompletionTime == nil || len(got.Status.Events) == 0 {
		t.Errorf("reported Task lost what inspection needs: %+v", got.Status)
	}
}

// TestMemoryInPlace: a viewed Task stays as it was when the store changes (writes replace the
// stored Task, never change it), MutateStatus changes the status alone, and a mutation that
// says no writes nothing.
func TestMemoryInPlace(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	m := memory.New()
	if err := m.Create(ctx, newTask("t-1")); err != nil {
		t.Fatal(err)
	}
	before, err := store.View(ctx, m, "t-1")
	if err != nil {
		t.Fatal(err)
	}
	rv := before.ResourceVersion
	got, err := store.MutateViewed(ctx, m, before, func(t *agentv1.Task) bool {
		t.Status.MarkPending(metav1.Now(), t.Generation)
		t.Status.MarkRunning(metav1.Now(), t.Generation)
		return true
	})
	if err != nil {
		t.Fatal(err)
	}
	if before.Status.Phase != "" || before.ResourceVersion != rv {
		t.Errorf("the viewed Task changed: phase %q, resourceVersion %s (was %s)", before.Status.Phase, before.ResourceVersion, rv)
	}
	if got.Status.Phase != agentv1.TaskRunning || got.ResourceVersion == rv {
		t.Errorf("MutateStatus returned phase %q, resourceVersion %s", got.Status.Phase, got.ResourceVersion)
	}
	if diff := cmp.Diff(before.Spec, got.Spec); diff != "" {
		t.Errorf("spec changed (-before +after):\n%s", diff)
	}
	same, err := store.MutateStatus(ctx, m, "t-1", func(t *agentv1.Task) bool {
		t.Status.Phase = agentv1.TaskFailed
		return false
	})
	if err != nil {
		t.Fatal(err)
	}
	list, err := store.ViewList(ctx, m)
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 1 || list[0] != got || same != got || got.Status.Phase != agentv1.TaskRunning {
		t.Errorf("a mutation that said no was written: %+v", list)
	}
	if _, err := store.View(ctx, m, "nope"); !apierrors.IsNotFound(err) {
		t.Errorf("View of a missing Task: %v, want NotFound", err)
	}
}

// TestCreateOwnedKeepsTheTask: CreateOwned stores the caller's Task itself, with the metadata
// Create sets, and refuses what Create refuses; Create keeps a copy of its own.
func TestCreateOwnedKeepsTheTask(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	m := memory.New()
	owned := newTask("t-1")
	if err := store.CreateOwned(ctx, m, owned); err != nil {
		t.Fatal(err)
	}
	viewed, err := store.View(ctx, m, "t-1")
	if err != nil {
		t.Fatal(err)
	}
	if viewed != owned {
		t.Error("CreateOwned stored a copy, not the Task handed over")
	}
	if owned.UID == "" || owned.ResourceVersion == "" || owned.Generation != 1 || owned.CreationTimestamp.IsZero() {
		t.Errorf("created metadata not set: %+v", owned.ObjectMeta)
	}
	if err := store.CreateOwned(ctx, m, newTask("t-1")); !apierrors.IsAlreadyExists(err) {
		t.Errorf("CreateOwned of an existing name: %v, want AlreadyExists", err)
	}
	copied := newTask("t-2")
	if err := m.Create(ctx, copied); err != nil {
		t.Fatal(err)
	}
	if viewed, err := store.View(ctx, m, "t-2"); err != nil || viewed == copied {
		t.Errorf("Create stored the caller's Task itself (err %v)", err)
	}
}
