package controllers

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/go-logr/logr"
	apierrors "k8s.io/apimachinery/pkg/api/errors"

	"github.com/letsbe/sysadmin-agent/api/store"
	agentv1 "github.com/letsbe/sysadmin-agent/api/v1alpha1"
)

// TaskCollector deletes finished Tasks once the orchestrator has accepted (or refused for
// good) their final report and Retention has passed since: in cluster mode Tasks are custom
// resources that would otherwise pile up. Unfinished and unreported Tasks are never touched.
// It is a manager Runnable that runs on the leader only.
type TaskCollector struct {
	// Store holds the Tasks. Required.
	Store store.Store
	// Retention is how long a reported Task is kept. Required.
	Retention time.Duration
	// Interval is the wait between passes; Retention/10, within 1s and 1m, when zero.
	Interval time.Duration
	// Logger reports what was collected and what failed; discarded when unset.
	Logger logr.Logger
	// Now returns the current time; time.Now when nil.
	Now func() time.Time
}

// NeedLeaderElection implements manager.LeaderElectionRunnable: only the leader collects.
func (c *TaskCollector) NeedLeaderElection() bool { return true }

// Start implements manager.Runnable: a pass every Interval until ctx ends. Errors are logged
// and the next pass tries again.
func (c *TaskCollector) Start(ctx context.Context) error {
	if c.Store == nil || c.Retention <= 0 {
		return errors.New("controllers: TaskCollector needs a Store and a Retention")
	}
	log := c.Logger
	if log.GetSink() == nil {
		log = logr.Discard()
	}
	interval := c.Interval
	if interval <= 0 {
		interval = min(max(c.Retention/10, time.Second), time.Minute)
	}
	ticker := time.NewTicker(interval)
	defer ticker.Stop()
	for {
		n, err := c.Collect(ctx)
		if err != nil && ctx.Err() == nil {
			log.Error(err, "Cannot collect finished tasks")
		}
		if n > 0 {
			log.V(1).Info("Deleted finished tasks past their retention", "tasks", n, "retention", c.Retention.String())
		}
		select {
		case <-ctx.Done():
			return nil
		case <-ticker.C:
		}
	}
}

// Collect makes one pass: it deletes every reported final Task whose report (or, without a
// report time, completion) is older than Retention, and returns how many it deleted.
func (c *TaskCollector) Collect(ctx context.Context) (int, error) {
	list, err := c.Store.List(ctx)
	if err != nil {
		return 0, err
	}
	now := time.Now()
	if c.Now != nil {
		now = c.Now()
	}
	var errs []error
	n := 0
	for i := range list.Items {
		t := &list.Items[i]
		if !collectable(t, now.Add(-c.Retention)) {
			continue
		}
		if err := c.Store.Delete(ctx, t.Name); err != nil && !apierrors.IsNotFound(err) {
			errs = append(errs, fmt.Errorf("delete task %s: %w", t.Name, err))
			continue
		}
		n++
	}
	return n, errors.Join(errs...)
}

// collectable reports whether t is final, reported, and was so before cutoff.
func collectable(t *agentv1.Task, cutoff time.Time) bool {
	st := &t.Status
	if !st.Phase.IsFinal() || !st.Report.FinalReported {
		return false
	}
	since := t.CreationTimestamp.Time
	switch {
	case st.Report.ReportedAt != nil:
		since = st.Report.ReportedAt.Time
	case st.CompletionTime != nil:
		since = st.CompletionTime.Time
	}
	return since.Before(cutoff)
}
