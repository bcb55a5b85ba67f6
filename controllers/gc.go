package controllers

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/go-logr/logr"
	apierrors "k8s.io/apimachinery/pkg/api/errors"

	"github.com/letsbe/sysadmin-agent/api/store"
	agentv1 "github.com/letsbe/sysadmin-agent/api/v1alpha1"
)

// DefaultMaxRetained is how many reported final Tasks a TaskCollector keeps when MaxRetained
// is zero.
const DefaultMaxRetained = 1000

// TaskCollector deletes finished Tasks once the orchestrator has accepted (or refused for
// good) their final report: those reported more than Retention ago, and the oldest beyond
// MaxRetained. It is the one collector of both store modes (in cluster mode Tasks are custom
// resources that would otherwise pile up; in memory mode they are the agent's memory).
// Unfinished and unreported Tasks are never touched. It is a manager Runnable that runs on the
// leader only; in memory mode it is started directly.
type TaskCollector struct {
	// Store holds the Tasks. Required.
	Store store.Store
	// Notifier, when set, starts a pass early once enough Tasks were reported since the last
	// one (a tenth of MaxRetained), so a burst of tasks never holds many more than MaxRetained.
	Notifier store.Notifier
	// Retention is how long a reported Task is kept. Required.
	Retention time.Duration
	// MaxRetained bounds the reported Tasks kept; DefaultMaxRetained when zero.
	MaxRetained int
	// Interval is the wait between passes; Retention/10, within 1s and 1m, when zero.
	Interval time.Duration
	// Logger reports what was collected and what failed; discarded when unset.
	Logger logr.Logger
	// Now returns the current time; time.Now when nil.
	Now func() time.Time
}

// NeedLeaderElection implements manager.LeaderElectionRunnable: only the leader collects.
func (c *TaskCollector) NeedLeaderElection() bool { return true }

// Start implements manager.Runnable: a pass every Interval (and when enough Tasks were
// reported since the last one) until ctx ends. Errors are logged and the next pass tries again.
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
	kick := make(chan struct{}, 1)
	if c.Notifier != nil {
		var reported atomic.Int64
		every := int64(max(c.maxRetained()/10, 1))
		defer c.Notifier.Subscribe(func(ev store.Event) {
			if ev.Type == store.Modified && ev.Task.Status.Report.FinalReported && reported.Add(1)%every == 0 {
				select {
				case kick <- struct{}{}:
				default:
				}
			}
		})()
	}
	ticker := time.NewTicker(interval)
	defer ticker.Stop()
	for {
		n, err := c.Collect(ctx)
		if err != nil && ctx.Err() == nil {
			log.Error(err, "Cannot collect finished tasks")
		}
		if n > 0 {
			log.V(1).Info("Deleted reported tasks past their retention or beyond the count kept", "tasks", n,
				"retention", c.Retention.String(), "maxRetained", c.maxRetained())
		}
		select {
		case <-ctx.Done():
			return nil
		case <-ticker.C:
		case <-kick:
		}
	}
}

func (c *TaskCollector) maxRetained() int {
	if c.MaxRetained > 0 {
		return c.MaxRetained
	}
	return DefaultMaxRetained
}

// Collect makes one pass: it deletes every reported final Task whose report (or, without a
// report time, completion) is older than Retention, then the oldest reported ones beyond
// MaxRetained, and returns how many it deleted.
func (c *TaskCollector) Collect(ctx context.Context) (int, error) {
	list, err := store.ViewList(ctx, c.Store)
	if err != nil {
		return 0, err
	}
	now := time.Now()
	if c.Now != nil {
		now = c.Now()
	}
	cutoff := now.Add(-c.Retention)
	type kept struct {
		name string
		at   time.Time
	}
	var doomed []string
	var reported []kept
	for _, t := range list {
		at, ok := reportedAt(t)
		switch {
		case !ok:
		case at.Before(cutoff):
			doomed = append(doomed, t.Name)
		default:
			reported = append(reported, kept{t.Name, at})
		}
	}
	if extra := len(reported) - c.maxRetained(); extra > 0 {
		slices.SortFunc(reported, func(a, b kept) int {
			return cmp.Or(a.at.Compare(b.at), strings.Compare(a.name, b.name))
		})
		for _, k := range reported[:extra] {
			doomed = append(doomed, k.name)
		}
	}
	var errs []error
	n := 0
	for _, name := range doomed {
		if err := c.Store.Delete(ctx, name); err != nil && !apierrors.IsNotFound(err) {
			errs = append(errs, fmt.Errorf("delete task %s: %w", name, err))
			continue
		}
		n++
	}
	return n, errors.Join(errs...)
}

// reportedAt returns when t, final and reported, was reported (or, without a report time,
// completed); ok is false for a Task that is not final and reported.
func reportedAt(t *agentv1.Task) (at time.Time, ok bool) {
	st := &t.Status
	if !st.Phase.IsFinal() || !st.Report.FinalReported {
		return time.Time{}, false
	}
	switch {
	case st.Report.ReportedAt != nil:
		return st.Report.ReportedAt.Time, true
	case st.CompletionTime != nil:
		return st.CompletionTime.Time, true
	}
	return t.CreationTimestamp.Time, true
}
