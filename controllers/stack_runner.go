package controllers

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/go-logr/logr"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/util/workqueue"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	"sigs.k8s.io/controller-runtime/pkg/source"

	"github.com/letsbe/sysadmin-agent/api/store"
	agentv1 "github.com/letsbe/sysadmin-agent/api/v1alpha1"
)

// stackWorkers is the number of Stacks observed (or healed) at once.
const stackWorkers = 2

// stackEventDelay is how long after a container event its Stack is observed: the events of
// one change (a docker stop's die and stop, an up's destroy and start) come together.
const stackEventDelay = 500 * time.Millisecond

// Bounds of the wait before docker events is watched again after it stopped (the engine
// restarting, docker missing): from a second, doubling, up to five minutes.
const (
	minWatchBackoff = time.Second
	maxWatchBackoff = 5 * time.Minute
)

// eventsSource observes a Stack again shortly after docker reports a change of one of its
// containers (executors.StackObserver.Watch), between the rechecks, until ctx ends. It never
// fails: while docker events cannot run, the rechecks alone apply.
func eventsSource(so StackOptions, log logr.Logger) source.TypedSource[reconcile.Request] {
	return source.TypedFunc[reconcile.Request](func(ctx context.Context, q workqueue.TypedRateLimitingInterface[reconcile.Request]) error {
		go watchEvents(ctx, so, log, func(project string) {
			q.AddAfter(reconcile.Request{NamespacedName: types.NamespacedName{Name: agentv1.StackName(project)}}, stackEventDelay)
		})
		return nil
	})
}

func watchEvents(ctx context.Context, so StackOptions, log logr.Logger, changed func(project string)) {
	backoff := minWatchBackoff
	for {
		if !waitForStacks(ctx, so) {
			return
		}
		started := time.Now()
		err := so.Observer.Watch(ctx, changed)
		if ctx.Err() != nil {
			return
		}
		if time.Since(started) > maxWatchBackoff {
			backoff = minWatchBackoff
		}
		log.V(1).Info("Docker events stopped; the stacks are rechecked on their interval until they run again", "error", err.Error(), "retryIn", backoff.String())
		t := time.NewTimer(backoff)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		backoff = min(backoff*2, maxWatchBackoff)
	}
}

func (o *StackOptions) validate() error {
	if o.Store == nil || o.Observer == nil {
		return errors.New("controllers: Stacks need a Store and an Observer")
	}
	return nil
}

// newStackController builds the memory-mode Stack controller, fed by the Stack store's
// notifications and docker events; it rebuilds the Stacks from the executors' records when it
// starts.
func newStackController(opts Options) (controller.TypedController[reconcile.Request], error) {
	so := opts.Stacks
	if err := so.validate(); err != nil {
		return nil, err
	}
	if so.Notifier == nil {
		return nil, errors.New("controllers: Stacks need a Notifier")
	}
	c, err := controller.NewTypedUnmanaged(stackName, controller.TypedOptions[reconcile.Request]{
		Reconciler:              &StackReconciler{StackOptions: *so},
		MaxConcurrentReconciles: stackWorkers,
		RecoverPanic:            ptr.To(true),
		UsePriorityQueue:        ptr.To(false), // like the tasks controller: fewer idle goroutines
		Logger:                  opts.Logger,
		SkipNameValidation:      ptr.To(opts.SkipNameValidation),
	})
	if err != nil {
		return nil, fmt.Errorf("controllers: new stack controller: %w", err)
	}
	if err := c.Watch(stackSource(*so, opts.Logger.WithName(stackName))); err != nil {
		return nil, fmt.Errorf("controllers: watch stacks: %w", err)
	}
	if err := c.Watch(eventsSource(*so, opts.Logger.WithName(stackName))); err != nil {
		return nil, fmt.Errorf("controllers: watch docker events: %w", err)
	}
	return c, nil
}

// stackSource feeds the Stack controller without a cluster: first SyncStacks, then every
// Stack, and then each new Stack and each whose spec changed (not those whose status the
// reconciler wrote: the recheck interval brings those back).
func stackSource(so StackOptions, log logr.Logger) source.TypedSource[reconcile.Request] {
	return source.TypedFunc[reconcile.Request](func(ctx context.Context, q workqueue.TypedRateLimitingInterface[reconcile.Request]) error {
		unsubscribe := so.Notifier.Subscribe(func(ev store.StackEvent) {
			if ev.Type == store.Added || (ev.Type == store.Modified && ev.Stack.Generation != ev.Stack.Status.ObservedGeneration) {
				q.Add(reconcile.Request{NamespacedName: types.NamespacedName{Name: ev.Stack.Name}})
			}
		})
		context.AfterFunc(ctx, unsubscribe)
		_ = SyncStacks(ctx, so, log) // logged; a project that cannot be read must not stop the others
		list, err := so.Store.List(ctx)
		if err != nil {
			return fmt.Errorf("list stacks: %w", err)
		}
		for _, s := range list.Items {
			q.Add(reconcile.Request{NamespacedName: types.NamespacedName{Name: s.Name}})
		}
		return nil
	})
}

// waitForStacks waits until there is a Stack (no docker events to watch before the first
// deploy) or ctx ends, and reports which.
func waitForStacks(ctx context.Context, so StackOptions) bool {
	added := make(chan struct{}, 1)
	if so.Notifier != nil {
		defer so.Notifier.Subscribe(func(ev store.StackEvent) {
			if ev.Type == store.Added {
				select {
				case added <- struct{}{}:
				default:
				}
			}
		})()
	}
	for {
		if list, err := so.Store.List(ctx); err == nil && len(list.Items) > 0 {
			return true
		}
		t := time.NewTimer(maxWatchBackoff)
		select {
		case <-ctx.Done():
			t.Stop()
			return false
		case <-added:
		case <-t.C:
		}
		t.Stop()
	}
}

// setupStacks registers the cluster-mode Stack controller with mgr, watching Stacks through
// the manager's cache (For(&Stack{}), new ones and spec changes) and docker events, and a
// leader-only runnable
// that reconciles the Stacks with the executors' records when the agent starts leading.
func setupStacks(mgr ctrl.Manager, opts Options) error {
	so := opts.Stacks
	if err := so.validate(); err != nil {
		return err
	}
	log := mgr.GetLogger().WithName(stackName)
	err := ctrl.NewControllerManagedBy(mgr).
		Named(stackName).
		For(&agentv1.Stack{}, builder.WithPredicates(predicate.GenerationChangedPredicate{})).
		WatchesRawSource(eventsSource(*so, log)).
		WithOptions(controller.TypedOptions[reconcile.Request]{
			MaxConcurrentReconciles: stackWorkers,
			RecoverPanic:            ptr.To(true),
			SkipNameValidation:      ptr.To(opts.SkipNameValidation),
		}).
		Complete(&StackReconciler{StackOptions: *so})
	if err != nil {
		return fmt.Errorf("controllers: new stack controller: %w", err)
	}
	return mgr.Add(manager.RunnableFunc(func(ctx context.Context) error {
		_ = SyncStacks(ctx, *so, log) // logged
		return nil
	}))
}
