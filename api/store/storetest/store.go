package storetest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/letsbe/sysadmin-agent/api/store"
	agentv1 "github.com/letsbe/sysadmin-agent/api/v1alpha1"
)

// Store is a Task store with notifications, the seam Run proves.
type Store interface {
	store.Store
	store.Notifier
}

// WaitTimeout bounds every wait of the suites; generous for a loaded machine (an API server's
// informer), never reached when things work.
const WaitTimeout = time.Minute

// NewTask returns a Task as intake makes it: named by TaskName of id, spec.taskID, a type and
// a payload, a label, and no status.
func NewTask(id string) *agentv1.Task {
	return &agentv1.Task{
		ObjectMeta: metav1.ObjectMeta{Name: agentv1.TaskName(id), Labels: map[string]string{"a": "b"}},
		Spec: agentv1.TaskSpec{TaskID: id, Type: agentv1.TypeEcho,
			Payload: &runtime.RawExtension{Raw: []byte(`{"m":1}`)}},
	}
}

// JSONValue decodes raw JSON keeping numbers exact, to compare JSON a store returned (a
// payload, a result) whatever its key order: the API server stores objects with sorted keys.
func JSONValue(t testing.TB, raw []byte) any {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		t.Fatalf("decode %s: %v", raw, err)
	}
	return v
}

// Run proves a Store implementation: newStore returns an empty store of its own for each
// subtest (one namespace of an API server, a fresh memory store). Every behaviour the
// reconcilers and the sync side rely on is checked the same way against every store.
func Run(t *testing.T, newStore func(t *testing.T) Store) {
	t.Helper()
	runScenarios(t, newStore, []scenario[Store]{
		{"CreateGetDeepCopies", testCreateGetDeepCopies},
		{"Errors", testErrors},
		{"UpdateStatusConflicts", testUpdateStatusConflicts},
		{"MutateStatusRetriesOnConflict", testMutateStatusRetriesOnConflict},
		{"ListAndDelete", func(t *testing.T, st Store) { testListAndDelete(t, st, NewTask) }},
		{"Notifications", testNotifications},
	})
}

func testCreateGetDeepCopies(t *testing.T, st Store) {
	ctx := t.Context()
	in := NewTask("t-1")
	if err := st.Create(ctx, in); err != nil {
		t.Fatal(err)
	}
	if in.Name != "t-1" || in.ResourceVersion == "" || in.UID == "" || in.Generation != 1 || in.CreationTimestamp.IsZero() {
		t.Fatalf("Create did not fill server-set metadata: %+v", in.ObjectMeta)
	}
	// Changing what we passed in or got out must not change the stored object.
	in.Labels["a"] = "changed"
	in.Spec.Payload.Raw[2] = 'X'
	got, err := st.Get(ctx, "t-1")
	if err != nil {
		t.Fatal(err)
	}
	if got.Labels["a"] != "b" || string(got.Spec.Payload.Raw) != `{"m":1}` {
		t.Fatalf("stored object shares memory with the caller's: %+v %s", got.Labels, got.Spec.Payload.Raw)
	}
	got.Labels["a"] = "again"
	if again, _ := st.Get(ctx, "t-1"); again.Labels["a"] != "b" {
		t.Fatal("Get returned the stored object, not a copy")
	}
	if got.TaskID() != "t-1" || got.Spec.TaskID != "t-1" {
		t.Fatalf("task id = %q, spec.taskID %q", got.TaskID(), got.Spec.TaskID)
	}
	// An id that is no object name is stored under its derived name and keeps its id.
	odd := NewTask("Task_7/x")
	if err := st.Create(ctx, odd); err != nil {
		t.Fatal(err)
	}
	got, err = st.Get(ctx, agentv1.TaskName("Task_7/x"))
	if err != nil || got.TaskID() != "Task_7/x" {
		t.Fatalf("Get by derived name: %v, task id %q", err, got.TaskID())
	}
}

func second[T any](_ T, err error) error { return err }

func testErrors(t *testing.T, st Store) {
	ctx := t.Context()
	if err := st.Create(ctx, NewTask("t-1")); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		err  error
		is   func(error) bool
	}{
		{"create existing", st.Create(ctx, NewTask("t-1")), apierrors.IsAlreadyExists},
		{"get missing", second(st.Get(ctx, "nope")), apierrors.IsNotFound},
		{"get empty name", second(st.Get(ctx, "")), apierrors.IsNotFound},
		{"create without name", st.Create(ctx, &agentv1.Task{}), apierrors.IsBadRequest},
		{"create with resourceVersion", st.Create(ctx, &agentv1.Task{ObjectMeta: metav1.ObjectMeta{Name: "x", ResourceVersion: "7"}}), apierrors.IsBadRequest},
		{"delete missing", st.Delete(ctx, "nope"), apierrors.IsNotFound},
		{"update missing", st.UpdateStatus(ctx, &agentv1.Task{ObjectMeta: metav1.ObjectMeta{Name: "nope", ResourceVersion: "1"}}), apierrors.IsNotFound},
		{"update missing unconditionally", st.UpdateStatus(ctx, NewTask("nope")), apierrors.IsNotFound},
		{"mutate missing", second(store.MutateStatus(ctx, st, "nope", func(*agentv1.Task) bool { return true })), apierrors.IsNotFound},
	}
	for _, tc := range tests {
		if !tc.is(tc.err) {
			t.Errorf("%s: got %v", tc.name, tc.err)
		}
	}
	// Errors name the Task.
	if err := st.Create(ctx, NewTask("t-1")); err == nil || !strings.Contains(err.Error(), `"t-1"`) {
		t.Errorf("AlreadyExists error %q does not name the task", err)
	}
}

func testUpdateStatusConflicts(t *testing.T, st Store) {
	ctx := t.Context()
	if err := st.Create(ctx, NewTask("t-1")); err != nil {
		t.Fatal(err)
	}
	a, _ := st.Get(ctx, "t-1")
	b, _ := st.Get(ctx, "t-1")
	a.Status.Phase = agentv1.TaskRunning
	a.Spec.Type = "CHANGED"   // spec changes are ignored by a status update
	a.Labels["a"] = "changed" // and so are metadata changes
	if err := st.UpdateStatus(ctx, a); err != nil {
		t.Fatal(err)
	}
	if a.Name != "t-1" {
		t.Fatalf("UpdateStatus renamed the caller's task to %q", a.Name)
	}
	b.Status.Phase = agentv1.TaskFailed
	if err := st.UpdateStatus(ctx, b); !apierrors.IsConflict(err) {
		t.Fatalf("stale write: got %v, want Conflict", err)
	}
	got, _ := st.Get(ctx, "t-1")
	if got.Status.Phase != agentv1.TaskRunning || got.Spec.Type != agentv1.TypeEcho || got.Labels["a"] != "b" {
		t.Fatalf("got phase %q type %q labels %v, want Running ECHO a=b", got.Status.Phase, got.Spec.Type, got.Labels)
	}
	if got.ResourceVersion != a.ResourceVersion {
		t.Fatalf("UpdateStatus did not return the new resourceVersion: %s vs %s", a.ResourceVersion, got.ResourceVersion)
	}
	// An empty resourceVersion writes whatever is stored.
	blind := NewTask("t-1")
	blind.Status.Phase = agentv1.TaskSucceeded
	if err := st.UpdateStatus(ctx, blind); err != nil {
		t.Fatal(err)
	}
	if got, _ := st.Get(ctx, "t-1"); got.Status.Phase != agentv1.TaskSucceeded || got.ResourceVersion != blind.ResourceVersion {
		t.Fatalf("unconditional write: phase %q rv %s (returned %s)", got.Status.Phase, got.ResourceVersion, blind.ResourceVersion)
	}
}

func testMutateStatusRetriesOnConflict(t *testing.T, st Store) {
	ctx := t.Context()
	if err := st.Create(ctx, NewTask("t-1")); err != nil {
		t.Fatal(err)
	}
	const writers = 10 // each conflict means another writer won, so none retries more than 9 times
	var wg sync.WaitGroup
	for i := range writers {
		wg.Go(func() {
			_, err := store.MutateStatus(ctx, st, "t-1", func(t *agentv1.Task) bool {
				t.Status.AddEvent(metav1.Now(), "E", fmt.Sprint(i))
				return true
			})
			if err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	got, _ := st.Get(ctx, "t-1")
	if len(got.Status.Events) != writers {
		t.Fatalf("got %d events, want %d (every concurrent write kept)", len(got.Status.Events), writers)
	}
}

// recorder collects a subscriber's events, each as a line.
type recorder struct {
	mu     sync.Mutex
	events []string
	wake   chan struct{}
}

func newRecorder() *recorder { return &recorder{wake: make(chan struct{}, 1)} }

// record adds an event and wakes waitFor.
func (r *recorder) record(event string) {
	r.mu.Lock()
	r.events = append(r.events, event)
	r.mu.Unlock()
	select {
	case r.wake <- struct{}{}:
	default:
	}
}

func subscribe(t *testing.T, n store.Notifier) *recorder {
	r := newRecorder()
	t.Cleanup(n.Subscribe(func(ev store.Event) {
		r.record(fmt.Sprintf("%s %s %s", ev.Type, ev.Task.Name, ev.Task.Status.Phase))
	}))
	return r
}

// waitFor waits until the recorded events contain want, in order, and returns them all.
func (r *recorder) waitFor(t *testing.T, want ...string) []string {
	t.Helper()
	timeout := time.After(WaitTimeout)
	for {
		r.mu.Lock()
		got := slices.Clone(r.events)
		r.mu.Unlock()
		if containsInOrder(got, want) {
			return got
		}
		select {
		case <-r.wake:
		case <-timeout:
			t.Fatalf("events %q do not contain %q in order", got, want)
		}
	}
}

func containsInOrder(got, want []string) bool {
	i := 0
	for _, g := range got {
		if i < len(want) && g == want[i] {
			i++
		}
	}
	return i == len(want)
}

func testNotifications(t *testing.T, st Store) {
	ctx := t.Context()
	rec := subscribe(t, st)
	// An unsubscribed handler hears nothing more.
	var mu sync.Mutex
	var gone []string
	st.Subscribe(func(ev store.Event) {
		mu.Lock()
		defer mu.Unlock()
		gone = append(gone, ev.Task.Name)
	})()

	task := NewTask("t-1")
	if err := st.Create(ctx, task); err != nil {
		t.Fatal(err)
	}
	task.Status.Phase = agentv1.TaskRunning
	if err := st.UpdateStatus(ctx, task); err != nil {
		t.Fatal(err)
	}
	if err := st.Delete(ctx, "t-1"); err != nil {
		t.Fatal(err)
	}
	got := rec.waitFor(t, "ADDED t-1 ", "MODIFIED t-1 Running", "DELETED t-1 Running")
	if diff := cmp.Diff([]string{"ADDED t-1 ", "MODIFIED t-1 Running", "DELETED t-1 Running"}, got); diff != "" {
		t.Errorf("events (-want +got):\n%s", diff)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(gone) > 0 {
		t.Errorf("an unsubscribed handler heard of later changes: %q", gone)
	}
}
