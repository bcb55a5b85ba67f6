package main_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/letsbe/sysadmin-agent/api/store/kube/kubetest"
	"github.com/letsbe/sysadmin-agent/internal/testdirs"
	"github.com/letsbe/sysadmin-agent/orchestratorsync/orchestratortest"
)

// agentBinary is the letsbe-agent binary built once for all end-to-end tests.
var agentBinary string

// helperDir holds test helper programs (ticker: prints over time) for SHELL tasks; put it in
// the agent's PATH and allow them to use them.
var helperDir string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "letsbe-agent-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	agentBinary = filepath.Join(dir, "letsbe-agent")
	args := []string{"build", "-o", agentBinary}
	if raceEnabled {
		args = append(args, "-race")
	}
	build := exec.Command("go", append(args, ".")...)
	build.Env = testdirs.OriginalEnviron() // the Go build cache where it is, not in this test's dirs
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "build letsbe-agent:", err)
		os.Exit(1)
	}
	helperDir = filepath.Join(dir, "bin")
	build = exec.Command("go", "build", "-o", filepath.Join(helperDir, "ticker"), "./testdata/ticker")
	build.Env = testdirs.OriginalEnviron()
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "build the ticker helper:", err)
		os.Exit(1)
	}
	code := kubetest.Run(m) // with the API server of the cluster-mode tests, if they run
	os.RemoveAll(dir)
	os.Exit(code)
}

// orchestrator is the reference orchestrator served on loopback.
type orchestrator struct {
	*orchestratortest.Server
	URL string
}

func startOrchestrator(t *testing.T, opts orchestratortest.Options) *orchestrator {
	t.Helper()
	srv := orchestratortest.New(opts)
	hs := httptest.NewServer(srv)
	t.Cleanup(hs.Close)
	return &orchestrator{Server: srv, URL: hs.URL}
}

// waitTask waits until the orchestrator holds a final status for id.
func (o *orchestrator) waitFinal(t *testing.T, id string) orchestratortest.TaskState {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	st, err := o.WaitTask(ctx, id, func(s orchestratortest.TaskState) bool {
		return s.Status == orchestratortest.StatusCompleted || s.Status == orchestratortest.StatusFailed
	})
	if err != nil {
		got, _ := o.Task(id)
		got.Payload = nil // may be megabytes
		t.Fatalf("task %s: no final status: %v (state %+v)", id, err, got)
	}
	return st
}

func (o *orchestrator) enqueue(t *testing.T, typ, payload string) string {
	t.Helper()
	var raw json.RawMessage
	if payload != "" {
		raw = json.RawMessage(payload)
	}
	return o.Enqueue(typ, raw, 0)
}

// eventually polls cond until it holds or the deadline passes.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// syncBuffer collects a process's output safely.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// agentProc is a running letsbe-agent.
type agentProc struct {
	t        *testing.T
	cmd      *exec.Cmd
	out      *syncBuffer
	done     chan struct{}
	exitCode int
	stateDir string
	termOnce sync.Once
}

// term sends SIGTERM once (a second one would make the agent exit at once).
func (p *agentProc) term() {
	p.termOnce.Do(func() { _ = p.cmd.Process.Signal(syscall.SIGTERM) })
}

// startAgent runs the binary with a clean environment plus env ("K=V").
func startAgent(t *testing.T, o *orchestrator, stateDir string, env ...string) *agentProc {
	t.Helper()
	if stateDir == "" {
		stateDir = filepath.Join(t.TempDir(), "state")
	}
	cmd := exec.Command(agentBinary)
	cmd.Env = append([]string{
		"PATH=" + os.Getenv("PATH"),
		"HOME=" + t.TempDir(),
		"ORCHESTRATOR_URL=" + o.URL,
		"AGENT_TOKEN=" + orchestratortest.DefaultEnrollmentToken,
		"AGENT_STATE_DIR=" + stateDir,
		"AGENT_HEARTBEAT_INTERVAL=200ms",
		"AGENT_POLL_INTERVAL=50ms",
		"AGENT_ALLOWED_COMMANDS=echo,sleep,false,true,uname",
		"AGENT_LOG_LEVEL=debug",
		"AGENT_HTTP_ADDR=127.0.0.1:0",
	}, env...)
	out := &syncBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &agentProc{t: t, cmd: cmd, out: out, done: make(chan struct{}), stateDir: stateDir}
	go func() {
		_ = cmd.Wait()
		p.exitCode = cmd.ProcessState.ExitCode()
		close(p.done)
	}()
	t.Cleanup(func() {
		p.stop()
		if t.Failed() {
			t.Logf("agent output:\n%s", out.String())
		}
	})
	return p
}

func (p *agentProc) alive() bool {
	select {
	case <-p.done:
		return false
	default:
		return true
	}
}

// stop sends SIGTERM and waits for the exit; it returns the exit code.
func (p *agentProc) stop() int {
	if p.alive() {
		p.term()
	}
	select {
	case <-p.done:
	case <-time.After(60 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.done
		p.t.Errorf("agent did not stop within 60s of SIGTERM")
	}
	return p.exitCode
}

// kill sends SIGKILL and waits.
func (p *agentProc) kill() {
	_ = p.cmd.Process.Kill()
	<-p.done
}

// httpAddr waits for the agent's local listener and returns its address.
func (p *agentProc) httpAddr() string {
	p.t.Helper()
	var addr string
	eventually(p.t, "the HTTP listener", func() bool {
		for _, l := range p.logLines() {
			if l["msg"] == "Serving metrics and health" {
				addr, _ = l["addr"].(string)
				return true
			}
		}
		return false
	})
	return addr
}

// logLines returns the agent's output, failing the test on any line that is not JSON.
func (p *agentProc) logLines() []map[string]any {
	p.t.Helper()
	var lines []map[string]any
	sc := bufio.NewScanner(strings.NewReader(p.out.String()))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var m map[string]any
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			p.t.Errorf("log line is not JSON: %q", sc.Text())
			continue
		}
		lines = append(lines, m)
	}
	return lines
}
