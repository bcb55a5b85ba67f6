package v1alpha1

// Condition types of a Task. A Task carries at most one condition of each type.
//
// Conditions explain; they never decide. Whether a Task is final is its phase
// (TaskPhase.IsFinal), whether its reports were delivered is status.report: each has that one
// source of truth, and no condition restates it.
const (
	// ConditionReady is True once the Task finished successfully, False once it failed (its
	// reason says why: one of the Reason constants), and Unknown while it is pending or
	// running.
	ConditionReady = "Ready"

	// ConditionStalled is True when the Task can never succeed as specified (bad payload,
	// refused command or path, unsupported type). It is never retried.
	ConditionStalled = "Stalled"

	// Deployment-like conditions of the Compose tasks (DOCKER_RELOAD, COMPOSE_ROLLBACK), set
	// from what the executor reports while it runs.

	// ConditionProgressing is True while a deploy is under way, False once it ended (reason
	// Succeeded, Failed or PullFailed).
	ConditionProgressing = "Progressing"
	// ConditionAvailable is True once every affected service passed the health gate (reason
	// Healthy), False when one failed it (reason Unhealthy).
	ConditionAvailable = "Available"
	// ConditionRolledBack is True when a failed deploy was rolled back to the last known good
	// revision (reason RolledBack, or RollbackFailed when the rollback failed its gate too).
	ConditionRolledBack = "RolledBack"
)

// Condition reasons of a Task.
const (
	// ReasonPending: the Task is accepted and waits for a worker.
	ReasonPending = "Pending"
	// ReasonProgressing: the executor is running.
	ReasonProgressing = "Progressing"
	// ReasonSucceeded: the executor finished without error.
	ReasonSucceeded = "Succeeded"
	// ReasonFailed: the executor returned an error (a non-zero exit, an I/O failure).
	ReasonFailed = "Failed"
	// ReasonInvalidSpec: the payload does not decode or validate, or the request was refused.
	ReasonInvalidSpec = "InvalidSpec"
	// ReasonRefused: the agent refused to run the Task: its signature does not verify, it
	// expired, or the agent's policy forbids it. Nothing ran.
	ReasonRefused = "Refused"
	// ReasonUnsupportedType: no executor handles the Task's type.
	ReasonUnsupportedType = "UnsupportedType"
	// ReasonTimedOut: the Task's deadline passed before the executor finished.
	ReasonTimedOut = "TimedOut"
	// ReasonCancelled: the orchestrator or the agent cancelled the Task.
	ReasonCancelled = "Cancelled"
	// ReasonInterrupted: the agent stopped while the Task was running; it is never re-run.
	ReasonInterrupted = "Interrupted"
	// ReasonPanicked: the executor panicked; the agent recovered.
	ReasonPanicked = "Panicked"
)

// Event types recorded in TaskStatus.Events.
const (
	EventAccepted  = "Accepted"
	EventStarted   = "Started"
	EventSucceeded = "Succeeded"
	EventFailed    = "Failed"
	EventWarning   = "Warning"
	// The phases of a Compose deploy.
	EventValidated  = "Validated"
	EventPulled     = "Pulled"
	EventHealthy    = "Healthy"
	EventUnhealthy  = "Unhealthy"
	EventRolledBack = "RolledBack"
)
