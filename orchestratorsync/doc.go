// Package orchestratorsync owns the agent's side of the LetsBe orchestrator wire contract
// (v1.1, docs/orchestrator-api.md): the HTTP client for register, heartbeat, next-task and
// report, the wire types and their liberal decoders, the report encoder that keeps every
// report within its size budget (EncodeReport), typed API errors and the one classifier of
// answers (Classify), the backoff and clock helpers, and the Syncer, whose loops register,
// heartbeat, poll tasks into the store and report them back. The Client makes exactly one
// attempt per call and never retries, sleeps or logs on its own: the Syncer's loops decide
// retries with Classify, NextDelay and an injected Clock. The package is plain Go: it must not
// import controller-runtime, it never runs an executor (the controllers do, watching the same
// store), and it must never put a bearer token into an error, a log line or a report.
package orchestratorsync
