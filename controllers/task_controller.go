package controllers

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"runtime/debug"
	"strings"
	"sync"
	"time"

	"github.com/go-logr/logr"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/letsbe/sysadmin-agent/api/progress"
	"github.com/letsbe/sysadmin-agent/api/store"
	agentv1 "github.com/letsbe/sysadmin-agent/api/v1alpha1"
	"github.com/letsbe/sysadmin-agent/executors"
)

// ErrInterrupted is the error of a Task found RUNNING when no worker of this process runs it:
// the agent stopped during execution. Such a Task is never re-run.
var ErrInterrupted = errors.New("interrupted: agent restarted during execution")

// finalWriteTimeout bounds the final status write, which must not be cut short by shutdown.
const finalWriteTimeout = 30 * time.Second

// DefaultStopGrace is how long an executor gets to return after its context ended (deadline or
// cancellation) before the watchdog ends the Task without it.
const DefaultStopGrace = 15 * time.Second

// ErrExecutorStuck is part of the error of a Task whose executor did not return within the stop
// grace after its context ended: the Task is FAILED and its worker freed, while the executor's
// goroutine is left behind.
var ErrExecutorStuck = errors.New("executor did not stop")

// TaskReconciler drives Tasks of one type from Pending to a final phase with its executor. All
// task types share it; a type differs only in its Executor.
type TaskReconciler struct {
	// Type is the task type this reconciler handles, e.g. ECHO.
	Type string
	// Executor runs the payload.
	Executor executors.Executor
	// Store holds the Tasks.
	Store store.Store
	// Registry tracks running Tasks for cancellation; shared by all reconcilers.
	Registry *Registry
	// Slots, when set, bounds the Tasks executing at once across every reconciler sharing it
	// (Options.MaxConcurrentTasks): each reconcile holds one slot.
	Slots chan struct{}
	// MaxTimeout caps every Task's timeout, and applies when a Task has none.
	MaxTimeout time.Duration
	// Now returns the current time; time.Now when nil.
	Now func() time.Time
	// Observe, when set, is called once per Task that reaches a final phase here, with the
	// time its executor took (zero when it never ran).
	Observe func(task *agentv1.Task, elapsed time.Duration)
	// Progress configures the live progress of executions; none without a Hub.
	Progress ProgressOptions
	// StopGrace is how long the executor gets to return once its context ended; then the
	// watchdog fails the Task and frees the worker. DefaultStopGrace when zero.
	StopGrace time.Duration
	// Admit, when set, is asked right before a Task starts whether it may run (signature,
	// expiry, policy); an error ends the Task Failed (Refused) with it and nothing runs.
	Admit func(ctx context.Context, task *agentv1.Task) error
	// ProcessKey seals the process groups recorded in the Tasks' status; the group of an
	// interrupted Task is stopped only when its seal verifies. Without it none ever is.
	ProcessKey []byte

	// unwritten holds, by Task name, the outcome of an execution whose final status could not
	// be written (the API server unreachable past finalWriteTimeout, say): the retry writes it,
	// instead of taking the Task, Running with no worker, for one the agent stopped in.
	unwritten sync.Map // string → unwrittenFinal
}

// unwrittenFinal is an execution's outcome waiting for its final status to be written.
type unwrittenFinal struct {
	out     outcome
	elapsed time.Duration
}

// Reconcile implements reconcile.Reconciler. A new Task (no status yet) or a Pending one is
// marked Running, executed and given its final status in one pass. Execution errors end the Task FAILED (a payload that can
// never succeed also returns a TerminalError); only store errors are retried.
func (r *TaskReconciler) Reconcile(ctx context.Context, req reconcile.Request) (reconcile.Result, error) {
	log := ctrl.LoggerFrom(ctx).WithValues("task", req.Name, "type", r.Type)
	ctx = ctrl.LoggerInto(ctx, log)
	if r.Slots != nil {
		// Before reading the Task: what it says (a cancellation, its expiry) is read after the
		// wait.
		select {
		case r.Slots <- struct{}{}:
			defer func() { <-r.Slots }()
		case <-ctx.Done():
			return reconcile.Result{}, ctx.Err()
		}
	}

	// Read, never changed here: it may be the store's own (store.View).
	task, err := store.View(ctx, r.Store, req.Name)
	if err != nil {
		if apierrors.IsNotFound(err) {
			r.unwritten.Delete(req.Name)
			return reconcile.Result{}, nil
		}
		return reconcile.Result{}, fmt.Errorf("get task %s: %w", req.Name, err)
	}
	if task.Spec.Type != r.Type {
		return reconcile.Result{}, nil
	}

	switch task.Status.Phase {
	case agentv1.TaskSucceeded, agentv1.TaskFailed:
		r.unwritten.Delete(req.Name) // written meanwhile, by this worker's retry or another writer
		return reconcile.Result{}, nil
	case agentv1.TaskRunning:
		if r.Registry.IsRunning(task.Name) {
			return reconcile.Result{}, nil
		}
		if v, ok := r.unwritten.Load(task.Name); ok {
			// It ran here, and writing its final status failed: write that outcome again.
			u := v.(unwrittenFinal)
			if err := r.finish(ctx, task.Name, u.out, u.elapsed); err != nil {
				return reconcile.Result{}, err
			}
			r.unwritten.Delete(task.Name)
			return reconcile.Result{}, nil
		}
		// Running in the store, but no worker here runs it: the agent stopped mid-execution.
		log.Info("Task was running when the agent stopped; failing it, not re-running it")
		out := outcome{err: ErrInterrupted, reason: agentv1.ReasonInterrupted}
		out.note = r.killLeftover(log, task)
		return reconcile.Result{}, r.finish(ctx, task.Name, out, 0)
	}

	if err := r.admit(ctx, task); err != nil {
		log.Info("Task refused", "error", err.Error())
		if ferr := r.finish(ctx, task.Name, outcome{err: err, reason: agentv1.ReasonRefused}, 0); ferr != nil {
			return reconcile.Result{}, ferr
		}
		return reconcile.Result{}, reconcile.TerminalError(err)
	}

	timeout := r.timeout(task)
	execCtx, cancel := context.WithCancelCause(context.WithoutCancel(ctx))
	defer cancel(nil)
	r.Registry.start(task.Name, cancel)
	defer r.Registry.done(task.Name)

	running := false
	_, err = store.MutateViewed(ctx, r.Store, task, func(t *agentv1.Task) bool {
		if t.Status.Phase != "" && !t.Status.Phase.IsPending() {
			return false // changed meanwhile (cancelled): nothing runs
		}
		initialize(t, r.now())
		t.Status.MarkRunning(r.now(), t.Generation)
		running = true
		return true
	})
	if err == nil && !running {
		return reconcile.Result{}, nil
	}
	if err != nil {
		if apierrors.IsNotFound(err) {
			return reconcile.Result{}, nil
		}
		if errors.Is(err, store.ErrNotDurable) {
			// Nothing runs unless its Running status is durable: fail the Task instead (if even
			// that cannot be written, it stays as it is, and is never run by this pass).
			log.Error(err, "Cannot make the task's Running status durable; failing it without running it")
			if ferr := r.finish(ctx, task.Name, outcome{err: err, reason: agentv1.ReasonFailed}, 0); ferr != nil {
				log.Error(ferr, "Cannot fail the task either")
			}
			return reconcile.Result{}, nil
		}
		return reconcile.Result{}, fmt.Errorf("mark task %s running: %w", task.Name, err)
	}
	if v := log.V(1); v.Enabled() { // timeout.String() allocates, also for a line not written
		v.Info("Task started", "timeout", timeout.String())
	}

	execCtx, cancelTimeout := context.WithTimeoutCause(execCtx, timeout, &executors.TimeoutError{After: timeout})
	defer cancelTimeout()
	execCtx = executors.WithProcessHook(execCtx, func(ref executors.ProcessRef) { r.recordProcess(ctx, log, task.Name, ref) })
	execCtx, stopProgress := r.Progress.startProgress(execCtx, task.Name)
	execCtx = executors.WithReporter(execCtx, &taskReporter{r: r, ctx: ctx, log: log, name: task.Name})
	started := time.Now()
	out := r.execute(execCtx, log, task)
	out.events = stopProgress()
	elapsed := time.Since(started)
	if err := r.finish(ctx, task.Name, out, elapsed); err != nil {
		// Retried with backoff (the error), as the outcome kept here.
		r.unwritten.Store(task.Name, unwrittenFinal{out: out, elapsed: elapsed})
		return reconcile.Result{}, err
	}
	if out.err != nil && out.reason == agentv1.ReasonInvalidSpec {
		return reconcile.Result{}, reconcile.TerminalError(out.err)
	}
	return reconcile.Result{}, nil
}

// admit asks Admit, turning a panic into a refusal: a Task nobody could vouch for never runs.
func (r *TaskReconciler) admit(ctx context.Context, task *agentv1.Task) (err error) {
	if r.Admit == nil {
		return nil
	}
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("admission check panicked: %v", p)
		}
	}()
	return r.Admit(ctx, task)
}

// outcome is what one execution produced.
type outcome struct {
	result *runtime.RawExtension
	err    error
	reason string
	note   string           // an extra event, if any
	events []progress.Event // the executor's own, for the final status
}

// recordProcess makes the identity of a process group the executor started durable, so that
// an agent restarted after a crash can stop it instead of leaving it running unowned.
func (r *TaskReconciler) recordProcess(ctx context.Context, log logr.Logger, name string, ref executors.ProcessRef) {
	_, err := store.MutateStatus(context.WithoutCancel(ctx), r.Store, name, func(t *agentv1.Task) bool {
		p := &agentv1.ProcessRef{PGID: int64(ref.PGID), BootID: ref.BootID, StartTicks: int64(ref.StartTicks)}
		p.Seal = sealProcess(r.ProcessKey, t.UID, p)
		t.Status.Process = p
		return true
	})
	if err != nil {
		log.Error(err, "Cannot record the task's process group", "pgid", ref.PGID)
		return
	}
	log.V(1).Info("Process group recorded", "pgid", ref.PGID)
}

// taskReporter records the conditions an executor reports on its Task, one status write
// each: executors report a handful per Task, at phase changes.
type taskReporter struct {
	r    *TaskReconciler
	ctx  context.Context
	log  logr.Logger
	name string
}

func (t *taskReporter) Condition(typ string, status bool, reason, message string) {
	st := metav1.ConditionFalse
	if status {
		st = metav1.ConditionTrue
	}
	t.mutate("condition "+typ, func(task *agentv1.Task) {
		meta.SetStatusCondition(&task.Status.Conditions, metav1.Condition{
			Type: typ, Status: st, Reason: reason, Message: message, ObservedGeneration: task.Generation,
		})
	})
}

func (t *taskReporter) mutate(what string, fn func(*agentv1.Task)) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(t.ctx), finalWriteTimeout)
	defer cancel()
	_, err := store.MutateStatus(ctx, t.r.Store, t.name, func(task *agentv1.Task) bool {
		if task.Status.Phase.IsFinal() {
			return false
		}
		fn(task)
		return true
	})
	if err != nil {
		t.log.Error(err, "Cannot record what the executor reported", "what", what)
	}
}

// execute runs the executor, turning a panic into an error and the context's cause (timeout,
// cancellation) into the Task's error.
func (r *TaskReconciler) execute(ctx context.Context, log logr.Logger, task *agentv1.Task) (out outcome) {
	defer func() {
		if p := recover(); p != nil {
			log.Error(fmt.Errorf("panic: %v", p), "Executor panicked", "stack", string(debug.Stack()))
			out = outcome{err: fmt.Errorf("executor panicked: %v", p), reason: agentv1.ReasonPanicked}
		}
	}()

	// An orchestrator task always has a payload, JSON null at least (see orchestratorsync's
	// wire types), but stores that keep Tasks as JSON drop a null field (the API server, the
	// journal): a missing payload is null, so every mode reports the same error for it.
	payload := json.RawMessage("null")
	if task.Spec.Payload != nil && len(task.Spec.Payload.Raw) > 0 {
		payload = task.Spec.Payload.Raw
	}
	ret := r.run(ctx, log, payload)
	switch {
	case ret.stuck:
		cause := context.Cause(ctx)
		return outcome{err: fmt.Errorf("%w: %w", cause, ErrExecutorStuck), reason: reasonFor(cause)}
	case ret.panicked:
		log.Error(fmt.Errorf("panic: %v", ret.panic), "Executor panicked", "stack", string(ret.stack))
		return outcome{err: fmt.Errorf("executor panicked: %v", ret.panic), reason: agentv1.ReasonPanicked}
	}
	result, err := ret.result, ret.err
	if result != nil {
		raw, merr := marshalResult(result)
		if merr != nil {
			return outcome{err: fmt.Errorf("encode result: %w", merr), reason: agentv1.ReasonFailed}
		}
		out.result = raw
	}
	if err == nil {
		if cause := context.Cause(ctx); cause != nil {
			// Finished, but after its deadline or cancellation: it does not count.
			err = cause
		} else {
			return out
		}
	}
	if cause := context.Cause(ctx); cause != nil && (errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)) {
		err = withCause(cause, err)
	}
	out.err = err
	out.reason = reasonFor(err)
	return out
}

// run is the watchdog around the executor: it returns what the executor returned, or, when
// the executor is still running StopGrace after ctx ended, stuck. A stuck executor's goroutine
// is left behind (it can only be logged: Go cannot stop it), but it holds neither the worker
// nor the shutdown. A panic in the executor's goroutine is recovered there and returned.
func (r *TaskReconciler) run(ctx context.Context, log logr.Logger, payload json.RawMessage) (ret returned) {
	done := make(chan returned, 1) // buffered: a late executor must not block forever
	go func() {
		var ret returned
		defer func() {
			if p := recover(); p != nil {
				ret = returned{panicked: true, panic: p, stack: debug.Stack()}
			}
			done <- ret
		}()
		ret.result, ret.err = r.Executor.Execute(ctx, payload)
	}()
	select {
	case ret = <-done:
	case <-ctx.Done():
		grace := r.StopGrace
		if grace <= 0 {
			grace = DefaultStopGrace
		}
		timer := time.NewTimer(grace)
		defer timer.Stop()
		select {
		case ret = <-done:
		case <-timer.C:
			log.Error(ErrExecutorStuck, "Executor ignored the end of its context; failing the task and leaving its goroutine behind",
				"cause", context.Cause(ctx).Error(), "grace", grace.String())
			go func() {
				<-done
				log.Info("Stuck executor returned at last")
			}()
			return returned{stuck: true}
		}
	}
	return ret
}

// returned is what run saw of an execution.
type returned struct {
	result   any
	err      error
	panicked bool
	panic    any
	stack    []byte
	stuck    bool // the executor did not return within the stop grace
}

// withCause explains a context error by the context's cause (a timeout, a cancellation),
// keeping what the executor said about where it stopped, if it said more than the bare
// context error.
func withCause(cause, err error) error {
	switch {
	case errors.Is(err, cause):
		return err
	case err == context.Canceled || err == context.DeadlineExceeded || strings.Contains(cause.Error(), err.Error()):
		return cause
	}
	return &causedError{cause: cause, err: err}
}

type causedError struct{ cause, err error }

func (e *causedError) Error() string   { return e.cause.Error() + ": " + e.err.Error() }
func (e *causedError) Unwrap() []error { return []error{e.cause, e.err} }

func reasonFor(err error) string {
	var timeout *executors.TimeoutError
	switch {
	case errors.As(err, &timeout):
		return agentv1.ReasonTimedOut
	case errors.Is(err, ErrCancelled), errors.Is(err, ErrShuttingDown):
		return agentv1.ReasonCancelled
	case executors.IsPermanent(err):
		return agentv1.ReasonInvalidSpec
	default:
		return agentv1.ReasonFailed
	}
}

func marshalResult(result any) (*runtime.RawExtension, error) {
	if raw, ok := result.(json.RawMessage); ok {
		return &runtime.RawExtension{Raw: raw}, nil
	}
	raw, err := json.Marshal(result)
	if err != nil {
		return nil, err
	}
	return &runtime.RawExtension{Raw: raw}, nil
}

// finish writes the final status, re-reading on conflict so that concurrent writers (the
// reporter marking RUNNING delivered) never cost the result. The write outlives the caller's
// context: a result must not be lost to shutdown.
func (r *TaskReconciler) finish(ctx context.Context, name string, out outcome, elapsed time.Duration) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), finalWriteTimeout)
	defer cancel()
	task, final, err := r.writeFinal(ctx, name, out)
	if err != nil && !apierrors.IsNotFound(err) && !errors.Is(err, store.ErrNotDurable) && out.result != nil {
		// The store refused the status, most likely for its size (an API server takes about
		// 1.5 MiB per object): keep the outcome, drop the result, and say so.
		ctrl.LoggerFrom(ctx).Error(err, "Cannot store the task's result; storing its status without it", "resultBytes", len(out.result.Raw))
		out.note = strings.TrimSpace(out.note + fmt.Sprintf(" result of %d bytes dropped: the store refused it", len(out.result.Raw)))
		out.result = nil
		task, final, err = r.writeFinal(ctx, name, out)
	}
	if err != nil && apierrors.IsNotFound(err) { // IsNotFound allocates, also for nil
		return nil
	}
	if errors.Is(err, store.ErrNotDurable) {
		// The store keeps the status and the journal writes it once it can; it is reported then.
		ctrl.LoggerFrom(ctx).Error(err, "Cannot make the task's final status durable yet")
		return nil
	}
	if err != nil {
		return fmt.Errorf("write final status of task %s: %w", name, err)
	}
	log := ctrl.LoggerFrom(ctx)
	if final == nil {
		return nil
	}
	if out.err != nil {
		log.Info("Task failed", "reason", out.reason, "error", task.Status.Error)
	} else {
		log.V(1).Info("Task succeeded")
	}
	if r.Observe != nil {
		r.Observe(task, elapsed)
	}
	return nil
}

// writeFinal applies the outcome to the Task unless it is final already; final is the Task
// as written, nil when nothing was written.
func (r *TaskReconciler) writeFinal(ctx context.Context, name string, out outcome) (task, final *agentv1.Task, err error) {
	task, err = store.MutateStatus(ctx, r.Store, name, func(t *agentv1.Task) bool {
		if t.Status.Phase.IsFinal() {
			return false
		}
		initialize(t, r.now())
		t.Status.Result = out.result
		for _, ev := range out.events {
			t.Status.AddEvent(metav1.NewTime(ev.Time), ev.Type, ev.Message)
		}
		if out.note != "" {
			t.Status.AddEvent(r.now(), agentv1.EventWarning, out.note)
		}
		if out.err == nil {
			t.Status.MarkSucceeded(r.now(), t.Generation)
		} else {
			t.Status.MarkFailed(r.now(), t.Generation, out.reason, out.err.Error())
		}
		final = t
		return true
	})
	return task, final, err
}

func (r *TaskReconciler) timeout(task *agentv1.Task) time.Duration {
	d := r.MaxTimeout
	if d <= 0 {
		d = time.Hour
	}
	if t := task.Spec.Timeout; t != nil && t.Duration > 0 && t.Duration < d {
		d = t.Duration
	}
	return d
}

func (r *TaskReconciler) now() metav1.Time {
	if r.Now != nil {
		return metav1.NewTime(r.Now().UTC())
	}
	return nowTime()
}

func nowTime() metav1.Time { return metav1.NewTime(time.Now().UTC()) }

// initialize gives a Task created without status (the way intake creates them) its Pending
// status, in the same write as its next change.
func initialize(t *agentv1.Task, now metav1.Time) {
	if t.Status.Phase == "" {
		t.Status.MarkPending(now, t.Generation)
	}
}
