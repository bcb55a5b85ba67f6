package orchestratorsync

import "time"

// ExtraPollers returns the pollers running besides pollLoop's own request.
func (s *Syncer) ExtraPollers() int { return int(s.extraPollers.Load()) }

// SetPanicRetry sets how long a report whose delivery panicked waits, until the test ends.
func SetPanicRetry(t interface{ Cleanup(func()) }, d time.Duration) {
	old := panicRetry
	panicRetry = d
	t.Cleanup(func() { panicRetry = old })
}
