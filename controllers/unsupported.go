package controllers

import (
	"context"
	"errors"
	"fmt"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/letsbe/sysadmin-agent/api/store"
	agentv1 "github.com/letsbe/sysadmin-agent/api/v1alpha1"
)

// unsupportedName names the controller of the Tasks whose type no executor handles.
const unsupportedName = "task-unsupported"

// unsupportedReconciler ends FAILED (UnsupportedType) every unfinished Task whose type no
// executor handles: such a Task can never run. It is the only writer of those Tasks' status,
// as each TaskReconciler is of its type's.
type unsupportedReconciler struct {
	store     store.Store
	supported func(typ string) bool
	observe   func(task *agentv1.Task, elapsed time.Duration)
}

// Reconcile implements reconcile.Reconciler.
func (r *unsupportedReconciler) Reconcile(ctx context.Context, req reconcile.Request) (reconcile.Result, error) {
	var failed *agentv1.Task
	_, err := store.MutateStatus(ctx, r.store, req.Name, func(t *agentv1.Task) bool {
		if t.Status.Phase.IsFinal() || r.supported(t.Spec.Type) {
			return false
		}
		now := nowTime()
		initialize(t, now)
		t.Status.MarkFailed(now, t.Generation, agentv1.ReasonUnsupportedType, "unsupported task type "+quoteType(t.Spec.Type))
		failed = t
		return true
	})
	switch {
	case apierrors.IsNotFound(err):
		return reconcile.Result{}, nil
	case errors.Is(err, store.ErrNotDurable):
		// The store keeps the status and the journal writes it once it can; it is reported then.
		ctrl.LoggerFrom(ctx).Error(err, "Cannot make the task's final status durable yet", "task", req.Name)
		return reconcile.Result{}, nil
	case err != nil:
		return reconcile.Result{}, fmt.Errorf("fail task %s of an unsupported type: %w", req.Name, err)
	}
	if failed != nil {
		ctrl.LoggerFrom(ctx).Info("Task refused", "task", failed.TaskID(), "error", failed.Status.Error)
		if r.observe != nil {
			r.observe(failed, 0)
		}
	}
	return reconcile.Result{}, nil
}

// quoteType quotes an orchestrator-supplied type for an error message, bounded in length.
func quoteType(typ string) string {
	if len(typ) > 64 {
		typ = typ[:64] + "..."
	}
	return `"` + typ + `"`
}
