package orchestratorsync_test

import (
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/letsbe/sysadmin-agent/internal/testpoll"

	"github.com/go-logr/logr/testr"

	"github.com/letsbe/sysadmin-agent/api/store"
	"github.com/letsbe/sysadmin-agent/api/store/memory"
	agentv1 "github.com/letsbe/sysadmin-agent/api/v1alpha1"
	"github.com/letsbe/sysadmin-agent/orchestratorsync"
	"github.com/letsbe/sysadmin-agent/orchestratorsync/orchestratortest"
)

// failCreates is a persister that cannot make creations durable while full is set.
type failCreates struct{ full *atomic.Bool }

var errFull = errors.New("write journal.db: no space left on device")

func (f failCreates) Persist(ev store.Event) func() error {
	if ev.Type == store.Added && f.full.Load() {
		return func() error { return errFull }
	}
	return func() error { return nil }
}

// While the store cannot make Tasks durable the agent takes no tasks (it heartbeats, it does not
// poll); a task it took that cannot be persisted is reported FAILED straight away and never
// stored; once durable again it takes tasks again.
func TestIntakeStopsWhileNotDurable(t *testing.T) {
	t.Parallel()
	orch := orchestratortest.New(orchestratortest.Options{})
	client := serve(t, orch)
	var full atomic.Bool
	var unhealthy atomic.Bool
	mem := memory.New(memory.WithPersister(failCreates{&full}))
	s, err := orchestratorsync.New(orchestratorsync.Options{
		Client: client, Store: mem, Notifier: mem, StateDir: t.TempDir(),
		EnrollmentToken: orchestratortest.DefaultEnrollmentToken, Hostname: "test", Version: "test",
		Capabilities: []string{agentv1.TypeEcho}, MaxConcurrentTasks: 2,
		HeartbeatInterval: 20 * time.Millisecond, PollInterval: 20 * time.Millisecond, LongPollWait: -1,
		Durable: func() error {
			if unhealthy.Load() {
				return errFull
			}
			return nil
		},
		Logger: testr.New(t),
	})
	if err != nil {
		t.Fatal(err)
	}
	runSyncer(t, s)
	// A creation that fails: reported FAILED, not stored.
	full.Store(true)
	id := orch.Enqueue(agentv1.TypeEcho, []byte(`{}`), 0)
	testpoll.Until(t, waitTimeout, "the unpersisted task's final report", func() bool { st, _ := orch.Task(id); return st.IsFinal() })
	st, _ := orch.Task(id)
	if want := "agent cannot persist tasks: " + errFull.Error(); st.Status != orchestratortest.StatusFailed || st.Error != want {
		t.Errorf("task %s: %s %q, want FAILED %q", id, st.Status, st.Error, want)
	}
	if _, err := mem.Get(t.Context(), id); err == nil {
		t.Error("the task that could not be persisted is in the store")
	}

	// Not durable: no polls while heartbeats go on.
	unhealthy.Store(true)
	testpoll.Until(t, waitTimeout, "a poll ending", func() bool { return orch.Stats().LongPollsWaiting == 0 })
	before := orch.Stats()
	waiting := orch.Enqueue(agentv1.TypeEcho, []byte(`{}`), 0)
	testpoll.Until(t, waitTimeout, "heartbeats", func() bool { return orch.Stats().Heartbeat >= before.Heartbeat+5 })
	if got := orch.Stats().NextTask - before.NextTask; got > 1 { // at most one already under way
		t.Errorf("%d polls while the store could not persist tasks", got)
	}
	if st, _ := orch.Task(waiting); st.Status != orchestratortest.StatusPending && !strings.HasPrefix(st.Error, "agent cannot persist tasks") {
		t.Errorf("task %s taken while not durable: %s %q", waiting, st.Status, st.Error)
	}

	// Durable again: the waiting task is taken and stored.
	full.Store(false)
	unhealthy.Store(false)
	testpoll.Until(t, waitTimeout, "the waiting task taken", func() bool { st, _ := orch.Task(waiting); return st.Status != orchestratortest.StatusPending })
	if st, _ := orch.Task(waiting); !st.IsFinal() {
		testpoll.Until(t, waitTimeout, "the task stored", func() bool { _, err := mem.Get(t.Context(), waiting); return err == nil })
	}
}
