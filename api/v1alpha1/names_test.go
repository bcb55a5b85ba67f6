package v1alpha1_test

import (
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/util/validation"

	agentv1 "github.com/letsbe/sysadmin-agent/api/v1alpha1"
)

func TestTaskName(t *testing.T) {
	t.Parallel()
	tests := []struct {
		id   string
		want string // exact; or, with a trailing '*', the part before the hash
	}{
		{id: "t-1", want: "t-1"},
		{id: "6f1e2b9c-0d4a-4c1e-9a57-3f2b1c0d9e8a", want: "6f1e2b9c-0d4a-4c1e-9a57-3f2b1c0d9e8a"},
		{id: "a.b.c", want: "a.b.c"},
		{id: "T-1", want: "t-1-*"},
		{id: "6F1E2B9C-0D4A", want: "6f1e2b9c-0d4a-*"},
		{id: "task_42", want: "task-42-*"},
		{id: "a  b//c", want: "a-b-c-*"},
		{id: "-lead-", want: "lead-*"},
		{id: "a..b", want: "a-b-*"},
		{id: "___", want: "task-*"},
		{id: "ümlaut", want: "mlaut-*"},
		{id: strings.Repeat("x", 300), want: strings.Repeat("x", 242) + "-*"},
		{id: "", want: ""},
	}
	for _, tc := range tests {
		t.Run(tc.id, func(t *testing.T) {
			t.Parallel()
			got := agentv1.TaskName(tc.id)
			if prefix, hashed := strings.CutSuffix(tc.want, "*"); hashed {
				if !strings.HasPrefix(got, prefix) || len(got) != len(prefix)+10 {
					t.Errorf("TaskName(%q) = %q, want %q and a 10-digit hash", tc.id, got, prefix)
				}
			} else if got != tc.want {
				t.Errorf("TaskName(%q) = %q, want %q", tc.id, got, tc.want)
			}
			if tc.id != "" {
				if errs := validation.IsDNS1123Subdomain(got); len(errs) > 0 {
					t.Errorf("TaskName(%q) = %q is not a valid name: %v", tc.id, got, errs)
				}
			}
		})
	}
	// Ids that differ only in case or punctuation get different names.
	seen := map[string]string{}
	for _, id := range []string{"task-1", "Task-1", "TASK-1", "task_1", "task.1", "task 1"} {
		name := agentv1.TaskName(id)
		if other, dup := seen[name]; dup {
			t.Errorf("ids %q and %q share the name %q", other, id, name)
		}
		seen[name] = id
	}
}

// FuzzTaskName: orchestrator task ids are untrusted input.
func FuzzTaskName(f *testing.F) {
	for _, id := range []string{"t-1", "T-1", "task_42", "___", "a..b", "ü", strings.Repeat("Ab_", 120)} {
		f.Add(id)
	}
	f.Fuzz(func(t *testing.T, id string) {
		if id == "" {
			return
		}
		name := agentv1.TaskName(id)
		if errs := validation.IsDNS1123Subdomain(name); len(errs) > 0 {
			t.Fatalf("TaskName(%q) = %q is not a valid name: %v", id, name, errs)
		}
		if name != agentv1.TaskName(id) {
			t.Fatalf("TaskName(%q) is not deterministic", id)
		}
		if len(validation.IsDNS1123Subdomain(id)) == 0 && name != id {
			t.Fatalf("valid id %q renamed to %q", id, name)
		}
	})
}
