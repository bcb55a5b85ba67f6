package main_test

import (
	"bufio"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/letsbe/sysadmin-agent/orchestratorsync/orchestratortest"
)

// TestE2ESIGQUITDrainsLikeSIGTERM: SIGQUIT (which would make a Go program dump its goroutines
// and exit 2) drains: the running task finishes and is reported, and the agent exits 0.
func TestE2ESIGQUITDrainsLikeSIGTERM(t *testing.T) {
	t.Parallel()
	o := startOrchestrator(t, orchestratortest.Options{})
	agent := startAgent(t, o, "", "AGENT_SHUTDOWN_GRACE=30s")
	id := o.enqueue(t, "SHELL", `{"cmd":"sleep 1"}`)
	eventually(t, "the task running", func() bool {
		st, _ := o.Task(id)
		return st.Status == orchestratortest.StatusRunning
	})
	if err := agent.Signal(syscall.SIGQUIT); err != nil {
		t.Fatal(err)
	}
	if st := o.waitFinal(t, id); st.Status != orchestratortest.StatusCompleted {
		t.Errorf("task running at SIGQUIT: %s %q, want COMPLETED (drained)", st.Status, st.Error)
	}
	select {
	case <-agent.Done():
	case <-time.After(60 * time.Second):
		t.Fatal("the agent did not stop after SIGQUIT")
	}
	if code := agent.ExitCode(); code != 0 {
		t.Errorf("exit code after SIGQUIT %d, want 0", code)
	}
	if out := agent.Output(); !strings.Contains(out, `"signal":"quit"`) || strings.Contains(out, "goroutine ") {
		t.Errorf("want a drain logged for signal quit and no goroutine dump; output:\n%s", out)
	}
}

// TestE2EClosedLogPipe: the agent's stdout and stderr are a pipe whose reader goes away (a
// crashed log collector, `letsbe-agent | head`). Writes to it fail with EPIPE, which must not
// kill the agent: it keeps running tasks, and still drains and exits 0 on SIGTERM.
func TestE2EClosedLogPipe(t *testing.T) {
	t.Parallel()
	o := startOrchestrator(t, orchestratortest.Options{})
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(agentBinary)
	cmd.Env = []string{
		"PATH=" + os.Getenv("PATH"), "HOME=" + t.TempDir(),
		"ORCHESTRATOR_URL=" + o.URL, "AGENT_TOKEN=" + orchestratortest.DefaultEnrollmentToken,
		"AGENT_STATE_DIR=" + filepath.Join(t.TempDir(), "state"),
		"AGENT_HEARTBEAT_INTERVAL=200ms", "AGENT_POLL_INTERVAL=50ms",
		"AGENT_LOG_LEVEL=debug", // a line for every request: the closed pipe is written to at once
		"AGENT_HTTP_ADDR=127.0.0.1:0",
	}
	cmd.Stdout, cmd.Stderr = pw, pw
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pw.Close()
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	t.Cleanup(func() { _ = cmd.Process.Kill(); <-done })

	// Read until the agent has registered, then close the reading end.
	lines := bufio.NewScanner(pr)
	lines.Buffer(make([]byte, 0, 64<<10), 1<<20)
	registered := false
	for !registered && lines.Scan() {
		registered = strings.Contains(lines.Text(), "Registered with the orchestrator")
	}
	if !registered {
		t.Fatalf("the agent did not log its registration: %v", lines.Err())
	}
	pr.Close()

	for i := range 3 {
		id := o.enqueue(t, "ECHO", `{"message":"after the log pipe closed"}`)
		if st := o.waitFinal(t, id); st.Status != orchestratortest.StatusCompleted {
			t.Fatalf("task %d after the log pipe closed: %s %q", i, st.Status, st.Error)
		}
	}
	select {
	case <-done:
		t.Fatalf("the agent exited after its log pipe closed: %v", cmd.ProcessState)
	default:
	}
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-done:
	case <-time.After(60 * time.Second):
		t.Fatal("the agent did not stop after SIGTERM")
	}
	if code := cmd.ProcessState.ExitCode(); code != 0 {
		t.Errorf("exit code %d (%v), want 0", code, cmd.ProcessState)
	}
}
