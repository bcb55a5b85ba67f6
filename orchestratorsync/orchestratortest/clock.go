package orchestratortest

import (
	"context"
	"sync"
	"time"

	"github.com/letsbe/sysadmin-agent/orchestratorsync"
)

// FakeClock is an orchestratorsync.Clock that moves only when Advance is called, so that loop
// tests never sleep. Use WaitForTimers to learn that the code under test has armed its timer.
type FakeClock struct {
	mu      sync.Mutex
	now     time.Time
	timers  []*fakeTimer  // armed timers
	changed chan struct{} // closed and replaced whenever the set of armed timers changes
}

var _ orchestratorsync.Clock = (*FakeClock)(nil)

// NewFakeClock returns a fake clock reading start.
func NewFakeClock(start time.Time) *FakeClock {
	return &FakeClock{now: start, changed: make(chan struct{})}
}

// Now returns the fake time.
func (c *FakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// NewTimer returns a timer that fires when the clock has been advanced by d.
func (c *FakeClock) NewTimer(d time.Duration) orchestratorsync.Timer {
	t := &fakeTimer{c: c, ch: make(chan time.Time, 1)}
	t.Reset(d)
	return t
}

// After is NewTimer(d).C().
func (c *FakeClock) After(d time.Duration) <-chan time.Time { return c.NewTimer(d).C() }

// Advance moves the clock forward by d and fires every timer that is due, in deadline order.
func (c *FakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
	var keep []*fakeTimer
	var due []*fakeTimer
	for _, t := range c.timers {
		if !t.when.After(c.now) {
			due = append(due, t)
		} else {
			keep = append(keep, t)
		}
	}
	if len(due) == 0 {
		return
	}
	c.timers = keep
	for i := 1; i < len(due); i++ { // insertion sort: few timers
		for j := i; j > 0 && due[j].when.Before(due[j-1].when); j-- {
			due[j], due[j-1] = due[j-1], due[j]
		}
	}
	for _, t := range due {
		t.armed = false
		t.fire(c.now)
	}
	c.notifyLocked()
}

// Timers returns how many timers are armed.
func (c *FakeClock) Timers() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.timers)
}

// WaitForTimers blocks until at least n timers are armed, or ctx ends.
func (c *FakeClock) WaitForTimers(ctx context.Context, n int) error {
	for {
		c.mu.Lock()
		got, changed := len(c.timers), c.changed
		c.mu.Unlock()
		if got >= n {
			return nil
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

func (c *FakeClock) notifyLocked() {
	close(c.changed)
	c.changed = make(chan struct{})
}

type fakeTimer struct {
	c     *FakeClock
	ch    chan time.Time
	when  time.Time // guarded by c.mu
	armed bool      // guarded by c.mu
}

func (t *fakeTimer) C() <-chan time.Time { return t.ch }

func (t *fakeTimer) fire(now time.Time) {
	select {
	case t.ch <- now:
	default: // like time.Timer: an unread tick is not doubled
	}
}

// Stop disarms the timer; like time.Timer since Go 1.23, no stale tick is received after it.
func (t *fakeTimer) Stop() bool {
	t.c.mu.Lock()
	defer t.c.mu.Unlock()
	select {
	case <-t.ch:
	default:
	}
	return t.disarmLocked()
}

func (t *fakeTimer) Reset(d time.Duration) bool {
	c := t.c
	c.mu.Lock()
	defer c.mu.Unlock()
	was := t.disarmLocked()
	// Like time.Timer since Go 1.23: a stale tick is not delivered after Reset.
	select {
	case <-t.ch:
	default:
	}
	if d <= 0 {
		t.fire(c.now)
		c.notifyLocked()
		return was
	}
	t.when, t.armed = c.now.Add(d), true
	c.timers = append(c.timers, t)
	c.notifyLocked()
	return was
}

func (t *fakeTimer) disarmLocked() bool {
	if !t.armed {
		return false
	}
	t.armed = false
	for i, x := range t.c.timers {
		if x == t {
			t.c.timers = append(t.c.timers[:i], t.c.timers[i+1:]...)
			break
		}
	}
	t.c.notifyLocked()
	return true
}
