// Package agenttest runs the built letsbe-agent binary against the reference orchestrator
// (orchestratorsync/orchestratortest) on loopback, for the end-to-end tests of
// cmd/letsbe-agent and for hack/bench: the orchestrator served over HTTP, the agent process
// with its environment, a pre-picked loopback port for its local listener, its output, and
// SIGTERM, SIGKILL and waiting for registration and for the listener. It never builds the
// binary and is never part of the agent.
package agenttest
