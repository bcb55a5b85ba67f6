// Package journal makes the agent's Tasks survive crashes, restarts and reboots: a write-ahead
// journal in the state directory, on an embedded bbolt database, behind the in-memory store.
//
// Every change to a Task is written and fsynced before the write returns and, except for its
// creation, before anyone hears of it (whatever is done with a new Task is a later write, which
// waits for the creation; the store hands the first such write over as the creation itself), so
// a Task is durable before it starts, its Running phase before its executor runs, and its final
// status before it is reported. Concurrent writes share one fsync (group commit; a commit with fewer of them than the last waits up to half a commit's time for the others). Only what a
// crash may lose is not waited for, and shares the next commit (or one within 50 ms): that a
// report was delivered (store.Deferrable), the removal of a reported Task, the accepted report
// (lost, a report is only sent once more, an identical repeat the orchestrator ignores). A change the journal can never take (a key over bbolt's limit) fails alone,
// and a batch that fails is written again one change at a time, so one bad Task never fails
// another's write. A write that fails (disk full, read-only, I/O error) fails its writer with
// the reason and makes the journal unhealthy (Healthy, HealthChanged) until a write succeeds
// again: it probes on its own, writing again the status changes that failed. A Task leaves the
// journal once the orchestrator accepted its final report; the accepted report itself is kept,
// bounded, for the dedup window (store.Delivered). At start-up the journal is read back into
// the store; a journal that cannot be read is moved aside with a loud log line and the agent
// starts fresh.
//
// It knows nothing of the wire format and runs nothing.
package journal
