package orchestratorsync

import (
	"context"
	"math/rand/v2"
	"time"

	"github.com/letsbe/sysadmin-agent/orchestratorsync/wire"

	agentv1 "github.com/letsbe/sysadmin-agent/api/v1alpha1"
)

// heartbeatLoop sends a heartbeat at the interval in force, with ±10% jitter, and at once when
// draining starts. A 404 (the orchestrator forgot the agent) re-registers.
func (s *Syncer) heartbeatLoop(ctx context.Context) {
	timer := s.clock.NewTimer(0)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-timer.C():
		case <-s.drainNow:
		}
		s.heartbeat(ctx)
		timer.Reset(jitter(s.HeartbeatInterval(), 0.1))
	}
}

func (s *Syncer) heartbeat(ctx context.Context) {
	req := s.heartbeatRequest()
	req.Stacks = s.stackReports(ctx)
	var resp *wire.HeartbeatResponse
	err := s.session.do(ctx, func(c *wire.Client, agentID string) error {
		var err error
		resp, err = c.Heartbeat(ctx, agentID, req)
		return err
	})
	switch {
	case err == nil:
	case ctx.Err() != nil:
		return
	case wire.Classify(err) == wire.ClassGone:
		s.log.Info("Orchestrator does not know this agent; registering again")
		_, gen := s.session.current()
		if err := s.session.register(ctx, gen, "heartbeat 404"); err != nil {
			return
		}
		return
	default:
		s.log.Error(err, "Heartbeat failed")
		return
	}
	s.lastHeartbeat.Store(s.clock.Now().UnixNano())
	s.cancel(ctx, resp.CancelTaskIDs)
}

// maxCancelListLogged is the longest cancel list whose ids are worth a log line each.
const maxCancelListLogged = 1000

// cancel cancels the listed tasks that the agent holds unfinished; the others are ignored. A
// list longer than maxCancelListLogged is logged once with its length.
func (s *Syncer) cancel(ctx context.Context, ids []string) {
	if s.opts.CancelTask == nil || len(ids) == 0 {
		return
	}
	if len(ids) > maxCancelListLogged && !s.longCancelList.Swap(true) {
		s.log.Info("Orchestrator sent a long cancel list; cancelling only the tasks this agent holds", "ids", len(ids))
	}
	held := s.slots.names()
	for _, id := range ids {
		name := agentv1.TaskName(id)
		if _, ok := held[name]; !ok {
			continue
		}
		s.log.Info("Orchestrator cancelled a task", "task", id)
		s.opts.CancelTask(ctx, name)
	}
}

func (s *Syncer) heartbeatRequest() wire.HeartbeatRequest {
	status := "ONLINE"
	if s.draining.Load() {
		status = "DRAINING"
	}
	running := s.opts.RunningTasks()
	req := wire.HeartbeatRequest{
		Status:         status,
		Version:        s.opts.Version,
		UptimeSeconds:  int64(s.clock.Now().Sub(s.start) / time.Second),
		RunningTaskIDs: running,
		QueuedTasks:    max(s.slots.inUse()-len(running), 0),
	}
	if s.opts.SystemInfo != nil {
		req.System = s.opts.SystemInfo()
	}
	return req
}

// jitter returns d changed by a random amount within ±frac.
func jitter(d time.Duration, frac float64) time.Duration {
	if d <= 0 {
		return d
	}
	return time.Duration(float64(d) * (1 - frac + 2*frac*rand.Float64()))
}

// stackListTimeout bounds the read of the Stacks for one heartbeat.
const stackListTimeout = 5 * time.Second

// stackReports is the heartbeat's "stacks": each Stack's project, revision, whether it was
// available at its last observation and its degraded services. When the Stacks cannot be
// read the heartbeat still goes out, with none (and the failure is logged).
func (s *Syncer) stackReports(ctx context.Context) []wire.StackReport {
	out := []wire.StackReport{}
	if s.opts.Stacks == nil {
		return out
	}
	listCtx, cancel := context.WithTimeout(ctx, stackListTimeout)
	defer cancel()
	list, err := s.opts.Stacks.List(listCtx)
	if err != nil {
		if ctx.Err() == nil { // not shutting down
			s.log.Error(err, "Cannot read the stacks for the heartbeat")
		}
		return out
	}
	for i := range list.Items {
		st := &list.Items[i]
		out = append(out, wire.StackReport{
			Project:          st.Spec.Project,
			Revision:         st.Spec.Revision,
			Available:        st.IsAvailable() && st.Status.ObservedGeneration == st.Generation,
			DegradedServices: append([]string{}, st.Status.DegradedServices...),
		})
	}
	return out
}
