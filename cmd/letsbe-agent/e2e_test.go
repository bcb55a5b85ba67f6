package main_test

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/letsbe/sysadmin-agent/orchestratorsync/orchestratortest"
)

func TestE2EEchoShellAndBadInput(t *testing.T) {
	t.Parallel()
	o := startOrchestrator(t, orchestratortest.Options{IssueAgentTokens: true})
	a := startAgent(t, o, "", "AGENT_LABELS=region=eu-1,tier=gold")

	eventually(t, "registration and a heartbeat", func() bool {
		ags := o.Agents()
		return len(ags) == 1 && ags[0].Heartbeats >= 2
	})
	ag := o.Agents()[0]
	if diff := cmp.Diff(map[string]string{"region": "eu-1", "tier": "gold"}, ag.Labels); diff != "" {
		t.Errorf("labels (-want +got):\n%s", diff)
	}
	if !slices.Contains(ag.Capabilities, "ECHO") || !slices.Contains(ag.Capabilities, "SHELL") {
		t.Errorf("capabilities = %v", ag.Capabilities)
	}
	hb := ag.LastHeartbeatBody
	if hb.Status != "ONLINE" || hb.System.MemTotalBytes == 0 || hb.RunningTaskIDs == nil {
		t.Errorf("heartbeat body = %+v", hb)
	}

	type want struct {
		status, errContains, result string
	}
	cases := []struct {
		name, typ, payload string
		want               want
	}{
		{"echo", "ECHO", `{"message":"hello","nested":{"a":[1,2,3]}}`, want{"COMPLETED", "", `{"message":"hello","nested":{"a":[1,2,3]}}`}},
		{"echo-not-object", "ECHO", `"just a string"`, want{"FAILED", "invalid payload", ""}},
		{"echo-null", "ECHO", ``, want{"FAILED", "invalid payload", ""}},
		{"unknown-type", "FORMAT_DISK", `{}`, want{"FAILED", `unsupported task type "FORMAT_DISK"`, ""}},
		{"shell-refused", "SHELL", `{"cmd":"rm -rf /"}`, want{"FAILED", `"rm" is not allowed`, ""}},
		{"shell-injection", "SHELL", `{"cmd":"echo hi; reboot"}`, want{"FAILED", "refused", ""}},
		{"shell-subst", "SHELL", `{"cmd":"echo $(id)"}`, want{"FAILED", "refused", ""}},
		{"shell-bad-payload", "SHELL", `{"cmd":42}`, want{"FAILED", "invalid payload", ""}},
		{"shell-exit", "SHELL", `{"cmd":"false"}`, want{"FAILED", "exit status 1", ""}},
		{"shell-timeout", "SHELL", `{"cmd":"sleep 30","timeout_seconds":1}`, want{"FAILED", "timed out after 1s", ""}},
	}
	ids := map[string]string{}
	for _, c := range cases {
		ids[c.name] = o.enqueue(t, c.typ, c.payload)
	}
	for _, c := range cases {
		st := o.waitFinal(t, ids[c.name])
		if st.Status != c.want.status || !strings.Contains(st.Error, c.want.errContains) {
			t.Errorf("%s: got %s %q, want %s containing %q", c.name, st.Status, st.Error, c.want.status, c.want.errContains)
		}
		if c.want.result != "" && string(st.Result) != c.want.result {
			t.Errorf("%s: result %s, want %s", c.name, st.Result, c.want.result)
		}
		if st.StartedAt == nil || st.FinishedAt == nil || len(st.Events) == 0 {
			t.Errorf("%s: missing times or events: %+v", c.name, st)
		}
		if st.Duplicates != 0 {
			t.Errorf("%s: %d duplicate final reports", c.name, st.Duplicates)
		}
	}

	// A SHELL task: real output, and RUNNING reported before the final status.
	id := o.enqueue(t, "SHELL", `{"cmd":"uname -s"}`)
	st := o.waitFinal(t, id)
	var res struct {
		ExitCode  int    `json:"exit_code"`
		Stdout    string `json:"stdout"`
		Truncated bool   `json:"truncated"`
	}
	if err := json.Unmarshal(st.Result, &res); err != nil {
		t.Fatal(err)
	}
	if st.Status != "COMPLETED" || res.ExitCode != 0 || res.Stdout != "Linux\n" {
		t.Errorf("shell: %s %+v", st.Status, res)
	}
	if st.RunningAt.IsZero() {
		t.Errorf("shell: RUNNING was never reported")
	}
	// A failed SHELL keeps its output in the result.
	failed := o.waitFinal(t, ids["shell-exit"])
	if !strings.Contains(string(failed.Result), `"exit_code":1`) {
		t.Errorf("failed shell result = %s", failed.Result)
	}

	if !a.Alive() {
		t.Fatal("agent exited after bad input")
	}
	if code := a.stop(); code != 0 {
		t.Errorf("exit code after SIGTERM = %d, want 0", code)
	}
	// Logs: every line JSON, never a token.
	a.logLines()
	out := a.Output()
	if strings.Contains(out, orchestratortest.DefaultEnrollmentToken) {
		t.Error("the enrollment token appears in the logs")
	}
	if stats := o.Stats(); stats.Unauthorized != 0 {
		t.Errorf("%d unauthorized answers", stats.Unauthorized)
	}
}

func TestE2EIdentityReusedAndReRegisterOn401(t *testing.T) {
	t.Parallel()
	o := startOrchestrator(t, orchestratortest.Options{IssueAgentTokens: true})
	state := filepath.Join(t.TempDir(), "state")
	a := startAgent(t, o, state)
	eventually(t, "registration", func() bool { return len(o.Agents()) == 1 })
	first := o.Agents()[0].ID
	if st := o.waitFinal(t, o.enqueue(t, "ECHO", `{"n":1}`)); st.Status != "COMPLETED" {
		t.Fatalf("first task: %+v", st)
	}

	// The identity file: 0600 in a 0700 directory, holding the agent id.
	fi, err := os.Stat(filepath.Join(state, "identity.json"))
	if err != nil {
		t.Fatal(err)
	}
	di, _ := os.Stat(state)
	if fi.Mode().Perm() != 0o600 || di.Mode().Perm() != 0o700 {
		t.Errorf("modes: identity %v, dir %v", fi.Mode().Perm(), di.Mode().Perm())
	}

	// Revoked credential: the agent re-registers with AGENT_TOKEN, keeps its id, work goes on.
	o.RevokeTokens()
	if st := o.waitFinal(t, o.enqueue(t, "ECHO", `{"n":2}`)); st.Status != "COMPLETED" {
		t.Fatalf("task after revocation: %+v", st)
	}
	ags := o.Agents()
	if len(ags) != 1 || ags[0].ID != first || ags[0].Registrations < 2 {
		t.Fatalf("after revocation: agents %+v, want one agent %s registered twice", ags, first)
	}

	// The orchestrator forgets the agent: heartbeat 404, re-register, same id.
	o.ForgetAgents()
	eventually(t, "re-registration after heartbeat 404", func() bool {
		ags := o.Agents()
		return len(ags) == 1 && ags[0].Registrations >= 3
	})

	// Restart: the saved identity is reused.
	if code := a.stop(); code != 0 {
		t.Fatalf("exit code %d", code)
	}
	startAgent(t, o, state)
	eventually(t, "re-registration after restart", func() bool {
		ags := o.Agents()
		return len(ags) == 1 && ags[0].Registrations >= 4
	})
	if got := o.Agents()[0].ID; got != first {
		t.Fatalf("agent id after restart = %s, want %s", got, first)
	}
	if st := o.waitFinal(t, o.enqueue(t, "ECHO", `{"n":3}`)); st.Status != "COMPLETED" || st.AgentID != first {
		t.Fatalf("task after restart: %+v", st)
	}
}

func TestE2EIntervalPollingOrchestrator(t *testing.T) {
	t.Parallel()
	// An older orchestrator: ignores wait, answers {"id": ...} at registration, sets intervals.
	o := startOrchestrator(t, orchestratortest.Options{IgnoreWait: true, LegacyRegisterID: true, PollIntervalSeconds: 0.05, HeartbeatIntervalSeconds: 0.2})
	startAgent(t, o, "", "AGENT_POLL_INTERVAL=1h", "AGENT_HEARTBEAT_INTERVAL=1h")
	var ids []string
	for i := range 20 {
		ids = append(ids, o.enqueue(t, "ECHO", `{"i":`+string(rune('0'+i%10))+`}`))
	}
	for _, id := range ids {
		if st := o.waitFinal(t, id); st.Status != "COMPLETED" {
			t.Fatalf("%s: %+v", id, st)
		}
	}
	eventually(t, "heartbeats at the orchestrator's interval", func() bool {
		ags := o.Agents()
		return len(ags) == 1 && ags[0].Heartbeats >= 3
	})
}

func TestE2EInvalidSettingsStopStartup(t *testing.T) {
	t.Parallel()
	cases := []struct {
		env     []string
		wantMsg string
	}{
		{[]string{"AGENT_TOKEN=secret-token-value"}, "ORCHESTRATOR_URL"},
		{[]string{"ORCHESTRATOR_URL=http://127.0.0.1:1"}, "AGENT_TOKEN"},
		{[]string{"ORCHESTRATOR_URL=ftp://x", "AGENT_TOKEN=secret-token-value"}, "ORCHESTRATOR_URL"},
		{[]string{"ORCHESTRATOR_URL=http://x", "AGENT_TOKEN=secret-token-value", "AGENT_MAX_CONCURRENT_TASKS=zero"}, "AGENT_MAX_CONCURRENT_TASKS"},
		{[]string{"ORCHESTRATOR_URL=http://x", "AGENT_TOKEN=secret-token-value", "AGENT_POLL_INTERVAL=5"}, "AGENT_POLL_INTERVAL"},
		{[]string{"ORCHESTRATOR_URL=http://x", "AGENT_TOKEN=secret-token-value", "AGENT_LOG_FORMAT=xml"}, "AGENT_LOG_FORMAT"},
	}
	for _, c := range cases {
		cmd := exec.Command(agentBinary)
		cmd.Env = append([]string{"PATH=" + os.Getenv("PATH")}, c.env...)
		out, err := cmd.CombinedOutput()
		if err == nil {
			t.Errorf("%v: started, want a refusal", c.env)
			continue
		}
		lines := strings.Split(strings.TrimSpace(string(out)), "\n")
		if len(lines) != 1 || !strings.Contains(lines[0], c.wantMsg) {
			t.Errorf("%v: output %q, want one line naming %s", c.env, out, c.wantMsg)
		}
		if strings.Contains(string(out), "secret-token-value") {
			t.Errorf("%v: output echoes the token", c.env)
		}
	}
	// A flag wins over the environment.
	cmd := exec.Command(agentBinary, "--max-concurrent-tasks", "nope")
	cmd.Env = []string{"AGENT_MAX_CONCURRENT_TASKS=4", "ORCHESTRATOR_URL=http://x", "AGENT_TOKEN=t"}
	out, _ := cmd.CombinedOutput()
	if !strings.Contains(string(out), "--max-concurrent-tasks") {
		t.Errorf("flag precedence: %q", out)
	}
}

func TestE2EVersion(t *testing.T) {
	t.Parallel()
	out, err := exec.Command(agentBinary, "version").CombinedOutput()
	if err != nil || !strings.HasPrefix(string(out), "letsbe-agent ") || !strings.Contains(string(out), "go1.") {
		t.Fatalf("version: %v %q", err, out)
	}
}
