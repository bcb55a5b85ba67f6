package controllers_test

import (
	"strconv"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"github.com/go-logr/logr/funcr"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/letsbe/sysadmin-agent/api/store"
	"github.com/letsbe/sysadmin-agent/api/store/memory"
	agentv1 "github.com/letsbe/sysadmin-agent/api/v1alpha1"
	"github.com/letsbe/sysadmin-agent/controllers"
	"github.com/letsbe/sysadmin-agent/controllers/controllertest"
	"github.com/letsbe/sysadmin-agent/executors"
)

func benchTask(name string) *agentv1.Task {
	task := &agentv1.Task{
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{agentv1.LabelTaskType: agentv1.TypeEcho}},
		Spec: agentv1.TaskSpec{
			Type:    agentv1.TypeEcho,
			Payload: &runtime.RawExtension{Raw: []byte(`{"message":"hello"}`)},
		},
	}
	task.Status.MarkPending(metav1.Now(), 1)
	return task
}

// BenchmarkReconcileEcho measures one full reconcile of a Pending ECHO Task on the in-memory
// store: read, mark Running, execute, write the final status (with its re-read), plus the
// Task's create and delete around it.
func BenchmarkReconcileEcho(b *testing.B) {
	mem := memory.New()
	mem.Subscribe(func(store.Event) {}) // the agent always has subscribers
	rec := &controllers.TaskReconciler{
		Type: agentv1.TypeEcho, Executor: executors.NewEcho(), Store: mem,
		Registry: controllers.NewRegistry(), MaxTimeout: time.Minute,
	}
	ctx := ctrl.LoggerInto(b.Context(), logr.Discard())
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		i++
		name := "t-" + strconv.Itoa(i)
		if err := mem.Create(ctx, benchTask(name)); err != nil {
			b.Fatal(err)
		}
		if _, err := rec.Reconcile(ctx, reconcile.Request{NamespacedName: types.NamespacedName{Name: name}}); err != nil {
			b.Fatal(err)
		}
		if err := mem.Delete(ctx, name); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkRunnerEcho measures a Task's way through the controller-runtime machinery: create a
// Pending ECHO Task, wait for the store's notification of its final status. One at a time, so
// it is the latency of the store → workqueue → reconcile → store path.
func BenchmarkRunnerEcho(b *testing.B) {
	mem := memory.New()
	final := make(chan string, 1)
	mem.Subscribe(func(ev store.Event) {
		if ev.Type == store.Modified && ev.Task.Status.Phase.IsFinal() {
			final <- ev.Task.Name
		}
	})
	r, err := controllers.NewRunner(controllers.Options{
		Store: mem, Notifier: mem,
		Executors:               map[string]executors.Executor{agentv1.TypeEcho: executors.NewEcho()},
		MaxConcurrentReconciles: 1, MaxTimeout: time.Minute,
		Logger: funcr.New(func(string, string) {}, funcr.Options{}), SkipNameValidation: true,
	})
	if err != nil {
		b.Fatal(err)
	}
	ctx := controllertest.Start(b, r.Start)
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		i++
		name := "t-" + strconv.Itoa(i)
		if err := mem.Create(ctx, benchTask(name)); err != nil {
			b.Fatal(err)
		}
		if got := <-final; got != name {
			b.Fatalf("final status of %s, want %s", got, name)
		}
		if err := mem.Delete(ctx, name); err != nil {
			b.Fatal(err)
		}
	}
}
