package controllers

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/go-logr/logr"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/letsbe/sysadmin-agent/api/store"
	agentv1 "github.com/letsbe/sysadmin-agent/api/v1alpha1"
	"github.com/letsbe/sysadmin-agent/executors"
)

// Defaults and bounds of the Stack reconciler.
const (
	// DefaultStackRecheckInterval is how often a Stack is observed again
	// (AGENT_STACK_RECHECK_INTERVAL).
	DefaultStackRecheckInterval = 5 * time.Minute
	// stackRetryInterval caps the wait before a failed observation is tried again.
	stackRetryInterval = 30 * time.Second
	// maxHealBackoff caps the wait between two heals of a Stack whose heals keep failing
	// (unless the recheck interval is longer: then it is the interval).
	maxHealBackoff = time.Hour
	// stackObserveTimeout bounds one observation (docker ps and inspect).
	stackObserveTimeout = time.Minute
	// stackHealTimeout bounds one heal (up -d and the health gate).
	stackHealTimeout = 10 * time.Minute
	// stackName is the Stack controller's name.
	stackName = "stack"
)

// StackOptions configure the Stacks: their store, the observer that looks at what runs, and
// how often and whether to heal. Options.Stacks enables them.
type StackOptions struct {
	// Store holds the Stacks; Notifier tells the memory-mode controller of their changes
	// (usually the same object; unused in cluster mode, where the controller watches through
	// the manager's cache).
	Store    store.StackStore
	Notifier store.StackNotifier
	// Observer observes, lists and heals the recorded Compose projects.
	Observer *executors.StackObserver
	// RecheckInterval is how often each Stack is observed again; DefaultStackRecheckInterval
	// when zero.
	RecheckInterval time.Duration
	// SelfHeal restarts degraded or drifted services (AGENT_STACK_SELF_HEAL): at most one heal
	// per Stack per RecheckInterval, that interval doubling after each failed heal in a row
	// up to an hour. Without it the agent never redeploys on its own.
	SelfHeal bool
	// Now returns the current time; time.Now when nil.
	Now func() time.Time
}

func (o *StackOptions) recheck() time.Duration {
	if o.RecheckInterval > 0 {
		return o.RecheckInterval
	}
	return DefaultStackRecheckInterval
}

func (o *StackOptions) now() metav1.Time {
	if o.Now != nil {
		return metav1.NewTime(o.Now().UTC())
	}
	return nowTime()
}

// StackReconciler observes each Stack's project through the executor and writes what it saw
// as the Stack's status (Available, Degraded, Drifted, the services), again every recheck
// interval, right after its spec changes and shortly after docker reports a change of one of
// its containers (docker events); with SelfHeal it heals degraded or drifted
// services within the rate limit. An observation that fails (docker missing or failing) sets
// the conditions Unknown with the reason and is retried; it never ends the reconciler.
type StackReconciler struct {
	StackOptions
}

// Reconcile implements reconcile.Reconciler.
func (r *StackReconciler) Reconcile(ctx context.Context, req reconcile.Request) (reconcile.Result, error) {
	log := ctrl.LoggerFrom(ctx).WithValues("stack", req.Name)
	stack, err := r.Store.Get(ctx, req.Name)
	if apierrors.IsNotFound(err) {
		return reconcile.Result{}, nil
	}
	if err != nil {
		return reconcile.Result{}, fmt.Errorf("get stack %s: %w", req.Name, err)
	}
	project, gen := stack.Spec.Project, stack.Generation
	if stack.Status.ObservedGeneration != gen {
		stack.Status.Heal = nil // a new revision starts with a clean record
	}

	obs, err := r.observe(ctx, project)
	if err != nil {
		log.Info("Cannot observe the stack; trying again", "error", err.Error())
		stack.Status.SetObservationFailed(r.now(), gen, err.Error())
		return reconcile.Result{RequeueAfter: min(r.recheck(), stackRetryInterval)}, r.writeStatus(ctx, stack)
	}
	if r.SelfHeal && (len(obs.Degraded) > 0 || len(obs.Drift) > 0) {
		if wait := r.healWait(stack.Status.Heal); wait > 0 {
			log.V(1).Info("Stack needs healing; waiting for the rate limit", "wait", wait.String())
		} else {
			// What is wrong is written first: a heal takes a while (up to the health gate's
			// budget), and the heartbeats tell of the outage meanwhile.
			stack.Status.SetObserved(r.now(), gen, servicesOf(obs.Services), obs.NotReady, obs.Degraded, obs.Drift)
			if err := r.writeStatus(ctx, stack); err != nil {
				return reconcile.Result{}, err
			}
			obs = r.heal(ctx, log, stack, obs)
		}
	}
	stack.Status.SetObserved(r.now(), gen, servicesOf(obs.Services), obs.NotReady, obs.Degraded, obs.Drift)
	if len(obs.Degraded) > 0 {
		log.V(1).Info("Stack is degraded", "degraded", obs.Degraded)
	}
	return reconcile.Result{RequeueAfter: r.recheck()}, r.writeStatus(ctx, stack)
}

func (r *StackReconciler) observe(ctx context.Context, project string) (*executors.StackObservation, error) {
	ctx, cancel := context.WithTimeout(ctx, stackObserveTimeout)
	defer cancel()
	return r.Observer.Observe(ctx, project)
}

// healWait is how long the rate limit still forbids a heal: one per recheck interval, the
// interval doubling with every failed heal in a row, up to maxHealBackoff.
func (r *StackReconciler) healWait(h *agentv1.StackHeal) time.Duration {
	if h == nil || h.LastAttempt == nil {
		return 0
	}
	backoff := r.recheck()
	for i := int32(0); i < h.Failures && backoff < maxHealBackoff; i++ {
		backoff *= 2
	}
	backoff = min(backoff, max(maxHealBackoff, r.recheck()))
	// A heal takes a moment: a recheck due exactly one interval later must not miss it.
	return h.LastAttempt.Add(backoff - time.Second/2).Sub(r.now().Time)
}

// heal heals the Stack's services and records the attempt in its status; it returns the
// observation to report: after the heal.
func (r *StackReconciler) heal(ctx context.Context, log logr.Logger, stack *agentv1.Stack, obs *executors.StackObservation) *executors.StackObservation {
	log.Info("Healing the stack's services", "revision", stack.Spec.Revision, "degraded", obs.Degraded, "drift", len(obs.Drift))
	healCtx, cancel := context.WithTimeout(ctx, stackHealTimeout)
	defer cancel()
	healed, err := r.Observer.Heal(healCtx, stack.Spec.Project, int(stack.Spec.Revision))
	if errors.Is(err, executors.ErrHealBusy) {
		log.V(1).Info("Not healing now", "reason", err.Error())
		return obs
	}
	h := stack.Status.Heal
	if h == nil {
		h = &agentv1.StackHeal{}
		stack.Status.Heal = h
	}
	now := r.now()
	h.LastAttempt = &now
	h.Attempts++
	if err != nil {
		h.Failures++
		h.LastError = truncate(err.Error(), agentv1.MaxStackMessageLength)
		log.Info("Heal failed", "error", err.Error(), "failuresInARow", h.Failures)
		if again, oerr := r.observe(ctx, stack.Spec.Project); oerr == nil {
			return again
		}
		return obs
	}
	h.Failures, h.LastError = 0, ""
	log.Info("Stack healed")
	return healed
}

func (r *StackReconciler) writeStatus(ctx context.Context, stack *agentv1.Stack) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), finalWriteTimeout)
	defer cancel()
	err := r.Store.UpdateStatus(ctx, stack)
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		// A Conflict means the spec changed meanwhile: observe again.
		return fmt.Errorf("write status of stack %s: %w", stack.Name, err)
	}
	return nil
}

func servicesOf(in []executors.ServiceStatus) []agentv1.StackService {
	out := make([]agentv1.StackService, 0, len(in))
	for _, s := range in {
		out = append(out, agentv1.StackService{
			Name: s.Name, State: s.State, Health: s.Health, ExitCode: int32(s.ExitCode), Restarts: int32(s.Restarts), Image: s.Image,
		})
	}
	return out
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n]
}

// SyncStacks makes a Stack of every project with a last known good revision recorded by the
// executors, with that revision as its spec: at start-up, memory mode rebuilds its Stacks so,
// and cluster mode reconciles the API server's with the records (the durable truth of the
// last known good revision). It never deletes a Stack. A project that cannot be made a Stack
// is logged and skipped; the error joins what failed.
func SyncStacks(ctx context.Context, opts StackOptions, log logr.Logger) error {
	recs, err := opts.Observer.Recorded()
	if err != nil {
		log.Error(err, "Cannot read some recorded stacks")
	}
	errs := []error{err}
	for _, rec := range recs {
		if err := RecordStack(ctx, opts.Store, rec); err != nil {
			log.Error(err, "Cannot record the stack", "project", rec.Project)
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// RecordStack creates or updates the Stack of rec.Project with rec as its spec; an update
// that changes it bumps the Stack's generation, which makes the Stack reconciler observe it at
// once.
func RecordStack(ctx context.Context, st store.StackStore, rec executors.RecordedStack) error {
	name := agentv1.StackName(rec.Project)
	spec := agentv1.StackSpec{Project: rec.Project, ComposePath: rec.ComposePath, Revision: int64(rec.Revision)}
	for range 2 {
		_, err := store.MutateStack(ctx, st, name, st.Update, func(s *agentv1.Stack) bool {
			if s.Spec == spec {
				return false
			}
			s.Spec = spec
			return true
		})
		if !apierrors.IsNotFound(err) {
			return err
		}
		err = st.Create(ctx, &agentv1.Stack{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: spec})
		if !apierrors.IsAlreadyExists(err) {
			return err
		}
	}
	return fmt.Errorf("record stack %s: created and deleted concurrently", name)
}

// recordStackAfter is the Task reconcilers' part in the Stacks: once a DOCKER_RELOAD or
// COMPOSE_ROLLBACK Task is final (succeeded, or failed and rolled back), the executor's record
// of its project's last known good revision becomes the Stack's spec. The project comes from
// the Task's result; the revision from the record, which the executor wrote before it
// returned.
func (o *StackOptions) recordStackAfter(log logr.Logger, task *agentv1.Task) {
	if task.Status.Result == nil {
		return
	}
	var res struct {
		Project string          `json:"project"`
		DryRun  json.RawMessage `json:"dry_run"`
	}
	if err := json.Unmarshal(task.Status.Result.Raw, &res); err != nil || res.Project == "" || res.DryRun != nil {
		return
	}
	rec, err := o.Observer.LastGood(res.Project)
	if err != nil {
		log.Error(err, "Cannot read the stack's last known good revision", "task", task.Name, "project", res.Project)
		return
	}
	if rec == nil {
		return // a first deploy that failed: nothing to keep
	}
	ctx, cancel := context.WithTimeout(context.Background(), finalWriteTimeout)
	defer cancel()
	if err := RecordStack(ctx, o.Store, *rec); err != nil {
		log.Error(err, "Cannot record the stack", "task", task.Name, "project", res.Project)
	}
}

// observeFor returns the Observe hook of the reconciler of task type typ: opts.Observe, and
// for the deploy types with Stacks enabled also recordStackAfter.
func (opts *Options) observeFor(typ string) func(*agentv1.Task, time.Duration) {
	observe := opts.Observe
	if opts.Stacks == nil || (typ != agentv1.TypeDockerReload && typ != agentv1.TypeComposeRollback) {
		return observe
	}
	stacks, log := opts.Stacks, opts.Logger
	if log.GetSink() == nil {
		log = logr.Discard()
	}
	return func(task *agentv1.Task, elapsed time.Duration) {
		if observe != nil {
			observe(task, elapsed)
		}
		stacks.recordStackAfter(log, task)
	}
}
