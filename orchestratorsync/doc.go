// Package orchestratorsync is the sync side of the agent: the loops that keep it registered
// with the orchestrator (session), heartbeat (heartbeat.go, with the Stacks read from their
// store as v1.1 "stacks"), take tasks into the store
// (poller.go: long poll or interval polling, durable intake, dedup of re-offered ids) and
// report each Task's status back (reporter.go: RUNNING on receipt, finals from the journal,
// 413/4xx shrinking and abandoning, progress reports). It speaks the contract through
// orchestratorsync/wire and drives time through an injected k8s.io/utils/clock. The package
// is plain Go: it must not import controller-runtime, it never runs an executor (the
// controllers do, watching the same store), and it must never put a bearer token into an
// error, a log line or a report.
package orchestratorsync
