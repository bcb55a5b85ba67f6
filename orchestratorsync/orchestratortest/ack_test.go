package orchestratortest_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/letsbe/sysadmin-agent/internal/agenttest"
	"github.com/letsbe/sysadmin-agent/orchestratorsync/orchestratortest"
)

// rawNext polls GET /tasks/next by hand (the agent's client does not choose boot ids).
func rawNext(ctx context.Context, e *env, agentID, bootID string, wait int) (int, string, error) {
	q := url.Values{"agent_id": {agentID}}
	if bootID != "" {
		q.Set("boot_id", bootID)
	}
	if wait > 0 {
		q.Set("wait", strconv.Itoa(wait))
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, e.url+"/tasks/next?"+q.Encode(), nil)
	if err != nil {
		return 0, "", err
	}
	req.Header.Set("Authorization", "Bearer "+orchestratortest.DefaultEnrollmentToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), err
}

func rawReport(t *testing.T, e *env, taskID, body string) int {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPatch, e.url+"/tasks/"+taskID, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+orchestratortest.DefaultEnrollmentToken)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

func TestRegisterAnnouncesTheAckTimeout(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		ack  time.Duration
		want string
	}{
		{0, `"ack_timeout_seconds":30`},
		{1500 * time.Millisecond, `"ack_timeout_seconds":1.5`},
	} {
		e := setup(t, orchestratortest.Options{AckTimeout: tc.ack})
		req, _ := http.NewRequestWithContext(t.Context(), http.MethodPost, e.url+"/agents/register", strings.NewReader(`{"hostname":"h"}`))
		req.Header.Set("Authorization", "Bearer "+orchestratortest.DefaultEnrollmentToken)
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if !strings.Contains(string(b), tc.want) {
			t.Errorf("AckTimeout %s: register answered %s, want %s", tc.ack, b, tc.want)
		}
	}
}

func TestUnacknowledgedTaskIsOfferedAgain(t *testing.T) {
	t.Parallel()
	e := setup(t, orchestratortest.Options{AckTimeout: 100 * time.Millisecond})
	agent := register(t, e.client, "").AgentID
	ctx := t.Context()

	// Handed out, never acknowledged: offered again after the ack timeout.
	lost := e.srv.Enqueue("ECHO", json.RawMessage(`{}`), 0)
	if code, body, err := rawNext(ctx, e, agent, "b1", 0); err != nil || code != 200 || !strings.Contains(body, `"id":"`+lost+`"`) {
		t.Fatalf("first offer: %d %s %v", code, body, err)
	}
	agenttest.WaitTask(t, e.srv, lost, "re-queue", 20*time.Second, func(st orchestratortest.TaskState) bool {
		return st.Status == orchestratortest.StatusPending && st.Requeues == 1
	})
	if code, body, err := rawNext(ctx, e, agent, "b1", 0); err != nil || code != 200 || !strings.Contains(body, `"id":"`+lost+`"`) {
		t.Fatalf("second offer: %d %s %v", code, body, err)
	}
	// Acknowledged by RUNNING: no further re-queue.
	if code := rawReport(t, e, lost, `{"agent_id":"`+agent+`","status":"RUNNING"}`); code != 200 {
		t.Fatalf("RUNNING: %d", code)
	}
	// (Had the second offer expired before the report, the report still acknowledges it.)
	acked, _ := e.srv.Task(lost)

	// A late acknowledgement of a re-queued task still counts: it is not offered a third time.
	late := e.srv.Enqueue("ECHO", json.RawMessage(`{}`), 0)
	if code, _, err := rawNext(ctx, e, agent, "b1", 0); err != nil || code != 200 {
		t.Fatalf("offer: %d %v", code, err)
	}
	agenttest.WaitTask(t, e.srv, late, "re-queue", 20*time.Second, func(st orchestratortest.TaskState) bool { return st.Requeues == 1 })
	if code := rawReport(t, e, late, `{"agent_id":"`+agent+`","status":"COMPLETED","result":{"ok":true}}`); code != 200 {
		t.Fatalf("late final: %d", code)
	}
	if code, body, err := rawNext(ctx, e, agent, "b1", 0); err != nil || code != http.StatusNoContent {
		t.Fatalf("after the acknowledgements: %d %s %v, want 204", code, body, err)
	}
	// The acknowledged task's ack timer was armed before the late one's, which expired: the
	// acknowledged one is still RUNNING and was not re-queued since.
	st, _ := e.srv.Task(lost)
	if st.Status != orchestratortest.StatusRunning || st.Offers != 2 || st.Requeues != acked.Requeues || !st.Acknowledged {
		t.Errorf("acknowledged task: %+v (at acknowledgement %+v)", st, acked)
	}
	st, _ = e.srv.Task(late)
	if st.Status != orchestratortest.StatusCompleted || st.FinalReports != 1 {
		t.Errorf("late task: %+v", st)
	}
	if got, want := e.srv.Stats().Requeued, acked.Requeues+1; got != want {
		t.Errorf("Requeued = %d, want %d", got, want)
	}
}

func TestLaterBootSupersedesParkedLongPolls(t *testing.T) {
	t.Parallel()
	e := setup(t, orchestratortest.Options{})
	agent := register(t, e.client, "").AgentID
	ctx := t.Context()

	type answer struct {
		code int
		body string
		err  error
	}
	old := make(chan answer, 1)
	go func() {
		code, body, err := rawNext(ctx, e, agent, "boot-1", 60)
		old <- answer{code, body, err}
	}()
	waitForWaiting(t, e.srv, 1)
	// The agent restarts: its new boot polls, and the dead boot's parked poll is dropped.
	if code, _, err := rawNext(ctx, e, agent, "boot-2", 0); err != nil || code != http.StatusNoContent {
		t.Fatalf("new boot's poll: %d %v", code, err)
	}
	select {
	case a := <-old:
		if a.err != nil || a.code != http.StatusNoContent {
			t.Fatalf("superseded poll answered %d %q %v, want 204", a.code, a.body, a.err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("the earlier boot's long poll was not dropped")
	}
	id := e.srv.Enqueue("ECHO", json.RawMessage(`{}`), 0)
	if code, _, err := rawNext(ctx, e, agent, "boot-1", 0); err != nil || code != http.StatusNoContent {
		t.Fatalf("a poll of the earlier boot got %d %v, want 204", code, err)
	}
	if code, body, err := rawNext(ctx, e, agent, "boot-2", 0); err != nil || code != 200 || !strings.Contains(body, id) {
		t.Fatalf("the current boot's poll: %d %s %v", code, body, err)
	}
	ag := e.srv.Agents()[0]
	if ag.BootID != "boot-2" || ag.Boots != 2 {
		t.Errorf("agent boots: %q %d", ag.BootID, ag.Boots)
	}
	if got := e.srv.Stats().SupersededPolls; got != 2 {
		t.Errorf("SupersededPolls = %d, want 2", got)
	}
}
