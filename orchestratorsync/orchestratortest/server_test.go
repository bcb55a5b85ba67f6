package orchestratortest_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/letsbe/sysadmin-agent/internal/testpoll"
	"github.com/letsbe/sysadmin-agent/orchestratorsync/wire"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/letsbe/sysadmin-agent/orchestratorsync/orchestratortest"
)

type env struct {
	srv    *orchestratortest.Server
	url    string // base URL including the /api/v1 prefix
	client *wire.Client
}

// setup mounts a server under /api/v1, as a deployment with a path prefix would.
func setup(t *testing.T, opts orchestratortest.Options) *env {
	t.Helper()
	s := orchestratortest.New(opts)
	mux := http.NewServeMux()
	mux.Handle("/api/v1/", http.StripPrefix("/api/v1", s))
	hs := httptest.NewServer(mux)
	t.Cleanup(hs.Close)
	e := &env{srv: s, url: hs.URL + "/api/v1"}
	e.client = e.newClient(t, orchestratortest.DefaultEnrollmentToken)
	return e
}

func (e *env) newClient(t *testing.T, token string) *wire.Client {
	t.Helper()
	c, err := wire.NewClient(wire.Config{BaseURL: e.url, Token: token})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func register(t *testing.T, c *wire.Client, agentID string) *wire.RegisterResponse {
	t.Helper()
	resp, err := c.Register(t.Context(), wire.RegisterRequest{
		Hostname: "tenant-17", Version: "0.3.0", OS: "linux", Arch: "amd64",
		Capabilities: []string{"ECHO"}, Labels: map[string]string{"region": "eu-1"}, AgentID: agentID,
	})
	if err != nil {
		t.Fatalf("Register: %v", err)
	}
	return resp
}

func next(t *testing.T, c *wire.Client, agentID string) *wire.Task {
	t.Helper()
	task, err := c.NextTask(t.Context(), agentID, 0)
	if err != nil {
		t.Fatalf("NextTask: %v", err)
	}
	return task
}

var ignoreTimes = cmpopts.IgnoreFields(orchestratortest.TaskState{}, "CreatedAt", "AssignedAt", "RunningAt", "FinalAt")

func TestLifecycle(t *testing.T) {
	t.Parallel()
	e := setup(t, orchestratortest.Options{})
	ctx := t.Context()

	if _, err := e.newClient(t, "wrong").Register(ctx, wire.RegisterRequest{Hostname: "h"}); !wire.IsUnauthorized(err) {
		t.Fatalf("register with a wrong token: err = %v, want 401", err)
	}
	reg := register(t, e.client, "")
	if reg.AgentID != "a-1" || reg.Token != "" {
		t.Fatalf("register = %+v", reg)
	}
	hb, err := e.client.Heartbeat(ctx, reg.AgentID, wire.HeartbeatRequest{Version: "0.3.0", UptimeSeconds: 5})
	if err != nil || len(hb.CancelTaskIDs) != 0 {
		t.Fatalf("Heartbeat = %+v, %v", hb, err)
	}

	id := e.srv.Enqueue("ECHO", json.RawMessage(`{"message":"hello"}`), 30)
	task := next(t, e.client, reg.AgentID)
	if task == nil || task.ID != id || task.Type != "ECHO" || string(task.Payload) != `{"message":"hello"}` ||
		task.TimeoutSeconds != 30 || task.CreatedAt.IsZero() {
		t.Fatalf("NextTask = %+v", task)
	}
	started := time.Date(2026, 11, 26, 10, 0, 1, 0, time.UTC)
	finished := started.Add(time.Second)
	if err := e.client.Report(ctx, id, wire.Report{AgentID: reg.AgentID, Status: wire.StatusRunning, StartedAt: &started}); err != nil {
		t.Fatalf("Report RUNNING: %v", err)
	}
	final := wire.Report{
		AgentID: reg.AgentID, Status: wire.StatusCompleted, Result: json.RawMessage(`{"message":"hello"}`),
		StartedAt: &started, FinishedAt: &finished, Events: []wire.Event{{Time: started, Type: "Started"}},
	}
	if err := e.client.Report(ctx, id, final); err != nil {
		t.Fatalf("Report COMPLETED: %v", err)
	}
	got, err := e.srv.WaitTask(ctx, id, orchestratortest.TaskState.IsFinal)
	if err != nil {
		t.Fatal(err)
	}
	want := orchestratortest.TaskState{
		ID: id, Type: "ECHO", Payload: json.RawMessage(`{"message":"hello"}`), TimeoutSeconds: 30,
		Status: "COMPLETED", AgentID: "a-1", Result: json.RawMessage(`{"message":"hello"}`),
		StartedAt: &started, FinishedAt: &finished, Events: []orchestratortest.Event{{Time: started, Type: "Started"}},
		Acknowledged: true, Offers: 1, Reports: 2, RunningReports: 1, FinalReports: 1,
	}
	if diff := cmp.Diff(want, got, ignoreTimes); diff != "" {
		t.Errorf("task state (-want +got):\n%s", diff)
	}
	if got.AssignedAt.IsZero() || got.RunningAt.IsZero() || got.FinalAt.IsZero() {
		t.Errorf("missing timestamps: %+v", got)
	}

	agents := e.srv.Agents()
	wantAgents := []orchestratortest.AgentState{{
		ID: "a-1", Hostname: "tenant-17", Version: "0.3.0", OS: "linux", Arch: "amd64",
		Capabilities: []string{"ECHO"}, Labels: map[string]string{"region": "eu-1"},
		Registrations: 1, Heartbeats: 1, LastStatus: "ONLINE", Boots: 1,
		LastHeartbeatBody: orchestratortest.HeartbeatBody{Status: "ONLINE", Version: "0.3.0", UptimeSeconds: 5, RunningTaskIDs: []string{}, Stacks: []orchestratortest.HeartbeatStack{}},
	}}
	if diff := cmp.Diff(wantAgents, agents, cmpopts.IgnoreFields(orchestratortest.AgentState{}, "LastHeartbeat", "BootID")); diff != "" {
		t.Errorf("agents (-want +got):\n%s", diff)
	}
	wantStats := orchestratortest.Stats{Register: 2, Heartbeat: 1, NextTask: 1, Report: 2, TasksAssigned: 1, FinalReports: 1, Unauthorized: 1}
	if diff := cmp.Diff(wantStats, e.srv.Stats()); diff != "" {
		t.Errorf("stats (-want +got):\n%s", diff)
	}
}

func TestRegisterVariants(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		opts    orchestratortest.Options
		agentID string
		want    wire.RegisterResponse
	}{
		{name: "new id", want: wire.RegisterResponse{AgentID: "a-1"}},
		{name: "unknown sent id is confirmed", agentID: "a-7f3c", want: wire.RegisterResponse{AgentID: "a-7f3c"}},
		{name: "legacy id field", opts: orchestratortest.Options{LegacyRegisterID: true}, want: wire.RegisterResponse{AgentID: "a-1"}},
		{
			name: "intervals",
			opts: orchestratortest.Options{HeartbeatIntervalSeconds: 30, PollIntervalSeconds: 0.5},
			want: wire.RegisterResponse{AgentID: "a-1", HeartbeatIntervalSeconds: 30, PollIntervalSeconds: 0.5},
		},
		{
			name: "custom enrollment token",
			opts: orchestratortest.Options{EnrollmentToken: "enroll-me"},
			want: wire.RegisterResponse{AgentID: "a-1"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := setup(t, tc.opts)
			c := e.client
			if tc.opts.EnrollmentToken != "" {
				c = e.newClient(t, tc.opts.EnrollmentToken)
			}
			got := register(t, c, tc.agentID)
			if diff := cmp.Diff(&tc.want, got); diff != "" {
				t.Errorf("register (-want +got):\n%s", diff)
			}
		})
	}
}

func TestReRegisterConfirmsKnownID(t *testing.T) {
	t.Parallel()
	e := setup(t, orchestratortest.Options{})
	first := register(t, e.client, "")
	second := register(t, e.client, "") // no id sent: a new agent
	again := register(t, e.client, first.AgentID)
	if first.AgentID == second.AgentID || again.AgentID != first.AgentID {
		t.Fatalf("ids: first %s, second %s, again %s", first.AgentID, second.AgentID, again.AgentID)
	}
	agents := e.srv.Agents()
	if len(agents) != 2 || agents[0].Registrations != 2 || agents[1].Registrations != 1 {
		t.Errorf("agents = %+v", agents)
	}
}

func TestAgentTokensAndRevocation(t *testing.T) {
	t.Parallel()
	e := setup(t, orchestratortest.Options{IssueAgentTokens: true})
	ctx := t.Context()
	reg := register(t, e.client, "")
	if reg.Token == "" {
		t.Fatal("no per-agent token issued")
	}
	e.srv.Enqueue("ECHO", json.RawMessage(`{}`), 0)

	// The enrollment token is not enough once per-agent tokens are issued.
	if _, err := e.client.Heartbeat(ctx, reg.AgentID, wire.HeartbeatRequest{}); !wire.IsUnauthorized(err) {
		t.Fatalf("heartbeat with enrollment token: err = %v, want 401", err)
	}
	agentClient := e.newClient(t, reg.Token)
	if _, err := agentClient.Heartbeat(ctx, reg.AgentID, wire.HeartbeatRequest{}); err != nil {
		t.Fatalf("heartbeat with agent token: %v", err)
	}
	// Another agent's token does not work for this agent.
	other := register(t, e.client, "")
	if _, err := e.newClient(t, other.Token).NextTask(ctx, reg.AgentID, 0); !wire.IsUnauthorized(err) {
		t.Fatalf("next with another agent's token: err = %v, want 401", err)
	}
	task := next(t, agentClient, reg.AgentID)
	if task == nil {
		t.Fatal("no task")
	}

	e.srv.RevokeTokens()
	for name, call := range map[string]func() error{
		"heartbeat": func() error {
			_, err := agentClient.Heartbeat(ctx, reg.AgentID, wire.HeartbeatRequest{})
			return err
		},
		"next": func() error { _, err := agentClient.NextTask(ctx, reg.AgentID, 0); return err },
		"report": func() error {
			return agentClient.Report(ctx, task.ID, wire.Report{AgentID: reg.AgentID, Status: wire.StatusCompleted})
		},
	} {
		if err := call(); !wire.IsUnauthorized(err) || wire.IsRetryable(err) {
			t.Errorf("%s after revocation: err = %v, want non-retryable 401", name, err)
		}
	}

	// Re-register with the enrollment token, sending the known id: confirmed, new token.
	again := register(t, e.client, reg.AgentID)
	if again.AgentID != reg.AgentID || again.Token == "" || again.Token == reg.Token {
		t.Fatalf("re-register = %+v (old token %q)", again, reg.Token)
	}
	agentClient = mustWithToken(t, agentClient, again.Token)
	if err := agentClient.Report(ctx, task.ID, wire.Report{AgentID: reg.AgentID, Status: wire.StatusCompleted}); err != nil {
		t.Fatalf("report with the new token: %v", err)
	}
	// Revocation hit every agent; and re-registering rotates the token once more.
	if _, err := e.newClient(t, other.Token).Heartbeat(ctx, other.AgentID, wire.HeartbeatRequest{}); !wire.IsUnauthorized(err) {
		t.Errorf("revoked token of the other agent: err = %v, want 401", err)
	}
	rotated := register(t, e.client, reg.AgentID)
	if _, err := agentClient.Heartbeat(ctx, reg.AgentID, wire.HeartbeatRequest{}); !wire.IsUnauthorized(err) {
		t.Errorf("token replaced by a new registration: err = %v, want 401", err)
	}
	agentClient = mustWithToken(t, agentClient, rotated.Token)
	if _, err := agentClient.Heartbeat(ctx, reg.AgentID, wire.HeartbeatRequest{}); err != nil {
		t.Errorf("heartbeat with the rotated token: %v", err)
	}
}

func TestUnknownAndForgottenAgents(t *testing.T) {
	t.Parallel()
	e := setup(t, orchestratortest.Options{})
	ctx := t.Context()
	if _, err := e.client.Heartbeat(ctx, "a-404", wire.HeartbeatRequest{}); !wire.IsNotFound(err) {
		t.Fatalf("heartbeat of unknown agent: err = %v, want 404", err)
	}
	reg := register(t, e.client, "")
	id := e.srv.Enqueue("ECHO", nil, 0)
	task := next(t, e.client, reg.AgentID)

	e.srv.ForgetAgents()
	if _, err := e.client.Heartbeat(ctx, reg.AgentID, wire.HeartbeatRequest{}); !wire.IsNotFound(err) {
		t.Fatalf("heartbeat after ForgetAgents: err = %v, want 404", err)
	}
	if _, err := e.client.NextTask(ctx, reg.AgentID, 0); !wire.IsNotFound(err) {
		t.Fatalf("next after ForgetAgents: err = %v, want 404", err)
	}
	// A forgotten agent still owns its task and may report it.
	if err := e.client.Report(ctx, task.ID, wire.Report{AgentID: reg.AgentID, Status: wire.StatusFailed, Error: "x"}); err != nil {
		t.Fatalf("report after ForgetAgents: %v", err)
	}
	register(t, e.client, reg.AgentID)
	if _, err := e.client.Heartbeat(ctx, reg.AgentID, wire.HeartbeatRequest{}); err != nil {
		t.Fatalf("heartbeat after re-register: %v", err)
	}
	if st, _ := e.srv.Task(id); st.Status != "FAILED" || string(st.Payload) != "null" {
		t.Errorf("task = %+v", st)
	}
	if got := e.srv.Stats().NotFound; got != 3 {
		t.Errorf("Stats.NotFound = %d, want 3", got)
	}
}

func TestNextIsFIFOAndEmptyIs204(t *testing.T) {
	t.Parallel()
	e := setup(t, orchestratortest.Options{})
	a := register(t, e.client, "").AgentID
	b := register(t, e.client, "").AgentID
	var ids []string
	for i := range 4 {
		ids = append(ids, e.srv.Enqueue("ECHO", json.RawMessage(fmt.Sprintf(`{"n":%d}`, i)), 0))
	}
	var got []string
	for _, agent := range []string{a, b, b, a} {
		got = append(got, next(t, e.client, agent).ID)
	}
	if diff := cmp.Diff(ids, got); diff != "" {
		t.Errorf("order (-want +got):\n%s", diff)
	}
	if task := next(t, e.client, a); task != nil {
		t.Errorf("NextTask on empty queue = %+v, want nil", task)
	}
	for i, id := range ids {
		st, _ := e.srv.Task(id)
		wantAgent := []string{a, b, b, a}[i]
		if st.Status != "ASSIGNED" || st.AgentID != wantAgent {
			t.Errorf("task %s: status %s agent %s, want ASSIGNED to %s", id, st.Status, st.AgentID, wantAgent)
		}
	}
}

// waitForWaiting blocks until n long polls are parked in the server.
func waitForWaiting(t *testing.T, s *orchestratortest.Server, n int) {
	t.Helper()
	testpoll.UntilNil(t, 10*time.Second, fmt.Sprintf("%d long polls waiting", n), func() error {
		if got := s.Stats().LongPollsWaiting; got != n {
			return fmt.Errorf("LongPollsWaiting = %d", got)
		}
		return nil
	})
}

func TestLongPollWakesOnEnqueue(t *testing.T) {
	t.Parallel()
	e := setup(t, orchestratortest.Options{})
	agent := register(t, e.client, "").AgentID
	type result struct {
		task *wire.Task
		err  error
	}
	done := make(chan result, 1)
	go func() {
		task, err := e.client.NextTask(t.Context(), agent, 60*time.Second)
		done <- result{task, err}
	}()
	waitForWaiting(t, e.srv, 1)
	id := e.srv.Enqueue("ECHO", json.RawMessage(`{}`), 0)
	r := <-done
	if r.err != nil || r.task == nil || r.task.ID != id {
		t.Fatalf("long poll = %+v, %v; want task %s", r.task, r.err, id)
	}
	waitForWaiting(t, e.srv, 0)
}

func TestLongPollExpiresWith204(t *testing.T) {
	t.Parallel()
	e := setup(t, orchestratortest.Options{})
	agent := register(t, e.client, "").AgentID
	task, err := e.client.NextTask(t.Context(), agent, time.Second)
	if task != nil || err != nil {
		t.Fatalf("NextTask = %+v, %v; want nil, nil", task, err)
	}
}

func TestLongPollEndsWithRequestContext(t *testing.T) {
	t.Parallel()
	e := setup(t, orchestratortest.Options{})
	a := register(t, e.client, "").AgentID
	b := register(t, e.client, "").AgentID
	ctx, cancel := context.WithCancel(t.Context())
	errc := make(chan error, 1)
	go func() {
		_, err := e.client.NextTask(ctx, a, 60*time.Second)
		errc <- err
	}()
	waitForWaiting(t, e.srv, 1)
	cancel()
	if err := <-errc; !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled long poll: err = %v", err)
	}
	waitForWaiting(t, e.srv, 0)

	// The abandoned poll took nothing: another agent gets the next task.
	id := e.srv.Enqueue("ECHO", json.RawMessage(`{}`), 0)
	if st, _ := e.srv.Task(id); st.Status != "PENDING" {
		t.Fatalf("task status = %s, want PENDING", st.Status)
	}
	if task := next(t, e.client, b); task == nil || task.ID != id {
		t.Fatalf("NextTask = %+v", task)
	}
}

func TestManyLongPollsAllWoken(t *testing.T) {
	t.Parallel()
	e := setup(t, orchestratortest.Options{})
	const n = 8
	agents := make([]string, n)
	for i := range agents {
		agents[i] = register(t, e.client, "").AgentID
	}
	var wg sync.WaitGroup
	got := make(chan string, n)
	for _, a := range agents {
		wg.Go(func() {
			task, err := e.client.NextTask(t.Context(), a, 60*time.Second)
			if err != nil || task == nil {
				t.Errorf("NextTask(%s) = %+v, %v", a, task, err)
				return
			}
			got <- task.ID
		})
	}
	waitForWaiting(t, e.srv, n)
	for range n {
		e.srv.Enqueue("ECHO", json.RawMessage(`{}`), 0)
	}
	wg.Wait()
	close(got)
	seen := map[string]bool{}
	for id := range got {
		if seen[id] {
			t.Errorf("task %s handed out twice", id)
		}
		seen[id] = true
	}
	if len(seen) != n {
		t.Errorf("%d distinct tasks delivered, want %d", len(seen), n)
	}
}

func TestIgnoreWaitAnswersAtOnce(t *testing.T) {
	t.Parallel()
	e := setup(t, orchestratortest.Options{IgnoreWait: true})
	agent := register(t, e.client, "").AgentID
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	task, err := e.client.NextTask(ctx, agent, 60*time.Second)
	if task != nil || err != nil {
		t.Fatalf("NextTask = %+v, %v; want an immediate nil, nil", task, err)
	}
	if w := e.srv.Stats().LongPollsWaiting; w != 0 {
		t.Errorf("LongPollsWaiting = %d", w)
	}
}

func TestReportRules(t *testing.T) {
	t.Parallel()
	e := setup(t, orchestratortest.Options{})
	ctx := t.Context()
	owner := register(t, e.client, "").AgentID
	stranger := register(t, e.client, "").AgentID
	assigned := e.srv.Enqueue("ECHO", json.RawMessage(`{}`), 0)
	next(t, e.client, owner)
	stillPending := e.srv.Enqueue("ECHO", json.RawMessage(`{}`), 0)
	done := wire.Report{AgentID: owner, Status: wire.StatusCompleted, Result: json.RawMessage(`{"a":1,"b":[true,null]}`)}

	steps := []struct {
		name   string
		taskID string
		report wire.Report
		check  func(error) bool
	}{
		{"unknown task", "t-404", done, wire.IsNotFound},
		{"task not yet assigned", stillPending, done, wire.IsConflict},
		{"another agent", assigned, wire.Report{AgentID: stranger, Status: wire.StatusRunning}, wire.IsConflict},
		{"running", assigned, wire.Report{AgentID: owner, Status: wire.StatusRunning}, isNil},
		{"running again is fine", assigned, wire.Report{AgentID: owner, Status: wire.StatusRunning}, isNil},
		{"final", assigned, done, isNil},
		{"identical final is a no-op", assigned, done, isNil},
		{"same result with other key order and spacing", assigned,
			wire.Report{AgentID: owner, Status: wire.StatusCompleted, Result: json.RawMessage(`{ "b": [true, null], "a": 1 }`)}, isNil},
		{"different result", assigned, wire.Report{AgentID: owner, Status: wire.StatusCompleted, Result: json.RawMessage(`{"a":2}`)}, wire.IsConflict},
		{"different status", assigned, wire.Report{AgentID: owner, Status: wire.StatusFailed, Error: "boom"}, wire.IsConflict},
		{"running after final", assigned, wire.Report{AgentID: owner, Status: wire.StatusRunning}, wire.IsConflict},
	}
	for _, s := range steps {
		err := e.client.Report(ctx, s.taskID, s.report)
		if !s.check(err) {
			t.Errorf("%s: err = %v", s.name, err)
		}
		if err != nil && wire.IsRetryable(err) {
			t.Errorf("%s: %v is retryable", s.name, err)
		}
	}
	st, _ := e.srv.Task(assigned)
	want := orchestratortest.TaskState{
		ID: assigned, Type: "ECHO", Payload: json.RawMessage(`{}`), Status: "COMPLETED", AgentID: owner,
		Result: done.Result, Acknowledged: true, Offers: 1, Reports: 5, RunningReports: 2, FinalReports: 1,
		Duplicates: 2, DifferingDuplicates: 1, // the re-spaced one
	}
	if diff := cmp.Diff(want, st, ignoreTimes); diff != "" {
		t.Errorf("task (-want +got):\n%s", diff)
	}
	stats := e.srv.Stats()
	if stats.FinalReports != 1 || stats.DuplicateFinals != 2 || stats.Conflicts != 5 || stats.NotFound != 1 {
		t.Errorf("stats = %+v", stats)
	}
}

func isNil(err error) bool { return err == nil }

func TestCancel(t *testing.T) {
	t.Parallel()
	e := setup(t, orchestratortest.Options{})
	ctx := t.Context()
	agent := register(t, e.client, "").AgentID
	running := e.srv.Enqueue("SHELL", json.RawMessage(`{"cmd":"sleep 100"}`), 0)
	finished := e.srv.Enqueue("ECHO", json.RawMessage(`{}`), 0)
	queued := e.srv.Enqueue("ECHO", json.RawMessage(`{}`), 0)
	next(t, e.client, agent)
	next(t, e.client, agent)
	if err := e.client.Report(ctx, finished, wire.Report{AgentID: agent, Status: wire.StatusCompleted}); err != nil {
		t.Fatal(err)
	}

	e.srv.Cancel(running)
	e.srv.Cancel(running) // twice is still once
	e.srv.Cancel(finished)
	e.srv.Cancel(queued)
	e.srv.Cancel("t-404")

	hb := func() []string {
		t.Helper()
		r, err := e.client.Heartbeat(ctx, agent, wire.HeartbeatRequest{RunningTaskIDs: []string{running}})
		if err != nil {
			t.Fatal(err)
		}
		return r.CancelTaskIDs
	}
	if diff := cmp.Diff([]string{running}, hb()); diff != "" {
		t.Errorf("first heartbeat cancel ids (-want +got):\n%s", diff)
	}
	if got := hb(); len(got) != 0 {
		t.Errorf("second heartbeat cancel ids = %q, want none", got)
	}
	if st, _ := e.srv.Task(queued); st.Status != "FAILED" || st.Error != "cancelled" || st.AgentID != "" {
		t.Errorf("cancelled pending task = %+v", st)
	}
	if task := next(t, e.client, agent); task != nil {
		t.Errorf("cancelled pending task handed out: %+v", task)
	}
	if err := e.client.Report(ctx, running, wire.Report{AgentID: agent, Status: wire.StatusFailed, Error: "cancelled"}); err != nil {
		t.Fatal(err)
	}
}

func TestWaitTask(t *testing.T) {
	t.Parallel()
	e := setup(t, orchestratortest.Options{})
	if _, err := e.srv.WaitTask(t.Context(), "t-404", orchestratortest.TaskState.IsFinal); err == nil {
		t.Error("WaitTask of an unknown task: no error")
	}
	id := e.srv.Enqueue("ECHO", nil, 0)
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if _, err := e.srv.WaitTask(ctx, id, orchestratortest.TaskState.IsFinal); !errors.Is(err, context.Canceled) {
		t.Errorf("WaitTask with cancelled ctx: err = %v", err)
	}
	agent := register(t, e.client, "").AgentID
	assigned := make(chan orchestratortest.TaskState, 1)
	go func() {
		st, err := e.srv.WaitTask(t.Context(), id, func(s orchestratortest.TaskState) bool { return s.Status == "ASSIGNED" })
		if err != nil {
			t.Error(err)
		}
		assigned <- st
	}()
	next(t, e.client, agent)
	if st := <-assigned; st.AgentID != agent {
		t.Errorf("WaitTask = %+v", st)
	}
}

func TestManyAgentsEachTaskOnce(t *testing.T) {
	t.Parallel()
	e := setup(t, orchestratortest.Options{IssueAgentTokens: true})
	const agents, tasks = 16, 300
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	var completed atomic.Int64
	var wg sync.WaitGroup
	for range agents {
		reg := register(t, e.client, "")
		c := e.newClient(t, reg.Token)
		wg.Go(func() {
			for ctx.Err() == nil {
				task, err := c.NextTask(ctx, reg.AgentID, 5*time.Second)
				if err != nil || task == nil {
					continue // cancelled at the end, or a quiet poll
				}
				r := wire.Report{AgentID: reg.AgentID, Status: wire.StatusCompleted, Result: task.Payload}
				if err := c.Report(ctx, task.ID, r); err != nil {
					t.Errorf("Report %s: %v", task.ID, err)
				}
				if completed.Add(1) == tasks {
					cancel()
				}
			}
		})
	}
	for i := range tasks {
		e.srv.Enqueue("ECHO", json.RawMessage(fmt.Sprintf(`{"i":%d}`, i)), 0)
	}
	wg.Wait()
	for _, st := range e.srv.Tasks() {
		if st.Status != "COMPLETED" || st.FinalReports != 1 || string(st.Result) != string(st.Payload) {
			t.Errorf("task %+v", st)
		}
	}
	if s := e.srv.Stats(); s.TasksAssigned != tasks || s.FinalReports != tasks || s.Conflicts != 0 {
		t.Errorf("stats = %+v", s)
	}
}

func TestStrictRequests(t *testing.T) {
	t.Parallel()
	e := setup(t, orchestratortest.Options{})
	agent := register(t, e.client, "").AgentID
	auth := "Bearer " + orchestratortest.DefaultEnrollmentToken
	tests := []struct {
		name, method, path, contentType, body string
		want                                  int
	}{
		{"heartbeat bad status", "POST", "/agents/" + agent + "/heartbeat", "application/json", `{"status":"ASLEEP"}`, 400},
		{"heartbeat wrong content type", "POST", "/agents/" + agent + "/heartbeat", "text/plain", `{"status":"ONLINE"}`, 415},
		{"heartbeat malformed", "POST", "/agents/" + agent + "/heartbeat", "application/json", `{"status":`, 400},
		{"heartbeat too large", "POST", "/agents/" + agent + "/heartbeat", "application/json", `{"status":"` + strings.Repeat("x", 1<<20) + `"}`, 413},
		{"register without hostname", "POST", "/agents/register", "application/json", `{}`, 400},
		{"next without agent", "GET", "/tasks/next", "", "", 400},
		{"next wait too long", "GET", "/tasks/next?agent_id=" + agent + "&wait=61", "", "", 400},
		{"next wait zero", "GET", "/tasks/next?agent_id=" + agent + "&wait=0", "", "", 400},
		{"next wait ok", "GET", "/tasks/next?agent_id=" + agent + "&wait=1", "", "", 204},
		{"report bad status", "PATCH", "/tasks/t-1", "application/json", `{"agent_id":"` + agent + `","status":"DONE"}`, 400},
		{"report no agent", "PATCH", "/tasks/t-1", "application/json", `{"status":"COMPLETED"}`, 400},
		{"wrong method", "DELETE", "/tasks/t-1", "", "", 405},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			req, err := http.NewRequestWithContext(t.Context(), tc.method, e.url+tc.path, strings.NewReader(tc.body))
			if err != nil {
				t.Fatal(err)
			}
			req.Header.Set("Authorization", auth)
			if tc.contentType != "" {
				req.Header.Set("Content-Type", tc.contentType)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			_, _ = io.Copy(io.Discard, resp.Body)
			if resp.StatusCode != tc.want {
				t.Errorf("status = %d, want %d", resp.StatusCode, tc.want)
			}
		})
	}
}

func TestDevEndpoints(t *testing.T) {
	t.Parallel()
	e := setup(t, orchestratortest.Options{})
	ctx := t.Context()
	do := func(method, path, body string) (int, string) {
		t.Helper()
		req, err := http.NewRequestWithContext(ctx, method, e.url+path, strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	code, body := do("POST", "/dev/tasks", `{"type":"ECHO","payload":{"message":"hi"},"timeout_seconds":9}`)
	if code != 201 || body != `{"id":"t-1"}` {
		t.Fatalf("POST /dev/tasks = %d %s", code, body)
	}
	if code, _ := do("POST", "/dev/tasks", `{"payload":{}}`); code != 400 {
		t.Errorf("POST /dev/tasks without type = %d, want 400", code)
	}
	code, body = do("GET", "/dev/tasks/t-1", "")
	if code != 200 {
		t.Fatalf("GET /dev/tasks/t-1 = %d %s", code, body)
	}
	var got map[string]any
	if err := json.Unmarshal([]byte(body), &got); err != nil {
		t.Fatal(err)
	}
	delete(got, "created_at")
	want := map[string]any{
		"id": "t-1", "type": "ECHO", "payload": map[string]any{"message": "hi"}, "timeout_seconds": 9.0,
		"status": "PENDING", "reports": 0.0, "final_reports": 0.0, "duplicates": 0.0,
		"acknowledged": false, "offers": 0.0, "requeues": 0.0, "running_reports": 0.0, "differing_duplicates": 0.0,
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("GET /dev/tasks/t-1 (-want +got):\n%s", diff)
	}
	if code, _ := do("GET", "/dev/tasks/t-9", ""); code != 404 {
		t.Errorf("GET unknown = %d, want 404", code)
	}
	code, body = do("GET", "/dev/tasks", "")
	var list []orchestratortest.TaskState
	if err := json.Unmarshal([]byte(body), &list); code != 200 || err != nil || len(list) != 1 || list[0].ID != "t-1" {
		t.Errorf("GET /dev/tasks = %d %s (%v)", code, body, err)
	}
	if s := e.srv.Stats(); s.Dev != 5 {
		t.Errorf("Stats.Dev = %d, want 5", s.Dev)
	}
}

func TestEnqueueOddPayloads(t *testing.T) {
	t.Parallel()
	e := setup(t, orchestratortest.Options{})
	agent := register(t, e.client, "").AgentID
	e.srv.Enqueue("ECHO", json.RawMessage(`not json`), -5)
	task := next(t, e.client, agent)
	if string(task.Payload) != `"not json"` || task.TimeoutSeconds != 0 {
		t.Errorf("task = %+v", task)
	}
}

func TestStateCopiesAreIndependent(t *testing.T) {
	t.Parallel()
	e := setup(t, orchestratortest.Options{})
	id := e.srv.Enqueue("ECHO", json.RawMessage(`{"a":1}`), 0)
	st, _ := e.srv.Task(id)
	st.Payload[2] = 'X'
	again, _ := e.srv.Task(id)
	if string(again.Payload) != `{"a":1}` {
		t.Errorf("mutating a copy changed the server: %s", again.Payload)
	}
}

// A heartbeat for an agent the server does not know tells a valid enrollment token (404:
// unknown agent) from a refused one (401), in both token modes: letsbe-agent doctor's probe.
func TestHeartbeatOfUnknownAgentTellsTokenAccepted(t *testing.T) {
	t.Parallel()
	for _, issue := range []bool{false, true} {
		t.Run(fmt.Sprintf("IssueAgentTokens=%v", issue), func(t *testing.T) {
			t.Parallel()
			e := setup(t, orchestratortest.Options{IssueAgentTokens: issue})
			_, err := e.client.Heartbeat(t.Context(), "doctor-probe", wire.HeartbeatRequest{})
			if !wire.IsNotFound(err) {
				t.Errorf("enrollment token: err = %v, want 404", err)
			}
			_, err = e.newClient(t, "wrong").Heartbeat(t.Context(), "doctor-probe", wire.HeartbeatRequest{})
			if !wire.IsUnauthorized(err) {
				t.Errorf("wrong token: err = %v, want 401", err)
			}
			if agents := e.srv.Agents(); len(agents) != 0 {
				t.Errorf("the probe registered an agent: %+v", agents)
			}
		})
	}
}

// mustWithToken returns c with token instead of its own.
func mustWithToken(t *testing.T, c *wire.Client, token string) *wire.Client {
	t.Helper()
	c, err := c.WithToken(token)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestHeartbeatStacks: the reference decodes a heartbeat's stacks (v1.1) with its own types and
// holds them to the contract: absent is a v1.0 agent, null or a null degraded_services is
// refused.
func TestHeartbeatStacks(t *testing.T) {
	t.Parallel()
	e := setup(t, orchestratortest.Options{})
	reg := register(t, e.client, "")
	_, err := e.client.Heartbeat(t.Context(), reg.AgentID, wire.HeartbeatRequest{Status: wire.StatusOnline, Stacks: []wire.StackReport{
		{Project: "app", Revision: 4, Available: true},
		{Project: "shop", Revision: 2, DegradedServices: []string{"db", "web"}},
	}})
	if err != nil {
		t.Fatal(err)
	}
	want := []orchestratortest.HeartbeatStack{
		{Project: "app", Revision: 4, Available: true, DegradedServices: []string{}},
		{Project: "shop", Revision: 2, DegradedServices: []string{"db", "web"}},
	}
	if diff := cmp.Diff(want, e.srv.Agents()[0].LastHeartbeatBody.Stacks); diff != "" {
		t.Errorf("stacks (-want +got):\n%s", diff)
	}
	tests := []struct {
		name, body string
		code       int
	}{
		{"v1.0 agent", `{"status":"ONLINE"}`, http.StatusOK},
		{"empty", `{"status":"ONLINE","stacks":[]}`, http.StatusOK},
		{"null stacks", `{"status":"ONLINE","stacks":null}`, http.StatusBadRequest},
		{"null degraded", `{"status":"ONLINE","stacks":[{"project":"a","revision":1,"available":true,"degraded_services":null}]}`, http.StatusBadRequest},
		{"no degraded", `{"status":"ONLINE","stacks":[{"project":"a","revision":1,"available":true}]}`, http.StatusBadRequest},
		{"no project", `{"status":"ONLINE","stacks":[{"revision":1,"available":true,"degraded_services":[]}]}`, http.StatusBadRequest},
	}
	for _, tc := range tests {
		req, _ := http.NewRequestWithContext(t.Context(), http.MethodPost, e.url+"/agents/"+reg.AgentID+"/heartbeat", strings.NewReader(tc.body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", "Bearer "+orchestratortest.DefaultEnrollmentToken)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		_ = resp.Body.Close()
		if resp.StatusCode != tc.code {
			t.Errorf("%s: status %d, want %d", tc.name, resp.StatusCode, tc.code)
		}
	}
}
