// Package journal makes the agent's Tasks survive crashes, restarts and reboots: a write-ahead
// journal in the state directory, on an embedded bbolt database, behind the in-memory store.
//
// Every change to a Task is written and fsynced before the write returns and, except for its
// creation, before anyone hears of it (whatever is done with a new Task is a later write,
// fsynced after the creation), so a Task is durable before it starts, its Running phase before
// its executor runs, and its final status before it is reported. Concurrent writes share one
// fsync (group commit). A Task leaves the journal once the orchestrator accepted its final
// report. At start-up the journal is read back into the store; a journal that cannot be read is
// moved aside with a loud log line and the agent starts fresh.
//
// It knows nothing of the wire format and runs nothing.
package journal
