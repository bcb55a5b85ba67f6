package wire

import (
	"context"
	"net/http"
	"time"
)

// FeatureProgress is the register answer's feature that asks for progress reports.
const FeatureProgress = "progress"

// progressTimeout bounds one progress report: a late one has no value.
const progressTimeout = 5 * time.Second

// ProgressReport is a RUNNING report carrying what is new of a running task (contract v1.1,
// feature "progress"): new events and output chunks with their byte offsets per stream.
type ProgressReport struct {
	AgentID   string        `json:"agent_id"`
	Status    string        `json:"status"`
	StartedAt string        `json:"started_at,omitempty"`
	Events    []Event       `json:"events,omitempty"`
	Output    []OutputChunk `json:"output,omitempty"`
}

// OutputChunk is a piece of one output stream of a task: Data are the bytes from Offset on.
type OutputChunk struct {
	Stream string `json:"stream"`
	Offset int64  `json:"offset"`
	Data   string `json:"data"`
}

// ReportProgress sends a progress report with PATCH /tasks/{task_id}.
func (c *Client) ReportProgress(ctx context.Context, taskID string, r ProgressReport) error {
	ep, err := reportEndpoint(taskID, r.AgentID)
	if err != nil {
		return err
	}
	r.Status = StatusRunning
	_, err = c.doJSON(ctx, http.MethodPatch, ep, r, min(c.timeout, progressTimeout), readLimit{max: MaxResponseBytes})
	return err
}
