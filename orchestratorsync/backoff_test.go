package orchestratorsync

import (
	"errors"
	"math"
	"testing"
	"time"

	"github.com/letsbe/sysadmin-agent/orchestratorsync/wire"
)

func TestBackoffDelay(t *testing.T) {
	t.Parallel()
	one := func() float64 { return 1 }
	half := func() float64 { return 0.5 }
	zero := func() float64 { return 0 }
	tests := []struct {
		name    string
		b       Backoff
		attempt int
		want    time.Duration
	}{
		{"first", Backoff{Base: time.Second, Rand: one}, 0, time.Second},
		{"doubles", Backoff{Base: time.Second, Rand: one}, 4, 16 * time.Second},
		{"capped at default 30s", Backoff{Base: time.Second, Rand: one}, 5, 30 * time.Second},
		{"huge attempt", Backoff{Base: time.Second, Rand: one}, math.MaxInt, 30 * time.Second},
		{"attempt 62 and 63", Backoff{Base: time.Nanosecond, Cap: math.MaxInt64, Rand: one}, 63, math.MaxInt64},
		{"no overflow with big base", Backoff{Base: 1 << 62, Cap: math.MaxInt64, Rand: one}, 5, math.MaxInt64},
		{"negative attempt", Backoff{Base: time.Second, Rand: one}, -3, time.Second},
		{"full jitter low end", Backoff{Base: time.Second, Rand: zero}, 3, 0},
		{"full jitter middle", Backoff{Base: time.Second, Rand: half}, 1, time.Second},
		{"rand above 1 is clamped", Backoff{Base: time.Second, Rand: func() float64 { return 7 }}, 0, time.Second},
		{"NaN rand", Backoff{Base: time.Second, Rand: math.NaN}, 2, 0},
		{"zero value defaults", Backoff{Rand: one}, 0, DefaultBackoffBase},
		{"base above cap", Backoff{Base: time.Minute, Cap: time.Second, Rand: one}, 0, time.Second},
		{"custom cap", Backoff{Base: time.Second, Cap: 5 * time.Second, Rand: one}, 3, 5 * time.Second},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if got := tc.b.Delay(tc.attempt); got != tc.want {
				t.Errorf("Delay(%d) = %v, want %v", tc.attempt, got, tc.want)
			}
		})
	}
}

func TestBackoffDelayRandomStaysInRange(t *testing.T) {
	t.Parallel()
	b := Backoff{Base: 100 * time.Millisecond}
	for attempt := range 70 {
		ceiling := b.ceiling(attempt)
		for range 20 {
			if d := b.Delay(attempt); d < 0 || d > ceiling {
				t.Fatalf("Delay(%d) = %v outside [0, %v]", attempt, d, ceiling)
			}
		}
	}
}

func TestNextDelay(t *testing.T) {
	t.Parallel()
	one := func() float64 { return 1 }
	zero := func() float64 { return 0 }
	tests := []struct {
		name    string
		b       Backoff
		attempt int
		err     error
		want    time.Duration
	}{
		{"no error", Backoff{Base: time.Second, Rand: one}, 2, nil, 4 * time.Second},
		{"plain error", Backoff{Base: time.Second, Rand: one}, 2, errors.New("x"), 4 * time.Second},
		{"retry-after longer", Backoff{Base: time.Second, Rand: zero}, 2, &wire.APIError{StatusCode: 429, RetryAfter: 10 * time.Second}, 10 * time.Second},
		{"jitter longer", Backoff{Base: time.Second, Rand: one}, 4, &wire.APIError{StatusCode: 503, RetryAfter: time.Second}, 16 * time.Second},
		{"retry-after capped", Backoff{Rand: zero}, 0, &wire.APIError{StatusCode: 503, RetryAfter: time.Hour}, wire.MaxRetryAfter},
		{"backoff cap above 5m is capped", Backoff{Base: time.Minute, Cap: time.Hour, Rand: one}, 10, nil, wire.MaxRetryAfter},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if got := NextDelay(tc.b, tc.attempt, tc.err); got != tc.want {
				t.Errorf("NextDelay = %v, want %v", got, tc.want)
			}
		})
	}
}
