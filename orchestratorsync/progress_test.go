package orchestratorsync_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/go-logr/logr/testr"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/letsbe/sysadmin-agent/api/progress"
	"github.com/letsbe/sysadmin-agent/api/store"
	"github.com/letsbe/sysadmin-agent/api/store/memory"
	agentv1 "github.com/letsbe/sysadmin-agent/api/v1alpha1"
	"github.com/letsbe/sysadmin-agent/internal/agenttest"
	"github.com/letsbe/sysadmin-agent/internal/testpoll"
	"github.com/letsbe/sysadmin-agent/orchestratorsync"
	"github.com/letsbe/sysadmin-agent/orchestratorsync/orchestratortest"
)

// startProgressSyncer runs a Syncer with a progress hub against the reference orchestrator
// announcing the feature or not, and returns the orchestrator, the store and the hub.
func startProgressSyncer(t *testing.T, feature bool) (*orchestratortest.Server, *memory.Store, *progress.Hub) {
	t.Helper()
	orch := orchestratortest.New(orchestratortest.Options{Progress: feature})
	client := serve(t, orch)
	mem := memory.New()
	hub := progress.NewHub()
	s, err := orchestratorsync.New(orchestratorsync.Options{
		Client: client, Store: mem, Notifier: mem, StateDir: t.TempDir(),
		EnrollmentToken: orchestratortest.DefaultEnrollmentToken, Hostname: "test", Version: "test",
		Capabilities: []string{"ECHO"}, MaxConcurrentTasks: 2,
		HeartbeatInterval: 50 * time.Millisecond, PollInterval: 20 * time.Millisecond, LongPollWait: time.Second,
		Backoff:  orchestratorsync.Backoff{Base: 5 * time.Millisecond, Cap: 50 * time.Millisecond},
		Progress: hub,
		Logger:   testr.New(t),
	})
	if err != nil {
		t.Fatal(err)
	}
	runSyncer(t, s)
	<-s.Registered()
	return orch, mem, hub
}

// runningTask waits for the orchestrator's task to arrive in the store and marks it Running,
// as a reconciler would; it returns the Task's name.
func runningTask(t *testing.T, orch *orchestratortest.Server, mem *memory.Store) (id, name string) {
	t.Helper()
	id = orch.Enqueue("ECHO", []byte(`{}`), 0)
	testpoll.Until(t, waitTimeout, "the task in the store", func() bool { return mem.Len() == 1 })
	list, err := mem.List(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	name = list.Items[0].Name
	_, err = store.MutateStatus(context.Background(), mem, name, func(task *agentv1.Task) bool {
		task.Status.MarkRunning(metav1.Now(), 1)
		return true
	})
	if err != nil {
		t.Fatal(err)
	}
	return id, name
}

func TestProgressReports(t *testing.T) {
	t.Parallel()
	orch, mem, hub := startProgressSyncer(t, true)
	if !hub.Enabled() {
		t.Fatal("the hub is not enabled although the orchestrator announced progress")
	}
	id, name := runningTask(t, orch, mem)
	ev := progress.Event{Time: time.Now().UTC(), Type: "Step", Message: "step 1/2 goto ok, 3 ms"}
	batches := []progress.Batch{
		{Events: []progress.Event{ev}, Output: []progress.Chunk{{Stream: "stdout", Offset: 0, Data: "hello\n"}}},
		{Output: []progress.Chunk{{Stream: "stdout", Offset: 6, Data: "world\n"}, {Stream: "stderr", Offset: 0, Data: "warn\n"}}},
	}
	for i, b := range batches {
		if !hub.Offer(name, b) {
			t.Fatalf("batch %d refused", i)
		}
		testpoll.Until(t, waitTimeout, "the batch at the orchestrator", func() bool {
			st, _ := orch.Task(id)
			return st.Progress.Reports == i+1
		})
	}
	finish(t, mem, name, true)
	st := agenttest.WaitTask(t, orch, id, "the final report", waitTimeout, orchestratortest.TaskState.IsFinal)
	if st.Progress.Stdout != "hello\nworld\n" || st.Progress.Stderr != "warn\n" || st.Progress.Gaps != 0 {
		t.Errorf("progress at the orchestrator = %+v", st.Progress)
	}
	if st.Status != orchestratortest.StatusCompleted || st.FinalReports != 1 {
		t.Errorf("final: %s, %d final reports", st.Status, st.FinalReports)
	}
}

func TestProgressWithoutFeature(t *testing.T) {
	t.Parallel()
	orch, mem, hub := startProgressSyncer(t, false)
	if hub.Enabled() {
		t.Fatal("the hub is enabled without the feature")
	}
	id, name := runningTask(t, orch, mem)
	if hub.Offer(name, progress.Batch{Output: []progress.Chunk{{Stream: "stdout", Data: "x"}}}) {
		t.Error("a disabled hub took a batch")
	}
	// The acknowledgement first: a Task finished before it went out is reported by its final
	// report alone, which this test is not about.
	testpoll.Until(t, waitTimeout, "the RUNNING acknowledgement", func() bool { st, _ := orch.Task(id); return st.Reports >= 1 })
	finish(t, mem, name, true)
	st := agenttest.WaitTask(t, orch, id, "the final report", waitTimeout, orchestratortest.TaskState.IsFinal)
	if running := st.Reports - st.FinalReports - st.Duplicates; running != 1 || st.Progress.Reports != 0 {
		t.Errorf("%d RUNNING reports (%d with progress), want exactly 1 and none", running, st.Progress.Reports)
	}
	if !slices.ContainsFunc(st.Events, func(e orchestratortest.Event) bool { return e.Type == agentv1.EventSucceeded }) {
		t.Errorf("final events = %+v", st.Events)
	}
}
