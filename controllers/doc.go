// Package controllers drives Tasks to completion: one controller-runtime reconciler per task
// type, each calling its executor, all sharing one set of mechanics (initializing the status
// of a new Task, phase transitions, the per-task timeout and cancellation, turning an error or
// a panic into a FAILED Task, the final status write), and one more that fails the Tasks of
// every type no executor handles.
//
// NewRunner runs the same reconcilers without a cluster (memory mode) under one controller,
// fed by the store's notifications, whose AGENT_MAX_CONCURRENT_TASKS workers hand each Task
// to its type's reconciler; SetupWithManager registers them with a controller-runtime
// manager (cluster mode) as one controller per type, watching Tasks through the manager's
// cache (For(&Task{}) with predicates), beside the TaskCollector that deletes old reported
// Tasks. The reconcilers read and write through the Task store interface, never a cluster
// client, and know nothing of the orchestrator's wire format: reporting is the sync side's job. A process group left by an
// interrupted Task is stopped only if this agent recorded (sealed) it.
//
// With Options.Stacks it also keeps the Stack objects: the DOCKER_RELOAD and COMPOSE_ROLLBACK
// reconcilers make a project's last known good revision (as the executor recorded it) its
// Stack's spec once their Task is final, SyncStacks does the same for every recorded project
// at start-up, and the StackReconciler observes each Stack through executors.StackObserver
// every recheck interval, right after its spec changes and on docker events, writing
// Available, Degraded and Drifted, and heals (AGENT_STACK_SELF_HEAL) within a rate limit. The package never runs a
// command or touches a file itself; executors do.
package controllers
