// Package wire is the agent's client of the LetsBe orchestrator wire contract (v1.1,
// docs/orchestrator-api.md): Config and NewClient, one HTTP call per method (Register,
// Heartbeat, NextTask, Report, ReportBody, ReportProgress) made once through one request
// path, the wire types with their liberal decoders and strict encoders, the report encoder
// that keeps every report within its size budget (EncodeReport), the streamed task-id scan of
// an oversized task (ScanTaskID), typed API errors and the one classifier of answers
// (Classify). A Client never retries, sleeps or logs: its callers decide retries with
// Classify. It knows nothing of Tasks, stores or executors, imports nothing of the agent, and
// never puts a bearer token into an error.
package wire
