// Package orchestratortest is an in-memory reference orchestrator that speaks contract v1.1
// (docs/orchestrator-api.md) over plain net/http, with its own wire types (never the agent's,
// so that a wrong JSON tag on either side cannot round-trip green). It implements acknowledged
// assignment: a handed-out task is offered again after the ack timeout unless a report of it
// arrived, long polls of an earlier boot_id of an agent are dropped, and a long poll whose
// client has gone away is never handed a task. Tests, `letsbe-agent dev` and
// benchmarks mount Server as an http.Handler (behind http.StripPrefix when the orchestrator
// URL carries a path prefix) and drive it with Enqueue, Cancel, RevokeTokens and ForgetAgents,
// then observe it with Task, Tasks, EachTask, Agents, WaitTask and Stats. It keeps everything
// in memory, holds no lock while a long
// poll waits, logs nothing unless given a logger, and must not be used as a production
// orchestrator: it has no persistence and no real authentication beyond bearer comparison.
package orchestratortest
