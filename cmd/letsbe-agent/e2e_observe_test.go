package main_test

import (
	"encoding/json"
	"io"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/letsbe/sysadmin-agent/orchestratorsync/orchestratortest"
)

func httpGet(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestE2EHealthMetricsDebugAndStatus(t *testing.T) {
	t.Parallel()
	o, f := startFaultyOrchestrator(t, orchestratortest.Options{}, orchestratortest.FaultOptions{})
	a := startAgent(t, o, "")
	base := "http://" + a.httpAddr()

	if code, body := httpGet(t, base+"/healthz"); code != 200 || strings.TrimSpace(body) != "ok" {
		t.Fatalf("/healthz: %d %q", code, body)
	}
	eventually(t, "readiness", func() bool { code, _ := httpGet(t, base+"/readyz"); return code == 200 })

	ok := o.enqueue(t, "ECHO", `{"secret":"do-not-show"}`)
	bad := o.enqueue(t, "SHELL", `{"cmd":"false"}`)
	unsupported := o.enqueue(t, "NOPE", `{}`)
	for _, id := range []string{ok, bad, unsupported} {
		o.waitFinal(t, id)
	}

	// /debug/tasks: the tasks, never their payloads.
	_, body := httpGet(t, base+"/debug/tasks")
	var dt struct {
		AgentID string
		Tasks   []struct {
			ID, Type, Phase, Error string
		}
	}
	if err := json.Unmarshal([]byte(body), &dt); err != nil {
		t.Fatalf("/debug/tasks: %v\n%s", err, body)
	}
	if strings.Contains(body, "do-not-show") {
		t.Error("/debug/tasks shows a payload")
	}
	phases := map[string]string{}
	for _, x := range dt.Tasks {
		phases[x.ID] = x.Phase + " " + x.Error
	}
	if phases[ok] != "Succeeded " || phases[bad] != "Failed exit status 1" || !strings.HasPrefix(phases[unsupported], "Failed unsupported") {
		t.Errorf("/debug/tasks phases: %v", phases)
	}

	// /metrics: ours and controller-runtime's in one registry.
	eventually(t, "metrics", func() bool {
		_, m := httpGet(t, base+"/metrics")
		return strings.Contains(m, `letsbe_agent_tasks_total{status="FAILED",type="unsupported"} 1`)
	})
	_, m := httpGet(t, base+"/metrics")
	for _, want := range []string{
		`letsbe_agent_tasks_total{status="COMPLETED",type="ECHO"} 1`,
		`letsbe_agent_tasks_total{status="FAILED",type="SHELL"} 1`,
		`letsbe_agent_task_duration_seconds_count{type="ECHO"} 1`,
		`letsbe_agent_orchestrator_request_duration_seconds_count{code="200",endpoint="heartbeat"}`,
		`letsbe_agent_registered 1`,
		`letsbe_agent_last_heartbeat_timestamp_seconds `,
		`letsbe_agent_journal_tasks `,
		`controller_runtime_reconcile_total{controller="task-ECHO",result="success"}`,
		`workqueue_adds_total{controller="task-SHELL",name="task-SHELL"}`,
		`go_goroutines `,
		`process_resident_memory_bytes `,
	} {
		if !strings.Contains(m, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
	if strings.Count(m, "# TYPE go_goroutines ") != 1 {
		t.Error("more than one Go collector")
	}

	// `letsbe-agent status` prints a table.
	cmd := exec.Command(agentBinary, "status", "--http-addr", a.httpAddr())
	cmd.Env = []string{"PATH=" + os.Getenv("PATH")}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("status: %v\n%s", err, out)
	}
	for _, want := range []string{"READY", "ID", ok, "ECHO", "exit status 1"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("status output lacks %q:\n%s", want, out)
		}
	}

	// An orchestrator outage: heartbeats fail, readiness goes away, errors are counted.
	f.SetOutage(true)
	eventually(t, "not ready during the outage", func() bool { code, _ := httpGet(t, base+"/readyz"); return code == 503 })
	_, m = httpGet(t, base+"/metrics")
	if !strings.Contains(m, `letsbe_agent_orchestrator_request_errors_total{code="0",endpoint="heartbeat"}`) {
		t.Error("heartbeat errors not counted")
	}
	cmd = exec.Command(agentBinary, "status", "--http-addr", a.httpAddr())
	out, err = cmd.CombinedOutput()
	if code := cmd.ProcessState.ExitCode(); err == nil || code != 1 || !strings.Contains(string(out), "NOT READY") {
		t.Errorf("status while not ready: exit %d\n%s", code, out)
	}
	f.SetOutage(false)
	eventually(t, "ready again", func() bool { code, _ := httpGet(t, base+"/readyz"); return code == 200 })
}

func TestE2EStatusWithoutAgent(t *testing.T) {
	t.Parallel()
	cmd := exec.Command(agentBinary, "status", "--http-addr", "127.0.0.1:1")
	out, _ := cmd.CombinedOutput()
	if cmd.ProcessState.ExitCode() != 2 || !strings.Contains(string(out), "cannot reach the agent") {
		t.Fatalf("exit %d: %s", cmd.ProcessState.ExitCode(), out)
	}
}
