package main_test

import (
	"encoding/json"
	"io"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

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
		`letsbe_agent_journal_write_seconds_bucket{le="0.0005"} `,
		`letsbe_agent_journal_write_seconds_count `,
		`controller_runtime_reconcile_total{controller="tasks",result="success"}`,
		`workqueue_adds_total{controller="tasks",name="tasks"}`,
		`go_goroutines `,
		`process_resident_memory_bytes `,
		`letsbe_agent_build_info{commit="`,
		`letsbe_agent_tasks_pending 0`,
		`letsbe_agent_task_failures_total{reason="UnsupportedType",type="unsupported"} 1`,
		`letsbe_agent_task_failures_total{reason="Failed",type="SHELL"} 1`,
	} {
		if !strings.Contains(m, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
	// controller-runtime internals no alert uses are not served.
	for _, dropped := range []string{"controller_runtime_reconcile_time_seconds", "workqueue_queue_duration_seconds", "rest_client_", "certwatcher_"} {
		if strings.Contains(m, dropped) {
			t.Errorf("/metrics serves %s", dropped)
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
	// Every metric of config/prometheus/alerts.yaml and config/grafana/letsbe-agent.json is served.
	checkMonitoringMetrics(t, m)
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

// httpGetBounded is httpGet that fails the test when the agent does not answer before a
// generous deadline (an endpoint waiting for the orchestrator would hang far longer).
func httpGetBounded(t *testing.T, url string) (int, string) {
	t.Helper()
	c := &http.Client{Timeout: 2 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestE2EEndpointsAnswerWhileNotRegistered: with the orchestrator down or the enrollment token
// refused, /readyz says why at once, /metrics shows the agent unregistered, /debug/tasks and
// `letsbe-agent status` answer.
func TestE2EEndpointsAnswerWhileNotRegistered(t *testing.T) {
	t.Parallel()
	const wrongToken = "wrong-token-do-not-show"
	for _, tc := range []struct {
		name   string
		outage bool
		env    []string
		reason string
	}{
		{"orchestrator down", true, nil, "POST /agents/register"},
		{"token refused", false, []string{"AGENT_TOKEN=" + wrongToken}, "status 401"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			o, f := startFaultyOrchestrator(t, orchestratortest.Options{}, orchestratortest.FaultOptions{})
			f.SetOutage(tc.outage)
			a := startAgent(t, o, "", tc.env...)
			base := "http://" + a.httpAddr()
			var ready struct{ Reason string }
			eventually(t, "the registration error in /readyz", func() bool {
				code, body := httpGetBounded(t, base+"/readyz")
				if err := json.Unmarshal([]byte(body), &ready); err != nil {
					t.Fatalf("/readyz: %v: %s", err, body)
				}
				return code == http.StatusServiceUnavailable && strings.Contains(ready.Reason, tc.reason)
			})
			if !strings.HasPrefix(ready.Reason, "not registered with the orchestrator yet: ") || strings.Contains(ready.Reason, wrongToken) {
				t.Errorf("/readyz reason %q", ready.Reason)
			}
			for range 5 {
				if _, m := httpGetBounded(t, base+"/metrics"); !strings.Contains(m, "\nletsbe_agent_registered 0\n") {
					t.Errorf("/metrics lacks letsbe_agent_registered 0")
				}
				if code, _ := httpGetBounded(t, base+"/debug/tasks"); code != http.StatusOK {
					t.Errorf("/debug/tasks: %d", code)
				}
			}
			cmd := exec.Command(agentBinary, "status", "--http-addr", a.httpAddr())
			cmd.Env = []string{"PATH=" + os.Getenv("PATH")}
			out, _ := cmd.CombinedOutput()
			if code := cmd.ProcessState.ExitCode(); code != 1 || !strings.Contains(string(out), "NOT READY (not registered with the orchestrator yet: ") {
				t.Errorf("status: exit %d\n%s", code, out)
			}
			if strings.Contains(string(out), wrongToken) || strings.Contains(a.Output(), wrongToken) {
				t.Error("the token shows in the status output or the log")
			}
			// The orchestrator comes back: the agent registers and gets ready.
			if tc.outage {
				f.SetOutage(false)
				eventually(t, "ready", func() bool { code, _ := httpGetBounded(t, base+"/readyz"); return code == http.StatusOK })
			}
		})
	}
}
