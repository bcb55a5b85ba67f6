package controllers_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/letsbe/sysadmin-agent/api/store/kube/kubetest"
	"github.com/letsbe/sysadmin-agent/api/store/memory"
	"github.com/letsbe/sysadmin-agent/api/store/storetest"
	agentv1 "github.com/letsbe/sysadmin-agent/api/v1alpha1"
	"github.com/letsbe/sysadmin-agent/controllers"
	"github.com/letsbe/sysadmin-agent/controllers/controllertest"
	"github.com/letsbe/sysadmin-agent/executors"
	"github.com/letsbe/sysadmin-agent/internal/testpoll"
)

// The reconciler scenarios run, unchanged, against every store: the in-memory one of plain
// servers and the API-server one of cluster mode (a real kube-apiserver, envtest). Each
// scenario gets a store of its own (a fresh memory store, a fresh namespace).

func TestScenariosInMemory(t *testing.T) {
	t.Parallel()
	runScenarios(t, func(*testing.T) controllertest.Store { return memory.New() })
}

func TestScenariosOnTheAPIServer(t *testing.T) {
	t.Parallel()
	env := kubetest.Get(t)
	runScenarios(t, func(t *testing.T) controllertest.Store { return env.NewStore(t, env.Namespace(t)) })
}

func runScenarios(t *testing.T, newStore func(t *testing.T) controllertest.Store) {
	scenarios := []struct {
		name string
		run  func(t *testing.T, st controllertest.Store)
	}{
		{"Outcomes", scenarioOutcomes},
		{"ShellResult", scenarioShellResult},
		{"InterruptedIsFailedNotRerun", scenarioInterrupted},
		{"CancelRunningAndPending", scenarioCancel},
		{"ManyTasks", scenarioManyTasks},
		{"UnsupportedType", scenarioUnsupportedType},
		{"ForeignProcessIsLeftAlone", scenarioForeignProcess},
	}
	for _, sc := range scenarios {
		t.Run(sc.name, func(t *testing.T) {
			t.Parallel()
			sc.run(t, newStore(t))
		})
	}
}

// createWithStatus creates task and then writes its status, as a Task found by a restarted
// agent (or written by hand) has one: the API server keeps no status given at creation.
func createWithStatus(t *testing.T, st controllertest.Store, task *agentv1.Task) {
	t.Helper()
	status := task.Status.DeepCopy()
	task.Status = agentv1.TaskStatus{}
	if err := st.Create(t.Context(), task); err != nil {
		t.Fatal(err)
	}
	task.Status = *status
	if err := st.UpdateStatus(t.Context(), task); err != nil {
		t.Fatal(err)
	}
}

func newTask(id, typ string) *agentv1.Task {
	return &agentv1.Task{
		ObjectMeta: metav1.ObjectMeta{Name: agentv1.TaskName(id)},
		Spec:       agentv1.TaskSpec{TaskID: id, Type: typ},
	}
}

func scenarioOutcomes(t *testing.T, st controllertest.Store) {
	panicky := funcExecutor(func(context.Context, json.RawMessage) (any, error) { panic("boom") })
	slow := funcExecutor(func(ctx context.Context, _ json.RawMessage) (any, error) {
		<-ctx.Done()
		return nil, ctx.Err()
	})
	wrapping := funcExecutor(func(ctx context.Context, _ json.RawMessage) (any, error) {
		<-ctx.Done()
		return nil, fmt.Errorf("step 2 (click \"#go\"): %w", ctx.Err())
	})
	failing := funcExecutor(func(context.Context, json.RawMessage) (any, error) {
		return map[string]int{"partial": 1}, errors.New("disk on fire")
	})
	start(t, st, map[string]executors.Executor{"PANIC": panicky, "SLOW": slow, "FAIL": failing, "WRAP": wrapping})

	tests := []struct {
		id, typ, payload string
		timeout          time.Duration
		wantPhase        agentv1.TaskPhase
		wantReason       string
		wantErr          string // substring
		wantResult       string // JSON, when set
	}{
		{id: "Echo_1", typ: "ECHO", payload: `{"message":"hi","n":[1,2]}`, wantPhase: agentv1.TaskSucceeded, wantReason: agentv1.ReasonSucceeded, wantResult: `{"message":"hi","n":[1,2]}`},
		{id: "echo-array", typ: "ECHO", payload: `[1]`, wantPhase: agentv1.TaskFailed, wantReason: agentv1.ReasonInvalidSpec, wantErr: "invalid payload"},
		{id: "echo-none", typ: "ECHO", wantPhase: agentv1.TaskFailed, wantReason: agentv1.ReasonInvalidSpec, wantErr: "invalid payload"},
		{id: "shell-ok", typ: "SHELL", payload: `{"cmd":"echo hello world"}`, wantPhase: agentv1.TaskSucceeded, wantReason: agentv1.ReasonSucceeded},
		{id: "shell-exit", typ: "SHELL", payload: `{"cmd":"false"}`, wantPhase: agentv1.TaskFailed, wantReason: agentv1.ReasonFailed, wantErr: "exit status 1"},
		{id: "shell-refused", typ: "SHELL", payload: `{"cmd":"rm -rf /"}`, wantPhase: agentv1.TaskFailed, wantReason: agentv1.ReasonInvalidSpec, wantErr: `"rm" is not allowed`},
		{id: "shell-pipe", typ: "SHELL", payload: `{"cmd":"echo a | sh"}`, wantPhase: agentv1.TaskFailed, wantReason: agentv1.ReasonInvalidSpec, wantErr: "pipe"},
		{id: "shell-timeout", typ: "SHELL", payload: `{"cmd":"sleep 30"}`, timeout: 300 * time.Millisecond, wantPhase: agentv1.TaskFailed, wantReason: agentv1.ReasonTimedOut, wantErr: "timed out after 300ms"},
		{id: "panic", typ: "PANIC", payload: `{}`, wantPhase: agentv1.TaskFailed, wantReason: agentv1.ReasonPanicked, wantErr: "executor panicked: boom"},
		{id: "slow-timeout", typ: "SLOW", payload: `{}`, timeout: 200 * time.Millisecond, wantPhase: agentv1.TaskFailed, wantReason: agentv1.ReasonTimedOut, wantErr: "timed out after 200ms"},
		{id: "wrap-timeout", typ: "WRAP", payload: `{}`, timeout: 200 * time.Millisecond, wantPhase: agentv1.TaskFailed, wantReason: agentv1.ReasonTimedOut, wantErr: `timed out after 200ms: step 2 (click "#go"): context deadline exceeded`},
		{id: "fail", typ: "FAIL", payload: `{}`, wantPhase: agentv1.TaskFailed, wantReason: agentv1.ReasonFailed, wantErr: "disk on fire", wantResult: `{"partial":1}`},
	}
	for _, tc := range tests {
		t.Run(tc.id, func(t *testing.T) {
			t.Parallel()
			create(t, st, tc.id, tc.typ, tc.payload, tc.timeout)
			got := waitFor(t, st, tc.id, final)
			if got.Status.Phase != tc.wantPhase {
				t.Fatalf("phase = %s (error %q), want %s", got.Status.Phase, got.Status.Error, tc.wantPhase)
			}
			if got.TaskID() != tc.id {
				t.Errorf("task id = %q, want %q", got.TaskID(), tc.id)
			}
			if c := condition(got, agentv1.ConditionReady); c.Reason != tc.wantReason {
				t.Errorf("Ready reason = %q, want %q", c.Reason, tc.wantReason)
			}
			if !strings.Contains(got.Status.Error, tc.wantErr) || (tc.wantErr == "") != (got.Status.Error == "") {
				t.Errorf("error = %q, want it to contain %q", got.Status.Error, tc.wantErr)
			}
			if tc.wantResult != "" {
				if got.Status.Result == nil {
					t.Fatal("no result")
				}
				if diff := cmp.Diff(storetest.JSONValue(t, []byte(tc.wantResult)), storetest.JSONValue(t, got.Status.Result.Raw)); diff != "" {
					t.Errorf("result (-want +got):\n%s", diff)
				}
			}
			if got.Status.StartTime == nil || got.Status.CompletionTime == nil {
				t.Errorf("start/completion times missing: %+v", got.Status)
			}
			// Created without status, initialized by the reconciler: accepted, then the rest.
			if len(got.Status.Events) == 0 || got.Status.Events[0].Type != agentv1.EventAccepted {
				t.Errorf("events %+v do not start with %s", got.Status.Events, agentv1.EventAccepted)
			}
			if tc.wantReason == agentv1.ReasonInvalidSpec {
				if c := condition(got, agentv1.ConditionStalled); c.Status != metav1.ConditionTrue {
					t.Errorf("Stalled = %v, want True", c)
				}
			}
		})
	}
}

func scenarioShellResult(t *testing.T, st controllertest.Store) {
	start(t, st, nil)
	create(t, st, "t", "SHELL", `{"cmd":"echo out"}`, 0)
	got := waitFor(t, st, "t", final)
	var res executors.ProcessResult
	if err := json.Unmarshal(got.Status.Result.Raw, &res); err != nil {
		t.Fatal(err)
	}
	if res.ExitCode != 0 || res.Stdout != "out\n" {
		t.Fatalf("result = %+v", res)
	}
}

// scenarioInterrupted: a Task found Running with no worker (after a restart or a failover) is
// failed, not re-run; a pending one runs.
func scenarioInterrupted(t *testing.T, st controllertest.Store) {
	var runs atomic.Int32
	counting := funcExecutor(func(context.Context, json.RawMessage) (any, error) { runs.Add(1); return nil, nil })
	task := newTask("Was_Running", "COUNT")
	task.Status.MarkRunning(metav1.Now(), 1)
	createWithStatus(t, st, task)
	create(t, st, "pending", "COUNT", `{}`, 0)
	start(t, st, map[string]executors.Executor{"COUNT": counting})
	got := waitFor(t, st, "Was_Running", final)
	if got.Status.Phase != agentv1.TaskFailed || got.Status.Error != controllers.ErrInterrupted.Error() {
		t.Fatalf("got %s %q, want Failed %q", got.Status.Phase, got.Status.Error, controllers.ErrInterrupted)
	}
	if p := waitFor(t, st, "pending", final); p.Status.Phase != agentv1.TaskSucceeded {
		t.Fatalf("pending task: %s %q", p.Status.Phase, p.Status.Error)
	}
	if n := runs.Load(); n != 1 {
		t.Fatalf("executor ran %d times, want 1 (only the pending task)", n)
	}
}

func scenarioCancel(t *testing.T, st controllertest.Store) {
	// A pending Task (no worker yet) is failed directly.
	reg := controllers.NewRegistry()
	create(t, st, "pend", "BLOCK", `{}`, 0)
	if found, err := controllers.Cancel(t.Context(), st, reg, "pend", controllers.ErrCancelled); err != nil || !found {
		t.Fatalf("Cancel pending = %v, %v", found, err)
	}
	if got, _ := st.Get(t.Context(), "pend"); got.Status.Error != "cancelled" || got.Status.Phase != agentv1.TaskFailed {
		t.Fatalf("pending task: %+v", got.Status)
	}

	var runs atomic.Int32
	started := make(chan struct{}, 1)
	blocking := funcExecutor(func(ctx context.Context, _ json.RawMessage) (any, error) {
		runs.Add(1)
		started <- struct{}{}
		<-ctx.Done()
		return nil, ctx.Err()
	})
	h := start(t, st, map[string]executors.Executor{"BLOCK": blocking})
	create(t, st, "run", "BLOCK", `{}`, 0)
	<-started
	waitFor(t, st, "run", func(t *agentv1.Task) bool { return t.Status.Phase == agentv1.TaskRunning })
	if ids := h.registry.Running(); len(ids) != 1 || ids[0] != "run" {
		t.Fatalf("Running() = %v", ids)
	}
	if found, err := controllers.Cancel(t.Context(), st, h.registry, "run", controllers.ErrCancelled); err != nil || !found {
		t.Fatalf("Cancel = %v, %v", found, err)
	}
	got := waitFor(t, st, "run", final)
	if got.Status.Error != "cancelled" || condition(got, agentv1.ConditionReady).Reason != agentv1.ReasonCancelled {
		t.Fatalf("got %q %v", got.Status.Error, got.Status.Conditions)
	}
	if n := runs.Load(); n != 1 {
		t.Fatalf("executor ran %d times, want 1 (not the cancelled pending task)", n)
	}
	if found, _ := controllers.Cancel(t.Context(), st, h.registry, "missing", controllers.ErrCancelled); found {
		t.Fatal("cancel of a missing task reported found")
	}
}

// scenarioManyTasks: concurrent Tasks, each written several times by its reconciler, all end
// with their own result, each observed once.
func scenarioManyTasks(t *testing.T, st controllertest.Store) {
	h := start(t, st, nil)
	const n = 40
	for i := range n {
		create(t, st, fmt.Sprintf("Many_%02d", i), "ECHO", fmt.Sprintf(`{"i":%d}`, i), 0)
	}
	for i := range n {
		got := waitFor(t, st, fmt.Sprintf("Many_%02d", i), final)
		if got.Status.Phase != agentv1.TaskSucceeded || string(got.Status.Result.Raw) != fmt.Sprintf(`{"i":%d}`, i) {
			t.Fatalf("task %d: %s %s", i, got.Status.Phase, got.Status.Result.Raw)
		}
	}
	// Observe runs right after the final status write, which the test may see first.
	testpoll.Until(t, time.Minute, fmt.Sprintf("%d Observe calls", n), func() bool { return h.observed.Load() >= n })
	if got := h.observed.Load(); got != n {
		t.Fatalf("Observe called %d times, want %d", got, n)
	}
}

// scenarioUnsupportedType: a Task of a type no executor handles ends Failed, Stalled, once.
func scenarioUnsupportedType(t *testing.T, st controllertest.Store) {
	h := start(t, st, nil)
	create(t, st, "reboot", "REBOOT", `{}`, 0)
	got := waitFor(t, st, "reboot", final)
	if got.Status.Phase != agentv1.TaskFailed || got.Status.Error != `unsupported task type "REBOOT"` {
		t.Fatalf("got %s %q", got.Status.Phase, got.Status.Error)
	}
	for typ, want := range map[string]string{agentv1.ConditionReady: agentv1.ReasonUnsupportedType, agentv1.ConditionStalled: agentv1.ReasonUnsupportedType} {
		if c := condition(got, typ); c.Reason != want {
			t.Errorf("%s reason = %q, want %q", typ, c.Reason, want)
		}
	}
	testpoll.Until(t, time.Minute, "the Observe call", func() bool { return h.observed.Load() >= 1 })
	if got := h.observed.Load(); got != 1 {
		t.Fatalf("Observe called %d times, want 1", got)
	}
}

// scenarioForeignProcess: a Task made Running by someone else (kubectl, another program) whose
// status names a live process group is failed as interrupted, and the agent leaves that group
// alone: it acts only on process groups it recorded itself (sealed with its key).
func scenarioForeignProcess(t *testing.T, st controllertest.Store) {
	ctx, stop := context.WithCancel(context.Background())
	refs := make(chan executors.ProcessRef, 1)
	done := make(chan struct{})
	go func() {
		defer close(done)
		proc := executors.NewProcess(executors.ProcessConfig{KillGrace: 100 * time.Millisecond})
		_, _ = proc.Run(executors.WithProcessHook(ctx, func(ref executors.ProcessRef) { refs <- ref }), executors.Command{Argv: []string{"sleep", "300"}})
	}()
	t.Cleanup(func() { stop(); <-done })
	var ref executors.ProcessRef
	select {
	case ref = <-refs:
	case <-time.After(time.Minute):
		t.Fatal("the process group did not start")
	}
	alive := func() bool { return syscall.Kill(-ref.PGID, 0) == nil }

	for id, seal := range map[string]string{"unsealed": "", "forged": "AAAA"} {
		task := newTask(id, "BLOCK")
		task.Status.MarkRunning(metav1.Now(), 1)
		task.Status.Process = &agentv1.ProcessRef{PGID: int64(ref.PGID), BootID: ref.BootID, StartTicks: int64(ref.StartTicks), Seal: seal}
		createWithStatus(t, st, task)
	}
	block := funcExecutor(func(ctx context.Context, _ json.RawMessage) (any, error) { <-ctx.Done(); return nil, ctx.Err() })
	startWith(t, st, map[string]executors.Executor{"BLOCK": block}, []byte("0123456789abcdef0123456789abcdef"))
	for _, id := range []string{"unsealed", "forged"} {
		got := waitFor(t, st, id, final)
		if got.Status.Error != controllers.ErrInterrupted.Error() {
			t.Errorf("%s: got %s %q, want Failed %q", id, got.Status.Phase, got.Status.Error, controllers.ErrInterrupted)
		}
		last := got.Status.Events[len(got.Status.Events)-2] // the note, then Failed
		if !strings.Contains(last.Message, "not recorded by this agent") {
			t.Errorf("%s: events %+v, want a note that the group was left alone", id, got.Status.Events)
		}
	}
	if !alive() {
		t.Fatal("the agent killed a process group it did not record")
	}
}
