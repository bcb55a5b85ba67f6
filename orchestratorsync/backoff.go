package orchestratorsync

import (
	"math/rand/v2"
	"time"

	"github.com/letsbe/sysadmin-agent/orchestratorsync/wire"
)

// Backoff defaults.
const (
	DefaultBackoffBase = 500 * time.Millisecond
	DefaultBackoffCap  = 30 * time.Second
)

// Backoff computes exponential backoff delays with full jitter. The zero value is usable:
// Base defaults to DefaultBackoffBase, Cap to DefaultBackoffCap, Rand to math/rand/v2.
type Backoff struct {
	// Base is the ceiling of the first delay (attempt 0).
	Base time.Duration
	// Cap bounds every ceiling.
	Cap time.Duration
	// Rand returns a value in [0, 1]; tests inject it to make delays deterministic.
	Rand func() float64
}

// Delay returns a random delay in [0, min(Cap, Base*2^attempt)]. A negative attempt counts as 0.
// It never overflows, whatever the attempt.
func (b Backoff) Delay(attempt int) time.Duration {
	ceiling := b.ceiling(attempt)
	if ceiling <= 0 {
		return 0
	}
	if b.Rand == nil {
		return time.Duration(rand.Int64N(int64(ceiling) + 1))
	}
	r := b.Rand()
	if !(r > 0) { // also NaN
		return 0
	}
	if r >= 1 {
		return ceiling
	}
	return min(time.Duration(r*float64(ceiling)), ceiling)
}

// ceiling returns min(Cap, Base*2^attempt) with defaults applied.
func (b Backoff) ceiling(attempt int) time.Duration {
	base, limit := b.Base, b.Cap
	if base <= 0 {
		base = DefaultBackoffBase
	}
	if limit <= 0 {
		limit = DefaultBackoffCap
	}
	if base >= limit {
		return limit
	}
	attempt = max(attempt, 0)
	// base < limit here, so base<<attempt cannot overflow as long as base <= limit>>attempt.
	if attempt >= 63 || base > limit>>attempt {
		return limit
	}
	return base << attempt
}

// NextDelay returns the delay before retry number attempt (0 for the first retry) after err:
// the jittered backoff, or the server's Retry-After when that is longer, never beyond
// MaxRetryAfter.
func NextDelay(b Backoff, attempt int, err error) time.Duration {
	d := b.Delay(attempt)
	if ra, ok := wire.RetryAfter(err); ok && ra > d {
		d = ra
	}
	return min(d, wire.MaxRetryAfter)
}
