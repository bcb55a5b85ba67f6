package wire

import (
	"bytes"
	"encoding/json"
	"errors"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestDecodeTask(t *testing.T) {
	t.Parallel()
	created := time.Date(2026, 11, 26, 10, 0, 0, 0, time.UTC)
	tests := []struct {
		name      string
		body      string
		want      *Task
		wantErr   string // substring of the error
		wantErrID string
	}{
		{
			name: "contract example",
			body: `{"id": "t-41", "type": "SHELL", "payload": {"cmd": "df -h"}, "timeout_seconds": 120, "created_at": "2026-11-26T10:00:00Z"}`,
			want: &Task{ID: "t-41", Type: "SHELL", Payload: json.RawMessage(`{"cmd": "df -h"}`), TimeoutSeconds: 120, CreatedAt: created},
		},
		{
			name: "numeric id, unknown fields, no timeout",
			body: `{"id": 41, "type": "ECHO", "payload": {"message": "hi"}, "priority": 3, "meta": {"a": [1]}}`,
			want: &Task{ID: "41", Type: "ECHO", Payload: json.RawMessage(`{"message": "hi"}`)},
		},
		{
			name: "big numeric id keeps its digits",
			body: `{"id": 123456789012345678901234567890, "type": "ECHO", "payload": {}}`,
			want: &Task{ID: "123456789012345678901234567890", Type: "ECHO", Payload: json.RawMessage(`{}`)},
		},
		{
			name: "float timeout rounds up, offset time becomes UTC",
			body: `{"id": "t", "type": "ECHO", "payload": {}, "timeout_seconds": 1.2, "created_at": "2026-11-26T11:00:00+01:00"}`,
			want: &Task{ID: "t", Type: "ECHO", Payload: json.RawMessage(`{}`), TimeoutSeconds: 2, CreatedAt: created},
		},
		{
			name: "string timeout",
			body: `{"id": "t", "type": "ECHO", "payload": {}, "timeout_seconds": " 30 "}`,
			want: &Task{ID: "t", Type: "ECHO", Payload: json.RawMessage(`{}`), TimeoutSeconds: 30},
		},
		{
			name: "null timeout and zero timeout mean default",
			body: `{"id": "t", "type": "ECHO", "payload": {}, "timeout_seconds": null}`,
			want: &Task{ID: "t", Type: "ECHO", Payload: json.RawMessage(`{}`)},
		},
		{
			name: "huge timeout is clamped",
			body: `{"id": "t", "type": "ECHO", "payload": {}, "timeout_seconds": 1e300}`,
			want: &Task{ID: "t", Type: "ECHO", Payload: json.RawMessage(`{}`), TimeoutSeconds: MaxTimeoutSeconds},
		},
		{
			name: "absent payload is null",
			body: `{"id": "t", "type": "ECHO"}`,
			want: &Task{ID: "t", Type: "ECHO", Payload: json.RawMessage(`null`)},
		},
		{
			name: "null payload is null",
			body: `{"id": "t", "type": "ECHO", "payload": null}`,
			want: &Task{ID: "t", Type: "ECHO", Payload: json.RawMessage(`null`)},
		},
		{
			name: "bad created_at is ignored",
			body: `{"id": "t", "type": "ECHO", "payload": [1], "created_at": "yesterday"}`,
			want: &Task{ID: "t", Type: "ECHO", Payload: json.RawMessage(`[1]`)},
		},
		{name: "empty", body: ``, wantErr: "empty body"},
		{name: "not an object", body: `["t"]`, wantErr: "not a JSON object"},
		{name: "null", body: `null`, wantErr: "not a JSON object"},
		{name: "truncated", body: `{"id": "t", "type": "EC`, wantErr: "malformed JSON"},
		{name: "missing id", body: `{"type": "ECHO"}`, wantErr: "missing id"},
		{name: "blank id", body: `{"id": "  ", "type": "ECHO"}`, wantErr: "missing id"},
		{name: "id of wrong type", body: `{"id": true, "type": "ECHO"}`, wantErr: "id must be a string or a number"},
		{name: "missing type", body: `{"id": "t-9"}`, wantErr: "type", wantErrID: "t-9"},
		{name: "empty type", body: `{"id": "t-9", "type": ""}`, wantErr: "type", wantErrID: "t-9"},
		{name: "numeric type", body: `{"id": "t-9", "type": 5}`, wantErr: "type", wantErrID: "t-9"},
		{name: "negative timeout", body: `{"id": "t-9", "type": "ECHO", "timeout_seconds": -5}`, wantErr: "negative", wantErrID: "t-9"},
		{name: "word timeout", body: `{"id": "t-9", "type": "ECHO", "timeout_seconds": "soon"}`, wantErr: "timeout_seconds", wantErrID: "t-9"},
		{name: "NaN timeout", body: `{"id": "t-9", "type": "ECHO", "timeout_seconds": "NaN"}`, wantErr: "timeout_seconds", wantErrID: "t-9"},
		{name: "bool timeout", body: `{"id": "t-9", "type": "ECHO", "timeout_seconds": true}`, wantErr: "timeout_seconds", wantErrID: "t-9"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got, err := DecodeTask([]byte(tc.body))
			if tc.wantErr != "" {
				ite, ok := errors.AsType[*InvalidTaskError](err)
				if !ok || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("DecodeTask error = %v, want *InvalidTaskError mentioning %q", err, tc.wantErr)
				}
				if ite.ID != tc.wantErrID {
					t.Errorf("InvalidTaskError.ID = %q, want %q", ite.ID, tc.wantErrID)
				}
				return
			}
			if err != nil {
				t.Fatalf("DecodeTask: %v", err)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("task (-want +got):\n%s", diff)
			}
		})
	}
}

func TestTaskJSONRoundTrip(t *testing.T) {
	t.Parallel()
	in := Task{ID: "t-1", Type: "ECHO", Payload: json.RawMessage(`{"message":"hi"}`), TimeoutSeconds: 5,
		CreatedAt: time.Date(2026, 1, 2, 3, 4, 5, 600, time.FixedZone("X", -7200))}
	b, err := json.Marshal(in)
	if err != nil {
		t.Fatal(err)
	}
	if want := `{"id":"t-1","type":"ECHO","payload":{"message":"hi"},"timeout_seconds":5,"created_at":"2026-01-02T05:04:05.0000006Z"}`; string(b) != want {
		t.Errorf("Marshal = %s, want %s", b, want)
	}
	var out Task
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(in, out); diff != "" {
		t.Errorf("round trip (-want +got):\n%s", diff)
	}
	b, _ = json.Marshal(Task{ID: "t-2", Type: "ECHO"})
	if want := `{"id":"t-2","type":"ECHO","payload":null}`; string(b) != want {
		t.Errorf("Marshal = %s, want %s", b, want)
	}
}

func TestMarshalEdgeCases(t *testing.T) {
	t.Parallel()
	b, err := json.Marshal(HeartbeatRequest{Status: StatusOnline, UptimeSeconds: -5, QueuedTasks: -1, System: SystemInfo{Load1: math.NaN()}})
	if err != nil {
		t.Fatalf("Marshal heartbeat with NaN load: %v", err)
	}
	want := `{"status":"ONLINE","version":"","uptime_seconds":0,"running_task_ids":[],"queued_tasks":0,"system":{"load1":0,"mem_total_bytes":0,"mem_available_bytes":0,"disk_free_bytes":0},"stacks":[]}`
	if string(b) != want {
		t.Errorf("Marshal = %s, want %s", b, want)
	}
	// v1.1: stacks and each stack's degraded_services are arrays, never null.
	b, _ = json.Marshal(HeartbeatRequest{Status: StatusOnline, Stacks: []StackReport{{Project: "app", Revision: 4, Available: true}, {Project: "db", Revision: 1, DegradedServices: []string{"db"}}}})
	if want := `"stacks":[{"project":"app","revision":4,"available":true,"degraded_services":[]},{"project":"db","revision":1,"available":false,"degraded_services":["db"]}]}`; !strings.HasSuffix(string(b), want) {
		t.Errorf("Marshal = %s, want it to end with %s", b, want)
	}
	bad := time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC)
	if _, err := json.Marshal(Report{AgentID: "a", Status: StatusCompleted, FinishedAt: &bad}); err == nil {
		t.Errorf("Marshal report with year 10000: no error")
	}
	b, _ = json.Marshal(Report{AgentID: "a", Status: StatusFailed, Events: []Event{{Type: "Cancelled"}}})
	if want := `{"agent_id":"a","status":"FAILED","events":[{"type":"Cancelled"}]}`; string(b) != want {
		t.Errorf("Marshal = %s, want %s", b, want)
	}
}

func TestReportDecodesWhatItEncodes(t *testing.T) {
	t.Parallel()
	s := time.Date(2026, 11, 26, 10, 0, 1, 0, time.UTC)
	f := s.Add(time.Second)
	in := Report{AgentID: "a", Status: StatusFailed, Result: json.RawMessage(`{"exit_code":1}`), Error: "exit status 1",
		StartedAt: &s, FinishedAt: &f, Events: []Event{{Time: s, Type: "Started", Message: "go"}}}
	b, err := json.Marshal(in)
	if err != nil {
		t.Fatal(err)
	}
	var out Report
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(in, out); diff != "" {
		t.Errorf("round trip (-want +got):\n%s", diff)
	}
}

func TestRegisterResponseIntervals(t *testing.T) {
	t.Parallel()
	r, err := DecodeRegisterResponse([]byte(`{"agent_id":"a","heartbeat_interval_seconds":1.5,"poll_interval_seconds":1e9}`))
	if err != nil {
		t.Fatal(err)
	}
	if got := r.HeartbeatInterval(); got != 1500*time.Millisecond {
		t.Errorf("HeartbeatInterval = %v", got)
	}
	if got := r.PollInterval(); got != MaxIntervalSeconds*time.Second {
		t.Errorf("PollInterval = %v, want clamped to %v", got, MaxIntervalSeconds*time.Second)
	}
	if got := (RegisterResponse{}).PollInterval(); got != 0 {
		t.Errorf("absent PollInterval = %v", got)
	}
}

func FuzzDecodeTask(f *testing.F) {
	for _, s := range []string{
		`{"id": "t-41", "type": "SHELL", "payload": {"cmd": "df -h"}, "timeout_seconds": 120, "created_at": "2026-11-26T10:00:00Z"}`,
		`{"id": 41, "type": "ECHO"}`,
		`{"id": "t", "type": "ECHO", "payload": null, "timeout_seconds": "1.5"}`,
		`{"id": "t", "type": "ECHO", "timeout_seconds": 1e400}`,
		`{"id": "t", "type": "ECHO", "timeout_seconds": " 1.5 ", "not_after": "2026-12-01T10:00:00Z", "signature": "e30..c2ln"}`,
		`{"id": "t", "type": "ECHO", "not_after": 5}`,
		`{"id": -0.5e-7, "type": "\u0000", "created_at": "2026-11-26T10:00:00.123456789+14:00"}`,
		`{"ID": "x", "Type": "y", "payload": "\ud800"}`,
		`[]`, `null`, ``, `{`, `{"id":{}}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		task, err := DecodeTask(body)
		if err != nil {
			if _, ok := errors.AsType[*InvalidTaskError](err); !ok {
				t.Fatalf("error %v is not an *InvalidTaskError", err)
			}
			if task != nil {
				t.Fatalf("task %+v returned with error", task)
			}
			return
		}
		if strings.TrimSpace(task.ID) == "" || strings.TrimSpace(task.Type) == "" {
			t.Fatalf("accepted task without id or type: %+v", task)
		}
		if task.TimeoutSeconds < 0 || task.TimeoutSeconds > MaxTimeoutSeconds || !json.Valid(task.Payload) {
			t.Fatalf("accepted task with bad timeout or payload: %+v", task)
		}
		enc, err := json.Marshal(task)
		if err != nil {
			t.Fatalf("re-encode %+v: %v", task, err)
		}
		again, err := DecodeTask(enc)
		if err != nil {
			t.Fatalf("decode re-encoded %s: %v", enc, err)
		}
		want := *task
		var compact bytes.Buffer
		_ = json.Compact(&compact, want.Payload)
		want.Payload = compact.Bytes()
		if diff := cmp.Diff(&want, again); diff != "" {
			t.Fatalf("round trip (-want +got):\n%s", diff)
		}
	})
}

func FuzzDecodeRegisterResponse(f *testing.F) {
	for _, s := range []string{
		`{"agent_id": "a-7f3c", "token": "optional-per-agent-token", "heartbeat_interval_seconds": 30, "poll_interval_seconds": 5}`,
		`{"id": "legacy"}`, `{"id": 7, "agent_id": null}`, `{"agent_id": "", "id": "x"}`,
		`{"agent_id": "a", "heartbeat_interval_seconds": "-1", "poll_interval_seconds": 1e999}`,
		`{"agent_id": "a", "token": 5}`, `{}`, `[]`, `null`, ``,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		r, err := DecodeRegisterResponse(body)
		if err != nil {
			if r != nil {
				t.Fatalf("response %+v returned with error", r)
			}
			return
		}
		if strings.TrimSpace(r.AgentID) == "" {
			t.Fatalf("accepted response without agent id: %+v", r)
		}
		for _, v := range []float64{r.HeartbeatIntervalSeconds, r.PollIntervalSeconds} {
			if !(v >= 0 && v <= MaxIntervalSeconds) {
				t.Fatalf("interval %v out of range", v)
			}
		}
		if r.HeartbeatInterval() < 0 || r.PollInterval() < 0 {
			t.Fatalf("negative duration from %+v", r)
		}
		enc, err := json.Marshal(r)
		if err != nil {
			t.Fatalf("re-encode %+v: %v", r, err)
		}
		again, err := DecodeRegisterResponse(enc)
		if err != nil {
			t.Fatalf("decode re-encoded %s: %v", enc, err)
		}
		if diff := cmp.Diff(r, again); diff != "" {
			t.Fatalf("round trip (-want +got):\n%s", diff)
		}
	})
}

func FuzzDecodeHeartbeatResponse(f *testing.F) {
	for _, s := range []string{
		``, `{}`, `null`, ` `, `{"cancel_task_ids": ["t-41"]}`, `{"cancel_task_ids": [1, "1", null, "", "t"]}`,
		`{"cancel_task_ids": null}`, `{"cancel_task_ids": "t"}`, `[]`, `"x"`, `{"cancel_task_ids": [[]]}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		r, err := DecodeHeartbeatResponse(body)
		if err != nil {
			if r != nil {
				t.Fatalf("response %+v returned with error", r)
			}
			return
		}
		seen := map[string]bool{}
		for _, id := range r.CancelTaskIDs {
			if strings.TrimSpace(id) == "" || seen[id] {
				t.Fatalf("blank or duplicate id in %q", r.CancelTaskIDs)
			}
			seen[id] = true
		}
		enc, err := json.Marshal(r)
		if err != nil {
			t.Fatalf("re-encode %+v: %v", r, err)
		}
		again, err := DecodeHeartbeatResponse(enc)
		if err != nil {
			t.Fatalf("decode re-encoded %s: %v", enc, err)
		}
		if diff := cmp.Diff(r, again); diff != "" {
			t.Fatalf("round trip (-want +got):\n%s", diff)
		}
	})
}
