package main_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/letsbe/sysadmin-agent/internal/agenttest"
	"github.com/letsbe/sysadmin-agent/orchestratorsync/orchestratortest"
)

// progressAgent starts an agent that may run the ticker helper and cat, with a short
// progress interval, against o.
func progressAgent(t *testing.T, o *orchestrator, env ...string) *agentProc {
	t.Helper()
	return startAgent(t, o, "", append([]string{
		"PATH=" + helperDir + string(os.PathListSeparator) + os.Getenv("PATH"),
		"AGENT_ALLOWED_COMMANDS=ticker,cat,echo",
		"AGENT_PROGRESS_INTERVAL=50ms",
	}, env...)...)
}

// shellStdout decodes a SHELL result's stdout.
func shellStdout(t *testing.T, st orchestratortest.TaskState) string {
	t.Helper()
	var res struct {
		Stdout string `json:"stdout"`
	}
	if err := json.Unmarshal(st.Result, &res); err != nil {
		t.Fatalf("task %s result %s: %v", st.ID, st.Result, err)
	}
	return res.Stdout
}

// checkContiguous fails unless the chunks of each stream follow each other without gap or
// overlap from offset 0.
func checkContiguous(t *testing.T, p orchestratortest.TaskProgress) {
	t.Helper()
	next := map[string]int64{}
	for i, c := range p.Chunks {
		if c.Offset != next[c.Stream] {
			t.Errorf("chunk %d of %s at offset %d, want %d", i, c.Stream, c.Offset, next[c.Stream])
		}
		next[c.Stream] = c.Offset + int64(c.Length)
	}
	if p.Gaps != 0 || p.Overlaps != 0 {
		t.Errorf("gaps %d, overlaps %d; want none", p.Gaps, p.Overlaps)
	}
}

func TestE2EProgress(t *testing.T) {
	t.Parallel()
	o := startOrchestrator(t, orchestratortest.Options{Progress: true})
	progressAgent(t, o)
	// The command ends once the orchestrator has all its output: what it prints just before
	// it ends would otherwise travel in the final report only.
	done := filepath.Join(t.TempDir(), "done")
	id := o.enqueue(t, "SHELL", `{"cmd": "ticker -n 15 -i 200ms -until `+done+`"}`)
	waitStreamed(t, o, id, "line 15\n", done)
	st := o.waitFinal(t, id)
	if st.Status != orchestratortest.StatusCompleted {
		t.Fatalf("task %s: %s %s", id, st.Status, st.Error)
	}
	p := st.Progress
	if p.Reports < 3 {
		t.Errorf("%d progress reports before the final one, want several", p.Reports)
	}
	checkContiguous(t, p)
	if diff := cmp.Diff(shellStdout(t, st), p.Stdout); diff != "" {
		t.Errorf("streamed stdout differs from the final stdout (-final +streamed):\n%s", diff)
	}
	if !strings.Contains(p.Stdout, "line 15\n") {
		t.Errorf("streamed stdout %q lacks the last line", p.Stdout)
	}
}

// waitStreamed waits until the orchestrator's progress of task id holds want, then creates
// the file the ticker waits for.
func waitStreamed(t *testing.T, o *orchestrator, id, want, done string) {
	t.Helper()
	agenttest.WaitTask(t, o.Server, id, "progress with "+want, time.Minute, func(st orchestratortest.TaskState) bool {
		return strings.Contains(st.Progress.Stdout, want) || st.IsFinal()
	})
	if err := os.WriteFile(done, nil, 0o600); err != nil {
		t.Fatal(err)
	}
}

func TestE2EProgressOff(t *testing.T) {
	t.Parallel()
	o := startOrchestrator(t, orchestratortest.Options{})
	progressAgent(t, o)
	id := o.enqueue(t, "SHELL", `{"cmd": "ticker -n 6 -i 100ms"}`)
	st := o.waitFinal(t, id)
	if st.Status != orchestratortest.StatusCompleted {
		t.Fatalf("task %s: %s %s", id, st.Status, st.Error)
	}
	if running := st.Reports - st.FinalReports - st.Duplicates; running != 1 {
		t.Errorf("%d RUNNING reports without the progress feature, want exactly 1", running)
	}
	if st.Progress.Reports != 0 || len(st.Progress.Chunks) != 0 {
		t.Errorf("progress sent without the feature: %+v", st.Progress)
	}
}

func TestE2EProgressMasksProjectEnv(t *testing.T) {
	t.Parallel()
	const secret = "pg-Secret-Value-42"
	root := t.TempDir()
	app := filepath.Join(root, "app")
	if err := os.MkdirAll(app, 0o755); err != nil {
		t.Fatal(err)
	}
	files := map[string]string{
		".env":               "POSTGRES_PASSWORD=" + secret + "\nPORT=80\n",
		"docker-compose.yml": "services:\n  db:\n    image: postgres\n    environment:\n      POSTGRES_PASSWORD: ${POSTGRES_PASSWORD}\n",
	}
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(app, name), []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	o := startOrchestrator(t, orchestratortest.Options{Progress: true})
	progressAgent(t, o, "AGENT_FILE_ROOTS="+root)
	done := filepath.Join(t.TempDir(), "done")
	tasks := []string{
		// Printed a few bytes at a time: the secret comes in pieces, over several reports.
		o.enqueue(t, "SHELL", `{"cmd": "ticker -file .env -chunk 3 -i 40ms -until `+done+`", "cwd": "`+app+`"}`),
		o.enqueue(t, "SHELL", `{"cmd": "cat .env", "cwd": "`+app+`"}`),
	}
	waitStreamed(t, o, tasks[0], "PORT=80\n", done)
	for i, id := range tasks {
		st := o.waitFinal(t, id)
		if st.Status != orchestratortest.StatusCompleted {
			t.Fatalf("task %s: %s %s", id, st.Status, st.Error)
		}
		want := "POSTGRES_PASSWORD=***\nPORT=80\n"
		if got := shellStdout(t, st); got != want {
			t.Errorf("task %s final stdout %q, want %q", id, got, want)
		}
		for j, c := range st.Progress.Chunks {
			if strings.Contains(c.Data, secret) || strings.Contains(c.Data, secret[:6]) {
				t.Errorf("task %s chunk %d %q holds (a piece of) the secret", id, j, c.Data)
			}
		}
		if i == 0 {
			if len(st.Progress.Chunks) < 2 {
				t.Errorf("task %s: %d chunks, want the output in several", id, len(st.Progress.Chunks))
			}
			checkContiguous(t, st.Progress)
			if st.Progress.Stdout != want {
				t.Errorf("task %s streamed stdout %q, want %q", id, st.Progress.Stdout, want)
			}
		}
		raw, _ := json.Marshal(st)
		if strings.Contains(string(raw), secret) {
			t.Errorf("task %s: the orchestrator received the secret", id)
		}
	}
}
