package main_test

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/letsbe/sysadmin-agent/orchestratorsync/orchestratortest"
)

// TestE2ERestartChaosNeverRunsTwice restarts the agent again and again (kill -9 and SIGTERM in
// turn) while tasks are queued and in flight, with long polls on and a short ack timeout, so
// that tasks are handed to dying processes, re-offered, and found again in the journal. Every
// task must end with exactly one accepted final report, and none may run twice: the recording
// tasks create a file per run (mktemp), so their runs can be counted.
func TestE2ERestartChaosNeverRunsTwice(t *testing.T) {
	t.Parallel()
	const rounds, perRound = 8, 12
	o := startOrchestrator(t, orchestratortest.Options{IssueAgentTokens: true, AckTimeout: time.Second})
	state := filepath.Join(t.TempDir(), "state")
	runDir := t.TempDir()
	env := []string{
		"AGENT_ALLOWED_COMMANDS=sleep,mktemp", "AGENT_MAX_CONCURRENT_TASKS=4",
		"AGENT_SHUTDOWN_GRACE=200ms", "AGENT_BACKOFF_BASE=20ms",
	}

	type recording struct{ id, name string }
	var ids []string
	var recorders []recording
	enqueueRound := func(round int) {
		for i := range perRound {
			if i%3 == 2 {
				// In flight at the kill: interrupted, cancelled at the drain, or done.
				ids = append(ids, o.enqueue(t, "SHELL", `{"cmd":"sleep 0.3"}`))
				continue
			}
			name := fmt.Sprintf("r%d-%d", round, i)
			id := o.enqueue(t, "SHELL", fmt.Sprintf(`{"cmd":"mktemp -p %s %s.XXXXXX"}`, runDir, name))
			ids = append(ids, id)
			recorders = append(recorders, recording{id, name})
		}
	}
	finals := func() int {
		n := 0
		for _, id := range ids {
			if st, _ := o.Task(id); st.IsFinal() {
				n++
			}
		}
		return n
	}

	kills, terms := 0, 0
	queuedAtStop := 0
	for round := range rounds {
		enqueueRound(round)
		a := startAgent(t, o, state, env...)
		// Stop it mid-work: once it has taken a task of this round and delivered one more
		// final, while the rest of the round is still queued or running.
		assigned, done := o.Stats().TasksAssigned, finals()
		eventually(t, "the agent at work", func() bool {
			return o.Stats().TasksAssigned > assigned && finals() > done
		})
		for _, id := range ids {
			if st, _ := o.Task(id); !st.IsFinal() {
				queuedAtStop++
			}
		}
		if round%2 == 0 {
			a.Kill()
			kills++
		} else {
			a.stop()
			terms++
		}
	}
	startAgent(t, o, state, env...)
	lost := 0
	for _, id := range ids {
		if st := o.waitFinal(t, id); st.FinalReports != 1 {
			lost++
			t.Errorf("task %s: %d accepted final reports, want 1 (%s %q)", id, st.FinalReports, st.Status, st.Error)
		}
	}
	duplicates, completedRecorders := 0, 0
	for _, r := range recorders {
		runs, _ := filepath.Glob(filepath.Join(runDir, r.name+".*"))
		st, _ := o.Task(r.id)
		if len(runs) > 1 {
			duplicates += len(runs) - 1
			t.Errorf("task %s ran %d times", r.id, len(runs))
		}
		if st.Status == orchestratortest.StatusCompleted {
			completedRecorders++
			if len(runs) != 1 {
				t.Errorf("task %s COMPLETED with %d runs recorded", r.id, len(runs))
			}
			if !strings.Contains(string(st.Result), runDir) {
				t.Errorf("task %s: result %s does not name its run file", r.id, st.Result)
			}
		}
	}
	if completedRecorders == 0 {
		t.Error("no recording task completed: the scenario did not run")
	}
	if queuedAtStop == 0 {
		t.Error("every stop found all tasks final: no stop came mid-work, the scenario did not run")
	}
	// Every start polled with a boot_id of its own.
	if ags := o.Agents(); len(ags) != 1 || ags[0].Boots != rounds+1 {
		t.Errorf("agents %+v: want one agent with %d boots", ags, rounds+1)
	}
	stats := o.Stats()
	entries, _ := os.ReadDir(runDir)
	t.Logf("restart chaos: %d tasks (%d recording their runs, %d of them completed, %d run files), %d restarts (%d kill -9, %d SIGTERM), %d tasks unfinished summed over the stops, %d re-offers after the ack timeout, %d superseded long polls; finals lost = %d, duplicates run = %d",
		len(ids), len(recorders), completedRecorders, len(entries), kills+terms, kills, terms, queuedAtStop, stats.Requeued, stats.SupersededPolls, lost, duplicates)
}

// TestE2ESIGTERMCancelsTheLongPollFirst: on SIGTERM the parked long poll is given up at once,
// while the agent still drains a running task, so the orchestrator never hands a task to a
// process on its way out.
func TestE2ESIGTERMCancelsTheLongPollFirst(t *testing.T) {
	t.Parallel()
	o := startOrchestrator(t, orchestratortest.Options{})
	a := startAgent(t, o, "", "AGENT_MAX_CONCURRENT_TASKS=2", "AGENT_SHUTDOWN_GRACE=120s")
	marker := fmt.Sprintf("%d", 2000+time.Now().UnixNano()%1000)
	id := o.enqueue(t, "SHELL", `{"cmd":"sleep `+marker+`"}`)
	t.Cleanup(func() { killStray(t, "sleep "+marker) })
	eventually(t, "the task running and a long poll parked", func() bool {
		st, _ := o.Task(id)
		return st.Status == orchestratortest.StatusRunning && o.Stats().LongPollsWaiting == 1
	})
	a.Term()
	eventually(t, "the long poll given up", func() bool { return o.Stats().LongPollsWaiting == 0 || !a.Alive() })
	if !a.Alive() {
		t.Fatal("the agent stopped before its drain; the test needs it draining")
	}
	later := o.enqueue(t, "ECHO", `{}`)
	eventually(t, "DRAINING heartbeat", func() bool {
		ags := o.Agents()
		return len(ags) == 1 && ags[0].LastStatus == "DRAINING"
	})
	if st, _ := o.Task(later); st.Status != orchestratortest.StatusPending {
		t.Errorf("a task was handed out during the drain: %+v", st)
	}
	a.Kill()
}
