package orchestratortest

import (
	"container/list"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-logr/logr"
)

// Task statuses as the orchestrator sees them.
const (
	StatusPending   = "PENDING"
	StatusAssigned  = "ASSIGNED"
	StatusRunning   = "RUNNING"
	StatusCompleted = "COMPLETED"
	StatusFailed    = "FAILED"
)

// DefaultAckTimeout is how long a handed-out task waits for its first report before it is
// offered again, when Options.AckTimeout is zero.
const DefaultAckTimeout = 30 * time.Second

// DefaultEnrollmentToken is the enrollment token when Options.EnrollmentToken is empty.
const DefaultEnrollmentToken = "dev-token"

// maxRequestBytes bounds request bodies.
const maxRequestBytes = 1 << 20

// Options configures New.
type Options struct {
	// EnrollmentToken is the bearer register requires; default DefaultEnrollmentToken.
	// Without IssueAgentTokens every other call uses it too.
	EnrollmentToken string
	// IssueAgentTokens makes register return a per-agent token that every later call of that
	// agent must use (the enrollment token then gets 401 there). A new registration of the
	// same agent replaces its previous token.
	IssueAgentTokens bool
	// HeartbeatIntervalSeconds and PollIntervalSeconds are returned by register when > 0.
	HeartbeatIntervalSeconds float64
	PollIntervalSeconds      float64
	// IgnoreWait behaves like an old orchestrator: GET /tasks/next answers at once.
	IgnoreWait bool
	// LegacyRegisterID answers register with {"id": ...} instead of {"agent_id": ...}.
	LegacyRegisterID bool
	// AckTimeout is how long a handed-out task stays assigned without any report from its
	// agent before it is offered again (contract v1.1, acknowledged assignment); it is sent as
	// ack_timeout_seconds at registration. DefaultAckTimeout when zero; negative: never.
	AckTimeout time.Duration
	// ForgetFinishedBodies drops a task's payload once it is final, so that a long run of large
	// tasks (benchmarks) does not keep them all.
	ForgetFinishedBodies bool
	// Progress announces the feature "progress" at register: the agent then sends progress
	// reports (RUNNING with new events and output), kept in TaskState.Progress.
	Progress bool
	// Logger receives V(1) lines about what the server does; the zero value logs nothing.
	Logger logr.Logger
	// Sign, when set, turns the body of every task handed out (the GET /tasks/next JSON) into
	// the body sent, given the agent it goes to: the development wiring adds not_after and a
	// signature there, hostile tests tamper with it. An error answers 500 and the task stays
	// assigned.
	Sign func(task []byte, agentID string) ([]byte, error)
}

// TaskState is the orchestrator's view of a task.
type TaskState struct {
	ID             string          `json:"id"`
	Type           string          `json:"type"`
	Payload        json.RawMessage `json:"payload"`
	TimeoutSeconds int             `json:"timeout_seconds,omitempty"`
	// Status is PENDING, ASSIGNED, RUNNING, COMPLETED or FAILED.
	// A task re-queued after its ack timeout is PENDING again and keeps the AgentID it was
	// last handed to, whose late reports are still accepted as its acknowledgement.
	Status     string          `json:"status"`
	AgentID    string          `json:"agent_id,omitempty"`
	Result     json.RawMessage `json:"result,omitempty"`
	Error      string          `json:"error,omitempty"`
	StartedAt  *time.Time      `json:"started_at,omitempty"`
	FinishedAt *time.Time      `json:"finished_at,omitempty"`
	Events     []Event         `json:"events,omitempty"`
	CreatedAt  time.Time       `json:"created_at"`
	AssignedAt time.Time       `json:"assigned_at,omitzero"`
	RunningAt  time.Time       `json:"running_at,omitzero"`
	FinalAt    time.Time       `json:"final_at,omitzero"`
	// Acknowledged is true once a report of the task arrived after it was handed out.
	Acknowledged bool `json:"acknowledged"`
	// Offers counts the times the task was handed out (more than 1: re-offered after an ack
	// timeout).
	Offers int `json:"offers"`
	// Requeues counts re-queues after an ack timeout.
	Requeues int `json:"requeues"`
	// Reports counts accepted reports (RUNNING, final, identical repeats).
	Reports int `json:"reports"`
	// RunningReports counts accepted RUNNING reports.
	RunningReports int `json:"running_reports"`
	// FinalReports counts accepted first final reports (0 or 1).
	FinalReports int `json:"final_reports"`
	// Duplicates counts identical repeated final reports.
	Duplicates int `json:"duplicates"`
	// DifferingDuplicates counts repeated final reports with the same outcome whose bytes
	// differ from the first one (the agent should repeat it byte for byte).
	DifferingDuplicates int `json:"differing_duplicates"`
	// Progress is what progress reports brought while the task ran.
	Progress TaskProgress `json:"progress,omitzero"`
}

// IsFinal reports whether the task is COMPLETED or FAILED.
func (t TaskState) IsFinal() bool { return t.Status == StatusCompleted || t.Status == StatusFailed }

// AgentState is the orchestrator's view of an agent.
type AgentState struct {
	ID           string            `json:"id"`
	Hostname     string            `json:"hostname"`
	Version      string            `json:"version"`
	OS           string            `json:"os,omitempty"`
	Arch         string            `json:"arch,omitempty"`
	Capabilities []string          `json:"capabilities"`
	Labels       map[string]string `json:"labels,omitempty"`
	// Policy is what the agent reported about its task policy at its last registration.
	Policy            *PolicyReport `json:"policy,omitempty"`
	Registrations     int           `json:"registrations"`
	Heartbeats        int           `json:"heartbeats"`
	LastHeartbeat     time.Time     `json:"last_heartbeat,omitzero"`
	LastStatus        string        `json:"last_status,omitempty"`
	LastHeartbeatBody HeartbeatBody `json:"last_heartbeat_body"`
	// BootID is the boot_id of the agent's latest polls ("" if it sends none); Boots counts
	// the distinct boot ids seen.
	BootID string `json:"boot_id,omitempty"`
	Boots  int    `json:"boots"`
}

// Stats counts what the server saw. Request counts include refused requests.
type Stats struct {
	Register  int // POST /agents/register
	Heartbeat int // POST /agents/{id}/heartbeat
	NextTask  int // GET /tasks/next
	Report    int // PATCH /tasks/{id}
	Dev       int // /dev/...

	TasksAssigned   int // 200 answers of GET /tasks/next
	FinalReports    int // first final reports accepted
	DuplicateFinals int // identical repeated final reports (answered 200, no-op)
	Conflicts       int // 409 answers
	NotFound        int // 404 answers (unknown agent or task)
	Unauthorized    int // 401 answers
	BadRequests     int // 400, 413 answers

	LongPollsWaiting int // long polls parked right now

	Requeued        int // tasks offered again after their ack timeout
	SupersededPolls int // long polls dropped because a later boot of their agent polled
	GoneClients     int // parked long polls whose client had gone away when a task came
}

type task struct {
	st        TaskState
	wire      []byte        // the GET /tasks/next body, encoded once
	changed   chan struct{} // closed and replaced on every change
	offer     uint64        // bumped at every hand-out; an ack timer acts only on its own offer
	ackTimer  *time.Timer
	finalBody []byte // the accepted final report, as received
}

type agent struct {
	st       AgentState
	known    bool
	token    string
	cancels  []string
	oldBoots map[string]bool // boot ids superseded by a later one
}

type waiter struct {
	ch      chan struct{} // buffered 1: a task may be pending
	drop    chan struct{} // closed when a later boot of the same agent polls
	el      *list.Element // nil once removed from Server.waiters
	agentID string
	bootID  string
}

type counters struct {
	register, heartbeat, next, report, dev                    atomic.Int64
	assigned, finals, duplicates, conflicts, notFound, unauth atomic.Int64
	badRequests, waiting                                      atomic.Int64
	requeued, superseded, gone                                atomic.Int64
}

// Server is an in-memory orchestrator; it implements http.Handler for paths starting with
// /agents, /tasks and /dev. Create it with New.
type Server struct {
	opts Options
	log  logr.Logger
	mux  *http.ServeMux
	n    counters

	mu         sync.Mutex
	tasks      map[string]*task
	order      []*task
	queue      []*task // PENDING in FIFO order from qhead; may hold tasks no longer PENDING
	qhead      int
	agents     map[string]*agent
	agentOrder []*agent
	tokens     map[string]string    // per-agent token -> agent id
	waiters    list.List            // of *waiter, oldest first
	parked     map[*waiter]struct{} // every long poll waiting, woken or not
	taskSeq    int
	agentSeq   int
}

// New returns a server with opts applied.
func New(opts Options) *Server {
	if opts.EnrollmentToken == "" {
		opts.EnrollmentToken = DefaultEnrollmentToken
	}
	s := &Server{
		opts:   opts,
		log:    opts.Logger,
		tasks:  make(map[string]*task),
		agents: make(map[string]*agent),
		tokens: make(map[string]string),
		parked: make(map[*waiter]struct{}),
	}
	if s.log.GetSink() == nil {
		s.log = logr.Discard()
	}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /agents/register", s.handleRegister)
	mux.HandleFunc("POST /agents/{agent}/heartbeat", s.handleHeartbeat)
	mux.HandleFunc("GET /tasks/next", s.handleNext)
	mux.HandleFunc("PATCH /tasks/{task}", s.withProgress(s.handleReport))
	mux.HandleFunc("POST /dev/tasks", s.handleDevEnqueue)
	mux.HandleFunc("GET /dev/tasks", s.handleDevList)
	mux.HandleFunc("GET /dev/tasks/{task}", s.handleDevGet)
	s.mux = mux
	return s
}

// ServeHTTP implements http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.mux.ServeHTTP(w, r) }

// Enqueue adds a PENDING task and returns its id ("t-1", "t-2", ...). A nil payload is sent as
// null; a payload that is not valid JSON is sent as a JSON string holding it.
func (s *Server) Enqueue(taskType string, payload json.RawMessage, timeoutSeconds int) string {
	switch {
	case len(payload) == 0:
		payload = json.RawMessage("null")
	case !json.Valid(payload):
		payload, _ = json.Marshal(string(payload))
	default:
		payload = slices.Clone(payload)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.enqueueLocked(taskType, payload, timeoutSeconds)
}

func (s *Server) enqueueLocked(taskType string, payload json.RawMessage, timeoutSeconds int) string {
	now := time.Now().UTC()
	s.taskSeq++
	id := "t-" + strconv.Itoa(s.taskSeq)
	for s.tasks[id] != nil {
		s.taskSeq++
		id = "t-" + strconv.Itoa(s.taskSeq)
	}
	t := &task{
		st: TaskState{
			ID: id, Type: taskType, Payload: payload, TimeoutSeconds: max(timeoutSeconds, 0),
			Status: StatusPending, CreatedAt: now,
		},
		changed: make(chan struct{}),
	}
	wire, err := json.Marshal(nextTask{
		ID: id, Type: taskType, Payload: payload, TimeoutSeconds: t.st.TimeoutSeconds, CreatedAt: now,
	})
	if err != nil { // cannot happen: the payload is valid JSON and the time is now
		wire = []byte(`{"id":` + strconv.Quote(id) + `,"type":` + strconv.Quote(taskType) + `,"payload":null}`)
	}
	t.wire = wire
	s.tasks[id] = t
	s.order = append(s.order, t)
	s.queue = append(s.queue, t)
	s.wakeOneLocked()
	s.log.V(1).Info("Task enqueued", "task", id, "type", taskType)
	return id
}

// EnqueueRaw queues a task under id whose GET /tasks/next body is wire, sent byte for byte:
// a task no encoder would produce (a lone-surrogate id, say) or one of any size.
func (s *Server) EnqueueRaw(id, taskType string, wire []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	t := &task{
		st:      TaskState{ID: id, Type: taskType, Status: StatusPending, CreatedAt: time.Now().UTC()},
		changed: make(chan struct{}),
		wire:    slices.Clone(wire),
	}
	s.tasks[id] = t
	s.order = append(s.order, t)
	s.queue = append(s.queue, t)
	s.wakeOneLocked()
}

// Task returns a copy of the task's state.
func (s *Server) Task(id string) (TaskState, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	t := s.tasks[id]
	if t == nil {
		return TaskState{}, false
	}
	return t.st.clone(), true
}

// Tasks returns copies of all tasks in creation order.
func (s *Server) Tasks() []TaskState {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]TaskState, len(s.order))
	for i, t := range s.order {
		out[i] = t.st.clone()
	}
	return out
}

// EachTask calls fn for every task, newest first, until fn returns false, without copying
// them: fn must not keep or change t, and runs with the server locked (a dashboard's list of
// thousands of tasks, whose results may hold screenshots, costs no copies this way).
func (s *Server) EachTask(fn func(t *TaskState) bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i := len(s.order) - 1; i >= 0; i-- {
		if !fn(&s.order[i].st) {
			return
		}
	}
}

// Agents returns copies of all agents ever registered, in order of first registration.
func (s *Server) Agents() []AgentState {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]AgentState, len(s.agentOrder))
	for i, a := range s.agentOrder {
		out[i] = a.st.clone()
	}
	return out
}

// Cancel asks for a task to be cancelled. An ASSIGNED or RUNNING task is listed once in
// cancel_task_ids of its agent's next heartbeat (unless it is final by then); a PENDING task
// ends FAILED with error "cancelled" at once; a final or unknown task is left alone.
func (s *Server) Cancel(taskID string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	t := s.tasks[taskID]
	if t == nil {
		return
	}
	switch t.st.Status {
	case StatusPending:
		now := time.Now().UTC()
		t.st.Status, t.st.Error, t.st.FinalAt = StatusFailed, "cancelled", now
		t.notifyLocked()
	case StatusAssigned, StatusRunning:
		a := s.agents[t.st.AgentID]
		if a != nil && !slices.Contains(a.cancels, taskID) {
			a.cancels = append(a.cancels, taskID)
		}
	}
}

// RevokeTokens invalidates every per-agent token issued so far: later calls with them get 401
// until the agent registers again with the enrollment token (a sent agent_id is confirmed).
// Without IssueAgentTokens it has no effect.
func (s *Server) RevokeTokens() {
	s.mu.Lock()
	defer s.mu.Unlock()
	clear(s.tokens)
	for _, a := range s.agents {
		a.token = ""
	}
}

// ForgetAgents makes every agent unknown: heartbeats and next-task polls get 404 until the
// agent registers again. Tasks stay assigned and their agents may still report them.
func (s *Server) ForgetAgents() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, a := range s.agents {
		a.known = false
	}
}

// WaitTask blocks until pred holds for the task's state, or ctx ends. It is woken by changes
// of that task, not by polling. An unknown id is an error.
func (s *Server) WaitTask(ctx context.Context, id string, pred func(TaskState) bool) (TaskState, error) {
	for {
		s.mu.Lock()
		t := s.tasks[id]
		if t == nil {
			s.mu.Unlock()
			return TaskState{}, fmt.Errorf("unknown task %q", id)
		}
		st, changed := t.st.clone(), t.changed
		s.mu.Unlock()
		if pred(st) {
			return st, nil
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return st, fmt.Errorf("wait for task %s (status %s): %w", id, st.Status, ctx.Err())
		}
	}
}

// Stats returns the counters.
func (s *Server) Stats() Stats {
	ld := func(v *atomic.Int64) int { return int(v.Load()) }
	return Stats{
		Register: ld(&s.n.register), Heartbeat: ld(&s.n.heartbeat), NextTask: ld(&s.n.next),
		Report: ld(&s.n.report), Dev: ld(&s.n.dev),
		TasksAssigned: ld(&s.n.assigned), FinalReports: ld(&s.n.finals),
		DuplicateFinals: ld(&s.n.duplicates), Conflicts: ld(&s.n.conflicts),
		NotFound: ld(&s.n.notFound), Unauthorized: ld(&s.n.unauth),
		BadRequests: ld(&s.n.badRequests), LongPollsWaiting: ld(&s.n.waiting),
		Requeued: ld(&s.n.requeued), SupersededPolls: ld(&s.n.superseded), GoneClients: ld(&s.n.gone),
	}
}

func (t *task) notifyLocked() {
	close(t.changed)
	t.changed = make(chan struct{})
}

// popLocked assigns the oldest PENDING task to agentID, or returns nil.
func (s *Server) popLocked(agentID string) *task {
	for s.qhead < len(s.queue) {
		t := s.queue[s.qhead]
		s.queue[s.qhead] = nil
		s.qhead++
		if t.st.Status != StatusPending {
			continue // cancelled while queued
		}
		if s.qhead > 64 && s.qhead*2 > len(s.queue) {
			s.queue = append(s.queue[:0], s.queue[s.qhead:]...)
			s.qhead = 0
		}
		t.st.Status, t.st.AgentID, t.st.AssignedAt = StatusAssigned, agentID, time.Now().UTC()
		t.st.Acknowledged = false
		t.st.Offers++
		s.armAckLocked(t)
		t.notifyLocked()
		return t
	}
	s.queue, s.qhead = s.queue[:0], 0
	return nil
}

func (s *Server) hasPendingLocked() bool {
	for _, t := range s.queue[s.qhead:] {
		if t.st.Status == StatusPending {
			return true
		}
	}
	return false
}

// ackTimeout returns the ack timeout in force (0: never).
func (s *Server) ackTimeout() time.Duration {
	switch d := s.opts.AckTimeout; {
	case d < 0:
		return 0
	case d == 0:
		return DefaultAckTimeout
	default:
		return d
	}
}

// armAckLocked starts the ack timer of a task just handed out: if no report of it arrives in
// time, it is offered again.
func (s *Server) armAckLocked(t *task) {
	t.offer++
	if t.ackTimer != nil {
		t.ackTimer.Stop()
		t.ackTimer = nil
	}
	d := s.ackTimeout()
	if d == 0 {
		return
	}
	offer := t.offer
	t.ackTimer = time.AfterFunc(d, func() { s.ackExpired(t, offer) })
}

// ackExpired re-queues t if its offer is still unacknowledged.
func (s *Server) ackExpired(t *task, offer uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if t.offer != offer || t.st.Acknowledged || t.st.Status != StatusAssigned {
		return
	}
	s.requeueLocked(t)
	s.log.V(1).Info("Task not acknowledged in time; offered again", "task", t.st.ID, "agent", t.st.AgentID)
}

// requeueLocked offers an unacknowledged task again. It keeps its AgentID, whose late report
// still counts as the acknowledgement.
func (s *Server) requeueLocked(t *task) {
	if t.ackTimer != nil {
		t.ackTimer.Stop()
		t.ackTimer = nil
	}
	t.offer++
	t.st.Status = StatusPending
	t.st.Requeues++
	s.n.requeued.Add(1)
	s.queue = append(s.queue, t)
	t.notifyLocked()
	s.wakeOneLocked()
}

// acknowledgeLocked notes the first report of a handed-out task.
func (s *Server) acknowledgeLocked(t *task) {
	t.st.Acknowledged = true
	if t.ackTimer != nil {
		t.ackTimer.Stop()
		t.ackTimer = nil
	}
}

// wakeOneLocked signals the oldest parked long poll that a task may be pending.
func (s *Server) wakeOneLocked() {
	if e := s.waiters.Front(); e != nil {
		w := s.waiters.Remove(e).(*waiter)
		w.el = nil
		select {
		case w.ch <- struct{}{}:
		default:
		}
	}
}

func (t TaskState) clone() TaskState {
	t.Payload = slices.Clone(t.Payload)
	t.Result = slices.Clone(t.Result)
	t.Events = slices.Clone(t.Events)
	t.Progress = t.Progress.clone()
	if t.StartedAt != nil {
		v := *t.StartedAt
		t.StartedAt = &v
	}
	if t.FinishedAt != nil {
		v := *t.FinishedAt
		t.FinishedAt = &v
	}
	return t
}

func (st AgentState) clone() AgentState {
	st.Capabilities = slices.Clone(st.Capabilities)
	st.Labels = maps.Clone(st.Labels)
	st.LastHeartbeatBody.RunningTaskIDs = slices.Clone(st.LastHeartbeatBody.RunningTaskIDs)
	st.LastHeartbeatBody.Stacks = slices.Clone(st.LastHeartbeatBody.Stacks)
	for i := range st.LastHeartbeatBody.Stacks {
		hs := &st.LastHeartbeatBody.Stacks[i]
		hs.DegradedServices = slices.Clone(hs.DegradedServices)
	}
	return st
}

func newToken() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails
	return "agt-" + hex.EncodeToString(b[:])
}
