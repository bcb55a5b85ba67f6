package wire

import (
	"bytes"
	"encoding/json"
	"testing"
	"time"
)

// referenceReport is the report encoding of before appendReport: wrapper structs through
// encoding/json. appendReport must give the same bytes.
func referenceReport(r Report) ([]byte, error) {
	type event struct {
		Time    string `json:"time,omitempty"`
		Type    string `json:"type"`
		Message string `json:"message,omitempty"`
	}
	w := struct {
		AgentID    string          `json:"agent_id"`
		Status     string          `json:"status"`
		Result     json.RawMessage `json:"result,omitempty"`
		Error      string          `json:"error,omitempty"`
		StartedAt  string          `json:"started_at,omitempty"`
		FinishedAt string          `json:"finished_at,omitempty"`
		Events     []event         `json:"events,omitempty"`
	}{AgentID: r.AgentID, Status: r.Status}
	var err error
	if r.StartedAt != nil {
		if w.StartedAt, err = FormatTime(*r.StartedAt); err != nil {
			return nil, err
		}
	}
	if r.Status != StatusRunning {
		if !isNull(r.Result) {
			w.Result = r.Result
		}
		if r.FinishedAt != nil {
			if w.FinishedAt, err = FormatTime(*r.FinishedAt); err != nil {
				return nil, err
			}
		}
	}
	if r.Status == StatusFailed {
		w.Error = r.Error
	}
	for _, e := range r.Events {
		ts, err := FormatTime(e.Time)
		if err != nil {
			return nil, err
		}
		w.Events = append(w.Events, event{Time: ts, Type: e.Type, Message: e.Message})
	}
	return json.Marshal(w)
}

// checkSameAsReference fails unless marshalReport and json.Marshal of r both give the bytes of
// referenceReport, or all three fail.
func checkSameAsReference(t *testing.T, r Report) {
	t.Helper()
	want, wantErr := referenceReport(r)
	got, err := marshalReport(r)
	if (err != nil) != (wantErr != nil) {
		t.Fatalf("marshalReport error %v, encoding/json error %v", err, wantErr)
	}
	if !bytes.Equal(want, got) {
		t.Fatalf("marshalReport\n got %q\nwant %q", got, want)
	}
	viaJSON, err := json.Marshal(r)
	if (err != nil) != (wantErr != nil) || !bytes.Equal(want, viaJSON) {
		t.Fatalf("json.Marshal: %q, %v\nwant %q", viaJSON, err, want)
	}
}

func TestAppendReportMatchesEncodingJSON(t *testing.T) {
	t.Parallel()
	at := time.Date(2026, 11, 26, 10, 0, 1, 0, time.UTC)
	frac := time.Date(2026, 11, 26, 10, 0, 3, 120_000_000, time.FixedZone("x", 3600))
	zero := time.Time{}
	far := time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC)
	tests := []struct {
		name string
		r    Report
	}{
		{"running", Report{AgentID: "a-7f3c", Status: StatusRunning, StartedAt: &at,
			Result: json.RawMessage(`{"x":1}`), Error: "no", FinishedAt: &at}},
		{"running waiting", Report{AgentID: "a", Status: StatusRunning}},
		{"completed", Report{AgentID: "a-7f3c", Status: StatusCompleted, Result: json.RawMessage(`{"message":"hello from the benchmark"}`),
			StartedAt: &at, FinishedAt: &at, Error: "ignored",
			Events: []Event{{Time: at, Type: "Started", Message: "Execution started"}, {Type: "NoTime"}}}},
		{"failed", Report{AgentID: "a", Status: StatusFailed, Error: "exit status 1 <&> \"q\" \\ \n\t\b\f\x00\x1f\x7f",
			Result: json.RawMessage(" {\n \"stdout\" : \"a <b> & c\u2028\u2029\" , \"n\": [1, 2.5e3, true, null] }\n")}},
		{"null result", Report{AgentID: "a", Status: StatusCompleted, Result: json.RawMessage(" null ")}},
		{"empty result", Report{AgentID: "a", Status: StatusCompleted, Result: json.RawMessage{}}},
		{"string result", Report{AgentID: "a", Status: StatusCompleted, Result: json.RawMessage(`"\u003c"`)}},
		{"invalid result", Report{AgentID: "a", Status: StatusCompleted, Result: json.RawMessage(`{"a":`)}},
		{"invalid utf8", Report{AgentID: "a\xff\xfe", Status: "\xc3", Events: []Event{{Type: "t\xe2\x80", Message: "m\xed\xa0\x80z"}}}},
		{"fraction and zone", Report{AgentID: "a", Status: StatusCompleted, StartedAt: &frac, FinishedAt: &zero,
			Events: []Event{{Time: frac, Type: "Step"}}}},
		{"year out of range", Report{AgentID: "a", Status: StatusCompleted, FinishedAt: &far}},
		{"event year out of range", Report{AgentID: "a", Status: StatusCompleted, Events: []Event{{Time: far, Type: "x"}}}},
		{"empty events", Report{AgentID: "a", Status: StatusCompleted, Events: []Event{}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			checkSameAsReference(t, tc.r)
		})
	}
}

func FuzzAppendReport(f *testing.F) {
	f.Add("a-7f3c", uint8(1), []byte(`{"message":"hello"}`), "", int64(1764151201), int64(0), "Started", "Execution started", int64(0))
	f.Add("a", uint8(2), []byte(" [1, \"<\u2028>\"] "), "exit status 1\n", int64(-62135596800), int64(5), "\x00", "\xff", int64(999))
	f.Add("\u2029", uint8(0), []byte(`{`), "&", int64(253402300800), int64(1), "", "", int64(-1))
	f.Fuzz(func(t *testing.T, agentID string, status uint8, result []byte, errMsg string, secs, nanos int64, typ, msg string, evSecs int64) {
		started := time.Unix(secs, nanos)
		finished := started.Add(time.Duration(nanos) * time.Millisecond)
		r := Report{
			AgentID: agentID,
			Status:  []string{StatusRunning, StatusCompleted, StatusFailed, "OTHER"}[status%4],
			Result:  result, Error: errMsg, StartedAt: &started, FinishedAt: &finished,
			Events: []Event{{Time: time.Unix(evSecs, 0), Type: typ, Message: msg}, {Type: msg, Message: typ}},
		}
		if nanos%3 == 0 {
			r.StartedAt, r.Events = nil, nil
		}
		checkSameAsReference(t, r)
	})
}

// BenchmarkEncodeReport measures the encoding of an ECHO task's final report.
func BenchmarkEncodeReport(b *testing.B) {
	at := time.Date(2026, 11, 26, 10, 0, 1, 0, time.UTC)
	r := Report{
		AgentID: "a-7f3c", Status: StatusCompleted, Result: json.RawMessage(`{"message":"hello from the benchmark"}`),
		StartedAt: &at, FinishedAt: &at,
		Events: []Event{
			{Time: at, Type: "Accepted", Message: "Task accepted"},
			{Time: at, Type: "Started", Message: "Execution started"},
			{Time: at, Type: "Completed", Message: "Execution completed"},
		},
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := EncodeWithin(r, DefaultMaxReportBytes); err != nil {
			b.Fatal(err)
		}
	}
}
