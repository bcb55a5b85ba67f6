package controllers_test

import (
	"context"
	"encoding/json"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/letsbe/sysadmin-agent/api/store/memory"
	agentv1 "github.com/letsbe/sysadmin-agent/api/v1alpha1"
	"github.com/letsbe/sysadmin-agent/controllers"
	"github.com/letsbe/sysadmin-agent/controllers/controllertest"
	"github.com/letsbe/sysadmin-agent/executors"
)

// TestAdmitRefusesBeforeRunning checks that a Task Admit refuses ends Failed (Refused) with
// Admit's error and that its executor never runs, and that a panicking Admit refuses too.
func TestAdmitRefusesBeforeRunning(t *testing.T) {
	t.Parallel()
	mem := memory.New()
	var ran atomic.Int32
	exec := controllertest.Func(func(context.Context, json.RawMessage) (any, error) { ran.Add(1); return "ok", nil })
	r, err := controllers.NewRunner(controllers.Options{
		Store: mem, Notifier: mem, Executors: map[string]executors.Executor{"RUN": exec},
		MaxConcurrentReconciles: 2, MaxTimeout: time.Minute, Logger: testLogger(t), SkipNameValidation: true,
		Admit: func(_ context.Context, task *agentv1.Task) error {
			switch task.Name {
			case "refused":
				return errors.New("signature: unknown kid")
			case "panics":
				panic("boom")
			}
			return nil
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	controllertest.Start(t, r.Start)

	for _, name := range []string{"refused", "panics", "admitted"} {
		controllertest.CreatePending(t, mem, name, "RUN", `{}`, 0)
	}
	type got struct{ Phase, Reason, Error string }
	want := map[string]got{
		"refused":  {string(agentv1.TaskFailed), agentv1.ReasonRefused, "signature: unknown kid"},
		"panics":   {string(agentv1.TaskFailed), agentv1.ReasonRefused, "admission check panicked: boom"},
		"admitted": {string(agentv1.TaskSucceeded), agentv1.ReasonSucceeded, ""},
	}
	for name, w := range want {
		task := controllertest.WaitFor(t, mem, name, 20*time.Second, controllertest.Final)
		reason := ""
		for _, c := range task.Status.Conditions {
			if c.Type == agentv1.ConditionReady {
				reason = c.Reason
			}
		}
		if diff := cmp.Diff(w, got{string(task.Status.Phase), reason, task.Status.Error}); diff != "" {
			t.Errorf("task %s (-want +got):\n%s", name, diff)
		}
	}
	if n := ran.Load(); n != 1 {
		t.Errorf("executor ran %d times, want 1 (only the admitted task)", n)
	}
}
