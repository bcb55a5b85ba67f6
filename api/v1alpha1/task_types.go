package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
)

// Task types the agent knows. The orchestrator names them in upper case.
const (
	TypeEcho         = "ECHO"
	TypeShell        = "SHELL"
	TypeFileWrite    = "FILE_WRITE"
	TypeEnvUpdate    = "ENV_UPDATE"
	TypeDockerReload = "DOCKER_RELOAD"
	TypePlaywright   = "PLAYWRIGHT"
	// Compose project tasks besides DOCKER_RELOAD (contract v1.1).
	TypeComposeStatus   = "COMPOSE_STATUS"
	TypeComposeLogs     = "COMPOSE_LOGS"
	TypeComposeRollback = "COMPOSE_ROLLBACK"
)

// TaskPhase is the coarse state of a Task.
// +kubebuilder:validation:Enum=Pending;Running;Succeeded;Failed
type TaskPhase string

// Task phases. Succeeded and Failed are final: a Task never leaves them.
const (
	TaskPending   TaskPhase = "Pending"
	TaskRunning   TaskPhase = "Running"
	TaskSucceeded TaskPhase = "Succeeded"
	TaskFailed    TaskPhase = "Failed"
)

// IsFinal reports whether the phase is Succeeded or Failed.
func (p TaskPhase) IsFinal() bool { return p == TaskSucceeded || p == TaskFailed }

// IsPending reports whether the phase is Pending or empty: a Task is created without status,
// and is pending until its reconciler initializes it.
func (p TaskPhase) IsPending() bool { return p == TaskPending || p == "" }

// LabelTaskType holds the Task's type, for selection.
const LabelTaskType = "agent.letsbe.io/type"

// TaskSpec is what the orchestrator asked for. It is immutable once the Task exists.
type TaskSpec struct {
	// TaskID is the orchestrator's id of the task, under which it is reported. The Task's
	// name is derived from it (TaskName) once, at intake.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=256
	TaskID string `json:"taskID"`
	// Type selects the executor, e.g. ECHO or SHELL.
	// +required
	// +kubebuilder:validation:MinLength=1
	Type string `json:"type"`

	// Payload is the task's input, passed to the executor as raw JSON.
	// +optional
	// +kubebuilder:pruning:PreserveUnknownFields
	// +kubebuilder:validation:Schemaless
	Payload *runtime.RawExtension `json:"payload,omitempty"`

	// Timeout bounds the task's execution; the agent's own maximum applies when it is empty or
	// larger.
	// +optional
	Timeout *metav1.Duration `json:"timeout,omitempty"`

	// CreatedAt is when the orchestrator created the task, if it said.
	// +optional
	CreatedAt *metav1.Time `json:"createdAt,omitempty"`

	// AgentID is the agent id the task was received under. The orchestrator assigned the task
	// to that agent, so its reports must go out under it: an agent that lost its saved identity
	// registers again presenting this id.
	// +optional
	AgentID string `json:"agentID,omitempty"`

	// NotAfter is the task's not_after exactly as the orchestrator sent it (RFC 3339): the Task
	// ends Failed "expired" without running when it is found after that time. Kept as received
	// because the signature covers it.
	// +optional
	NotAfter string `json:"notAfter,omitempty"`

	// TimeoutSeconds is the task's timeout_seconds exactly as the orchestrator sent it, as JSON
	// text (120, 1.5 or "120"), empty when absent. Only the signature check reads it; Timeout is
	// what the agent applies.
	// +optional
	TimeoutSeconds string `json:"timeoutSeconds,omitempty"`

	// Signature is the orchestrator's detached JWS over the task (docs/orchestrator-api.md,
	// "Signed tasks"), checked before the Task runs when the agent has trusted keys.
	// +optional
	Signature string `json:"signature,omitempty"`
}

// TaskEvent is one entry of a Task's history, reported to the orchestrator.
type TaskEvent struct {
	// Time the event happened.
	// +required
	Time metav1.Time `json:"time"`
	// Type is a short CamelCase word, e.g. Started or Failed.
	// +required
	Type string `json:"type"`
	// Message is human-readable and never holds a secret.
	// +optional
	Message string `json:"message,omitempty"`
}

// ReportState tracks what the orchestrator has accepted of a Task's reports: the one source of
// truth for whether a Task is reported.
type ReportState struct {
	// RunningReported is true once the RUNNING report was accepted, or skipped because the final
	// report superseded it.
	// +optional
	RunningReported bool `json:"runningReported,omitempty"`
	// FinalReported is true once the final report was accepted or refused for good.
	// +optional
	FinalReported bool `json:"finalReported,omitempty"`
	// Rejected is true when the orchestrator refused the final report for good (409 or 404).
	// +optional
	Rejected bool `json:"rejected,omitempty"`
	// LastError is the last delivery error, if any.
	// +optional
	LastError string `json:"lastError,omitempty"`
	// ReportedAt is when the final report was accepted.
	// +optional
	ReportedAt *metav1.Time `json:"reportedAt,omitempty"`
}

// TaskStatus is what the agent observed and did.
type TaskStatus struct {
	// Phase is the coarse state: Pending (or empty, before the reconciler initialized the
	// status), Running, Succeeded or Failed; the one source of truth for whether the Task is
	// final.
	// +optional
	Phase TaskPhase `json:"phase,omitempty"`

	// Conditions explain the state: Ready (with the reason of the outcome) and Stalled, and
	// the Compose tasks' Progressing, Available and RolledBack. Whether the Task is final is
	// Phase, whether it is reported is Report.
	// +optional
	// +listType=map
	// +listMapKey=type
	Conditions []metav1.Condition `json:"conditions,omitempty"`

	// ObservedGeneration is the generation of the spec the status was computed from.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`

	// StartTime is when the executor started.
	// +optional
	StartTime *metav1.Time `json:"startTime,omitempty"`

	// CompletionTime is when the Task reached a final phase.
	// +optional
	CompletionTime *metav1.Time `json:"completionTime,omitempty"`

	// Result is the executor's output as raw JSON; it may be set on failure too.
	// +optional
	// +kubebuilder:pruning:PreserveUnknownFields
	// +kubebuilder:validation:Schemaless
	Result *runtime.RawExtension `json:"result,omitempty"`

	// Error is a short human-readable reason when the Task failed.
	// +optional
	Error string `json:"error,omitempty"`

	// Events is the Task's history, oldest first.
	// +optional
	Events []TaskEvent `json:"events,omitempty"`

	// Report is the delivery state of the Task's reports to the orchestrator.
	// +optional
	Report ReportState `json:"report,omitempty"`

	// Process identifies the process group the executor started, if any, so that one left
	// running by an agent crash can be stopped when the Task is found interrupted.
	// +optional
	Process *ProcessRef `json:"process,omitempty"`
}

// ProcessRef identifies a process group across an agent restart without ever mistaking
// another group for it.
type ProcessRef struct {
	// PGID is the process group id (the leader's pid).
	// +required
	PGID int64 `json:"pgid"`
	// BootID is the kernel's boot id when the group started.
	// +optional
	BootID string `json:"bootID,omitempty"`
	// StartTicks is the leader's start time, in clock ticks since boot.
	// +optional
	StartTicks int64 `json:"startTicks,omitempty"`
	// Seal authenticates the record: an HMAC of the Task's UID and the fields above under a key
	// only the agent holds. The agent acts on a group left running only when its seal verifies,
	// so a status written by anyone else (kubectl, another program) never makes it kill one.
	// +optional
	Seal string `json:"seal,omitempty"`
}

// Task is one unit of work handed over by the orchestrator. Its name is TaskName of the
// orchestrator's task id (spec.taskID), derived once at intake; it is created without status,
// which its reconciler initializes.
//
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:scope=Namespaced,shortName=tk
// +kubebuilder:printcolumn:name="Task ID",type=string,JSONPath=`.spec.taskID`
// +kubebuilder:printcolumn:name="Type",type=string,JSONPath=`.spec.type`
// +kubebuilder:printcolumn:name="Phase",type=string,JSONPath=`.status.phase`
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Reason",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].reason`
// +kubebuilder:printcolumn:name="Error",type=string,JSONPath=`.status.error`,priority=1
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type Task struct {
	metav1.TypeMeta `json:",inline"`
	// +optional
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// Spec is the orchestrator's request; it never changes once the Task exists.
	// +required
	// +kubebuilder:validation:XValidation:rule="self == oldSelf",message="spec is immutable"
	Spec TaskSpec `json:"spec"`

	// Status is the agent's progress on it.
	// +optional
	Status TaskStatus `json:"status,omitempty"`
}

// TaskList is a list of Tasks.
//
// +kubebuilder:object:root=true
type TaskList struct {
	metav1.TypeMeta `json:",inline"`
	// +optional
	metav1.ListMeta `json:"metadata,omitempty"`
	// Items are the Tasks.
	Items []Task `json:"items"`
}

// TaskID is the orchestrator's id of the Task: spec.taskID, or the name of a Task made
// without one (tests).
func (t *Task) TaskID() string {
	if t.Spec.TaskID != "" {
		return t.Spec.TaskID
	}
	return t.Name
}
