// Package v1alpha1 holds the API of the LetsBe agent (group agent.letsbe.io, version v1alpha1):
// Task, the local, Kubernetes-style record of one unit of work handed over by the orchestrator,
// and Stack, a Compose project the agent deployed (spec: its last known good revision; status:
// what runs now, as conditions Available, Degraded and Drifted).
//
// It owns the types, their condition vocabulary and the generated deep-copy code. It imports only
// the standard library and k8s.io/apimachinery, so the same types can live in a real cluster as a
// CRD unchanged. It must not know about the orchestrator's wire format or run anything.
//
// +kubebuilder:object:generate=true
// +groupName=agent.letsbe.io
package v1alpha1
