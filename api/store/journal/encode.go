package journal

import (
	"bytes"
	"encoding/json"
	"slices"
	"strconv"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"

	agentv1 "github.com/letsbe/sysadmin-agent/api/v1alpha1"
)

// encodeTask appends the journal record of t to b: exactly the bytes of json.Marshal(t), so
// that every version of the journal reads it, built without reflection for the fields Tasks
// carry; a Task with anything else (annotations, owner references, a string or payload json
// would escape, ...) is left to json.Marshal.
func encodeTask(b []byte, t *agentv1.Task) ([]byte, error) {
	if out, ok := appendTask(b, t); ok {
		return out, nil
	}
	v, err := json.Marshal(t)
	return append(b, v...), err
}

// recordSize is room for the key and record of most Tasks like t.
func recordSize(t *agentv1.Task) int {
	return len(t.Name) + 1280 + rawLen(t.Spec.Payload) + rawLen(t.Status.Result)
}

func rawLen(r *runtime.RawExtension) int {
	if r == nil {
		return 0
	}
	return len(r.Raw)
}

// appendTask appends json.Marshal(t) to b; false when t has what it leaves to json.Marshal.
func appendTask(b []byte, t *agentv1.Task) ([]byte, bool) {
	ok := true
	b = append(b, '{')
	first := true
	if t.Kind != "" {
		b, ok = appendField(b, &first, "kind", t.Kind, ok)
	}
	if t.APIVersion != "" {
		b, ok = appendField(b, &first, "apiVersion", t.APIVersion, ok)
	}
	b = appendKey(b, &first, "metadata")
	b, ok = appendMeta(b, &t.ObjectMeta, ok)
	b = appendKey(b, &first, "spec")
	b, ok = appendSpec(b, &t.Spec, ok)
	b = appendKey(b, &first, "status")
	b, ok = appendStatus(b, &t.Status, ok)
	return append(b, '}'), ok
}

func appendMeta(b []byte, m *metav1.ObjectMeta, ok bool) ([]byte, bool) {
	selfLink := m.SelfLink //nolint:staticcheck // json.Marshal still writes it
	if m.GenerateName != "" || m.Namespace != "" || selfLink != "" || m.DeletionTimestamp != nil ||
		m.DeletionGracePeriodSeconds != nil || len(m.Annotations) > 0 || len(m.OwnerReferences) > 0 ||
		len(m.Finalizers) > 0 || len(m.ManagedFields) > 0 || len(m.Labels) > maxLabels {
		return b, false
	}
	b = append(b, '{')
	first := true
	if m.Name != "" {
		b, ok = appendField(b, &first, "name", m.Name, ok)
	}
	if m.UID != "" {
		b, ok = appendField(b, &first, "uid", string(m.UID), ok)
	}
	if m.ResourceVersion != "" {
		b, ok = appendField(b, &first, "resourceVersion", m.ResourceVersion, ok)
	}
	if m.Generation != 0 {
		b = strconv.AppendInt(appendKey(b, &first, "generation"), m.Generation, 10)
	}
	if !m.CreationTimestamp.IsZero() {
		b = appendTime(appendKey(b, &first, "creationTimestamp"), m.CreationTimestamp)
	}
	if len(m.Labels) > 0 {
		b = appendKey(b, &first, "labels")
		b, ok = appendLabels(b, m.Labels, ok)
	}
	return append(b, '}'), ok
}

// maxLabels bounds the labels appendMeta sorts on the stack.
const maxLabels = 8

func appendLabels(b []byte, labels map[string]string, ok bool) ([]byte, bool) {
	var buf [maxLabels]string
	keys := buf[:0]
	for k := range labels {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	b = append(b, '{')
	first := true
	for _, k := range keys {
		if !first {
			b = append(b, ',')
		}
		first = false
		b, ok = appendString(b, k, ok)
		b = append(b, ':')
		b, ok = appendString(b, labels[k], ok)
	}
	return append(b, '}'), ok
}

func appendSpec(b []byte, s *agentv1.TaskSpec, ok bool) ([]byte, bool) {
	b = append(b, '{')
	first := true
	b, ok = appendField(b, &first, "taskID", s.TaskID, ok)
	b, ok = appendField(b, &first, "type", s.Type, ok)
	if s.Payload != nil {
		b, ok = appendRaw(appendKey(b, &first, "payload"), s.Payload, ok)
	}
	if s.Timeout != nil {
		// metav1.Duration's JSON is its String(), which json never escapes.
		b = append(appendKey(b, &first, "timeout"), '"')
		b = append(b, s.Timeout.Duration.String()...)
		b = append(b, '"')
	}
	if s.CreatedAt != nil {
		b = appendTime(appendKey(b, &first, "createdAt"), *s.CreatedAt)
	}
	if s.AgentID != "" {
		b, ok = appendField(b, &first, "agentID", s.AgentID, ok)
	}
	if s.NotAfter != "" {
		b, ok = appendField(b, &first, "notAfter", s.NotAfter, ok)
	}
	if s.TimeoutSeconds != "" {
		b, ok = appendField(b, &first, "timeoutSeconds", s.TimeoutSeconds, ok)
	}
	if s.Signature != "" {
		b, ok = appendField(b, &first, "signature", s.Signature, ok)
	}
	return append(b, '}'), ok
}

func appendStatus(b []byte, s *agentv1.TaskStatus, ok bool) ([]byte, bool) {
	b = append(b, '{')
	first := true
	if s.Phase != "" {
		b, ok = appendField(b, &first, "phase", string(s.Phase), ok)
	}
	if len(s.Conditions) > 0 {
		b = append(appendKey(b, &first, "conditions"), '[')
		for i := range s.Conditions {
			if i > 0 {
				b = append(b, ',')
			}
			b, ok = appendCondition(b, &s.Conditions[i], ok)
		}
		b = append(b, ']')
	}
	if s.ObservedGeneration != 0 {
		b = strconv.AppendInt(appendKey(b, &first, "observedGeneration"), s.ObservedGeneration, 10)
	}
	if s.StartTime != nil {
		b = appendTime(appendKey(b, &first, "startTime"), *s.StartTime)
	}
	if s.CompletionTime != nil {
		b = appendTime(appendKey(b, &first, "completionTime"), *s.CompletionTime)
	}
	if s.Result != nil {
		b, ok = appendRaw(appendKey(b, &first, "result"), s.Result, ok)
	}
	if s.Error != "" {
		b, ok = appendField(b, &first, "error", s.Error, ok)
	}
	if len(s.Events) > 0 {
		b = append(appendKey(b, &first, "events"), '[')
		for i := range s.Events {
			e := &s.Events[i]
			if i > 0 {
				b = append(b, ',')
			}
			b = append(b, '{')
			f := true
			b = appendTime(appendKey(b, &f, "time"), e.Time)
			b, ok = appendField(b, &f, "type", e.Type, ok)
			if e.Message != "" {
				b, ok = appendField(b, &f, "message", e.Message, ok)
			}
			b = append(b, '}')
		}
		b = append(b, ']')
	}
	b = append(appendKey(b, &first, "report"), '{')
	r, f := &s.Report, true
	if r.RunningReported {
		b = append(appendKey(b, &f, "runningReported"), "true"...)
	}
	if r.FinalReported {
		b = append(appendKey(b, &f, "finalReported"), "true"...)
	}
	if r.Rejected {
		b = append(appendKey(b, &f, "rejected"), "true"...)
	}
	if r.LastError != "" {
		b, ok = appendField(b, &f, "lastError", r.LastError, ok)
	}
	if r.ReportedAt != nil {
		b = appendTime(appendKey(b, &f, "reportedAt"), *r.ReportedAt)
	}
	b = append(b, '}')
	if p := s.Process; p != nil {
		b = append(appendKey(b, &first, "process"), '{')
		f := true
		b = strconv.AppendInt(appendKey(b, &f, "pgid"), p.PGID, 10)
		if p.BootID != "" {
			b, ok = appendField(b, &f, "bootID", p.BootID, ok)
		}
		if p.StartTicks != 0 {
			b = strconv.AppendInt(appendKey(b, &f, "startTicks"), p.StartTicks, 10)
		}
		if p.Seal != "" {
			b, ok = appendField(b, &f, "seal", p.Seal, ok)
		}
		b = append(b, '}')
	}
	return append(b, '}'), ok
}

func appendCondition(b []byte, c *metav1.Condition, ok bool) ([]byte, bool) {
	b = append(b, '{')
	first := true
	b, ok = appendField(b, &first, "type", c.Type, ok)
	b, ok = appendField(b, &first, "status", string(c.Status), ok)
	if c.ObservedGeneration != 0 {
		b = strconv.AppendInt(appendKey(b, &first, "observedGeneration"), c.ObservedGeneration, 10)
	}
	b = appendTime(appendKey(b, &first, "lastTransitionTime"), c.LastTransitionTime)
	b, ok = appendField(b, &first, "reason", c.Reason, ok)
	b, ok = appendField(b, &first, "message", c.Message, ok)
	return append(b, '}'), ok
}

// appendKey appends a member's name (plain ASCII) and colon, after a comma unless first.
func appendKey(b []byte, first *bool, key string) []byte {
	if !*first {
		b = append(b, ',')
	}
	*first = false
	b = append(b, '"')
	b = append(b, key...)
	return append(b, '"', ':')
}

func appendField(b []byte, first *bool, key, value string, ok bool) ([]byte, bool) {
	return appendString(appendKey(b, first, key), value, ok)
}

// appendString appends s quoted as json.Marshal quotes it when it holds nothing json escapes
// (printable ASCII but for ", \, <, > and &); else it reports false.
func appendString(b []byte, s string, ok bool) ([]byte, bool) {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c > 0x7e || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			return b, false
		}
	}
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"'), ok
}

// appendTime appends metav1.Time's JSON: null when zero, else RFC 3339 in UTC.
func appendTime(b []byte, t metav1.Time) []byte {
	if t.IsZero() {
		return append(b, "null"...)
	}
	b = append(b, '"')
	b = t.UTC().AppendFormat(b, time.RFC3339)
	return append(b, '"')
}

// appendRaw appends a RawExtension as json.Marshal does (its bytes compacted, after checking
// they are JSON) when they are JSON that json would not escape; else it reports false.
func appendRaw(b []byte, r *runtime.RawExtension, ok bool) ([]byte, bool) {
	if r.Raw == nil {
		if r.Object != nil {
			return b, false
		}
		return append(b, "null"...), ok
	}
	if len(r.Raw) == 0 || !jsonStart[r.Raw[0]] {
		return b, false // not JSON by RawExtension's guess: converted, or an error
	}
	buf := bytes.NewBuffer(b)
	if err := json.Compact(buf, r.Raw); err != nil {
		return b, false // json.Marshal fails the same way
	}
	out := buf.Bytes()
	seg := out[len(b):]
	for i, c := range seg {
		if c == '<' || c == '>' || c == '&' || (c == 0xe2 && i+2 < len(seg) && seg[i+1] == 0x80 && seg[i+2]&^1 == 0xa8) {
			return b, false // json.Marshal escapes these (U+2028 and U+2029 too)
		}
	}
	return out, ok
}

// jsonStart holds the first bytes RawExtension takes for JSON.
var jsonStart = func() (s [256]bool) {
	for _, c := range []byte("\t\r\n {[ntf\"-0123456789") {
		s[c] = true
	}
	return s
}()
