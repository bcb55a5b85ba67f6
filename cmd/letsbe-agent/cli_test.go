package main_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/letsbe/sysadmin-agent/orchestratorsync/orchestratortest"
)

// runCLI runs the binary with a clean environment plus env and returns its combined output and
// exit code.
func runCLI(t *testing.T, env []string, args ...string) (string, int) {
	t.Helper()
	cmd := exec.CommandContext(t.Context(), agentBinary, args...)
	cmd.Env = append([]string{"PATH=" + os.Getenv("PATH"), "HOME=" + t.TempDir()}, env...)
	out, err := cmd.CombinedOutput()
	if err != nil && cmd.ProcessState == nil {
		t.Fatalf("%v: %v", args, err)
	}
	return string(out), cmd.ProcessState.ExitCode()
}

func TestCLIHelpVersionAndExitCodes(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name     string
		args     []string
		wantCode int
		want     []string
	}{
		{"help lists the subcommands", []string{"--help"}, 0,
			[]string{"run ", "dev ", "status ", "version ", "completion ", "doctor ", "run-task "}},
		{"typed flags name their variable", []string{"run", "--help"}, 0, []string{
			"--heartbeat-interval duration", "(env AGENT_HEARTBEAT_INTERVAL)", "--max-file-bytes size",
			"--allowed-commands list", "--leader-election ", "--max-concurrent-tasks int", "--orchestrator-url string",
			"(env ORCHESTRATOR_URL)", "--config string",
		}},
		{"dev help shows --listen", []string{"dev", "--help"}, 0, []string{"--listen string", "127.0.0.1:8080", "--state-dir path"}},
		{"--version", []string{"--version"}, 0, []string{"letsbe-agent ", "go1."}},
		{"version", []string{"version"}, 0, []string{"letsbe-agent ", "go1."}},
		{"bash completion", []string{"completion", "bash"}, 0, []string{"__start_letsbe-agent"}},
		{"unknown command", []string{"bogus"}, 2, []string{`unknown command "bogus"`}},
		{"unknown flag", []string{"--bogus"}, 2, []string{"unknown flag: --bogus"}},
		{"bad setting", []string{"--orchestrator-url", "http://x", "--token", "t", "--poll-interval", "5"}, 2,
			[]string{"AGENT_POLL_INTERVAL (from --poll-interval)"}},
		{"single-dash long flag still works", []string{"run", "-orchestrator-url", "http://x", "-token", "t", "-log-level", "loud"}, 2,
			[]string{"AGENT_LOG_LEVEL (from --log-level)"}},
		{"bool flag takes a separate value", []string{"--orchestrator-url", "http://x", "--token", "t", "--leader-election", "false", "--log-format", "xml"}, 2,
			[]string{"AGENT_LOG_FORMAT (from --log-format)"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			out, code := runCLI(t, nil, c.args...)
			if code != c.wantCode {
				t.Errorf("exit code %d, want %d; output:\n%s", code, c.wantCode, out)
			}
			for _, w := range c.want {
				if !strings.Contains(out, w) {
					t.Errorf("output lacks %q:\n%s", w, out)
				}
			}
		})
	}
}

// A failure of the running agent (here: a state directory it cannot create) exits 1, not 2.
func TestCLIRunFailureExitsOne(t *testing.T) {
	t.Parallel()
	o := startOrchestrator(t, orchestratortest.Options{})
	file := filepath.Join(t.TempDir(), "not-a-dir")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	out, code := runCLI(t, []string{"AGENT_HTTP_ADDR="}, "--orchestrator-url", o.URL, "--token", orchestratortest.DefaultEnrollmentToken,
		"--state-dir", filepath.Join(file, "state"))
	if code != 1 {
		t.Fatalf("exit code %d, want 1; output:\n%s", code, out)
	}
}
