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
	agentv1 "github.com/letsbe/sysadmin-agent/api/v1alpha1"
)

func newTask(name string) *agentv1.Task {
	return &agentv1.Task{
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{"a": "b"}},
		Spec:       agentv1.TaskSpec{Type: agentv1.TypeEcho, Payload: &runtime.RawExtension{Raw: []byte(`{"m":1}`)}},
	}
}

func TestMemoryCreateGetDeepCopies(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	m := memory.New()
	in := newTask("t-1")
	if err := m.Create(ctx, in); err != nil {
		t.Fatal(err)
	}
	if in.ResourceVersion == "" || in.UID == "" || in.Generation != 1 || in.CreationTimestamp.IsZero() {
		t.Fatalf("Create did not fill server-set metadata: %+v", in.ObjectMeta)
	}
	// Changing what we passed in or got out must not change the stored object.
	in.Labels["a"] = "changed"
	in.Spec.Payload.Raw[2] = 'X'
	got, err := m.Get(ctx, "t-1")
	if err != nil {
		t.Fatal(err)
	}
	if got.Labels["a"] != "b" || string(got.Spec.Payload.Raw) != `{"m":1}` {
		t.Fatalf("stored object shares memory with the caller's: %+v %s", got.Labels, got.Spec.Payload.Raw)
	}
	got.Labels["a"] = "again"
	again, _ := m.Get(ctx, "t-1")
	if again.Labels["a"] != "b" {
		t.Fatal("Get returned the stored object, not a copy")
	}
	if err := m.Create(ctx, newTask("t-1")); !apierrors.IsAlreadyExists(err) {
		t.Fatalf("second Create: got %v, want AlreadyExists", err)
	}
	if _, err := m.Get(ctx, "nope"); !apierrors.IsNotFound(err) {
		t.Fatalf("Get missing: got %v, want NotFound", err)
	}
	if err := m.Create(ctx, &agentv1.Task{}); !apierrors.IsBadRequest(err) {
		t.Fatalf("Create without name: got %v, want BadRequest", err)
	}
}

func TestMemoryUpdateStatusConflicts(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	m := memory.New()
	if err := m.Create(ctx, newTask("t-1")); err != nil {
		t.Fatal(err)
	}
	a, _ := m.Get(ctx, "t-1")
	b, _ := m.Get(ctx, "t-1")
	a.Status.Phase = agentv1.TaskRunning
	a.Spec.Type = "CHANGED" // spec changes are ignored by a status update
	if err := m.UpdateStatus(ctx, a); err != nil {
		t.Fatal(err)
	}
	b.Status.Phase = agentv1.TaskFailed
	if err := m.UpdateStatus(ctx, b); !apierrors.IsConflict(err) {
		t.Fatalf("stale write: got %v, want Conflict", err)
	}
	got, _ := m.Get(ctx, "t-1")
	if got.Status.Phase != agentv1.TaskRunning || got.Spec.Type != agentv1.TypeEcho {
		t.Fatalf("got phase %q type %q, want Running ECHO", got.Status.Phase, got.Spec.Type)
	}
	if got.ResourceVersion != a.ResourceVersion {
		t.Fatalf("UpdateStatus did not return the new resourceVersion: %s vs %s", a.ResourceVersion, got.ResourceVersion)
	}
	missing := newTask("nope")
	if err := m.UpdateStatus(ctx, missing); !apierrors.IsNotFound(err) {
		t.Fatalf("update missing: got %v, want NotFound", err)
	}
}

func TestMutateStatusRetriesOnConflict(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	m := memory.New()
	if err := m.Create(ctx, newTask("t-1")); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for i := range 50 {
		wg.Go(func() {
			_, err := store.MutateStatus(ctx, m, "t-1", func(t *agentv1.Task) bool {
				t.Status.AddEvent(metav1.Now(), "E", string(rune('a'+i%26)))
				return true
			})
			if err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	got, _ := m.Get(ctx, "t-1")
	if len(got.Status.Events) != agentv1.MaxEvents {
		t.Fatalf("got %d events, want %d (every concurrent write kept, then capped)", len(got.Status.Events), agentv1.MaxEvents)
	}
	if _, err := store.MutateStatus(ctx, m, "nope", func(*agentv1.Task) bool { return true }); !apierrors.IsNotFound(err) {
		t.Fatalf("got %v, want NotFound", err)
	}
}

func TestMemoryNotifications(t *testing.T) {
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

func TestMemoryList(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	m := memory.New()
	for _, n := range []string{"c", "a", "b"} {
		if err := m.Create(ctx, newTask(n)); err != nil {
			t.Fatal(err)
		}
	}
	list, err := m.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, it := range list.Items {
		names = append(names, it.Name)
	}
	if diff := cmp.Diff([]string{"a", "b", "c"}, names); diff != "" {
		t.Fatalf("List order (-want +got):\n%s", diff)
	}
	list.Items[0].Labels["a"] = "changed"
	again, _ := m.Get(ctx, "a")
	if again.Labels["a"] != "b" {
		t.Fatal("List returned shared objects")
	}
	if m.Len() != 3 {
		t.Fatalf("Len = %d, want 3", m.Len())
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
