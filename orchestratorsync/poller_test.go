package orchestratorsync_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/letsbe/sysadmin-agent/api/store"
	agentv1 "github.com/letsbe/sysadmin-agent/api/v1alpha1"
	"github.com/letsbe/sysadmin-agent/internal/testpoll"
	"github.com/letsbe/sysadmin-agent/orchestratorsync/orchestratortest"
)

// intakeWatch sits in front of the reference orchestrator, which answers every request late
// (orchestratortest.Faulty, every request slow): it counts the next-task requests in flight
// and their peak (orchestratortest.InFlight); and at the end of each it checks that the
// orchestrator has not handed out more tasks than the agent has slots: those of the Tasks the
// test finished come back, the others are held.
type intakeWatch struct {
	polls *orchestratortest.InFlight
	orch  *orchestratortest.Server
	slots int

	mu        sync.Mutex
	finished  int // Tasks the test finished, counted before their store write
	violation error
}

func (w *intakeWatch) ServeHTTP(rw http.ResponseWriter, r *http.Request) {
	if r.URL.Path == "/tasks/next" {
		defer w.check()
	}
	w.polls.ServeHTTP(rw, r)
}

// check runs once a next-task request's handler ended. Every task handed out holds a slot
// until the agent sees it final, which is after the test counted it finished: so at any time
// assigned <= finished + slots.
func (w *intakeWatch) check() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if a := w.orch.Stats().TasksAssigned; a > w.finished+w.slots && w.violation == nil {
		w.violation = fmt.Errorf("%d tasks handed out with %d finished and %d slots", a, w.finished, w.slots)
	}
}

func (w *intakeWatch) state() (inFlight, peak int, violation error) {
	inFlight, peak = w.polls.Counts()
	w.mu.Lock()
	defer w.mu.Unlock()
	return inFlight, peak, w.violation
}

func (w *intakeWatch) countFinished() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.finished++
}

// startWatched starts a syncer with slots slots against the reference orchestrator answering
// every request late, behind an intakeWatch.
func startWatched(t *testing.T, slots int) (*syncFixture, *intakeWatch) {
	t.Helper()
	var w *intakeWatch
	f := startSyncer(t, slots, func(orch http.Handler) http.Handler {
		slow := orchestratortest.NewFaulty(orch, orchestratortest.FaultOptions{SlowRate: 1, SlowDelay: 5 * time.Millisecond})
		w = &intakeWatch{polls: orchestratortest.NewInFlight(slow, "/tasks/next"), slots: slots}
		return w
	})
	w.orch = f.orch
	return f, w
}

// finishStored plays the controllers: it finishes the Tasks held and every Task stored from
// now on, as soon as it is, until the test ends.
func finishStored(t *testing.T, f *syncFixture, w *intakeWatch) {
	t.Helper()
	created := make(chan string, 4096)
	unsubscribe := f.mem.Subscribe(func(ev store.Event) {
		if ev.Type == store.Added {
			created <- ev.Task.Name
		}
	})
	held, err := f.mem.List(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	for i := range held.Items {
		created <- held.Items[i].Name
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	t.Cleanup(func() { unsubscribe(); cancel(); wg.Wait() })
	wg.Go(func() {
		for {
			select {
			case <-ctx.Done():
				return
			case name := <-created:
				w.countFinished()
				_, err := store.MutateStatus(ctx, f.mem, name, func(task *agentv1.Task) bool {
					if task.Status.Phase.IsFinal() {
						return false
					}
					now := metav1.Now()
					task.Status.MarkRunning(now, 1)
					task.Status.MarkSucceeded(now, 1)
					return true
				})
				if err != nil && ctx.Err() == nil {
					t.Errorf("finish %s: %v", name, err)
				}
			}
		}
	})
}

// With every request answered late, a busy agent keeps one next-task request per slot in
// flight (not one after another), never takes more tasks than it has free slots, and once the
// queue is empty parks a single long poll again.
func TestPollerFillsItsSlotsWithLatencyAndParksOneWhenIdle(t *testing.T) {
	t.Parallel()
	const slots = 4
	f, w := startWatched(t, slots)

	// Held Tasks: exactly as many taken as there are slots, whatever the queue holds.
	var ids []string
	for range 3 * slots {
		ids = append(ids, f.orch.Enqueue("ECHO", []byte(`{}`), 0))
	}
	testpoll.Until(t, waitTimeout, "all slots taken", func() bool { return f.mem.Len() == slots })
	testpoll.Until(t, waitTimeout, "a few heartbeats", func() bool { a := f.orch.Agents(); return len(a) == 1 && a[0].Heartbeats >= 3 })
	if got := f.orch.Stats().TasksAssigned; got != slots {
		t.Fatalf("%d tasks handed out with %d slots held", got, slots)
	}

	// Tasks finish as they come and keep coming: every slot gets a request in flight.
	finishStored(t, f, w)
	testpoll.UntilNil(t, waitTimeout, "one next-task request in flight per slot", func() error {
		if _, peak, _ := w.state(); peak < slots {
			for range 4 * slots {
				ids = append(ids, f.orch.Enqueue("ECHO", []byte(`{}`), 0))
			}
			return fmt.Errorf("at most %d requests in flight", peak)
		}
		return nil
	})
	for _, id := range ids {
		testpoll.UntilNil(t, waitTimeout, "task "+id+" reported", func() error {
			st, ok := f.orch.Task(id)
			if !ok || !st.IsFinal() {
				return errors.New("not final")
			}
			if st.Offers != 1 || st.FinalReports != 1 {
				return fmt.Errorf("offered %d times, %d final reports", st.Offers, st.FinalReports)
			}
			return nil
		})
	}
	_, peak, violation := w.state()
	if violation != nil {
		t.Fatal(violation)
	}
	if peak > slots {
		t.Fatalf("%d next-task requests in flight with %d slots", peak, slots)
	}

	// Idle again: one long poll, and no other request while it is parked and renewed.
	testpoll.UntilNil(t, waitTimeout, "a single parked long poll", func() error {
		inFlight, _, _ := w.state()
		if n, parked := f.syncer.ExtraPollers(), f.orch.Stats().LongPollsWaiting; n != 0 || inFlight != 1 || parked != 1 {
			return fmt.Errorf("%d extra pollers, %d requests in flight, %d parked", n, inFlight, parked)
		}
		return nil
	})
	w.polls.ResetPeak()
	polls := f.orch.Stats().NextTask
	testpoll.Until(t, waitTimeout, "two more long polls", func() bool { return f.orch.Stats().NextTask >= polls+2 })
	if _, peak, _ := w.state(); peak != 1 {
		t.Fatalf("%d next-task requests in flight at once while idle, want 1", peak)
	}
}

// Drain stops every poller, the extra ones too, while tasks keep coming: every task the agent
// took is stored and reported once, and of the tasks handed out none but the one of the long
// poll that drain gives up (the orchestrator offers that one again after its ack timeout) can
// miss the agent.
func TestDrainStopsEveryPollerAndLosesNoTask(t *testing.T) {
	t.Parallel()
	const slots = 4
	f, w := startWatched(t, slots)
	finishStored(t, f, w)
	var ids []string
	for range 50 * slots {
		ids = append(ids, f.orch.Enqueue("ECHO", []byte(`{}`), 0))
	}
	testpoll.Until(t, waitTimeout, "several pollers busy", func() bool { return f.syncer.ExtraPollers() > 0 })
	f.syncer.Drain()
	testpoll.UntilNil(t, waitTimeout, "every poller stopped", func() error {
		if inFlight, _, _ := w.state(); f.syncer.ExtraPollers() != 0 || inFlight != 0 {
			return fmt.Errorf("%d extra pollers, %d requests in flight", f.syncer.ExtraPollers(), inFlight)
		}
		return nil
	})
	var taken, missed []string
	for _, id := range ids {
		if st, _ := f.orch.Task(id); st.Status == orchestratortest.StatusPending {
			continue
		}
		if _, err := f.mem.Get(t.Context(), id); err != nil {
			missed = append(missed, id)
			continue
		}
		taken = append(taken, id)
		testpoll.UntilNil(t, waitTimeout, "task "+id+" reported", func() error {
			if st, _ := f.orch.Task(id); !st.IsFinal() || st.Offers != 1 || st.FinalReports != 1 {
				return fmt.Errorf("%s, offered %d times, %d final reports", st.Status, st.Offers, st.FinalReports)
			}
			return nil
		})
	}
	if len(taken) == 0 || len(taken)+len(missed) == len(ids) {
		t.Fatalf("%d of %d tasks taken before the drain: it did not come while tasks kept coming", len(taken), len(ids))
	}
	if len(missed) > 1 {
		t.Fatalf("handed out but never stored: %v (only the long poll's may be)", missed)
	}
	if _, _, violation := w.state(); violation != nil {
		t.Fatal(violation)
	}
}
