package executors

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"syscall"
	"time"
)

// Defaults of [ProcessConfig].
const (
	DefaultMaxOutputBytes = 1 << 20
	DefaultKillGrace      = 10 * time.Second
	DefaultWaitDelay      = 2 * time.Second
	// DefaultPath is the child's PATH when the agent has none.
	DefaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
)

// ProcessConfig configures a [Process]. The zero value uses the defaults.
type ProcessConfig struct {
	// MaxOutputBytes caps the captured stdout and, separately, stderr; the
	// head and the tail of a longer stream are kept. Default 1 MiB.
	MaxOutputBytes int
	// KillGrace is how long a process group gets between SIGTERM and
	// SIGKILL when the context ends. Default 10s.
	KillGrace time.Duration
	// WaitDelay bounds how long Run waits for the output pipes to close
	// after the process itself has exited (a leftover grandchild may hold
	// them open). Default 2s.
	WaitDelay time.Duration
	// Env is the child's whole environment. If nil, a minimal one is used:
	// PATH (the agent's, or DefaultPath), LANG=C.UTF-8 and HOME (the
	// agent's, or /root). The agent's other variables never pass through.
	Env []string
}

// Command is one process to run.
type Command struct {
	// Argv is the program and its arguments; Argv[0] is looked up in the
	// child's PATH unless it contains a slash.
	Argv []string
	// Dir is the working directory; empty means the agent's.
	Dir string
}

// ProcessResult is what a finished (or stopped) process left behind. It is
// the result of a SHELL task and part of the results of DOCKER_RELOAD,
// COMPOSE_ROLLBACK and COMPOSE_LOGS; in JSON its output follows the rule of
// [EncodeOutput].
type ProcessResult struct {
	// ExitCode is the exit status, 128+signal if a signal killed the
	// process, or -1 if it never started.
	ExitCode   int    `json:"exit_code"`
	Stdout     string `json:"stdout"`
	Stderr     string `json:"stderr"`
	DurationMS int64  `json:"duration_ms"`
	// Truncated is set when stdout or stderr was longer than the cap.
	Truncated bool `json:"truncated"`
}

// Process runs commands. It is safe for concurrent use.
type Process struct {
	maxOutput int
	killGrace time.Duration
	waitDelay time.Duration
	env       []string
	path      string // the child's PATH, for looking up argv[0]
}

// NewProcess returns a Process with cfg's defaults filled in.
func NewProcess(cfg ProcessConfig) *Process {
	p := &Process{
		maxOutput: cfg.MaxOutputBytes,
		killGrace: cfg.KillGrace,
		waitDelay: cfg.WaitDelay,
		env:       cfg.Env,
	}
	if p.maxOutput <= 0 {
		p.maxOutput = DefaultMaxOutputBytes
	}
	if p.killGrace <= 0 {
		p.killGrace = DefaultKillGrace
	}
	if p.waitDelay <= 0 {
		p.waitDelay = DefaultWaitDelay
	}
	if p.env == nil {
		p.env = minimalEnv()
	} else {
		p.env = append([]string{}, p.env...)
	}
	p.path = DefaultPath
	for _, kv := range p.env {
		if v, ok := strings.CutPrefix(kv, "PATH="); ok {
			p.path = v // the last one wins, as in exec
		}
	}
	return p
}

// minimalEnv is the default child environment.
func minimalEnv() []string {
	path := os.Getenv("PATH")
	if path == "" {
		path = DefaultPath
	}
	home := os.Getenv("HOME")
	if home == "" {
		home = "/root"
	}
	return []string{"PATH=" + path, "LANG=C.UTF-8", "HOME=" + home}
}

// lookPath finds name like exec.LookPath, but in the child's PATH. Empty and
// relative PATH entries are skipped: the agent runs as root and never runs a
// program from its working directory by accident.
func (p *Process) lookPath(name string) (string, error) {
	if strings.Contains(name, "/") {
		return name, nil
	}
	if name != "" {
		for _, dir := range filepath.SplitList(p.path) {
			if !filepath.IsAbs(dir) {
				continue
			}
			path := filepath.Join(dir, name)
			if fi, err := os.Stat(path); err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0 {
				return path, nil
			}
		}
	}
	return "", &exec.Error{Name: name, Err: exec.ErrNotFound}
}

// Run runs cmd.Argv directly (never through a shell) in a new process group,
// with the configured environment, stdin from /dev/null and capped output.
// When ctx carries a [Progress], stdout and stderr are also written to it as
// they come.
//
// When ctx ends first, the whole group gets SIGTERM, then SIGKILL after the
// kill grace. Whatever happens, every process left in the group is killed
// once the leader has exited, and leaked pipes cannot hang Run for longer
// than the wait delay.
//
// Run always returns a result (with the partial output when stopped). The
// error is nil on exit 0; an [*ExitError] on a non-zero exit or death by a
// signal; context.Cause(ctx), unwrapped, when the context ended the process
// (or ended before it started); or a "start <argv0>: ..." error when it
// could not start.
func (p *Process) Run(ctx context.Context, cmd Command) (*ProcessResult, error) {
	res := &ProcessResult{ExitCode: -1}
	if len(cmd.Argv) == 0 || cmd.Argv[0] == "" {
		return res, InvalidPayloadf("empty command")
	}
	argv0 := cmd.Argv[0]
	if ctx.Err() != nil {
		return res, context.Cause(ctx)
	}
	path, err := p.lookPath(argv0)
	if err != nil {
		return res, fmt.Errorf("start %s: %w", argv0, err)
	}

	stdout, stderr := newHeadTail(p.maxOutput), newHeadTail(p.maxOutput)
	var stdoutW, stderrW io.Writer = stdout, stderr
	if streaming(ctx) {
		// The output also goes, as it comes, to the task's Progress (which masks and
		// bounds it): the captured result stays exactly what it would be without.
		prog := ProgressFrom(ctx)
		stdoutW = io.MultiWriter(stdout, ProgressWriter(prog, StreamStdout))
		stderrW = io.MultiWriter(stderr, ProgressWriter(prog, StreamStderr))
	}
	c := &exec.Cmd{
		Path:        path,
		Args:        append([]string{}, cmd.Argv...),
		Env:         p.env,
		Dir:         cmd.Dir,
		Stdout:      stdoutW,
		Stderr:      stderrW,
		SysProcAttr: &syscall.SysProcAttr{Setpgid: true},
		WaitDelay:   p.waitDelay,
	}
	start := time.Now()
	if err := c.Start(); err != nil {
		return res, fmt.Errorf("start %s: %w", argv0, err)
	}
	pgid := c.Process.Pid // Setpgid with Pgid 0: the group is named after the leader
	if hook, ok := ctx.Value(processHookKey{}).(func(ProcessRef)); ok {
		hook(identifyGroup(pgid))
	}

	var signaled atomic.Bool
	exited := make(chan struct{})
	killerDone := make(chan struct{})
	go func() {
		defer close(killerDone)
		select {
		case <-exited:
			return
		case <-ctx.Done():
		}
		signaled.Store(true)
		_ = KillGroup(pgid, syscall.SIGTERM)
		grace := time.NewTimer(p.killGrace)
		defer grace.Stop()
		select {
		case <-exited:
		case <-grace.C:
			_ = KillGroup(pgid, syscall.SIGKILL)
		}
	}()

	waitErr := c.Wait()
	close(exited)
	<-killerDone
	// Nothing of the group outlives its leader (a straggler that escaped
	// with setsid is out of reach, and WaitDelay bounds its hold on us).
	_ = KillGroup(pgid, syscall.SIGKILL)

	res.DurationMS = time.Since(start).Milliseconds()
	res.Stdout, res.Stderr = stdout.String(), stderr.String()
	res.Truncated = stdout.truncated() || stderr.truncated()
	var exitErr *ExitError
	if st := c.ProcessState; st != nil {
		res.ExitCode = st.ExitCode()
		if ws, ok := st.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			res.ExitCode = 128 + int(ws.Signal())
			exitErr = &ExitError{Code: res.ExitCode, Signal: ws.Signal()}
		} else if res.ExitCode != 0 {
			exitErr = &ExitError{Code: res.ExitCode}
		}
	}

	switch {
	case signaled.Load():
		return res, context.Cause(ctx)
	case exitErr != nil:
		return res, exitErr
	case waitErr == nil, errors.Is(waitErr, exec.ErrWaitDelay):
		// Exit 0; a leftover holding the pipes only cost us the wait delay.
		return res, nil
	default:
		return res, fmt.Errorf("wait %s: %w", argv0, waitErr)
	}
}

// withEnv returns a copy of p whose children also get the given variables.
func (p *Process) withEnv(extra ...string) *Process {
	if len(extra) == 0 {
		return p
	}
	q := *p
	q.env = append(slices.Clone(p.env), extra...)
	return &q
}
