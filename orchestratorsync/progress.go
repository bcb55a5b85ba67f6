package orchestratorsync

import (
	"context"
	"slices"
	"sync"
	"time"

	"github.com/go-logr/logr"

	"github.com/letsbe/sysadmin-agent/api/store"
	"github.com/letsbe/sysadmin-agent/orchestratorsync/wire"

	"github.com/letsbe/sysadmin-agent/api/progress"
)

// progressSender sends the batches the controllers put in the hub, one at a time, while the
// orchestrator wants them. It never retries: the next batch, or the final report, carries on.
// The final report of a task waits for nothing but an in-flight progress report of that same
// task, which it cancels (beforeFinal), so a progress report never arrives after its final.
type progressSender struct {
	store   store.Store
	session *session
	log     logr.Logger
	hub     *progress.Hub

	mu       sync.Mutex
	inflight map[string]*progressFlight
}

type progressFlight struct {
	ctx    context.Context
	cancel context.CancelFunc
	done   chan struct{}
}

func newProgressSender(st store.Store, sess *session, hub *progress.Hub, log logr.Logger) *progressSender {
	return &progressSender{store: st, session: sess, hub: hub, log: log, inflight: make(map[string]*progressFlight)}
}

// setFeatures applies the features of a register answer.
func (p *progressSender) setFeatures(features []string) {
	if p == nil {
		return
	}
	on := slices.Contains(features, wire.FeatureProgress)
	if on != p.hub.Enabled() {
		p.log.Info("Progress reports", "enabled", on)
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
	t, err := store.View(ctx, p.store, task)
	if err != nil || t.Status.Phase.IsFinal() {
		return
	}
	r := wire.ProgressReport{Status: wire.StatusRunning}
	if st := t.Status.StartTime; st != nil {
		// As the first RUNNING report has it, so the orchestrator sees no change.
		r.StartedAt, _ = wire.FormatTime(st.UTC().Truncate(time.Second))
	}
	for _, e := range b.Events {
		r.Events = append(r.Events, wire.Event{Time: e.Time, Type: e.Type, Message: e.Message})
	}
	for _, c := range b.Output {
		r.Output = append(r.Output, wire.OutputChunk{Stream: c.Stream, Offset: c.Offset, Data: c.Data})
	}
	log := p.log.WithValues("task", task)
	err = p.session.do(ctx, func(c *wire.Client, agentID string) error {
		r.AgentID = agentID
		return c.ReportProgress(ctx, t.TaskID(), r)
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
