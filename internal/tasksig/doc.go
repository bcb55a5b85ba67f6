// Package tasksig checks that a Task may run as far as its origin goes: the orchestrator's
// detached JWS over the task's canonical form (RFC 8785) verifies with a trusted key, it was
// signed for this agent, and it has not expired. It also signs tasks, for the development
// orchestrator and the keys command. It owns the trusted key set (a JWKS file, reloaded on
// demand and when the file changes) and nothing else: it never runs a task, never talks to the
// orchestrator, and uses go-jose for every cryptographic operation.
package tasksig
