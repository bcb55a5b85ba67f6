package main_test

import (
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/letsbe/sysadmin-agent/orchestratorsync/orchestratortest"
)

// startFaultyOrchestrator serves the reference orchestrator behind the fault injector.
func startFaultyOrchestrator(t *testing.T, opts orchestratortest.Options, faults orchestratortest.FaultOptions) (*orchestrator, *orchestratortest.Faulty) {
	t.Helper()
	srv := orchestratortest.New(opts)
	f := orchestratortest.NewFaulty(srv, faults)
	return serveOrchestrator(t, srv, f), f
}

// checkExactlyOnce asserts every task has exactly one accepted final status.
func checkExactlyOnce(t *testing.T, o *orchestrator, ids []string) (duplicates int) {
	t.Helper()
	for _, id := range ids {
		st, ok := o.Task(id)
		if !ok {
			t.Errorf("task %s unknown", id)
			continue
		}
		if st.FinalReports != 1 {
			t.Errorf("task %s: %d accepted final reports, want 1 (status %s)", id, st.FinalReports, st.Status)
		}
		duplicates += st.Duplicates
	}
	return duplicates
}

func TestE2EChaosFaultyOrchestrator(t *testing.T) {
	t.Parallel()
	const n = 240
	o, f := startFaultyOrchestrator(t, orchestratortest.Options{IssueAgentTokens: true},
		orchestratortest.FaultOptions{ErrorRate: 0.20, ResetRate: 0.10, SlowRate: 0.05, SlowDelay: 50 * time.Millisecond})
	a := startAgent(t, o, "", "AGENT_BACKOFF_BASE=20ms", "AGENT_MAX_CONCURRENT_TASKS=8")
	var ids []string
	for i := range n {
		if i%4 == 0 {
			ids = append(ids, o.enqueue(t, "SHELL", `{"cmd":"echo chaos"}`))
		} else {
			ids = append(ids, o.enqueue(t, "ECHO", fmt.Sprintf(`{"i":%d}`, i)))
		}
	}
	// Halfway, the credential is revoked; the agent must re-register and go on.
	o.waitFinal(t, ids[n/2])
	registrations := o.Stats().Register
	o.RevokeTokens()
	// The tasks enqueued so far may all be done before the agent makes a request with the
	// revoked token: one more, enqueued after the revocation, can be reported only with a new
	// registration.
	ids = append(ids, o.enqueue(t, "ECHO", `{"after":"revocation"}`))
	for i, id := range ids {
		st := o.waitFinal(t, id)
		if st.Status != "COMPLETED" {
			t.Errorf("task %d (%s): %s %q", i, id, st.Status, st.Error)
		}
	}
	dups := checkExactlyOnce(t, o, ids)
	fs := f.Stats()
	stats := o.Stats()
	t.Logf("chaos: %d tasks, %d requests, %d faults injected (%d errors, %d resets before, %d resets after handling, %d slow), 0 final statuses lost, %d identical duplicate finals seen by the orchestrator, %d registrations",
		len(ids), fs.Requests, fs.Total(), fs.Errors, fs.ResetsBefore, fs.ResetsAfter, fs.Slow, dups, stats.Register)
	if !a.Alive() {
		t.Fatal("agent died")
	}
	// The scenario happened: faults were injected, and the revoked agent registered again.
	if fs.Total() == 0 {
		t.Error("no fault injected: the scenario did not run")
	}
	if stats.Register <= registrations {
		t.Errorf("%d registrations before the revocation, %d at the end: the agent never registered again", registrations, stats.Register)
	}
}

func TestE2EOutageThenRecovery(t *testing.T) {
	t.Parallel()
	o, f := startFaultyOrchestrator(t, orchestratortest.Options{}, orchestratortest.FaultOptions{})
	a := startAgent(t, o, "", "AGENT_BACKOFF_BASE=20ms")
	first := o.enqueue(t, "ECHO", `{"n":1}`)
	o.waitFinal(t, first)
	// A task is handed over, then the orchestrator goes down before the RUNNING report.
	f.SetFaults(orchestratortest.FaultOptions{})
	id := o.enqueue(t, "SHELL", `{"cmd":"sleep 1"}`)
	eventually(t, "assignment", func() bool { st, _ := o.Task(id); return st.Status != orchestratortest.StatusPending })
	f.SetOutage(true)
	// The task finishes during the outage: wait for the agent to say so itself.
	eventually(t, "the task done during the outage", func() bool { return localPhase(t, a, id) == "Succeeded" })
	if st, _ := o.Task(id); st.IsFinal() {
		t.Fatalf("the final report got through before the outage (%s): the scenario did not run", st.Status)
	}
	f.SetOutage(false)
	st := o.waitFinal(t, id)
	if st.Status != "COMPLETED" {
		t.Fatalf("after outage: %+v", st)
	}
	checkExactlyOnce(t, o, []string{first, id})
}

func TestE2EKillDuringRunningTask(t *testing.T) {
	t.Parallel()
	o := startOrchestrator(t, orchestratortest.Options{})
	state := filepath.Join(t.TempDir(), "state")
	a := startAgent(t, o, state)
	marker := fmt.Sprintf("%d", 1000+time.Now().UnixNano()%1000)
	id := o.enqueue(t, "SHELL", `{"cmd":"sleep `+marker+`"}`)
	eventually(t, "RUNNING report", func() bool { st, _ := o.Task(id); return st.Status == orchestratortest.StatusRunning })
	// The process group is recorded durably right after the command starts (a crash in the
	// millisecond before that leaves the command unowned).
	eventually(t, "the process group recorded", func() bool { return strings.Contains(a.Output(), `"msg":"Process group recorded"`) })
	a.Kill()
	t.Cleanup(func() { killStray(t, "sleep "+marker) })
	if !processRunning("sleep " + marker) {
		t.Fatal("the task's command died with the agent; the test needs it to outlive it")
	}

	startAgent(t, o, state)
	st := o.waitFinal(t, id)
	if st.Status != "FAILED" || st.Error != "interrupted: agent restarted during execution" {
		t.Fatalf("got %s %q, want FAILED interrupted", st.Status, st.Error)
	}
	// The restarted agent stopped the command the crashed one had left running.
	eventually(t, "the leftover command to be killed", func() bool { return !processRunning("sleep " + marker) })
	var killedEvent bool
	for _, e := range st.Events {
		killedEvent = killedEvent || strings.Contains(e.Message, "left running by the interrupted execution")
	}
	if !killedEvent {
		t.Errorf("no event about the killed process group: %+v", st.Events)
	}
	checkExactlyOnce(t, o, []string{id})
	// The agent goes on working after the recovery.
	if st := o.waitFinal(t, o.enqueue(t, "ECHO", `{"after":"restart"}`)); st.Status != "COMPLETED" {
		t.Fatalf("task after restart: %+v", st)
	}
}

func TestE2EKillWithUndeliveredFinalReport(t *testing.T) {
	t.Parallel()
	o, f := startFaultyOrchestrator(t, orchestratortest.Options{}, orchestratortest.FaultOptions{})
	state := filepath.Join(t.TempDir(), "state")
	a := startAgent(t, o, state, "AGENT_BACKOFF_BASE=20ms")
	// The task runs for a second: the outage starts once RUNNING is reported, so its final
	// report cannot be delivered and only the journal keeps it.
	id := o.enqueue(t, "SHELL", `{"cmd":"sleep 1"}`)
	eventually(t, "RUNNING report", func() bool { st, _ := o.Task(id); return st.Status == orchestratortest.StatusRunning })
	f.SetOutage(true)
	eventually(t, "task done locally", func() bool {
		return strings.Contains(a.Output(), `"msg":"Report not delivered; retrying","task":"`+id+`","status":"COMPLETED"`)
	})
	a.Kill()
	f.SetOutage(false)
	startAgent(t, o, state, "AGENT_BACKOFF_BASE=20ms")
	st := o.waitFinal(t, id)
	if st.Status != "COMPLETED" || !strings.Contains(string(st.Result), `"exit_code":0`) {
		t.Fatalf("got %s %s", st.Status, st.Result)
	}
	checkExactlyOnce(t, o, []string{id})
}

func TestE2EDrainOnSIGTERM(t *testing.T) {
	t.Parallel()
	o := startOrchestrator(t, orchestratortest.Options{})
	a := startAgent(t, o, "", "AGENT_SHUTDOWN_GRACE=20s")
	short := o.enqueue(t, "SHELL", `{"cmd":"sleep 1"}`)
	eventually(t, "RUNNING", func() bool { st, _ := o.Task(short); return st.Status == orchestratortest.StatusRunning })
	a.Term()
	eventually(t, "DRAINING heartbeat", func() bool {
		ags := o.Agents()
		return len(ags) == 1 && ags[0].LastStatus == "DRAINING"
	})
	// No new task is taken while draining: once the orchestrator has seen the parked long poll
	// go (the agent cancels it when draining starts), a task enqueued stays pending.
	eventually(t, "no parked long poll", func() bool { return o.Stats().LongPollsWaiting == 0 })
	later := o.enqueue(t, "ECHO", `{}`)
	if code := a.stop(); code != 0 {
		t.Fatalf("exit code %d", code)
	}
	if st, _ := o.Task(short); st.Status != "COMPLETED" {
		t.Fatalf("running task during drain: %+v", st)
	}
	if st, _ := o.Task(later); st.Status != orchestratortest.StatusPending {
		t.Fatalf("a task was taken while draining: %+v", st)
	}

	// A task longer than the grace period is cancelled, reported, and the agent exits 0.
	a2 := startAgent(t, o, "", "AGENT_SHUTDOWN_GRACE=500ms")
	o.waitFinal(t, later)
	long := o.enqueue(t, "SHELL", `{"cmd":"sleep 60"}`)
	eventually(t, "RUNNING", func() bool { st, _ := o.Task(long); return st.Status == orchestratortest.StatusRunning })
	if code := a2.stop(); code != 0 {
		t.Fatalf("exit code %d", code)
	}
	if st, _ := o.Task(long); st.Status != "FAILED" || st.Error != "agent shutting down" {
		t.Fatalf("long task: %s %q", st.Status, st.Error)
	}
}

func TestE2ECancelFromHeartbeat(t *testing.T) {
	t.Parallel()
	o := startOrchestrator(t, orchestratortest.Options{})
	startAgent(t, o, "")
	id := o.enqueue(t, "SHELL", `{"cmd":"sleep 60"}`)
	eventually(t, "RUNNING", func() bool { st, _ := o.Task(id); return st.Status == orchestratortest.StatusRunning })
	o.Cancel(id)
	st := o.waitFinal(t, id)
	if st.Status != "FAILED" || st.Error != "cancelled" {
		t.Fatalf("got %s %q, want FAILED cancelled", st.Status, st.Error)
	}
}

// localPhase returns the phase the agent's /debug/tasks shows for id ("" when absent).
func localPhase(t *testing.T, a *agentProc, id string) string {
	t.Helper()
	_, body := httpGetBounded(t, "http://"+a.httpAddr()+"/debug/tasks?limit=1000")
	var dt struct {
		Tasks []struct{ ID, Phase string }
	}
	if err := json.Unmarshal([]byte(body), &dt); err != nil {
		t.Fatalf("/debug/tasks: %v: %s", err, body)
	}
	for _, x := range dt.Tasks {
		if x.ID == id {
			return x.Phase
		}
	}
	return ""
}

// processRunning reports whether a live (not zombie) process has exactly this command line.
func processRunning(cmdline string) bool {
	return len(processes(commandLineIs(cmdline))) > 0
}

// killStray kills leftover processes whose command line is exactly cmdline (a task's child
// orphaned by kill -9 of the agent).
func killStray(t *testing.T, cmdline string) {
	t.Helper()
	for _, pid := range processes(commandLineIs(cmdline)) {
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}
}

// commandLineIs matches the processes whose arguments, joined by spaces, are cmdline.
func commandLineIs(cmdline string) func([]string) bool {
	return func(argv []string) bool { return strings.Join(argv, " ") == cmdline }
}
