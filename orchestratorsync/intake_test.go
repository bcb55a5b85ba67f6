package orchestratorsync_test

import (
	"context"
	"github.com/letsbe/sysadmin-agent/orchestratorsync/wire"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/go-logr/logr/testr"

	"github.com/letsbe/sysadmin-agent/api/store"
	"github.com/letsbe/sysadmin-agent/api/store/memory"
	agentv1 "github.com/letsbe/sysadmin-agent/api/v1alpha1"
	"github.com/letsbe/sysadmin-agent/orchestratorsync"
	"github.com/letsbe/sysadmin-agent/orchestratorsync/orchestratortest"
)

// gatedPersister makes every store write wait until the gate opens: a journal whose fsyncs
// take as long as the test wants.
type gatedPersister struct{ gate chan struct{} }

func (g gatedPersister) Persist(store.Event) func() error {
	return func() error { <-g.gate; return nil }
}

// The poller does not wait for one task to be durable before asking for the next: with a
// store whose writes hang, it still takes as many tasks as it has slots, and each is stored
// once the writes complete.
func TestPollerTakesTasksWhileTheStoreIsWriting(t *testing.T) {
	t.Parallel()
	orch := orchestratortest.New(orchestratortest.Options{})
	hs := httptest.NewServer(orch)
	t.Cleanup(hs.Close)
	client, err := wire.NewClient(wire.Config{BaseURL: hs.URL, Token: orchestratortest.DefaultEnrollmentToken})
	if err != nil {
		t.Fatal(err)
	}
	gate := make(chan struct{})
	mem := memory.New(memory.WithPersister(gatedPersister{gate: gate}))
	s, err := orchestratorsync.New(orchestratorsync.Options{
		Client: client, Store: mem, Notifier: mem, StateDir: t.TempDir(),
		EnrollmentToken: orchestratortest.DefaultEnrollmentToken, Hostname: "test", Version: "test",
		Capabilities: []string{agentv1.TypeEcho}, MaxConcurrentTasks: 3,
		HeartbeatInterval: time.Minute, PollInterval: 20 * time.Millisecond, LongPollWait: time.Second,
		Logger: testr.New(t),
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = s.Run(ctx) }()
	opened := false
	openGate := func() {
		if !opened {
			opened = true
			close(gate)
		}
	}
	t.Cleanup(func() { openGate(); cancel(); <-done })

	var ids []string
	for range 4 {
		ids = append(ids, orch.Enqueue(agentv1.TypeEcho, []byte(`{}`), 0))
	}
	deadline := time.Now().Add(20 * time.Second)
	for assigned(orch, ids) < 3 {
		if time.Now().After(deadline) {
			t.Fatalf("%d of 3 tasks taken while the first one's write hangs", assigned(orch, ids))
		}
		time.Sleep(5 * time.Millisecond)
	}
	openGate()
	for _, id := range ids[:3] {
		for {
			task, err := mem.Get(t.Context(), id)
			if err == nil && task.Status.Phase.IsPending() {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("task %s not stored Pending: %v", id, err)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	// Three slots, three unfinished tasks: the fourth stays with the orchestrator.
	if st, _ := orch.Task(ids[3]); st.Status != orchestratortest.StatusPending {
		t.Fatalf("fourth task is %s with every slot held, want PENDING", st.Status)
	}
}

func assigned(orch *orchestratortest.Server, ids []string) int {
	n := 0
	for _, id := range ids {
		if st, _ := orch.Task(id); st.Status != orchestratortest.StatusPending {
			n++
		}
	}
	return n
}
