package wire

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// Task report statuses (contract section 4).
const (
	StatusRunning   = "RUNNING"
	StatusCompleted = "COMPLETED"
	StatusFailed    = "FAILED"
)

// Heartbeat statuses (contract section 2).
const (
	StatusOnline   = "ONLINE"
	StatusDraining = "DRAINING"
)

// Decoder limits.
const (
	// MaxIntervalSeconds bounds the intervals accepted from a register response; larger
	// values are clamped to it.
	MaxIntervalSeconds = 24 * 60 * 60
	// MaxTimeoutSeconds bounds a task's timeout_seconds; larger values are clamped to it.
	MaxTimeoutSeconds = math.MaxInt32
)

// RegisterRequest is the body of POST /agents/register.
type RegisterRequest struct {
	Hostname     string            `json:"hostname"`
	Version      string            `json:"version"`
	OS           string            `json:"os"`
	Arch         string            `json:"arch"`
	Capabilities []string          `json:"capabilities"`
	Labels       map[string]string `json:"labels,omitempty"`
	// AgentID is sent only when the agent already has one from an earlier run.
	AgentID string `json:"agent_id,omitempty"`
	// Policy describes what the agent will accept (v1.1); omitted when nil.
	Policy *PolicyReport `json:"policy,omitempty"`
}

// PolicyReport is the "policy" of a register request: the SHA-256 of the agent's effective
// policy in canonical form and a summary of it.
type PolicyReport struct {
	SHA256  string         `json:"sha256"`
	Summary map[string]any `json:"summary"`
}

// MarshalJSON sends capabilities as [] rather than null and omits empty labels and agent_id.
func (r RegisterRequest) MarshalJSON() ([]byte, error) {
	type plain RegisterRequest
	p := plain(r)
	if p.Capabilities == nil {
		p.Capabilities = []string{}
	}
	return json.Marshal(p)
}

// RegisterResponse is the answer to POST /agents/register.
type RegisterResponse struct {
	// AgentID comes from "agent_id", or from the legacy "id" when agent_id is absent or empty.
	AgentID string `json:"agent_id"`
	// Token, when set, replaces the enrollment token for every later call.
	Token string `json:"token,omitempty"`
	// HeartbeatIntervalSeconds and PollIntervalSeconds override the configured defaults when
	// positive; zero means absent (or an unusable value, which is ignored).
	HeartbeatIntervalSeconds float64 `json:"heartbeat_interval_seconds,omitempty"`
	PollIntervalSeconds      float64 `json:"poll_interval_seconds,omitempty"`
	// Features are the optional behaviours the orchestrator asks for (v1.1: "progress").
	Features []string `json:"features,omitempty"`
}

// HeartbeatInterval returns HeartbeatIntervalSeconds as a duration (0 when absent).
func (r RegisterResponse) HeartbeatInterval() time.Duration {
	return secondsToDuration(r.HeartbeatIntervalSeconds)
}

// PollInterval returns PollIntervalSeconds as a duration (0 when absent).
func (r RegisterResponse) PollInterval() time.Duration {
	return secondsToDuration(r.PollIntervalSeconds)
}

func secondsToDuration(s float64) time.Duration {
	if !(s > 0) {
		return 0
	}
	return time.Duration(min(s, MaxIntervalSeconds) * float64(time.Second))
}

// UnmarshalJSON decodes liberally: agent_id or legacy id (a string or a number), intervals
// as numbers or numeric strings (negative or unusable values are ignored). A response
// without any agent id is an error.
func (r *RegisterResponse) UnmarshalJSON(b []byte) error {
	var w struct {
		AgentID           json.RawMessage `json:"agent_id"`
		ID                json.RawMessage `json:"id"`
		Token             json.RawMessage `json:"token"`
		HeartbeatInterval json.RawMessage `json:"heartbeat_interval_seconds"`
		PollInterval      json.RawMessage `json:"poll_interval_seconds"`
		Features          json.RawMessage `json:"features"`
	}
	if err := decodeObject(b, &w); err != nil {
		return fmt.Errorf("register response: %w", err)
	}
	id, err := decodeStringOrNumber(w.AgentID)
	if err != nil {
		return fmt.Errorf("register response: agent_id %w", err)
	}
	if strings.TrimSpace(id) == "" {
		if id, err = decodeStringOrNumber(w.ID); err != nil {
			return fmt.Errorf("register response: id %w", err)
		}
	}
	if strings.TrimSpace(id) == "" {
		return errors.New("register response: missing agent_id")
	}
	var token string
	if !isNull(w.Token) {
		if err := json.Unmarshal(w.Token, &token); err != nil {
			return errors.New("register response: token must be a string")
		}
		if checkToken(token) != nil {
			// Saved and used, it would make every later request fail; never show it.
			return errors.New("register response: token is not a valid header value")
		}
	}
	*r = RegisterResponse{
		AgentID:                  id,
		Token:                    token,
		HeartbeatIntervalSeconds: decodeInterval(w.HeartbeatInterval),
		PollIntervalSeconds:      decodeInterval(w.PollInterval),
		Features:                 decodeFeatures(w.Features),
	}
	return nil
}

// decodeFeatures returns the strings of a features list; anything else is ignored.
func decodeFeatures(raw json.RawMessage) []string {
	var list []any
	if isNull(raw) || json.Unmarshal(raw, &list) != nil {
		return nil
	}
	var out []string
	for _, v := range list {
		if s, ok := v.(string); ok {
			out = append(out, s)
		}
	}
	return out
}

func decodeInterval(raw json.RawMessage) float64 {
	v, ok, err := decodeNumber(raw)
	if err != nil || !ok || !(v > 0) {
		return 0
	}
	return min(v, MaxIntervalSeconds)
}

// DecodeRegisterResponse decodes a register response body (see RegisterResponse.UnmarshalJSON).
func DecodeRegisterResponse(body []byte) (*RegisterResponse, error) {
	r := new(RegisterResponse)
	if err := r.UnmarshalJSON(body); err != nil {
		return nil, err
	}
	return r, nil
}

// HeartbeatRequest is the body of POST /agents/{agent_id}/heartbeat.
type HeartbeatRequest struct {
	// Status is StatusOnline or StatusDraining.
	Status        string `json:"status"`
	Version       string `json:"version"`
	UptimeSeconds int64  `json:"uptime_seconds"`
	// RunningTaskIDs is always sent as an array, [] when empty.
	RunningTaskIDs []string   `json:"running_task_ids"`
	QueuedTasks    int        `json:"queued_tasks"`
	System         SystemInfo `json:"system"`
	// Stacks are the Compose projects the agent manages and their last observed state (v1.1),
	// always sent as an array, [] when there is none.
	Stacks []StackReport `json:"stacks"`
}

// StackReport is one entry of a heartbeat's "stacks" (v1.1).
type StackReport struct {
	Project  string `json:"project"`
	Revision int64  `json:"revision"`
	// Available is true when every service of the revision was ready at the last observation.
	Available bool `json:"available"`
	// DegradedServices names the services found stopped, exited non-zero, restarting,
	// unhealthy or missing; always an array, [] when there is none.
	DegradedServices []string `json:"degraded_services"`
}

// MarshalJSON sends running_task_ids, stacks and each stack's degraded_services as [] rather
// than null and clamps values that cannot be valid (negative counts, a non-finite load) to
// zero.
func (r HeartbeatRequest) MarshalJSON() ([]byte, error) {
	type plain HeartbeatRequest
	p := plain(r)
	if p.RunningTaskIDs == nil {
		p.RunningTaskIDs = []string{}
	}
	stacks := make([]StackReport, len(p.Stacks))
	for i, st := range p.Stacks {
		if st.DegradedServices == nil {
			st.DegradedServices = []string{}
		}
		stacks[i] = st
	}
	p.Stacks = stacks
	p.UptimeSeconds = max(p.UptimeSeconds, 0)
	p.QueuedTasks = max(p.QueuedTasks, 0)
	if math.IsNaN(p.System.Load1) || math.IsInf(p.System.Load1, 0) || p.System.Load1 < 0 {
		p.System.Load1 = 0
	}
	return json.Marshal(p)
}

// SystemInfo is the "system" object of a heartbeat.
type SystemInfo struct {
	Load1             float64 `json:"load1"`
	MemTotalBytes     uint64  `json:"mem_total_bytes"`
	MemAvailableBytes uint64  `json:"mem_available_bytes"`
	DiskFreeBytes     uint64  `json:"disk_free_bytes"`
}

// HeartbeatResponse is the answer to a heartbeat.
type HeartbeatResponse struct {
	// CancelTaskIDs lists tasks the agent must cancel if it runs them.
	CancelTaskIDs []string `json:"cancel_task_ids,omitempty"`
}

// UnmarshalJSON decodes liberally: an empty body, null or {} mean nothing to cancel; ids may be
// strings or numbers; empty, null and duplicate entries are dropped.
func (r *HeartbeatResponse) UnmarshalJSON(b []byte) error {
	b = trimJSONSpace(b)
	if len(b) == 0 || isNull(b) {
		*r = HeartbeatResponse{}
		return nil
	}
	var w struct {
		Cancel json.RawMessage `json:"cancel_task_ids"`
	}
	if err := decodeObject(b, &w); err != nil {
		return fmt.Errorf("heartbeat response: %w", err)
	}
	var ids []string
	if !isNull(w.Cancel) {
		var raw []json.RawMessage
		if err := json.Unmarshal(w.Cancel, &raw); err != nil {
			return errors.New("heartbeat response: cancel_task_ids must be an array")
		}
		seen := make(map[string]struct{}, len(raw))
		for _, e := range raw {
			id, err := decodeStringOrNumber(e)
			if err != nil || strings.TrimSpace(id) == "" {
				continue
			}
			if _, dup := seen[id]; !dup {
				seen[id] = struct{}{}
				ids = append(ids, id)
			}
		}
	}
	*r = HeartbeatResponse{CancelTaskIDs: ids}
	return nil
}

// DecodeHeartbeatResponse decodes a heartbeat response body (see HeartbeatResponse.UnmarshalJSON).
func DecodeHeartbeatResponse(body []byte) (*HeartbeatResponse, error) {
	r := new(HeartbeatResponse)
	if err := r.UnmarshalJSON(body); err != nil {
		return nil, err
	}
	return r, nil
}

// Task is a task handed out by GET /tasks/next.
type Task struct {
	ID   string
	Type string
	// Payload is the raw payload; an absent or null payload is kept as the JSON literal null
	// so that the executor can refuse it.
	Payload json.RawMessage
	// TimeoutSeconds is 0 when absent: the agent default applies.
	TimeoutSeconds int
	// CreatedAt is zero when absent or not RFC 3339.
	CreatedAt time.Time
	// Origin holds what the agent checks a task's origin with (v1.1), nil when the task carries
	// neither not_after nor signature.
	Origin *TaskOrigin
}

// TaskOrigin is kept as received for the expiry and signature checks (v1.1).
type TaskOrigin struct {
	// NotAfter is not_after's string ("" when absent).
	NotAfter string
	// Signature is the detached JWS ("" when absent).
	Signature string
	// TimeoutRaw is timeout_seconds' JSON text (nil when absent or null).
	TimeoutRaw json.RawMessage
}

// MarshalJSON encodes a task as the orchestrator sends it.
func (t Task) MarshalJSON() ([]byte, error) {
	w := struct {
		ID             string          `json:"id"`
		Type           string          `json:"type"`
		Payload        json.RawMessage `json:"payload"`
		TimeoutSeconds json.RawMessage `json:"timeout_seconds,omitempty"`
		CreatedAt      string          `json:"created_at,omitempty"`
		NotAfter       string          `json:"not_after,omitempty"`
		Signature      string          `json:"signature,omitempty"`
	}{ID: t.ID, Type: t.Type, Payload: t.Payload}
	if t.TimeoutSeconds > 0 {
		w.TimeoutSeconds = json.RawMessage(strconv.Itoa(t.TimeoutSeconds))
	}
	if o := t.Origin; o != nil {
		// As received: the signature covers timeout_seconds' value as sent.
		w.NotAfter, w.Signature = o.NotAfter, o.Signature
		if len(o.TimeoutRaw) > 0 && json.Valid(o.TimeoutRaw) {
			w.TimeoutSeconds = o.TimeoutRaw
		}
	}
	if len(w.Payload) == 0 {
		w.Payload = json.RawMessage("null")
	}
	var err error
	if w.CreatedAt, err = FormatTime(t.CreatedAt); err != nil {
		return nil, fmt.Errorf("task created_at: %w", err)
	}
	return json.Marshal(w)
}

// UnmarshalJSON decodes a task liberally; see DecodeTask.
func (t *Task) UnmarshalJSON(b []byte) error {
	d, err := DecodeTask(b)
	if err != nil {
		return err
	}
	d.Payload = bytes.Clone(d.Payload) // b is the caller's
	*t = *d
	return nil
}

// InvalidTaskError is returned by DecodeTask (and NextTask) for a task body the agent cannot
// run. ID is set when the task id could still be read: the task is then assigned to the agent,
// which should report it FAILED with this error rather than drop it.
type InvalidTaskError struct {
	ID     string
	Reason string
	// Unstorable is set when ID can be reported under but must not be stored: it is longer
	// than MaxTaskIDBytes (docs/orchestrator-api.md, "Task ids").
	Unstorable bool
}

func (e *InvalidTaskError) Error() string {
	switch {
	case e.ID == "":
		return "invalid task: " + e.Reason
	case len(e.ID) > 64:
		return "invalid task: " + e.Reason // the id is long: the report is made under it anyway
	}
	return fmt.Sprintf("invalid task %q: %s", e.ID, e.Reason)
}

// DecodeTask decodes a next-task body liberally. Unknown fields are ignored; id may be a JSON
// string or number; timeout_seconds may be an integer, a float (rounded up), a numeric string,
// null or absent; an absent or null payload becomes the literal null; created_at is RFC 3339
// or ignored. A body that is not a JSON object, an empty or missing id or type, or an unusable
// timeout_seconds (negative or not a number) is an *InvalidTaskError.
//
// The Task's Payload shares body's memory.
func DecodeTask(body []byte) (*Task, error) {
	w, err := scanTaskFields(body)
	if err != nil {
		return nil, &InvalidTaskError{Reason: err.Error()}
	}
	id, err := decodeStringOrNumber(w.ID)
	if err != nil {
		return nil, &InvalidTaskError{Reason: "id " + err.Error()}
	}
	if strings.TrimSpace(id) == "" {
		return nil, &InvalidTaskError{Reason: "missing id"}
	}
	var ok bool
	if usable, err := checkTaskID(w.ID, id); err != nil {
		if !usable {
			return nil, &InvalidTaskError{Reason: err.Error()}
		}
		return nil, &InvalidTaskError{ID: id, Reason: err.Error(), Unstorable: true}
	}
	t := &Task{ID: id, Payload: w.Payload}
	if t.Type, ok = decodeString(w.Type); !ok {
		return nil, &InvalidTaskError{ID: id, Reason: "type must be a non-empty string"}
	}
	if strings.TrimSpace(t.Type) == "" {
		return nil, &InvalidTaskError{ID: id, Reason: "type must be a non-empty string"}
	}
	if len(t.Payload) == 0 {
		t.Payload = json.RawMessage("null")
	}
	secs, ok, err := decodeNumber(w.TimeoutSeconds)
	switch {
	case err != nil:
		return nil, &InvalidTaskError{ID: id, Reason: "timeout_seconds " + err.Error()}
	case ok && secs < 0:
		return nil, &InvalidTaskError{ID: id, Reason: "timeout_seconds must not be negative"}
	case ok:
		t.TimeoutSeconds = int(math.Ceil(min(secs, MaxTimeoutSeconds)))
	}
	if !isNull(w.NotAfter) || !isNull(w.Signature) {
		o := &TaskOrigin{}
		if !isNull(w.TimeoutSeconds) {
			o.TimeoutRaw = append(json.RawMessage(nil), trimJSONSpace(w.TimeoutSeconds)...)
		}
		if o.NotAfter, ok = decodeString(w.NotAfter); !ok && !isNull(w.NotAfter) {
			return nil, &InvalidTaskError{ID: id, Reason: "not_after must be an RFC 3339 string"}
		}
		if o.Signature, ok = decodeString(w.Signature); !ok && !isNull(w.Signature) {
			return nil, &InvalidTaskError{ID: id, Reason: "signature must be a string"}
		}
		t.Origin = o
	}
	if created, ok := decodeString(w.CreatedAt); ok {
		ts, err := time.Parse(time.RFC3339Nano, strings.TrimSpace(created))
		if y := ts.UTC().Year(); err == nil && y >= 0 && y <= 9999 {
			t.CreatedAt = ts.UTC()
		}
	}
	return t, nil
}

// Report is the body of PATCH /tasks/{task_id}.
type Report struct {
	AgentID string `json:"agent_id"`
	// Status is StatusRunning, StatusCompleted or StatusFailed.
	Status string `json:"status"`
	// Result is omitted when nil (or the literal null). It is not sent with RUNNING.
	Result json.RawMessage `json:"result,omitempty"`
	// Error is sent only with FAILED.
	Error      string     `json:"error,omitempty"`
	StartedAt  *time.Time `json:"started_at,omitempty"`
	FinishedAt *time.Time `json:"finished_at,omitempty"`
	Events     []Event    `json:"events,omitempty"`
}

// IsFinal reports whether the status is COMPLETED or FAILED.
func (r Report) IsFinal() bool { return r.Status == StatusCompleted || r.Status == StatusFailed }

// MarshalJSON sends times as RFC 3339 UTC, error only with FAILED, and neither result nor
// finished_at nor error with RUNNING (see appendReport).
func (r Report) MarshalJSON() ([]byte, error) { return marshalReport(r) }

// Event is one entry of a report's event log.
type Event struct {
	Time    time.Time `json:"time"`
	Type    string    `json:"type"`
	Message string    `json:"message,omitempty"`
}

// MarshalJSON sends the time as RFC 3339 UTC (omitted when zero).
func (e Event) MarshalJSON() ([]byte, error) {
	return appendEvent(make([]byte, 0, 64+len(e.Type)+len(e.Message)), e)
}

// FormatTime formats t as RFC 3339 in UTC with the sub-second digits it has; zero gives "".
func FormatTime(t time.Time) (string, error) {
	if t.IsZero() {
		return "", nil
	}
	t = t.UTC()
	if y := t.Year(); y < 0 || y > 9999 {
		return "", fmt.Errorf("year %d outside [0,9999]", y)
	}
	return t.Format(time.RFC3339Nano), nil
}

// trimJSONSpace trims the four JSON whitespace bytes.
func trimJSONSpace(b []byte) []byte {
	isSpace := func(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }
	for len(b) > 0 && isSpace(b[0]) {
		b = b[1:]
	}
	for len(b) > 0 && isSpace(b[len(b)-1]) {
		b = b[:len(b)-1]
	}
	return b
}

func isNull(raw json.RawMessage) bool {
	raw = trimJSONSpace(raw)
	return len(raw) == 0 || string(raw) == "null"
}

// decodeObject decodes a body that must be a JSON object.
func decodeObject(body []byte, v any) error {
	body = trimJSONSpace(body)
	if len(body) == 0 {
		return errors.New("empty body")
	}
	if body[0] != '{' {
		return errors.New("body is not a JSON object")
	}
	if err := json.Unmarshal(body, v); err != nil {
		return fmt.Errorf("malformed JSON: %w", err)
	}
	return nil
}

// decodeString returns a JSON string's value; ok is false for anything else (null and absent
// included).
func decodeString(raw json.RawMessage) (string, bool) {
	raw = trimJSONSpace(raw)
	if len(raw) < 2 || raw[0] != '"' {
		return "", false
	}
	if raw[len(raw)-1] == '"' && plainString(raw[1:len(raw)-1]) {
		return string(raw[1 : len(raw)-1]), true // the common case, without a decoder
	}
	return decodeJSONString(raw)
}

func decodeJSONString(raw json.RawMessage) (string, bool) {
	var s string
	err := json.Unmarshal(raw, &s)
	return s, err == nil
}

// decodeStringOrNumber returns a JSON string's value or a JSON number's literal text; null or
// absent gives "".
func decodeStringOrNumber(raw json.RawMessage) (string, error) {
	raw = trimJSONSpace(raw)
	if isNull(raw) {
		return "", nil
	}
	switch c := raw[0]; {
	case c == '"':
		if len(raw) >= 2 && raw[len(raw)-1] == '"' && plainString(raw[1:len(raw)-1]) {
			return string(raw[1 : len(raw)-1]), nil // the common case, without a decoder (100k cancel ids)
		}
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return "", errors.New("must be a string or a number")
		}
		return s, nil
	case c == '-' || c >= '0' && c <= '9':
		var n json.Number
		if err := json.Unmarshal(raw, &n); err != nil {
			return "", errors.New("must be a string or a number")
		}
		return n.String(), nil
	default:
		return "", errors.New("must be a string or a number")
	}
}

// plainString reports whether b, the inside of a JSON string literal, needs no decoding:
// printable ASCII without quotes or backslashes.
func plainString(b []byte) bool {
	for _, c := range b {
		if c < 0x20 || c >= 0x7f || c == '"' || c == '\\' {
			return false
		}
	}
	return true
}

// decodeNumber decodes a JSON number or a string holding one; ok is false for null or absent.
func decodeNumber(raw json.RawMessage) (v float64, ok bool, err error) {
	raw = trimJSONSpace(raw)
	if isNull(raw) {
		return 0, false, nil
	}
	text := string(raw)
	if raw[0] == '"' {
		if json.Unmarshal(raw, &text) != nil {
			return 0, false, errors.New("must be a number")
		}
		text = strings.TrimSpace(text)
	}
	var n json.Number
	// Unmarshalling a quoted string into json.Number validates it as a JSON number literal,
	// so "NaN", "Inf", hex and underscores are refused.
	if json.Unmarshal([]byte(strconv.Quote(text)), &n) != nil || n == "" {
		return 0, false, errors.New("must be a number")
	}
	f, err := strconv.ParseFloat(n.String(), 64)
	if err != nil && !errors.Is(err, strconv.ErrRange) {
		return 0, false, errors.New("must be a number")
	}
	// ErrRange gives ±Inf for huge values and 0 for tiny ones; callers clamp.
	return f, true, nil
}

// taskFields are the raw values of the members of a next-task body that DecodeTask reads, nil
// when absent: slices of the body, matched to the names as encoding/json matches struct fields
// (ignoring case, the last of a name winning).
type taskFields struct {
	ID, Type, Payload, TimeoutSeconds, CreatedAt, NotAfter, Signature json.RawMessage
}

// scanTaskFields finds the members of a next-task body that must be a JSON object, without
// copying them: what json.Unmarshal into a struct of json.RawMessage fields gives, and its
// error for a body that is not valid JSON.
func scanTaskFields(body []byte) (taskFields, error) {
	var f taskFields
	body = trimJSONSpace(body)
	switch {
	case len(body) == 0:
		return f, errors.New("empty body")
	case body[0] != '{':
		return f, errors.New("body is not a JSON object")
	case !json.Valid(body):
		return f, decodeObject(body, &struct{}{}) // the decoder's own words
	}
	// Valid JSON: each member is a string key, a colon and one value.
	for i := skipJSONSpace(body, 1); body[i] != '}'; {
		keyEnd := skipJSONString(body, i)
		key := body[i+1 : keyEnd-1]
		i = skipJSONSpace(body, skipJSONSpace(body, keyEnd)+1)
		end := skipJSONValue(body, i)
		if field := f.named(key); field != nil {
			*field = body[i:end]
		}
		if i = skipJSONSpace(body, end); body[i] == ',' {
			i = skipJSONSpace(body, i+1)
		}
	}
	return f, nil
}

// named returns the field a member key (its JSON string literal's inside) stands for, or nil.
func (f *taskFields) named(key []byte) *json.RawMessage {
	if bytes.IndexByte(key, '\\') >= 0 {
		var name string
		if json.Unmarshal([]byte(`"`+string(key)+`"`), &name) != nil {
			return nil
		}
		key = []byte(name)
	}
	for _, c := range [...]struct {
		name  string
		field *json.RawMessage
	}{
		{"id", &f.ID}, {"type", &f.Type}, {"payload", &f.Payload}, {"timeout_seconds", &f.TimeoutSeconds},
		{"created_at", &f.CreatedAt}, {"not_after", &f.NotAfter}, {"signature", &f.Signature},
	} {
		if bytes.EqualFold(key, []byte(c.name)) {
			return c.field
		}
	}
	return nil
}

func skipJSONSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

// skipJSONString returns the index after the string literal of valid JSON starting at i.
func skipJSONString(b []byte, i int) int {
	for i++; ; i++ {
		switch b[i] {
		case '\\':
			i++
		case '"':
			return i + 1
		}
	}
}

// skipJSONValue returns the index after the value of valid JSON starting at i.
func skipJSONValue(b []byte, i int) int {
	switch b[i] {
	case '"':
		return skipJSONString(b, i)
	case '{', '[':
		depth := 0
		for ; ; i++ {
			switch b[i] {
			case '"':
				i = skipJSONString(b, i) - 1
			case '{', '[':
				depth++
			case '}', ']':
				if depth--; depth == 0 {
					return i + 1
				}
			}
		}
	}
	for i < len(b) && b[i] != ',' && b[i] != '}' && b[i] != ']' && b[i] != ' ' && b[i] != '\t' && b[i] != '\n' && b[i] != '\r' {
		i++
	}
	return i
}
