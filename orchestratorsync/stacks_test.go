package orchestratorsync_test

import (
	"context"
	"testing"

	"github.com/google/go-cmp/cmp"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/letsbe/sysadmin-agent/api/store"
	"github.com/letsbe/sysadmin-agent/api/store/memory"
	agentv1 "github.com/letsbe/sysadmin-agent/api/v1alpha1"
	"github.com/letsbe/sysadmin-agent/internal/testpoll"
	"github.com/letsbe/sysadmin-agent/orchestratorsync"
	"github.com/letsbe/sysadmin-agent/orchestratorsync/orchestratortest"
)

// TestHeartbeatCarriesStacks: every heartbeat carries the Stacks as last observed (v1.1), as
// the reference orchestrator decodes them with its own types: [] without any, a stack whose
// status is from an older spec not available yet, degraded services always an array.
func TestHeartbeatCarriesStacks(t *testing.T) {
	t.Parallel()
	stacks := memory.NewStackStore()
	f := startSyncer(t, 1, nil, func(o *orchestratorsync.Options) { o.Stacks = stacks })
	lastStacks := func(after int) []orchestratortest.HeartbeatStack {
		t.Helper()
		var got []orchestratortest.HeartbeatStack
		testpoll.Until(t, waitTimeout, "a heartbeat", func() bool {
			a := f.orch.Agents()
			if len(a) != 1 || a[0].Heartbeats <= after {
				return false
			}
			got = a[0].LastHeartbeatBody.Stacks
			return true
		})
		return got
	}
	if diff := cmp.Diff([]orchestratortest.HeartbeatStack{}, lastStacks(0)); diff != "" {
		t.Errorf("stacks without any (-want +got):\n%s", diff)
	}

	ctx := context.Background()
	now := metav1.Now()
	for _, st := range []struct {
		project           string
		revision          int64
		notReady, degrade []string
	}{
		{"app", 4, nil, nil},
		{"shop", 2, []string{"db", "web"}, []string{"db", "web"}},
	} {
		s := &agentv1.Stack{ObjectMeta: metav1.ObjectMeta{Name: st.project}, Spec: agentv1.StackSpec{Project: st.project, ComposePath: "/c.yml", Revision: st.revision}}
		if err := stacks.Create(ctx, s); err != nil {
			t.Fatal(err)
		}
		s.Status.SetObserved(now, s.Generation, nil, st.notReady, st.degrade, nil)
		if err := stacks.UpdateStatus(ctx, s); err != nil {
			t.Fatal(err)
		}
	}
	// A new revision of app, not observed yet.
	if _, err := store.MutateStack(ctx, stacks, "app", stacks.Update, func(s *agentv1.Stack) bool { s.Spec.Revision = 5; return true }); err != nil {
		t.Fatal(err)
	}
	seen := f.orch.Agents()[0].Heartbeats
	want := []orchestratortest.HeartbeatStack{
		{Project: "app", Revision: 5, Available: false, DegradedServices: []string{}},
		{Project: "shop", Revision: 2, Available: false, DegradedServices: []string{"db", "web"}},
	}
	if diff := cmp.Diff(want, lastStacks(seen+1)); diff != "" {
		t.Errorf("stacks (-want +got):\n%s", diff)
	}
	s, _ := stacks.Get(ctx, "app")
	s.Status.SetObserved(now, s.Generation, nil, nil, nil, nil)
	if err := stacks.UpdateStatus(ctx, s); err != nil {
		t.Fatal(err)
	}
	seen = f.orch.Agents()[0].Heartbeats
	if got := lastStacks(seen + 1); !got[0].Available || got[0].Revision != 5 {
		t.Errorf("app after its observation = %+v, want available at revision 5", got[0])
	}
}
