package controllers_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"github.com/go-logr/logr/testr"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	"github.com/letsbe/sysadmin-agent/api/store"
	"github.com/letsbe/sysadmin-agent/api/store/kube"
	"github.com/letsbe/sysadmin-agent/api/store/kube/kubetest"
	agentv1 "github.com/letsbe/sysadmin-agent/api/v1alpha1"
	"github.com/letsbe/sysadmin-agent/controllers"
	"github.com/letsbe/sysadmin-agent/controllers/controllertest"
	"github.com/letsbe/sysadmin-agent/executors"
	"github.com/letsbe/sysadmin-agent/internal/testpoll"
)

// newManager returns a manager (not started) on the test API server, with a cache limited to a
// namespace of its own, and that namespace and the manager's logger.
func newManager(t *testing.T) (ns string, log logr.Logger, mgr ctrl.Manager) {
	t.Helper()
	env := kubetest.Get(t)
	ns = env.Namespace(t)
	log = testr.NewWithOptions(t, testr.Options{Verbosity: 1})
	mgr, err := ctrl.NewManager(env.Config, ctrl.Options{
		Scheme:                 env.Scheme,
		Logger:                 log,
		Cache:                  cache.Options{DefaultNamespaces: map[string]cache.Config{ns: {}}},
		Metrics:                metricsserver.Options{BindAddress: "0"},
		HealthProbeBindAddress: "0",
	})
	if err != nil {
		t.Fatal(err)
	}
	return ns, log, mgr
}

// TestControllersUnderAManager: the reconcilers registered with a controller-runtime manager
// (cluster mode's wiring, SetupWithManager) drive Tasks to completion through the real API
// server, over a cluster store that reads from the API server and a cache limited to one
// namespace; the collector deletes reported Tasks past their retention.
func TestControllersUnderAManager(t *testing.T) {
	t.Parallel()
	ns, log, mgr := newManager(t)
	st, err := kube.New(t.Context(), kube.Options{
		Client: mgr.GetClient(), Reader: mgr.GetAPIReader(), Informers: mgr.GetCache(), Namespace: ns, Logger: log,
	})
	if err != nil {
		t.Fatal(err)
	}
	shell, err := executors.NewShell(executors.ShellConfig{AllowedCommands: []string{"echo"}, Process: executors.NewProcess(executors.ProcessConfig{})})
	if err != nil {
		t.Fatal(err)
	}
	opts := controllers.Options{
		Store: st, Notifier: st,
		Executors:               map[string]executors.Executor{agentv1.TypeEcho: executors.NewEcho(), agentv1.TypeShell: shell},
		MaxConcurrentReconciles: 2, MaxTimeout: time.Minute,
		Registry: controllers.NewRegistry(), SkipNameValidation: true,
	}
	if err := controllers.SetupWithManager(mgr, controllers.Options{Store: st}); err == nil {
		t.Error("SetupWithManager without a Registry succeeded")
	}
	if err := controllers.SetupWithManager(mgr, opts); err != nil {
		t.Fatal(err)
	}
	if err := mgr.Add(&controllers.TaskCollector{Store: st, Retention: time.Second, Interval: 100 * time.Millisecond}); err != nil {
		t.Fatal(err)
	}

	// A Task that exists before the manager starts, and one after; ids that are not object
	// names reach the reconcilers as ids.
	create(t, st, "Before_Start", "ECHO", `{"n":1}`, 0)
	controllertest.Start(t, mgr.Start)
	create(t, st, "After_Start", "SHELL", `{"cmd":"echo hi"}`, 0)
	for _, id := range []string{"Before_Start", "After_Start"} {
		got := waitFor(t, st, id, final)
		if got.Status.Phase != agentv1.TaskSucceeded {
			t.Fatalf("%s: %s %q", id, got.Status.Phase, got.Status.Error)
		}
	}

	// Reported, and past its retention: collected. Unreported: kept.
	reported, err := st.Get(t.Context(), agentv1.TaskName("Before_Start"))
	if err != nil {
		t.Fatal(err)
	}
	reported.Status.MarkReported(reported.Status.CompletionTime.Rfc3339Copy(), false, "")
	if err := st.UpdateStatus(t.Context(), reported); err != nil {
		t.Fatal(err)
	}
	testpoll.UntilNil(t, time.Minute, "the reported task to be collected", func() error {
		if _, err := st.Get(t.Context(), agentv1.TaskName("Before_Start")); !apierrors.IsNotFound(err) {
			return fmt.Errorf("get: %v", err)
		}
		return nil
	})
	if _, err := st.Get(t.Context(), agentv1.TaskName("After_Start")); err != nil {
		t.Errorf("the unreported task: %v, want it kept", err)
	}
}

// TestStackControllerUnderAManager: with Stacks, SetupWithManager registers the Stack
// controller too (For(&Stack{})): a Stack on the API server is observed (here it cannot be:
// nothing is recorded for its project, so its conditions are Unknown with the reason), and
// observed again after its spec changes.
func TestStackControllerUnderAManager(t *testing.T) {
	t.Parallel()
	ns, log, mgr := newManager(t)
	kopts := kube.Options{Client: mgr.GetClient(), Reader: mgr.GetAPIReader(), Informers: mgr.GetCache(), Namespace: ns, Logger: log}
	st, err := kube.New(t.Context(), kopts)
	if err != nil {
		t.Fatal(err)
	}
	stacks, err := kube.NewStackStore(t.Context(), kopts)
	if err != nil {
		t.Fatal(err)
	}
	obs, err := executors.NewStackObserver(executors.DockerReloadConfig{Roots: []string{t.TempDir()}, StateDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	opts := controllers.Options{
		Store: st, Notifier: st, Executors: map[string]executors.Executor{agentv1.TypeEcho: executors.NewEcho()},
		Registry: controllers.NewRegistry(), SkipNameValidation: true,
		Stacks: &controllers.StackOptions{Store: stacks, Notifier: stacks, Observer: obs, RecheckInterval: time.Hour},
	}
	if err := controllers.SetupWithManager(mgr, opts); err != nil {
		t.Fatal(err)
	}
	controllertest.Start(t, mgr.Start)
	stack := &agentv1.Stack{ObjectMeta: metav1.ObjectMeta{Name: "app"}, Spec: agentv1.StackSpec{Project: "app", ComposePath: "/x/compose.yml", Revision: 1}}
	if err := stacks.Create(t.Context(), stack); err != nil {
		t.Fatal(err)
	}
	unknownAt := func(gen int64) func() error {
		return func() error {
			got, err := stacks.Get(t.Context(), "app")
			if err != nil {
				return err
			}
			c := meta.FindStatusCondition(got.Status.Conditions, agentv1.StackConditionAvailable)
			if got.Status.ObservedGeneration != gen || c == nil || c.Status != metav1.ConditionUnknown ||
				c.Reason != agentv1.StackReasonObservationFailed || !strings.Contains(c.Message, "no last known good revision recorded") {
				return fmt.Errorf("status %+v", got.Status)
			}
			return nil
		}
	}
	testpoll.UntilNil(t, time.Minute, "the stack observed", unknownAt(1))
	if _, err := store.MutateStack(t.Context(), stacks, "app", stacks.Update, func(s *agentv1.Stack) bool { s.Spec.Revision = 2; return true }); err != nil {
		t.Fatal(err)
	}
	testpoll.UntilNil(t, time.Minute, "the stack observed after its spec changed (recheck interval: an hour)", unknownAt(2))
}
