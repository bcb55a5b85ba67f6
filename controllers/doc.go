// Package controllers drives Tasks to completion: one controller-runtime reconciler per task
// type, each calling its executor, all sharing one set of mechanics (phase transitions, the
// per-task timeout and cancellation, turning an error or a panic into a FAILED Task, the final
// status write).
//
// NewRunner runs the controllers without a cluster (memory mode); SetupWithManager registers
// the same ones with a controller-runtime manager (cluster mode), beside the TaskCollector that
// deletes old reported Tasks. The reconcilers depend on the Task store interface, never on a
// cluster client, and know nothing of the orchestrator's wire format: reporting is the sync
// side's job. The package never runs a command or touches a file itself; executors do.
package controllers
