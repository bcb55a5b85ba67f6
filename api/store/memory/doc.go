// Package memory is the in-memory store.Store and store.Notifier of plain servers (memory
// mode), the in-memory store.StackStore and store.StackNotifier of Stacks, and the in-memory
// store.Delivered of cluster mode and the tests.
//
// The stores behave like a tiny API server (see package store). With a Persister (the journal)
// every Task change is durable before it returns (but one under store.Deferrable) and, except
// for a creation, before anyone hears of it; a creation and the first status write after it
// are made durable as one. Stacks are not journaled: the durable truth of a Compose project's
// last known good revision is the record the Compose executors keep in
// AGENT_STATE_DIR/stacks/<project>/ (written, fsynced, before a deploy or rollback reports
// success), and a Stack's spec is only a copy of it while its status is observed state, stale
// the moment the agent stops. So memory mode rebuilds its Stacks at start-up from those records
// (controllers.SyncStacks) and observes them again, rather than keeping a second copy of the
// revision that could disagree with the first. The package imports only the standard library,
// apimachinery and the API; it never runs
// anything and knows nothing of the orchestrator.
package memory
