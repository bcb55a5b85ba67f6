package executors

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"syscall"
	"time"
)

// Executor runs the payload of one task type.
//
// The result is JSON-marshalled by the caller. It may be non-nil together
// with a non-nil error: a SHELL command that exited non-zero returns its
// output and an [*ExitError].
type Executor interface {
	Execute(ctx context.Context, payload json.RawMessage) (result any, err error)
}

// Permanent errors: the task's payload can never succeed, so the caller ends
// the task FAILED and never retries it. Test with [IsPermanent] or errors.Is.
var (
	// ErrInvalidPayload marks a payload that does not decode or validate.
	ErrInvalidPayload = errors.New("invalid payload")
	// ErrRefused marks a payload that is well formed but not allowed, such
	// as a command outside the allowlist or a shell construct.
	ErrRefused = errors.New("refused")
)

// permanentError wraps a formatted error with one of the permanent sentinels.
type permanentError struct {
	kind   error // ErrInvalidPayload or ErrRefused
	prefix bool  // prefix the message with kind's text
	err    error
}

func (e *permanentError) Error() string {
	if e.prefix {
		return e.kind.Error() + ": " + e.err.Error()
	}
	return e.err.Error()
}

func (e *permanentError) Unwrap() []error { return []error{e.kind, e.err} }

// InvalidPayloadf returns an error whose message reads
// "invalid payload: <formatted message>" and that matches [ErrInvalidPayload].
// The format may use %w to wrap an underlying error.
func InvalidPayloadf(format string, args ...any) error {
	return &permanentError{kind: ErrInvalidPayload, prefix: true, err: fmt.Errorf(format, args...)}
}

// Refusedf returns an error whose message is the formatted text itself
// (for example `command "rm" is not allowed (allowed: df, ls)`) and that
// matches [ErrRefused]. The format may use %w to wrap an underlying error.
func Refusedf(format string, args ...any) error {
	return &permanentError{kind: ErrRefused, err: fmt.Errorf(format, args...)}
}

// IsPermanent reports whether err means the task can never succeed
// ([ErrInvalidPayload] or [ErrRefused] anywhere in its chain).
func IsPermanent(err error) bool {
	return errors.Is(err, ErrInvalidPayload) || errors.Is(err, ErrRefused)
}

// TimeoutError is the cancellation cause of a context that timed out, as set
// by context.WithTimeoutCause(ctx, d, &TimeoutError{After: d}) or [WithTimeout].
// Callers use it for the task timeout, and the executors for a payload's own
// timeout_seconds; [Process.Run] returns it as-is when it ended the process.
type TimeoutError struct {
	After time.Duration
}

// Error returns, for example, "timed out after 30s".
func (e *TimeoutError) Error() string { return "timed out after " + e.After.String() }

// Timeout reports true, like net.Error.
func (e *TimeoutError) Timeout() bool { return true }

// Is makes errors.Is(err, context.DeadlineExceeded) true for a timeout.
func (e *TimeoutError) Is(target error) bool { return target == context.DeadlineExceeded }

// ExitError reports that a process exited non-zero or was killed by a signal.
type ExitError struct {
	// Code is the exit status, or 128+signal number when Signal is set
	// (the shell convention, e.g. 137 for SIGKILL).
	Code int
	// Signal is the signal that killed the process, or 0 if it exited.
	Signal syscall.Signal
}

// Error returns "exit status 3", or "exit status 137 (signal: killed)" for a
// process killed by a signal.
func (e *ExitError) Error() string {
	if e.Signal != 0 {
		return fmt.Sprintf("exit status %d (signal: %v)", e.Code, e.Signal)
	}
	return fmt.Sprintf("exit status %d", e.Code)
}

// ExitCode returns the code of the [*ExitError] in err's chain, or -1 if there
// is none.
func ExitCode(err error) int {
	var ee *ExitError
	if errors.As(err, &ee) {
		return ee.Code
	}
	return -1
}

// Types returns the task types of execs, sorted: the one derivation of the list the agent
// advertises as its capabilities, admits in its policy and runs controllers for.
func Types(execs map[string]Executor) []string {
	return slices.Sorted(maps.Keys(execs))
}
