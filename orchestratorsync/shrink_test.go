package orchestratorsync_test

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/letsbe/sysadmin-agent/orchestratorsync/wire"

	"github.com/google/go-cmp/cmp"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"

	agentv1 "github.com/letsbe/sysadmin-agent/api/v1alpha1"
	"github.com/letsbe/sysadmin-agent/executors"
	"github.com/letsbe/sysadmin-agent/orchestratorsync"
)

// wireReport is the report as an orchestrator decodes it (the test's own types).
type wireReport struct {
	AgentID    string         `json:"agent_id"`
	Status     string         `json:"status"`
	Error      string         `json:"error"`
	StartedAt  string         `json:"started_at"`
	FinishedAt string         `json:"finished_at"`
	Result     map[string]any `json:"result"`
	Events     []struct {
		Time    string `json:"time"`
		Type    string `json:"type"`
		Message string `json:"message"`
	} `json:"events"`
}

// dropped returns the message of the minimal report's ResultDropped event, "" if none.
func (r wireReport) dropped() string {
	if len(r.Events) == 1 && r.Events[0].Type == "ResultDropped" {
		return r.Events[0].Message
	}
	return ""
}

type wireTrunc struct {
	BudgetBytes   int `json:"budget_bytes"`
	OriginalBytes int `json:"original_bytes"`
	MoreFields    int `json:"more_fields"`
	Fields        []struct {
		Path      string `json:"path"`
		Bytes     int    `json:"bytes"`
		KeptBytes int    `json:"kept_bytes"`
	} `json:"fields"`
}

func finishedTask(t *testing.T, phase agentv1.TaskPhase, result any) *agentv1.Task {
	t.Helper()
	raw, err := json.Marshal(result)
	if err != nil {
		t.Fatal(err)
	}
	start := metav1.NewTime(time.Date(2026, 11, 26, 10, 0, 1, 0, time.UTC))
	task := &agentv1.Task{ObjectMeta: metav1.ObjectMeta{Name: "t-1"}}
	task.Status.MarkPending(start, 1)
	task.Status.MarkRunning(start, 1)
	end := metav1.NewTime(start.Add(time.Second))
	if phase == agentv1.TaskSucceeded {
		task.Status.MarkSucceeded(end, 1)
	} else {
		task.Status.MarkFailed(end, 1, agentv1.ReasonFailed, "exit status 1")
	}
	task.Status.Result = &runtime.RawExtension{Raw: raw}
	return task
}

func decodeReport(t *testing.T, body []byte) (wireReport, wireTrunc) {
	t.Helper()
	var r wireReport
	if err := json.Unmarshal(body, &r); err != nil {
		t.Fatalf("report is not JSON: %v", err)
	}
	var tr wireTrunc
	if raw, ok := r.Result["report_truncated"]; ok {
		b, _ := json.Marshal(raw)
		if err := json.Unmarshal(b, &tr); err != nil {
			t.Fatal(err)
		}
	}
	return r, tr
}

func encode(t *testing.T, task *agentv1.Task, budget int) []byte {
	t.Helper()
	body, err := orchestratorsync.EncodeReport(task, "a-1", budget)
	if err != nil {
		t.Fatal(err)
	}
	if len(body) > budget {
		t.Fatalf("report of %d bytes exceeds the budget of %d", len(body), budget)
	}
	again, err := orchestratorsync.EncodeReport(task.DeepCopy(), "a-1", budget)
	if err != nil || !bytes.Equal(body, again) {
		t.Fatalf("EncodeReport is not deterministic (err %v)", err)
	}
	return body
}

func TestEncodeReportSmallIsUnchanged(t *testing.T) {
	t.Parallel()
	task := finishedTask(t, agentv1.TaskSucceeded, map[string]any{"message": "hello <b>"})
	body := encode(t, task, wire.DefaultMaxReportBytes)
	want := `{"agent_id":"a-1","status":"COMPLETED","result":{"message":"hello \u003cb\u003e"},"started_at":"2026-11-26T10:00:01Z","finished_at":"2026-11-26T10:00:02Z","events":[` +
		`{"time":"2026-11-26T10:00:01Z","type":"Accepted","message":"Task accepted"},{"time":"2026-11-26T10:00:01Z","type":"Started","message":"Execution started"},` +
		`{"time":"2026-11-26T10:00:02Z","type":"Succeeded","message":"Task succeeded"}]}`
	if diff := cmp.Diff(want, string(body)); diff != "" {
		t.Errorf("body (-want +got):\n%s", diff)
	}
}

func TestEncodeReportShrinksOutput(t *testing.T) {
	t.Parallel()
	const budget = 64 << 10
	head, tail := "HEAD-"+strings.Repeat("h", 1000), strings.Repeat("t", 1000)+"-TAIL"
	cases := []struct {
		name   string
		stdout string
	}{
		{"ascii", head + strings.Repeat("x", big(2<<20)) + tail},
		{"nul", head + strings.Repeat("\x00", big(1<<20)) + tail},
		{"html and quotes", head + strings.Repeat(`<&>"\`, big(200<<10)) + tail},
		{"multibyte", head + strings.Repeat("ü€😀", big(300<<10)) + tail},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			res := executors.ProcessResult{ExitCode: 1, Stdout: tc.stdout, Stderr: "short", DurationMS: 7}
			body := encode(t, finishedTask(t, agentv1.TaskFailed, res), budget)
			r, tr := decodeReport(t, body)
			if r.Status != "FAILED" || r.Error != "exit status 1" || r.FinishedAt == "" {
				t.Errorf("status %q error %q finished %q", r.Status, r.Error, r.FinishedAt)
			}
			out, _ := r.Result["stdout"].(string)
			if !strings.HasPrefix(out, head) || !strings.HasSuffix(out, tail) {
				t.Errorf("stdout lost its head or tail: %.40q ... %.40q", out, out[max(len(out)-40, 0):])
			}
			if !strings.Contains(out, " bytes cut to fit the report]...\n") {
				t.Errorf("stdout has no marker")
			}
			if r.Result["stderr"] != "short" || r.Result["exit_code"] != 1.0 || r.Result["truncated"] != true {
				t.Errorf("other fields changed: stderr %v exit_code %v truncated %v", r.Result["stderr"], r.Result["exit_code"], r.Result["truncated"])
			}
			if len(tr.Fields) != 1 || tr.Fields[0].Path != "stdout" || tr.Fields[0].Bytes != len(tc.stdout) ||
				tr.Fields[0].KeptBytes <= 2000 || tr.BudgetBytes != budget || tr.OriginalBytes <= budget {
				t.Errorf("report_truncated %+v", tr)
			}
			// The marker's count and the bytes kept add up to the original.
			var cut int
			i := strings.Index(out, "\n...[")
			fmt.Sscanf(out[i:], "\n...[%d bytes", &cut)
			if kept := tr.Fields[0].KeptBytes; kept+cut != len(tc.stdout) {
				t.Errorf("kept %d + cut %d != %d", kept, cut, len(tc.stdout))
			}
			// Most of the budget is used: the shrink is not needlessly coarse.
			if len(body) < budget*3/4 {
				t.Errorf("report of %d bytes uses little of the budget %d", len(body), budget)
			}
		})
	}
}

func TestEncodeReportKeepsInvalidUTF8AsBase64(t *testing.T) {
	t.Parallel()
	raw := []byte("start\xff\xfe")
	for i := range big(300 << 10) {
		raw = append(raw, byte(i*7))
	}
	raw = append(raw, "\xc3end"...)
	res := executors.ProcessResult{Stdout: string(raw), Stderr: "ok"}
	small := encode(t, finishedTask(t, agentv1.TaskSucceeded, res), 4<<20)
	r, _ := decodeReport(t, small)
	if r.Result["stdout_encoding"] != "base64" || r.Result["stderr_encoding"] != nil {
		t.Fatalf("encodings: stdout %v stderr %v", r.Result["stdout_encoding"], r.Result["stderr_encoding"])
	}
	got, err := base64.StdEncoding.DecodeString(r.Result["stdout"].(string))
	if err != nil || !bytes.Equal(got, raw) {
		t.Fatalf("stdout does not decode to the original bytes (err %v)", err)
	}

	body := encode(t, finishedTask(t, agentv1.TaskSucceeded, res), 32<<10)
	r, tr := decodeReport(t, body)
	got, err = base64.StdEncoding.DecodeString(r.Result["stdout"].(string))
	if err != nil {
		t.Fatalf("shortened stdout is not base64: %v", err)
	}
	if !bytes.HasPrefix(got, raw[:1000]) || !bytes.HasSuffix(got, raw[len(raw)-1000:]) || !bytes.Contains(got, []byte(" bytes cut to fit the report]")) {
		t.Errorf("shortened stdout lost its head, tail or marker")
	}
	if len(tr.Fields) != 1 || tr.Fields[0].Bytes != len(raw) {
		t.Errorf("report_truncated %+v", tr)
	}
}

func TestEncodeReportDropsScreenshotsFirst(t *testing.T) {
	t.Parallel()
	png := base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{0x89, 'P', 'N', 'G'}, 60<<10))
	res := map[string]any{
		"final_url": "https://example.com/",
		"steps":     []any{map[string]any{"index": 1, "action": "goto", "ok": true}},
		"screenshots": []any{
			map[string]any{"name": "a", "png_base64": png},
			map[string]any{"name": "b", "png_base64": png},
		},
		"console_errors": []any{strings.Repeat("e", 5000)},
	}
	body := encode(t, finishedTask(t, agentv1.TaskSucceeded, res), 64<<10)
	r, tr := decodeReport(t, body)
	shots := r.Result["screenshots"].([]any)
	for _, s := range shots {
		if m := s.(map[string]any); m["png_base64"] != "" || m["name"] == "" {
			t.Errorf("screenshot %v", m)
		}
	}
	if got := r.Result["console_errors"].([]any)[0]; got != strings.Repeat("e", 5000) {
		t.Errorf("console error shortened although dropping the screenshots was enough")
	}
	var paths []string
	for _, f := range tr.Fields {
		paths = append(paths, fmt.Sprintf("%s:%d:%d", f.Path, f.Bytes, f.KeptBytes))
	}
	want := []string{"screenshots[0].png_base64:245760:0", "screenshots[1].png_base64:245760:0"}
	if diff := cmp.Diff(want, paths); diff != "" {
		t.Errorf("fields (-want +got):\n%s", diff)
	}
}

func TestEncodeReportNestedAndOddResults(t *testing.T) {
	t.Parallel()
	long := strings.Repeat("n", 20<<10)
	many := make([]any, 0, 40)
	for i := range 40 {
		many = append(many, map[string]any{"i": i, "log": long})
	}
	manyNumbers := make([]int, 40<<10)
	cases := []struct {
		name    string
		result  any
		check   func(t *testing.T, r wireReport, tr wireTrunc)
		minimal bool
	}{
		{name: "nested", result: map[string]any{"a": map[string]any{"b": []any{long, long}}, "items": many},
			check: func(t *testing.T, r wireReport, tr wireTrunc) {
				if tr.MoreFields+len(tr.Fields) != 42 || len(tr.Fields) != 16 {
					t.Errorf("fields %d more %d, want 42 in all, 16 listed", len(tr.Fields), tr.MoreFields)
				}
				items := r.Result["items"].([]any)
				if len(items) != 40 || items[39].(map[string]any)["i"] != 39.0 {
					t.Errorf("structure changed")
				}
			}},
		{name: "string", result: strings.Repeat(long, 5),
			check: func(t *testing.T, r wireReport, tr wireTrunc) {
				v, _ := r.Result["value"].(string)
				if !strings.Contains(v, "bytes cut to fit the report") || len(tr.Fields) != 1 || tr.Fields[0].Path != "value" {
					t.Errorf("value %.60q, fields %+v", v, tr.Fields)
				}
			}},
		{name: "numbers", result: map[string]any{"n": manyNumbers}, minimal: true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			body := encode(t, finishedTask(t, agentv1.TaskSucceeded, tc.result), 64<<10)
			r, tr := decodeReport(t, body)
			if got := r.dropped() != ""; got != tc.minimal {
				t.Fatalf("minimal %v, want %v: %.300s", got, tc.minimal, body)
			}
			if tc.minimal {
				if r.Result != nil || r.Status != "COMPLETED" || r.StartedAt == "" || r.Events[0].Time != r.FinishedAt ||
					!strings.Contains(r.dropped(), "does not fit the agent's report budget") {
					t.Errorf("minimal report %s", body)
				}
				return
			}
			tc.check(t, r, tr)
		})
	}
}

func TestEncodeReportTinyBudgetGivesMinimal(t *testing.T) {
	t.Parallel()
	task := finishedTask(t, agentv1.TaskFailed, map[string]any{"stdout": strings.Repeat("x", 10000)})
	task.Status.Error = strings.Repeat("\x01", agentv1.MaxErrorLength) // 6 bytes each on the wire
	body := encode(t, task, 2048)
	r, _ := decodeReport(t, body)
	if r.dropped() == "" || r.Result != nil || !strings.Contains(r.Error, "bytes cut to fit the report") {
		t.Errorf("minimal report %s", body)
	}
}

func FuzzEncodeReport(f *testing.F) {
	f.Add([]byte(`{"stdout":"hello","truncated":false}`), 2000, "x")
	f.Add([]byte(`"just a string"`), 1500, "\x00\xff")
	f.Add([]byte(`[1,2,{"a_base64":"AAAA"}]`), 1024, "")
	f.Add([]byte(`{"stdout":"/w==","stdout_encoding":"base64"}`), 1100, "<>")
	f.Fuzz(func(t *testing.T, result []byte, budget int, filler string) {
		if !json.Valid(result) || len(result) > 64<<10 || len(filler) > 16 || budget < wire.MinReportBudget || budget > 1<<20 {
			t.Skip()
		}
		var v any
		if json.Unmarshal(result, &v) != nil {
			t.Skip()
		}
		// Make the result large enough to need shrinking, in a stable way.
		if m, ok := v.(map[string]any); ok {
			m["filler"] = strings.Repeat(filler+"f", 3000)
		}
		task := finishedTask(t, agentv1.TaskSucceeded, v)
		body, err := orchestratorsync.EncodeReport(task, "a-1", budget)
		if err != nil {
			t.Fatal(err)
		}
		if len(body) > budget {
			t.Fatalf("%d bytes over the budget %d", len(body), budget)
		}
		if !json.Valid(body) {
			t.Fatalf("invalid JSON: %s", body)
		}
		again, _ := orchestratorsync.EncodeReport(task, "a-1", budget)
		if !bytes.Equal(body, again) {
			t.Fatal("not deterministic")
		}
	})
}

// big scales an input size down under the race detector.
func big(n int) int {
	if raceEnabled {
		return n / 8
	}
	return n
}
