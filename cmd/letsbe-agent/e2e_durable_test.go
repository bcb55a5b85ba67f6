package main_test

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/letsbe/sysadmin-agent/internal/testfs"
	"github.com/letsbe/sysadmin-agent/internal/testpoll"
	"github.com/letsbe/sysadmin-agent/orchestratorsync/orchestratortest"
)

const notDurable = "agent cannot persist tasks: "

// countLog returns how many of the agent's log lines have the message msg.
func (p *agentProc) countLog(msg string) int {
	n := 0
	for _, l := range p.logLines() {
		if l["msg"] == msg {
			n++
		}
	}
	return n
}

// TestE2EFullDisk puts the state directory on a small tmpfs and fills it: no task runs without
// being durable (FILE_WRITEs whose files must not appear), the tasks taken are reported FAILED
// "agent cannot persist tasks: ...", intake stops and /readyz says why; once there is room
// again the agent recovers on its own and new tasks run. Then the disk is filled again and the
// agent killed (-9) while unhealthy: after a restart nothing is lost (every task gets one final
// report, the running one as interrupted).
func TestE2EFullDisk(t *testing.T) {
	t.Parallel()
	stateFS := testfs.MountTmpfs(t, "16m")
	stateDir := filepath.Join(stateFS, "state")
	root := t.TempDir()
	o := startOrchestrator(t, orchestratortest.Options{})
	env := []string{"AGENT_FILE_ROOTS=" + root, "AGENT_MAX_CONCURRENT_TASKS=2"}
	a := startAgent(t, o, stateDir, env...)
	base := "http://" + a.httpAddr()

	// Tasks that must not fit in a full journal are larger than any room freed in its file
	// before (bbolt reuses freed pages): small tasks while there is room, 256 KiB ones when the
	// disk is first full, 900 KiB ones the second time.
	const small, large, larger = 1 << 10, 256 << 10, 900 << 10
	n := 0
	write := func(size int) (id, path string) {
		n++
		path = filepath.Join(root, fmt.Sprintf("f-%d.txt", n))
		p, _ := json.Marshal(map[string]any{"path": path, "content": strings.Repeat("x", size)})
		return o.enqueue(t, "FILE_WRITE", string(p)), path
	}
	// checkRun: a COMPLETED task wrote its file; any other wrote nothing and failed because the
	// agent could not persist it (want: "" for either, else the status wanted).
	checkRun := func(id, path, want string) string {
		t.Helper()
		st := o.waitFinal(t, id)
		_, err := os.Stat(path)
		written := err == nil
		switch {
		case want != "" && st.Status != want:
			t.Errorf("task %s: %s %q, want %s", id, st.Status, st.Error, want)
		case st.Status == orchestratortest.StatusCompleted && !written:
			t.Errorf("task %s COMPLETED without writing %s", id, path)
		case st.Status == orchestratortest.StatusFailed && written:
			t.Errorf("task %s ran (wrote %s) although it was not durable", id, path)
		case st.Status == orchestratortest.StatusFailed && !strings.HasPrefix(st.Error, notDurable):
			t.Errorf("task %s failed with %q, want %q...", id, st.Error, notDurable)
		}
		if st.FinalReports != 1 {
			t.Errorf("task %s: %d final reports, want 1", id, st.FinalReports)
		}
		return st.Status
	}
	readyz := func() (int, string) {
		code, body := httpGet(t, base+"/readyz")
		var r struct{ Reason string }
		_ = json.Unmarshal([]byte(body), &r)
		return code, r.Reason
	}

	id, path := write(small)
	checkRun(id, path, orchestratortest.StatusCompleted)
	eventually(t, "ready", func() bool { code, _ := readyz(); return code == 200 })

	// Full: the first task taken cannot be persisted; intake stops.
	filler := testfs.Fill(t, stateFS)
	id, path = write(large)
	checkRun(id, path, orchestratortest.StatusFailed)
	eventually(t, "not ready for want of persistence", func() bool {
		code, reason := readyz()
		return code == 503 && strings.HasPrefix(reason, notDurable) && strings.Contains(reason, "no space left on device")
	})
	_, m := httpGet(t, base+"/metrics")
	if !strings.Contains(m, "letsbe_agent_journal_healthy 0") {
		t.Errorf("/metrics lacks letsbe_agent_journal_healthy 0")
	}
	waiting, waitingPath := write(large) // left queued while the agent takes nothing, or failed
	if strings.Contains(m, "letsbe_agent_journal_write_errors_total 0\n") {
		t.Errorf("/metrics counts no journal write error")
	}

	// Room again: the agent recovers by itself and takes tasks again.
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	eventually(t, "ready again", func() bool { code, _ := readyz(); return code == 200 })
	checkRun(waiting, waitingPath, "")
	id, path = write(small)
	checkRun(id, path, orchestratortest.StatusCompleted)

	// A task running (durably) when the disk fills again and the agent is killed.
	running := o.enqueue(t, "SHELL", `{"cmd":"sleep 60"}`)
	eventually(t, "the SHELL task running", func() bool {
		st, _ := o.Task(running)
		return st.Status == orchestratortest.StatusRunning
	})
	filler = testfs.Fill(t, stateFS)
	failing, failingPath := write(larger)
	checkRun(failing, failingPath, orchestratortest.StatusFailed)
	eventually(t, "not ready", func() bool { code, _ := readyz(); return code == 503 })
	// Once the poller says it takes nothing (no poll in flight), a task enqueued stays queued.
	// A long poll under way ends first: up to its 25 s wait.
	testpoll.Until(t, 2*time.Minute, "intake to stop again", func() bool {
		return a.countLog("Taking no new tasks: the agent cannot persist them") >= 2
	})
	queued, queuedPath := write(larger)
	a.Kill()

	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	b := startAgent(t, o, stateDir, env...)
	base = "http://" + b.httpAddr()
	if st := o.waitFinal(t, running); st.Status != orchestratortest.StatusFailed || !strings.Contains(st.Error, "interrupted") {
		t.Errorf("running task after the restart: %s %q, want FAILED interrupted", st.Status, st.Error)
	}
	checkRun(queued, queuedPath, orchestratortest.StatusCompleted)
	id, path = write(small)
	checkRun(id, path, orchestratortest.StatusCompleted)
	eventually(t, "ready after the restart", func() bool { code, _ := readyz(); return code == 200 })
	for _, st := range o.Tasks() {
		if st.FinalReports != 1 {
			t.Errorf("task %s: %s with %d final reports, want exactly 1", st.ID, st.Status, st.FinalReports)
		}
	}
}
