package orchestratorsync_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/letsbe/sysadmin-agent/api/store"
	agentv1 "github.com/letsbe/sysadmin-agent/api/v1alpha1"
	"github.com/letsbe/sysadmin-agent/executors"
	"github.com/letsbe/sysadmin-agent/internal/testpoll"
)

// patchLog records the final reports a hostile orchestrator saw, and answers them with refuse
// (0: pass the report on to the reference orchestrator).
type patchLog struct {
	mu     sync.Mutex
	finals []hostileReport // every final PATCH, in order
	codes  []int           // the answer to each
}

// hostileReport is a report as the hostile orchestrator decodes it (its own type).
type hostileReport struct {
	Status string          `json:"status"`
	Result json.RawMessage `json:"result"`
	Events []struct {
		Type    string `json:"type"`
		Message string `json:"message"`
	} `json:"events"`
	size int
}

func (p *patchLog) wrap(refuse func(r hostileReport) int) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.Method != http.MethodPatch {
				next.ServeHTTP(w, r)
				return
			}
			body, _ := io.ReadAll(r.Body)
			r.Body = io.NopCloser(bytes.NewReader(body))
			var rep hostileReport
			_ = json.Unmarshal(body, &rep)
			rep.size = len(body)
			if rep.Status == "RUNNING" {
				next.ServeHTTP(w, r)
				return
			}
			code := refuse(rep)
			p.mu.Lock()
			p.finals = append(p.finals, rep)
			p.codes = append(p.codes, code)
			p.mu.Unlock()
			if code != 0 {
				http.Error(w, "refused", code)
				return
			}
			next.ServeHTTP(w, r)
		})
	}
}

func (p *patchLog) snapshot() ([]hostileReport, []int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]hostileReport(nil), p.finals...), append([]int(nil), p.codes...)
}

// finishWithResult ends a Task COMPLETED with the result given.
func finishWithResult(t *testing.T, s store.Store, name string, result any) {
	t.Helper()
	raw, err := json.Marshal(result)
	if err != nil {
		t.Fatal(err)
	}
	_, err = store.MutateStatus(context.Background(), s, name, func(task *agentv1.Task) bool {
		now := metav1.Now()
		task.Status.MarkRunning(now, 1)
		task.Status.MarkSucceeded(now, 1)
		task.Status.Result = &runtime.RawExtension{Raw: raw}
		return true
	})
	if err != nil {
		t.Fatal(err)
	}
}

func bigOutput() executors.ProcessResult {
	return executors.ProcessResult{Stdout: strings.Repeat("line of output\n", big(20<<10)), Stderr: "warning\n"}
}

func TestHostile413HalvesTheReportUntilItFits(t *testing.T) {
	t.Parallel()
	const limit = 20 << 10
	var p patchLog
	f := startSyncer(t, 1, p.wrap(func(r hostileReport) int {
		if r.size > limit {
			return http.StatusRequestEntityTooLarge
		}
		return 0
	}))
	id := f.orch.Enqueue("ECHO", []byte(`{}`), 0)
	testpoll.Until(t, waitTimeout, "intake", func() bool { _, err := f.mem.Get(context.Background(), id); return err == nil })
	finishWithResult(t, f.mem, id, bigOutput())
	testpoll.Until(t, waitTimeout, "final accepted", func() bool { s, _ := f.orch.Task(id); return s.IsFinal() })

	finals, codes := p.snapshot()
	// 512Ki, then at most half of the last size each time: 256Ki, 128Ki, 64Ki, 32Ki, 16Ki.
	if len(finals) < 2 || len(finals) > 8 {
		t.Fatalf("%d final PATCHes, want 2..8", len(finals))
	}
	for i := 1; i < len(finals); i++ {
		if finals[i].size > finals[i-1].size/2 {
			t.Errorf("PATCH %d: %d bytes after %d: not halved", i, finals[i].size, finals[i-1].size)
		}
	}
	last := finals[len(finals)-1]
	if codes[len(codes)-1] != 0 || last.size > limit || !bytes.Contains(last.Result, []byte(`"report_truncated"`)) {
		t.Errorf("last PATCH: %d bytes, code %d, result %.200s", last.size, codes[len(codes)-1], last.Result)
	}
	st, _ := f.orch.Task(id)
	if st.Status != "COMPLETED" || st.FinalReports != 1 {
		t.Errorf("orchestrator: status %s, %d finals", st.Status, st.FinalReports)
	}
	t.Logf("final PATCH sizes: %v", sizes(finals))
}

func TestHostile400GetsTheMinimalReportOnce(t *testing.T) {
	t.Parallel()
	var p patchLog
	f := startSyncer(t, 1, p.wrap(func(r hostileReport) int {
		if len(r.Result) > 0 {
			return http.StatusBadRequest
		}
		return 0
	}))
	id := f.orch.Enqueue("ECHO", []byte(`{}`), 0)
	testpoll.Until(t, waitTimeout, "intake", func() bool { _, err := f.mem.Get(context.Background(), id); return err == nil })
	finishWithResult(t, f.mem, id, map[string]any{"stdout": "fine", "exit_code": 0})
	testpoll.Until(t, waitTimeout, "final accepted", func() bool {
		task, _ := f.mem.Get(context.Background(), id)
		return task.Status.Report.FinalReported
	})

	finals, codes := p.snapshot()
	if len(finals) != 2 || codes[0] != http.StatusBadRequest || codes[1] != 0 {
		t.Fatalf("final PATCHes answered %v, want [400 0]", codes)
	}
	m := finals[1]
	if len(m.Result) != 0 || len(m.Events) != 1 || m.Events[0].Type != "ResultDropped" ||
		!strings.Contains(m.Events[0].Message, "refused the full report (HTTP 400)") {
		t.Errorf("minimal report: %+v", m)
	}
	task, _ := f.mem.Get(context.Background(), id)
	if !task.Status.Report.FinalReported || task.Status.Report.Rejected {
		t.Errorf("report state %+v", task.Status.Report)
	}
}

func TestHostileRefusingEverythingAbandonsTheReportLoudly(t *testing.T) {
	t.Parallel()
	for _, code := range []int{http.StatusUnprocessableEntity, http.StatusRequestEntityTooLarge} {
		t.Run(http.StatusText(code), func(t *testing.T) {
			t.Parallel()
			var p patchLog
			f := startSyncer(t, 1, p.wrap(func(hostileReport) int { return code }))
			id := f.orch.Enqueue("ECHO", []byte(`{}`), 0)
			testpoll.Until(t, waitTimeout, "intake", func() bool { _, err := f.mem.Get(context.Background(), id); return err == nil })
			finishWithResult(t, f.mem, id, bigOutput())
			testpoll.Until(t, waitTimeout, "abandoned", func() bool {
				task, _ := f.mem.Get(context.Background(), id)
				return f.syncer.ReportsAbandoned() == 1 && task.Status.Report.FinalReported
			})

			task, _ := f.mem.Get(context.Background(), id)
			if r := task.Status.Report; !r.FinalReported || !r.Rejected || !strings.Contains(r.LastError, "minimal final report") {
				t.Errorf("report state %+v", r)
			}
			last := task.Status.Events[len(task.Status.Events)-1]
			if last.Type != agentv1.EventWarning || !strings.Contains(last.Message, "Final report abandoned") {
				t.Errorf("last event %+v", last)
			}
			finals, _ := p.snapshot()
			// 422: the full report and the minimal one. 413: halvings from 512Ki down to
			// MinReportBudget, then the minimal one.
			if max := map[int]int{422: 2, 413: 10}[code]; len(finals) < 2 || len(finals) > max {
				t.Errorf("%d final PATCHes, want 2..%d: %v", len(finals), max, sizes(finals))
			}
			// Nothing more is sent: three more heartbeats go by without a PATCH.
			beats := f.orch.Agents()[0].Heartbeats
			testpoll.Until(t, waitTimeout, "heartbeats", func() bool { return f.orch.Agents()[0].Heartbeats >= beats+3 })
			if again, _ := p.snapshot(); len(again) != len(finals) {
				t.Errorf("%d more PATCHes after abandoning", len(again)-len(finals))
			}
		})
	}
}

func sizes(r []hostileReport) []int {
	out := make([]int, len(r))
	for i := range r {
		out[i] = r[i].size
	}
	return out
}
