// Package agenthttp is the agent's local HTTP surface: the handler of /healthz, /readyz (the
// readiness computed from the sync side's and the journal's state, never waiting for the
// orchestrator), /metrics and /debug/tasks (summaries without payloads, results or quoted
// error fragments), the bearer-token guard of AGENT_HTTP_TOKEN, the listener that keeps trying
// to bind a taken AGENT_HTTP_ADDR in the background, and the client `letsbe-agent status`
// reads it with. It only reads what its Sources give it.
package agenthttp
