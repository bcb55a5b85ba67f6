// Package orchestratortest is an in-memory reference orchestrator that speaks contract v1
// (/work/shared/orchestrator-api.md) over plain net/http. Tests, `letsbe-agent dev` and
// benchmarks mount Server as an http.Handler (behind http.StripPrefix when the orchestrator
// URL carries a path prefix) and drive it with Enqueue, Cancel, RevokeTokens and ForgetAgents,
// then observe it with Task, Tasks, Agents, WaitTask and Stats. It also offers FakeClock for
// testing loops without real sleeps. It keeps everything in memory, holds no lock while a long
// poll waits, logs nothing unless given a logger, and must not be used as a production
// orchestrator: it has no persistence and no real authentication beyond bearer comparison.
package orchestratortest
