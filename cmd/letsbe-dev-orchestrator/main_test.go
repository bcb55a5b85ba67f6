package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/letsbe/sysadmin-agent/orchestratorsync/wire"

	"github.com/google/go-cmp/cmp"
)

func TestParseFlags(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		args    []string
		want    options
		wantErr string
	}{
		{name: "defaults", want: options{listen: "127.0.0.1:8080", enrollmentToken: "dev-token", issueAgentTokens: true, progress: true, ackTimeout: 30 * time.Second, logLevel: "info",
			sign: true, taskTTL: 10 * time.Minute}},
		{name: "all", args: []string{"--listen", "0.0.0.0:9000", "--allow-remote", "--enrollment-token=s3cret", "--issue-agent-tokens=false",
			"--progress=false", "--heartbeat-interval", "10s", "--poll-interval", "2s", "--ack-timeout", "5s", "--log-level", "debug", "--sign=false", "--task-ttl", "1m", "--jwks-out", "/k.json"},
			want: options{listen: "0.0.0.0:9000", enrollmentToken: "s3cret", heartbeatInterval: 10 * time.Second,
				pollInterval: 2 * time.Second, ackTimeout: 5 * time.Second, logLevel: "debug", taskTTL: time.Minute, jwksOut: "/k.json", allowRemote: true}},
		{name: "short ack timeout", args: []string{"--ack-timeout", "10ms"}, wantErr: "invalid --ack-timeout 10ms"},
		{name: "remote listen needs the flag", args: []string{"--listen", "0.0.0.0:9000"}, wantErr: "not a loopback address"},
		{name: "every interface needs the flag", args: []string{"--listen", ":9000"}, wantErr: "not a loopback address"},
		{name: "empty token", args: []string{"--enrollment-token", ""}, wantErr: "invalid --enrollment-token"},
		{name: "negative interval", args: []string{"--poll-interval", "-1s"}, wantErr: "must not be negative"},
		{name: "bad level", args: []string{"--log-level", "trace"}, wantErr: `invalid --log-level "trace"`},
		{name: "argument", args: []string{"serve"}, wantErr: `unexpected argument "serve"`},
		{name: "unknown flag", args: []string{"--port", "1"}, wantErr: "flag provided but not defined"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := parseFlags(tt.args, io.Discard)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("parseFlags(%q) error = %v, want one containing %q", tt.args, err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("parseFlags(%q): %v", tt.args, err)
			}
			if diff := cmp.Diff(tt.want, got, cmp.AllowUnexported(options{})); diff != "" {
				t.Errorf("parseFlags(%q) (-want +got):\n%s", tt.args, diff)
			}
		})
	}
}

// TestBinary runs the built command as docker-compose does and drives it with the agent's own
// client: health, a refused and an accepted registration, a task handed out, reported and seen
// COMPLETED through /dev/tasks, and a clean exit on SIGTERM.
func TestBinary(t *testing.T) {
	t.Parallel()
	bin := filepath.Join(t.TempDir(), "letsbe-dev-orchestrator")
	if out, err := exec.CommandContext(t.Context(), "go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	cmd := exec.CommandContext(t.Context(), bin, "--listen", "127.0.0.1:0", "--enrollment-token", "enroll-me",
		"--heartbeat-interval", "7s")
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })

	lines := bufio.NewScanner(stderr)
	var base string
	urlRE := regexp.MustCompile(`url=(http://\S+)`)
	for base == "" && lines.Scan() {
		if m := urlRE.FindStringSubmatch(lines.Text()); m != nil {
			base = m[1]
		}
	}
	if base == "" {
		t.Fatalf("no listening line on stderr (scan error %v)", lines.Err())
	}
	var logged strings.Builder
	logDone := make(chan struct{})
	go func() {
		defer close(logDone)
		for lines.Scan() {
			logged.WriteString(lines.Text() + "\n")
		}
	}()

	if body := call(t, http.MethodGet, base+"/healthz", ""); body != "ok\n" {
		t.Errorf("GET /healthz = %q, want ok", body)
	}

	ctx := t.Context()
	wrong, err := wire.NewClient(wire.Config{BaseURL: base, Token: "not-the-token"})
	if err != nil {
		t.Fatal(err)
	}
	_, err = wrong.Register(ctx, wire.RegisterRequest{Hostname: "h", Version: "test"})
	if apiErr := (*wire.APIError)(nil); !errors.As(err, &apiErr) || apiErr.StatusCode != http.StatusUnauthorized {
		t.Fatalf("register with a wrong token: err = %v, want a 401 APIError", err)
	}

	client, err := wire.NewClient(wire.Config{BaseURL: base, Token: "enroll-me"})
	if err != nil {
		t.Fatal(err)
	}
	reg, err := client.Register(ctx, wire.RegisterRequest{Hostname: "h", Version: "test", Capabilities: []string{"ECHO"}})
	if err != nil {
		t.Fatalf("register: %v", err)
	}
	if reg.AgentID == "" || reg.Token == "" || reg.HeartbeatInterval() != 7*time.Second {
		t.Fatalf("register answer = %+v, want an agent id, an agent token and a 7s heartbeat", reg)
	}
	if client, err = client.WithToken(reg.Token); err != nil {
		t.Fatal(err)
	}

	var enq struct{ ID string }
	if err := json.Unmarshal([]byte(call(t, http.MethodPost, base+"/dev/tasks", `{"type":"ECHO","payload":{"message":"hi"}}`)), &enq); err != nil || enq.ID == "" {
		t.Fatalf("POST /dev/tasks: id %q, err %v", enq.ID, err)
	}

	task, err := client.NextTask(ctx, reg.AgentID, time.Second)
	if err != nil || task == nil || task.ID != enq.ID {
		t.Fatalf("next task = %+v, %v; want %s", task, err, enq.ID)
	}
	now := time.Now()
	if err := client.Report(ctx, task.ID, wire.Report{AgentID: reg.AgentID, Status: wire.StatusCompleted,
		Result: task.Payload, StartedAt: &now, FinishedAt: &now}); err != nil {
		t.Fatalf("report: %v", err)
	}
	var state struct{ Status, Type string }
	if err := json.Unmarshal([]byte(call(t, http.MethodGet, base+"/dev/tasks/"+enq.ID, "")), &state); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(struct{ Status, Type string }{"COMPLETED", "ECHO"}, state); diff != "" {
		t.Errorf("task state (-want +got):\n%s", diff)
	}

	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	<-logDone
	if err := cmd.Wait(); err != nil {
		t.Errorf("exit after SIGTERM: %v\n%s", err, logged.String())
	}
	for _, secret := range []string{"enroll-me", reg.Token} {
		if strings.Contains(logged.String(), secret) {
			t.Errorf("a token appears in the log:\n%s", logged.String())
		}
	}
}

func TestRunRefusesBadFlagsAndBusyAddress(t *testing.T) {
	t.Parallel()
	if code := run(t.Context(), []string{"--log-level", "loud"}, io.Discard); code != 2 {
		t.Errorf("bad flag: exit code %d, want 2", code)
	}
	if code := run(t.Context(), []string{"--help"}, io.Discard); code != 0 {
		t.Errorf("--help: exit code %d, want 0", code)
	}
	if code := run(t.Context(), []string{"--listen", "256.0.0.1:1", "--allow-remote"}, io.Discard); code != 1 {
		t.Errorf("unusable address: exit code %d, want 1", code)
	}
}

// call makes one request and returns the body of a 2xx answer.
func call(t *testing.T, method, url, body string) string {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode/100 != 2 {
		t.Fatalf("%s %s: status %d, err %v, body %s", method, url, resp.StatusCode, err, b)
	}
	return string(b)
}
