package orchestratorsync

import (
	"context"
	"errors"
	"fmt"
	"runtime/debug"
	"strings"
	"sync"
	"time"

	"github.com/letsbe/sysadmin-agent/orchestratorsync/wire"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/letsbe/sysadmin-agent/api/store"
	agentv1 "github.com/letsbe/sysadmin-agent/api/v1alpha1"
)

// slots bounds the unfinished Tasks the agent holds: one slot per Task from intake until it is
// final, so the agent never takes more work than it has workers for.
type slots struct {
	sem  chan struct{}
	mu   sync.Mutex
	held map[string]struct{}
}

func newSlots(n int) *slots {
	return &slots{sem: make(chan struct{}, n), held: make(map[string]struct{})}
}

// acquire takes a free slot, waiting until one is free or stop or ctx ends.
func (s *slots) acquire(ctx context.Context, stop <-chan struct{}) bool {
	select {
	case s.sem <- struct{}{}:
	case <-ctx.Done():
		return false
	case <-stop:
		return false
	}
	// A select picks at random among ready cases: with a free slot it may take it although
	// polling has stopped, and the request that follows would take a task while draining.
	select {
	case <-stop:
		<-s.sem
		return false
	default:
		return true
	}
}

// unused returns an acquired slot that got no Task.
func (s *slots) unused() { <-s.sem }

// bind ties an acquired slot to a Task; it is released when the Task is final or deleted. If
// the Task already holds one, the acquired slot is given back and bind returns false.
func (s *slots) bind(name string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.held[name]; ok {
		<-s.sem
		return false
	}
	s.held[name] = struct{}{}
	return true
}

// release frees the Task's slot, if it holds one. It never blocks.
func (s *slots) release(name string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.held[name]; ok {
		delete(s.held, name)
		<-s.sem
	}
}

func (s *slots) inUse() int { return len(s.sem) }

// names returns a copy of the names of the Tasks holding a slot (the unfinished ones).
func (s *slots) names() map[string]struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[string]struct{}, len(s.held))
	for n := range s.held {
		out[n] = struct{}{}
	}
	return out
}

// adopt gives unfinished Tasks already in the store (restored after a restart) their slots,
// as far as there are slots.
func (s *slots) adopt(ctx context.Context, st store.Store) error {
	list, err := st.List(ctx)
	if err != nil {
		return err
	}
	for i := range list.Items {
		t := &list.Items[i]
		if t.Status.Phase.IsFinal() {
			continue
		}
		select {
		case s.sem <- struct{}{}:
			s.bind(t.Name)
		default:
			return nil
		}
	}
	return nil
}

// pollOutcome is what one next-task request brought.
type pollOutcome int

const (
	polledNothing pollOutcome = iota // no task (the long poll ended, or the queue is empty)
	polledTask                       // a task, handed to intake or refused: tasks are coming
	polledDropped                    // a task without a usable id, dropped
	polledError                      // the request failed
)

// pollLoop asks for tasks while it has free slots: again at once after a task (drain the
// queue), after the poll interval when the orchestrator answered "nothing" at once (it ignores
// long polls), and with backoff on errors. Its own request is the one long poll parked while
// the agent is idle. When a task comes it starts another poller (extraPoller), which asks
// without waiting and starts one more for each task it gets, so that while tasks keep coming
// up to one request per free slot is in flight (one task per round trip would cap intake at
// 1/latency); each ends at its first empty answer, leaving the long poll alone again. Every
// request holds a slot from before it is sent, so the tasks taken never exceed the free slots.
// A task is stored on its own goroutine, so that the next request does not wait for the store
// to make the last one durable (with the journal, creates then share a commit); pollLoop
// returns once every poller ended and every task they took is stored.
//
// ctx ends when polling stops (Drain): it cancels pollLoop's own request, which may be parked
// for long. The extra pollers' requests, short as they ask without waiting, run under runCtx
// (the Syncer's): they are answered, and a task they bring is stored, rather than cancelled
// after the orchestrator may have handed it out.
func (s *Syncer) pollLoop(ctx, runCtx context.Context) {
	var wg sync.WaitGroup // extra pollers and intakes
	defer wg.Wait()
	attempt := 0
	for {
		if !s.waitDurable(ctx) || !s.slots.acquire(ctx, s.stopPolling) {
			return
		}
		started := s.clock.Now()
		out, err := s.poll(ctx, s.opts.LongPollWait, &wg)
		switch out {
		case polledTask:
			attempt = 0
			s.morePollers(ctx, runCtx, &wg)
			continue
		case polledDropped:
			attempt = 0
			if s.sleepOrStop(ctx, time.Duration(s.pollInterval.Load())) != nil {
				return
			}
			continue
		case polledNothing:
			attempt = 0
			// Nothing to do. If the answer came back sooner than the poll interval, the
			// orchestrator did not hold the request: wait out the rest of the interval.
			interval := time.Duration(s.pollInterval.Load())
			if elapsed := s.clock.Now().Sub(started); elapsed < interval {
				if s.sleepOrStop(ctx, interval-elapsed) != nil {
					return
				}
			}
			continue
		}
		if ctx.Err() != nil {
			return
		}
		if wire.IsNotFound(err) {
			s.log.Info("Orchestrator does not know this agent; registering again")
			_, gen := s.session.current()
			if s.session.register(ctx, gen, "next-task 404") != nil {
				return
			}
			continue
		}
		delay := NextDelay(s.opts.Backoff, attempt, err)
		if wire.Classify(err) != wire.ClassRetry {
			// An answer that will not change by itself (400, a bad certificate): slowly.
			delay = NextDelay(s.opts.Backoff, max(attempt, 16), err)
		}
		attempt++
		s.log.Error(err, "Polling for tasks failed", "retryIn", delay.Round(time.Millisecond).String())
		if s.sleepOrStop(ctx, delay) != nil {
			return
		}
	}
}

// poll sends one next-task request, waiting up to wait for a task (none when wait <= 0), on a
// slot acquired for it: a task handed over goes to intake on a goroutine of wg, with the slot;
// a task assigned to the agent but unusable is refused; otherwise the slot is given back.
func (s *Syncer) poll(ctx context.Context, wait time.Duration, wg *sync.WaitGroup) (pollOutcome, error) {
	var task *wire.Task
	var received string // the agent id the task is handed to
	err := s.session.do(ctx, func(c *wire.Client, agentID string) error {
		var err error
		received = agentID
		task, err = c.NextTask(ctx, agentID, max(wait, 0))
		return err
	})
	if invalid, ok := errors.AsType[*wire.InvalidTaskError](err); ok {
		s.slots.unused()
		if invalid.ID == "" {
			s.dropTask(invalid)
			return polledDropped, nil
		}
		// Assigned to us but unusable: it must still end FAILED and be reported.
		s.refuseInvalid(invalid, received)
		return polledTask, nil
	}
	if err != nil {
		s.slots.unused()
		return polledError, err
	}
	if task == nil {
		s.slots.unused()
		return polledNothing, nil
	}
	t, id := task, received // copies for the goroutine: task and received may stay on the stack
	wg.Go(func() { s.intakeAsync(ctx, t, id) })
	return polledTask, nil
}

// morePollers starts an extra poller after a task came, while fewer than MaxConcurrentTasks-1
// extras run (with pollLoop's own, one request per slot at most).
func (s *Syncer) morePollers(ctx, runCtx context.Context, wg *sync.WaitGroup) {
	if ctx.Err() != nil {
		return
	}
	for {
		n := s.extraPollers.Load()
		if n >= int32(s.opts.MaxConcurrentTasks-1) {
			return
		}
		if s.extraPollers.CompareAndSwap(n, n+1) {
			break
		}
	}
	wg.Go(func() { s.extraPoller(ctx, runCtx, wg) })
}

// extraPoller asks for tasks without waiting while they keep coming, each request on a slot
// (it waits for one, so that a slot freed while tasks are coming is used at once), starting one
// more poller for each task it gets. It ends at the first answer without a task, at an error
// (pollLoop's own request meets it too, and backs off), while the store cannot make Tasks
// durable, or when polling stops (ctx); its requests run under runCtx (see pollLoop).
func (s *Syncer) extraPoller(ctx, runCtx context.Context, wg *sync.WaitGroup) {
	defer s.extraPollers.Add(-1)
	defer func() {
		if p := recover(); p != nil {
			s.log.Error(fmt.Errorf("panic: %v", p), "Poller panicked", "stack", string(debug.Stack()))
		}
	}()
	for ctx.Err() == nil {
		if !s.slots.acquire(ctx, s.stopPolling) {
			return
		}
		if s.opts.Durable() != nil {
			s.slots.unused()
			return
		}
		if out, _ := s.poll(runCtx, 0, wg); out != polledTask {
			return
		}
		s.morePollers(ctx, runCtx, wg)
	}
}

// waitDurable returns at once while the store can make Tasks durable; else it logs why it
// cannot, takes no task (re-checking every second) until it can again, and returns false if
// polling stops meanwhile.
func (s *Syncer) waitDurable(ctx context.Context) bool {
	err := s.opts.Durable()
	if err == nil {
		return true
	}
	s.log.Error(err, "Taking no new tasks: the agent cannot persist them")
	for err != nil {
		if s.sleepOrStop(ctx, time.Second) != nil {
			return false
		}
		err = s.opts.Durable()
	}
	s.log.Info("Tasks can be persisted again: taking new tasks")
	return true
}

func (s *Syncer) sleepOrStop(ctx context.Context, d time.Duration) error {
	t := s.clock.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-s.stopPolling:
		return errors.New("stopped")
	case <-t.C():
		return nil
	}
}

// intakeAsync is intake on a goroutine of its own: a task handed over is stored even when
// polling stops meanwhile, and a panic is logged, not fatal.
func (s *Syncer) intakeAsync(ctx context.Context, task *wire.Task, agentID string) {
	defer func() {
		if p := recover(); p != nil {
			s.log.Error(fmt.Errorf("panic: %v", p), "Task intake panicked", "task", task.ID, "stack", string(debug.Stack()))
			name := agentv1.TaskName(task.ID)
			if _, err := s.opts.Store.Get(context.WithoutCancel(ctx), name); apierrors.IsNotFound(err) {
				s.slots.release(name) // a slot bound to a Task that never got stored
			}
		}
	}()
	s.intake(context.WithoutCancel(ctx), task, agentID)
}

// intake stores an orchestrator task as a new Task, named by agentv1.TaskName of its id, with
// the id in spec.taskID and the agent id it was received under. It is created without status:
// its reconciler initializes it (and fails a Task whose type no executor handles). The slot
// acquired for it is bound to it.
func (s *Syncer) intake(ctx context.Context, wt *wire.Task, agentID string) {
	task := &agentv1.Task{
		TypeMeta: metav1.TypeMeta{APIVersion: taskAPIVersion, Kind: "Task"},
		ObjectMeta: metav1.ObjectMeta{
			Name:   agentv1.TaskName(wt.ID),
			Labels: map[string]string{agentv1.LabelTaskType: labelValue(wt.Type)},
		},
		Spec: agentv1.TaskSpec{
			TaskID:  wt.ID,
			Type:    wt.Type,
			Payload: &runtime.RawExtension{Raw: wt.Payload},
			AgentID: agentID,
		},
	}
	if o := wt.Origin; o != nil {
		task.Spec.NotAfter, task.Spec.Signature, task.Spec.TimeoutSeconds = o.NotAfter, o.Signature, string(o.TimeoutRaw)
	}
	if wt.TimeoutSeconds > 0 {
		task.Spec.Timeout = &metav1.Duration{Duration: time.Duration(wt.TimeoutSeconds) * time.Second}
	}
	if !wt.CreatedAt.IsZero() {
		t := metav1.NewTime(wt.CreatedAt.UTC())
		task.Spec.CreatedAt = &t
	}
	s.create(ctx, task)
}

// taskAPIVersion is the apiVersion of the Tasks intake makes.
var taskAPIVersion = agentv1.GroupVersion.String()

// dropTask gives up on a task handed over without an id that can be reported under (none,
// not valid UTF-8, a lone surrogate; docs/orchestrator-api.md, "Task ids").
func (s *Syncer) dropTask(e *wire.InvalidTaskError) {
	s.tasksDropped.Add(1)
	s.log.Error(errors.New(e.Reason), "Dropping a task the agent cannot report: it has no usable id")
}

// refuseInvalid reports FAILED, from memory, a task assigned to the agent that it cannot run:
// its body is invalid, or its id is too long to be stored. Nothing of it reaches the store or
// the journal (nothing runs, so there is nothing to make durable); offered again, it is
// answered with the report accepted before, or refused again the same way.
func (s *Syncer) refuseInvalid(e *wire.InvalidTaskError, agentID string) {
	task := &agentv1.Task{
		TypeMeta:   metav1.TypeMeta{APIVersion: taskAPIVersion, Kind: "Task"},
		ObjectMeta: metav1.ObjectMeta{Name: agentv1.TaskName(e.ID)},
		Spec:       agentv1.TaskSpec{TaskID: e.ID, AgentID: agentID},
	}
	if s.answeredBefore(task, false) {
		return
	}
	now := metav1.NewTime(s.clock.Now().UTC())
	task.Status.MarkPending(now, 1)
	task.Status.MarkFailed(now, 1, agentv1.ReasonInvalidSpec, e.Error())
	s.log.Info("Task refused at intake; reporting it without storing it", "idBytes", len(e.ID), "error", e.Reason)
	if s.opts.OnRefused != nil {
		s.opts.OnRefused(task)
	}
	s.rep.reportDirect(task)
}

func (s *Syncer) create(ctx context.Context, task *agentv1.Task) {
	if s.answeredBefore(task, true) {
		return // finished and reported within the dedup window: never run twice
	}
	bound := s.slots.bind(task.Name)
	// Handed over (the store keeps it without a copy): read from here on, never changed.
	err := store.CreateOwned(ctx, s.opts.Store, task)
	if err == nil {
		if log := s.log.V(1); log.Enabled() { // its values would be made for nothing
			log.Info("Task accepted", "task", task.TaskID(), "type", task.Spec.Type)
		}
		s.rep.queue.Add(task.Name) // stored: acknowledge it (RUNNING), or report its end
		return
	}
	log := s.log.WithValues("task", task.TaskID(), "type", task.Spec.Type)
	switch {
	case apierrors.IsAlreadyExists(err):
		// Offered again (its acknowledgement went missing): keep ours, answer with its state.
		if bound {
			s.slots.release(task.Name)
		}
		s.answerHeld(ctx, task)
	case errors.Is(err, store.ErrNotDurable):
		// Not durable, not run: the task ends FAILED, reported straight from here.
		log.Error(err, "Cannot persist the task; failing it without running it")
		if bound {
			s.slots.release(task.Name)
		}
		task = task.DeepCopy() // the store's, even undone: its failed creation may still be read
		now := metav1.NewTime(s.clock.Now().UTC())
		task.Status.MarkPending(now, 1)
		task.Status.MarkFailed(now, 1, agentv1.ReasonFailed, err.Error())
		if s.opts.OnRefused != nil {
			s.opts.OnRefused(task)
		}
		s.rep.reportDirect(task)
	default:
		// Nothing we can do but say so loudly: the store is the agent's memory.
		log.Error(err, "Cannot store the task")
		if bound {
			s.slots.release(task.Name)
		}
	}
}

// labelValue makes a task type usable as a label value (63 characters of [A-Za-z0-9_.-]).
func labelValue(typ string) string {
	if len(typ) <= 63 && !strings.ContainsFunc(typ, notLabelRune) {
		return typ // the common case ("ECHO"), without a copy
	}
	b := []byte(typ)
	if len(b) > 63 {
		b = b[:63]
	}
	for i, c := range b {
		if notLabelRune(rune(c)) {
			b[i] = '_'
		}
	}
	return string(b)
}

// notLabelRune reports whether r cannot be in a label value.
func notLabelRune(r rune) bool {
	return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_' || r == '.' || r == '-')
}
