package v1alpha1_test

import (
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation"

	agentv1 "github.com/letsbe/sysadmin-agent/api/v1alpha1"
)

func TestStackName(t *testing.T) {
	t.Parallel()
	tests := []struct {
		project string
		want    string // exact; or, with a trailing '*', the part before the hash
	}{
		{project: "app", want: "app"},
		{project: "shop-2", want: "shop-2"},
		{project: "my_app", want: "my-app-*"},
		{project: "___", want: "stack-*"},
		{project: "", want: ""},
	}
	for _, tc := range tests {
		t.Run(tc.project, func(t *testing.T) {
			t.Parallel()
			got := agentv1.StackName(tc.project)
			if prefix, hashed := strings.CutSuffix(tc.want, "*"); hashed {
				if !strings.HasPrefix(got, prefix) || len(got) != len(prefix)+10 {
					t.Errorf("StackName(%q) = %q, want %q and a 10-digit hash", tc.project, got, prefix)
				}
			} else if got != tc.want {
				t.Errorf("StackName(%q) = %q, want %q", tc.project, got, tc.want)
			}
			if got != "" && len(validation.IsDNS1123Subdomain(got)) > 0 {
				t.Errorf("StackName(%q) = %q is not an object name", tc.project, got)
			}
		})
	}
}

// stackConditions returns type=status/reason of each condition, and checks every one carries the
// generation.
func stackConditions(t *testing.T, s *agentv1.StackStatus, generation int64) []string {
	t.Helper()
	var out []string
	for _, c := range s.Conditions {
		if c.ObservedGeneration != generation {
			t.Errorf("condition %s has observedGeneration %d, want %d", c.Type, c.ObservedGeneration, generation)
		}
		if c.LastTransitionTime.IsZero() {
			t.Errorf("condition %s has no lastTransitionTime", c.Type)
		}
		out = append(out, c.Type+"="+string(c.Status)+"/"+c.Reason)
	}
	return out
}

func TestStackStatusTransitions(t *testing.T) {
	t.Parallel()
	now := metav1.NewTime(time.Date(2026, 12, 2, 3, 0, 0, 0, time.UTC))
	web := agentv1.StackService{Name: "web", State: "running", Health: "healthy", Image: "busybox:1"}
	db := agentv1.StackService{Name: "db", State: "exited", ExitCode: 1}
	tests := []struct {
		name      string
		apply     func(s *agentv1.StackStatus)
		want      []string
		available bool
		message   string // of Degraded
	}{
		{
			name:      "all ready",
			apply:     func(s *agentv1.StackStatus) { s.SetObserved(now, 2, []agentv1.StackService{web}, nil, nil, nil) },
			want:      []string{"Available=True/AllServicesReady", "Degraded=False/AllServicesReady", "Drifted=False/InSync"},
			available: true,
			message:   "No service is degraded",
		},
		{
			name: "degraded and drifted",
			apply: func(s *agentv1.StackStatus) {
				s.SetObserved(now, 2, []agentv1.StackService{db, web}, []string{"db"}, []string{"db"}, []string{"service db is exited (exit code 1)"})
			},
			want:    []string{"Available=False/ServicesNotReady", "Degraded=True/ServicesDegraded", "Drifted=True/Drift"},
			message: "Degraded services: db",
		},
		{
			name: "starting",
			apply: func(s *agentv1.StackStatus) {
				s.SetObserved(now, 2, []agentv1.StackService{{Name: "web", State: "running", Health: "starting"}}, []string{"web"}, nil, nil)
			},
			want:    []string{"Available=False/ServicesNotReady", "Degraded=False/AllServicesReady", "Drifted=False/InSync"},
			message: "No service is degraded",
		},
		{
			name: "observation failed after a good one",
			apply: func(s *agentv1.StackStatus) {
				s.SetObserved(now, 2, []agentv1.StackService{web}, nil, nil, nil)
				s.SetObservationFailed(now, 2, "docker ps: exit status 1: Cannot connect to the Docker daemon")
			},
			want:    []string{"Available=Unknown/ObservationFailed", "Degraded=Unknown/ObservationFailed", "Drifted=Unknown/ObservationFailed"},
			message: "Cannot observe the project: docker ps: exit status 1: Cannot connect to the Docker daemon",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			stack := &agentv1.Stack{}
			tc.apply(&stack.Status)
			if diff := cmp.Diff(tc.want, stackConditions(t, &stack.Status, 2)); diff != "" {
				t.Errorf("conditions (-want +got):\n%s", diff)
			}
			if got := stack.IsAvailable(); got != tc.available {
				t.Errorf("IsAvailable() = %v, want %v", got, tc.available)
			}
			if c := meta.FindStatusCondition(stack.Status.Conditions, agentv1.StackConditionDegraded); c == nil || c.Message != tc.message {
				t.Errorf("Degraded condition %+v, want message %q", c, tc.message)
			}
			if stack.Status.ObservedGeneration != 2 || stack.Status.LastChecked == nil || !stack.Status.LastChecked.Equal(&now) {
				t.Errorf("observedGeneration %d, lastChecked %v", stack.Status.ObservedGeneration, stack.Status.LastChecked)
			}
		})
	}
}

// A failed observation keeps the services last seen; a long message is cut to the bound.
func TestStackObservationFailedKeepsServices(t *testing.T) {
	t.Parallel()
	now := metav1.Now()
	var s agentv1.StackStatus
	s.SetObserved(now, 1, []agentv1.StackService{{Name: "web", State: "running"}}, nil, nil, nil)
	s.SetObservationFailed(now, 1, strings.Repeat("é", agentv1.MaxStackMessageLength))
	if len(s.Services) != 1 {
		t.Errorf("services after a failed observation: %+v", s.Services)
	}
	for _, c := range s.Conditions {
		if len(c.Message) > agentv1.MaxStackMessageLength || !strings.HasPrefix(c.Message, "Cannot observe") {
			t.Errorf("condition %s message of %d bytes: %.40q", c.Type, len(c.Message), c.Message)
		}
	}
}
