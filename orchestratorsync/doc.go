// Package orchestratorsync owns the agent's side of the LetsBe orchestrator wire contract
// (contract v1, /work/shared/orchestrator-api.md): the HTTP client for register, heartbeat,
// next-task and report, the wire types and their liberal decoders, typed API errors with
// retry classification, and the backoff and clock helpers the sync loops build on. The client
// makes exactly one attempt per call and never retries, sleeps or logs on its own: callers
// decide retries with IsRetryable, NextDelay and an injected Clock. It is plain Go: it must
// not import controller-runtime or any other package of this repository, and it must never put
// a bearer token into an error, a log line or a message.
package orchestratorsync
