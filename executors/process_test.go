package executors

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

// testProcess is a Process with short delays for tests.
func testProcess(cfg ProcessConfig) *Process {
	if cfg.KillGrace == 0 {
		cfg.KillGrace = 200 * time.Millisecond
	}
	if cfg.WaitDelay == 0 {
		cfg.WaitDelay = 100 * time.Millisecond
	}
	return NewProcess(cfg)
}

// ignoreDuration ignores ProcessResult.DurationMS, which depends on timing.
var ignoreDuration = cmpopts.IgnoreFields(ProcessResult{}, "DurationMS")

func TestProcessRun(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	realDir, err := filepath.EvalSymlinks(dir)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		cmd     Command
		want    *ProcessResult
		wantErr error
	}{
		{
			name: "exit 0",
			cmd:  Command{Argv: []string{"true"}},
			want: &ProcessResult{ExitCode: 0},
		},
		{
			name:    "exit 1",
			cmd:     Command{Argv: []string{"false"}},
			want:    &ProcessResult{ExitCode: 1},
			wantErr: &ExitError{Code: 1},
		},
		{
			name:    "exit 3 with output on both streams",
			cmd:     Command{Argv: []string{"sh", "-c", `echo out; echo err >&2; exit 3`}},
			want:    &ProcessResult{ExitCode: 3, Stdout: "out\n", Stderr: "err\n"},
			wantErr: &ExitError{Code: 3},
		},
		{
			name:    "killed by a signal",
			cmd:     Command{Argv: []string{"sh", "-c", `kill -9 $$`}},
			want:    &ProcessResult{ExitCode: 137},
			wantErr: &ExitError{Code: 137, Signal: syscall.SIGKILL},
		},
		{
			name: "argv is not split or expanded",
			cmd:  Command{Argv: []string{"printf", "%s|", "a b", "$HOME", "*", "`id`"}},
			want: &ProcessResult{Stdout: "a b|$HOME|*|`id`|"},
		},
		{
			name: "working directory",
			cmd:  Command{Argv: []string{"pwd", "-P"}, Dir: dir},
			want: &ProcessResult{Stdout: realDir + "\n"},
		},
		{
			name: "absolute path",
			cmd:  Command{Argv: []string{"/bin/sh", "-c", "echo hi"}},
			want: &ProcessResult{Stdout: "hi\n"},
		},
		{
			name: "stdin is empty",
			cmd:  Command{Argv: []string{"cat"}},
			want: &ProcessResult{},
		},
	}
	p := testProcess(ProcessConfig{})
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := p.Run(t.Context(), tt.cmd)
			if diff := cmp.Diff(tt.want, got, ignoreDuration); diff != "" {
				t.Errorf("Run() result mismatch (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tt.wantErr, err); diff != "" {
				t.Errorf("Run() error mismatch (-want +got):\n%s", diff)
			}
			if tt.wantErr != nil && ExitCode(err) != got.ExitCode {
				t.Errorf("ExitCode(err) = %d, want %d", ExitCode(err), got.ExitCode)
			}
		})
	}
}

func TestProcessRunStartErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		cmd        Command
		wantPrefix string
		wantIs     error
	}{
		{
			name:       "not in PATH",
			cmd:        Command{Argv: []string{"letsbe-no-such-program"}},
			wantPrefix: "start letsbe-no-such-program: ",
			wantIs:     exec.ErrNotFound,
		},
		{
			name:       "no such file",
			cmd:        Command{Argv: []string{"/nonexistent/letsbe"}},
			wantPrefix: "start /nonexistent/letsbe: ",
			wantIs:     os.ErrNotExist,
		},
		{
			name:       "no such directory",
			cmd:        Command{Argv: []string{"true"}, Dir: "/nonexistent/letsbe"},
			wantPrefix: "start true: ",
			wantIs:     os.ErrNotExist,
		},
		{
			name:   "empty argv",
			cmd:    Command{},
			wantIs: ErrInvalidPayload,
		},
	}
	p := testProcess(ProcessConfig{})
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := p.Run(t.Context(), tt.cmd)
			if err == nil || !strings.HasPrefix(err.Error(), tt.wantPrefix) || !errors.Is(err, tt.wantIs) {
				t.Fatalf("Run() error = %v, want prefix %q and errors.Is %v", err, tt.wantPrefix, tt.wantIs)
			}
			if diff := cmp.Diff(&ProcessResult{ExitCode: -1}, got); diff != "" {
				t.Errorf("Run() result mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestProcessRunContextDoneBeforeStart(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	marker := filepath.Join(dir, "ran")
	cause := errors.New("cancelled")
	ctx, cancel := context.WithCancelCause(t.Context())
	cancel(cause)

	got, err := testProcess(ProcessConfig{}).Run(ctx, Command{Argv: []string{"touch", marker}})
	if err != cause {
		t.Errorf("Run() error = %v, want the cause %v as-is", err, cause)
	}
	if diff := cmp.Diff(&ProcessResult{ExitCode: -1}, got); diff != "" {
		t.Errorf("Run() result mismatch (-want +got):\n%s", diff)
	}
	if _, err := os.Stat(marker); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the command ran (stat %s: %v)", marker, err)
	}
}

func TestProcessRunOutputCap(t *testing.T) {
	t.Parallel()
	const limit = 100
	digits := strings.Repeat("0123456789", 100) // 1000 bytes
	marker := "\n...[900 bytes truncated]...\n"
	tests := []struct {
		name string
		argv []string
		want *ProcessResult
	}{
		{
			name: "fits",
			argv: []string{"printf", "%s", digits[:limit]},
			want: &ProcessResult{Stdout: digits[:limit]},
		},
		{
			name: "stdout head and tail",
			argv: []string{"printf", "%s", digits},
			want: &ProcessResult{Stdout: digits[:50] + marker + digits[950:], Truncated: true},
		},
		{
			name: "stderr head and tail",
			argv: []string{"sh", "-c", `printf %s "$1" >&2`, "sh", digits},
			want: &ProcessResult{Stderr: digits[:50] + marker + digits[950:], Truncated: true},
		},
		{
			name: "many writes",
			argv: []string{"sh", "-c", `i=0; while [ $i -lt 100 ]; do printf %s 0123456789; i=$((i+1)); done`},
			want: &ProcessResult{Stdout: digits[:50] + marker + digits[950:], Truncated: true},
		},
	}
	p := testProcess(ProcessConfig{MaxOutputBytes: limit})
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := p.Run(t.Context(), Command{Argv: tt.argv})
			if err != nil {
				t.Fatalf("Run() error = %v", err)
			}
			if diff := cmp.Diff(tt.want, got, ignoreDuration); diff != "" {
				t.Errorf("Run() result mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestProcessRunLargeOutputIsBounded(t *testing.T) {
	t.Parallel()
	const limit = 4096
	p := testProcess(ProcessConfig{MaxOutputBytes: limit})
	// 20 MB through the pipe; only limit bytes (plus the marker) are kept.
	got, err := p.Run(t.Context(), Command{Argv: []string{"head", "-c", "20000000", "/dev/zero"}})
	if err != nil {
		t.Fatalf("Run() error = %v", err)
	}
	if !got.Truncated || !strings.Contains(got.Stdout, "[19995904 bytes truncated]") {
		t.Errorf("Run() = truncated %v, marker missing in %d bytes of stdout", got.Truncated, len(got.Stdout))
	}
	if n := strings.Count(got.Stdout, "\x00"); n != limit {
		t.Errorf("kept %d bytes of output, want %d", n, limit)
	}
}

// cancelWhenReady returns a context that ends with cause once the file ready
// exists, so that a test cancels a process only after it has set itself up.
// A safety timeout fails the test instead of letting it hang.
func cancelWhenReady(t *testing.T, ready string, cause error) context.Context {
	t.Helper()
	ctx, cancel := context.WithCancelCause(t.Context())
	t.Cleanup(func() { cancel(nil) })
	go func() {
		safety := time.After(15 * time.Second)
		for {
			if _, err := os.Stat(ready); err == nil {
				cancel(cause)
				return
			}
			select {
			case <-ctx.Done():
				return
			case <-safety:
				cancel(errors.New("test safety timeout: the process never got ready"))
				return
			case <-time.After(5 * time.Millisecond):
			}
		}
	}()
	return ctx
}

// leaderPID parses the pid that a test script printed first on stdout.
func leaderPID(t *testing.T, stdout string) int {
	t.Helper()
	first, _, _ := strings.Cut(stdout, "\n")
	pid, err := strconv.Atoi(strings.TrimSpace(first))
	if err != nil || pid <= 1 {
		t.Fatalf("no pid on the first line of stdout %q", stdout)
	}
	return pid
}

func TestProcessRunStopsTheWholeGroup(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		// script prints its pid, gets ready (touch "$1"), then blocks.
		script       string
		wantExitCode int
	}{
		{
			name:         "SIGTERM kills the leader and a grandchild",
			script:       `echo $$; sleep 300 & touch "$1"; sleep 300`,
			wantExitCode: 128 + int(syscall.SIGTERM),
		},
		{
			name:         "SIGKILL after the grace when SIGTERM is ignored",
			script:       `trap "" TERM; echo $$; sleep 300 & touch "$1"; sleep 300`,
			wantExitCode: 128 + int(syscall.SIGKILL),
		},
	}
	p := testProcess(ProcessConfig{})
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ready := filepath.Join(t.TempDir(), "ready")
			cause := &TimeoutError{After: 5 * time.Second}
			ctx := cancelWhenReady(t, ready, cause)

			got, err := p.Run(ctx, Command{Argv: []string{"sh", "-c", tt.script, "sh", ready}})
			if err != cause {
				t.Errorf("Run() error = %v, want the cause %v as-is", err, cause)
			}
			if got.ExitCode != tt.wantExitCode {
				t.Errorf("Run() exit code = %d, want %d", got.ExitCode, tt.wantExitCode)
			}
			waitGroupGone(t, leaderPID(t, got.Stdout))
		})
	}
}

func TestProcessRunTimeoutCause(t *testing.T) {
	t.Parallel()
	const d = 100 * time.Millisecond
	ctx, cancel := context.WithTimeoutCause(t.Context(), d, &TimeoutError{After: d})
	defer cancel()
	_, err := testProcess(ProcessConfig{}).Run(ctx, Command{Argv: []string{"sleep", "300"}})
	var te *TimeoutError
	if !errors.As(err, &te) || err.Error() != "timed out after 100ms" {
		t.Errorf("Run() error = %v, want a *TimeoutError \"timed out after 100ms\"", err)
	}
}

func TestProcessRunLeakedPipeCannotHang(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		script string
		// escaped: the pid printed is of a process that left the group
		// (setsid) and must be cleaned up by the test itself.
		escaped bool
	}{
		{
			name:   "grandchild in the group holds stdout",
			script: `echo $$; sleep 300 &`,
		},
		{
			name:    "grandchild that left the group holds stdout",
			script:  `setsid sleep 300 & echo $!`,
			escaped: true,
		},
	}
	p := testProcess(ProcessConfig{KillGrace: time.Minute, WaitDelay: 100 * time.Millisecond})
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := p.Run(t.Context(), Command{Argv: []string{"sh", "-c", tt.script}})
			if err != nil {
				t.Errorf("Run() error = %v, want nil", err)
			}
			if got.ExitCode != 0 {
				t.Errorf("Run() exit code = %d, want 0", got.ExitCode)
			}
			pid := leaderPID(t, got.Stdout)
			if tt.escaped {
				killAndReap(pid)
				return
			}
			waitGroupGone(t, pid)
		})
	}
}

// TestProcessEnvironment cannot be parallel: it uses t.Setenv.
func TestProcessEnvironment(t *testing.T) {
	const secret = "letsbe-test-secret-value"
	t.Setenv("LETSBE_TEST_SECRET", secret)
	t.Setenv("HOME", "/home/letsbe-test")
	t.Setenv("PATH", "/usr/local/bin:/usr/bin:/bin")

	tests := []struct {
		name string
		cfg  ProcessConfig
		want []string
	}{
		{
			name: "minimal default",
			cfg:  ProcessConfig{},
			want: []string{"HOME=/home/letsbe-test", "LANG=C.UTF-8", "PATH=/usr/local/bin:/usr/bin:/bin"},
		},
		{
			name: "explicit",
			cfg:  ProcessConfig{Env: []string{"A=1", "PATH=/usr/bin:/bin"}},
			want: []string{"A=1", "PATH=/usr/bin:/bin"},
		},
		{
			name: "explicit without PATH still finds programs",
			cfg:  ProcessConfig{Env: []string{"A=1"}},
			want: []string{"A=1"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := testProcess(tt.cfg).Run(t.Context(), Command{Argv: []string{"env"}})
			if err != nil {
				t.Fatalf("Run() error = %v", err)
			}
			if strings.Contains(got.Stdout, secret) {
				t.Errorf("the agent's secret reached the child:\n%s", got.Stdout)
			}
			lines := strings.Split(strings.TrimSpace(got.Stdout), "\n")
			slices.Sort(lines)
			if diff := cmp.Diff(tt.want, lines); diff != "" {
				t.Errorf("child environment mismatch (-want +got):\n%s", diff)
			}
		})
	}
}
