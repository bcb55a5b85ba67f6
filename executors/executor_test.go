package executors

import (
	"context"
	"errors"
	"fmt"
	"os"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestPermanentErrors(t *testing.T) {
	t.Parallel()
	inner := os.ErrNotExist
	tests := []struct {
		name          string
		err           error
		wantMsg       string
		wantInvalid   bool
		wantRefused   bool
		wantPermanent bool
	}{
		{
			name:          "invalid payload",
			err:           InvalidPayloadf("field %q must be a string", "cmd"),
			wantMsg:       `invalid payload: field "cmd" must be a string`,
			wantInvalid:   true,
			wantPermanent: true,
		},
		{
			name:          "refused",
			err:           Refusedf("command %q is not allowed (allowed: %s)", "rm", "df, ls"),
			wantMsg:       `command "rm" is not allowed (allowed: df, ls)`,
			wantRefused:   true,
			wantPermanent: true,
		},
		{
			name:          "wrapped refusal",
			err:           fmt.Errorf("task t-1: %w", Refusedf("no")),
			wantMsg:       "task t-1: no",
			wantRefused:   true,
			wantPermanent: true,
		},
		{
			name:          "invalid payload wrapping %w",
			err:           InvalidPayloadf("cwd: %w", inner),
			wantMsg:       "invalid payload: cwd: file does not exist",
			wantInvalid:   true,
			wantPermanent: true,
		},
		{
			name:    "transient",
			err:     errors.New("connection reset"),
			wantMsg: "connection reset",
		},
		{
			name:    "exit error",
			err:     &ExitError{Code: 3},
			wantMsg: "exit status 3",
		},
		{
			name:    "timeout",
			err:     &TimeoutError{After: 30 * time.Second},
			wantMsg: "timed out after 30s",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got := struct {
				Msg                         string
				Invalid, Refused, Permanent bool
			}{tt.err.Error(), errors.Is(tt.err, ErrInvalidPayload), errors.Is(tt.err, ErrRefused), IsPermanent(tt.err)}
			want := struct {
				Msg                         string
				Invalid, Refused, Permanent bool
			}{tt.wantMsg, tt.wantInvalid, tt.wantRefused, tt.wantPermanent}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("mismatch (-want +got):\n%s", diff)
			}
		})
	}
	if !errors.Is(InvalidPayloadf("cwd: %w", inner), inner) {
		t.Errorf("InvalidPayloadf with %%w does not wrap its argument")
	}
}

func TestExitError(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		err      error
		wantCode int
		wantMsg  string
	}{
		{"exit", &ExitError{Code: 3}, 3, "exit status 3"},
		{"signal", &ExitError{Code: 137, Signal: syscall.SIGKILL}, 137, "exit status 137 (signal: killed)"},
		{"wrapped", fmt.Errorf("run: %w", &ExitError{Code: 2}), 2, "run: exit status 2"},
		{"other", errors.New("boom"), -1, "boom"},
		{"nil", nil, -1, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := ExitCode(tt.err); got != tt.wantCode {
				t.Errorf("ExitCode() = %d, want %d", got, tt.wantCode)
			}
			if tt.err != nil && tt.err.Error() != tt.wantMsg {
				t.Errorf("Error() = %q, want %q", tt.err.Error(), tt.wantMsg)
			}
		})
	}
}

func TestTimeoutErrorAsCause(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeoutCause(t.Context(), time.Millisecond, &TimeoutError{After: time.Millisecond})
	defer cancel()
	<-ctx.Done()
	cause := context.Cause(ctx)
	var te *TimeoutError
	if !errors.As(cause, &te) || te.After != time.Millisecond {
		t.Fatalf("context.Cause() = %v, want the *TimeoutError", cause)
	}
	if !errors.Is(cause, context.DeadlineExceeded) || !te.Timeout() {
		t.Errorf("a *TimeoutError is not a deadline error")
	}
	if cause.Error() != "timed out after 1ms" {
		t.Errorf("Error() = %q", cause.Error())
	}
}
