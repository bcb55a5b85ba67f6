package main_test

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// runTask runs `letsbe-agent run-task -` with task on standard input.
func runTask(t *testing.T, task string, env ...string) (stdout, stderr string, code int) {
	t.Helper()
	cmd := exec.CommandContext(t.Context(), agentBinary, "run-task", "-")
	cmd.Env = append([]string{"PATH=" + os.Getenv("PATH"), "HOME=" + t.TempDir(), "AGENT_ALLOWED_COMMANDS=echo,false,uname"}, env...)
	cmd.Stdin = strings.NewReader(task)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	_ = cmd.Run()
	return out.String(), errOut.String(), cmd.ProcessState.ExitCode()
}

func TestRunTask(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	cases := []struct {
		name       string
		task       string
		wantCode   int
		wantStatus string
		wantInBody string
		after      func(t *testing.T)
	}{
		{"shell completed", `{"id":"t-1","type":"SHELL","payload":{"cmd":"echo hello"}}`, 0, "COMPLETED", `"stdout":"hello\n"`, nil},
		{"shell exit 1 failed", `{"id":"t-2","type":"SHELL","payload":{"cmd":"false"}}`, 1, "FAILED", `"exit_code":1`, nil},
		{"command not allowed", `{"id":"t-3","type":"SHELL","payload":{"cmd":"rm -rf /"}}`, 1, "FAILED", `not allowed`, nil},
		{"unsupported type", `{"id":7,"type":"NOPE"}`, 1, "FAILED", `unsupported task type`, nil},
		{"file write", `{"id":"t-5","type":"FILE_WRITE","payload":{"path":"` + filepath.Join(root, "x.txt") + `","content":"hi"}}`, 0, "COMPLETED", ``, func(t *testing.T) {
			if b, err := os.ReadFile(filepath.Join(root, "x.txt")); err != nil || string(b) != "hi" {
				t.Errorf("FILE_WRITE left %q, %v", b, err)
			}
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			out, errOut, code := runTask(t, c.task, "AGENT_FILE_ROOTS="+root)
			if code != c.wantCode {
				t.Errorf("exit code %d, want %d; stderr:\n%s", code, c.wantCode, errOut)
			}
			var report struct {
				AgentID string `json:"agent_id"`
				Status  string `json:"status"`
				Events  []any  `json:"events"`
			}
			if err := json.Unmarshal([]byte(out), &report); err != nil {
				t.Fatalf("stdout is not one JSON report: %v\n%s", err, out)
			}
			if report.Status != c.wantStatus || report.AgentID == "" || len(report.Events) == 0 {
				t.Errorf("report %+v, want status %s with an agent id and events", report, c.wantStatus)
			}
			if !strings.Contains(out, c.wantInBody) {
				t.Errorf("report lacks %q:\n%s", c.wantInBody, out)
			}
			if c.after != nil {
				c.after(t)
			}
		})
	}
}

func TestRunTaskRefusesWhatIsNotATask(t *testing.T) {
	t.Parallel()
	for _, body := range []string{"nope", `{"type":"ECHO"}`, `[]`} {
		out, errOut, code := runTask(t, body)
		if code != 2 || out != "" || !strings.Contains(errOut, "invalid task") {
			t.Errorf("%s: exit %d, stdout %q, stderr %q; want 2, nothing, invalid task", body, code, out, errOut)
		}
	}
	out, code := runCLI(t, nil, "run-task", filepath.Join(t.TempDir(), "missing.json"))
	if code != 2 || !strings.Contains(out, "missing.json") {
		t.Errorf("missing file: exit %d, %q", code, out)
	}
	if _, code := runCLI(t, nil, "run-task"); code != 2 {
		t.Errorf("no argument: exit %d, want 2", code)
	}
}
