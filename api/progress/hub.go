package progress

import (
	"sync"
	"sync/atomic"
	"time"
)

// Event is one step or phase a running Task reported.
type Event struct {
	Time    time.Time
	Type    string
	Message string
}

// Chunk is a piece of one output stream of a Task: Data are the bytes from Offset on, counted
// in the stream as it is sent (after redaction). A Chunk whose Offset lies beyond the end of
// the previous one means the bytes between were dropped.
type Chunk struct {
	Stream string
	Offset int64
	Data   string
}

// End returns the offset just after the chunk.
func (c Chunk) End() int64 { return c.Offset + int64(len(c.Data)) }

// Batch is what is new of one Task since its previous Batch.
type Batch struct {
	Events []Event
	Output []Chunk
}

// Empty reports whether the batch holds nothing.
func (b Batch) Empty() bool { return len(b.Events) == 0 && len(b.Output) == 0 }

// Hub passes Batches from the controllers to the sync side: at most one waits per Task. It is
// safe for concurrent use; the zero value is not usable, use NewHub.
type Hub struct {
	enabled atomic.Bool

	mu     sync.Mutex
	ready  map[string]Batch
	order  []string      // Tasks with a ready batch, oldest first
	signal chan struct{} // non-blocking wake-up of Take's callers
}

// NewHub returns an empty, disabled Hub.
func NewHub() *Hub {
	return &Hub{
		ready:  make(map[string]Batch),
		signal: make(chan struct{}, 1),
	}
}

// SetEnabled says whether anyone wants progress (the orchestrator announced the feature).
// While disabled, Offer takes nothing.
func (h *Hub) SetEnabled(on bool) { h.enabled.Store(on) }

// Enabled reports whether progress is wanted. A nil Hub is never enabled.
func (h *Hub) Enabled() bool { return h != nil && h.enabled.Load() }

// Offer hands over the next batch of a Task. It returns false, and takes nothing, when the
// hub is disabled or the Task's previous batch has not been taken yet: the caller
// keeps the data and offers it again later.
func (h *Hub) Offer(task string, b Batch) bool {
	if !h.Enabled() || b.Empty() {
		return false
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if _, waiting := h.ready[task]; waiting {
		return false
	}
	h.ready[task] = b
	h.order = append(h.order, task)
	select {
	case h.signal <- struct{}{}:
	default:
	}
	return true
}

// Waiting reports whether a batch of the Task waits to be taken.
func (h *Hub) Waiting(task string) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	_, ok := h.ready[task]
	return ok
}

// Take removes and returns the oldest waiting batch.
func (h *Hub) Take() (task string, b Batch, ok bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for len(h.order) > 0 {
		task, h.order = h.order[0], h.order[1:]
		if b, ok = h.ready[task]; ok {
			delete(h.ready, task)
			return task, b, true
		}
	}
	return "", Batch{}, false
}

// Ready is signalled (without blocking anyone) after an Offer; call Take until it returns
// false after each signal.
func (h *Hub) Ready() <-chan struct{} { return h.signal }

// Close ends the progress of a Task: its waiting batch, if any, is dropped. The controllers
// call it before they write the Task's final status and offer nothing of the Task after it.
func (h *Hub) Close(task string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	delete(h.ready, task)
}
