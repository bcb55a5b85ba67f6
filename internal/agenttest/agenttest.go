package agenttest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/letsbe/sysadmin-agent/internal/testpoll"
	"github.com/letsbe/sysadmin-agent/orchestratorsync/orchestratortest"
)

// Orchestrator is the reference orchestrator served on loopback.
type Orchestrator struct {
	*orchestratortest.Server
	URL string
	hs  *httptest.Server
}

// Serve serves srv on a loopback port through handler (srv itself when nil, or a wrapper
// such as orchestratortest.Faulty). Close stops it.
func Serve(srv *orchestratortest.Server, handler http.Handler) *Orchestrator {
	if handler == nil {
		handler = srv
	}
	hs := httptest.NewServer(handler)
	return &Orchestrator{Server: srv, URL: hs.URL, hs: hs}
}

// Close stops serving.
func (o *Orchestrator) Close() { o.hs.Close() }

// Options says how to start the agent.
type Options struct {
	Binary          string // the built letsbe-agent
	Args            []string
	OrchestratorURL string
	StateDir        string // AGENT_STATE_DIR
	Home            string // HOME
	// Env is added to the environment ("K=V"), after the variables Start sets: a later entry
	// wins, so AGENT_HTTP_ADDR here replaces the pre-picked address.
	Env []string
	// Output, when set, also receives everything the agent writes to stdout and stderr.
	Output io.Writer
}

// Agent is a running letsbe-agent.
type Agent struct {
	cmd *exec.Cmd
	// HTTPAddr is the address of its local listener (AGENT_HTTP_ADDR): a loopback port picked
	// free before the start unless Options.Env set one; empty when the listener is off.
	HTTPAddr string
	out      *Output
	done     chan struct{}
	exitCode int
	termOnce sync.Once
}

// Start runs the binary with a clean environment: PATH, HOME, AGENT_STATE_DIR,
// AGENT_HTTP_ADDR on a free loopback port, ORCHESTRATOR_URL and the reference orchestrator's
// enrollment token (when opts.OrchestratorURL is set), then opts.Env.
func Start(opts Options) (*Agent, error) {
	addr, err := FreeLoopbackAddr()
	if err != nil {
		return nil, err
	}
	env := []string{
		"PATH=" + os.Getenv("PATH"),
		"HOME=" + opts.Home,
		"AGENT_STATE_DIR=" + opts.StateDir,
		"AGENT_HTTP_ADDR=" + addr,
	}
	if opts.OrchestratorURL != "" { // not for `letsbe-agent dev`
		env = append(env, "ORCHESTRATOR_URL="+opts.OrchestratorURL, "AGENT_TOKEN="+orchestratortest.DefaultEnrollmentToken)
	}
	env = append(env, opts.Env...)
	for _, kv := range env {
		if v, ok := strings.CutPrefix(kv, "AGENT_HTTP_ADDR="); ok {
			addr = v
		}
	}
	// The agent's life is Term, Stop and Kill, not a context's: a cancelled context would
	// SIGKILL it where a test wants to see its drain.
	cmd := exec.Command(opts.Binary, opts.Args...) //nolint:noctx // see above
	cmd.Env = env
	out := &Output{}
	var w io.Writer = out
	if opts.Output != nil {
		w = io.MultiWriter(out, opts.Output)
	}
	cmd.Stdout, cmd.Stderr = w, w
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start agent: %w", err)
	}
	a := &Agent{cmd: cmd, HTTPAddr: addr, out: out, done: make(chan struct{})}
	go func() {
		_ = cmd.Wait()
		a.exitCode = cmd.ProcessState.ExitCode()
		close(a.done)
	}()
	return a, nil
}

// Pid is the agent's process id.
func (a *Agent) Pid() int { return a.cmd.Process.Pid }

// Signal sends sig to the agent.
func (a *Agent) Signal(sig os.Signal) error { return a.cmd.Process.Signal(sig) }

// Output is everything the agent wrote so far.
func (a *Agent) Output() string { return a.out.String() }

// OutputTail is the last n bytes of the agent's output, for error messages.
func (a *Agent) OutputTail(n int) string {
	s := a.out.String()
	if len(s) > n {
		s = s[len(s)-n:]
	}
	return s
}

// Done is closed when the agent has exited.
func (a *Agent) Done() <-chan struct{} { return a.done }

// Alive reports whether the agent has not exited yet.
func (a *Agent) Alive() bool {
	select {
	case <-a.done:
		return false
	default:
		return true
	}
}

// ExitCode is the agent's exit code, once Done is closed (-1 when killed by a signal).
func (a *Agent) ExitCode() int {
	<-a.done
	return a.exitCode
}

// Term sends SIGTERM once: a second one would make the agent exit at once.
func (a *Agent) Term() {
	a.termOnce.Do(func() { _ = a.cmd.Process.Signal(syscall.SIGTERM) })
}

// Stop sends SIGTERM and waits for the exit, up to grace; then it kills the agent and says
// so in the error. It returns the exit code.
func (a *Agent) Stop(grace time.Duration) (int, error) {
	if a.Alive() {
		a.Term()
	}
	select {
	case <-a.done:
		return a.exitCode, nil
	case <-time.After(grace):
		a.Kill()
		return a.exitCode, fmt.Errorf("agent did not stop within %s of SIGTERM; killed", grace)
	}
}

// Kill sends SIGKILL and waits for the exit.
func (a *Agent) Kill() {
	_ = a.cmd.Process.Kill()
	<-a.done
}

// WaitRegistered waits until the agent registered with o and its poller asked for work.
func (a *Agent) WaitRegistered(ctx context.Context, o *orchestratortest.Server, timeout time.Duration) error {
	err := testpoll.Wait(ctx, timeout, func() error {
		switch {
		case !a.Alive():
			return errExited
		case len(o.Agents()) == 0:
			return errors.New("not registered")
		case o.Stats().NextTask == 0:
			return errors.New("registered, no poll yet")
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("agent not registered and polling: %w; its output ends:\n%s", err, a.OutputTail(4000))
	}
	return nil
}

// WaitListening waits until the agent's local listener answers /healthz at HTTPAddr.
func (a *Agent) WaitListening(ctx context.Context, timeout time.Duration) error {
	if a.HTTPAddr == "" {
		return errors.New("the agent's local listener is off (AGENT_HTTP_ADDR empty)")
	}
	err := testpoll.Wait(ctx, timeout, func() error {
		if !a.Alive() {
			return errExited
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+a.HTTPAddr+"/healthz", nil)
		if err != nil {
			return err
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return err
		}
		_ = resp.Body.Close()
		return nil
	})
	if err != nil {
		return fmt.Errorf("agent's listener on %s: %w; its output ends:\n%s", a.HTTPAddr, err, a.OutputTail(4000))
	}
	return nil
}

var errExited = errors.New("the agent exited")

// FreeLoopbackAddr returns 127.0.0.1:PORT with a port that was free a moment ago.
func FreeLoopbackAddr() (string, error) {
	var lc net.ListenConfig
	l, err := lc.Listen(context.Background(), "tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	addr := l.Addr().String()
	return addr, l.Close()
}

// Output collects a process's output safely.
type Output struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *Output) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *Output) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
