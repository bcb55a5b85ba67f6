package orchestratortest

import (
	"encoding/json"
	"fmt"
	"time"
)

// The orchestrator's own wire types. They are written from the contract
// (docs/orchestrator-api.md), never shared with the agent's, so that a wrong JSON tag on either
// side cannot round-trip green in the tests.

type registerRequest struct {
	Hostname     string            `json:"hostname"`
	Version      string            `json:"version"`
	OS           string            `json:"os"`
	Arch         string            `json:"arch"`
	Capabilities []string          `json:"capabilities"`
	Labels       map[string]string `json:"labels"`
	AgentID      string            `json:"agent_id"`
	Policy       *PolicyReport     `json:"policy"`
}

// PolicyReport is the "policy" of a register request (v1.1): what the agent will accept.
type PolicyReport struct {
	SHA256  string         `json:"sha256"`
	Summary map[string]any `json:"summary"`
}

type registerResponse struct {
	AgentID                  string   `json:"agent_id,omitempty"`
	ID                       string   `json:"id,omitempty"`
	Token                    string   `json:"token,omitempty"`
	HeartbeatIntervalSeconds float64  `json:"heartbeat_interval_seconds,omitempty"`
	PollIntervalSeconds      float64  `json:"poll_interval_seconds,omitempty"`
	AckTimeoutSeconds        float64  `json:"ack_timeout_seconds,omitempty"`
	Features                 []string `json:"features,omitempty"`
}

// HeartbeatBody is a heartbeat request as the orchestrator read it.
type HeartbeatBody struct {
	Status         string        `json:"status"`
	Version        string        `json:"version"`
	UptimeSeconds  int64         `json:"uptime_seconds"`
	RunningTaskIDs []string      `json:"running_task_ids"`
	QueuedTasks    int           `json:"queued_tasks"`
	System         SystemFigures `json:"system"`
	// Stacks (v1.1) is nil when the agent sent none (a v1.0 agent), else the stacks it
	// reported ([] for none).
	Stacks []HeartbeatStack `json:"stacks"`
}

// HeartbeatStack is one entry of a heartbeat's "stacks" (v1.1): a Compose project the agent
// manages and its last observed state.
type HeartbeatStack struct {
	Project          string   `json:"project"`
	Revision         int64    `json:"revision"`
	Available        bool     `json:"available"`
	DegradedServices []string `json:"degraded_services"`
}

// checkStacks holds a heartbeat's "stacks" to the contract: absent (v1.0), or an array whose
// entries name a project and carry degraded_services as an array, never null. It returns what
// is wrong, or "".
func checkStacks(raw []byte) string {
	var body struct {
		Stacks json.RawMessage `json:"stacks"`
	}
	if json.Unmarshal(raw, &body) != nil || body.Stacks == nil {
		return ""
	}
	var stacks []map[string]json.RawMessage
	if string(body.Stacks) == "null" || json.Unmarshal(body.Stacks, &stacks) != nil {
		return "stacks must be an array"
	}
	for i, st := range stacks {
		var project string
		if json.Unmarshal(st["project"], &project) != nil || project == "" {
			return fmt.Sprintf("stacks[%d].project must be a non-empty string", i)
		}
		var degraded []string
		if d := st["degraded_services"]; d == nil || string(d) == "null" || json.Unmarshal(d, &degraded) != nil {
			return fmt.Sprintf("stacks[%d].degraded_services must be an array of strings", i)
		}
	}
	return ""
}

// SystemFigures is the "system" object of a heartbeat.
type SystemFigures struct {
	Load1             float64 `json:"load1"`
	MemTotalBytes     uint64  `json:"mem_total_bytes"`
	MemAvailableBytes uint64  `json:"mem_available_bytes"`
	DiskFreeBytes     uint64  `json:"disk_free_bytes"`
}

type heartbeatResponse struct {
	CancelTaskIDs []string `json:"cancel_task_ids,omitempty"`
}

// nextTask is the 200 answer of GET /tasks/next.
type nextTask struct {
	ID             string          `json:"id"`
	Type           string          `json:"type"`
	Payload        json.RawMessage `json:"payload"`
	TimeoutSeconds int             `json:"timeout_seconds,omitempty"`
	CreatedAt      time.Time       `json:"created_at"`
}

// Event is one entry of a report's events.
type Event struct {
	Time    time.Time `json:"time"`
	Type    string    `json:"type"`
	Message string    `json:"message,omitempty"`
}

type report struct {
	AgentID    string          `json:"agent_id"`
	Status     string          `json:"status"`
	Result     json.RawMessage `json:"result"`
	Error      string          `json:"error"`
	StartedAt  *time.Time      `json:"started_at"`
	FinishedAt *time.Time      `json:"finished_at"`
	Events     []Event         `json:"events"`
}

func (r *report) isFinal() bool { return r.Status == StatusCompleted || r.Status == StatusFailed }
