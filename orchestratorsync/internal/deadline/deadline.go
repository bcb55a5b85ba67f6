package deadline

import (
	"context"
	"reflect"
	"sync"
	"time"
)

// Shared makes the contexts that bound calls by a timeout without a context and a
// timer per call: calls on the same parent context with the same timeout that start within
// one granule (a sixteenth of the timeout) share one context, whose deadline is its first
// call's start plus the timeout. Each call thus ends within its timeout and has at least
// 15/16 of it. A busy client makes about one such context per second and parent instead of
// one per request. The zero value is ready to use. Safe for concurrent use.
type Shared struct {
	mu      sync.Mutex
	entries [4]entry // the latest, replaced in turn
	next    int
}

type entry struct {
	parent  context.Context
	timeout time.Duration
	until   time.Time // handed out to calls starting before then
	ctx     context.Context
	// cancel is never called before the deadline: calls that started in time still use ctx.
	// The timer ends ctx at its deadline.
	cancel context.CancelFunc
}

// granuleDivisor divides a timeout into the window within which calls share a context.
const granuleDivisor = 16

// Context returns a context that ends when parent ends or at most timeout from now, and at
// least timeout less a granule from now, and the function to call once the call is done.
func (s *Shared) Context(parent context.Context, timeout time.Duration) (context.Context, context.CancelFunc) {
	// Contexts are compared by identity: only pointers (cancel, timer and value contexts) are
	// shared, as a context of another kind might not be comparable.
	granule := timeout / granuleDivisor
	if granule <= 0 || reflect.TypeOf(parent).Kind() != reflect.Pointer {
		return context.WithTimeout(parent, timeout)
	}
	now := time.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	for i := range s.entries {
		if e := &s.entries[i]; e.parent == parent && e.timeout == timeout && now.Before(e.until) {
			return e.ctx, func() {}
		}
	}
	e := &s.entries[s.next]
	s.next = (s.next + 1) % len(s.entries)
	ctx, cancel := context.WithDeadline(parent, now.Add(timeout))
	*e = entry{parent: parent, timeout: timeout, until: now.Add(granule), ctx: ctx, cancel: cancel}
	return ctx, func() {}
}
