package orchestratorsync

import (
	"context"
	"encoding/json"
	"sync"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/util/workqueue"

	"github.com/letsbe/sysadmin-agent/api/store"
	agentv1 "github.com/letsbe/sysadmin-agent/api/v1alpha1"
)

// reportTimeout bounds one report request.
const reportTimeout = 30 * time.Second

// reporter delivers each Task's RUNNING report (best effort, superseded by the final one) and
// its final report (until accepted), with per-task backoff. Delivery state lives in the Task's
// status, so it survives whatever the store survives.
type reporter struct {
	s     *Syncer
	queue workqueue.TypedDelayingInterface[string]

	mu          sync.Mutex
	attempts    map[string]int
	retained    []string // reported final Tasks, oldest first
	retainedSet map[string]struct{}
	idle        *sync.Cond
}

func newReporter(s *Syncer) *reporter {
	r := &reporter{
		s:           s,
		queue:       workqueue.NewTypedDelayingQueueWithConfig(workqueue.TypedDelayingQueueConfig[string]{Name: ""}),
		attempts:    make(map[string]int),
		retainedSet: make(map[string]struct{}),
	}
	r.idle = sync.NewCond(&r.mu)
	return r
}

func (r *reporter) enqueueExisting(ctx context.Context) error {
	list, err := r.s.opts.Store.List(ctx)
	if err != nil {
		return err
	}
	for i := range list.Items {
		t := &list.Items[i]
		if needsReport(t) {
			r.queue.Add(t.Name)
		} else if t.Status.Report.FinalReported {
			r.retain(t.Name)
		}
	}
	return nil
}

// run starts the workers and returns when ctx ends.
func (r *reporter) run(ctx context.Context) {
	stop := context.AfterFunc(ctx, r.queue.ShutDown)
	defer stop()
	var wg sync.WaitGroup
	for range r.s.opts.ReportWorkers {
		wg.Go(func() {
			for r.next(ctx) {
			}
		})
	}
	wg.Wait()
}

func (r *reporter) next(ctx context.Context) bool {
	name, shutdown := r.queue.Get()
	if shutdown {
		return false
	}
	defer r.queue.Done(name)
	delay, retry := r.deliver(ctx, name)
	if retry && ctx.Err() == nil {
		r.queue.AddAfter(name, delay)
	}
	return true
}

// deliver sends what the Task needs and returns whether (and when) to try again.
func (r *reporter) deliver(ctx context.Context, name string) (time.Duration, bool) {
	task, err := r.s.opts.Store.Get(ctx, name)
	if apierrors.IsNotFound(err) {
		r.forget(name)
		return 0, false
	}
	if err != nil {
		return time.Second, true
	}
	if !needsReport(task) {
		r.forget(name)
		return 0, false
	}
	log := r.s.log.WithValues("task", name)
	final := task.Status.Phase.IsFinal()
	report := buildReport(task, r.s.AgentID())

	sendCtx, cancel := context.WithTimeout(ctx, reportTimeout)
	err = r.s.session.do(sendCtx, func(agentID string) error {
		report.AgentID = agentID
		return r.s.opts.Client.Report(sendCtx, task.TaskID(), report)
	})
	cancel()
	switch {
	case err == nil:
		r.markDelivered(ctx, name, final, false, "")
		log.V(1).Info("Report delivered", "status", report.Status)
		return 0, false
	case IsConflict(err) || IsNotFound(err):
		log.Info("Orchestrator refused the report for good; not sending it again", "status", report.Status, "error", err.Error())
		r.markDelivered(ctx, name, final, true, err.Error())
		return 0, false
	case ctx.Err() != nil:
		return 0, false
	}
	r.mu.Lock()
	attempt := r.attempts[name]
	r.attempts[name] = attempt + 1
	r.mu.Unlock()
	delay := NextDelay(r.s.opts.Backoff, attempt, err)
	if !final {
		// RUNNING is best effort: one retry at most, and the final report supersedes it.
		if attempt >= 1 {
			log.Info("Giving up on the RUNNING report", "error", err.Error())
			r.markDelivered(ctx, name, false, true, err.Error())
			return 0, false
		}
	}
	log.Info("Report not delivered; retrying", "status", report.Status, "attempt", attempt+1, "retryIn", delay.Round(time.Millisecond).String(), "error", err.Error())
	return delay, true
}

func (r *reporter) forget(name string) {
	r.mu.Lock()
	delete(r.attempts, name)
	r.mu.Unlock()
}

func (r *reporter) markDelivered(ctx context.Context, name string, final, rejected bool, msg string) {
	r.forget(name)
	now := metav1.NewTime(r.s.clock.Now().UTC())
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), reportTimeout)
	defer cancel()
	_, err := store.MutateStatus(ctx, r.s.opts.Store, name, func(t *agentv1.Task) bool {
		if final {
			if t.Status.Report.FinalReported {
				return false
			}
			t.Status.MarkReported(now, rejected, msg)
			// Delivered: the result (up to megabytes of output) has no further use here.
			t.Status.Result = nil
			return true
		}
		if t.Status.Report.RunningReported {
			return false
		}
		t.Status.Report.RunningReported = true
		return true
	})
	if err != nil && !apierrors.IsNotFound(err) {
		r.s.log.Error(err, "Cannot record the report's delivery", "task", name)
	}
}

// retain keeps a reported final Task for inspection, deleting the oldest beyond the limit.
// It runs inside store writes, so deletion happens on another goroutine.
func (r *reporter) retain(name string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, ok := r.retainedSet[name]; ok {
		return
	}
	r.retainedSet[name] = struct{}{}
	r.retained = append(r.retained, name)
	if len(r.retained) <= r.s.opts.RetainFinished {
		return
	}
	evict := r.retained[0]
	r.retained = r.retained[1:]
	delete(r.retainedSet, evict)
	go func() {
		_ = r.s.opts.Store.Delete(context.Background(), evict)
	}()
}

// flush waits until no Task needs a final report, or ctx ends.
func (r *reporter) flush(ctx context.Context) bool {
	for {
		list, err := r.s.opts.Store.List(ctx)
		if err != nil {
			return false
		}
		pending := 0
		for i := range list.Items {
			if t := &list.Items[i]; t.Status.Phase.IsFinal() && !t.Status.Report.FinalReported {
				pending++
			}
		}
		if pending == 0 {
			return true
		}
		if sleep(ctx, r.s.clock, 50*time.Millisecond) != nil {
			return false
		}
	}
}

// buildReport turns a Task's status into the wire report: RUNNING while it runs, then
// COMPLETED or FAILED.
func buildReport(t *agentv1.Task, agentID string) Report {
	st := t.Status
	r := Report{AgentID: agentID, Status: StatusRunning}
	switch st.Phase {
	case agentv1.TaskSucceeded:
		r.Status = StatusCompleted
	case agentv1.TaskFailed:
		r.Status = StatusFailed
		r.Error = st.Error
	}
	if st.Result != nil && len(st.Result.Raw) > 0 && r.Status != StatusRunning {
		r.Result = json.RawMessage(st.Result.Raw)
	}
	// Times go out at the store's (second) precision, so that a report re-sent after a restart
	// is byte-identical to the first one and the orchestrator sees a harmless repeat.
	if st.StartTime != nil {
		ts := st.StartTime.UTC().Truncate(time.Second)
		r.StartedAt = &ts
	}
	if st.CompletionTime != nil && r.Status != StatusRunning {
		ts := st.CompletionTime.UTC().Truncate(time.Second)
		r.FinishedAt = &ts
	}
	r.Events = make([]Event, 0, len(st.Events))
	for _, e := range st.Events {
		r.Events = append(r.Events, Event{Time: e.Time.UTC().Truncate(time.Second), Type: e.Type, Message: e.Message})
	}
	return r
}
