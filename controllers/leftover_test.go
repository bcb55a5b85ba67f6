package controllers

import (
	"testing"

	"k8s.io/apimachinery/pkg/types"

	agentv1 "github.com/letsbe/sysadmin-agent/api/v1alpha1"
)

// TestProcessSeal: a recorded process group verifies only with the key, the Task and the
// fields it was sealed with.
func TestProcessSeal(t *testing.T) {
	t.Parallel()
	key := []byte("0123456789abcdef0123456789abcdef")
	uid := types.UID("5d3c")
	ref := &agentv1.ProcessRef{PGID: 4242, BootID: "b-1", StartTicks: 77}
	ref.Seal = sealProcess(key, uid, ref)
	if !sealed(key, uid, ref) {
		t.Fatal("the agent's own record does not verify")
	}
	tampered := func(mutate func(r *agentv1.ProcessRef)) *agentv1.ProcessRef {
		r := *ref
		mutate(&r)
		return &r
	}
	tests := []struct {
		name string
		key  []byte
		uid  types.UID
		ref  *agentv1.ProcessRef
	}{
		{"other key", []byte("another key"), uid, ref},
		{"no key", nil, uid, ref},
		{"other task", key, "other", ref},
		{"other group", key, uid, tampered(func(r *agentv1.ProcessRef) { r.PGID = 1 })},
		{"other boot", key, uid, tampered(func(r *agentv1.ProcessRef) { r.BootID = "b-2" })},
		{"other start", key, uid, tampered(func(r *agentv1.ProcessRef) { r.StartTicks = 78 })},
		{"no seal", key, uid, tampered(func(r *agentv1.ProcessRef) { r.Seal = "" })},
	}
	for _, tc := range tests {
		if sealed(tc.key, tc.uid, tc.ref) {
			t.Errorf("%s: verifies", tc.name)
		}
	}
}
