package kube_test

import (
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
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/letsbe/sysadmin-agent/api/store"
	"github.com/letsbe/sysadmin-agent/api/store/kube"
	"github.com/letsbe/sysadmin-agent/api/store/kube/kubetest"
	agentv1 "github.com/letsbe/sysadmin-agent/api/v1alpha1"
)

// waitTimeout bounds every wait for the API server or the informer; generous for a loaded
// machine, never reached when things work.
const waitTimeout = time.Minute

// sameSecond compares times as the API server stores them: to the second.
var sameSecond = cmp.Options{
	cmp.Comparer(func(a, b metav1.Time) bool { return a.Truncate(time.Second).Equal(b.Truncate(time.Second)) }),
	cmp.Comparer(func(a, b *metav1.Time) bool {
		return (a == nil) == (b == nil) && (a == nil || a.Truncate(time.Second).Equal(b.Truncate(time.Second)))
	}),
}

func newTask(id string) *agentv1.Task {
	return &agentv1.Task{
		ObjectMeta: metav1.ObjectMeta{Name: id, Labels: map[string]string{"a": "b"}},
		Spec:       agentv1.TaskSpec{Type: agentv1.TypeEcho, Payload: &runtime.RawExtension{Raw: []byte(`{"m":1}`)}},
	}
}

func TestCreateGetDeepCopies(t *testing.T) {
	t.Parallel()
	env := kubetest.Get(t)
	ctx := t.Context()
	st := env.NewStore(t, env.Namespace(t))

	in := newTask("t-1")
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
	if got.TaskID() != "t-1" || got.Annotations[agentv1.AnnotationTaskID] != "t-1" {
		t.Fatalf("task id = %q, annotations %v", got.TaskID(), got.Annotations)
	}

	tests := []struct {
		name string
		err  error
		is   func(error) bool
	}{
		{"create existing", st.Create(ctx, newTask("t-1")), apierrors.IsAlreadyExists},
		{"get missing", second(st.Get(ctx, "nope")), apierrors.IsNotFound},
		{"get empty name", second(st.Get(ctx, "")), apierrors.IsNotFound},
		{"create without name", st.Create(ctx, &agentv1.Task{}), apierrors.IsBadRequest},
		{"create with resourceVersion", st.Create(ctx, &agentv1.Task{ObjectMeta: metav1.ObjectMeta{Name: "x", ResourceVersion: "7"}}), apierrors.IsBadRequest},
		{"delete missing", st.Delete(ctx, "nope"), apierrors.IsNotFound},
		{"update missing", st.UpdateStatus(ctx, &agentv1.Task{ObjectMeta: metav1.ObjectMeta{Name: "nope", ResourceVersion: "1"}}), apierrors.IsNotFound},
		{"update missing unconditionally", st.UpdateStatus(ctx, newTask("nope")), apierrors.IsNotFound},
	}
	for _, tc := range tests {
		if !tc.is(tc.err) {
			t.Errorf("%s: got %v", tc.name, tc.err)
		}
	}
	// Errors name the Task by its id, as the in-memory store does.
	if err := st.Create(ctx, newTask("t-1")); err == nil || !strings.Contains(err.Error(), `"t-1"`) {
		t.Errorf("AlreadyExists error %q does not name the task", err)
	}
}

func second[T any](_ T, err error) error { return err }

func TestCreateWritesInitialStatus(t *testing.T) {
	t.Parallel()
	env := kubetest.Get(t)
	ctx := t.Context()
	st := env.NewStore(t, env.Namespace(t))
	now := metav1.NewTime(time.Now().UTC().Truncate(time.Second))

	pending := newTask("pending")
	pending.Status.MarkPending(now, 1)
	refused := newTask("refused")
	refused.Spec.Type = "NOPE"
	refused.Status.MarkPending(now, 1)
	refused.Status.MarkFailed(now, 1, agentv1.ReasonUnsupportedType, `unsupported task type "NOPE"`)
	none := newTask("none")

	for _, task := range []*agentv1.Task{pending, refused, none} {
		want := task.Status.DeepCopy()
		if err := st.Create(ctx, task); err != nil {
			t.Fatalf("create %s: %v", task.Name, err)
		}
		got, err := st.Get(ctx, task.Name)
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(*want, got.Status, sameSecond); diff != "" {
			t.Errorf("%s: stored status differs (-want +got):\n%s", task.Name, diff)
		}
		if got.ResourceVersion != task.ResourceVersion {
			t.Errorf("%s: Create returned resourceVersion %s, stored is %s", task.Name, task.ResourceVersion, got.ResourceVersion)
		}
	}
}

func TestNamesAreMappedTransparently(t *testing.T) {
	t.Parallel()
	env := kubetest.Get(t)
	ctx := t.Context()
	ns := env.Namespace(t)
	st := env.NewStore(t, ns)

	ids := []string{"b-plain", "A_Upper/1", "a_upper/1", "Zz"}
	for _, id := range ids {
		if err := st.Create(ctx, newTask(id)); err != nil {
			t.Fatalf("create %q: %v", id, err)
		}
	}
	for _, id := range ids {
		got, err := st.Get(ctx, id)
		if err != nil {
			t.Fatalf("get %q: %v", id, err)
		}
		if got.Name != id || got.TaskID() != id {
			t.Errorf("get %q: name %q, task id %q", id, got.Name, got.TaskID())
		}
		// What kubectl sees: the DNS-safe name, with the id in the annotation.
		obj := &agentv1.Task{}
		if err := env.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: kube.ObjectName(id)}, obj); err != nil {
			t.Fatalf("object of %q: %v", id, err)
		}
		if obj.Annotations[agentv1.AnnotationTaskID] != id {
			t.Errorf("object %s: annotations %v", obj.Name, obj.Annotations)
		}
	}

	// An object made by hand without the annotation is named by its object name; one whose
	// annotation names another id is not found under its object name.
	for name, annotations := range map[string]map[string]string{
		"by-hand": nil,
		"squat":   {agentv1.AnnotationTaskID: "Other"},
	} {
		obj := newTask(name)
		obj.Namespace, obj.Annotations = ns, annotations
		if err := env.Client.Create(ctx, obj); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := st.Get(ctx, "by-hand"); err != nil {
		t.Errorf("get by-hand: %v", err)
	}
	if _, err := st.Get(ctx, "squat"); !apierrors.IsNotFound(err) {
		t.Errorf("get squat: got %v, want NotFound", err)
	}
	if err := st.Delete(ctx, "squat"); !apierrors.IsNotFound(err) {
		t.Errorf("delete squat: got %v, want NotFound", err)
	}

	list, err := st.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, task := range list.Items {
		names = append(names, task.Name)
	}
	want := []string{"A_Upper/1", "Other", "Zz", "a_upper/1", "b-plain", "by-hand"}
	if diff := cmp.Diff(want, names); diff != "" {
		t.Errorf("List names (-want +got):\n%s", diff)
	}

	if err := st.Delete(ctx, "A_Upper/1"); err != nil {
		t.Fatal(err)
	}
	if _, err := st.Get(ctx, "A_Upper/1"); !apierrors.IsNotFound(err) {
		t.Fatalf("get after delete: got %v, want NotFound", err)
	}
	if _, err := st.Get(ctx, "a_upper/1"); err != nil {
		t.Fatalf("deleting one id removed another: %v", err)
	}
}

func TestUpdateStatusConflicts(t *testing.T) {
	t.Parallel()
	env := kubetest.Get(t)
	ctx := t.Context()
	st := env.NewStore(t, env.Namespace(t))
	if err := st.Create(ctx, newTask("T-1")); err != nil {
		t.Fatal(err)
	}
	a, _ := st.Get(ctx, "T-1")
	b, _ := st.Get(ctx, "T-1")
	a.Status.Phase = agentv1.TaskRunning
	a.Spec.Type = "CHANGED"   // spec changes are ignored by a status update
	a.Labels["a"] = "changed" // and so are metadata changes
	if err := st.UpdateStatus(ctx, a); err != nil {
		t.Fatal(err)
	}
	if a.Name != "T-1" {
		t.Fatalf("UpdateStatus renamed the caller's task to %q", a.Name)
	}
	b.Status.Phase = agentv1.TaskFailed
	if err := st.UpdateStatus(ctx, b); !apierrors.IsConflict(err) {
		t.Fatalf("stale write: got %v, want Conflict", err)
	}
	got, _ := st.Get(ctx, "T-1")
	if got.Status.Phase != agentv1.TaskRunning || got.Spec.Type != agentv1.TypeEcho || got.Labels["a"] != "b" {
		t.Fatalf("got phase %q type %q labels %v, want Running ECHO a=b", got.Status.Phase, got.Spec.Type, got.Labels)
	}
	if got.ResourceVersion != a.ResourceVersion {
		t.Fatalf("UpdateStatus did not return the new resourceVersion: %s vs %s", a.ResourceVersion, got.ResourceVersion)
	}

	// A phase the CRD does not allow is refused by the API server.
	got.Status.Phase = "Sleeping"
	if err := st.UpdateStatus(ctx, got); !apierrors.IsInvalid(err) {
		t.Fatalf("bad phase: got %v, want Invalid", err)
	}

	// An empty resourceVersion writes whatever is stored.
	blind := newTask("T-1")
	blind.Status.Phase = agentv1.TaskSucceeded
	if err := st.UpdateStatus(ctx, blind); err != nil {
		t.Fatal(err)
	}
	if got, _ := st.Get(ctx, "T-1"); got.Status.Phase != agentv1.TaskSucceeded || got.ResourceVersion != blind.ResourceVersion {
		t.Fatalf("unconditional write: phase %q rv %s (returned %s)", got.Status.Phase, got.ResourceVersion, blind.ResourceVersion)
	}
}

func TestMutateStatusRetriesOnConflict(t *testing.T) {
	t.Parallel()
	env := kubetest.Get(t)
	ctx := t.Context()
	st := env.NewStore(t, env.Namespace(t))
	if err := st.Create(ctx, newTask("t-1")); err != nil {
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

func TestMissingNamespaceIsNotATaskNotFound(t *testing.T) {
	t.Parallel()
	env := kubetest.Get(t)
	st := env.NewStore(t, "no-such-namespace")
	err := st.Create(t.Context(), newTask("t-1"))
	if err == nil || !strings.Contains(err.Error(), "namespaces") {
		t.Fatalf("got %v, want the API server's error about the namespace", err)
	}
}

// recorder collects a subscriber's events.
type recorder struct {
	mu     sync.Mutex
	events []string
	wake   chan struct{}
}

func subscribe(t *testing.T, n store.Notifier) *recorder {
	r := &recorder{wake: make(chan struct{}, 1)}
	unsubscribe := n.Subscribe(func(ev store.Event) {
		r.mu.Lock()
		r.events = append(r.events, fmt.Sprintf("%s %s %s", ev.Type, ev.Task.Name, ev.Task.Status.Phase))
		r.mu.Unlock()
		select {
		case r.wake <- struct{}{}:
		default:
		}
	})
	t.Cleanup(unsubscribe)
	return r
}

// waitFor waits until the recorded events contain want, in order, and returns them all.
func (r *recorder) waitFor(t *testing.T, want ...string) []string {
	t.Helper()
	timeout := time.After(waitTimeout)
	for {
		r.mu.Lock()
		got := append([]string(nil), r.events...)
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

func TestNotifications(t *testing.T) {
	t.Parallel()
	env := kubetest.Get(t)
	ctx := t.Context()
	st := env.NewStore(t, env.Namespace(t))

	if err := st.Create(ctx, newTask("before")); err != nil {
		t.Fatal(err)
	}
	rec := subscribe(t, st)
	// A new subscriber hears of the Tasks already there.
	rec.waitFor(t, "ADDED before ")
	// Every subscriber gets its own copies: this one's scribbles reach no one else.
	t.Cleanup(st.Subscribe(func(ev store.Event) {
		ev.Task.Name = "scribbled"
		ev.Task.Status.Phase = "scribbled"
	}))
	// An unsubscribed handler hears nothing more.
	var mu sync.Mutex
	var gone []string
	st.Subscribe(func(ev store.Event) {
		mu.Lock()
		defer mu.Unlock()
		gone = append(gone, ev.Task.Name)
	})()

	task := newTask("Task_1")
	task.Status.MarkPending(metav1.Now(), 1)
	if err := st.Create(ctx, task); err != nil {
		t.Fatal(err)
	}
	task.Status.Phase = agentv1.TaskRunning
	if err := st.UpdateStatus(ctx, task); err != nil {
		t.Fatal(err)
	}
	if err := st.Delete(ctx, "Task_1"); err != nil {
		t.Fatal(err)
	}
	// The first event has the status already, unless the informer was slower than Create.
	got := rec.waitFor(t, "MODIFIED Task_1 Running", "DELETED Task_1 Running")
	var mine []string
	for _, ev := range got {
		if strings.Contains(ev, " Task_1 ") {
			mine = append(mine, ev)
		}
		if strings.Contains(ev, "scribbled") || strings.Contains(ev, kube.ObjectName("Task_1")) {
			t.Errorf("event %q: want the task id and the stored phase", ev)
		}
	}
	want := []string{"ADDED Task_1 Pending", "MODIFIED Task_1 Running", "DELETED Task_1 Running"}
	if late := []string{"ADDED Task_1 ", "MODIFIED Task_1 Pending", "MODIFIED Task_1 Running", "DELETED Task_1 Running"}; slices.Equal(mine, late) {
		want = late
	}
	if diff := cmp.Diff(want, mine); diff != "" {
		t.Errorf("events of Task_1 (-want +got):\n%s", diff)
	}
	mu.Lock()
	defer mu.Unlock()
	if slices.Contains(gone, "Task_1") {
		t.Errorf("an unsubscribed handler heard of later changes: %q", gone)
	}
}

// TestNotificationsFromOtherWriters: changes made outside the store (kubectl, another replica)
// are announced too.
func TestNotificationsFromOtherWriters(t *testing.T) {
	t.Parallel()
	env := kubetest.Get(t)
	ctx := t.Context()
	ns := env.Namespace(t)
	st := env.NewStore(t, ns)
	rec := subscribe(t, st)
	other := env.NewStore(t, ns)
	if err := other.Create(ctx, newTask("Elsewhere")); err != nil {
		t.Fatal(err)
	}
	rec.waitFor(t, "ADDED Elsewhere ")
}
