package deadline

import (
	"context"
	"testing"
	"time"
)

func TestShared(t *testing.T) {
	t.Parallel()
	var s Shared
	parent, cancel := context.WithCancel(t.Context())
	defer cancel()
	other, cancelOther := context.WithCancel(t.Context())
	defer cancelOther()
	const timeout = time.Hour

	start := time.Now()
	a, doneA := s.Context(parent, timeout)
	defer doneA()
	b, doneB := s.Context(parent, timeout)
	defer doneB()
	if a != b {
		t.Error("two calls on the same parent and timeout within a granule got two contexts")
	}
	deadline, ok := a.Deadline()
	if !ok || deadline.Before(start.Add(timeout-timeout/granuleDivisor)) || deadline.After(time.Now().Add(timeout)) {
		t.Errorf("deadline %v, want within (%v, %v]", deadline, timeout-timeout/granuleDivisor, timeout)
	}
	for name, args := range map[string]struct {
		parent  context.Context
		timeout time.Duration
	}{
		"another parent":  {other, timeout},
		"another timeout": {parent, 2 * timeout},
	} {
		c, done := s.Context(args.parent, args.timeout)
		if c == a {
			t.Errorf("%s: shared the context", name)
		}
		done()
	}
	if c, done := s.Context(context.Background(), timeout); c == a {
		t.Error("a context that is not a pointer shared one")
	} else {
		done()
	}

	cancel()
	if a.Err() == nil {
		t.Error("the shared context outlived its parent")
	}
	if c, done := s.Context(other, timeout); c.Err() != nil {
		t.Errorf("the context of another parent ended with the first: %v", c.Err())
	} else {
		done()
	}
}

func TestSharedExpire(t *testing.T) {
	t.Parallel()
	var s Shared
	parent := t.Context()
	const timeout = 16 * time.Millisecond // a granule of 1 ms
	a, _ := s.Context(parent, timeout)
	<-a.Done()
	if b, _ := s.Context(parent, timeout); b == a || b.Err() != nil {
		t.Errorf("a call after the granule got the old context (ended: %v)", b.Err())
	}
}
