package main_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/letsbe/sysadmin-agent/orchestratorsync/orchestratortest"
)

// TestE2EBigAndHostileTasks runs, through the binary and against the reference orchestrator
// with its 1 MiB request limit, the tasks that used to lose their results: several MiB of
// output, NUL and binary output, a 10 MiB FILE_WRITE, a 40 MiB task body, a 40 KiB id and a
// lone-surrogate id. Each gets exactly one accepted final report, or, for the id that cannot
// be used, the documented outcome: dropped, counted, logged.
func TestE2EBigAndHostileTasks(t *testing.T) {
	t.Parallel()
	scale := 1
	if raceEnabled {
		scale = 4 // the race detector makes encoding/json many times slower
	}
	dir := t.TempDir()
	roots := filepath.Join(dir, "files")
	if err := os.MkdirAll(roots, 0o755); err != nil {
		t.Fatal(err)
	}
	// A text file of 6 MiB with a recognisable head and tail.
	var text bytes.Buffer
	text.WriteString("FIRST LINE\n")
	for i := 0; text.Len() < 6<<20; i++ {
		fmt.Fprintf(&text, "line %07d of a long listing\n", i)
	}
	text.WriteString("LAST LINE\n")
	bigFile := filepath.Join(dir, "big.txt")
	if err := os.WriteFile(bigFile, text.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}

	o := startOrchestrator(t, orchestratortest.Options{})
	a := startAgent(t, o, "", "AGENT_ALLOWED_COMMANDS=cat,head,echo", "AGENT_FILE_ROOTS="+roots)

	type check func(t *testing.T, st orchestratortest.TaskState, res map[string]any)
	var ids []string
	checks := map[string]check{}
	add := func(id string, c check) { ids = append(ids, id); checks[id] = c }

	// Several MiB of output: the agent keeps 1 MiB of it, the report is shrunk to 512 KiB.
	add(o.enqueue(t, "SHELL", `{"cmd":"cat `+bigFile+`"}`), func(t *testing.T, st orchestratortest.TaskState, res map[string]any) {
		out, _ := res["stdout"].(string)
		if st.Status != "COMPLETED" || !strings.HasPrefix(out, "FIRST LINE\n") || !strings.HasSuffix(out, "LAST LINE\n") ||
			!strings.Contains(out, "bytes cut to fit the report") || res["report_truncated"] == nil {
			t.Errorf("big output: %s, stdout %.60q..., report_truncated %v", st.Status, out, res["report_truncated"])
		}
	})
	// NUL bytes: six bytes each as JSON.
	nul := (1 << 20) / scale
	add(o.enqueue(t, "SHELL", fmt.Sprintf(`{"cmd":"head -c %d /dev/zero"}`, nul)), func(t *testing.T, st orchestratortest.TaskState, res map[string]any) {
		out, _ := res["stdout"].(string)
		if st.Status != "COMPLETED" || !strings.HasPrefix(out, "\x00\x00\x00\x00") || res["report_truncated"] == nil {
			t.Errorf("NUL output: %s, stdout %.20q, report_truncated %v", st.Status, out, res["report_truncated"])
		}
	})
	// Binary output: sent as base64, decoding to the bytes the command wrote.
	add(o.enqueue(t, "SHELL", `{"cmd":"head -c 200000 /dev/urandom"}`), func(t *testing.T, st orchestratortest.TaskState, res map[string]any) {
		raw, err := base64.StdEncoding.DecodeString(fmt.Sprint(res["stdout"]))
		if st.Status != "COMPLETED" || res["stdout_encoding"] != "base64" || err != nil || len(raw) != 200000 {
			t.Errorf("binary output: %s, encoding %v, %d bytes (%v)", st.Status, res["stdout_encoding"], len(raw), err)
		}
	})
	// A FILE_WRITE of 10 MiB: a task body of 13.3 MiB.
	content := bytes.Repeat([]byte("0123456789abcdef"), (10<<20)/16)
	sum := sha256.Sum256(content)
	payload, _ := json.Marshal(map[string]any{"path": filepath.Join(roots, "ten.bin"), "content": base64.StdEncoding.EncodeToString(content), "encoding": "base64"})
	add(o.Enqueue("FILE_WRITE", payload, 0), func(t *testing.T, st orchestratortest.TaskState, res map[string]any) {
		if st.Status != "COMPLETED" || res["bytes_written"] != float64(10<<20) || res["sha256"] != hex.EncodeToString(sum[:]) {
			t.Errorf("10 MiB FILE_WRITE: %s %s %v", st.Status, st.Error, res)
		}
	})
	// A task body of 40 MiB: refused, and said so.
	huge, _ := json.Marshal(map[string]any{"path": filepath.Join(roots, "huge.txt"), "content": strings.Repeat("h", 40<<20)})
	add(o.Enqueue("FILE_WRITE", huge, 0), func(t *testing.T, st orchestratortest.TaskState, res map[string]any) {
		if st.Status != "FAILED" || !strings.Contains(st.Error, "task too large: ") || !strings.Contains(st.Error, "bytes (AGENT_MAX_TASK_BYTES is 33554432)") {
			t.Errorf("40 MiB body: %s %q", st.Status, st.Error)
		}
	})
	// A 40 KiB id: reported FAILED under that id, never journaled.
	longID := strings.Repeat("k", 40<<10)
	o.EnqueueRaw(longID, "ECHO", []byte(`{"id":"`+longID+`","type":"ECHO","payload":{}}`))
	add(longID, func(t *testing.T, st orchestratortest.TaskState, res map[string]any) {
		if st.Status != "FAILED" || !strings.Contains(st.Error, "task id too long: 40960 bytes") {
			t.Errorf("40 KiB id: %s %q", st.Status, st.Error)
		}
	})
	// A lone surrogate: no id to report under; dropped and counted. A task after it still runs.
	o.EnqueueRaw("t-lone", "ECHO", []byte(`{"id":"t-\ud800","type":"ECHO","payload":{}}`))
	add(o.enqueue(t, "ECHO", `{"message":"after"}`), func(t *testing.T, st orchestratortest.TaskState, res map[string]any) {
		if st.Status != "COMPLETED" || res["message"] != "after" {
			t.Errorf("task after: %s %v", st.Status, res)
		}
	})

	for _, id := range ids {
		st := o.waitFinal(t, id)
		var res map[string]any
		if len(st.Result) > 0 {
			if err := json.Unmarshal(st.Result, &res); err != nil {
				t.Errorf("task %.20s: result is not an object: %v", id, err)
			}
		}
		checks[id](t, st, res)
		if st.FinalReports != 1 {
			t.Errorf("task %.20s: %d accepted finals", id, st.FinalReports)
		}
	}

	// The lone-surrogate task is dropped each time it is handed out and never reported; the
	// orchestrator offers it again after each ack timeout (a slow run outlasts one), so the
	// agent's counts lie between one and the offers, read last.
	_, metrics := httpGet(t, "http://"+a.httpAddr()+"/metrics")
	var droppedMetric int
	for _, l := range strings.Split(metrics, "\n") {
		if v, ok := strings.CutPrefix(l, "letsbe_agent_tasks_dropped_total "); ok {
			droppedMetric, _ = strconv.Atoi(v)
		}
	}
	dropped := 0
	for _, l := range a.logLines() {
		if l["msg"] == "Dropping a task the agent cannot report: it has no usable id" {
			dropped++
		}
	}
	lone, _ := o.Task("t-lone")
	if lone.Reports != 0 {
		t.Errorf("the lone-surrogate task got %d reports", lone.Reports)
	}
	if droppedMetric < 1 || droppedMetric > lone.Offers || !strings.Contains(metrics, "letsbe_agent_reports_abandoned_total 0\n") {
		t.Errorf("metrics: want 1 to %d (the offers) dropped and 0 abandoned:\n%s", lone.Offers, grepLines(metrics, "letsbe_agent_tasks_dropped_total", "letsbe_agent_reports_abandoned_total"))
	}
	if dropped < 1 || dropped > lone.Offers {
		t.Errorf("%d log lines about the dropped task, want one per offer (%d)", dropped, lone.Offers)
	}
	t.Logf("largest output delivered: cat of %d bytes (1 MiB kept, report within 512 KiB); NUL output %d bytes; largest task body run: %d bytes; refused: %d bytes",
		text.Len(), nul, len(payload), len(huge))
}

func grepLines(s string, subs ...string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		for _, sub := range subs {
			if strings.Contains(l, sub) {
				out = append(out, l)
			}
		}
	}
	return strings.Join(out, "\n")
}
