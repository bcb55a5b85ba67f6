package orchestratorsync

import (
	"context"
	"time"

	"github.com/letsbe/sysadmin-agent/orchestratorsync/wire"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/letsbe/sysadmin-agent/api/store"
	agentv1 "github.com/letsbe/sysadmin-agent/api/v1alpha1"
)

// The agent never runs a task id twice (contract v1.1). A task the orchestrator offers again
// (it re-queues one whose acknowledgement it missed) is answered with its current state:
//   - held and not final: RUNNING again, the acknowledgement that went missing;
//   - held, final, report not yet accepted: that final report, already on its way;
//   - final report accepted within the dedup window (Options.Delivered): the same report,
//     byte for byte, which the orchestrator treats as a harmless repeat.

// answeredBefore reports whether the task's final report was accepted within the dedup
// window; if so it repeats that report and, when a slot was acquired for the task, gives it
// back.
func (s *Syncer) answeredBefore(task *agentv1.Task, slotAcquired bool) bool {
	if s.opts.Delivered == nil {
		return false
	}
	id := task.TaskID()
	body, found := s.opts.Delivered.LookupDelivered(id)
	if !found {
		return false
	}
	if slotAcquired {
		s.slots.unused()
	}
	log := s.log.WithValues("task", id)
	if body == nil {
		log.Info("Orchestrator offered again a task whose final report it accepted; not running it (the report itself is no longer kept)")
		return true
	}
	log.Info("Orchestrator offered again a task whose final report it accepted; repeating that report, not running the task")
	s.resendFinal(id, body)
	return true
}

// answerHeld answers the offer of a task whose name the store already holds.
func (s *Syncer) answerHeld(ctx context.Context, task *agentv1.Task) {
	name := task.Name
	log := s.log.WithValues("task", task.TaskID())
	held, err := store.View(ctx, s.opts.Store, name)
	if err != nil {
		if !apierrors.IsNotFound(err) {
			log.Error(err, "Cannot read the task offered again")
		}
		return
	}
	if held.TaskID() != task.TaskID() {
		// Another id with the same name (agentv1.TaskName): an orchestrator choosing ids that
		// collide. The new task cannot be stored; it ends FAILED without running.
		log.Error(nil, "Task id collides with the name of another task; failing it without running it", "name", name)
		now := metav1.NewTime(s.clock.Now().UTC())
		task.Status.MarkPending(now, 1)
		task.Status.MarkFailed(now, 1, agentv1.ReasonInvalidSpec, "task id collides with another task's name "+name)
		if s.opts.OnRefused != nil {
			s.opts.OnRefused(task)
		}
		s.rep.reportDirect(task)
		return
	}
	st := held.Status
	switch {
	case !st.Phase.IsFinal():
		log.Info("Orchestrator offered again a task the agent holds; acknowledging it again, not running it twice", "phase", st.Phase)
		_, err := store.MutateStatus(ctx, s.opts.Store, name, func(t *agentv1.Task) bool {
			if !t.Status.Report.RunningReported || t.Status.Phase.IsFinal() {
				return false
			}
			t.Status.Report.RunningReported = false
			return true
		})
		if err != nil && !apierrors.IsNotFound(err) {
			log.Error(err, "Cannot queue the acknowledgement again")
		}
		s.rep.queue.Add(name)
	case !st.Report.FinalReported:
		log.Info("Orchestrator offered again a finished task; its final report is on its way")
		s.rep.queue.Add(name)
	default:
		if s.opts.Delivered != nil {
			if body, found := s.opts.Delivered.LookupDelivered(held.TaskID()); found && body != nil {
				log.Info("Orchestrator offered again a task whose final report it accepted; repeating that report")
				s.resendFinal(held.TaskID(), body)
				return
			}
		}
		log.Info("Orchestrator offered again a task already reported; not running it again")
	}
}

// resendFinal delivers an accepted final report again, byte for byte, retrying with backoff
// until it is accepted or refused for good or the Syncer stops. One resend per id at a time.
func (s *Syncer) resendFinal(id string, body []byte) {
	if _, busy := s.resending.LoadOrStore(id, struct{}{}); busy {
		return
	}
	go func() {
		defer s.resending.Delete(id)
		ctx := s.session.baseContext()
		log := s.log.WithValues("task", id)
		for attempt := 0; ; attempt++ {
			sendCtx, cancel := context.WithTimeout(ctx, reportTimeout)
			err := s.session.do(sendCtx, func(c *wire.Client, _ string) error {
				return c.ReportBody(sendCtx, id, body)
			})
			cancel()
			switch {
			case err == nil:
				log.V(1).Info("Final report repeated")
				return
			case wire.IsConflict(err) || wire.IsNotFound(err):
				log.Info("Orchestrator refused the repeated final report; not sending it again", "error", err.Error())
				return
			case ctx.Err() != nil:
				return
			}
			delay := NextDelay(s.opts.Backoff, attempt, err)
			log.Info("Repeated final report not delivered; retrying", "retryIn", delay.Round(time.Millisecond).String(), "error", err.Error())
			if sleep(ctx, s.clock, delay) != nil {
				return
			}
		}
	}()
}
