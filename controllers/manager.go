package controllers

import (
	"errors"
	"fmt"

	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	agentv1 "github.com/letsbe/sysadmin-agent/api/v1alpha1"
)

// The permissions of cluster mode, all in the agent's namespace: its Tasks and Stacks, their status, the
// Lease of leader election and the Events the leader election records. `make generate` writes
// them to config/rbac/role.yaml.
//
// +kubebuilder:rbac:groups=agent.letsbe.io,namespace=letsbe-system,resources=tasks,verbs=get;list;watch;create;update;patch;delete
// +kubebuilder:rbac:groups=agent.letsbe.io,namespace=letsbe-system,resources=tasks/status,verbs=get;update;patch
// +kubebuilder:rbac:groups=agent.letsbe.io,namespace=letsbe-system,resources=stacks,verbs=get;list;watch;create;update;patch;delete
// +kubebuilder:rbac:groups=agent.letsbe.io,namespace=letsbe-system,resources=stacks/status,verbs=get;update;patch
// +kubebuilder:rbac:groups=coordination.k8s.io,namespace=letsbe-system,resources=leases,verbs=get;list;watch;create;update;patch;delete
// +kubebuilder:rbac:groups="",namespace=letsbe-system,resources=events,verbs=create;patch
// +kubebuilder:rbac:groups=events.k8s.io,namespace=letsbe-system,resources=events,verbs=create;patch

// SetupWithManager registers the controllers with mgr (cluster mode): the same reconcilers as
// NewRunner's, one per task type and one failing the Tasks of other types, each watching the
// Tasks through the manager's cache (For(&Task{})), filtered by type and to unfinished ones.
// opts.Store must read from the API server, not from that cache: the reconcilers read their
// own writes. opts.Notifier is not used. The controllers need leader election: with it
// enabled, only the leader runs Tasks. opts.Registry is required (the sync side cancels Tasks
// through it); opts.Logger is not used: the controllers log through mgr's logger. With
// opts.Stacks the Stack controller is registered too (For(&Stack{})).
func SetupWithManager(mgr ctrl.Manager, opts Options) error {
	if opts.Store == nil || opts.Registry == nil {
		return errors.New("controllers: Store and Registry are required")
	}
	for _, k := range opts.kinds() {
		err := ctrl.NewControllerManagedBy(mgr).
			Named(k.name).
			For(&agentv1.Task{}, builder.WithPredicates(taskPredicate(k.handles))).
			WithOptions(controller.TypedOptions[reconcile.Request]{
				MaxConcurrentReconciles: k.workers,
				RecoverPanic:            ptr.To(true),
				SkipNameValidation:      ptr.To(opts.SkipNameValidation),
			}).
			Complete(k.reconciler)
		if err != nil {
			return fmt.Errorf("controllers: new %s controller: %w", k.name, err)
		}
	}
	if opts.Stacks != nil {
		return setupStacks(mgr, opts)
	}
	return nil
}

// taskPredicate passes the events of the unfinished Tasks a controller handles (deletions
// never: there is nothing left to do).
func taskPredicate(handles func(typ string) bool) predicate.Predicate {
	return predicate.Funcs{
		CreateFunc:  func(e event.CreateEvent) bool { return wanted(e.Object, handles) },
		UpdateFunc:  func(e event.UpdateEvent) bool { return wanted(e.ObjectNew, handles) },
		DeleteFunc:  func(event.DeleteEvent) bool { return false },
		GenericFunc: func(e event.GenericEvent) bool { return wanted(e.Object, handles) },
	}
}

func wanted(obj client.Object, handles func(typ string) bool) bool {
	t, ok := obj.(*agentv1.Task)
	return ok && handles(t.Spec.Type) && !t.Status.Phase.IsFinal()
}
