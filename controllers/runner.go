package controllers

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/go-logr/logr"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/util/workqueue"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	"sigs.k8s.io/controller-runtime/pkg/source"

	"github.com/letsbe/sysadmin-agent/api/store"
	agentv1 "github.com/letsbe/sysadmin-agent/api/v1alpha1"
	"github.com/letsbe/sysadmin-agent/executors"
)

// Options configure a Runner.
type Options struct {
	// Store holds the Tasks; Notifier tells the controllers about new ones (usually the same
	// object).
	Store    store.Store
	Notifier store.Notifier
	// Executors maps each supported task type to its executor: one reconciler each.
	Executors map[string]executors.Executor
	// MaxConcurrentReconciles is the number of workers per task type of the cluster mode's
	// controllers, and of NewRunner's one controller, times the task types, when
	// MaxConcurrentTasks is zero.
	MaxConcurrentReconciles int
	// MaxConcurrentTasks, when above zero, is the one limit on Tasks executing at once, across
	// every type (AGENT_MAX_CONCURRENT_TASKS), whoever created them: a worker waits for a
	// free slot before it looks at a Task. NewRunner's one controller has that many workers.
	MaxConcurrentTasks int
	// MaxTimeout caps every Task's timeout.
	MaxTimeout time.Duration
	// Logger is the controllers' logger; it must be set (a zero logger would drop errors).
	Logger logr.Logger
	// Registry tracks running Tasks; a new one when nil.
	Registry *Registry
	// Observe is called once per Task that reaches a final phase in a reconciler, with the
	// time its executor took.
	Observe func(task *agentv1.Task, elapsed time.Duration)
	// Progress configures the live progress of running Tasks; none without a Hub.
	Progress ProgressOptions
	// StopGrace is how long an executor gets to return after its Task's deadline or
	// cancellation before the Task is failed without it; DefaultStopGrace when zero.
	StopGrace time.Duration
	// Admit, when set, decides right before a Task starts whether it may run; see
	// TaskReconciler.Admit.
	Admit func(ctx context.Context, task *agentv1.Task) error
	// ProcessKey seals the process groups the reconcilers record; see
	// TaskReconciler.ProcessKey.
	ProcessKey []byte
	// SkipNameValidation allows several Runners in one process (tests).
	SkipNameValidation bool
	// Stacks, when set, enables the Stack objects: the Stack controller, and the deploy
	// types' reconcilers recording each project's last known good revision as its Stack's
	// spec (stack_controller.go).
	Stacks *StackOptions
}

// runnerName names the Runner's one controller (in its metrics and log lines).
const runnerName = "tasks"

// Runner runs the Tasks of a Store without a cluster: one controller-runtime controller for
// all task types, whose workers hand each Task to its type's reconciler (and, with
// Options.Stacks, the Stack controller).
type Runner struct {
	opts       Options
	controller controller.TypedController[taskRequest]
	stacks     controller.TypedController[reconcile.Request] // nil without Options.Stacks
}

// taskRequest is the work item of the Runner's controller: a Task and its type (immutable, as
// the whole spec), so that a worker hands it to its type's reconciler without reading it.
type taskRequest struct {
	Name, Type string
}

// dispatcher is the Runner's reconciler: the reconciler of the Task's type, or the one that
// fails Tasks of unsupported types.
type dispatcher struct {
	byType      map[string]reconcile.Reconciler
	unsupported reconcile.Reconciler
}

// Reconcile implements reconcile.TypedReconciler.
func (d *dispatcher) Reconcile(ctx context.Context, req taskRequest) (reconcile.Result, error) {
	r, ok := d.byType[req.Type]
	if !ok {
		r = d.unsupported
	}
	return r.Reconcile(ctx, reconcile.Request{NamespacedName: types.NamespacedName{Name: req.Name}})
}

// NewRunner builds the controller. Nothing runs until Start.
func NewRunner(opts Options) (*Runner, error) {
	if opts.Store == nil || opts.Notifier == nil {
		return nil, errors.New("controllers: Store and Notifier are required")
	}
	if opts.Logger.GetSink() == nil {
		return nil, errors.New("controllers: Logger is required")
	}
	if opts.Registry == nil {
		opts.Registry = NewRegistry()
	}
	d := &dispatcher{byType: make(map[string]reconcile.Reconciler)}
	ks := opts.kinds()
	for _, k := range ks {
		if k.typ == "" {
			d.unsupported = k.reconciler
		} else {
			d.byType[k.typ] = k.reconciler
		}
	}
	workers := opts.MaxConcurrentTasks
	if workers <= 0 {
		workers = max(opts.MaxConcurrentReconciles, 1) * len(ks)
	}
	// The request's logger is built once; its values (the controller's name) are added to a
	// line only when one is written (a lazy sink defers even that). Reconcile adds the task
	// and its type: building a logger per request here cost more allocations.
	log := opts.Logger.WithValues("controller", runnerName)
	c, err := controller.NewTypedUnmanaged(runnerName, controller.TypedOptions[taskRequest]{
		Reconciler:              d,
		MaxConcurrentReconciles: workers,
		RecoverPanic:            ptr.To(true),
		Logger:                  opts.Logger,
		LogConstructor:          func(*taskRequest) logr.Logger { return log },
		SkipNameValidation:      ptr.To(opts.SkipNameValidation),
		// client-go's rate-limiting queue: two goroutines of its own where controller-runtime's
		// priority queue has five, and nothing here has priorities to give.
		UsePriorityQueue: ptr.To(false),
	})
	if err != nil {
		return nil, fmt.Errorf("controllers: new %s controller: %w", runnerName, err)
	}
	if err := c.Watch(taskSource(opts.Store, opts.Notifier)); err != nil {
		return nil, fmt.Errorf("controllers: watch tasks: %w", err)
	}
	r := &Runner{opts: opts, controller: c}
	if opts.Stacks != nil {
		if r.stacks, err = newStackController(opts); err != nil {
			return nil, err
		}
	}
	return r, nil
}

// kind is one controller of the cluster mode, and one reconciler of the Runner: the Tasks it
// handles and how.
type kind struct {
	name       string
	typ        string // "" for the Tasks of every type no executor handles
	handles    func(typ string) bool
	reconciler reconcile.Reconciler
	workers    int
}

// kinds returns the reconcilers of both modes: one per task type, and one that fails the
// Tasks of every other type.
func (opts *Options) kinds() []kind {
	var slots chan struct{} // shared by every type's reconciler
	if opts.MaxConcurrentTasks > 0 {
		slots = make(chan struct{}, opts.MaxConcurrentTasks)
	}
	var ks []kind
	for _, typ := range opts.types() {
		r := opts.reconciler(typ)
		r.Slots = slots
		ks = append(ks, kind{
			name:       controllerName(typ),
			typ:        typ,
			handles:    func(t string) bool { return t == typ },
			reconciler: r,
			workers:    max(opts.MaxConcurrentReconciles, 1),
		})
	}
	supported := func(t string) bool { _, ok := opts.Executors[t]; return ok }
	return append(ks, kind{
		name:       unsupportedName,
		handles:    func(t string) bool { return !supported(t) },
		reconciler: &unsupportedReconciler{store: opts.Store, supported: supported, observe: opts.Observe},
		workers:    1,
	})
}

// Registry returns the registry of running Tasks.
func (r *Runner) Registry() *Registry { return r.opts.Registry }

// Types returns the supported task types, sorted.
func (r *Runner) Types() []string { return r.opts.types() }

// types returns the task types of the executors, sorted.
func (opts *Options) types() []string { return executors.Types(opts.Executors) }

// reconciler returns the reconciler of one task type.
func (opts *Options) reconciler(typ string) *TaskReconciler {
	return &TaskReconciler{
		Type:       typ,
		Executor:   opts.Executors[typ],
		Store:      opts.Store,
		Registry:   opts.Registry,
		MaxTimeout: opts.MaxTimeout,
		StopGrace:  opts.StopGrace,
		Observe:    opts.observeFor(typ),
		Progress:   opts.Progress,
		Admit:      opts.Admit,
		ProcessKey: opts.ProcessKey,
	}
}

// Start runs the controllers (the Tasks', the Stacks') until ctx ends, then waits for their
// workers to return. The Tasks' executions are not bound to ctx: stop them first with
// Registry().CancelAll.
func (r *Runner) Start(ctx context.Context) error {
	if r.stacks == nil {
		return r.controller.Start(ctx)
	}
	stacks := make(chan error, 1)
	go func() { stacks <- r.stacks.Start(ctx) }()
	err := r.controller.Start(ctx)
	return errors.Join(err, <-stacks)
}

// taskSource feeds the Runner's controller: every Task that is not final at start, and every
// new or changed Task that is still pending. It never blocks the store: q.Add is
// non-blocking, also after shutdown.
//
// A change of a Running Task is not queued: only this process's worker marks a Task Running,
// and that worker holds it until it has written the final status (or failed it, or left it to
// the rate-limited retries of its own error), so a reconcile for it would only find it held or
// final. A Task left Running by an earlier process is queued by the list at start.
func taskSource(st store.Store, n store.Notifier) source.TypedSource[taskRequest] {
	return source.TypedFunc[taskRequest](func(ctx context.Context, q workqueue.TypedRateLimitingInterface[taskRequest]) error {
		enqueue := func(t *agentv1.Task) {
			if !t.Status.Phase.IsFinal() {
				q.Add(taskRequest{Name: t.Name, Type: t.Spec.Type})
			}
		}
		unsubscribe := n.Subscribe(func(ev store.Event) {
			if ev.Type != store.Deleted && ev.Task.Status.Phase != agentv1.TaskRunning {
				enqueue(ev.Task)
			}
		})
		context.AfterFunc(ctx, unsubscribe)
		list, err := st.List(ctx)
		if err != nil {
			return fmt.Errorf("list tasks: %w", err)
		}
		for i := range list.Items {
			enqueue(&list.Items[i])
		}
		return nil
	})
}

func controllerName(typ string) string {
	return "task-" + typ
}

// Cancel stops the named Task with cause: a running one through its context, a pending one by
// failing it before a worker takes it. It reports whether the Task was found unfinished.
func Cancel(ctx context.Context, s store.Store, reg *Registry, name string, cause error) (bool, error) {
	var found bool
	_, err := store.MutateStatus(ctx, s, name, func(t *agentv1.Task) bool {
		switch t.Status.Phase {
		case agentv1.TaskSucceeded, agentv1.TaskFailed:
			found = false
			return false
		case agentv1.TaskRunning:
			// The worker registers before it marks the Task Running, so it is reachable here.
			found = reg.Cancel(name, cause)
			return false
		}
		found = true
		initialize(t, nowTime())
		t.Status.MarkFailed(nowTime(), t.Generation, agentv1.ReasonCancelled, cause.Error())
		return true
	})
	if apierrors.IsNotFound(err) {
		return false, nil
	}
	return found, err
}
