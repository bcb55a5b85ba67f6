package storetest

import (
	"context"
	"testing"

	"github.com/google/go-cmp/cmp"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
)

// What the Task and the Stack suites share: how a suite runs its scenarios, and the scenarios
// that are the same for both object types.

// scenario is one subtest of a suite over stores of type S.
type scenario[S any] struct {
	name string
	run  func(t *testing.T, st S)
}

// runScenarios runs each scenario as a parallel subtest on a store of its own from newStore.
func runScenarios[S any](t *testing.T, newStore func(t *testing.T) S, scenarios []scenario[S]) {
	t.Helper()
	for _, sc := range scenarios {
		t.Run(sc.name, func(t *testing.T) {
			t.Parallel()
			sc.run(t, newStore(t))
		})
	}
}

// objectStore is what the Task and the Stack suites check alike of their stores: O is
// *agentv1.Task or *agentv1.Stack, L its list.
type objectStore[O metav1.Object, L runtime.Object] interface {
	Get(ctx context.Context, name string) (O, error)
	Create(ctx context.Context, obj O) error
	List(ctx context.Context) (L, error)
	Delete(ctx context.Context, name string) error
}

// testListAndDelete: List returns copies ordered by name, and Delete removes the one object
// named. newObject makes an object of that name (as NewTask, NewStack) labelled a=b.
func testListAndDelete[O metav1.Object, L runtime.Object](t *testing.T, st objectStore[O, L], newObject func(name string) O) {
	ctx := t.Context()
	for _, name := range []string{"c", "a", "b"} {
		if err := st.Create(ctx, newObject(name)); err != nil {
			t.Fatal(err)
		}
	}
	list, err := st.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	items, err := meta.ExtractList(list)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, it := range items {
		names = append(names, it.(metav1.Object).GetName())
	}
	if diff := cmp.Diff([]string{"a", "b", "c"}, names); diff != "" {
		t.Fatalf("List order (-want +got):\n%s", diff)
	}
	items[0].(metav1.Object).GetLabels()["a"] = "changed"
	if again, _ := st.Get(ctx, "a"); again.GetLabels()["a"] != "b" {
		t.Fatal("List returned shared objects")
	}
	if err := st.Delete(ctx, "b"); err != nil {
		t.Fatal(err)
	}
	if _, err := st.Get(ctx, "b"); !apierrors.IsNotFound(err) {
		t.Fatalf("get after delete: got %v, want NotFound", err)
	}
	if _, err := st.Get(ctx, "a"); err != nil {
		t.Fatalf("deleting b removed a: %v", err)
	}
}
