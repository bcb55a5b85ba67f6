package kube_test

import (
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/letsbe/sysadmin-agent/api/store"
	"github.com/letsbe/sysadmin-agent/api/store/kube/kubetest"
	"github.com/letsbe/sysadmin-agent/api/store/storetest"
	agentv1 "github.com/letsbe/sysadmin-agent/api/v1alpha1"
)

// sameSecond compares times as the API server stores them: to the second.
var sameSecond = cmp.Options{
	cmp.Comparer(func(a, b metav1.Time) bool { return a.Truncate(time.Second).Equal(b.Truncate(time.Second)) }),
	cmp.Comparer(func(a, b *metav1.Time) bool {
		return (a == nil) == (b == nil) && (a == nil || a.Truncate(time.Second).Equal(b.Truncate(time.Second)))
	}),
}

// TestKubeStore: the API-server store passes the store conformance suite, each subtest in a
// namespace of its own.
func TestKubeStore(t *testing.T) {
	t.Parallel()
	env := kubetest.Get(t)
	storetest.Run(t, func(t *testing.T) storetest.Store { return env.NewStore(t, env.Namespace(t)) })
}

// TestCreateIgnoresStatus: the API server keeps no status given at creation (it is a
// subresource); the store does not pretend otherwise.
func TestCreateIgnoresStatus(t *testing.T) {
	t.Parallel()
	env := kubetest.Get(t)
	ctx := t.Context()
	st := env.NewStore(t, env.Namespace(t))
	task := storetest.NewTask("t-1")
	task.Status.MarkRunning(metav1.Now(), 1)
	if err := st.Create(ctx, task); err != nil {
		t.Fatal(err)
	}
	got, err := st.Get(ctx, "t-1")
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(agentv1.TaskStatus{}, got.Status); diff != "" {
		t.Errorf("status after create (-want +got):\n%s", diff)
	}
}

// TestSubscribersGetTheirOwnCopies: a handler that scribbles on its event's Task changes
// nothing another handler sees; a new subscriber first hears of the Tasks already there.
func TestSubscribersGetTheirOwnCopies(t *testing.T) {
	t.Parallel()
	env := kubetest.Get(t)
	ctx := t.Context()
	st := env.NewStore(t, env.Namespace(t))
	if err := st.Create(ctx, storetest.NewTask("before")); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(st.Subscribe(func(ev store.Event) {
		ev.Task.Name = "scribbled"
		ev.Task.Status.Phase = "scribbled"
	}))
	seen := make(chan string, 16)
	t.Cleanup(st.Subscribe(func(ev store.Event) {
		seen <- string(ev.Type) + " " + ev.Task.Name + " " + string(ev.Task.Status.Phase)
	}))
	if got := <-seen; got != "ADDED before " {
		t.Fatalf("first event %q, want ADDED before", got)
	}
}

func TestMissingNamespaceIsNotATaskNotFound(t *testing.T) {
	t.Parallel()
	env := kubetest.Get(t)
	st := env.NewStore(t, "no-such-namespace")
	err := st.Create(t.Context(), storetest.NewTask("t-1"))
	if err == nil || !strings.Contains(err.Error(), "namespaces") {
		t.Fatalf("got %v, want the API server's error about the namespace", err)
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
	seen := make(chan string, 16)
	t.Cleanup(st.Subscribe(func(ev store.Event) { seen <- string(ev.Type) + " " + ev.Task.Name }))
	other := env.NewStore(t, ns)
	if err := other.Create(ctx, storetest.NewTask("elsewhere")); err != nil {
		t.Fatal(err)
	}
	timeout := time.After(storetest.WaitTimeout)
	for {
		select {
		case got := <-seen:
			if got == "ADDED elsewhere" {
				return
			}
		case <-timeout:
			t.Fatal("no ADDED event for a Task created by another writer")
		}
	}
}
