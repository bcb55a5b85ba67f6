package main_test

import (
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/letsbe/sysadmin-agent/orchestratorsync/orchestratortest"
)

// TestE2ELocalListenerPortTaken: with AGENT_HTTP_ADDR held by another program the agent still
// starts and runs tasks, logs the error, `letsbe-agent status` says why it cannot answer, and
// once the port is free the listener comes up by itself.
func TestE2ELocalListenerPortTaken(t *testing.T) {
	t.Parallel()
	blocker, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := blocker.Addr().String()
	o := startOrchestrator(t, orchestratortest.Options{})
	stateDir := filepath.Join(t.TempDir(), "state")
	a := startAgent(t, o, stateDir, "AGENT_HTTP_ADDR="+addr)
	if st := o.waitFinal(t, o.enqueue(t, "ECHO", `{"message":"still working"}`)); st.Status != "COMPLETED" {
		t.Fatalf("task without a local listener: %s %q", st.Status, st.Error)
	}
	eventually(t, "the listener error logged", func() bool {
		return strings.Contains(a.Output(), "Cannot listen on AGENT_HTTP_ADDR")
	})
	status := exec.CommandContext(t.Context(), agentBinary, "status", "--http-addr", addr)
	status.Env = []string{"PATH=" + os.Getenv("PATH"), "AGENT_STATE_DIR=" + stateDir}
	out, _ := status.CombinedOutput()
	if !strings.Contains(string(out), "the agent could not listen on "+addr) {
		t.Errorf("status while the port is taken:\n%s", out)
	}
	blocker.Close()
	eventually(t, "the listener bound after the retry", func() bool {
		return strings.Contains(a.Output(), `"afterRetry":true`)
	})
	eventually(t, "/healthz", func() bool {
		resp, err := http.Get("http://" + addr + "/healthz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == 200
	})
}

// TestE2ELocalListenerToken: with AGENT_HTTP_TOKEN everything but /healthz needs the bearer.
func TestE2ELocalListenerToken(t *testing.T) {
	t.Parallel()
	o := startOrchestrator(t, orchestratortest.Options{})
	a := startAgent(t, o, "", "AGENT_HTTP_TOKEN=observe-me")
	base := "http://" + a.httpAddr()
	for path, want := range map[string]int{"/healthz": 200, "/readyz": 401, "/metrics": 401, "/debug/tasks": 401} {
		if code, _ := httpGet(t, base+path); code != want {
			t.Errorf("GET %s without the token: %d, want %d", path, code, want)
		}
	}
	req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, base+"/debug/tasks", nil)
	req.Header.Set("Authorization", "Bearer observe-me")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Errorf("GET /debug/tasks with the token: %d", resp.StatusCode)
	}
}
