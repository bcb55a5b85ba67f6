package main_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/letsbe/sysadmin-agent/internal/testdirs"
	"github.com/letsbe/sysadmin-agent/internal/testengine"
	"github.com/letsbe/sysadmin-agent/internal/testpoll"
	"github.com/letsbe/sysadmin-agent/orchestratorsync/orchestratortest"
)

// composeEngine is the Docker engine prepared by hack/docker-engine.sh (internal/testengine),
// as LETSBE_TEST_DOCKER_* variables, asked for with the environment the test binary started
// with (kubetest's internal/testdirs moved the cache directories the script looks in).
// Without one the test skips loudly.
func composeEngine(t *testing.T) map[string]string {
	t.Helper()
	e, err := testengine.FindEnv(filepath.Join("..", ".."), testdirs.OriginalEnviron())
	if err != nil {
		t.Skipf("\n!!!!!!!!\n!!!!!!!! SKIP: no Docker engine for the compose e2e tests: %v\n!!!!!!!!", err)
	}
	return map[string]string{
		"LETSBE_TEST_DOCKER_CLI": e.CLI, "LETSBE_TEST_DOCKER_HOST": e.Host, "LETSBE_TEST_DOCKER_CONFIG": e.Config,
		"LETSBE_TEST_DOCKER_IMAGE": e.Image1, "LETSBE_TEST_DOCKER_IMAGE2": e.Image2,
	}
}

// composeStack is one project directory in a file root of its own, with a loopback port.
type composeStack struct {
	env              map[string]string
	root, dir, path  string
	name             string
	port             int
	image1, image2   string
	agentEnvironment []string
}

func newComposeStack(t *testing.T) *composeStack {
	t.Helper()
	env := composeEngine(t)
	var b [4]byte
	_, _ = rand.Read(b[:])
	s := &composeStack{env: env, root: filepath.Join(t.TempDir(), "root"), name: "lbe-" + hex.EncodeToString(b[:]),
		image1: env["LETSBE_TEST_DOCKER_IMAGE"], image2: env["LETSBE_TEST_DOCKER_IMAGE2"]}
	s.dir = filepath.Join(s.root, s.name)
	s.path = filepath.Join(s.dir, "compose.yaml")
	if err := os.MkdirAll(s.dir, 0o755); err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s.port = l.Addr().(*net.TCPAddr).Port
	_ = l.Close()
	s.agentEnvironment = []string{
		"AGENT_FILE_ROOTS=" + s.root,
		"AGENT_DOCKER_BINARY=" + env["LETSBE_TEST_DOCKER_CLI"],
		"AGENT_DOCKER_HOST=" + env["LETSBE_TEST_DOCKER_HOST"],
		"AGENT_DOCKER_CONFIG=" + env["LETSBE_TEST_DOCKER_CONFIG"],
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		_ = s.docker(ctx, "compose", "-p", s.name, "down", "-v", "--remove-orphans", "-t", "1").Run()
	})
	return s
}

func (s *composeStack) docker(ctx context.Context, args ...string) *exec.Cmd {
	c := exec.CommandContext(ctx, s.env["LETSBE_TEST_DOCKER_CLI"], args...)
	c.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=/root", "DOCKER_HOST=" + s.env["LETSBE_TEST_DOCKER_HOST"], "DOCKER_CONFIG=" + s.env["LETSBE_TEST_DOCKER_CONFIG"]}
	return c
}

// write writes the compose file: busybox httpd on the loopback port, with a healthcheck of
// the given URL.
func (s *composeStack) write(t *testing.T, image, healthURL string) {
	t.Helper()
	compose := fmt.Sprintf(`services:
  web:
    image: %s
    command: ["httpd", "-f", "-p", "80", "-h", "/www"]
    restart: unless-stopped
    ports: ["127.0.0.1:%d:80"]
    stop_grace_period: 1s
    healthcheck:
      test: ["CMD", "wget", "-q", "-O", "/dev/null", %q]
      interval: 300ms
      timeout: 2s
      retries: 3
`, image, s.port, healthURL)
	if err := os.WriteFile(s.path, []byte(compose), 0o644); err != nil {
		t.Fatal(err)
	}
}

func (s *composeStack) page(t *testing.T) string {
	t.Helper()
	return testpoll.Page(t, 30*time.Second, fmt.Sprintf("http://127.0.0.1:%d/", s.port))
}

type reloadResult struct {
	Project  string `json:"project"`
	Revision int    `json:"revision"`
	Services []struct {
		Name, State, Health string
	} `json:"services"`
	RolledBack       bool `json:"rolled_back"`
	RollbackRevision int  `json:"rollback_revision"`
	RollbackHealthy  bool `json:"rollback_healthy"`
}

// TestE2EComposeDeployAndRollback, through the binary: a good deploy is COMPLETED with its
// page served on a loopback port; a new version that fails its healthcheck is FAILED, rolled
// back, and the old page is served again; a refused project is FAILED naming the field.
func TestE2EComposeDeployAndRollback(t *testing.T) {
	t.Parallel()
	s := newComposeStack(t)
	o := startOrchestrator(t, orchestratortest.Options{})
	startAgent(t, o, "", s.agentEnvironment...)
	payload := fmt.Sprintf(`{"compose_path": %q}`, s.path)

	s.write(t, s.image1, "http://127.0.0.1/")
	st := o.waitFinal(t, o.enqueue(t, "DOCKER_RELOAD", payload))
	var res reloadResult
	if err := json.Unmarshal(st.Result, &res); st.Status != "COMPLETED" || err != nil {
		t.Fatalf("good deploy: %s %q %s", st.Status, st.Error, st.Result)
	}
	if res.Revision != 1 || len(res.Services) != 1 || res.Services[0].Health != "healthy" {
		t.Errorf("good deploy result = %s", st.Result)
	}
	if got := s.page(t); got != "version 1" {
		t.Fatalf("page = %q", got)
	}

	s.write(t, s.image2, "http://127.0.0.1/missing.html")
	st = o.waitFinal(t, o.enqueue(t, "DOCKER_RELOAD", payload))
	if st.Status != "FAILED" || !strings.Contains(st.Error, "service web is unhealthy (health check: ") || !strings.HasSuffix(st.Error, "; rolled back to revision 1, which is healthy") {
		t.Fatalf("bad deploy: %s %q", st.Status, st.Error)
	}
	res = reloadResult{}
	if err := json.Unmarshal(st.Result, &res); err != nil || !res.RolledBack || res.RollbackRevision != 1 || !res.RollbackHealthy {
		t.Errorf("bad deploy result = %s", st.Result)
	}
	var phases []string
	for _, e := range st.Events {
		phases = append(phases, e.Type)
	}
	for _, want := range []string{"Validated", "Started", "Unhealthy", "RolledBack"} {
		if !strings.Contains(strings.Join(phases, " "), want) {
			t.Errorf("events %v lack %s", phases, want)
		}
	}
	if got := s.page(t); got != "version 1" {
		t.Errorf("page after the rollback = %q, want version 1", got)
	}

	if err := os.WriteFile(s.path, []byte("services:\n  web:\n    image: "+s.image1+"\n    pid: host\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	st = o.waitFinal(t, o.enqueue(t, "DOCKER_RELOAD", payload))
	if st.Status != "FAILED" || !strings.Contains(st.Error, "service web: pid: host is refused (AGENT_COMPOSE_ALLOW_HOST_NAMESPACES)") {
		t.Errorf("refused project: %s %q", st.Status, st.Error)
	}
}

// TestE2EComposeKillDuringRollback: the agent is killed (SIGKILL) while it rolls a failed
// deploy back; the restarted agent reports the task FAILED interrupted, never re-runs it, its
// heartbeats carry the project's Stack (rebuilt from the revision records) as the containers
// really are, and it goes on deploying.
func TestE2EComposeKillDuringRollback(t *testing.T) {
	t.Parallel()
	s := newComposeStack(t)
	o := startOrchestrator(t, orchestratortest.Options{})
	state := filepath.Join(t.TempDir(), "state")
	a := startAgent(t, o, state, s.agentEnvironment...)
	payload := fmt.Sprintf(`{"compose_path": %q}`, s.path)
	s.write(t, s.image1, "http://127.0.0.1/")
	good, err := os.ReadFile(s.path)
	if err != nil {
		t.Fatal(err)
	}
	if st := o.waitFinal(t, o.enqueue(t, "DOCKER_RELOAD", payload)); st.Status != "COMPLETED" {
		t.Fatalf("good deploy: %s %q", st.Status, st.Error)
	}

	s.write(t, s.image2, "http://127.0.0.1/missing.html")
	id := o.enqueue(t, "DOCKER_RELOAD", payload)
	// The rollback restores the files first: once the compose file is the good one again,
	// the agent is rolling back (up -d and the health gate follow).
	eventually(t, "the rollback to start", func() bool {
		b, _ := os.ReadFile(s.path)
		return bytes.Equal(b, good)
	})
	a.Kill()

	startAgent(t, o, state, append(s.agentEnvironment, "AGENT_STACK_RECHECK_INTERVAL=1s")...)
	st := o.waitFinal(t, id)
	if st.Status != "FAILED" || st.Error != "interrupted: agent restarted during execution" {
		t.Fatalf("got %s %q, want FAILED interrupted", st.Status, st.Error)
	}
	// The restarted agent rebuilt the Stack from the revision records (revision 1, the last
	// known good one: the interrupted deploy recorded none) and reports what really runs,
	// whichever state the kill left the containers in.
	testpoll.UntilNil(t, stackWaitTimeout, "the heartbeat's stack to match the containers", func() error {
		agents := o.Agents()
		if len(agents) != 1 {
			return fmt.Errorf("%d agents", len(agents))
		}
		var hb *orchestratortest.HeartbeatStack
		for _, st := range agents[0].LastHeartbeatBody.Stacks {
			if st.Project == s.name {
				hb = &st
			}
		}
		if hb == nil || hb.Revision != 1 {
			return fmt.Errorf("stacks %+v, want %s at revision 1", agents[0].LastHeartbeatBody.Stacks, s.name)
		}
		out, err := s.docker(t.Context(), "ps", "-a", "--filter", "label=com.docker.compose.project="+s.name, "--format", "{{.State}} {{.Status}}").Output()
		if err != nil {
			return err
		}
		lines := strings.Split(strings.TrimSpace(string(out)), "\n")
		ready := len(lines) == 1 && strings.HasPrefix(lines[0], "running ") && strings.Contains(lines[0], "(healthy)")
		if hb.Available != ready {
			return fmt.Errorf("heartbeat says available=%v (degraded %v), docker says %q", hb.Available, hb.DegradedServices, lines)
		}
		return nil
	})
	// Redeploying the restored files puts the stack back in order.
	st = o.waitFinal(t, o.enqueue(t, "DOCKER_RELOAD", payload))
	if st.Status != "COMPLETED" {
		t.Fatalf("deploy after the restart: %s %q", st.Status, st.Error)
	}
	if got := s.page(t); got != "version 1" {
		t.Errorf("page = %q, want version 1", got)
	}
	o.waitStack(t, s.name, o.heartbeats(), "available at revision 1", func(st orchestratortest.HeartbeatStack) bool {
		return st.Available && st.Revision == 1 && len(st.DegradedServices) == 0
	})
}
