package storetest

import (
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/letsbe/sysadmin-agent/api/store"
	agentv1 "github.com/letsbe/sysadmin-agent/api/v1alpha1"
)

// StackStore is a Stack store with notifications, the seam RunStacks proves.
type StackStore interface {
	store.StackStore
	store.StackNotifier
}

// NewStack returns a Stack as the agent makes it: named by StackName of project, a spec with
// the project, a compose path and revision 1, a label, and no status.
func NewStack(project string) *agentv1.Stack {
	return &agentv1.Stack{
		ObjectMeta: metav1.ObjectMeta{Name: agentv1.StackName(project), Labels: map[string]string{"a": "b"}},
		Spec:       agentv1.StackSpec{Project: project, ComposePath: "/opt/letsbe/" + project + "/compose.yml", Revision: 1},
	}
}

// RunStacks proves a StackStore implementation as Run proves a Store: newStore returns an
// empty store of its own for each subtest.
func RunStacks(t *testing.T, newStore func(t *testing.T) StackStore) {
	t.Helper()
	runScenarios(t, newStore, []scenario[StackStore]{
		{"CreateGetDeepCopies", testStackCreateGetDeepCopies},
		{"Errors", testStackErrors},
		{"UpdateSpecAndStatus", testStackUpdates},
		{"MutateRetriesOnConflict", testStackMutateRetriesOnConflict},
		{"ListAndDelete", func(t *testing.T, st StackStore) { testListAndDelete(t, st, NewStack) }},
		{"Notifications", testStackNotifications},
	})
}

func testStackCreateGetDeepCopies(t *testing.T, st StackStore) {
	ctx := t.Context()
	in := NewStack("app")
	in.Status.DegradedServices = []string{"given at create"}
	if err := st.Create(ctx, in); err != nil {
		t.Fatal(err)
	}
	if in.Name != "app" || in.ResourceVersion == "" || in.UID == "" || in.Generation != 1 || in.CreationTimestamp.IsZero() {
		t.Fatalf("Create did not fill server-set metadata: %+v", in.ObjectMeta)
	}
	in.Labels["a"] = "changed"
	got, err := st.Get(ctx, "app")
	if err != nil {
		t.Fatal(err)
	}
	if got.Labels["a"] != "b" {
		t.Fatalf("stored object shares memory with the caller's: %v", got.Labels)
	}
	if diff := cmp.Diff(NewStack("app").Spec, got.Spec); diff != "" {
		t.Errorf("spec (-want +got):\n%s", diff)
	}
	if got.Status.DegradedServices != nil {
		t.Errorf("Create stored a status: %+v", got.Status)
	}
	got.Labels["a"] = "again"
	if again, _ := st.Get(ctx, "app"); again.Labels["a"] != "b" {
		t.Fatal("Get returned the stored object, not a copy")
	}
	// A project that is no object name is stored under its derived name.
	odd := NewStack("my_app")
	if err := st.Create(ctx, odd); err != nil {
		t.Fatal(err)
	}
	if got, err := st.Get(ctx, agentv1.StackName("my_app")); err != nil || got.Spec.Project != "my_app" {
		t.Fatalf("Get by derived name: %v, %+v", err, got)
	}
}

func testStackErrors(t *testing.T, st StackStore) {
	ctx := t.Context()
	if err := st.Create(ctx, NewStack("app")); err != nil {
		t.Fatal(err)
	}
	missing := NewStack("nope")
	missing.ResourceVersion = "1"
	tests := []struct {
		name string
		err  error
		is   func(error) bool
	}{
		{"create existing", st.Create(ctx, NewStack("app")), apierrors.IsAlreadyExists},
		{"get missing", second(st.Get(ctx, "nope")), apierrors.IsNotFound},
		{"get empty name", second(st.Get(ctx, "")), apierrors.IsNotFound},
		{"create without name", st.Create(ctx, &agentv1.Stack{}), apierrors.IsBadRequest},
		{"create with resourceVersion", st.Create(ctx, &agentv1.Stack{ObjectMeta: metav1.ObjectMeta{Name: "x", ResourceVersion: "7"}}), apierrors.IsBadRequest},
		{"delete missing", st.Delete(ctx, "nope"), apierrors.IsNotFound},
		{"update missing", st.Update(ctx, missing.DeepCopy()), apierrors.IsNotFound},
		{"update missing unconditionally", st.Update(ctx, NewStack("nope")), apierrors.IsNotFound},
		{"update status missing", st.UpdateStatus(ctx, missing.DeepCopy()), apierrors.IsNotFound},
		{"update status missing unconditionally", st.UpdateStatus(ctx, NewStack("nope")), apierrors.IsNotFound},
		{"mutate missing", second(store.MutateStack(ctx, st, "nope", st.Update, func(*agentv1.Stack) bool { return true })), apierrors.IsNotFound},
	}
	for _, tc := range tests {
		if !tc.is(tc.err) {
			t.Errorf("%s: got %v", tc.name, tc.err)
		}
	}
	if err := st.Create(ctx, NewStack("app")); err == nil || !strings.Contains(err.Error(), `"app"`) {
		t.Errorf("AlreadyExists error %q does not name the stack", err)
	}
}

func testStackUpdates(t *testing.T, st StackStore) {
	ctx := t.Context()
	if err := st.Create(ctx, NewStack("app")); err != nil {
		t.Fatal(err)
	}
	a, _ := st.Get(ctx, "app")
	b, _ := st.Get(ctx, "app")

	// A status write changes the status only.
	now := metav1.NewTime(time.Now().UTC().Truncate(time.Second))
	a.Status.SetObserved(now, a.Generation, []agentv1.StackService{{Name: "web", State: "running"}}, nil, nil, nil)
	a.Spec.Revision = 99
	a.Labels["a"] = "changed"
	if err := st.UpdateStatus(ctx, a); err != nil {
		t.Fatal(err)
	}
	got, _ := st.Get(ctx, "app")
	if got.Spec.Revision != 1 || got.Labels["a"] != "b" || got.Generation != 1 || !got.IsAvailable() || len(got.Status.Services) != 1 {
		t.Fatalf("after a status write: generation %d, spec %+v, labels %v, status %+v", got.Generation, got.Spec, got.Labels, got.Status)
	}
	if got.ResourceVersion != a.ResourceVersion {
		t.Fatalf("UpdateStatus did not return the new resourceVersion: %s vs %s", a.ResourceVersion, got.ResourceVersion)
	}
	// A stale write conflicts.
	b.Spec.Revision = 2
	if err := st.Update(ctx, b); !apierrors.IsConflict(err) {
		t.Fatalf("stale spec write: got %v, want Conflict", err)
	}
	if err := st.UpdateStatus(ctx, b); !apierrors.IsConflict(err) {
		t.Fatalf("stale status write: got %v, want Conflict", err)
	}

	// A spec write changes the spec (and labels) only, and a changed spec bumps the
	// generation.
	got.Spec.Revision = 2
	got.Status = agentv1.StackStatus{}
	if err := st.Update(ctx, got); err != nil {
		t.Fatal(err)
	}
	if got.Generation != 2 {
		t.Fatalf("Update returned generation %d, want 2", got.Generation)
	}
	again, _ := st.Get(ctx, "app")
	if again.Spec.Revision != 2 || again.Generation != 2 || !again.IsAvailable() || again.ResourceVersion != got.ResourceVersion {
		t.Fatalf("after a spec write: generation %d, rv %s (returned %s), spec %+v, status %+v",
			again.Generation, again.ResourceVersion, got.ResourceVersion, again.Spec, again.Status)
	}
	// The same spec again keeps the generation.
	if err := st.Update(ctx, again); err != nil {
		t.Fatal(err)
	}
	if again.Generation != 2 {
		t.Fatalf("an unchanged spec bumped the generation to %d", again.Generation)
	}
	// Empty resourceVersions write whatever is stored.
	blind := NewStack("app")
	blind.Spec.Revision = 3
	if err := st.Update(ctx, blind); err != nil {
		t.Fatal(err)
	}
	blind.Status.SetObservationFailed(now, 3, "docker is gone")
	blind.ResourceVersion = ""
	if err := st.UpdateStatus(ctx, blind); err != nil {
		t.Fatal(err)
	}
	final, _ := st.Get(ctx, "app")
	if final.Spec.Revision != 3 || final.Generation != 3 || final.IsAvailable() || final.ResourceVersion != blind.ResourceVersion {
		t.Fatalf("unconditional writes: generation %d, rv %s (returned %s), spec %+v, status %+v",
			final.Generation, final.ResourceVersion, blind.ResourceVersion, final.Spec, final.Status)
	}
}

func testStackMutateRetriesOnConflict(t *testing.T, st StackStore) {
	ctx := t.Context()
	if err := st.Create(ctx, NewStack("app")); err != nil {
		t.Fatal(err)
	}
	const writers = 10
	var wg sync.WaitGroup
	for i := range writers {
		wg.Go(func() {
			_, err := store.MutateStack(ctx, st, "app", st.UpdateStatus, func(s *agentv1.Stack) bool {
				s.Status.Drift = append(s.Status.Drift, fmt.Sprint(i))
				return true
			})
			if err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	got, _ := st.Get(ctx, "app")
	if len(got.Status.Drift) != writers {
		t.Fatalf("got %d entries, want %d (every concurrent write kept)", len(got.Status.Drift), writers)
	}
	// mutate returning false writes nothing.
	before := got.ResourceVersion
	got, err := store.MutateStack(ctx, st, "app", st.Update, func(*agentv1.Stack) bool { return false })
	if err != nil || got.ResourceVersion != before {
		t.Fatalf("a declined mutation wrote: %v, rv %s -> %s", err, before, got.ResourceVersion)
	}
}

func testStackNotifications(t *testing.T, st StackStore) {
	ctx := t.Context()
	rec := newRecorder()
	t.Cleanup(st.Subscribe(func(ev store.StackEvent) {
		rec.record(fmt.Sprintf("%s %s %d %d", ev.Type, ev.Stack.Name, ev.Stack.Spec.Revision, len(ev.Stack.Status.DegradedServices)))
	}))
	var mu sync.Mutex
	var gone []string
	st.Subscribe(func(ev store.StackEvent) {
		mu.Lock()
		defer mu.Unlock()
		gone = append(gone, ev.Stack.Name)
	})()

	stack := NewStack("app")
	if err := st.Create(ctx, stack); err != nil {
		t.Fatal(err)
	}
	stack.Spec.Revision = 2
	if err := st.Update(ctx, stack); err != nil {
		t.Fatal(err)
	}
	stack.Status.DegradedServices = []string{"web"}
	if err := st.UpdateStatus(ctx, stack); err != nil {
		t.Fatal(err)
	}
	if err := st.Delete(ctx, "app"); err != nil {
		t.Fatal(err)
	}
	want := []string{"ADDED app 1 0", "MODIFIED app 2 0", "MODIFIED app 2 1", "DELETED app 2 1"}
	got := rec.waitFor(t, want...)
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("events (-want +got):\n%s", diff)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(gone) > 0 {
		t.Errorf("an unsubscribed handler heard of later changes: %q", gone)
	}
}
