package controllers

import (
	"context"
	"errors"
	"fmt"
	"sync"
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
	// Executors maps each supported task type to its executor: one controller each.
	Executors map[string]executors.Executor
	// MaxConcurrentReconciles is the number of workers per task type.
	MaxConcurrentReconciles int
	// MaxConcurrentTasks, when above zero, is the one limit on Tasks executing at once, across
	// every type (AGENT_MAX_CONCURRENT_TASKS), whoever created them: a worker waits for a
	// free slot before it looks at a Task.
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

// Runner runs one controller per task type over a Store, without a cluster.
type Runner struct {
	opts        Options
	controllers []controller.TypedController[reconcile.Request]
}

// NewRunner builds the controllers. Nothing runs until Start.
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
	r := &Runner{opts: opts}
	for _, k := range opts.kinds() {
		c, err := controller.NewTypedUnmanaged(k.name, controller.TypedOptions[reconcile.Request]{
			Reconciler:              k.reconciler,
			MaxConcurrentReconciles: k.workers,
			RecoverPanic:            ptr.To(true),
			Logger:                  opts.Logger,
			SkipNameValidation:      ptr.To(opts.SkipNameValidation),
		})
		if err != nil {
			return nil, fmt.Errorf("controllers: new %s controller: %w", k.name, err)
		}
		if err := c.Watch(taskSource(opts.Store, opts.Notifier, k.handles)); err != nil {
			return nil, fmt.Errorf("controllers: watch %s tasks: %w", k.name, err)
		}
		r.controllers = append(r.controllers, c)
	}
	if opts.Stacks != nil {
		c, err := newStackController(opts)
		if err != nil {
			return nil, err
		}
		r.controllers = append(r.controllers, c)
	}
	return r, nil
}

// kind is one controller: the Tasks it handles and how.
type kind struct {
	name       string
	handles    func(typ string) bool
	reconciler reconcile.Reconciler
	workers    int
}

// kinds returns the controllers of both modes: one per task type, and one that fails the
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

// Start runs every controller until ctx ends, then waits for their workers to return. The
// Tasks' executions are not bound to ctx: stop them first with Registry().CancelAll.
func (r *Runner) Start(ctx context.Context) error {
	var wg sync.WaitGroup
	errs := make([]error, len(r.controllers))
	for i, c := range r.controllers {
		wg.Go(func() { errs[i] = c.Start(ctx) })
	}
	wg.Wait()
	return errors.Join(errs...)
}

// taskSource feeds a controller without a cluster: every Task it handles that is not final,
// at start and on change. It never blocks the store: q.Add is non-blocking, also after
// shutdown.
func taskSource(st store.Store, n store.Notifier, handles func(typ string) bool) source.TypedSource[reconcile.Request] {
	return source.TypedFunc[reconcile.Request](func(ctx context.Context, q workqueue.TypedRateLimitingInterface[reconcile.Request]) error {
		enqueue := func(t *agentv1.Task) {
			if handles(t.Spec.Type) && !t.Status.Phase.IsFinal() {
				q.Add(reconcile.Request{NamespacedName: types.NamespacedName{Name: t.Name}})
			}
		}
		unsubscribe := n.Subscribe(func(ev store.Event) {
			if ev.Type != store.Deleted {
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
