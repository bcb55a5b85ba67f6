// Package controllers drives Tasks to completion: one controller-runtime reconciler per task
// type, each calling its executor, all sharing one set of mechanics (phase transitions, the
// per-task timeout and cancellation, turning an error or a panic into a FAILED Task, the final
// status write).
//
// It depends on the Task store interface, never on a cluster client, and knows nothing of the
// orchestrator's wire format: reporting is the sync side's job. It never runs a command or touches
// a file itself; executors do.
package controllers
