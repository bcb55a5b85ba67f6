package orchestratorsync

import (
	"context"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/letsbe/sysadmin-agent/api/progress"
)

// FeatureProgress is the register answer's feature that asks for progress reports.
const FeatureProgress = "progress"

// progressTimeout bounds one progress report: a late one has no value.
const progressTimeout = 5 * time.Second

// ProgressReport is a RUNNING report carrying what is new of a running task (contract v1.1,
// feature "progress"): new events and output chunks with their byte offsets per stream.
type ProgressReport struct {
	AgentID   string        `json:"agent_id"`
	Status    string        `json:"status"`
	StartedAt string        `json:"started_at,omitempty"`
	Events    []Event       `json:"events,omitempty"`
	Output    []OutputChunk `json:"output,omitempty"`
}

// OutputChunk is a piece of one output stream of a task: Data are the bytes from Offset on.
type OutputChunk struct {
	Stream string `json:"stream"`
	Offset int64  `json:"offset"`
	Data   string `json:"data"`
}

// ReportProgress sends a progress report with PATCH /tasks/{task_id}.
func (c *Client) ReportProgress(ctx context.Context, taskID string, r ProgressReport) error {
	ep := "/tasks/" + escapeSegment(taskID)
	switch {
	case taskID == "":
		return invalidArg(http.MethodPatch, ep, "empty task id")
	case r.AgentID == "":
		return invalidArg(http.MethodPatch, ep, "report has no agent_id")
	}
	r.Status = StatusRunning
	_, err := c.do(ctx, http.MethodPatch, ep, "", r, min(c.timeout, progressTimeout))
	return err
}

// progressSender sends the batches the controllers put in the hub, one at a time, while the
// orchestrator wants them. It never retries: the next batch, or the final report, carries on.
// The final report of a task waits for nothing but an in-flight progress report of that same
// task, which it cancels (beforeFinal), so a progress report never arrives after its final.
type progressSender struct {
	s   *Syncer
	hub *progress.Hub

	mu       sync.Mutex
	inflight map[string]*progressFlight
}

type progressFlight struct {
	ctx    context.Context
	cancel context.CancelFunc
	done   chan struct{}
}

func newProgressSender(s *Syncer, hub *progress.Hub) *progressSender {
	return &progressSender{s: s, hub: hub, inflight: make(map[string]*progressFlight)}
}

// setFeatures applies the features of a register answer.
func (p *progressSender) setFeatures(features []string) {
	if p == nil {
		return
	}
	on := slices.Contains(features, FeatureProgress)
	if on != p.hub.Enabled() {
		p.s.log.Info("Progress reports", "enabled", on)
	}
	p.hub.SetEnabled(on)
}

// run sends batches until ctx ends.
func (p *progressSender) run(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-p.hub.Ready():
		}
		for ctx.Err() == nil {
			task, flight, b, ok := p.take(ctx)
			if !ok {
				break
			}
			p.send(flight.ctx, task, b)
			flight.cancel()
			p.mu.Lock()
			delete(p.inflight, task)
			p.mu.Unlock()
			close(flight.done)
		}
	}
}

// take removes the next batch from the hub and registers its flight, in one step under the
// lock that beforeFinal takes.
func (p *progressSender) take(ctx context.Context) (string, *progressFlight, progress.Batch, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	task, b, ok := p.hub.Take()
	if !ok {
		return "", nil, b, false
	}
	fctx, cancel := context.WithCancel(ctx)
	f := &progressFlight{ctx: fctx, cancel: cancel, done: make(chan struct{})}
	p.inflight[task] = f
	return task, f, b, true
}

func (p *progressSender) send(ctx context.Context, task string, b progress.Batch) {
	if !p.hub.Enabled() {
		return
	}
	t, err := p.s.opts.Store.Get(ctx, task)
	if err != nil || t.Status.Phase.IsFinal() {
		return
	}
	r := ProgressReport{Status: StatusRunning}
	if st := t.Status.StartTime; st != nil {
		// As the first RUNNING report has it, so the orchestrator sees no change.
		r.StartedAt, _ = formatTime(st.UTC().Truncate(time.Second))
	}
	for _, e := range b.Events {
		r.Events = append(r.Events, Event{Time: e.Time, Type: e.Type, Message: e.Message})
	}
	for _, c := range b.Output {
		r.Output = append(r.Output, OutputChunk{Stream: c.Stream, Offset: c.Offset, Data: c.Data})
	}
	log := p.s.log.WithValues("task", task)
	err = p.s.session.do(ctx, func(agentID string) error {
		r.AgentID = agentID
		return p.s.opts.Client.ReportProgress(ctx, t.TaskID(), r)
	})
	switch {
	case err == nil:
		log.V(2).Info("Progress delivered", "events", len(r.Events), "chunks", len(r.Output))
	case ctx.Err() != nil:
	default:
		log.V(1).Info("Progress not delivered; not sending it again", "error", err.Error())
	}
}

// beforeFinal stops an in-flight progress report of the task and waits for it to return, so
// that the final report goes out after it. The controllers closed the task's progress before
// its final status existed, so nothing of it is taken later.
func (p *progressSender) beforeFinal(task string) {
	if p == nil {
		return
	}
	p.mu.Lock()
	f := p.inflight[task]
	p.mu.Unlock()
	if f == nil {
		return
	}
	f.cancel()
	<-f.done
}
