package testpoll_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/letsbe/sysadmin-agent/internal/testpoll"
)

func TestWait(t *testing.T) {
	t.Parallel()
	refused := errors.New("connection refused")
	tests := []struct {
		name string
		cond func(calls int) error
		want string // substring of the error; empty: nil
	}{
		{"at once", func(int) error { return nil }, ""},
		{"after a few checks", func(calls int) error {
			if calls < 3 {
				return refused
			}
			return nil
		}, ""},
		{"never: the last error and the deadline", func(int) error { return refused }, "connection refused (context deadline exceeded)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			calls := 0
			err := testpoll.Wait(t.Context(), 100*time.Millisecond, func() error { calls++; return tt.cond(calls) })
			if tt.want == "" {
				if err != nil {
					t.Fatalf("Wait: %v, want nil", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) || !errors.Is(err, refused) || !errors.Is(err, context.DeadlineExceeded) {
				t.Fatalf("Wait: %v, want %q wrapping both errors", err, tt.want)
			}
		})
	}
}
