package controllers

import (
	"context"
	"errors"
	"slices"
	"sync"
)

// Causes a running Task can be stopped with. Their messages become the Task's error.
var (
	// ErrCancelled: the orchestrator cancelled the Task.
	ErrCancelled = errors.New("cancelled")
	// ErrShuttingDown: the agent stopped before the Task finished.
	ErrShuttingDown = errors.New("agent shutting down")
)

// Registry knows which Tasks are executing in this process and how to stop them. It is shared
// by all reconcilers; the sync side uses it to list running tasks and to cancel them.
type Registry struct {
	mu      sync.Mutex
	running map[string]context.CancelCauseFunc
}

// NewRegistry returns an empty Registry.
func NewRegistry() *Registry {
	return &Registry{running: make(map[string]context.CancelCauseFunc)}
}

func (r *Registry) start(name string, cancel context.CancelCauseFunc) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.running[name] = cancel
}

func (r *Registry) done(name string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.running, name)
}

// IsRunning reports whether the named Task is executing in this process.
func (r *Registry) IsRunning(name string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	_, ok := r.running[name]
	return ok
}

// Running returns the names of the executing Tasks, sorted.
func (r *Registry) Running() []string {
	r.mu.Lock()
	names := make([]string, 0, len(r.running))
	for name := range r.running {
		names = append(names, name)
	}
	r.mu.Unlock()
	slices.Sort(names)
	return names
}

// Cancel stops the named Task with cause if it is executing here, and reports whether it was.
func (r *Registry) Cancel(name string, cause error) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	cancel, ok := r.running[name]
	if ok {
		cancel(cause)
	}
	return ok
}

// CancelAll stops every running Task with cause.
func (r *Registry) CancelAll(cause error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, cancel := range r.running {
		cancel(cause)
	}
}
