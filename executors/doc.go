// Package executors owns everything the agent does to the host on behalf of a
// task: it decodes and validates task payloads, runs the ECHO, SHELL,
// FILE_WRITE, ENV_UPDATE, DOCKER_RELOAD and COMPOSE_* task types, observes and heals the
// deployed Compose projects for the Stack objects ([StackObserver]: what runs compared with
// the last known good revision recorded in the state directory), and is the only code in
// the agent that starts processes or touches task files. A process is
// always started from an argv (never through a shell), in its own process
// group, with a minimal environment that never carries the agent's own
// variables, with bounded capture of its output, and is reliably stopped on
// cancellation (SIGTERM to the group, a grace period, then SIGKILL). A file is
// only ever reached through an os.Root opened on one of the configured file
// roots, so that "..", symbolic links and races cannot lead outside them, and
// is replaced atomically (temporary file, fsync, rename, directory fsync).
// Payload errors that can never succeed are reported as permanent errors
// ([ErrInvalidPayload], [ErrRefused]) so the caller can fail the task without
// retrying. The package is plain Go: it must not import controller-runtime or
// any other package of this repository, must not log (compose-go's own logrus
// lines reach the agent's log through internal/logging), retry or report task
// status (callers do), must never pass the agent's environment,
// a shell interpreter or an unbounded buffer to a child process, and must
// keep .env values out of its errors and results (DOCKER_RELOAD masks them in
// compose-go's messages and in docker's output).
package executors
