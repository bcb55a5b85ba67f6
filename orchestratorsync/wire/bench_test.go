package wire_test

import (
	"encoding/json"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/letsbe/sysadmin-agent/orchestratorsync/wire"

	"github.com/letsbe/sysadmin-agent/orchestratorsync/orchestratortest"
)

// BenchmarkClientTaskRoundTrip measures the protocol cost of one task through the real client
// against the in-process reference orchestrator on loopback: next task, RUNNING report, final
// report (three requests over a kept-alive connection), plus the orchestrator's enqueue.
func BenchmarkClientTaskRoundTrip(b *testing.B) {
	orch := orchestratortest.New(orchestratortest.Options{})
	hs := httptest.NewServer(orch)
	defer hs.Close()
	client, err := wire.NewClient(wire.Config{BaseURL: hs.URL, Token: orchestratortest.DefaultEnrollmentToken})
	if err != nil {
		b.Fatal(err)
	}
	ctx := b.Context()
	reg, err := client.Register(ctx, wire.RegisterRequest{Hostname: "bench", Version: "bench", Capabilities: []string{"ECHO"}})
	if err != nil {
		b.Fatal(err)
	}
	payload := json.RawMessage(`{"message":"hello"}`)
	b.ReportAllocs()
	for b.Loop() {
		orch.Enqueue("ECHO", payload, 0)
		task, err := client.NextTask(ctx, reg.AgentID, 0)
		if err != nil || task == nil {
			b.Fatalf("next task: %v, %v", task, err)
		}
		started := time.Now().UTC().Truncate(time.Second)
		if err := client.Report(ctx, task.ID, wire.Report{
			AgentID: reg.AgentID, Status: wire.StatusRunning, StartedAt: &started,
		}); err != nil {
			b.Fatal(err)
		}
		if err := client.Report(ctx, task.ID, wire.Report{
			AgentID: reg.AgentID, Status: wire.StatusCompleted, Result: task.Payload,
			StartedAt: &started, FinishedAt: &started,
		}); err != nil {
			b.Fatal(err)
		}
	}
}
