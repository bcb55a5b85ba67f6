package v1alpha1

import (
	"fmt"
	"strings"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// MaxStackMessageLength bounds the message of a Stack condition, in bytes.
const MaxStackMessageLength = 1024

// SetObserved records an observation of the Stack's services at now against the spec of
// generation: the services, the names of those not ready (notReady: Available is True only
// when there is none), those of them that are degraded (stopped, exited non-zero, restarting,
// unhealthy or missing: Degraded is True when there is one; a service still starting is not
// ready but not degraded) and how the containers differ from the last known good revision
// (drift), with the conditions they imply.
func (s *StackStatus) SetObserved(now metav1.Time, generation int64, services []StackService, notReady, degraded, drift []string) {
	s.ObservedGeneration = generation
	s.LastChecked = &now
	s.Services = services
	s.DegradedServices = degraded
	s.Drift = drift
	if len(notReady) == 0 {
		s.setCondition(generation, StackConditionAvailable, metav1.ConditionTrue, StackReasonReady, "Every service is ready")
	} else {
		s.setCondition(generation, StackConditionAvailable, metav1.ConditionFalse, StackReasonServicesNotReady, "Services not ready: "+strings.Join(notReady, ", "))
	}
	if len(degraded) == 0 {
		s.setCondition(generation, StackConditionDegraded, metav1.ConditionFalse, StackReasonReady, "No service is degraded")
	} else {
		s.setCondition(generation, StackConditionDegraded, metav1.ConditionTrue, StackReasonServicesDegraded, "Degraded services: "+strings.Join(degraded, ", "))
	}
	if len(drift) == 0 {
		s.setCondition(generation, StackConditionDrifted, metav1.ConditionFalse, StackReasonInSync, "The containers match the last known good revision")
	} else {
		s.setCondition(generation, StackConditionDrifted, metav1.ConditionTrue, StackReasonDrift, strings.Join(drift, "; "))
	}
}

// SetObservationFailed records at now that the Stack could not be observed, and why (a message
// that must not hold secrets): its conditions become Unknown, the services last observed stay.
func (s *StackStatus) SetObservationFailed(now metav1.Time, generation int64, message string) {
	s.ObservedGeneration = generation
	s.LastChecked = &now
	msg := fmt.Sprintf("Cannot observe the project: %s", message)
	for _, typ := range []string{StackConditionAvailable, StackConditionDegraded, StackConditionDrifted} {
		s.setCondition(generation, typ, metav1.ConditionUnknown, StackReasonObservationFailed, msg)
	}
}

func (s *StackStatus) setCondition(generation int64, typ string, status metav1.ConditionStatus, reason, message string) {
	meta.SetStatusCondition(&s.Conditions, metav1.Condition{
		Type: typ, Status: status, Reason: reason, ObservedGeneration: generation,
		Message: truncateUTF8(message, MaxStackMessageLength),
	})
}
