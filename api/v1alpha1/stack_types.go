package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Condition types of a Stack. A Stack carries at most one condition of each type, each with
// the generation of the spec it was observed against.
const (
	// StackConditionAvailable is True when every service of the Stack's revision is ready
	// (running, healthy when it has a healthcheck, or a one-shot service that exited 0),
	// False when one is not (degraded, or its health check still starting), and Unknown when
	// the agent could not observe the project.
	StackConditionAvailable = "Available"
	// StackConditionDegraded is True when at least one service is stopped, exited non-zero,
	// restarting, unhealthy or missing (status.degradedServices lists them), False when none
	// is, and Unknown when the agent could not observe the project.
	StackConditionDegraded = "Degraded"
	// StackConditionDrifted is True when the containers differ from the last known good
	// revision (a missing or stopped container, another image), False when they match, and
	// Unknown when the agent could not observe the project.
	StackConditionDrifted = "Drifted"
)

// Condition reasons of a Stack.
const (
	// StackReasonReady: every service is ready (Available True), or none is degraded
	// (Degraded False).
	StackReasonReady = "AllServicesReady"
	// StackReasonServicesNotReady: some services are not ready (Available False): degraded,
	// or still starting.
	StackReasonServicesNotReady = "ServicesNotReady"
	// StackReasonServicesDegraded: some services are degraded (Degraded True).
	StackReasonServicesDegraded = "ServicesDegraded"
	// StackReasonInSync: the containers match the last known good revision (Drifted False).
	StackReasonInSync = "InSync"
	// StackReasonDrift: the containers differ from the last known good revision (Drifted
	// True).
	StackReasonDrift = "Drift"
	// StackReasonObservationFailed: the agent could not observe the project (docker failed or
	// is missing); the conditions are Unknown and the observation is retried.
	StackReasonObservationFailed = "ObservationFailed"
)

// StackSpec is the desired state of a Compose project: the revision the agent last deployed
// or rolled back to and proved healthy (its last known good revision). Only the agent writes
// it, when a DOCKER_RELOAD or COMPOSE_ROLLBACK task makes a revision the last known good one.
type StackSpec struct {
	// Project is the Compose project name.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	Project string `json:"project"`
	// ComposePath is the compose file of the revision, inside the agent's file roots.
	// +required
	// +kubebuilder:validation:MinLength=1
	ComposePath string `json:"composePath"`
	// Revision is the number of the last known good revision, as recorded in the agent's state
	// directory (AGENT_STATE_DIR/stacks/<project>/).
	// +required
	// +kubebuilder:validation:Minimum=1
	Revision int64 `json:"revision"`
}

// StackService is the observed state of one service of a Stack (its first container; a
// scaled service reports the worst one).
type StackService struct {
	// Name is the Compose service name.
	// +required
	Name string `json:"name"`
	// State is the container's state: running, exited, restarting, created, paused, dead, or
	// missing when the service has no container.
	// +required
	State string `json:"state"`
	// Health is healthy, unhealthy or starting; empty without a healthcheck.
	// +optional
	Health string `json:"health,omitempty"`
	// ExitCode is the container's last exit code.
	// +optional
	ExitCode int32 `json:"exitCode,omitempty"`
	// Restarts is the container's restart count.
	// +optional
	Restarts int32 `json:"restarts,omitempty"`
	// Image is the image reference the container runs.
	// +optional
	Image string `json:"image,omitempty"`
}

// StackHeal is the self-healing record of a Stack (AGENT_STACK_SELF_HEAL): when the agent last
// restarted its degraded or drifted services and how many attempts in a row failed, which
// spaces the next attempt out (exponential backoff).
type StackHeal struct {
	// LastAttempt is when the agent last tried to heal the Stack.
	// +optional
	LastAttempt *metav1.Time `json:"lastAttempt,omitempty"`
	// Attempts counts the heals of the current revision (a new spec starts a new record).
	// +optional
	Attempts int32 `json:"attempts,omitempty"`
	// Failures counts the heals in a row that did not pass the health gate.
	// +optional
	Failures int32 `json:"failures,omitempty"`
	// LastError is why the last heal failed, if it did; it never holds a secret.
	// +optional
	LastError string `json:"lastError,omitempty"`
}

// StackStatus is what the agent last observed of a Stack.
type StackStatus struct {
	// ObservedGeneration is the generation of the spec the status was observed against.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`

	// Conditions are Available, Degraded and Drifted.
	// +optional
	// +listType=map
	// +listMapKey=type
	Conditions []metav1.Condition `json:"conditions,omitempty"`

	// Services are the observed services of the revision, ordered by name.
	// +optional
	// +listType=atomic
	Services []StackService `json:"services,omitempty"`

	// DegradedServices names the services that are not ready, ordered by name: the heartbeat's
	// degraded_services.
	// +optional
	// +listType=atomic
	DegradedServices []string `json:"degradedServices,omitempty"`

	// Drift says how the containers differ from the last known good revision, one line each.
	// +optional
	// +listType=atomic
	Drift []string `json:"drift,omitempty"`

	// LastChecked is when the agent last observed the project (also when that failed).
	// +optional
	LastChecked *metav1.Time `json:"lastChecked,omitempty"`

	// Heal is the self-healing record; empty unless AGENT_STACK_SELF_HEAL healed the Stack.
	// +optional
	Heal *StackHeal `json:"heal,omitempty"`
}

// Stack is a Compose project the agent deployed: its spec is the last known good revision,
// its status what runs now. Its name is StackName of the project.
//
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:scope=Namespaced,shortName=stk
// +kubebuilder:printcolumn:name="Project",type=string,JSONPath=`.spec.project`
// +kubebuilder:printcolumn:name="Revision",type=integer,JSONPath=`.spec.revision`
// +kubebuilder:printcolumn:name="Available",type=string,JSONPath=`.status.conditions[?(@.type=="Available")].status`
// +kubebuilder:printcolumn:name="Degraded",type=string,JSONPath=`.status.conditions[?(@.type=="Degraded")].status`
// +kubebuilder:printcolumn:name="Drifted",type=string,JSONPath=`.status.conditions[?(@.type=="Drifted")].status`,priority=1
// +kubebuilder:printcolumn:name="Checked",type=date,JSONPath=`.status.lastChecked`,priority=1
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type Stack struct {
	metav1.TypeMeta `json:",inline"`
	// +optional
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// Spec is the last known good revision of the project.
	// +required
	Spec StackSpec `json:"spec"`

	// Status is what the agent observed of it.
	// +optional
	Status StackStatus `json:"status,omitempty"`
}

// StackList is a list of Stacks.
//
// +kubebuilder:object:root=true
type StackList struct {
	metav1.TypeMeta `json:",inline"`
	// +optional
	metav1.ListMeta `json:"metadata,omitempty"`
	// Items are the Stacks.
	Items []Stack `json:"items"`
}

// IsAvailable reports whether the Stack's Available condition is True.
func (s *Stack) IsAvailable() bool {
	for _, c := range s.Status.Conditions {
		if c.Type == StackConditionAvailable {
			return c.Status == metav1.ConditionTrue
		}
	}
	return false
}
