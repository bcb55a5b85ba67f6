package controllers_test

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"github.com/go-logr/logr/funcr"
	"github.com/go-logr/logr/testr"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/letsbe/sysadmin-agent/api/store"
	"github.com/letsbe/sysadmin-agent/api/store/memory"
	agentv1 "github.com/letsbe/sysadmin-agent/api/v1alpha1"
	"github.com/letsbe/sysadmin-agent/controllers"
	"github.com/letsbe/sysadmin-agent/controllers/controllertest"
	"github.com/letsbe/sysadmin-agent/executors"
)

type funcExecutor = controllertest.Func

type harness struct {
	store    controllertest.Store
	registry *controllers.Registry
	observed atomic.Int32
}

// start runs a Runner with the real ECHO and SHELL executors plus extra test types.
func start(t *testing.T, mem controllertest.Store, extra map[string]executors.Executor) *harness {
	return startWith(t, mem, extra, nil)
}

// startWith is start with the process key the reconcilers seal process groups with.
func startWith(t *testing.T, mem controllertest.Store, extra map[string]executors.Executor, processKey []byte) *harness {
	t.Helper()
	shell, err := executors.NewShell(executors.ShellConfig{
		AllowedCommands: []string{"echo", "sleep", "false", "true"},
		Process:         executors.NewProcess(executors.ProcessConfig{KillGrace: 200 * time.Millisecond}),
	})
	if err != nil {
		t.Fatal(err)
	}
	execs := map[string]executors.Executor{agentv1.TypeEcho: executors.NewEcho(), agentv1.TypeShell: shell}
	for k, v := range extra {
		execs[k] = v
	}
	h := &harness{store: mem, registry: controllers.NewRegistry()}
	r, err := controllers.NewRunner(controllers.Options{
		Store: mem, Notifier: mem, Executors: execs,
		MaxConcurrentReconciles: 4,
		MaxTimeout:              time.Minute,
		Logger:                  testLogger(t),
		Registry:                h.registry,
		Observe:                 func(*agentv1.Task, time.Duration) { h.observed.Add(1) },
		ProcessKey:              processKey,
		SkipNameValidation:      true,
	})
	if err != nil {
		t.Fatal(err)
	}
	controllertest.Start(t, r.Start)
	t.Cleanup(func() { h.registry.CancelAll(controllers.ErrShuttingDown) }) // before the Runner stops
	return h
}

// startOne runs a Runner on st (which n notifies of) with one executor, of type typ.
func startOne(t *testing.T, st store.Store, n store.Notifier, typ string, exec executors.Executor) {
	t.Helper()
	r, err := controllers.NewRunner(controllers.Options{
		Store: st, Notifier: n,
		Executors:          map[string]executors.Executor{typ: exec},
		MaxTimeout:         time.Minute,
		Logger:             testLogger(t),
		SkipNameValidation: true,
	})
	if err != nil {
		t.Fatal(err)
	}
	controllertest.Start(t, r.Start)
}

func testLogger(t *testing.T) logr.Logger {
	return testr.NewWithOptions(t, testr.Options{Verbosity: 1})
}

func create(t *testing.T, s store.Store, name, typ, payload string, timeout time.Duration) {
	t.Helper()
	controllertest.CreatePending(t, s, name, typ, payload, timeout)
}

func waitFor(t *testing.T, m controllertest.Store, id string, pred func(*agentv1.Task) bool) *agentv1.Task {
	t.Helper()
	return controllertest.WaitFor(t, m, id, time.Minute, pred)
}

var final = controllertest.Final

func condition(task *agentv1.Task, typ string) metav1.Condition {
	for _, c := range task.Status.Conditions {
		if c.Type == typ {
			return c
		}
	}
	return metav1.Condition{}
}

// sizeLimitedStore refuses statuses whose result is larger than limit, as an API server
// refuses objects over its size limit.
type sizeLimitedStore struct {
	*memory.Store
	limit int
}

func (s sizeLimitedStore) UpdateStatus(ctx context.Context, t *agentv1.Task) error {
	if t.Status.Result != nil && len(t.Status.Result.Raw) > s.limit {
		return apierrors.NewRequestEntityTooLargeError("limit is 100 bytes")
	}
	return s.Store.UpdateStatus(ctx, t)
}

// MutateStatus applies the same limit to the memory store's in-place writes (store.InPlace).
func (s sizeLimitedStore) MutateStatus(ctx context.Context, name string, mutate func(*agentv1.Task) bool) (*agentv1.Task, error) {
	var refused error
	t, err := s.Store.MutateStatus(ctx, name, func(t *agentv1.Task) bool {
		if !mutate(t) {
			return false
		}
		if t.Status.Result != nil && len(t.Status.Result.Raw) > s.limit {
			refused = apierrors.NewRequestEntityTooLargeError("limit is 100 bytes")
			return false
		}
		return true
	})
	if refused != nil {
		return nil, refused
	}
	return t, err
}

func TestResultTooLargeForTheStoreIsDroppedNotLost(t *testing.T) {
	t.Parallel()
	mem := memory.New()
	big := funcExecutor(func(context.Context, json.RawMessage) (any, error) {
		return map[string]string{"stdout": strings.Repeat("x", 500)}, nil
	})
	startOne(t, sizeLimitedStore{mem, 100}, mem, "BIG", big)

	create(t, mem, "big", "BIG", `{}`, 0)
	got := waitFor(t, mem, "big", final)
	if got.Status.Phase != agentv1.TaskSucceeded || got.Status.Result != nil {
		t.Fatalf("phase %s, result %v: want Succeeded without the result", got.Status.Phase, got.Status.Result)
	}
	var noted bool
	for _, e := range got.Status.Events {
		noted = noted || strings.Contains(e.Message, "result of 513 bytes dropped")
	}
	if !noted {
		t.Errorf("no event says the result was dropped: %+v", got.Status.Events)
	}
}

// finalFails refuses the first fails final-status writes, as an API server that cannot be
// reached for a while would.
type finalFails struct {
	*memory.Store
	fails atomic.Int32
}

func (s *finalFails) MutateStatus(ctx context.Context, name string, mutate func(*agentv1.Task) bool) (*agentv1.Task, error) {
	var refused bool
	t, err := s.Store.MutateStatus(ctx, name, func(t *agentv1.Task) bool {
		if !mutate(t) {
			return false
		}
		if t.Status.Phase.IsFinal() && s.fails.Add(-1) >= 0 {
			refused = true
			return false
		}
		return true
	})
	if refused {
		return nil, apierrors.NewServiceUnavailable("the API server is restarting")
	}
	return t, err
}

// A final status that cannot be written is retried with the execution's own outcome, not
// taken for a Task the agent stopped in (Running, no worker): the result survives, and the
// executor runs once.
func TestUnwrittenFinalStatusIsRetriedWithItsOutcome(t *testing.T) {
	t.Parallel()
	mem := memory.New()
	st := &finalFails{Store: mem}
	st.fails.Store(2)
	var runs atomic.Int32
	once := funcExecutor(func(context.Context, json.RawMessage) (any, error) {
		runs.Add(1)
		return map[string]string{"answer": "42"}, nil
	})
	startOne(t, st, mem, "ONCE", once)

	create(t, mem, "t-1", "ONCE", `{}`, 0)
	got := waitFor(t, mem, "t-1", final)
	if got.Status.Phase != agentv1.TaskSucceeded || got.Status.Result == nil || string(got.Status.Result.Raw) != `{"answer":"42"}` {
		t.Errorf("phase %s, error %q, result %v: want Succeeded with the executor's result", got.Status.Phase, got.Status.Error, got.Status.Result)
	}
	if n := runs.Load(); n != 1 {
		t.Errorf("the executor ran %d times, want 1", n)
	}
	if n := st.fails.Load(); n >= 0 {
		t.Errorf("%d refusals left: the final write was not retried", n+1)
	}
}

// runningFails is a persister that cannot make a Running status durable (the disk filled up
// between the Task's creation and its start).
type runningFails struct{}

var errNoSpace = errors.New("write journal.db: no space left on device")

func (runningFails) Persist(ev store.Event) func() error {
	if ev.Task.Status.Phase == agentv1.TaskRunning {
		return func() error { return errNoSpace }
	}
	return func() error { return nil }
}

// A Task whose Running status cannot be made durable is never run: created durably before
// the controllers started, it ends FAILED saying the agent cannot persist tasks; created while
// they run, its Running status is written as its creation, and neither is kept.
func TestNotDurableRunningIsNeverRun(t *testing.T) {
	t.Parallel()
	mem := memory.New(memory.WithPersister(runningFails{}))
	var ran atomic.Bool
	observed := map[string]executors.Executor{"OBSERVED": funcExecutor(func(context.Context, json.RawMessage) (any, error) {
		ran.Store(true)
		return nil, nil
	})}
	create(t, mem, "t-1", "OBSERVED", `{}`, 0)
	start(t, mem, observed)
	got := waitFor(t, mem, "t-1", final)
	if want := "agent cannot persist tasks: " + errNoSpace.Error(); got.Status.Phase != agentv1.TaskFailed || got.Status.Error != want {
		t.Errorf("phase %s, error %q; want Failed, %q", got.Status.Phase, got.Status.Error, want)
	}

	task := &agentv1.Task{
		ObjectMeta: metav1.ObjectMeta{Name: "t-2"},
		Spec:       agentv1.TaskSpec{TaskID: "t-2", Type: "OBSERVED", Payload: &runtime.RawExtension{Raw: []byte(`{}`)}},
	}
	if err := mem.Create(t.Context(), task); !errors.Is(err, store.ErrNotDurable) {
		t.Errorf("Create of a Task whose Running status cannot be made durable = %v, want ErrNotDurable", err)
	}
	if _, err := mem.Get(t.Context(), "t-2"); !apierrors.IsNotFound(err) {
		t.Errorf("Get of the Task whose creation failed = %v, want NotFound", err)
	}
	if ran.Load() {
		t.Error("the executor ran although the Running status was not durable")
	}
}

// An executor that ignores its context cannot hold its worker: the watchdog fails the Task
// after the stop grace (timeout or cancellation, "executor did not stop") and the next Task of
// the same type, on the only worker, runs.
func TestStuckExecutorIsFailedAndFreesTheWorker(t *testing.T) {
	t.Parallel()
	mem := memory.New()
	release := make(chan struct{})
	released := sync.OnceFunc(func() { close(release) })
	t.Cleanup(released)
	// The log, through t.Log, and a signal per "returned at last" line: the test waits for both
	// left-behind executors to return and be logged, so nothing writes to t after it ended.
	returnedLate := make(chan struct{}, 2)
	logger := funcr.New(func(prefix, args string) {
		t.Log(prefix, args)
		if strings.Contains(args, "Stuck executor returned at last") {
			returnedLate <- struct{}{}
		}
	}, funcr.Options{Verbosity: 1})
	stuck := funcExecutor(func(_ context.Context, p json.RawMessage) (any, error) {
		if string(p) == `{"quick":true}` {
			return map[string]bool{"ran": true}, nil
		}
		<-release // ignores its context
		return nil, nil
	})
	registry := controllers.NewRegistry()
	r, err := controllers.NewRunner(controllers.Options{
		Store: mem, Notifier: mem, Executors: map[string]executors.Executor{"STUCK": stuck},
		MaxConcurrentReconciles: 1,
		MaxTimeout:              time.Minute,
		StopGrace:               100 * time.Millisecond,
		Logger:                  logger,
		Registry:                registry,
		SkipNameValidation:      true,
	})
	if err != nil {
		t.Fatal(err)
	}
	controllertest.Start(t, r.Start)

	create(t, mem, "timeout", "STUCK", `{}`, 200*time.Millisecond)
	got := waitFor(t, mem, "timeout", final)
	if c := condition(got, agentv1.ConditionReady); c.Reason != agentv1.ReasonTimedOut || got.Status.Error != "timed out after 200ms: executor did not stop" {
		t.Errorf("timed out task: reason %q, error %q", c.Reason, got.Status.Error)
	}

	create(t, mem, "cancel", "STUCK", `{}`, 0)
	waitFor(t, mem, "cancel", func(t *agentv1.Task) bool { return t.Status.Phase == agentv1.TaskRunning })
	if found, err := controllers.Cancel(t.Context(), mem, registry, "cancel", controllers.ErrCancelled); err != nil || !found {
		t.Fatalf("Cancel = %v, %v", found, err)
	}
	got = waitFor(t, mem, "cancel", final)
	if c := condition(got, agentv1.ConditionReady); c.Reason != agentv1.ReasonCancelled || got.Status.Error != "cancelled: executor did not stop" {
		t.Errorf("cancelled task: reason %q, error %q", c.Reason, got.Status.Error)
	}

	create(t, mem, "next", "STUCK", `{"quick":true}`, 0)
	if got := waitFor(t, mem, "next", final); got.Status.Phase != agentv1.TaskSucceeded {
		t.Errorf("the next task on the freed worker: %s %q", got.Status.Phase, got.Status.Error)
	}

	released()
	for range 2 {
		select {
		case <-returnedLate:
		case <-time.After(time.Minute):
			t.Fatal("a left-behind executor returned, but no \"Stuck executor returned at last\" line was logged")
		}
	}
}

// The conditions an executor reports while it runs are on the Task, next to Ready.
func TestExecutorConditions(t *testing.T) {
	t.Parallel()
	mem := memory.New()
	deploy := funcExecutor(func(ctx context.Context, _ json.RawMessage) (any, error) {
		rep := executors.ReporterFrom(ctx)
		rep.Condition(agentv1.ConditionProgressing, true, "Deploying", "deploying revision 2")
		rep.Condition(agentv1.ConditionAvailable, false, "Unhealthy", "service web is unhealthy")
		rep.Condition(agentv1.ConditionRolledBack, true, "RolledBack", "rolled back to revision 1, which is healthy")
		rep.Condition(agentv1.ConditionProgressing, false, "Failed", "deploy failed and was rolled back")
		return nil, errors.New("service web is unhealthy; rolled back to revision 1, which is healthy")
	})
	start(t, mem, map[string]executors.Executor{"DEPLOY": deploy})
	create(t, mem, "d", "DEPLOY", `{}`, 0)
	got := waitFor(t, mem, "d", final)
	for _, want := range []struct {
		typ    string
		status metav1.ConditionStatus
		reason string
	}{
		{agentv1.ConditionProgressing, metav1.ConditionFalse, "Failed"},
		{agentv1.ConditionAvailable, metav1.ConditionFalse, "Unhealthy"},
		{agentv1.ConditionRolledBack, metav1.ConditionTrue, "RolledBack"},
		{agentv1.ConditionReady, metav1.ConditionFalse, agentv1.ReasonFailed},
	} {
		if c := condition(got, want.typ); c.Status != want.status || c.Reason != want.reason {
			t.Errorf("condition %s = %s %s, want %s %s", want.typ, c.Status, c.Reason, want.status, want.reason)
		}
	}
}
