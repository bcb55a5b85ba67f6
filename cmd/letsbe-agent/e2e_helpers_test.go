package main_test

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/letsbe/sysadmin-agent/api/store/kube/kubetest"
	"github.com/letsbe/sysadmin-agent/internal/agenttest"
	"github.com/letsbe/sysadmin-agent/internal/testdirs"
	"github.com/letsbe/sysadmin-agent/internal/testpoll"
	"github.com/letsbe/sysadmin-agent/orchestratorsync/orchestratortest"
)

// agentBinary is the letsbe-agent binary built once for all end-to-end tests.
var agentBinary string

// helperDir holds test helper programs (ticker: prints over time) for SHELL tasks; put it in
// the agent's PATH and allow them to use them.
var helperDir string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "letsbe-agent-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	agentBinary = filepath.Join(dir, "letsbe-agent")
	args := []string{"build", "-o", agentBinary}
	if raceEnabled {
		args = append(args, "-race")
	}
	build := exec.Command("go", append(args, ".")...)
	build.Env = testdirs.OriginalEnviron() // the Go build cache where it is, not in this test's dirs
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "build letsbe-agent:", err)
		os.Exit(1)
	}
	helperDir = filepath.Join(dir, "bin")
	build = exec.Command("go", "build", "-o", filepath.Join(helperDir, "ticker"), "./testdata/ticker")
	build.Env = testdirs.OriginalEnviron()
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "build the ticker helper:", err)
		os.Exit(1)
	}
	code := kubetest.Run(m) // with the API server of the cluster-mode tests, if they run
	os.RemoveAll(dir)
	os.Exit(code)
}

// orchestrator is the reference orchestrator served on loopback.
type orchestrator struct{ *agenttest.Orchestrator }

func startOrchestrator(t *testing.T, opts orchestratortest.Options) *orchestrator {
	t.Helper()
	return serveOrchestrator(t, orchestratortest.New(opts), nil)
}

// serveOrchestrator serves srv through handler (srv itself when nil) until the test ends.
func serveOrchestrator(t *testing.T, srv *orchestratortest.Server, handler http.Handler) *orchestrator {
	t.Helper()
	o := agenttest.Serve(srv, handler)
	t.Cleanup(o.Close)
	return &orchestrator{o}
}

// waitTask waits until the orchestrator holds a final status for id.
func (o *orchestrator) waitFinal(t *testing.T, id string) orchestratortest.TaskState {
	t.Helper()
	return agenttest.WaitTask(t, o.Server, id, "a final status", 60*time.Second, orchestratortest.TaskState.IsFinal)
}

func (o *orchestrator) enqueue(t *testing.T, typ, payload string) string {
	t.Helper()
	var raw json.RawMessage
	if payload != "" {
		raw = json.RawMessage(payload)
	}
	return o.Enqueue(typ, raw, 0)
}

// waitTimeout bounds every wait of the end-to-end tests for the agent or the orchestrator.
const waitTimeout = 30 * time.Second

// eventually waits for cond, up to waitTimeout.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	testpoll.Until(t, waitTimeout, what, cond)
}

// agentProc is a running letsbe-agent of one test.
type agentProc struct {
	*agenttest.Agent
	t        *testing.T
	stateDir string
}

// startAgent runs the binary against o with a clean environment plus env ("K=V"): short
// heartbeat and poll intervals, debug logs, the listener on a pre-picked loopback port.
func startAgent(t *testing.T, o *orchestrator, stateDir string, env ...string) *agentProc {
	t.Helper()
	if stateDir == "" {
		stateDir = filepath.Join(t.TempDir(), "state")
	}
	return runAgent(t, agenttest.Options{
		Binary: agentBinary, OrchestratorURL: o.URL, StateDir: stateDir, Home: t.TempDir(),
		Env: append([]string{
			"AGENT_HEARTBEAT_INTERVAL=200ms",
			"AGENT_POLL_INTERVAL=50ms",
			"AGENT_ALLOWED_COMMANDS=echo,sleep,false,true,uname",
			"AGENT_LOG_LEVEL=debug",
		}, env...),
	})
}

// runAgent starts the agent as opts says; at the end of the test it stops it, and shows its
// output if the test failed.
func runAgent(t *testing.T, opts agenttest.Options) *agentProc {
	t.Helper()
	a, err := agenttest.Start(opts)
	if err != nil {
		t.Fatal(err)
	}
	p := &agentProc{Agent: a, t: t, stateDir: opts.StateDir}
	t.Cleanup(func() {
		p.stop()
		if t.Failed() {
			t.Logf("agent output:\n%s", a.Output())
		}
	})
	return p
}

// stop sends SIGTERM and waits for the exit; it returns the exit code.
func (p *agentProc) stop() int {
	code, err := p.Stop(60 * time.Second)
	if err != nil {
		p.t.Error(err)
	}
	return code
}

// httpAddr waits for the agent's local listener and returns its address.
func (p *agentProc) httpAddr() string {
	p.t.Helper()
	if err := p.WaitListening(p.t.Context(), waitTimeout); err != nil {
		p.t.Fatal(err)
	}
	return p.HTTPAddr
}

// logLines returns the agent's output, failing the test on any line that is not JSON.
func (p *agentProc) logLines() []map[string]any {
	p.t.Helper()
	var lines []map[string]any
	sc := bufio.NewScanner(strings.NewReader(p.Output()))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var m map[string]any
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			p.t.Errorf("log line is not JSON: %q", sc.Text())
			continue
		}
		lines = append(lines, m)
	}
	return lines
}
