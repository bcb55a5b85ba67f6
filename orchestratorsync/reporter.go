package orchestratorsync

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"runtime/debug"
	"sync"
	"time"

	"github.com/go-logr/logr"
	"k8s.io/utils/clock"

	"github.com/letsbe/sysadmin-agent/orchestratorsync/internal/deadline"
	"github.com/letsbe/sysadmin-agent/orchestratorsync/wire"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/util/workqueue"

	"github.com/letsbe/sysadmin-agent/api/store"
	agentv1 "github.com/letsbe/sysadmin-agent/api/v1alpha1"
)

// reportTimeout bounds one report request.
const reportTimeout = 30 * time.Second

// reporter delivers each Task's RUNNING report (the acknowledgement of a task held durably,
// retried until accepted or superseded by the final one) and its final report (until accepted,
// refused for good, or abandoned after the minimal report was refused too), with per-task
// backoff. Delivery state lives in the Task's status, so it survives whatever the store
// survives; how far a report was shrunk after 413 or 400 answers is kept here only, and
// recomputed after a restart from the same status (the bytes are deterministic).
type reporter struct {
	d     reporterDeps
	queue workqueue.TypedDelayingInterface[string]

	// deadlines bound the sends and the store writes that record them (reportTimeout).
	deadlines deadline.Shared

	mu     sync.Mutex
	state  map[string]*delivery
	direct map[string]*agentv1.Task // FAILED Tasks the store cannot hold (refused ids)
	// records is the parent of the store writes that record deliveries during run: not
	// cancelled with run's context, deferrable; one for all, so that they share deadlines.
	records context.Context
}

// delivery is the in-memory state of one Task's report.
type delivery struct {
	status   string // the report status this state is about; reset when it changes
	attempts int    // failed attempts so far, for the backoff
	budget   int    // current size budget; 0 means the configured one
	minimal  bool   // send only the minimal report
	reason   string // why the minimal report (a note in it)
}

// reporterDeps is what the reporter uses of the rest of the agent, and all of it.
type reporterDeps struct {
	store     store.Store
	delivered store.Delivered // nil: accepted finals are not remembered
	// unwritten reports whether a Task holds a status the store could not make durable yet.
	unwritten func(name string) bool
	// session holds the credential and the agent id reports go out under.
	session *session
	// beforeFinal cancels an in-flight progress report of the task, so none arrives after
	// its final report.
	beforeFinal func(name string)
	// onAbandoned counts a final report given up on.
	onAbandoned    func()
	workers        int
	maxReportBytes int
	backoff        Backoff
	clock          clock.Clock
	log            logr.Logger
}

func newReporter(d reporterDeps) *reporter {
	r := &reporter{
		d:      d,
		queue:  workqueue.NewTypedDelayingQueueWithConfig(workqueue.TypedDelayingQueueConfig[string]{Name: ""}),
		state:  make(map[string]*delivery),
		direct: make(map[string]*agentv1.Task),
	}
	return r
}

func (r *reporter) enqueueExisting(ctx context.Context) error {
	list, err := r.d.store.List(ctx)
	if err != nil {
		return err
	}
	for i := range list.Items {
		t := &list.Items[i]
		if needsReport(t) {
			r.queue.Add(t.Name)
		}
	}
	return nil
}

// run delivers queued reports, up to workers at once (on a lingerPool), and returns when ctx
// ends and the deliveries under way returned.
func (r *reporter) run(ctx context.Context) {
	r.mu.Lock()
	r.records = recordContext(ctx)
	r.mu.Unlock()
	stop := context.AfterFunc(ctx, r.queue.ShutDown)
	defer stop()
	var wg sync.WaitGroup
	defer wg.Wait()
	workers := newLingerPool(r.d.workers, workerLinger, &wg, func(name string) { r.process(ctx, name) })
	defer workers.close()
	for {
		name, shutdown := r.queue.Get()
		if shutdown {
			return
		}
		workers.run(name)
	}
}

// process delivers one queued report and queues it again when it must be retried.
func (r *reporter) process(ctx context.Context, name string) {
	defer r.queue.Done(name)
	delay, retry := r.deliverRecovered(ctx, name)
	if retry && ctx.Err() == nil {
		r.queue.AddAfter(name, delay)
	}
}

// panicRetry is how long a report whose delivery panicked waits before it is tried again.
var panicRetry = 10 * time.Second // a variable for the tests

// deliverRecovered is deliver on a worker that must not take the agent down: a panic is
// logged with its stack and the report tried again after panicRetry (never dropped for a bug).
func (r *reporter) deliverRecovered(ctx context.Context, name string) (delay time.Duration, retry bool) {
	defer func() {
		if p := recover(); p != nil {
			r.d.log.Error(fmt.Errorf("panic: %v", p), "Report delivery panicked; trying it again later",
				"task", name, "retryIn", panicRetry.String(), "stack", string(debug.Stack()))
			delay, retry = panicRetry, true
		}
	}()
	return r.deliver(ctx, name)
}

// reportDirect delivers the final report of a Task the store does not hold (it could not be
// persisted, or its id is too long to be stored) like any other: shrunk to fit, retried until
// accepted or refused for good, but only while the agent lives.
func (r *reporter) reportDirect(t *agentv1.Task) {
	key := directKey(t.TaskID())
	r.mu.Lock()
	r.direct[key] = t
	r.mu.Unlock()
	r.queue.Add(key)
}

// directKey is the queue key of a direct report: the id behind a prefix no Task name (a DNS
// subdomain) can have, so that it never stands for a stored Task of the same name.
func directKey(id string) string { return "!" + id }

// lookup returns the Task to report, to read only: a direct one, or the one in the store
// (store.View).
func (r *reporter) lookup(ctx context.Context, name string) (task *agentv1.Task, direct bool, err error) {
	r.mu.Lock()
	t, ok := r.direct[name]
	r.mu.Unlock()
	if ok {
		return t, true, nil
	}
	t, err = store.View(ctx, r.d.store, name)
	return t, false, err
}

// deliver sends what the Task needs and returns whether (and when) to try again.
func (r *reporter) deliver(ctx context.Context, name string) (time.Duration, bool) {
	task, direct, err := r.lookup(ctx, name)
	if err != nil {
		if apierrors.IsNotFound(err) {
			r.forget(name)
			return 0, false
		}
		return time.Second, true
	}
	if !direct && !needsReport(task) {
		r.forget(name)
		return 0, false
	}
	if !direct && r.d.unwritten(name) {
		return time.Second, true // reported once durable
	}
	final := task.Status.Phase.IsFinal()
	if final {
		r.d.beforeFinal(name) // a progress report in flight must not arrive after the final one
	}
	report := buildReport(task, r.d.session.currentID())
	st := r.stateFor(name, report.Status)

	var body []byte
	var minimal bool
	sendCtx, cancel := r.deadlines.Context(ctx, reportTimeout)
	err = r.d.session.do(sendCtx, func(c *wire.Client, agentID string) error {
		report.AgentID = agentID
		var err error
		if body, minimal, err = r.encode(report, st); err != nil {
			return err
		}
		return c.ReportBody(sendCtx, task.TaskID(), body)
	})
	cancel()
	class := wire.Classify(err)
	if class == wire.ClassNone {
		if final && r.d.delivered != nil {
			// The exact bytes accepted, before the Task may leave the store: a task offered
			// again later is answered with this same report (never run twice).
			r.d.delivered.RecordDelivered(task.TaskID(), body)
		}
		r.delivered(ctx, name, direct, final, false, "", "")
		if log := r.d.log.V(1); log.Enabled() { // its values would be made for nothing
			log.Info("Report delivered", "task", name, "status", report.Status, "bytes", len(body), "minimal", minimal)
		}
		return 0, false
	}
	log := r.d.log.WithValues("task", name)
	switch {
	case class == wire.ClassGone:
		log.Info("Orchestrator refused the report for good; not sending it again", "status", report.Status, "error", err.Error())
		r.delivered(ctx, name, direct, final, true, err.Error(), "")
		return 0, false
	case ctx.Err() != nil:
		return 0, false
	case (class == wire.ClassTooLarge || class == wire.ClassRefused) && minimal:
		if !final {
			log.Info("Orchestrator refused even the minimal RUNNING report; not sending it again", "error", err.Error())
			r.delivered(ctx, name, direct, false, true, err.Error(), "")
			return 0, false
		}
		msg := "orchestrator refused the minimal final report: " + err.Error()
		log.Error(err, "Orchestrator refused even the minimal final report; giving up on the task's report", "status", report.Status, "bytes", len(body))
		r.d.onAbandoned()
		r.delivered(ctx, name, direct, true, true, msg, "Final report abandoned: "+msg)
		return 0, false
	case class == wire.ClassTooLarge:
		r.mu.Lock()
		st.budget = len(body) / 2
		if st.budget < wire.MinReportBudget {
			st.minimal = true
			st.reason = fmt.Sprintf("the orchestrator refused the report as too large (HTTP 413) at every size down to %d bytes", len(body))
		}
		next := st.budget
		r.mu.Unlock()
		log.Info("Orchestrator refused the report as too large; sending a smaller one", "status", report.Status, "bytes", len(body), "budget", next)
		return 0, true
	case class == wire.ClassRefused:
		code := 0
		if ae, ok := errors.AsType[*wire.APIError](err); ok {
			code = ae.StatusCode
		}
		r.mu.Lock()
		st.minimal = true
		st.reason = fmt.Sprintf("the orchestrator refused the full report (HTTP %d)", code)
		r.mu.Unlock()
		log.Info("Orchestrator refused the report; sending the minimal report once", "status", report.Status, "bytes", len(body), "error", err.Error())
		return 0, true
	}
	r.mu.Lock()
	attempt := st.attempts
	st.attempts++
	r.mu.Unlock()
	delay := NextDelay(r.d.backoff, attempt, err)
	if class == wire.ClassPermanent {
		// No answer that says why (a certificate failure, say): nothing to shrink, and the
		// report must not be dropped while the agent lives; retry, slowly.
		delay = NextDelay(r.d.backoff, max(attempt, 16), err)
	}
	log.Info("Report not delivered; retrying", "status", report.Status, "attempt", attempt+1, "retryIn", delay.Round(time.Millisecond).String(), "error", err.Error())
	return delay, true
}

// stateFor returns the delivery state of name for a report of status, fresh when the status
// changed (the final report starts over from the full budget and no backoff).
func (r *reporter) stateFor(name, status string) *delivery {
	r.mu.Lock()
	defer r.mu.Unlock()
	st, ok := r.state[name]
	if !ok || st.status != status {
		st = &delivery{status: status}
		r.state[name] = st
	}
	return st
}

// encode renders the report for the state's budget, or the minimal report.
func (r *reporter) encode(report wire.Report, st *delivery) ([]byte, bool, error) {
	r.mu.Lock()
	budget, minimal, reason := st.budget, st.minimal, st.reason
	r.mu.Unlock()
	if budget <= 0 {
		budget = r.d.maxReportBytes
	}
	if minimal {
		full, err := json.Marshal(report)
		if err != nil {
			return nil, true, err
		}
		body, err := wire.EncodeMinimal(report, budget, len(full), reason)
		return body, true, err
	}
	return wire.EncodeWithin(report, budget)
}

func (r *reporter) forget(name string) {
	r.mu.Lock()
	delete(r.state, name)
	r.mu.Unlock()
}

// delivered records the orchestrator's last word on a report: accepted, or refused for good
// (rejected, with msg). A direct Task is then forgotten; a stored one records it in its
// status, with a warning event when event is set.
func (r *reporter) delivered(ctx context.Context, name string, direct, final, rejected bool, msg, event string) {
	if direct {
		r.mu.Lock()
		delete(r.direct, name)
		delete(r.state, name)
		r.mu.Unlock()
		return
	}
	r.markDelivered(ctx, name, final, rejected, msg, event)
}

func (r *reporter) markDelivered(ctx context.Context, name string, final, rejected bool, msg, event string) {
	r.forget(name)
	now := metav1.NewTime(r.d.clock.Now().UTC())
	r.mu.Lock()
	parent := r.records
	r.mu.Unlock()
	if parent == nil {
		parent = recordContext(ctx)
	}
	ctx, cancel := r.deadlines.Context(parent, reportTimeout)
	defer cancel()
	_, err := store.MutateStatus(ctx, r.d.store, name, func(t *agentv1.Task) bool {
		if final {
			if t.Status.Report.FinalReported {
				return false
			}
			if event != "" {
				t.Status.AddEvent(now, agentv1.EventWarning, event)
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
		r.d.log.Error(err, "Cannot record the report's delivery", "task", name)
	}
}

// recordContext returns the parent of a store write that records a delivery made under ctx:
// ctx's values without its cancellation, and deferrable: a delivery lost in a crash only sends
// the report once more, so the store need not wait for the write to be durable.
func recordContext(ctx context.Context) context.Context {
	return store.Deferrable(context.WithoutCancel(ctx))
}

// flush waits until no Task needs a final report, or ctx ends.
func (r *reporter) flush(ctx context.Context) bool {
	for {
		list, err := store.ViewList(ctx, r.d.store)
		if err != nil {
			return false
		}
		pending := 0
		for _, t := range list {
			if t.Status.Phase.IsFinal() && !t.Status.Report.FinalReported {
				pending++
			}
		}
		r.mu.Lock()
		pending += len(r.direct)
		r.mu.Unlock()
		if pending == 0 {
			return true
		}
		if sleep(ctx, r.d.clock, 50*time.Millisecond) != nil {
			return false
		}
	}
}

// EncodeReport returns the exact body of the report the agent sends for t under agentID, at
// most maxBytes long (wire.DefaultMaxReportBytes when maxBytes <= 0): the Task's status as
// RUNNING, COMPLETED or FAILED, its result shrunk to fit when the whole does not
// (wire.EncodeReport). The same Task status always gives the same bytes.
func EncodeReport(t *agentv1.Task, agentID string, maxBytes int) ([]byte, error) {
	return wire.EncodeReport(buildReport(t, agentID), maxBytes)
}

// buildReport turns a Task's status into the wire report: RUNNING while it runs, then
// COMPLETED or FAILED.
func buildReport(t *agentv1.Task, agentID string) wire.Report {
	st := t.Status
	r := wire.Report{AgentID: agentID, Status: wire.StatusRunning}
	switch st.Phase {
	case agentv1.TaskSucceeded:
		r.Status = wire.StatusCompleted
	case agentv1.TaskFailed:
		r.Status = wire.StatusFailed
		r.Error = st.Error
	}
	if st.Result != nil && len(st.Result.Raw) > 0 && r.Status != wire.StatusRunning {
		r.Result = json.RawMessage(st.Result.Raw)
	}
	// Times go out at the store's (second) precision, so that a report re-sent after a restart
	// is byte-identical to the first one and the orchestrator sees a harmless repeat.
	if st.StartTime != nil {
		ts := st.StartTime.UTC().Truncate(time.Second)
		r.StartedAt = &ts
	}
	if st.CompletionTime != nil && r.Status != wire.StatusRunning {
		ts := st.CompletionTime.UTC().Truncate(time.Second)
		r.FinishedAt = &ts
	}
	r.Events = make([]wire.Event, 0, len(st.Events))
	for _, e := range st.Events {
		r.Events = append(r.Events, wire.Event{Time: e.Time.UTC().Truncate(time.Second), Type: e.Type, Message: e.Message})
	}
	return r
}
