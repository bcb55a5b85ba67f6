package storetest

import (
	"bytes"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/letsbe/sysadmin-agent/api/store"
)

// Clock is a settable clock for DeliveredLimits.Now.
type Clock struct {
	mu  sync.Mutex
	now time.Time
}

// NewClock returns a clock at a fixed time.
func NewClock() *Clock { return &Clock{now: time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)} }

// Now returns the clock's time.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// Step moves the clock on.
func (c *Clock) Step(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// NewDelivered returns an empty Delivered bounded by lim, and a function that waits until
// what was recorded so far is settled (written, bounds applied).
type NewDelivered func(t *testing.T, lim store.DeliveredLimits) (d store.Delivered, settle func())

// RunDelivered runs the Delivered suite against an implementation.
func RunDelivered(t *testing.T, newDelivered NewDelivered) {
	t.Helper()
	t.Run("RecordAndLookup", func(t *testing.T) {
		t.Parallel()
		d, settle := newDelivered(t, store.DeliveredLimits{})
		if _, found := d.LookupDelivered("t-1"); found {
			t.Fatal("an id never recorded was found")
		}
		d.RecordDelivered("t-1", []byte(`{"status":"COMPLETED"}`))
		d.RecordDelivered("t-2", []byte(`{"status":"FAILED"}`))
		d.RecordDelivered("t-1", []byte(`{"status":"COMPLETED","again":true}`))
		for _, check := range []func(){func() {}, settle} {
			check()
			wantBody(t, d, "t-1", `{"status":"COMPLETED","again":true}`)
			wantBody(t, d, "t-2", `{"status":"FAILED"}`)
		}
	})
	t.Run("Window", func(t *testing.T) {
		t.Parallel()
		clock := NewClock()
		d, settle := newDelivered(t, store.DeliveredLimits{Window: time.Hour, Now: clock.Now})
		d.RecordDelivered("old", []byte("a"))
		settle()
		clock.Step(30 * time.Minute)
		d.RecordDelivered("new", []byte("b"))
		settle()
		wantBody(t, d, "old", "a")
		clock.Step(31 * time.Minute)
		if _, found := d.LookupDelivered("old"); found {
			t.Error("an id past the window was found")
		}
		d.RecordDelivered("newer", []byte("c"))
		settle()
		wantBody(t, d, "new", "b")
		wantBody(t, d, "newer", "c")
	})
	t.Run("MaxEntries", func(t *testing.T) {
		t.Parallel()
		clock := NewClock()
		d, settle := newDelivered(t, store.DeliveredLimits{MaxEntries: 3, Now: clock.Now})
		for i := range 5 {
			clock.Step(time.Second)
			d.RecordDelivered(fmt.Sprintf("t-%d", i), []byte{byte('0' + i)})
			settle()
		}
		for i := range 5 {
			_, found := d.LookupDelivered(fmt.Sprintf("t-%d", i))
			if want := i >= 2; found != want {
				t.Errorf("t-%d found = %v, want %v (the 3 latest are kept)", i, found, want)
			}
		}
	})
	t.Run("MaxBytesKeepsIDs", func(t *testing.T) {
		t.Parallel()
		clock := NewClock()
		d, settle := newDelivered(t, store.DeliveredLimits{MaxBytes: 10, Now: clock.Now})
		for i := range 4 {
			clock.Step(time.Second)
			d.RecordDelivered(fmt.Sprintf("t-%d", i), bytes.Repeat([]byte{byte('0' + i)}, 4))
			settle()
		}
		clock.Step(time.Second)
		d.RecordDelivered("huge", bytes.Repeat([]byte("x"), 11))
		settle()
		// 16 bytes of bodies for a budget of 10: the two oldest lose theirs, and a body over
		// the whole budget is never kept; every id stays known.
		for i, want := range []string{"", "", "2222", "3333"} {
			id := fmt.Sprintf("t-%d", i)
			body, found := d.LookupDelivered(id)
			if !found {
				t.Errorf("%s: not found; ids must be kept beyond the byte budget", id)
				continue
			}
			if want == "" && body != nil {
				t.Errorf("%s: body %q kept beyond the byte budget", id, body)
			}
			if want != "" && string(body) != want {
				t.Errorf("%s: body %q, want %q", id, body, want)
			}
		}
		if body, found := d.LookupDelivered("huge"); !found || body != nil {
			t.Errorf("huge: found %v, body %d bytes; want found without body", found, len(body))
		}
	})
}

func wantBody(t *testing.T, d store.Delivered, id, want string) {
	t.Helper()
	body, found := d.LookupDelivered(id)
	if !found || string(body) != want {
		t.Errorf("LookupDelivered(%s) = %q, %v; want %q, true", id, body, found, want)
	}
}
