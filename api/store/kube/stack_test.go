package kube_test

import (
	"testing"

	"github.com/google/go-cmp/cmp"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/letsbe/sysadmin-agent/api/store/kube/kubetest"
	"github.com/letsbe/sysadmin-agent/api/store/storetest"
	agentv1 "github.com/letsbe/sysadmin-agent/api/v1alpha1"
)

// TestKubeStackStore: the API-server Stack store passes the Stack store conformance suite,
// each subtest in a namespace of its own.
func TestKubeStackStore(t *testing.T) {
	t.Parallel()
	env := kubetest.Get(t)
	storetest.RunStacks(t, func(t *testing.T) storetest.StackStore { return env.NewStackStore(t, env.Namespace(t)) })
}

// TestStackCRDValidation: the API server enforces the Stack CRD's schema, and keeps a status
// given at creation out (it is a subresource).
func TestStackCRDValidation(t *testing.T) {
	t.Parallel()
	env := kubetest.Get(t)
	ns := env.Namespace(t)
	stack := func(name string, mutate func(*agentv1.Stack)) *agentv1.Stack {
		obj := storetest.NewStack(name)
		obj.Namespace = ns
		if mutate != nil {
			mutate(obj)
		}
		return obj
	}
	tests := []struct {
		name    string
		obj     *agentv1.Stack
		invalid bool
	}{
		{"valid", stack("valid", nil), false},
		{"no project", stack("no-project", func(o *agentv1.Stack) { o.Spec.Project = "" }), true},
		{"no compose path", stack("no-path", func(o *agentv1.Stack) { o.Spec.ComposePath = "" }), true},
		{"revision 0", stack("rev-0", func(o *agentv1.Stack) { o.Spec.Revision = 0 }), true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			err := env.Client.Create(t.Context(), tc.obj)
			if tc.invalid != apierrors.IsInvalid(err) || (!tc.invalid && err != nil) {
				t.Fatalf("create: got %v, want invalid=%v", err, tc.invalid)
			}
		})
	}
	st := env.NewStackStore(t, ns)
	in := storetest.NewStack("with-status")
	in.Status.SetObserved(metav1.Now(), 1, []agentv1.StackService{{Name: "web", State: "running"}}, nil, nil, nil)
	if err := st.Create(t.Context(), in); err != nil {
		t.Fatal(err)
	}
	got, err := st.Get(t.Context(), "with-status")
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(agentv1.StackStatus{}, got.Status); diff != "" {
		t.Errorf("status after create (-want +got):\n%s", diff)
	}
	// A status the reconciler writes round-trips through the schema.
	in.Status.SetObserved(metav1.Now(), 1, []agentv1.StackService{{Name: "web", State: "exited", ExitCode: 137, Restarts: 2, Image: "busybox:1"}},
		[]string{"web"}, []string{"web"}, []string{"service web is exited (exit code 137)"})
	got.Status = in.Status
	if err := st.UpdateStatus(t.Context(), got); err != nil {
		t.Fatal(err)
	}
	again, _ := st.Get(t.Context(), "with-status")
	if diff := cmp.Diff(got.Status, again.Status, sameSecond); diff != "" {
		t.Errorf("status round trip (-want +got):\n%s", diff)
	}
}
