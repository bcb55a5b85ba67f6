package orchestratorsync_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/go-logr/logr/testr"

	"github.com/letsbe/sysadmin-agent/api/store"
	"github.com/letsbe/sysadmin-agent/api/store/memory"
	agentv1 "github.com/letsbe/sysadmin-agent/api/v1alpha1"
	"github.com/letsbe/sysadmin-agent/internal/testpoll"
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
	client := serve(t, orch)
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
	testpoll.UntilNil(t, waitTimeout, "3 tasks taken while the first one's write hangs", func() error {
		if n := assigned(orch, ids); n < 3 {
			return fmt.Errorf("%d of 3 taken", n)
		}
		return nil
	})
	openGate()
	for _, id := range ids[:3] {
		testpoll.UntilNil(t, waitTimeout, "task "+id+" stored Pending", func() error {
			task, err := mem.Get(t.Context(), id)
			if err != nil {
				return err
			}
			if !task.Status.Phase.IsPending() {
				return fmt.Errorf("phase %q", task.Status.Phase)
			}
			return nil
		})
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
