package v1alpha1_test

import (
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/google/go-cmp/cmp"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	agentv1 "github.com/letsbe/sysadmin-agent/api/v1alpha1"
)

var now = metav1.NewTime(time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC))

// conditions returns the Task's conditions as "Type=Status/Reason".
func conditions(s *agentv1.TaskStatus) []string {
	var out []string
	for _, c := range s.Conditions {
		out = append(out, c.Type+"="+string(c.Status)+"/"+c.Reason)
	}
	return out
}

func events(s *agentv1.TaskStatus) []string {
	var out []string
	for _, e := range s.Events {
		out = append(out, e.Type)
	}
	return out
}

func TestStatusTransitions(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name           string
		mark           func(s *agentv1.TaskStatus)
		wantPhase      agentv1.TaskPhase
		wantConditions []string
		wantEvents     []string
		wantError      string
		final          bool
	}{
		{
			name:           "pending",
			mark:           func(s *agentv1.TaskStatus) { s.MarkPending(now, 1) },
			wantPhase:      agentv1.TaskPending,
			wantConditions: []string{"Ready=Unknown/Pending"},
			wantEvents:     []string{agentv1.EventAccepted},
		},
		{
			name:           "running",
			mark:           func(s *agentv1.TaskStatus) { s.MarkPending(now, 1); s.MarkRunning(now, 1) },
			wantPhase:      agentv1.TaskRunning,
			wantConditions: []string{"Ready=Unknown/Progressing"},
			wantEvents:     []string{agentv1.EventAccepted, agentv1.EventStarted},
		},
		{
			name:           "succeeded",
			mark:           func(s *agentv1.TaskStatus) { s.MarkRunning(now, 1); s.MarkSucceeded(now, 1) },
			wantPhase:      agentv1.TaskSucceeded,
			wantConditions: []string{"Ready=True/Succeeded"},
			wantEvents:     []string{agentv1.EventStarted, agentv1.EventSucceeded},
			final:          true,
		},
		{
			name: "failed",
			mark: func(s *agentv1.TaskStatus) {
				s.MarkRunning(now, 1)
				s.MarkFailed(now, 1, agentv1.ReasonFailed, "exit status 1")
			},
			wantPhase:      agentv1.TaskFailed,
			wantConditions: []string{"Ready=False/Failed"},
			wantEvents:     []string{agentv1.EventStarted, agentv1.EventFailed},
			wantError:      "exit status 1",
			final:          true,
		},
		{
			name:           "invalid spec stalls",
			mark:           func(s *agentv1.TaskStatus) { s.MarkFailed(now, 1, agentv1.ReasonInvalidSpec, "bad payload") },
			wantPhase:      agentv1.TaskFailed,
			wantConditions: []string{"Ready=False/InvalidSpec", "Stalled=True/InvalidSpec"},
			wantEvents:     []string{agentv1.EventFailed},
			wantError:      "bad payload",
			final:          true,
		},
		{
			name: "unsupported type stalls",
			mark: func(s *agentv1.TaskStatus) {
				s.MarkFailed(now, 1, agentv1.ReasonUnsupportedType, `unsupported task type "X"`)
			},
			wantPhase:      agentv1.TaskFailed,
			wantConditions: []string{"Ready=False/UnsupportedType", "Stalled=True/UnsupportedType"},
			wantEvents:     []string{agentv1.EventFailed},
			wantError:      `unsupported task type "X"`,
			final:          true,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var s agentv1.TaskStatus
			tc.mark(&s)
			if s.Phase != tc.wantPhase || s.Phase.IsFinal() != tc.final || s.Error != tc.wantError {
				t.Errorf("phase %q (final %v), error %q; want %q (final %v), %q", s.Phase, s.Phase.IsFinal(), s.Error, tc.wantPhase, tc.final, tc.wantError)
			}
			if diff := cmp.Diff(tc.wantConditions, conditions(&s)); diff != "" {
				t.Errorf("conditions (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tc.wantEvents, events(&s)); diff != "" {
				t.Errorf("events (-want +got):\n%s", diff)
			}
			if tc.final && (s.StartTime == nil || s.CompletionTime == nil) {
				t.Errorf("final without start or completion time: %+v", s)
			}
			if s.ObservedGeneration != 1 {
				t.Errorf("observedGeneration = %d, want 1", s.ObservedGeneration)
			}
		})
	}
}

func TestPhases(t *testing.T) {
	t.Parallel()
	for phase, want := range map[agentv1.TaskPhase][2]bool{ // {final, pending}
		"":                    {false, true},
		agentv1.TaskPending:   {false, true},
		agentv1.TaskRunning:   {false, false},
		agentv1.TaskSucceeded: {true, false},
		agentv1.TaskFailed:    {true, false},
	} {
		if got := [2]bool{phase.IsFinal(), phase.IsPending()}; got != want {
			t.Errorf("%q: final, pending = %v, want %v", phase, got, want)
		}
	}
}

// TestMarkFailedKeepsUTF8: a long error is cut at MaxErrorLength bytes, never inside a UTF-8
// sequence.
func TestMarkFailedKeepsUTF8(t *testing.T) {
	t.Parallel()
	for _, msg := range []string{
		strings.Repeat("é", agentv1.MaxErrorLength),       // 2-byte runes across the cut
		"x" + strings.Repeat("€", agentv1.MaxErrorLength), // 3-byte runes, the cut off by one
		strings.Repeat("𝄞", agentv1.MaxErrorLength),       // 4-byte runes
		strings.Repeat("a", agentv1.MaxErrorLength+1),
	} {
		var s agentv1.TaskStatus
		s.MarkFailed(now, 1, agentv1.ReasonFailed, msg)
		if len(s.Error) > agentv1.MaxErrorLength || len(s.Error) < agentv1.MaxErrorLength-3 {
			t.Errorf("error of %d bytes, want at most %d and no shorter than a rune less", len(s.Error), agentv1.MaxErrorLength)
		}
		if !utf8.ValidString(s.Error) || !strings.HasPrefix(msg, s.Error) {
			t.Errorf("error %q... is not a valid prefix of the message", s.Error[:16])
		}
		if c := meta.FindStatusCondition(s.Conditions, agentv1.ConditionReady); c == nil || c.Message != s.Error {
			t.Errorf("Ready condition %+v does not carry the error", c)
		}
	}
	var s agentv1.TaskStatus
	s.MarkFailed(now, 1, agentv1.ReasonFailed, "short")
	if s.Error != "short" {
		t.Errorf("short error changed to %q", s.Error)
	}
}

func TestAddEventKeepsTheNewest(t *testing.T) {
	t.Parallel()
	var s agentv1.TaskStatus
	for i := range agentv1.MaxEvents + 5 {
		s.AddEvent(now, "E", strings.Repeat("x", i))
	}
	if len(s.Events) != agentv1.MaxEvents || len(s.Events[0].Message) != 5 || len(s.Events[agentv1.MaxEvents-1].Message) != agentv1.MaxEvents+4 {
		t.Fatalf("got %d events, first %q", len(s.Events), s.Events[0].Message)
	}
}

func TestMarkReported(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		rejected bool
		want     agentv1.ReportState
	}{
		{"accepted", false, agentv1.ReportState{RunningReported: true, FinalReported: true, ReportedAt: &now}},
		{"rejected", true, agentv1.ReportState{RunningReported: true, FinalReported: true, Rejected: true, LastError: "409 conflict", ReportedAt: &now}},
	}
	for _, tc := range tests {
		var s agentv1.TaskStatus
		s.MarkFailed(now, 1, agentv1.ReasonFailed, "boom")
		s.Report.LastError = "earlier"
		s.MarkReported(now, tc.rejected, "409 conflict")
		if diff := cmp.Diff(tc.want, s.Report); diff != "" {
			t.Errorf("%s: report (-want +got):\n%s", tc.name, diff)
		}
		// Reported or not is the report's: no condition restates it.
		if diff := cmp.Diff([]string{"Ready=False/Failed"}, conditions(&s)); diff != "" {
			t.Errorf("%s: conditions (-want +got):\n%s", tc.name, diff)
		}
	}
}

func TestTaskID(t *testing.T) {
	t.Parallel()
	task := &agentv1.Task{ObjectMeta: metav1.ObjectMeta{Name: agentv1.TaskName("Task_7")}, Spec: agentv1.TaskSpec{TaskID: "Task_7"}}
	if got := task.TaskID(); got != "Task_7" {
		t.Errorf("TaskID() = %q, want spec.taskID", got)
	}
	if got := (&agentv1.Task{ObjectMeta: metav1.ObjectMeta{Name: "t-1"}}).TaskID(); got != "t-1" {
		t.Errorf("TaskID() without spec.taskID = %q, want the name", got)
	}
}

func TestDeepCopyIsIndependent(t *testing.T) {
	t.Parallel()
	in := &agentv1.Task{Spec: agentv1.TaskSpec{TaskID: "t"}}
	in.Status.MarkFailed(now, 1, agentv1.ReasonFailed, "boom")
	in.Status.Process = &agentv1.ProcessRef{PGID: 7}
	out := in.DeepCopy()
	out.Status.Conditions[0].Reason = "changed"
	out.Status.Events[0].Message = "changed"
	out.Status.Process.PGID = 8
	if in.Status.Conditions[0].Reason == "changed" || in.Status.Events[0].Message == "changed" || in.Status.Process.PGID != 7 {
		t.Fatalf("DeepCopy shares memory: %+v", in.Status)
	}
}
