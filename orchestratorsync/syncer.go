package orchestratorsync

import (
	"context"
	"errors"
	"fmt"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	"k8s.io/utils/clock"

	"github.com/letsbe/sysadmin-agent/orchestratorsync/wire"

	"github.com/go-logr/logr"

	"github.com/letsbe/sysadmin-agent/api/progress"
	"github.com/letsbe/sysadmin-agent/api/store"
	agentv1 "github.com/letsbe/sysadmin-agent/api/v1alpha1"
)

// DefaultLongPollWait is how long the agent asks the orchestrator to hold a next-task request.
const DefaultLongPollWait = 25 * time.Second

// Options configure a Syncer.
type Options struct {
	// Client talks to the orchestrator. Required.
	Client *wire.Client
	// Store and Notifier hold the local Tasks. Required.
	Store    store.Store
	Notifier store.Notifier
	// StateDir keeps the agent's identity. Required.
	StateDir string
	// EnrollmentToken is AGENT_TOKEN, used to (re-)register. Required.
	EnrollmentToken string
	// Hostname, Version, Capabilities and Labels describe the agent at registration.
	Hostname     string
	Version      string
	Capabilities []string
	Labels       map[string]string
	// HeartbeatInterval and PollInterval apply unless the orchestrator sets its own.
	HeartbeatInterval time.Duration
	PollInterval      time.Duration
	// LongPollWait is the wait asked for on next-task requests; DefaultLongPollWait when 0,
	// no long poll when negative.
	LongPollWait time.Duration
	// MaxConcurrentTasks bounds the unfinished Tasks the agent takes on.
	MaxConcurrentTasks int
	// ReportWorkers is the number of reports in flight at once; MaxConcurrentTasks+1 when 0.
	ReportWorkers int
	// MaxReportBytes is the budget of one report body on the wire; results are shrunk to fit
	// (see EncodeReport). DefaultMaxReportBytes when 0.
	MaxReportBytes int
	// Durable says whether the store can make Tasks durable now: nil when it can, else why
	// not. While it cannot, the agent takes no new tasks. Nil means always.
	Durable func() error
	// Unwritten reports whether the named Task has a status the store could not make durable
	// yet; its reports wait until it is (after a crash the older, durable status would come
	// back, and must not contradict what was reported). Nil means never.
	Unwritten func(name string) bool
	// Delivered remembers the final reports the orchestrator accepted (the journal, durably;
	// store.Delivered). A task offered again whose final report it holds is answered with that
	// report, byte for byte, and never run again. Optional: without it only the Tasks still in
	// the store are recognised.
	Delivered store.Delivered
	// RunningTasks lists the ids of the executing Tasks, for heartbeats.
	RunningTasks func() []string
	// CancelTask stops a Task the orchestrator cancelled, by its name (agentv1.TaskName of
	// the id).
	CancelTask func(ctx context.Context, id string)
	// Policy, when set, describes the agent's task policy for the register request (v1.1).
	Policy func() *wire.PolicyReport
	// OnRefused, when set, is called for each Task failed at intake (unsupported type or a
	// task body that cannot be run).
	OnRefused func(task *agentv1.Task)
	// SystemInfo returns the host's figures for heartbeats; optional.
	SystemInfo func() wire.SystemInfo
	// Stacks hold the Stack objects whose last observed state every heartbeat carries
	// (v1.1 "stacks"); optional: without it heartbeats carry "stacks": [].
	Stacks store.StackStore
	// Progress, when set, receives the controllers' progress batches, which are sent as
	// progress reports while the orchestrator announces the feature "progress".
	Progress *progress.Hub
	// Logger is required.
	Logger logr.Logger
	// Clock and Backoff are for tests; real ones when zero.
	Clock   clock.Clock
	Backoff Backoff
}

// Syncer is the agent's side of the orchestrator contract: it registers, heartbeats, polls
// for tasks and turns them into Tasks in the store, and reports their progress back. It never
// executes anything: the controllers do, watching the same store.
type Syncer struct {
	opts    Options
	log     logr.Logger
	clock   clock.Clock
	session *session
	start   time.Time

	heartbeatInterval atomic.Int64 // time.Duration
	pollInterval      atomic.Int64 // time.Duration
	draining          atomic.Bool
	drainNow          chan struct{}
	stopPolling       <-chan struct{} // closed by Drain: stopPollingCtx's Done
	stopPollingCtx    context.Context
	stopPollingFn     context.CancelFunc
	lastHeartbeat     atomic.Int64 // unix nanos of the last successful heartbeat
	reportsAbandoned  atomic.Uint64
	tasksDropped      atomic.Uint64
	clampedHeartbeat  atomic.Bool // logged once
	clampedPoll       atomic.Bool
	longCancelList    atomic.Bool
	extraPollers      atomic.Int32 // pollers running besides pollLoop's own request

	slots     *slots
	rep       *reporter
	prog      *progressSender // nil without Options.Progress
	resending sync.Map        // task ids whose accepted final report is being repeated
}

// New validates opts and returns a Syncer. Nothing runs until Run.
func New(opts Options) (*Syncer, error) {
	switch {
	case opts.Client == nil:
		return nil, errors.New("orchestratorsync: Client is required")
	case opts.Store == nil || opts.Notifier == nil:
		return nil, errors.New("orchestratorsync: Store and Notifier are required")
	case opts.StateDir == "":
		return nil, errors.New("orchestratorsync: StateDir is required")
	case opts.EnrollmentToken == "":
		return nil, errors.New("orchestratorsync: EnrollmentToken is required")
	case opts.Logger.GetSink() == nil:
		return nil, errors.New("orchestratorsync: Logger is required")
	}
	if opts.Clock == nil {
		opts.Clock = clock.RealClock{}
	}
	if opts.MaxConcurrentTasks <= 0 {
		opts.MaxConcurrentTasks = 1
	}
	if opts.HeartbeatInterval <= 0 {
		opts.HeartbeatInterval = 30 * time.Second
	}
	if opts.PollInterval <= 0 {
		opts.PollInterval = 5 * time.Second
	}
	if opts.LongPollWait == 0 {
		opts.LongPollWait = DefaultLongPollWait
	}
	if opts.ReportWorkers <= 0 {
		opts.ReportWorkers = opts.MaxConcurrentTasks + 1
	}
	if opts.MaxReportBytes <= 0 {
		opts.MaxReportBytes = wire.DefaultMaxReportBytes
	}
	if opts.Durable == nil {
		opts.Durable = func() error { return nil }
	}
	if opts.Unwritten == nil {
		opts.Unwritten = func(string) bool { return false }
	}
	if opts.RunningTasks == nil {
		opts.RunningTasks = func() []string { return nil }
	}
	s := &Syncer{
		opts:     opts,
		log:      opts.Logger,
		clock:    opts.Clock,
		start:    opts.Clock.Now(),
		drainNow: make(chan struct{}, 1),
		slots:    newSlots(opts.MaxConcurrentTasks),
	}
	s.stopPollingCtx, s.stopPollingFn = context.WithCancel(context.Background())
	s.stopPolling = s.stopPollingCtx.Done()
	s.heartbeatInterval.Store(int64(opts.HeartbeatInterval))
	s.pollInterval.Store(int64(opts.PollInterval))
	id, err := LoadIdentity(opts.StateDir)
	if err != nil {
		s.log.Error(err, "Cannot read the saved identity yet; it is looked at again when the agent starts")
	}
	root, err := opts.Client.WithToken(opts.EnrollmentToken)
	if err != nil {
		return nil, fmt.Errorf("orchestratorsync: EnrollmentToken: %w", err)
	}
	s.session = &session{
		root:       root,
		log:        opts.Logger,
		clock:      opts.Clock,
		backoff:    opts.Backoff,
		stateDir:   opts.StateDir,
		enroll:     opts.EnrollmentToken,
		agentID:    id.AgentID,
		saved:      id,
		request:    s.registerRequest,
		onResp:     s.applyIntervals,
		registered: make(chan struct{}),
	}
	// Try the saved per-agent token first; a 401 falls back to the enrollment token.
	s.session.useToken(id.Token)
	if opts.Progress != nil {
		s.prog = newProgressSender(opts.Store, s.session, opts.Progress, opts.Logger)
	}
	s.rep = newReporter(reporterDeps{
		store: opts.Store, delivered: opts.Delivered, unwritten: opts.Unwritten, session: s.session,
		beforeFinal: s.prog.beforeFinal, onAbandoned: func() { s.reportsAbandoned.Add(1) },
		workers: opts.ReportWorkers, maxReportBytes: opts.MaxReportBytes,
		backoff: opts.Backoff, clock: opts.Clock, log: opts.Logger,
	})
	return s, nil
}

// AgentID returns the agent's current id ("" before the first registration).
func (s *Syncer) AgentID() string { return s.session.currentID() }

// Draining reports whether Drain was called.
func (s *Syncer) Draining() bool { return s.draining.Load() }

// OutboxDepth returns the number of Tasks whose report waits for delivery.
func (s *Syncer) OutboxDepth() int { return s.rep.queue.Len() }

// ReportsAbandoned counts the final reports given up on: the orchestrator refused even the
// minimal report.
func (s *Syncer) ReportsAbandoned() uint64 { return s.reportsAbandoned.Load() }

// TasksDropped counts the tasks handed over without an id the agent can report under.
func (s *Syncer) TasksDropped() uint64 { return s.tasksDropped.Load() }

// Registered is closed once the agent registered for the first time.
func (s *Syncer) Registered() <-chan struct{} { return s.session.registered }

// Registration reports whether the agent is registered with the orchestrator now and, when
// it is not, the last registration error ("" if none was seen yet). It never waits for the
// orchestrator, and the error never holds a token.
func (s *Syncer) Registration() (registered bool, lastError string) { return s.session.status() }

// LastHeartbeat returns the time of the last accepted heartbeat (zero if none).
func (s *Syncer) LastHeartbeat() time.Time {
	n := s.lastHeartbeat.Load()
	if n == 0 {
		return time.Time{}
	}
	return time.Unix(0, n)
}

// HeartbeatInterval returns the interval in force.
func (s *Syncer) HeartbeatInterval() time.Duration {
	return time.Duration(s.heartbeatInterval.Load())
}

// Drain stops taking new tasks and switches heartbeats to DRAINING (one is sent at once).
// Reporting goes on until Run's context ends.
func (s *Syncer) Drain() {
	s.stopPollingFn()
	if !s.draining.Swap(true) {
		select {
		case s.drainNow <- struct{}{}:
		default:
		}
	}
}

// Flush waits until every final report is delivered or refused, or ctx ends. It reports
// whether everything was delivered.
func (s *Syncer) Flush(ctx context.Context) bool { return s.rep.flush(ctx) }

// Run registers, then heartbeats, polls and reports until ctx ends. It returns nil on a clean
// stop. Each loop survives its own panics.
func (s *Syncer) Run(ctx context.Context) error {
	unsubscribe := s.opts.Notifier.Subscribe(s.onStoreEvent)
	defer unsubscribe()
	if err := s.slots.adopt(ctx, s.opts.Store); err != nil {
		return fmt.Errorf("list tasks: %w", err)
	}
	// Reports of Tasks finished before a restart can go out as soon as we are registered.
	if err := s.rep.enqueueExisting(ctx); err != nil {
		return fmt.Errorf("list tasks: %w", err)
	}

	s.session.start(ctx)
	// A registration still in flight when Run returns ends with ctx; wait for it.
	defer s.session.wait()
	s.reloadIdentity(ctx)
	id, gen := s.session.current()
	why := "start"
	if id != "" {
		why = "restart"
	}
	if err := s.session.register(ctx, gen, why); err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return err
	}

	var wg sync.WaitGroup
	wg.Go(func() { s.loop(ctx, "heartbeat", s.heartbeatLoop) })
	// Polling stops when draining starts, including a long poll in flight.
	pollCtx, cancelPoll := context.WithCancel(ctx)
	defer cancelPoll()
	defer context.AfterFunc(s.stopPollingCtx, cancelPoll)() // a callback, not a goroutine waiting
	wg.Go(func() { s.loop(pollCtx, "poller", func(pollCtx context.Context) { s.pollLoop(pollCtx, ctx) }) })
	wg.Go(func() { s.loop(ctx, "reporter", s.rep.run) })
	if s.prog != nil {
		wg.Go(func() { s.loop(ctx, "progress", s.prog.run) })
	}
	wg.Wait()
	return nil
}

// reloadIdentity adopts the identity saved in the state directory since New, unless this
// Syncer registered already: a Syncer built long before it runs (a standby replica in cluster
// mode, sharing the state directory with the leader it replaces) must register as the same
// agent, or the orchestrator would refuse the reports of the tasks it handed to that one.
//
// A damaged identity file is moved aside (loudly). Without a usable saved id, the agent
// presents the id its held Tasks were received under, so that their reports still go out
// under the id the orchestrator assigned them to.
func (s *Syncer) reloadIdentity(ctx context.Context) {
	id, err := LoadIdentity(s.opts.StateDir)
	if damaged, ok := errors.AsType[*DamagedIdentityError](err); ok {
		aside, merr := MoveIdentityAside(s.opts.StateDir, s.clock.Now())
		if merr != nil {
			s.log.Error(errors.Join(err, merr), "The saved agent identity is damaged and cannot be moved aside")
		} else {
			s.log.Error(damaged, "The saved agent identity is damaged; moved it aside", "movedTo", aside)
		}
	} else if err != nil {
		s.log.Error(err, "Cannot read the saved agent identity")
	}
	s.session.useIdentity(id, err, s.heldAgentID(ctx))
}

// heldAgentID returns the agent id recorded on the held Tasks that still owe the orchestrator
// a report (the most recently created one wins), or "".
func (s *Syncer) heldAgentID(ctx context.Context) string {
	list, err := s.opts.Store.List(ctx)
	if err != nil {
		return ""
	}
	var id string
	var newest time.Time
	for i := range list.Items {
		t := &list.Items[i]
		if t.Spec.AgentID == "" || t.Status.Report.FinalReported {
			continue
		}
		if c := t.CreationTimestamp.Time; id == "" || c.After(newest) {
			id, newest = t.Spec.AgentID, c
		}
	}
	return id
}

// loop runs fn until ctx ends, restarting it after a panic (logged with its stack).
func (s *Syncer) loop(ctx context.Context, name string, fn func(context.Context)) {
	for ctx.Err() == nil {
		func() {
			defer func() {
				if p := recover(); p != nil {
					s.log.Error(fmt.Errorf("panic: %v", p), "Loop panicked; restarting it", "loop", name, "stack", string(debug.Stack()))
				}
			}()
			fn(ctx)
		}()
		if ctx.Err() == nil {
			_ = sleep(ctx, s.clock, time.Second)
		}
	}
}

func (s *Syncer) registerRequest() wire.RegisterRequest {
	return wire.RegisterRequest{
		Hostname:     s.opts.Hostname,
		Version:      s.opts.Version,
		OS:           goos,
		Arch:         goarch,
		Capabilities: s.opts.Capabilities,
		Labels:       s.opts.Labels,
		Policy:       s.policyReport(),
	}
}

func (s *Syncer) policyReport() *wire.PolicyReport {
	if s.opts.Policy == nil {
		return nil
	}
	return s.opts.Policy()
}

// Lower bounds of the intervals an orchestrator may set (docs/orchestrator-api.md, "Register").
const (
	MinHeartbeatInterval = time.Second
	MinPollInterval      = 100 * time.Millisecond
)

func (s *Syncer) applyIntervals(resp *wire.RegisterResponse) {
	if d := resp.HeartbeatInterval(); d > 0 {
		if d < MinHeartbeatInterval {
			if !s.clampedHeartbeat.Swap(true) {
				s.log.Info("Orchestrator set a heartbeat interval below the minimum; using the minimum", "asked", d.String(), "using", MinHeartbeatInterval.String())
			}
			d = MinHeartbeatInterval
		}
		s.heartbeatInterval.Store(int64(d))
	}
	if d := resp.PollInterval(); d > 0 {
		if d < MinPollInterval {
			if !s.clampedPoll.Swap(true) {
				s.log.Info("Orchestrator set a poll interval below the minimum; using the minimum", "asked", d.String(), "using", MinPollInterval.String())
			}
			d = MinPollInterval
		}
		s.pollInterval.Store(int64(d))
	}
	s.prog.setFeatures(resp.Features)
}

// onStoreEvent runs inside store writes: it must only enqueue.
func (s *Syncer) onStoreEvent(ev store.Event) {
	t := ev.Task
	if ev.Type == store.Deleted || t.Status.Phase.IsFinal() {
		s.slots.release(t.Name)
	}
	// A Pending Task's RUNNING report (its acknowledgement) is queued by intake once the Task
	// is stored, not here: a store event may come before the Task is durable.
	if ev.Type != store.Deleted && !t.Status.Phase.IsPending() && needsReport(t) {
		s.rep.queue.Add(t.Name)
	}
}

func needsReport(t *agentv1.Task) bool {
	st := t.Status
	switch {
	case st.Phase.IsFinal():
		return !st.Report.FinalReported
	case st.Phase == agentv1.TaskRunning || st.Phase.IsPending():
		// RUNNING acknowledges a task held durably, before it runs too (contract v1.1).
		return !st.Report.RunningReported
	}
	return false
}
