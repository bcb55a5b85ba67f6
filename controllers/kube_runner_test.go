package controllers_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-logr/logr/testr"
	"github.com/google/go-cmp/cmp"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/letsbe/sysadmin-agent/api/store"
	"github.com/letsbe/sysadmin-agent/api/store/kube"
	"github.com/letsbe/sysadmin-agent/api/store/kube/kubetest"
	agentv1 "github.com/letsbe/sysadmin-agent/api/v1alpha1"
	"github.com/letsbe/sysadmin-agent/controllers"
	"github.com/letsbe/sysadmin-agent/controllers/controllertest"
	"github.com/letsbe/sysadmin-agent/executors"
)

// startRunner runs the agent's reconcilers over st with the real ECHO and SHELL executors plus
// extra test types, until the test ends.
func startRunner(t *testing.T, st *kube.Store, extra map[string]executors.Executor) *controllers.Registry {
	t.Helper()
	shell, err := executors.NewShell(executors.ShellConfig{
		AllowedCommands: []string{"echo", "sleep", "false"},
		Process:         executors.NewProcess(executors.ProcessConfig{KillGrace: 200 * time.Millisecond}),
	})
	if err != nil {
		t.Fatal(err)
	}
	execs := map[string]executors.Executor{agentv1.TypeEcho: executors.NewEcho(), agentv1.TypeShell: shell}
	for k, v := range extra {
		execs[k] = v
	}
	reg := controllers.NewRegistry()
	r, err := controllers.NewRunner(controllers.Options{
		Store: st, Notifier: st, Executors: execs,
		MaxConcurrentReconciles: 4,
		MaxTimeout:              time.Minute,
		Logger:                  testr.NewWithOptions(t, testr.Options{Verbosity: 1}),
		Registry:                reg,
		SkipNameValidation:      true,
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Start(ctx) }()
	t.Cleanup(func() {
		reg.CancelAll(controllers.ErrShuttingDown)
		cancel()
		if err := <-done; err != nil {
			t.Errorf("runner: %v", err)
		}
	})
	return reg
}

func createTask(t *testing.T, st store.Store, id, typ, payload string, timeout time.Duration) {
	t.Helper()
	controllertest.CreatePending(t, st, id, typ, payload, timeout)
}

func waitTask(t *testing.T, st *kube.Store, id string, pred func(*agentv1.Task) bool) *agentv1.Task {
	t.Helper()
	return controllertest.WaitFor(t, st, id, waitTimeout, pred)
}

var isFinal = controllertest.Final

func readyReason(task *agentv1.Task) string {
	for _, c := range task.Status.Conditions {
		if c.Type == agentv1.ConditionReady {
			return c.Reason
		}
	}
	return ""
}

// TestReconcilersOnTheAPIServer: the agent's reconcilers drive Tasks to their final status
// through the real API server, with real executors.
func TestReconcilersOnTheAPIServer(t *testing.T) {
	t.Parallel()
	env := kubetest.Get(t)
	st := env.NewStore(t, env.Namespace(t))
	startRunner(t, st, nil)

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
		{id: "shell-ok", typ: "SHELL", payload: `{"cmd":"echo hello world"}`, wantPhase: agentv1.TaskSucceeded, wantReason: agentv1.ReasonSucceeded},
		{id: "shell-exit", typ: "SHELL", payload: `{"cmd":"false"}`, wantPhase: agentv1.TaskFailed, wantReason: agentv1.ReasonFailed, wantErr: "exit status 1"},
		{id: "shell-refused", typ: "SHELL", payload: `{"cmd":"rm -rf /"}`, wantPhase: agentv1.TaskFailed, wantReason: agentv1.ReasonInvalidSpec, wantErr: `"rm" is not allowed`},
		{id: "shell-timeout", typ: "SHELL", payload: `{"cmd":"sleep 30"}`, timeout: 300 * time.Millisecond, wantPhase: agentv1.TaskFailed, wantReason: agentv1.ReasonTimedOut, wantErr: "timed out after 300ms"},
	}
	for _, tc := range tests {
		t.Run(tc.id, func(t *testing.T) {
			t.Parallel()
			createTask(t, st, tc.id, tc.typ, tc.payload, tc.timeout)
			got := waitTask(t, st, tc.id, isFinal)
			if got.Status.Phase != tc.wantPhase {
				t.Fatalf("phase = %s (error %q), want %s", got.Status.Phase, got.Status.Error, tc.wantPhase)
			}
			if r := readyReason(got); r != tc.wantReason {
				t.Errorf("Ready reason = %q, want %q", r, tc.wantReason)
			}
			if !strings.Contains(got.Status.Error, tc.wantErr) || (tc.wantErr == "") != (got.Status.Error == "") {
				t.Errorf("error = %q, want it to contain %q", got.Status.Error, tc.wantErr)
			}
			if tc.wantResult != "" {
				if got.Status.Result == nil {
					t.Fatal("no result")
				}
				if diff := cmp.Diff(decodeJSON(t, []byte(tc.wantResult)), decodeJSON(t, got.Status.Result.Raw)); diff != "" {
					t.Errorf("result (-want +got):\n%s", diff)
				}
			}
			if got.Status.StartTime == nil || got.Status.CompletionTime == nil {
				t.Errorf("start/completion times missing: %+v", got.Status)
			}
		})
	}
	t.Run("shell result", func(t *testing.T) {
		t.Parallel()
		createTask(t, st, "shell-result", "SHELL", `{"cmd":"echo out"}`, 0)
		got := waitTask(t, st, "shell-result", isFinal)
		var res executors.ProcessResult
		if err := json.Unmarshal(got.Status.Result.Raw, &res); err != nil {
			t.Fatal(err)
		}
		if res.ExitCode != 0 || res.Stdout != "out\n" {
			t.Fatalf("result = %+v", res)
		}
	})
}

// TestInterruptedAndCancelledOnTheAPIServer: a Task found Running with no worker (after a
// restart or a failover) is failed, not re-run; a running and a pending Task are cancelled.
func TestInterruptedAndCancelledOnTheAPIServer(t *testing.T) {
	t.Parallel()
	env := kubetest.Get(t)
	ctx := t.Context()
	st := env.NewStore(t, env.Namespace(t))

	var runs atomic.Int32
	started := make(chan struct{}, 1)
	blocking := funcExecutor(func(ctx context.Context, _ json.RawMessage) (any, error) {
		runs.Add(1)
		started <- struct{}{}
		<-ctx.Done()
		return nil, ctx.Err()
	})
	interrupted := &agentv1.Task{ObjectMeta: metav1.ObjectMeta{Name: "Was_Running"}, Spec: agentv1.TaskSpec{Type: "BLOCK"}}
	interrupted.Status.MarkRunning(metav1.Now(), 1)
	if err := st.Create(ctx, interrupted); err != nil {
		t.Fatal(err)
	}
	reg := startRunner(t, st, map[string]executors.Executor{"BLOCK": blocking})

	got := waitTask(t, st, "Was_Running", isFinal)
	if got.Status.Phase != agentv1.TaskFailed || got.Status.Error != controllers.ErrInterrupted.Error() {
		t.Fatalf("got %s %q, want Failed %q", got.Status.Phase, got.Status.Error, controllers.ErrInterrupted)
	}

	createTask(t, st, "Run_1", "BLOCK", `{}`, 0)
	<-started
	waitTask(t, st, "Run_1", func(t *agentv1.Task) bool { return t.Status.Phase == agentv1.TaskRunning })
	if found, err := controllers.Cancel(ctx, st, reg, "Run_1", controllers.ErrCancelled); err != nil || !found {
		t.Fatalf("Cancel = %v, %v", found, err)
	}
	got = waitTask(t, st, "Run_1", isFinal)
	if got.Status.Error != "cancelled" || readyReason(got) != agentv1.ReasonCancelled {
		t.Fatalf("got %q %v", got.Status.Error, got.Status.Conditions)
	}
	if n := runs.Load(); n != 1 {
		t.Fatalf("executor ran %d times, want 1 (not the interrupted task)", n)
	}

	// A pending Task (no controller for its type, so it stays pending) is failed directly.
	createTask(t, st, "Pend_1", "NOBODY", `{}`, 0)
	if found, err := controllers.Cancel(ctx, st, reg, "Pend_1", controllers.ErrCancelled); err != nil || !found {
		t.Fatalf("Cancel pending = %v, %v", found, err)
	}
	if got, _ := st.Get(ctx, "Pend_1"); got.Status.Error != "cancelled" {
		t.Fatalf("pending task: %+v", got.Status)
	}
}

// TestManyTasksOnTheAPIServer: concurrent Tasks, each written several times by its
// reconciler, all end with their own result.
func TestManyTasksOnTheAPIServer(t *testing.T) {
	t.Parallel()
	env := kubetest.Get(t)
	st := env.NewStore(t, env.Namespace(t))
	startRunner(t, st, nil)
	const n = 30
	for i := range n {
		createTask(t, st, fmt.Sprintf("Many_%02d", i), "ECHO", fmt.Sprintf(`{"i":%d}`, i), 0)
	}
	for i := range n {
		got := waitTask(t, st, fmt.Sprintf("Many_%02d", i), isFinal)
		if got.Status.Phase != agentv1.TaskSucceeded || string(got.Status.Result.Raw) != fmt.Sprintf(`{"i":%d}`, i) {
			t.Fatalf("task %d: %s %s", i, got.Status.Phase, got.Status.Result.Raw)
		}
	}
}

// waitTimeout bounds every wait for the API server or the informer; generous for a loaded
// machine, never reached when things work.
const waitTimeout = time.Minute

// decodeJSON decodes raw JSON keeping numbers exact, to compare JSON values whatever their
// key order (the API server stores objects with sorted keys).
func decodeJSON(t *testing.T, raw []byte) any {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		t.Fatalf("decode %s: %v", raw, err)
	}
	return v
}
