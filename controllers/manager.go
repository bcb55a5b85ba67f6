package controllers

import (
	"errors"
	"fmt"

	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
)

// The permissions of cluster mode, all in the agent's namespace: its Tasks, their status, the
// Lease of leader election and the Events the leader election records. `make generate` writes
// them to config/rbac/role.yaml.
//
// +kubebuilder:rbac:groups=agent.letsbe.io,namespace=letsbe-system,resources=tasks,verbs=get;list;watch;create;update;patch;delete
// +kubebuilder:rbac:groups=agent.letsbe.io,namespace=letsbe-system,resources=tasks/status,verbs=get;update;patch
// +kubebuilder:rbac:groups=coordination.k8s.io,namespace=letsbe-system,resources=leases,verbs=get;list;watch;create;update;patch;delete
// +kubebuilder:rbac:groups="",namespace=letsbe-system,resources=events,verbs=create;patch
// +kubebuilder:rbac:groups=events.k8s.io,namespace=letsbe-system,resources=events,verbs=create;patch

// SetupWithManager registers one controller per task type with mgr (cluster mode): the same
// TaskReconciler as NewRunner's, fed the same way, by opts.Notifier, so that both modes see the
// same Tasks named the same way (the orchestrator's ids). opts.Store must read from the API
// server, not from the manager's cache: the reconcilers read their own writes. The
// controllers need leader election: with it enabled, only the leader runs Tasks. opts.Registry
// is required (the sync side cancels Tasks through it); opts.Logger is not used: the
// controllers log through mgr's logger.
func SetupWithManager(mgr ctrl.Manager, opts Options) error {
	if opts.Store == nil || opts.Notifier == nil || opts.Registry == nil {
		return errors.New("controllers: Store, Notifier and Registry are required")
	}
	for _, typ := range opts.types() {
		err := ctrl.NewControllerManagedBy(mgr).
			Named(controllerName(typ)).
			WatchesRawSource(taskSource(opts.Store, opts.Notifier, typ)).
			WithOptions(controller.TypedOptions[reconcile.Request]{
				MaxConcurrentReconciles: max(opts.MaxConcurrentReconciles, 1),
				RecoverPanic:            ptr.To(true),
				SkipNameValidation:      ptr.To(opts.SkipNameValidation),
			}).
			Complete(opts.reconciler(typ))
		if err != nil {
			return fmt.Errorf("controllers: new %s controller: %w", typ, err)
		}
	}
	return nil
}
