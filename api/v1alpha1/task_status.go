package v1alpha1

import (
	"unicode/utf8"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// MaxEvents bounds TaskStatus.Events; the oldest entries beyond it are dropped.
const MaxEvents = 32

// MaxErrorLength bounds TaskStatus.Error, in bytes.
const MaxErrorLength = 4096

// AddEvent appends an event, dropping the oldest beyond MaxEvents.
func (s *TaskStatus) AddEvent(now metav1.Time, typ, message string) {
	s.Events = append(s.Events, TaskEvent{Time: now, Type: typ, Message: message})
	if n := len(s.Events); n > MaxEvents {
		s.Events = append(s.Events[:0:0], s.Events[n-MaxEvents:]...)
	}
}

// MarkPending records that the Task was accepted and waits for a worker.
func (s *TaskStatus) MarkPending(now metav1.Time, generation int64) {
	s.Phase = TaskPending
	s.ObservedGeneration = generation
	s.setCondition(generation, ConditionReady, metav1.ConditionUnknown, ReasonPending, "Waiting for a worker")
	s.AddEvent(now, EventAccepted, "Task accepted")
}

// MarkRunning records that the executor starts now.
func (s *TaskStatus) MarkRunning(now metav1.Time, generation int64) {
	s.Phase = TaskRunning
	s.ObservedGeneration = generation
	s.StartTime = &now
	s.setCondition(generation, ConditionReady, metav1.ConditionUnknown, ReasonProgressing, "Executor running")
	s.AddEvent(now, EventStarted, "Execution started")
}

// MarkSucceeded records a successful end.
func (s *TaskStatus) MarkSucceeded(now metav1.Time, generation int64) {
	s.finish(now, generation, TaskSucceeded)
	s.Error = ""
	s.setCondition(generation, ConditionReady, metav1.ConditionTrue, ReasonSucceeded, "Task succeeded")
	s.AddEvent(now, EventSucceeded, "Task succeeded")
}

// MarkFailed records a failed end with a reason (one of the Reason constants) and a short
// human-readable message that must not hold secrets. Stalled is set for reasons that mean the
// Task can never succeed as specified.
func (s *TaskStatus) MarkFailed(now metav1.Time, generation int64, reason, message string) {
	s.finish(now, generation, TaskFailed)
	message = truncateUTF8(message, MaxErrorLength)
	s.Error = message
	s.setCondition(generation, ConditionReady, metav1.ConditionFalse, reason, message)
	if reason == ReasonInvalidSpec || reason == ReasonUnsupportedType {
		s.setCondition(generation, ConditionStalled, metav1.ConditionTrue, reason, message)
	}
	s.AddEvent(now, EventFailed, message)
}

func (s *TaskStatus) finish(now metav1.Time, generation int64, phase TaskPhase) {
	s.Phase = phase
	s.ObservedGeneration = generation
	if s.StartTime == nil {
		s.StartTime = &now
	}
	s.CompletionTime = &now
}

// MarkReported records the orchestrator's answer to the final report: accepted, or refused for
// good (409 or 404) with a message.
func (s *TaskStatus) MarkReported(now metav1.Time, rejected bool, message string) {
	s.Report.FinalReported = true
	s.Report.RunningReported = true
	s.Report.Rejected = rejected
	s.Report.ReportedAt = &now
	s.Report.LastError = ""
	if rejected {
		s.Report.LastError = message
	}
}

// truncateUTF8 shortens s to at most n bytes without cutting a UTF-8 sequence.
func truncateUTF8(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

func (s *TaskStatus) setCondition(generation int64, typ string, status metav1.ConditionStatus, reason, message string) {
	meta.SetStatusCondition(&s.Conditions, metav1.Condition{
		Type:               typ,
		Status:             status,
		ObservedGeneration: generation,
		Reason:             reason,
		Message:            message,
	})
}
