package controllers

import (
	"context"
	"errors"
	"fmt"

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

func (o *StackOptions) validate() error {
	if o.Store == nil || o.Observer == nil {
		return errors.New("controllers: Stacks need a Store and an Observer")
	}
	return nil
}

// newStackController builds the memory-mode Stack controller, fed by the Stack store's
// notifications; it rebuilds the Stacks from the executors' records when it starts.
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
		Logger:                  opts.Logger,
		SkipNameValidation:      ptr.To(opts.SkipNameValidation),
	})
	if err != nil {
		return nil, fmt.Errorf("controllers: new stack controller: %w", err)
	}
	if err := c.Watch(stackSource(*so, opts.Logger.WithName(stackName))); err != nil {
		return nil, fmt.Errorf("controllers: watch stacks: %w", err)
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

// setupStacks registers the cluster-mode Stack controller with mgr, watching Stacks through
// the manager's cache (For(&Stack{}), new ones and spec changes), and a leader-only runnable
// that reconciles the Stacks with the executors' records when the agent starts leading.
func setupStacks(mgr ctrl.Manager, opts Options) error {
	so := opts.Stacks
	if err := so.validate(); err != nil {
		return err
	}
	err := ctrl.NewControllerManagedBy(mgr).
		Named(stackName).
		For(&agentv1.Stack{}, builder.WithPredicates(predicate.GenerationChangedPredicate{})).
		WithOptions(controller.TypedOptions[reconcile.Request]{
			MaxConcurrentReconciles: stackWorkers,
			RecoverPanic:            ptr.To(true),
			SkipNameValidation:      ptr.To(opts.SkipNameValidation),
		}).
		Complete(&StackReconciler{StackOptions: *so})
	if err != nil {
		return fmt.Errorf("controllers: new stack controller: %w", err)
	}
	log := mgr.GetLogger().WithName(stackName)
	return mgr.Add(manager.RunnableFunc(func(ctx context.Context) error {
		_ = SyncStacks(ctx, *so, log) // logged
		return nil
	}))
}
