package main_test

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	coordinationv1 "k8s.io/api/coordination/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	"github.com/letsbe/sysadmin-agent/api/store/kube/kubetest"
	agentv1 "github.com/letsbe/sysadmin-agent/api/v1alpha1"
	"github.com/letsbe/sysadmin-agent/orchestratorsync/orchestratortest"
)

// Cluster mode end to end: the real binary with AGENT_STORE=kubernetes against a real API
// server (envtest) and the reference orchestrator. The agent authenticates as a user that has
// exactly the generated Role (config/rbac/role.yaml) in the test's namespace, so these tests
// also prove the RBAC sufficient.

// clusterLeaseEnv are lease timings short enough for a test, long enough for a loaded machine
// (a leader that cannot renew within the deadline stops).
var clusterLeaseEnv = []string{"AGENT_LEASE_DURATION=4s", "AGENT_LEASE_RENEW_DEADLINE=3s", "AGENT_LEASE_RETRY_PERIOD=500ms"}

// cluster is one test's namespace on the API server, with the agent's Role bound to a user
// whose kubeconfig the agents get.
type cluster struct {
	env        *kubetest.Env
	ns         string
	kubeconfig string
}

func newCluster(t *testing.T) *cluster {
	t.Helper()
	env := kubetest.Get(t)
	ns := env.Namespace(t)
	ctx := t.Context()

	b, err := os.ReadFile(filepath.Join("..", "..", "config", "rbac", "role.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var role rbacv1.Role
	if err := yaml.UnmarshalStrict(b, &role); err != nil {
		t.Fatalf("config/rbac/role.yaml: %v", err)
	}
	role.Namespace = ns
	if err := env.Client.Create(ctx, &role); err != nil {
		t.Fatal(err)
	}
	user := "letsbe-agent-" + ns
	binding := &rbacv1.RoleBinding{
		RoleRef:  rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: role.Name},
		Subjects: []rbacv1.Subject{{APIGroup: rbacv1.GroupName, Kind: rbacv1.UserKind, Name: user}},
	}
	binding.Name, binding.Namespace = role.Name, ns
	if err := env.Client.Create(ctx, binding); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "kubeconfig")
	if err := os.WriteFile(path, env.Kubeconfig(t, user), 0o600); err != nil {
		t.Fatal(err)
	}
	return &cluster{env: env, ns: ns, kubeconfig: path}
}

// startAgent runs the binary in cluster mode on c's namespace.
func (c *cluster) startAgent(t *testing.T, o *orchestrator, stateDir string, env ...string) *agentProc {
	t.Helper()
	base := append([]string{"AGENT_STORE=kubernetes", "AGENT_NAMESPACE=" + c.ns, "KUBECONFIG=" + c.kubeconfig}, clusterLeaseEnv...)
	return startAgent(t, o, stateDir, append(base, env...)...)
}

// task returns the Task object of the orchestrator's task id, read from the API server.
func (c *cluster) task(t *testing.T, id string) (*agentv1.Task, bool) {
	t.Helper()
	var list agentv1.TaskList
	if err := c.env.Client.List(t.Context(), &list, client.InNamespace(c.ns)); err != nil {
		t.Fatal(err)
	}
	for i := range list.Items {
		if list.Items[i].TaskID() == id {
			return &list.Items[i], true
		}
	}
	return nil, false
}

// lease returns the holder of the agent's Lease ("" when released or absent).
func (c *cluster) leaseHolder(t *testing.T) string {
	t.Helper()
	var lease coordinationv1.Lease
	if err := c.env.Client.Get(t.Context(), types.NamespacedName{Namespace: c.ns, Name: "letsbe-agent"}, &lease); err != nil {
		return ""
	}
	if lease.Spec.HolderIdentity == nil {
		return ""
	}
	return *lease.Spec.HolderIdentity
}

func (p *agentProc) leads() bool {
	return strings.Contains(p.Output(), `"msg":"Leading: taking over the tasks in the cluster`)
}

func (p *agentProc) registered() bool {
	return strings.Contains(p.Output(), `"msg":"Registered with the orchestrator"`)
}

// waitReady waits until /readyz answers 200, as a standby or as the leader.
func (p *agentProc) waitReady(t *testing.T, standby bool) {
	t.Helper()
	what := "ready as the leader"
	if standby {
		what = "ready as a standby"
	}
	eventually(t, what, func() bool {
		code, body := httpGet(t, "http://"+p.httpAddr()+"/readyz")
		var r struct {
			Standby bool `json:"standby"`
		}
		if err := json.Unmarshal([]byte(body), &r); err != nil {
			t.Fatalf("/readyz: %v (%q)", err, body)
		}
		return code == 200 && r.Standby == standby
	})
}

// report is what the orchestrator received as a task's final status, comparable across runs.
type report struct {
	Status, Error string
	Result        map[string]any
}

func finalReport(t *testing.T, o *orchestrator, id string) report {
	t.Helper()
	st := o.waitFinal(t, id)
	r := report{Status: st.Status, Error: st.Error}
	if len(st.Result) > 0 && string(st.Result) != "null" {
		if err := json.Unmarshal(st.Result, &r.Result); err != nil {
			t.Fatalf("%s: result %s: %v", id, st.Result, err)
		}
		delete(r.Result, "duration_ms") // the one field that differs from run to run
	}
	if st.Duplicates != 0 || st.FinalReports != 1 {
		t.Errorf("%s: %d accepted final reports and %d duplicates, want exactly one", id, st.FinalReports, st.Duplicates)
	}
	return r
}

// TestE2ECluster runs the cluster-mode scenarios on one API server, in parallel.
func TestE2ECluster(t *testing.T) {
	t.Parallel()
	kubetest.Get(t) // start it once for the subtests, or skip all of them loudly
	t.Run("SameReportsAsMemoryMode", testClusterSameReportsAsMemoryMode)
	t.Run("FailoverAndHandover", testClusterFailoverAndHandover)
}

// testClusterSameReportsAsMemoryMode runs the core scenarios against an agent in each mode: the
// orchestrator gets the same final reports; in cluster mode every task is a Task in the API
// server with the phase of its report; SIGTERM stops the agent cleanly and releases the Lease.
func testClusterSameReportsAsMemoryMode(t *testing.T) {
	t.Parallel()
	c := newCluster(t)
	cases := []struct{ name, typ, payload string }{
		{"echo", "ECHO", `{"message":"hello","nested":{"a":[1,2,3]}}`},
		{"echo-not-object", "ECHO", `"just a string"`},
		{"echo-null", "ECHO", ``},
		{"unknown-type", "FORMAT_DISK", `{}`},
		{"shell", "SHELL", `{"cmd":"echo hello cluster"}`},
		{"shell-refused", "SHELL", `{"cmd":"rm -rf /"}`},
		{"shell-injection", "SHELL", `{"cmd":"echo hi; reboot"}`},
		{"shell-bad-payload", "SHELL", `{"cmd":42}`},
		{"shell-exit", "SHELL", `{"cmd":"false"}`},
		{"shell-timeout", "SHELL", `{"cmd":"sleep 30","timeout_seconds":1}`},
		// Refused by AGENT_POLICY right before it would run (the reconcilers' Admit gate).
		{"shell-policy", "SHELL", `{"cmd":"echo goodbye cluster"}`},
	}
	policy := filepath.Join(t.TempDir(), "policy.yaml")
	if err := os.WriteFile(policy, []byte("shell:\n  commands: [echo hello *, false, sleep *]\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	run := func(o *orchestrator) (map[string]string, map[string]report) {
		ids := map[string]string{}
		for _, tc := range cases {
			ids[tc.name] = o.enqueue(t, tc.typ, tc.payload)
		}
		reports := map[string]report{}
		for _, tc := range cases {
			reports[tc.name] = finalReport(t, o, ids[tc.name])
		}
		return ids, reports
	}

	memOrch := startOrchestrator(t, orchestratortest.Options{IssueAgentTokens: true})
	mem := startAgent(t, memOrch, "", "AGENT_POLICY="+policy)
	o := startOrchestrator(t, orchestratortest.Options{IssueAgentTokens: true})
	a := c.startAgent(t, o, "", "AGENT_POLICY="+policy)

	type result struct {
		ids     map[string]string
		reports map[string]report
	}
	memDone := make(chan result, 1)
	go func() { ids, reports := run(memOrch); memDone <- result{ids, reports} }()
	ids, got := run(o)
	want := (<-memDone).reports
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("final reports, memory mode (-) and cluster mode (+):\n%s", diff)
	}
	if got["echo"].Status != "COMPLETED" || got["shell-exit"].Error != "exit status 1" || !strings.Contains(got["unknown-type"].Error, "unsupported task type") ||
		!strings.HasPrefix(got["shell-policy"].Error, "policy.shell: ") {
		t.Errorf("unexpected reports: %+v", got)
	}

	// Every task is a Task in the namespace, final, its report accepted.
	phases := map[string]agentv1.TaskPhase{"COMPLETED": agentv1.TaskSucceeded, "FAILED": agentv1.TaskFailed}
	for _, tc := range cases {
		id := ids[tc.name]
		eventually(t, "the report of "+id+" recorded in its Task", func() bool {
			task, ok := c.task(t, id)
			return ok && task.Status.Report.FinalReported
		})
		task, _ := c.task(t, id)
		if task.Status.Phase != phases[got[tc.name].Status] || task.Spec.Type != tc.typ || task.Status.Error != got[tc.name].Error {
			t.Errorf("%s: Task %s is %s %s %q, want %s %q", tc.name, task.Name, task.Spec.Type, task.Status.Phase, task.Status.Error, tc.typ, got[tc.name].Error)
		}
	}

	a.waitReady(t, false)
	if holder := c.leaseHolder(t); holder == "" {
		t.Error("no Lease holder while the agent runs")
	}
	for _, p := range []*agentProc{a, mem} {
		if code := p.stop(); code != 0 {
			t.Errorf("exit code after SIGTERM = %d, want 0", code)
		}
	}
	if holder := c.leaseHolder(t); holder != "" {
		t.Errorf("the Lease is still held by %q after SIGTERM, want it released", holder)
	}
	a.logLines() // every line JSON
	if out := a.Output(); strings.Contains(out, orchestratortest.DefaultEnrollmentToken) {
		t.Error("the enrollment token appears in the logs")
	}
}

// testClusterFailoverAndHandover runs two replicas sharing a state directory (pods of one k3s
// server): only the leader registers and works. kill -9 of the leader mid-task: after the
// Lease expires the standby takes over as the same agent, fails the interrupted task honestly,
// delivers a final report the leader could not send, and goes on working. Then a SIGTERM hands
// the Lease straight to a new standby.
func testClusterFailoverAndHandover(t *testing.T) {
	t.Parallel()
	c := newCluster(t)
	o, f := startFaultyOrchestrator(t, orchestratortest.Options{IssueAgentTokens: true}, orchestratortest.FaultOptions{})
	state := filepath.Join(t.TempDir(), "state")
	env := []string{"AGENT_BACKOFF_BASE=20ms"}
	a1 := c.startAgent(t, o, state, env...)
	a2 := c.startAgent(t, o, state, env...)

	eventually(t, "a leader", func() bool { return a1.leads() || a2.leads() })
	leader, standby := a1, a2
	if a2.leads() {
		leader, standby = a2, a1
	}
	eventually(t, "registration and heartbeats", func() bool {
		ags := o.Agents()
		return len(ags) == 1 && ags[0].Heartbeats >= 2
	})
	agentID := o.Agents()[0].ID
	standby.waitReady(t, true)
	leader.waitReady(t, false)
	out, err := exec.Command(agentBinary, "status", "--http-addr", standby.httpAddr()).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "State:      READY (standby: ") {
		t.Errorf("letsbe-agent status of the standby: %v\n%s", err, out)
	}
	if _, body := httpGet(t, "http://"+leader.httpAddr()+"/metrics"); !strings.Contains(body, `leader_election_master_status{name="letsbe-agent"} 1`) {
		t.Error("the leader's /metrics lack leader_election_master_status 1")
	}

	// Two tasks on the leader: one that will be interrupted, one that finishes while the
	// orchestrator is down.
	marker := fmt.Sprintf("%d", 1000+time.Now().UnixNano()%1000)
	interrupted := o.enqueue(t, "SHELL", `{"cmd":"sleep `+marker+`"}`)
	unreported := o.enqueue(t, "SHELL", `{"cmd":"sleep 3"}`)
	for _, id := range []string{interrupted, unreported} {
		eventually(t, "RUNNING of "+id, func() bool { st, _ := o.Task(id); return st.Status == orchestratortest.StatusRunning })
	}
	f.SetOutage(true)
	eventually(t, "the second task finished in the cluster", func() bool {
		task, ok := c.task(t, unreported)
		return ok && task.Status.Phase == agentv1.TaskSucceeded
	})
	if st, _ := o.Task(unreported); st.IsFinal() {
		t.Fatalf("%s reached the orchestrator during the outage: %+v", unreported, st)
	}
	if standby.registered() || standby.leads() {
		t.Fatal("the standby registered or leads while the leader lives")
	}
	if ags := o.Agents(); len(ags) != 1 || ags[0].Registrations != 1 {
		t.Fatalf("agents %+v, want one registered once (by the leader only)", ags)
	}
	leader.Kill()
	killed := time.Now()
	killStray(t, "sleep "+marker)
	f.SetOutage(false)

	st := o.waitFinal(t, interrupted)
	if st.Status != "FAILED" || st.Error != "interrupted: agent restarted during execution" {
		t.Fatalf("interrupted task: %s %q, want FAILED interrupted", st.Status, st.Error)
	}
	t.Logf("failover: the interrupted task's final report %v after kill -9 of the leader (lease %s)",
		time.Since(killed).Round(10*time.Millisecond), clusterLeaseEnv[0])
	if st := o.waitFinal(t, unreported); st.Status != "COMPLETED" {
		t.Fatalf("unreported task: %+v", st)
	}
	if !standby.leads() {
		t.Fatal("the standby did not take over")
	}
	checkExactlyOnce(t, o, []string{interrupted, unreported})
	if ags := o.Agents(); len(ags) != 1 || ags[0].ID != agentID || ags[0].Registrations != 2 {
		t.Fatalf("agents after failover %+v, want agent %s registered twice", ags, agentID)
	}
	task, _ := c.task(t, interrupted)
	if ready := meta.FindStatusCondition(task.Status.Conditions, agentv1.ConditionReady); task.Status.Phase != agentv1.TaskFailed ||
		ready == nil || ready.Reason != agentv1.ReasonInterrupted {
		t.Errorf("interrupted Task: %s %q %+v", task.Status.Phase, task.Status.Error, task.Status.Conditions)
	}
	after := o.enqueue(t, "ECHO", `{"after":"failover"}`)
	if st := finalReport(t, o, after); st.Status != "COMPLETED" {
		t.Fatalf("task after failover: %+v", st)
	}

	// Handover: a new standby (the restarted pod), then SIGTERM to the leader: it drains,
	// releases the Lease, and the standby leads at once rather than after the lease duration.
	a3 := c.startAgent(t, o, state, env...)
	a3.waitReady(t, true)
	termed := time.Now()
	standby.Term()
	eventually(t, "the new standby leads", a3.leads)
	led := time.Since(termed)
	if code := standby.stop(); code != 0 {
		t.Errorf("exit code of the leader after SIGTERM = %d, want 0", code)
	}
	t.Logf("handover: the new leader led %v after SIGTERM to the old one, which exited after %v",
		led.Round(10*time.Millisecond), time.Since(termed).Round(10*time.Millisecond))
	last := o.enqueue(t, "SHELL", `{"cmd":"echo handed over"}`)
	if st := finalReport(t, o, last); st.Status != "COMPLETED" || st.Result["stdout"] != "handed over\n" {
		t.Fatalf("task after handover: %+v", st)
	}
	if ags := o.Agents(); len(ags) != 1 || ags[0].ID != agentID || ags[0].Registrations != 3 {
		t.Fatalf("agents after handover %+v, want agent %s registered three times", ags, agentID)
	}
}
